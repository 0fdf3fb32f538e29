"""Sub-quadratic search for all pairs of 64-bit hashes within Hamming distance ``t`` (multi-index hashing).

Split the 64 bits into ``m`` disjoint blocks. If two hashes differ in at most ``t`` bits and ``m * (r + 1) > t``,
at least one block differs in at most ``r`` bits (generalised pigeonhole principle: were every block off by
``r + 1`` or more, the total would exceed ``t``). So for each block we probe, for every hash, all block values
within radius ``r`` of its own (``sum_{k<=r} C(w, k)`` XOR masks for a ``w``-bit block) and verify the candidates
with a 64-bit popcount. Nothing within ``t`` is missed; nothing beyond ``t`` is returned.

Plain multi-index hashing (``r = 0``, ``m = t + 1``) is a bad fit for ``t = 8``: 9 blocks of ~7 bits put ~n/128
candidates behind every probe. With ``m = 3`` blocks of 22/21/21 bits and ``r = 2`` there are 254 probes per block
but only ~n/2^21 candidates behind each, which is what :func:`plan` picks for large ``n`` (it minimises a simple
cost model over all valid ``(m, r)``).

Each block is indexed as a CSR bucket table over its key (the block, or its top bits when ``n`` is small):
``order`` (item indices sorted by key, int32) and ``starts`` (offset of each of the ``2^k`` keys, int32), so a
probe is a vectorised XOR plus two gathers, with no per-query Python and no ``log n`` factor. Blocks are indexed
one after the other and queries run in chunks, so besides the input hashes the index holds one block's sorted
keys, sorted hashes and order (16 B/item) and one table (<= 16 B/item, :func:`key_cap`) at a time.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from .hashing import HASH_BITS, as_uint64

MAX_TABLE_BITS = 24  # 2^24 int32 offsets = 64 MiB: the widest block a bucket table is built for
_PROBE_OVERHEAD = 20_000  # fixed cost of one probe, in units of "one element of vectorised work"


@dataclass(frozen=True)
class Plan:
    """How the bits are split: ``blocks`` are (shift, width) pairs partitioning the hash; ``radius`` is the
    per-block probe radius; ``key_bits[k]`` says how many of block k's top bits key its bucket table (fewer than
    the block width when ``n`` is small, so the table stays ~<= 16 bytes per item: a sub-key differs in at most
    as many bits as its block, so the pigeonhole guarantee holds for it too)."""

    max_distance: int
    blocks: tuple[tuple[int, int], ...]
    radius: int
    key_bits: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.key_bits:
            object.__setattr__(self, "key_bits", tuple(w for _, w in self.blocks))
        if len(self.key_bits) != len(self.blocks):
            raise ValueError("one key width per block")
        for (_, w), kb in zip(self.blocks, self.key_bits, strict=True):
            if not 1 <= kb <= min(w, MAX_TABLE_BITS):
                raise ValueError(f"key of {kb} bits for a {w}-bit block (at most {MAX_TABLE_BITS})")

    @property
    def keys(self) -> tuple[tuple[int, int], ...]:
        """(shift, bits) of each block's key: its top ``key_bits`` bits."""
        return tuple((s + w - kb, kb) for (s, w), kb in zip(self.blocks, self.key_bits, strict=True))

    @property
    def probes(self) -> int:
        return sum(n_masks(kb, self.radius) for kb in self.key_bits)


def n_masks(width: int, radius: int) -> int:
    return sum(math.comb(width, k) for k in range(min(radius, width) + 1))


def split_bits(m: int, bits: int = HASH_BITS) -> tuple[tuple[int, int], ...]:
    """``m`` contiguous blocks covering ``bits`` bits, widths differing by at most one (widest first)."""
    base, extra = divmod(bits, m)
    widths = [base + (1 if i < extra else 0) for i in range(m)]
    blocks, shift = [], bits
    for w in widths:
        shift -= w
        blocks.append((shift, w))
    return tuple(blocks)


def key_cap(n: int) -> int:
    """Widest key worth a table for ``n`` items: 4 * 2^bits bytes stays <= 16 bytes per item."""
    return max(12, math.ceil(math.log2(max(n, 2))) + 2)


def plan(n: int, max_distance: int, bits: int = HASH_BITS, max_table_bits: int = MAX_TABLE_BITS) -> Plan:
    """Pick ``(m, r, key widths)`` with ``m * (r + 1) > t`` minimising ``probes * (n + expected candidates per
    probe)`` under uniformly random hashes (real perceptual hashes cluster more, which only adds candidates)."""
    t = int(max_distance)
    if not 0 <= t < bits:
        raise ValueError(f"max_distance must be in [0, {bits - 1}], got {max_distance!r}")
    cap = min(max_table_bits, key_cap(n))
    best: tuple[float, Plan] | None = None
    for m in range(1, bits + 1):
        blocks = split_bits(m, bits)
        r = -(-(t + 1) // m) - 1  # smallest r with m * (r + 1) > t
        cost, keys = 0.0, []
        for _, w in blocks:
            options = [
                (n_masks(kb, r) * (n + _PROBE_OVERHEAD + n * n / 2.0**kb), kb) for kb in range(r + 1, min(w, cap) + 1)
            ]
            if not options:
                cost = math.inf
                break
            c, kb = min(options)
            cost += c
            keys.append(kb)
        if cost < math.inf and (best is None or cost < best[0]):
            best = (cost, Plan(t, blocks, r, tuple(keys)))
    assert best is not None
    return best[1]


def probe_masks(width: int, radius: int) -> np.ndarray:
    """All ``width``-bit masks with at most ``radius`` bits set (0 first), as uint32."""
    masks = [0]
    for k in range(1, radius + 1):
        for combo in itertools.combinations(range(width), k):
            masks.append(sum(1 << b for b in combo))
    return np.asarray(masks, dtype=np.uint32)


def _block_table(sorted_keys: np.ndarray, bits: int, chunk: int = 1 << 17) -> np.ndarray:
    """Bucket offsets of a sorted key array: items with key ``k`` are ``starts[k]:starts[k + 1]`` (int32).

    Built chunk by chunk from the positions where the key changes (no n-sized int64 temporaries)."""
    n = len(sorted_keys)
    starts = np.full((1 << bits) + 1, n, dtype=np.int32)
    for c0 in range(0, n, chunk):
        part = sorted_keys[c0 : c0 + chunk]
        first = np.empty(len(part), dtype=bool)
        first[0] = c0 == 0 or part[0] != sorted_keys[c0 - 1]
        np.not_equal(part[1:], part[:-1], out=first[1:])
        pos = np.flatnonzero(first)
        starts[part[pos]] = pos + c0
    rev = starts[::-1]  # a key that is absent starts where the next present key does
    np.minimum.accumulate(rev, out=rev)
    return starts


def index_bytes(n: int, p: Plan) -> int:
    """Bytes of index structures held at once besides the input hashes: for the current block, its sorted keys
    (4 B/item), sorted hashes (8 B/item), order (4 B/item) and bucket table; per-chunk temporaries come on top."""
    return (4 + 8 + 4) * n + 4 * ((1 << max(p.key_bits)) + 1)


def near_pairs(
    hashes, max_distance: int, p: Plan | None = None, chunk: int = 1 << 17
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` with ``popcount(h[i] ^ h[j]) <= max_distance``.

    ``hashes``: int64 or uint64 array. Returns ``(i, j, distance)`` (int64 arrays) sorted by ``(i, j)``.
    Queries run in chunks of ``chunk`` items so temporaries stay small."""
    h = as_uint64(hashes)
    n = len(h)
    if n >= 2**31 - 1:
        raise ValueError(f"{n} hashes: the index uses int32 offsets (at most 2^31 - 2 items)")
    empty = np.zeros(0, dtype=np.int64)
    if n < 2:
        return empty, empty.copy(), empty.copy()
    p = p or plan(n, max_distance)
    if p.max_distance != max_distance:
        raise ValueError("plan was made for another max_distance")
    found_i: list[np.ndarray] = []
    found_j: list[np.ndarray] = []
    for shift, bits in p.keys:
        keys = ((h >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.uint32)
        order = np.argsort(keys, kind="stable").astype(np.int32)
        # Work in sorted order: queries then walk the table almost sequentially (XOR with a mask keeps the
        # high bits), and candidates are contiguous runs, so the gathers below stay cache-friendly.
        sk = keys[order]
        del keys
        hs = h[order]
        starts = _block_table(sk, bits)
        ends = starts[1:]
        masks = probe_masks(bits, p.radius)
        for c0 in range(0, n, chunk):
            part = sk[c0 : c0 + chunk]
            for mask in masks:
                q = part ^ mask if mask else part
                lo = starts[q]
                cnt = ends[q] - lo
                del q
                qi = np.flatnonzero(cnt > 1 if mask == 0 else cnt)  # mask 0: a hash always finds itself
                if qi.size == 0:
                    continue
                c = cnt[qi]
                start = lo[qi]
                del lo, cnt
                qpos = qi + c0
                if not (c == 1).all():  # several candidates behind some queries: expand the runs
                    total = int(c.sum())
                    first = np.cumsum(c) - c  # where each query's run begins in the expanded arrays
                    start = np.arange(total, dtype=np.int64) + np.repeat(start.astype(np.int64) - first, c)
                    qpos = np.repeat(qpos, c)
                close = np.bitwise_count(hs[qpos] ^ hs[start]) <= max_distance
                if mask == 0:
                    close &= qpos != start
                if close.any():
                    a = order[qpos[close]]
                    b = order[start[close]]
                    found_i.append(np.minimum(a, b))  # each pair is found from both ends: normalised, then unique
                    found_j.append(np.maximum(a, b))
        del sk, hs, order, starts, ends
    if not found_i:
        return empty, empty.copy(), empty.copy()
    key = np.unique(np.concatenate(found_i).astype(np.int64) * n + np.concatenate(found_j))  # same pair, 2 blocks
    i, j = np.divmod(key, n)
    return i, j, np.bitwise_count(h[i] ^ h[j]).astype(np.int64)


def all_pairs(hashes, max_distance: int, chunk: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quadratic reference: every pair ``i < j`` within ``max_distance`` (for tests and the benchmark)."""
    h = as_uint64(hashes)
    n = len(h)
    out_i, out_j = [], []
    for a in range(0, n, chunk):
        block = h[a : a + chunk, None]
        d = np.bitwise_count(block ^ h[None, a:])
        ii, jj = np.nonzero(d <= max_distance)
        jj = jj + a
        ii = ii + a
        sel = ii < jj
        out_i.append(ii[sel])
        out_j.append(jj[sel])
    if not out_i:
        z = np.zeros(0, dtype=np.int64)
        return z, z.copy(), z.copy()
    i = np.concatenate(out_i).astype(np.int64)
    j = np.concatenate(out_j).astype(np.int64)
    o = np.lexsort((j, i))
    i, j = i[o], j[o]
    return i, j, np.bitwise_count(h[i] ^ h[j]).astype(np.int64)
