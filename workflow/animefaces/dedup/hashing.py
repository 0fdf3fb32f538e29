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


THUMB_SIZE = 4  # 4 x 4 RGB block means: 48 bytes, stored as 96 hex digits


def colour_thumb(rgb: np.ndarray) -> str:
    """Hex string of the ``4 x 4`` RGB block means (box filter): a tiny colour signature.

    Perceptual hashes see luminance only, so two pictures with the same line art and different colours (colour
    variants, or procedurally drawn faces of one character) look identical to them; this signature tells them
    apart (:func:`colour_diff`)."""
    im = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    return np.asarray(im.resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BOX), dtype=np.uint8).tobytes().hex()


def colour_diff(a, b) -> np.ndarray:
    """Mean absolute difference (0-255 levels) between colour thumbnails, element-wise over two sequences."""
    ta = np.array([np.frombuffer(bytes.fromhex(x), dtype=np.uint8) for x in a], dtype=np.int16)
    tb = np.array([np.frombuffer(bytes.fromhex(x), dtype=np.uint8) for x in b], dtype=np.int16)
    if len(ta) == 0:
        return np.zeros(0)
    return np.abs(ta - tb).mean(axis=1)


def as_uint64(values) -> np.ndarray:
    """A column of stored (int64) hashes as a uint64 array (bit-identical view)."""
    arr = np.asarray(values)
    if arr.dtype == np.uint64:
        return np.ascontiguousarray(arr)
    return np.ascontiguousarray(arr.astype(np.int64, copy=False)).view(np.uint64)


def hamming(a, b) -> np.ndarray:
    """Element-wise Hamming distance between hash arrays (int64 or uint64)."""
    return np.bitwise_count(as_uint64(a) ^ as_uint64(b)).astype(np.int64)
