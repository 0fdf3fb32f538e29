"""Image sets for the metrics: folders, tar archives, our packs (.h5 / .zip), or a generator (snapshot/network).

Every source yields uint8 arrays ``[N, 3, R, R]``. When a source holds more images than asked for, a subset is
drawn with ``numpy.random.RandomState(seed)`` over the sorted file names (so the same call reads the same images
on every machine). Both sets of a comparison are brought to one resolution by :func:`to_resolution` (box filter
for integer downscale factors, as the training data loader does; antialiased bilinear otherwise).
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
PACK_EXTS = (".h5", ".hdf5", ".zip")
TAR_EXTS = (".tar", ".tar.gz", ".tgz")
NETWORK_EXTS = (".pt",)


def is_network(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(NETWORK_EXTS)


def pick_subset(count: int, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of ``limit`` of ``count`` items (all of them when limit is None or >= count)."""
    if limit is None or limit >= count:
        return np.arange(count)
    return np.sort(np.random.RandomState(seed).choice(count, limit, replace=False))


def to_resolution(images: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 [N, 3, H, W] -> uint8 [N, 3, R, R]: box average for an integer downscale, else antialiased bilinear."""
    n, _c, h, w = images.shape
    if h == w == resolution:
        return images
    if h == w and h % resolution == 0:
        f = h // resolution
        x = images.reshape(n, 3, resolution, f, resolution, f).astype(np.float32).mean(axis=(3, 5))
        return np.floor(x + 0.5).clip(0, 255).astype(np.uint8)
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


def _decode(data: bytes, name: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - PIL raises many types; name the file
        raise ValueError(f"{name}: not a readable image ({type(exc).__name__}: {exc})") from exc
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name}: {arr.shape[1]}x{arr.shape[0]} is not square; metrics compare square images")
    return arr.transpose(2, 0, 1)


def _stack(arrays: list[np.ndarray], resolution: int | None) -> np.ndarray:
    res = resolution or arrays[0].shape[1]
    return np.stack([to_resolution(a[None], res)[0] for a in arrays])


def load_folder(path: str | os.PathLike[str], limit=None, seed=0, resolution=None) -> np.ndarray:
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise ValueError(f"{root}: no image files ({', '.join(IMAGE_EXTS)}) in this folder")
    chosen = [files[i] for i in pick_subset(len(files), limit, seed)]
    return _stack([_decode(p.read_bytes(), str(p)) for p in chosen], resolution)


def load_tar(path: str | os.PathLike[str], limit=None, seed=0, resolution=None) -> np.ndarray:
    with tarfile.open(path) as tf:
        members = sorted(
            (m for m in tf.getmembers() if m.isfile() and m.name.lower().endswith(IMAGE_EXTS)), key=lambda m: m.name
        )
        if not members:
            raise ValueError(f"{path}: no image files in the archive")
        chosen = [members[i] for i in pick_subset(len(members), limit, seed)]
        arrays = [_decode(tf.extractfile(m).read(), f"{path}:{m.name}") for m in chosen]
    return _stack(arrays, resolution)


def load_pack(path: str | os.PathLike[str], limit=None, seed=0, resolution=None) -> np.ndarray:
    from ..train.data import open_dataset

    data = open_dataset(str(path))
    idx = torch.from_numpy(pick_subset(len(data), limit, seed))
    images = data.get(idx).numpy()
    return to_resolution(images, resolution) if resolution else images


def load_images(
    path: str | os.PathLike[str], limit: int | None = None, seed: int = 0, resolution: int | None = None
) -> np.ndarray:
    """uint8 [N, 3, R, R] from a folder, a .tar(.gz) of images, or an .h5/.zip pack (R = ``resolution``, or the
    images' own size)."""
    p = str(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"{p} does not exist (expected an image folder, a .tar of images or a pack)")
    low = p.lower()
    if os.path.isdir(p):
        return load_folder(p, limit, seed, resolution)
    if low.endswith(TAR_EXTS):
        return load_tar(p, limit, seed, resolution)
    if low.endswith(PACK_EXTS):
        return load_pack(p, limit, seed, resolution)
    raise ValueError(f"{p}: unsupported image source; use a folder, a .tar of images, or an .h5/.zip pack")


@torch.no_grad()
def generate_images(
    G: nn.Module,
    count: int,
    seed: int = 0,
    psi: float = 1.0,
    batch: int = 32,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """uint8 [count, 3, R, R] from ``G`` (seeds ``seed .. seed+count-1``; z from each seed alone, labels drawn
    per seed for conditional networks, constant noise). Never touches the global torch/numpy RNGs, so calling
    it during training leaves the run's random streams unchanged."""
    from ..sample import seeds_to_ws, synth

    seeds = list(range(seed, seed + count))
    out = []
    for i in range(0, count, batch):
        ws = seeds_to_ws(G, seeds[i : i + batch], psi, None, device)
        out.append(synth(G, ws, "const", batch))  # uint8 [B, H, W, 3]
    return np.concatenate(out).transpose(0, 3, 1, 2) if out else np.zeros((0, 3, G.resolution, G.resolution), np.uint8)
