"""Tiny synthetic packs and settings shared by tests/test_train*.py and tests/test_sample*.py (plus their self-test)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

# A model small enough to train a few steps per second on one CPU thread, exercising every code path
# (lazy R1 and path length, style mixing, ADA + DiffAugment, mirroring, EMA ramp-up).
TINY = {
    "preset": "tiny",
    "device": "cpu",
    "gpus": 0,
    "resolution": 16,
    "z_dim": 16,
    "w_dim": 16,
    "map_layers": 2,
    "channel_base": 128,
    "channel_max": 16,
    "batch": 8,
    "kimg": 0.096,  # 12 steps
    "kimg_per_tick": 0.016,  # 2 steps per tick
    "snap": 1,
    "keep_snapshots": 3,
    "d_reg_interval": 2,
    "g_reg_interval": 2,
    "r1_gamma": 1.0,
    "pl_weight": 1.0,
    "style_mixing": 0.5,
    "augment": "ada+diffaugment",
    "aug_p": 0.2,
    "ada_interval": 2,
    "ada_kimg": 0.5,
    "ema_kimg": 0.05,
    "grid_rows": 2,
    "grid_cols": 4,
    "deterministic": True,
    "threads": 1,
}


def blob_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 N x 3 x S x S: a coloured disc on a flat background (cheap stand-in for face crops)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    imgs = np.zeros((n, 3, size, size), np.uint8)
    for i in range(n):
        cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
        fg, bg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        for c in range(3):
            imgs[i, c] = np.where(disc, fg[c], bg[c])
    return imgs


def write_h5(path: Path, imgs: np.ndarray, labels: np.ndarray | None = None) -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset("imgs", data=imgs, chunks=(min(8, len(imgs)), *imgs.shape[1:]))
        f["labels"] = np.zeros(len(imgs), np.int64) if labels is None else labels.astype(np.int64)
    return path


def write_zip(path: Path, imgs: np.ndarray, labels: np.ndarray | None = None) -> Path:
    """The stylegan2-ada layout: 00000/img00000000.png ... + dataset.json."""
    names = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, img in enumerate(imgs):
            name = f"{i // 1000:05d}/img{i:08d}.png"
            buf = io.BytesIO()
            Image.fromarray(img.transpose(1, 2, 0)).save(buf, format="PNG")
            zf.writestr(name, buf.getvalue())
            names.append(name)
        meta = {"labels": None if labels is None else [[n, int(c)] for n, c in zip(names, labels, strict=True)]}
        zf.writestr("dataset.json", json.dumps(meta))
    return path


def test_fixture_packs_hold_what_was_written(tmp_path):
    imgs = blob_images(5, 8, seed=1)
    labels = np.array([0, 1, 2, 1, 0])
    with h5py.File(write_h5(tmp_path / "a.h5", imgs, labels), "r") as f:
        assert np.array_equal(f["imgs"][3], imgs[3]) and int(f["labels"][3]) == 1
    with zipfile.ZipFile(write_zip(tmp_path / "a.zip", imgs, labels)) as zf:
        assert "00000/img00000004.png" in zf.namelist()
        assert json.loads(zf.read("dataset.json"))["labels"][2] == ["00000/img00000002.png", 2]
        back = np.asarray(Image.open(io.BytesIO(zf.read("00000/img00000004.png")))).transpose(2, 0, 1)
        assert np.array_equal(back, imgs[4])
