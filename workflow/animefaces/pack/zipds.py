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
from .source import PackError, SourceImage, check_square, decode_rgb, fsync_path, png_rgb8_size

LABEL_MODES = ("auto", "always", "never")


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
