"""Batches for the training loop, read ahead of the GPU: uint8 to the device, float conversion and flips there.

:class:`BatchLoader` hands the loop ``(uint8 images on the device, flips, indices)`` for the sampler's next batch:

- data in memory: one gather straight into a pinned buffer (CUDA), copied with ``non_blocking``; the whole set is
  kept on the GPU instead when it takes under a quarter of its free memory;
- data read per batch (HDF5 rows, zip images decoded per batch): ``workers`` processes read and decode batches ahead
  (``torch.utils.data.DataLoader``, pinned on CUDA), so reading overlaps the training step.

The :class:`~animefaces.train.data.BatchSampler` stays the one source of truth, advanced only when the loop takes a
batch: the workers are fed by a copy of it that runs ahead, and every batch they return is checked against the
sampler's own draw. Snapshots therefore hold exactly the consumed position, and the batches, the flips and so
the training are the same, bit for bit, with 0 or N workers; after a resume call :meth:`BatchLoader.restart`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator

import torch
from torch import Tensor

from .data import BatchSampler, ImageData

MAX_AUTO_WORKERS = 8
PREFETCH_PER_WORKER = 2  # batches each worker keeps ready


def auto_workers(in_memory: bool) -> int:
    """Loader processes for ``train.loader_workers: null``: none when the data is in memory (a gather is ~1 ms),
    else the CPUs this process may use, shared among the node's training processes, less one for the trainer."""
    if in_memory:
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(MAX_AUTO_WORKERS, cpus // max(1, local) - 1))


class _ReadBatches(torch.utils.data.Dataset):
    """A dataset whose items are whole batches: the worker reads all of a batch's images in one call."""

    def __init__(self, data: ImageData) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitems__(self, idx: list[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(idx, dtype=torch.int64)
        return index, self.data.get(index)


def _as_is(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return batch


class _Lookahead:
    """The batch indices the sampler will draw, from a private copy of it (the DataLoader's batch sampler)."""

    def __init__(self, sampler: BatchSampler, batch: int) -> None:
        self.sampler, self.batch = copy.deepcopy(sampler), batch

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            yield self.sampler.next(self.batch)[0].tolist()


class BatchLoader:
    def __init__(
        self,
        data: ImageData,
        sampler: BatchSampler,
        batch: int,
        device: torch.device,
        workers: int | None = None,
    ) -> None:
        self.data, self.sampler, self.batch, self.device = data, sampler, batch, device
        self.workers = auto_workers(data.in_memory) if workers is None else int(workers)
        self.pin = device.type == "cuda"
        self.images_dev: Tensor | None = None
        if data.in_memory and device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(device)
            if data.images.numel() < 0.25 * free:
                self.images_dev = data.images.to(device)
        self._ahead: Iterator[tuple[Tensor, Tensor]] | None = None

    def describe(self) -> str:
        if self.images_dev is not None:
            return "loader: whole set on the GPU"
        how = (
            f"{self.workers} worker process(es), {PREFETCH_PER_WORKER} batches each ahead" if self.workers else "inline"
        )
        return f"loader: {'in memory' if self.data.in_memory else 'read per batch'}, {how}, pinned: {self.pin}"

    def restart(self) -> None:
        """Drop batches read ahead (after the sampler's state was replaced, e.g. on resume)."""
        self.close()

    def close(self) -> None:
        self._ahead = None  # the DataLoader iterator shuts its workers down when released

    def _start(self) -> Iterator[tuple[Tensor, Tensor]]:
        loader = torch.utils.data.DataLoader(
            _ReadBatches(self.data),
            batch_sampler=_Lookahead(self.sampler, self.batch),
            num_workers=self.workers,
            collate_fn=_as_is,
            pin_memory=self.pin,
            prefetch_factor=PREFETCH_PER_WORKER,
            # its own generator: the workers' base seed must not be drawn from the global RNG, which the training
            # step uses (latents, augmentation); the workers draw no random numbers
            generator=torch.Generator().manual_seed(0),
        )
        return iter(loader)

    def _gather(self, idx: Tensor) -> Tensor:
        if not self.data.in_memory:
            return self.data.get(idx)
        if not self.pin:
            return self.data.images.index_select(0, idx)
        # straight into pinned memory (caching host allocator: not reused before the async copy has run)
        out = torch.empty((len(idx), *self.data.images.shape[1:]), dtype=torch.uint8, pin_memory=True)
        return torch.index_select(self.data.images, 0, idx, out=out)

    def next(self) -> tuple[Tensor, Tensor, Tensor]:
        """(uint8 images [B, 3, R, R] on the device, flips [B] bool, indices [B]) of the sampler's next batch."""
        if self.workers and self.images_dev is None and self._ahead is None:
            self._ahead = self._start()  # the copy that runs ahead starts from the sampler's current state
        idx, flips = self.sampler.next(self.batch)
        if self.images_dev is not None:
            return self.images_dev.index_select(0, idx.to(self.device)), flips, idx
        if self.workers == 0:
            imgs = self._gather(idx)
        else:
            read_idx, imgs = next(self._ahead)
            if not torch.equal(read_idx, idx):
                raise RuntimeError(
                    "loader: the batch read ahead is not the sampler's next batch (its state changed without "
                    "BatchLoader.restart())"
                )
        return imgs.to(self.device, non_blocking=True), flips, idx
