"""The training batch loader (animefaces.train.loader) and the on-demand pack readers (animefaces.train.data):
every path (in memory, HDF5 rows or zip images read per batch, 0 or 2 worker processes reading ahead) hands the
loop exactly the batches of the plain path, also after a resume from a saved sampler state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from animefaces.pack.hdf5 import _RowReader
from animefaces.pack.zipds import _ZipRows
from animefaces.train.data import BatchSampler, open_dataset, to_float
from animefaces.train.loader import BatchLoader, auto_workers
from test_train_fixtures import blob_images, write_h5, write_zip

COUNT, SIZE, BATCH, STEPS = 37, 32, 8, 7  # batches straddle epoch ends (37 is not a multiple of 8)


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    d = tmp_path_factory.mktemp("packs")
    imgs = blob_images(COUNT, SIZE, seed=3)
    labels = np.arange(COUNT) % 4
    return imgs, write_h5(d / "p.hdf5", imgs, labels), write_zip(d / "p.zip", imgs, labels)


def plain_batches(data, state: dict | None, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The plain path: sampler draw + index the images (what the loop did before the loader)."""
    sampler = BatchSampler(len(data), seed=5)
    if state is not None:
        sampler.load_state_dict(state)
    out = []
    for _ in range(steps):
        idx, flips = sampler.next(BATCH)
        out.append((data.get(idx), flips))
    return out


def expected(imgs: np.ndarray, resolution: int) -> torch.Tensor:
    f = SIZE // resolution
    x = imgs.reshape(COUNT, 3, resolution, f, resolution, f).astype(np.float32).mean(axis=(3, 5))
    return torch.from_numpy(np.floor(x + 0.5).astype(np.uint8))


@pytest.mark.parametrize("fmt", ["hdf5", "zip"])
@pytest.mark.parametrize("on_disk", [False, True], ids=["in_memory", "per_batch"])
def test_readers_give_the_packs_pixels(packs, fmt, on_disk):
    imgs, h5, zp = packs
    data = open_dataset(str(h5 if fmt == "hdf5" else zp), 16, max_memory_gb=1e-9 if on_disk else 1.0)
    assert data.in_memory is not on_disk and len(data) == COUNT and data.num_classes == 4
    if on_disk:
        assert isinstance(data._read_rows, _RowReader if fmt == "hdf5" else _ZipRows)
    idx = torch.tensor([5, 0, 36, 5, 17, 18, 19, 4, 35])  # unsorted, repeated, runs of consecutive rows
    assert torch.equal(data.get(idx), expected(imgs, 16)[idx])


@pytest.mark.parametrize(
    "fmt,on_disk,workers",
    [("hdf5", False, 0), ("hdf5", True, 0), ("hdf5", True, 2), ("zip", True, 2), ("zip", False, 0)],
)
def test_loader_batches_equal_the_plain_path_and_resume_exactly(packs, fmt, on_disk, workers):
    _, h5, zp = packs
    path = str(h5 if fmt == "hdf5" else zp)
    data = open_dataset(path, 16, max_memory_gb=1e-9 if on_disk else 1.0)
    ref = plain_batches(open_dataset(str(h5), 16), None, STEPS)

    sampler = BatchSampler(len(data), seed=5)
    loader = BatchLoader(data, sampler, BATCH, torch.device("cpu"), workers)
    assert loader.workers == workers
    global_rng = torch.get_rng_state()
    states = []
    for k in range(STEPS):
        states.append(sampler.state_dict())
        imgs, flips, idx = loader.next()
        assert imgs.dtype == torch.uint8 and imgs.shape == (BATCH, 3, 16, 16)
        assert torch.equal(imgs, ref[k][0]) and torch.equal(flips, ref[k][1]), f"step {k}"
    # starting workers draws nothing from the global RNG the training step uses
    assert torch.equal(torch.get_rng_state(), global_rng)
    loader.close()

    # resume at step 3 into a fresh sampler + loader (the loader started reading ahead before the state came in)
    sampler = BatchSampler(len(data), seed=5)
    loader = BatchLoader(data, sampler, BATCH, torch.device("cpu"), workers)
    loader.next()
    sampler.load_state_dict(states[3])
    loader.restart()
    for k in range(3, STEPS):
        imgs, flips, _ = loader.next()
        assert torch.equal(imgs, ref[k][0]) and torch.equal(flips, ref[k][1]), f"resumed step {k}"
    loader.close()


def test_loader_refuses_a_sampler_changed_behind_its_back(packs):
    _, h5, _ = packs
    data = open_dataset(str(h5), 16, max_memory_gb=1e-9)
    sampler = BatchSampler(len(data), seed=5)
    loader = BatchLoader(data, sampler, BATCH, torch.device("cpu"), workers=1)
    first = sampler.state_dict()
    loader.next()
    sampler.load_state_dict(first)  # no restart(): the read-ahead batches are now the wrong ones
    with pytest.raises(RuntimeError, match="restart"):
        loader.next()
    loader.close()


def test_auto_workers_and_device_conversion(monkeypatch):
    assert auto_workers(in_memory=True) == 0
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert 1 <= auto_workers(in_memory=False) <= 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1000")
    assert auto_workers(in_memory=False) == 1
    u8 = torch.tensor([[[[0, 255]]]], dtype=torch.uint8).expand(2, 3, 1, 2)
    x = to_float(u8, torch.tensor([False, True]))
    assert x.dtype == torch.float32 and x[0, 0, 0].tolist() == [-1.0, 1.0] and x[1, 0, 0].tolist() == [1.0, -1.0]
