"""Training data: the HDF5 pack (``imgs`` uint8 N x 3 x S x S, ``labels`` int64 N) or a stylegan2-ada zip.

Images are decoded/read once into one uint8 tensor when they fit in ``train.data_memory_gb`` (optionally
box-downscaled to the training resolution on the way); larger HDF5 packs are read batch-wise (sorted fancy
indexing on the chunked dataset). No per-step PIL decoding. Batches come from :class:`BatchSampler`: epoch-wise
random permutations drawn from a seeded ``torch.Generator`` whose state (with the permutation and position) is
saved in snapshots, so a resumed run draws exactly the same batches.

Labels: the packs store integer class ids (0 = unlabelled, see CONTRIBUTING); conditioning uses one-hot vectors
of size ``max(label) + 1``. A zip's ``dataset.json`` may also hold label vectors (used as they are).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def box_downscale(imgs: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks of uint8 N x C x S x S images, rounded half up."""
    if factor == 1:
        return imgs
    n, c, h, w = imgs.shape
    x = imgs.reshape(n, c, h // factor, factor, w // factor, factor).astype(np.float32)
    return np.floor(x.mean(axis=(3, 5)) + 0.5).clip(0, 255).astype(np.uint8)


def labels_to_onehot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels.astype(np.int64)] = 1.0
    return out


class ImageData:
    """Images (uint8, in memory or read on demand from HDF5) + float32 label vectors ``[N, c_dim]``."""

    def __init__(
        self,
        path: str,
        images: Tensor | None,
        labels: np.ndarray | None,
        source_resolution: int,
        resolution: int,
        h5_path: str | None = None,
        count: int | None = None,
    ) -> None:
        self.path = path
        self.images = images
        self.source_resolution = source_resolution
        self.resolution = resolution
        self._h5_path = h5_path
        self._h5 = None
        self.count = int(images.shape[0] if images is not None else count)
        self.raw_labels = labels
        self.num_classes = 0
        self.label_vectors: Tensor | None = None
        if labels is not None and len(labels):
            if labels.ndim == 1:
                if labels.min() < 0:
                    raise ValueError(f"{path}: negative class labels found; labels must be class ids >= 0")
                self.num_classes = int(labels.max()) + 1
                self.label_vectors = torch.from_numpy(labels_to_onehot(labels, self.num_classes))
            else:
                self.num_classes = int(labels.shape[1])
                self.label_vectors = torch.from_numpy(labels.astype(np.float32))

    def __len__(self) -> int:
        return self.count

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def get(self, idx: Tensor) -> Tensor:
        """uint8 images [B, 3, R, R] for indices ``idx`` (CPU tensor)."""
        if self.images is not None:
            return self.images.index_select(0, idx)
        import h5py

        if self._h5 is None:
            self._h5 = h5py.File(self._h5_path, "r")
        order = np.argsort(idx.numpy(), kind="stable")
        sorted_idx = idx.numpy()[order]
        uniq, inverse = np.unique(sorted_idx, return_inverse=True)
        block = box_downscale(self._h5["imgs"][uniq], self.source_resolution // self.resolution)
        out = np.empty((len(idx), *block.shape[1:]), dtype=np.uint8)
        out[order] = block[inverse]
        return torch.from_numpy(out)

    def labels_for(self, idx: Tensor, c_dim: int) -> Tensor:
        if c_dim == 0:
            return torch.zeros(len(idx), 0)
        return self.label_vectors.index_select(0, idx)


def _check_square(path: str, shape: tuple[int, ...]) -> int:
    if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3]:
        raise ValueError(f"{path}: 'imgs' must be uint8 N x 3 x S x S, got shape {shape}")
    return int(shape[2])


def load_hdf5(path: str, resolution: int | None = None, max_memory_gb: float = 8.0, chunk: int = 1024) -> ImageData:
    import h5py

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
        nbytes = n * 3 * res * res
        if nbytes > max_memory_gb * 2**30:
            return ImageData(path, None, labels, src, res, h5_path=path, count=n)
        images = np.empty((n, 3, res, res), dtype=np.uint8)
        for start in range(0, n, chunk):
            images[start : start + chunk] = box_downscale(ds[start : start + chunk], src // res)
    return ImageData(path, torch.from_numpy(images), labels, src, res)


def load_zip(path: str, resolution: int | None = None) -> ImageData:
    """A stylegan2-ada zip: every image file (sorted by name), labels from ``dataset.json`` if present."""
    from PIL import Image

    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith(IMAGE_EXTS))
        if not names:
            raise ValueError(f"{path}: no images in the zip")
        label_map: dict[str, Any] | None = None
        if "dataset.json" in zf.namelist():
            meta = json.loads(zf.read("dataset.json"))
            if meta.get("labels") is not None:
                label_map = {name: value for name, value in meta["labels"]}
        arrays = []
        src = None
        for name in names:
            with Image.open(io.BytesIO(zf.read(name))) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            if arr.shape[0] != arr.shape[1] or (src is not None and arr.shape[0] != src):
                raise ValueError(
                    f"{path}: {name} is {arr.shape[1]}x{arr.shape[0]}; all images must be square, same size"
                )
            src = arr.shape[0]
            arrays.append(arr.transpose(2, 0, 1))
    res = resolution or src
    images = box_downscale(np.stack(arrays), src // res)
    labels = None
    if label_map is not None:
        missing = [n for n in names if n not in label_map]
        if missing:
            raise ValueError(f"{path}: dataset.json has no label for {missing[0]} ({len(missing)} images)")
        labels = np.asarray([label_map[n] for n in names])
    return ImageData(path, torch.from_numpy(images), labels, src, res)


def probe(path: str) -> tuple[int, int, int]:
    """(count, resolution S, num_classes) of a pack without loading the images."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"training data {path} does not exist (build the pack first: snakemake --until pack)")
    if str(path).endswith((".h5", ".hdf5")):
        import h5py

        with h5py.File(path, "r") as f:
            if "imgs" not in f:
                raise ValueError(f"{path}: no 'imgs' dataset")
            s = _check_square(path, f["imgs"].shape)
            labels = np.asarray(f["labels"][:]) if "labels" in f else None
            classes = int(labels.max()) + 1 if labels is not None and len(labels) else 0
            return int(f["imgs"].shape[0]), s, classes
    from PIL import Image

    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith(IMAGE_EXTS))
        if not names:
            raise ValueError(f"{path}: no images in the zip")
        with Image.open(io.BytesIO(zf.read(names[0]))) as im:
            s = im.size[0]
        classes = 0
        if "dataset.json" in zf.namelist():
            labels = json.loads(zf.read("dataset.json")).get("labels")
            if labels:
                values = np.asarray([v for _, v in labels])
                classes = int(values.max()) + 1 if values.ndim == 1 else int(values.shape[1])
    return len(names), s, classes


def open_dataset(path: str, resolution: int | None = None, max_memory_gb: float = 8.0) -> ImageData:
    if not os.path.exists(path):
        raise FileNotFoundError(f"training data {path} does not exist (build the pack first: snakemake --until pack)")
    suffix = Path(path).suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return load_hdf5(path, resolution, max_memory_gb)
    if suffix == ".zip":
        return load_zip(path, resolution)
    raise ValueError(f"{path}: unsupported training data format {suffix!r}; use the .h5 or .zip pack")


class BatchSampler:
    """Epoch-wise random permutations from a seeded torch Generator; each DDP rank takes its share.

    The permutation generator is seeded identically on every rank (so the shares are disjoint); the mirror flips
    come from a per-rank generator.
    """

    def __init__(self, count: int, seed: int, rank: int = 0, world: int = 1, mirror: bool = True) -> None:
        self.count, self.rank, self.world, self.mirror = count, rank, world, mirror
        self.gen = torch.Generator().manual_seed(int(seed) * 1000003)
        self.flip_gen = torch.Generator().manual_seed(int(seed) * 1000003 + 1 + rank)
        self.perm = torch.empty(0, dtype=torch.int64)
        self.pos = 0
        self.epoch = 0

    def _new_epoch(self) -> None:
        perm = torch.randperm(self.count, generator=self.gen)
        self.perm = perm[self.rank :: self.world] if self.world > 1 and self.count >= self.world else perm
        self.pos = 0
        self.epoch += 1

    def next(self, batch: int) -> tuple[Tensor, Tensor]:
        """(indices [B], flip flags [B] bool)."""
        parts = []
        need = batch
        while need > 0:
            if self.pos >= len(self.perm):
                self._new_epoch()
            take = self.perm[self.pos : self.pos + need]
            self.pos += len(take)
            need -= len(take)
            parts.append(take)
        idx = torch.cat(parts)
        if self.mirror:
            flips = torch.rand(batch, generator=self.flip_gen) < 0.5
        else:
            flips = torch.zeros(batch, dtype=torch.bool)
        return idx, flips

    def state_dict(self) -> dict:
        return {
            "gen": self.gen.get_state(),
            "flip_gen": self.flip_gen.get_state(),
            "perm": self.perm.clone(),
            "pos": self.pos,
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.flip_gen.set_state(state["flip_gen"])
        self.perm = state["perm"].clone()
        self.pos = int(state["pos"])
        self.epoch = int(state["epoch"])


def to_float(images_u8: Tensor, flips: Tensor) -> Tensor:
    """uint8 [B,3,H,W] -> float32 in [-1, 1], horizontally mirrored where ``flips``."""
    x = images_u8.float() / 127.5 - 1.0
    if flips.any():
        flips = flips.to(x.device)
        x = torch.where(flips.reshape(-1, 1, 1, 1), x.flip(3), x)
    return x
