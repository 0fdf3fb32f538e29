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
    """Luma (0-255) and chroma as complex Cb + i*Cr (levels) of an RGB float array, flattened."""
    r, g, b = t[..., 0].ravel(), t[..., 1].ravel(), t[..., 2].ravel()
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return y, (b - y) * 0.564 + 1j * (r - y) * 0.713


def _fit_residual(a: np.ndarray, b: np.ndarray) -> float:
    """Mean colour distance (levels) between thumbnail ``b`` and the best global colour transform of ``a``.

    The transform: luma' = quadratic in luma + linear in chroma (brightness, contrast, gamma, and the luma change
    of a hue shift); chroma' = w * chroma with one complex gain w (hue rotation and saturation). No chroma offset:
    with one, any picture of two dominant colours (skin and one background) could be recoloured at will, and
    colour variants of one line art would pass. Local recolouring (other hair, clothes or background while skin
    and lines stay) has no such global transform and leaves a large residual."""
    ya, za = _luma_chroma(a)
    yb, zb = _luma_chroma(b)
    yn = ya / 255.0
    xy = np.stack([np.ones_like(yn), yn, yn * yn, za.real / 255.0, za.imag / 255.0], 1)
    cy = np.linalg.lstsq(xy, yb, rcond=None)[0]
    zz = np.vdot(za, za).real
    w = np.vdot(za, zb) / zz if zz > 1e-9 else 0.0
    return float(np.mean(np.sqrt((yb - xy @ cy) ** 2 + np.abs(zb - w * za) ** 2)))


def _zoom(t: np.ndarray, keep: float) -> np.ndarray:
    """The central ``keep`` fraction of a thumbnail, resampled back to its size (bilinear)."""
    c = (1 - keep) / 2 * THUMB_SIZE
    box = (c, c, THUMB_SIZE - c, THUMB_SIZE - c)
    return np.stack(
        [
            np.asarray(
                Image.fromarray(t[..., k].astype(np.float32)).resize(
                    (THUMB_SIZE, THUMB_SIZE), Image.Resampling.BILINEAR, box=box
                )
            )
            for k in range(3)
        ],
        -1,
    ).astype(np.float64)


def _aligned_residual(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric residual (worse of both directions), minimised over small central crops of either side."""
    best = max(_fit_residual(a, b), _fit_residual(b, a))
    for keep in ZOOMS:
        za, zb = _zoom(a, keep), _zoom(b, keep)
        best = min(
            best, max(_fit_residual(za, b), _fit_residual(b, za)), max(_fit_residual(a, zb), _fit_residual(zb, a))
        )
    return best


def _chroma_rms(t: np.ndarray) -> float:
    z = _luma_chroma(t)[1]
    return float(np.sqrt(np.mean(np.abs(z - z.mean()) ** 2)))


def colour_residual(a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Verify hash-near pairs element-wise over two sequences of stored thumbnails.

    Returns ``(residual, mirrored, chroma_ratio)``: the residual (levels) after the best global colour transform
    and small-crop alignment; the same against the left-right mirror of ``a`` (a mirrored copy fits its mirror
    better than itself); and the colourfulness ratio (less colourful / more colourful; 1 for two near-grey
    pictures). :func:`same_picture` turns these into a decision."""
    ta, tb = thumb_array(list(a)), thumb_array(list(b))
    res = np.zeros(len(ta))
    mir = np.zeros(len(ta))
    ratio = np.ones(len(ta))
    for k in range(len(ta)):
        res[k] = _aligned_residual(ta[k], tb[k])
        mir[k] = _aligned_residual(ta[k][:, ::-1], tb[k])
        ca, cb = _chroma_rms(ta[k]), _chroma_rms(tb[k])
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
