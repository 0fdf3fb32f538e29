"""Zip pack for stylegan2-ada / stylegan3 (their ``ImageFolderDataset`` reads a zip directly).

Layout, as their ``dataset_tool.py`` writes it: an uncompressed (``ZIP_STORED``) archive of PNGs named
``00000/img00000000.png``, ``00000/img00000001.png``, ... (the folder is the first five digits of the 8-digit
index, so 1000 images per folder) and ``dataset.json`` = ``{"labels": [["00000/img00000000.png", class], ...]}``, or
``{"labels": null}`` for an unconditional dataset. Images are in dataset-table order.

A source file that already is an 8-bit RGB PNG is stored byte for byte (no re-encoding, the pixels are identical
by construction); anything else (JPEG, palette PNG, ...) is decoded and stored as a losslessly encoded PNG.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterable

import numpy as np
from PIL import Image

from ..atomic import atomic_path
from .formats import PackImages, PackJob, PackWritten
from .source import (
    PackError,
    SourceImage,
    box_downscale,
    check_square,
    decode_rgb,
    fsync_path,
    png_rgb8_size,
)

LABEL_MODES = ("auto", "always", "never")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")  # what stylegan2-ada's loader reads from a zip


def archive_name(index: int) -> str:
    """``00000/img00000000.png`` for index 0; a new folder every 1000 images."""
    idx = f"{index:08d}"
    return f"{idx[:5]}/img{idx}.png"


def want_labels(mode: str, labels: np.ndarray) -> bool:
    """Whether to store labels: ``always``, ``never``, or ``auto`` = when any item has a class (label != 0)."""
    if mode not in LABEL_MODES:
        raise PackError(f"labels mode must be one of {LABEL_MODES}, got {mode!r}")
    if mode == "auto":
        return bool(np.any(np.asarray(labels) != 0))
    return mode == "always"


def png_bytes(src: SourceImage, size: int | None) -> tuple[bytes, int]:
    """The PNG to store for ``src`` (its own bytes when they already are an 8-bit RGB PNG) and its side length."""
    where = f"item {src.item_id} ({src.path})"
    dims = png_rgb8_size(src.data)
    if dims is not None:
        if dims[0] != dims[1]:
            raise PackError(f"{where}: expected a square image, got {dims[0]}x{dims[1]}")
        side = dims[0]
        if size is not None and side != size:
            raise PackError(f"{where}: image is {side}x{side} but the dataset's first image is {size}x{size}")
        return src.data, side
    rgb = src.rgb if src.rgb is not None else decode_rgb(src.data, where)
    side = check_square(rgb, size, where)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue(), side


def write_zip(
    out: str | os.PathLike[str],
    sources: Iterable[SourceImage],
    labels: np.ndarray,
    label_mode: str = "auto",
    fsync: bool = True,
) -> tuple[int, int]:
    """Write the stylegan2-ada zip; returns (count, resolution)."""
    labels = np.asarray(labels, dtype=np.int64)
    with_labels = want_labels(label_mode, labels)
    names: list[str] = []
    size: int | None = None
    with atomic_path(out, suffix=".zip") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for i, src in enumerate(sources):
                data, size = png_bytes(src, size)
                name = archive_name(i)
                zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
                names.append(name)
            if len(names) != len(labels):
                raise PackError(f"{len(names)} images for {len(labels)} labels: dataset table and images disagree")
            meta = {"labels": [[n, int(lb)] for n, lb in zip(names, labels, strict=True)] if with_labels else None}
            zf.writestr(zipfile.ZipInfo("dataset.json", date_time=(1980, 1, 1, 0, 0, 0)), json.dumps(meta))
        if fsync:
            fsync_path(tmp)
    if size is None:
        raise PackError("no images to pack")
    return len(names), size


def write_pack(job: PackJob) -> PackWritten:
    """The ``zip`` pack of :mod:`animefaces.pack.formats`: dataset table order, source PNG bytes kept."""
    mode = job.options["labels"]
    _, size = write_zip(job.out, job.sources(decode=False), job.labels, mode)
    order = "dataset table order (RES/select/dataset.parquet rows)"
    return PackWritten(size, [job.out], want_labels(mode, job.labels), order)


def _image_names(zf: zipfile.ZipFile, path: str) -> list[str]:
    names = sorted(n for n in zf.namelist() if n.lower().endswith(IMAGE_EXTS))
    if not names:
        raise ValueError(f"{path}: no images in the zip")
    return names


def _decode_chw(data: bytes, where: str, size: int | None = None) -> np.ndarray:
    """One image file's bytes -> uint8 ``3 x S x S``; square, and ``size`` x ``size`` when given."""
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    if arr.shape[0] != arr.shape[1] or (size is not None and arr.shape[0] != size):
        raise ValueError(f"{where} is {arr.shape[1]}x{arr.shape[0]}; all images must be square, same size")
    return arr.transpose(2, 0, 1)


class _ZipRows:
    """Images ``names[rows]`` decoded and box-downscaled on demand. Picklable and fork-safe: each process (trainer,
    loader workers) opens its own zip handle (one inherited across fork would share the parent's file offset)."""

    def __init__(self, path: str, names: list[str], size: int, factor: int) -> None:
        self.path, self.names, self.size, self.factor = path, names, size, factor
        self._zf: zipfile.ZipFile | None = None
        self._pid = -1

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_zf": None, "_pid": -1}

    def close(self) -> None:
        if self._zf is not None and self._pid == os.getpid():
            self._zf.close()
        self._zf = None

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if self._zf is None or self._pid != os.getpid():
            self._zf, self._pid = zipfile.ZipFile(self.path), os.getpid()
        out = np.empty((len(rows), 3, self.size, self.size), dtype=np.uint8)
        for k, i in enumerate(np.asarray(rows).tolist()):
            out[k] = _decode_chw(self._zf.read(self.names[i]), f"{self.path}: {self.names[i]}", self.size)
        return box_downscale(out, self.factor)


def load_for_training(
    path: str, resolution: int | None = None, max_memory_gb: float = 8.0, threads: int = 4
) -> PackImages:
    """A stylegan2-ada zip: every image file (sorted by name), labels from ``dataset.json`` if present.

    Decoded into memory (``threads`` decoding in parallel: PIL releases the GIL) when the images need at most
    ``max_memory_gb`` GiB at the training resolution, else decoded per batch (``read_rows``, in the loader's
    worker processes).
    """
    from concurrent.futures import ThreadPoolExecutor

    with zipfile.ZipFile(path) as zf:
        names = _image_names(zf, path)
        label_map: dict | None = None
        if "dataset.json" in zf.namelist():
            meta = json.loads(zf.read("dataset.json"))
            if meta.get("labels") is not None:
                label_map = {name: value for name, value in meta["labels"]}
        src = _decode_chw(zf.read(names[0]), f"{path}: {names[0]}").shape[1]
    res = resolution or src
    labels = None
    if label_map is not None:
        missing = [n for n in names if n not in label_map]
        if missing:
            raise ValueError(f"{path}: dataset.json has no label for {missing[0]} ({len(missing)} images)")
        labels = np.asarray([label_map[n] for n in names])
    if len(names) * 3 * res * res > max_memory_gb * 2**30:
        return PackImages(len(names), src, res, labels, read_rows=_ZipRows(path, names, src, src // res))
    images = np.empty((len(names), 3, res, res), dtype=np.uint8)
    chunks = [np.arange(i, min(i + 64, len(names))) for i in range(0, len(names), 64)]
    threads = max(1, min(threads, len(chunks)))

    def fill(part: list[np.ndarray]) -> None:
        reader = _ZipRows(path, names, src, src // res)  # one zip handle per thread
        try:
            for rows in part:
                images[rows[0] : rows[-1] + 1] = reader(rows)
        finally:
            reader.close()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fill, [chunks[t::threads] for t in range(threads)]))
    return PackImages(len(names), src, res, labels, images=images)


def probe(path: str) -> tuple[int, int, int]:
    """(count, resolution, classes) reading only the first image and dataset.json."""
    with zipfile.ZipFile(path) as zf:
        names = _image_names(zf, path)
        with Image.open(io.BytesIO(zf.read(names[0]))) as im:
            s = im.size[0]
        classes = 0
        if "dataset.json" in zf.namelist():
            labels = json.loads(zf.read("dataset.json")).get("labels")
            if labels:
                values = np.asarray([v for _, v in labels])
                classes = int(values.max()) + 1 if values.ndim == 1 else int(values.shape[1])
    return len(names), s, classes
