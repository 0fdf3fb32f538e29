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

Each block is indexed as a CSR bucket table: ``order`` (item indices sorted by block value, int32) and
``starts`` (offset of each of the ``2^w`` block values, int32), so a probe is a vectorised XOR plus two gathers,
with no per-query Python and no ``log n`` factor. Blocks are indexed one after the other, so the index held at
any time is the hashes (8 B/item) + one block's values and order (8 B/item) + one table (4 * 2^w bytes; w <= 24).
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
    """How the bits are split: ``blocks`` are (shift, width) pairs; ``radius`` is the per-block probe radius."""

    max_distance: int
    blocks: tuple[tuple[int, int], ...]
    radius: int

    @property
    def probes(self) -> int:
        return sum(n_masks(w, self.radius) for _, w in self.blocks)


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


def plan(n: int, max_distance: int, bits: int = HASH_BITS, max_table_bits: int = MAX_TABLE_BITS) -> Plan:
    """Pick ``(m, r)`` with ``m * (r + 1) > t`` minimising ``probes * (n + expected candidates per probe)``
    under uniformly random hashes (real perceptual hashes cluster more, which only adds candidates)."""
    t = int(max_distance)
    if not 0 <= t < bits:
        raise ValueError(f"max_distance must be in [0, {bits - 1}], got {max_distance!r}")
    best: tuple[float, Plan] | None = None
    for m in range(1, bits + 1):
        blocks = split_bits(m, bits)
        if max(w for _, w in blocks) > max_table_bits:
            continue
        r = -(-(t + 1) // m) - 1  # smallest r with m * (r + 1) > t
        cost = 0.0
        for _, w in blocks:
            if r >= w:
                cost = math.inf
                break
            cost += n_masks(w, r) * (n + _PROBE_OVERHEAD + n * n / 2.0**w)
        if best is None or cost < best[0]:
            best = (cost, Plan(t, blocks, r))
    assert best is not None
    return best[1]


def probe_masks(width: int, radius: int) -> np.ndarray:
    """All ``width``-bit masks with at most ``radius`` bits set (0 first), as uint32."""
    masks = [0]
    for k in range(1, radius + 1):
        for combo in itertools.combinations(range(width), k):
            masks.append(sum(1 << b for b in combo))
    return np.asarray(masks, dtype=np.uint32)


def _block_table(values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR bucket table of one block: item indices sorted by value, and each value's start offset."""
    order = np.argsort(values, kind="stable").astype(np.int32)
    counts = np.bincount(values, minlength=1 << width)
    starts = np.zeros((1 << width) + 1, dtype=np.int32)
    np.cumsum(counts, out=starts[1:])
    return order, starts


def index_bytes(n: int, p: Plan) -> int:
    """Bytes of index structures held at once: the hashes, and for the current block its sorted values, sorted
    hashes, order and bucket table (per-probe temporaries come on top; the benchmark measures the peak)."""
    widest = max(w for _, w in p.blocks)
    return 8 * n + (4 + 8 + 4) * n + 4 * ((1 << widest) + 1)


def near_pairs(hashes, max_distance: int, p: Plan | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` with ``popcount(h[i] ^ h[j]) <= max_distance``.

    ``hashes``: int64 or uint64 array. Returns ``(i, j, distance)`` (int64 arrays) sorted by ``(i, j)``."""
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
    for shift, width in p.blocks:
        values = ((h >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.uint32)
        order, starts = _block_table(values, width)
        # Work in sorted order: queries then walk the table almost sequentially (XOR with a mask keeps the
        # high bits), and candidates are contiguous runs, so the gathers below stay cache-friendly.
        sv = values[order]
        del values
        hs = h[order]
        ends = starts[1:]
        for mask in probe_masks(width, p.radius):
            q = sv ^ mask if mask else sv
            lo = starts[q]
            cnt = ends[q] - lo
            del q
            qi = np.flatnonzero(cnt > 1 if mask == 0 else cnt)  # mask 0: a hash always finds itself
            if qi.size == 0:
                continue
            c = cnt[qi]
            start = lo[qi]
            del lo, cnt
            single = c == 1
            if single.all():  # the common case for sparse tables: one candidate per hit, no expansion
                qpos, cpos = qi, start
            else:
                total = int(c.sum())
                first = np.cumsum(c) - c  # where each query's run begins in the expanded arrays
                cpos = np.arange(total, dtype=np.int64) + np.repeat(start.astype(np.int64) - first, c)
                qpos = np.repeat(qi, c)
            close = np.bitwise_count(hs[qpos] ^ hs[cpos]) <= max_distance
            if mask == 0:
                close &= qpos != cpos
            if close.any():
                a = order[qpos[close]]
                b = order[cpos[close]]
                found_i.append(np.minimum(a, b))  # each pair is found from both ends: normalised, then unique
                found_j.append(np.maximum(a, b))
        del sv, hs, order, starts, ends
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
