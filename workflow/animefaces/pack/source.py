"""What every pack format reads: the final dataset table written by ``select``, the class table, and the images.

Images are read in dataset order by a small thread pool (Pillow releases the GIL while decoding), each file's
sha256 is checked against the one ``select`` recorded, and every image must be an ``S x S`` 8-bit RGB picture
with the same ``S`` for the whole dataset.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .. import classtable
from ..classtable import class_names
from ..parallel import ordered_map

DATASET_COLUMNS = ["item_id", "path", "label", "character", "sha256"]


class PackError(RuntimeError):
    """A dataset that cannot be packed; the message names the item, file or config key to fix."""


@dataclass(frozen=True)
class SourceImage:
    """One decoded dataset image and the bytes of its file (``rgb`` is H x W x 3 uint8)."""

    item_id: str
    path: str
    data: bytes
    rgb: np.ndarray | None


def load_dataset(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The dataset table written by ``select`` (item_id, path, label, character, sha256, ...), in pack order."""
    if not Path(path).is_file():
        raise PackError(f"{path}: dataset table not found (run the select step first: snakemake --until select)")
    df = pd.read_parquet(path)
    missing = [c for c in DATASET_COLUMNS if c not in df.columns]
    if missing:
        raise PackError(f"{path}: dataset table lacks columns {missing} (was it written by `animefaces select`?)")
    if len(df) == 0:
        raise PackError(
            f"{path}: the dataset is empty; nothing to pack. Check select.exclude_file and the select.* class "
            "filters, and the funnel (`animefaces funnel RES`) for where the items were dropped."
        )
    df = df.reset_index(drop=True)
    df["label"] = df["label"].astype("int64")
    if (df["label"] < 0).any():
        bad = df.loc[df["label"] < 0, "item_id"].iloc[0]
        raise PackError(f"{path}: negative label for item {bad!r}")
    return df


def read_classes(path: str | os.PathLike[str] | None) -> dict[int, str]:
    """``classes.tsv`` as {class_id: name}; label 0 is always '(unlabelled)'."""
    return class_names(classtable.read_classes(path, PackError))


def png_rgb8_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) if ``data`` is a PNG storing 8-bit truecolour RGB without alpha (what a GAN loader reads
    as a 3-channel uint8 array as is), else None."""
    if len(data) < 33 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    bit_depth, colour_type = data[24], data[25]
    if bit_depth != 8 or colour_type != 2:
        return None
    return width, height


def decode_rgb(data: bytes, where: str) -> np.ndarray:
    """Decode image bytes to H x W x 3 uint8 RGB the way a GAN data loader does (Pillow, no colour management)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.mode not in {"RGB", "L", "P"}:
                raise PackError(f"{where}: image mode {im.mode} is not 8-bit RGB; normalise should have converted it")
            if im.mode != "RGB":
                im = im.convert("RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except PackError:
        raise
    except Exception as exc:  # Pillow raises many types for a damaged file
        raise PackError(f"{where}: cannot decode image: {exc}") from exc
    return arr


def read_source(item_id: str, path: str, sha256: str | None, decode: bool = True) -> SourceImage:
    """Read one dataset file, check its sha256 against the dataset table, and decode it (unless ``decode`` is
    False, used when the file's bytes are copied as they are)."""
    where = f"item {item_id} ({path})"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PackError(f"{where}: cannot read the normalised image: {exc}. Rerun the workflow (normalise).") from exc
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise PackError(
            f"{where}: file content changed after select (sha256 mismatch). Rerun with `--forcerun select`."
        )
    return SourceImage(item_id, path, data, decode_rgb(data, where) if decode else None)


def iter_sources(
    items: pd.DataFrame, order: Sequence[int] | None = None, threads: int = 1, decode: bool = True
) -> Iterator[SourceImage]:
    """Read (and decode) the dataset's images in ``order`` (row positions; default: table order)."""
    ids = items["item_id"].astype(str).tolist()
    paths = items["path"].astype(str).tolist()
    shas = items["sha256"].astype("string").fillna("").tolist()
    rows = range(len(items)) if order is None else order

    def one(i: int) -> SourceImage:
        return read_source(ids[i], paths[i], shas[i], decode)

    return ordered_map(one, rows, threads)


def first_size(items: pd.DataFrame) -> int:
    """The dataset's resolution, from its first image."""
    (first,) = list(iter_sources(items.iloc[:1], threads=1))
    assert first.rgb is not None
    return int(first.rgb.shape[0])


def check_square(img: np.ndarray, size: int | None, where: str) -> int:
    """The side length of an ``S x S x 3`` image; raise if it differs from ``size`` (when given)."""
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != img.shape[1]:
        raise PackError(f"{where}: expected a square RGB image, got shape {img.shape}; packs need S x S images")
    if size is not None and img.shape[0] != size:
        raise PackError(f"{where}: image is {img.shape[0]}x{img.shape[1]}, the dataset's first image {size}x{size}")
    return int(img.shape[0])


def iter_arrays(sources: Iterable[SourceImage]) -> Iterator[np.ndarray]:
    """The decoded arrays of ``sources``, all checked to be ``S x S x 3`` with one ``S``."""
    size = None
    for src in sources:
        assert src.rgb is not None
        size = check_square(src.rgb, size, f"item {src.item_id} ({src.path})")
        yield src.rgb


def batched_chw(arrays: Iterable[np.ndarray], batch: int) -> Iterator[np.ndarray]:
    """Stack ``batch`` consecutive H x W x 3 arrays into one contiguous (B, 3, H, W) array, transposing while
    copying (one copy per image); the last batch may be short."""
    buf: np.ndarray | None = None
    n = 0
    for arr in arrays:
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise PackError(f"expected an H x W x 3 image, got shape {arr.shape}")
        if buf is None:
            buf = np.empty((batch, 3, arr.shape[0], arr.shape[1]), dtype=np.uint8)
        if arr.shape[:2] != buf.shape[2:]:
            raise PackError(f"image shape {arr.shape} differs from the first image's {buf.shape[2:]}")
        buf[n] = arr.transpose(2, 0, 1)
        n += 1
        if n == batch:
            yield buf
            buf, n = None, 0
    if buf is not None and n:
        yield buf[:n]


def box_downscale(imgs: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks of uint8 N x C x S x S images, rounded half up (training readers)."""
    if factor == 1:
        return imgs
    n, c, h, w = imgs.shape
    x = imgs.reshape(n, c, h // factor, factor, w // factor, factor).astype(np.float32)
    return np.floor(x.mean(axis=(3, 5)) + 0.5).clip(0, 255).astype(np.uint8)


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a written file (or directory entry) to disk before it is renamed into place."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
