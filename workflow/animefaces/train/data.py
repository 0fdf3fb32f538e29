"""Training data: the HDF5 pack (``imgs`` uint8 N x 3 x S x S, ``labels`` int64 N) or a stylegan2-ada zip.

The pack's format (by its suffix, :func:`animefaces.pack.formats.format_of_path`) supplies the reader.
Images are decoded/read once into one uint8 tensor when they fit in ``train.data_memory_gb`` (optionally
box-downscaled to the training resolution on the way); larger packs are read batch-wise by the format's
``read_rows`` (HDF5 rows; zip images decoded per batch), in the loader's worker processes (``loader``).
Batches come from :class:`BatchSampler`: epoch-wise
random permutations drawn from a seeded ``torch.Generator`` whose state (with the permutation and position) is
saved in snapshots, so a resumed run draws exactly the same batches.

Labels: the packs store integer class ids (0 = unlabelled, see CONTRIBUTING); conditioning uses one-hot vectors
of size ``max(label) + 1``. A zip's ``dataset.json`` may also hold label vectors (used as they are).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..pack.formats import PackImages, format_of_path


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
        read_rows: Callable[[np.ndarray], np.ndarray] | None = None,
        count: int | None = None,
    ) -> None:
        self.path = path
        self.images = images
        self.source_resolution = source_resolution
        self.resolution = resolution
        self._read_rows = read_rows
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
        assert self._read_rows is not None
        order = np.argsort(idx.numpy(), kind="stable")
        sorted_idx = idx.numpy()[order]
        uniq, inverse = np.unique(sorted_idx, return_inverse=True)
        block = self._read_rows(uniq)
        out = np.empty((len(idx), *block.shape[1:]), dtype=np.uint8)
        out[order] = block[inverse]
        return torch.from_numpy(out)

    def class_counts(self) -> list[int] | None:
        """Images per class id (integer labels only; None for unlabelled data or label vectors)."""
        if self.raw_labels is None or self.raw_labels.ndim != 1 or not len(self.raw_labels):
            return None
        return [int(n) for n in np.bincount(self.raw_labels.astype(np.int64), minlength=self.num_classes)]

    def labels_for(self, idx: Tensor, c_dim: int) -> Tensor:
        if c_dim == 0:
            return torch.zeros(len(idx), 0)
        return self.label_vectors.index_select(0, idx)


def _pack_path(path: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(f"training data {path} does not exist (build the pack first: snakemake --until pack)")
    return path


def probe(path: str) -> tuple[int, int, int]:
    """(count, resolution S, num_classes) of a pack without loading the images."""
    return format_of_path(_pack_path(path)).code().probe(path)


def open_dataset(path: str, resolution: int | None = None, max_memory_gb: float = 8.0) -> ImageData:
    """The pack at ``path`` (a trainable registered format), box-downscaled to ``resolution``."""
    loaded: PackImages = format_of_path(_pack_path(path)).code().load_for_training(path, resolution, max_memory_gb)
    images = None if loaded.images is None else torch.from_numpy(loaded.images)
    return ImageData(
        path, images, loaded.labels, loaded.source_resolution, loaded.resolution, loaded.read_rows, loaded.count
    )


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
    """uint8 [B,3,H,W] -> float32 in [-1, 1] (``/ 127.5 - 1``), horizontally mirrored where ``flips``.

    Runs on the images' device (the loader moves uint8); in place after the one conversion, and only the flipped
    images are mirrored (2-3x faster on the CPU than a full mirrored copy + select, same values bit for bit).
    """
    x = images_u8.float().div_(127.5).sub_(1.0)
    if flips.any():
        sel = flips.nonzero().flatten().to(x.device, non_blocking=True)
        x.index_copy_(0, sel, x.index_select(0, sel).flip(3))
    return x
