"""HDF5 pack in the layout of BigGAN-PyTorch's ``make_hdf5.py`` (read by its ``ILSVRC_HDF5`` dataset):

- ``imgs``: uint8, ``N x 3 x S x S`` (CHW), chunked along N with chunk shape ``(chunk, 3, S, S)``;
- ``labels``: int64, ``N`` (chunk ``(chunk,)``);
- ``item_ids``: the dataset item id of each row (extra; BigGAN ignores it), for provenance.

The file is pre-sized from the dataset table (N is known) and written one chunk-aligned batch at a time, so memory
is ``chunk x 3 x S x S`` bytes whatever N is, and every write covers whole chunks (no read-modify-write through
HDF5's chunk cache) and no fill values are written first (``fill_time="never"``, 2.8x faster). Written to a
temporary name, fsynced, then renamed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import h5py
import numpy as np

from ..atomic import atomic_path
from ..config import fill_defaults
from .formats import PackImages, PackJob, PackWritten
from .source import PackError, batched_chw, box_downscale, first_size, fsync_path, iter_arrays

COMPRESSIONS = {"none": None, "lzf": "lzf", "gzip": "gzip"}
MAX_CHUNK_BYTES = 2**32 - 1  # HDF5's limit on one chunk


def chunk_rows(chunk: int, n: int, size: int) -> int:
    """Rows per chunk: the configured ``chunk`` capped at N and at HDF5's 4 GiB-per-chunk limit."""
    if chunk < 1:
        raise PackError(f"pack.hdf5.chunk must be >= 1, got {chunk}")
    rows = min(int(chunk), n, max(1, MAX_CHUNK_BYTES // (3 * size * size)))
    return max(1, rows)


def write_hdf5(
    out: str | os.PathLike[str],
    images: Iterable[np.ndarray],
    labels: np.ndarray,
    size: int,
    item_ids: list[str] | None = None,
    chunk: int | None = None,
    compression: str | None = None,
    fsync: bool = True,
) -> int:
    """Write ``len(labels)`` images (each ``size x size x 3`` uint8 HWC, in order) to ``out``; return the count.
    ``chunk``/``compression`` left out: the schema's ``pack.hdf5`` defaults."""
    default = fill_defaults({}, "pack")["hdf5"]
    chunk = default["chunk"] if chunk is None else chunk
    compression = default["compression"] if compression is None else compression
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if n == 0:
        raise PackError("no images to pack")
    if compression not in COMPRESSIONS:
        raise PackError(f"pack.hdf5.compression must be one of {sorted(COMPRESSIONS)}, got {compression!r}")
    rows = chunk_rows(chunk, n, size)
    filt = COMPRESSIONS[compression]
    written = 0
    with atomic_path(out, suffix=".hdf5") as tmp:
        with h5py.File(tmp, "w") as f:
            imgs = f.create_dataset(
                "imgs",
                shape=(n, 3, size, size),
                dtype=np.uint8,
                chunks=(rows, 3, size, size),
                compression=filt,
                fill_time="never",  # every chunk is written in full; pre-filling with zeros would double the I/O
            )
            for chw in batched_chw(images, rows):
                end = written + len(chw)
                if end > n:
                    raise PackError(f"more images than labels ({n}): the dataset table and the images disagree")
                if chw.shape[1:] != (3, size, size):
                    raise PackError(f"images are {chw.shape[2]}x{chw.shape[3]}, expected {size}x{size}")
                imgs.write_direct(chw, dest_sel=np.s_[written:end])
                written = end
            if written != n:
                raise PackError(f"only {written} images for {n} labels: the dataset table and the images disagree")
            f.create_dataset("labels", data=labels, dtype=np.int64, chunks=(rows,), compression=filt)
            if item_ids is not None:
                f.create_dataset("item_ids", data=np.array(item_ids, dtype=object), dtype=h5py.string_dtype())
        if fsync:
            fsync_path(tmp)
    return written


def write_pack(job: PackJob) -> PackWritten:
    """The ``hdf5`` pack of :mod:`animefaces.pack.formats`: dataset table order, labels always stored."""
    size = first_size(job.items)
    write_hdf5(
        job.out,
        iter_arrays(job.sources()),
        job.labels,
        size,
        item_ids=job.items["item_id"].astype(str).tolist(),
        chunk=job.options["chunk"],
        compression=job.options["compression"],
    )
    return PackWritten(size, [job.out], True, "dataset table order (RES/select/dataset.parquet rows)")


def _check_square(path: str, shape: tuple[int, ...]) -> int:
    if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3]:
        raise ValueError(f"{path}: 'imgs' must be uint8 N x 3 x S x S, got shape {shape}")
    return int(shape[2])


def load_for_training(
    path: str, resolution: int | None = None, max_memory_gb: float = 8.0, chunk: int = 1024
) -> PackImages:
    """The pack in memory (box-downscaled to ``resolution``), or read row-wise when larger than ``max_memory_gb``."""
    with h5py.File(path, "r") as f:
        if "imgs" not in f:
            raise ValueError(f"{path}: no 'imgs' dataset (expected the HDF5 pack layout: imgs N x 3 x S x S uint8)")
        ds = f["imgs"]
        if ds.dtype != np.uint8:
            raise ValueError(f"{path}: 'imgs' must be uint8, got {ds.dtype}")
        src = _check_square(path, ds.shape)
        res = resolution or src
        n = ds.shape[0]
        if n == 0:
            raise ValueError(f"{path}: the pack holds no images")
        labels = np.asarray(f["labels"][:]) if "labels" in f else None
        if n * 3 * res * res > max_memory_gb * 2**30:
            return PackImages(n, src, res, labels, read_rows=_RowReader(path, src // res))
        images = np.empty((n, 3, res, res), dtype=np.uint8)
        for start in range(0, n, chunk):
            images[start : start + chunk] = box_downscale(ds[start : start + chunk], src // res)
    return PackImages(n, src, res, labels, images=images)


class _RowReader:
    """Rows of a large pack on demand (sorted unique indices): each run of consecutive rows is one hyperslab
    ``read_direct`` (h5py fancy indexing, ``ds[rows]``, costs ~50x more per image on the chunked pack: the loader
    benchmark in BENCHMARKS.md). Picklable and fork-safe: each process (trainer, loader workers) opens its own
    handle (one inherited across fork would share the parent's file offset)."""

    def __init__(self, path: str, factor: int) -> None:
        self.path, self.factor, self._h5, self._pid = path, factor, None, -1

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_h5": None, "_pid": -1}

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if self._h5 is None or self._pid != os.getpid():
            self._h5, self._pid = h5py.File(self.path, "r"), os.getpid()
        ds = self._h5["imgs"]
        block = np.empty((len(rows), *ds.shape[1:]), dtype=np.uint8)
        starts = np.flatnonzero(np.diff(rows, prepend=-2) != 1)  # where a run of consecutive rows begins
        for a, b in zip(starts, [*starts[1:], len(rows)], strict=True):
            ds.read_direct(block, np.s_[rows[a] : rows[b - 1] + 1], np.s_[a:b])
        return box_downscale(block, self.factor)


def probe(path: str) -> tuple[int, int, int]:
    """(count, resolution, classes) without reading the images."""
    with h5py.File(path, "r") as f:
        if "imgs" not in f:
            raise ValueError(f"{path}: no 'imgs' dataset")
        s = _check_square(path, f["imgs"].shape)
        labels = np.asarray(f["labels"][:]) if "labels" in f else None
        classes = int(labels.max()) + 1 if labels is not None and len(labels) else 0
        return int(f["imgs"].shape[0]), s, classes
