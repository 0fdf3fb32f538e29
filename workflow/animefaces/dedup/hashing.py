"""Content hashes used for duplicate detection: exact (decoded pixels, file bytes) and perceptual (64-bit).

Perceptual hashes are 64-bit fingerprints (8 x 8 bits from :mod:`imagehash`) packed row-major, first bit most
significant, into an unsigned integer; manifests store them as int64 (the same 64 bits, two's complement) because
Parquet and pandas have no portable uint64 column. :func:`as_uint64` turns a column back into unsigned words.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

import imagehash
import numpy as np
from PIL import Image

HASH_BITS = 64
_HASH_SIZE = 8  # 8 x 8 = 64 bits

# The registry of perceptual hashes (``dedup.hash``): name -> function of a PIL image returning 64 hash bits
# (anything with a boolean ``.hash`` array of 8 x 8, as imagehash returns). Adding one: a
# register_perceptual_hash line here and the name in the schema's dedup.hash enum.
PERCEPTUAL_HASHES: dict[str, Callable[[Image.Image], imagehash.ImageHash]] = {}


def register_perceptual_hash(name: str, fn: Callable[[Image.Image], imagehash.ImageHash]) -> None:
    PERCEPTUAL_HASHES[name] = fn


register_perceptual_hash("phash", functools.partial(imagehash.phash, hash_size=_HASH_SIZE))
register_perceptual_hash("dhash", functools.partial(imagehash.dhash, hash_size=_HASH_SIZE))
register_perceptual_hash("whash", functools.partial(imagehash.whash, hash_size=_HASH_SIZE))
register_perceptual_hash("ahash", functools.partial(imagehash.average_hash, hash_size=_HASH_SIZE))


def pixel_sha256(rgb: np.ndarray) -> str:
    """SHA-256 of decoded pixels plus their shape: re-encodings with identical pixels get the same digest."""
    arr = np.ascontiguousarray(rgb)
    h = hashlib.sha256(f"{arr.dtype.str}:{'x'.join(map(str, arr.shape))}:".encode())
    h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bits_to_int(bits: np.ndarray) -> int:
    """Pack a boolean hash array (row-major, first element = most significant bit) into an unsigned int."""
    flat = np.asarray(bits, dtype=bool).ravel()
    if flat.size != HASH_BITS:
        raise ValueError(f"expected {HASH_BITS} hash bits, got {flat.size}")
    return int.from_bytes(np.packbits(flat).tobytes(), "big")


def to_int64(value: int) -> int:
    """The unsigned 64-bit hash as the signed int64 with the same bits (for storage)."""
    return value - (1 << 64) if value >= (1 << 63) else value


def perceptual_hash(rgb: np.ndarray | Image.Image, method: str = "phash") -> int:
    """64-bit perceptual hash of an RGB image as a signed int64 (same bits as the unsigned hash)."""
    try:
        fn = PERCEPTUAL_HASHES[method]
    except KeyError:
        raise ValueError(f"unknown perceptual hash {method!r}; choose one of {sorted(PERCEPTUAL_HASHES)}") from None
    im = rgb if isinstance(rgb, Image.Image) else Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    return to_int64(bits_to_int(fn(im).hash))


THUMB_SIZE = 16  # 16 x 16 RGB block means: 768 bytes, stored as 1536 hex digits
_THUMB_HEX = THUMB_SIZE * THUMB_SIZE * 3 * 2
# central crops tried when aligning two thumbnails (fraction of the side kept): copies cropped 2-3% per side
ZOOMS = (0.98, 0.96, 0.94, 0.92)
# a copy keeps at least this share (and at most its inverse) of the other's colourfulness; below it the copy
# is drained of colour (a greyscale version): another picture, not a recolouring
MIN_CHROMA_RATIO = 0.5
_CHROMA_FLOOR = 6.0
# a pair is a mirror when the mirrored fit is this much better (symmetric faces fit both ways about equally)
MIRROR_FACTOR = 0.5  # levels of chroma RMS below which a picture counts as nearly grey (ratio not meaningful)


def colour_thumb(rgb: np.ndarray) -> str:
    """Hex string of the ``16 x 16`` RGB block means (box filter): the colour signature dedup verifies with.

    Perceptual hashes see luminance only, so two pictures with the same line art and different colours (colour
    variants, or procedurally drawn faces of one character) look identical to them; :func:`colour_residual`
    compares these thumbnails up to a global colour transform."""
    im = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    return np.asarray(im.resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BOX), dtype=np.uint8).tobytes().hex()


def thumb_array(hexes) -> np.ndarray:
    """``(n, 16, 16, 3)`` float array of stored colour thumbnails (ValueError naming the fix for old ones)."""
    out = np.zeros((len(hexes), THUMB_SIZE, THUMB_SIZE, 3))
    for k, x in enumerate(hexes):
        if len(x) != _THUMB_HEX:
            raise ValueError(
                f"colour thumbnail of {len(x) // 2} bytes, expected {_THUMB_HEX // 2} (16x16 RGB): the clean "
                "manifests predate the current dedup check; rerun the clean stage"
            )
        out[k] = np.frombuffer(bytes.fromhex(x), dtype=np.uint8).reshape(THUMB_SIZE, THUMB_SIZE, 3)
    return out


def _luma_chroma(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Luma (0-255) and chroma as complex Cb + i*Cr (levels) of ``(m, h, w, 3)`` RGB floats, as ``(m, h*w)``."""
    t = t.reshape(len(t), -1, 3)
    r, g, b = t[..., 0], t[..., 1], t[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return y, (b - y) * 0.564 + 1j * (r - y) * 0.713


def _fit_residuals(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean colour distance (levels) between thumbnails ``b[k]`` and the best global colour transform of ``a[k]``.

    The transform: luma' = quadratic in luma + linear in chroma (brightness, contrast, gamma, and the luma change
    of a hue shift); chroma' = w * chroma with one complex gain w (hue rotation and saturation). No chroma offset:
    with one, any picture of two dominant colours (skin and one background) could be recoloured at will, and
    colour variants of one line art would pass. Local recolouring (other hair, clothes or background while skin
    and lines stay) has no such global transform and leaves a large residual. Batched least squares (normal
    equations with a tiny ridge) over the first axis."""
    ya, za = _luma_chroma(a)
    yb, zb = _luma_chroma(b)
    yn = ya / 255.0
    x = np.stack([np.ones_like(yn), yn, yn * yn, za.real / 255.0, za.imag / 255.0], -1)  # (m, n, 5)
    xtx = np.einsum("mni,mnj->mij", x, x) + 1e-6 * np.eye(5)
    coef = np.linalg.solve(xtx, np.einsum("mni,mn->mi", x, yb)[..., None])[..., 0]
    ry = yb - np.einsum("mni,mi->mn", x, coef)
    zz = np.einsum("mn,mn->m", za.conj(), za).real
    w = np.where(zz > 1e-9, np.einsum("mn,mn->m", za.conj(), zb) / np.maximum(zz, 1e-9), 0)
    rz = zb - w[:, None] * za
    return np.mean(np.sqrt(ry**2 + np.abs(rz) ** 2), axis=1)


def _zoom_matrix(keep: float) -> np.ndarray:
    """1-D linear-interpolation matrix that resamples the central ``keep`` fraction of ``THUMB_SIZE`` samples back
    to ``THUMB_SIZE`` (pixel centres mapped like PIL's resize with a box)."""
    c = (1 - keep) / 2 * THUMB_SIZE
    pos = c + (np.arange(THUMB_SIZE) + 0.5) * keep - 0.5  # source coordinate of each output centre
    pos = np.clip(pos, 0, THUMB_SIZE - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, THUMB_SIZE - 1)
    frac = pos - lo
    m = np.zeros((THUMB_SIZE, THUMB_SIZE))
    m[np.arange(THUMB_SIZE), lo] += 1 - frac
    m[np.arange(THUMB_SIZE), hi] += frac
    return m


_ZOOM_MATRICES = [_zoom_matrix(k) for k in ZOOMS]


def _views(t: np.ndarray) -> np.ndarray:
    """A thumbnail and its central crops (``ZOOMS``): ``(1 + len(ZOOMS), 16, 16, 3)``."""
    return np.stack([t] + [np.einsum("ij,jkc,lk->ilc", m, t, m) for m in _ZOOM_MATRICES])


def _aligned_residuals(va: np.ndarray, vb: np.ndarray) -> np.ndarray:
    """For pairs given by their views ``(m, v, 16, 16, 3)``: the symmetric residual (worse of both directions),
    minimised over the alignments (both uncropped, or one side cropped by one of ``ZOOMS``)."""
    m, v = va.shape[:2]
    # alignment k: (a view, b view) = (0, 0), (z, 0) and (0, z) for every zoom z
    ia = np.array([0] + list(range(1, v)) + [0] * (v - 1))
    ib = np.array([0] + [0] * (v - 1) + list(range(1, v)))
    a = va[:, ia].reshape(-1, THUMB_SIZE, THUMB_SIZE, 3)
    b = vb[:, ib].reshape(-1, THUMB_SIZE, THUMB_SIZE, 3)
    both = np.maximum(_fit_residuals(a, b), _fit_residuals(b, a)).reshape(m, len(ia))
    return both.min(axis=1)


def _chroma_rms(t: np.ndarray) -> float:
    z = _luma_chroma(t[None])[1][0]
    return float(np.sqrt(np.mean(np.abs(z - z.mean()) ** 2)))


def colour_residual(a, b, chunk: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Verify hash-near pairs element-wise over two sequences of stored thumbnails.

    Returns ``(residual, mirrored, chroma_ratio)``: the residual (levels) after the best global colour transform
    and small-crop alignment; the same against the left-right mirror of ``a`` (a mirrored copy fits its mirror
    better than itself); and the colourfulness ratio (less colourful / more colourful; 1 for two near-grey
    pictures). :func:`same_picture` turns these into a decision. Each distinct thumbnail's views are computed
    once; the fits run batched, ``chunk`` pairs at a time."""
    a, b = list(a), list(b)
    views: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    for x in {*a, *b}:
        t = thumb_array([x])[0]
        views[x] = (_views(t), _views(np.ascontiguousarray(t[:, ::-1])), _chroma_rms(t))
    res = np.zeros(len(a))
    mir = np.zeros(len(a))
    ratio = np.ones(len(a))
    for s in range(0, len(a), chunk):
        pa, pb = a[s : s + chunk], b[s : s + chunk]
        vb = np.stack([views[x][0] for x in pb])
        res[s : s + chunk] = _aligned_residuals(np.stack([views[x][0] for x in pa]), vb)
        mir[s : s + chunk] = _aligned_residuals(np.stack([views[x][1] for x in pa]), vb)
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        ca, cb = views[x][2], views[y][2]
        if max(ca, cb) >= _CHROMA_FLOOR:
            ratio[k] = min(ca, cb) / max(ca, cb)
    return res, mir, ratio


def same_picture(residual, mirrored, chroma_ratio, max_residual: float) -> np.ndarray:
    """The verification decision for :func:`colour_residual`'s output: within ``max_residual``, not a better
    fit mirrored (by ``MIRROR_FACTOR``), and not drained of colour."""
    residual, mirrored, chroma_ratio = (np.asarray(x, dtype=float) for x in (residual, mirrored, chroma_ratio))
    return (residual <= max_residual) & ~(mirrored < MIRROR_FACTOR * residual) & (chroma_ratio >= MIN_CHROMA_RATIO)


def as_uint64(values) -> np.ndarray:
    """A column of stored (int64) hashes as a uint64 array (bit-identical view)."""
    arr = np.asarray(values)
    if arr.dtype == np.uint64:
        return np.ascontiguousarray(arr)
    return np.ascontiguousarray(arr.astype(np.int64, copy=False)).view(np.uint64)


def hamming(a, b) -> np.ndarray:
    """Element-wise Hamming distance between hash arrays (int64 or uint64)."""
    return np.bitwise_count(as_uint64(a) ^ as_uint64(b)).astype(np.int64)
