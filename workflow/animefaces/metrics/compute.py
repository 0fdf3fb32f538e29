"""Metrics between two image sets: features from the registry, then Fréchet distance and/or KID.

Public entry points:

- :func:`compute` -- uint8 image arrays in, ``{metric: value}`` out;
- :func:`evaluate` -- paths in (a network ``.pt`` or any image source of :mod:`animefaces.metrics.images`), a
  result dict out (values + what was compared). Features of real sets given by path are cached in memory, so
  evaluating many snapshots against one real set decodes and embeds the reals once per process.

Result keys: ``fid``, ``kid`` (+ ``kid_std``) with Inception features; ``rand-fd``, ``rand-kid``
(+ ``rand-kid_std``) for the offline proxy -- never called FID.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .features import EXTRACTORS, METRICS, FeatureExtractor, check_metric_names, extract
from .images import generate_images, is_network, load_images
from .inception import INCEPTION_URL
from .stats import frechet_distance_features, kernel_distance

DEFAULT_METRICS = ("rand-fd", "rand-kid")
_EXTRACTOR_CACHE: dict[tuple, FeatureExtractor] = {}
_REAL_CACHE: dict[tuple, np.ndarray] = {}


def get_extractor(
    name: str,
    inception_path: str | None = None,
    inception_sha256: str | None = None,
    inception_url: str | None = INCEPTION_URL,
) -> FeatureExtractor:
    """A (process-wide cached) extractor from the registry; ``inception`` is located/loaded on first use."""
    if name not in EXTRACTORS:
        raise ValueError(f"unknown feature extractor {name!r}; choose from {sorted(EXTRACTORS)}")
    if name != "inception":
        key: tuple = (name,)
        kwargs = {}
    else:
        stamp = os.stat(inception_path).st_mtime_ns if inception_path and os.path.exists(inception_path) else 0
        key = (name, inception_path, stamp, inception_sha256, inception_url)
        kwargs = {"inception_path": inception_path, "expected_sha256": inception_sha256, "url": inception_url}
    if key not in _EXTRACTOR_CACHE:
        _EXTRACTOR_CACHE[key] = EXTRACTORS[name](**kwargs)
    return _EXTRACTOR_CACHE[key]


def metrics_from_features(
    real: np.ndarray,
    fake: np.ndarray,
    statistics: list[str],
    prefix: str,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    out: dict[str, float] = {}
    for stat in statistics:
        if stat == "fd":
            out["fid" if prefix == "" else f"{prefix}fd"] = frechet_distance_features(real, fake)
        elif stat == "kid":
            mean, std = kernel_distance(real, fake, kid_subsets, kid_subset_size, seed)
            key = f"{prefix}kid"
            out[key], out[f"{key}_std"] = mean, std
    return out


def _by_extractor(metrics: list[str]) -> dict[str, list[str]]:
    check_metric_names(list(metrics))
    groups: dict[str, list[str]] = {}
    for m in metrics:
        extractor, stat = METRICS[m]
        groups.setdefault(extractor, []).append(stat)
    return groups


def _prefix(extractor: str) -> str:
    return "" if extractor == "inception" else f"{extractor}-"


def compute(
    real: np.ndarray,
    fake: np.ndarray,
    metrics: list[str] | tuple[str, ...] = DEFAULT_METRICS,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    inception_path: str | None = None,
    inception_sha256: str | None = None,
    inception_url: str | None = INCEPTION_URL,
    real_features: dict[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """``{metric: value}`` between uint8 image arrays [N, 3, R, R] (both at one resolution).

    ``real_features`` (extractor name -> features) skips embedding the reals again (filled in when given empty).
    """
    out: dict[str, float] = {}
    for name, stats in _by_extractor(list(metrics)).items():
        ext = get_extractor(name, inception_path, inception_sha256, inception_url)
        if real_features is not None and name in real_features:
            fr = real_features[name]
        else:
            fr = extract(ext, real)
            if real_features is not None:
                real_features[name] = fr
        ff = extract(ext, fake)
        out.update(metrics_from_features(fr, ff, stats, _prefix(name), kid_subsets, kid_subset_size, seed))
    return out


def _real_features(real: str, limit: int, seed: int, resolution: int, ext: FeatureExtractor) -> np.ndarray:
    p = os.path.abspath(real)
    stamp = os.stat(p).st_mtime_ns if os.path.exists(p) else 0
    key = (p, stamp, limit, seed, resolution, id(ext))
    if key not in _REAL_CACHE:
        _REAL_CACHE[key] = extract(ext, load_images(real, limit, seed, resolution))
    return _REAL_CACHE[key]


def evaluate(
    fake: str | os.PathLike[str] | np.ndarray,
    real: str | os.PathLike[str] | np.ndarray,
    metrics: list[str] | tuple[str, ...] = DEFAULT_METRICS,
    *,
    num_fake: int = 2000,
    num_real: int = 2000,
    seed: int = 0,
    resolution: int | None = None,
    psi: float = 1.0,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    inception_path: str | None = None,
    inception_sha256: str | None = None,
    inception_url: str | None = INCEPTION_URL,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Metrics of ``fake`` (a network/snapshot ``.pt``, an image folder, a .tar of images, a pack, or a uint8
    array) against ``real`` (the same kinds but a network), e.g.::

        evaluate("results/x/train/snapshots/snapshot-0000050.000.pt", "../shared/data/getchu_faces_64.tar")

    Both sets are compared at one resolution: the network's, else ``resolution``, else the fake images' size.
    ``num_fake`` images are generated (seeds ``seed ..``) or drawn from a source, ``num_real`` drawn from the reals
    (seeded subsets, see :func:`animefaces.metrics.images.pick_subset`). Returns the metric values plus ``kimg``
    (for snapshots), ``num_real``, ``num_fake``, ``resolution``, ``seconds`` and the extractors' descriptions.
    """
    t0 = time.perf_counter()
    if not metrics:
        raise ValueError("no metrics asked for; choose from " + ", ".join(sorted(METRICS)))
    groups = _by_extractor(list(metrics))
    info: dict[str, Any] = {}
    if isinstance(fake, np.ndarray):
        fake_images = fake if resolution is None else _resize(fake, resolution)
        info["fake"] = "<array>"
    elif is_network(fake):
        from ..train.checkpoint import load_generator

        G, meta = load_generator(fake, device)
        if resolution not in (None, G.resolution):
            raise ValueError(f"{fake} generates {G.resolution} px images; resolution={resolution} cannot be used")
        fake_images = generate_images(G, num_fake, seed=seed, psi=psi, device=device)
        info.update(fake=str(fake), kimg=network_kimg(fake, meta), psi=psi)
    else:
        fake_images = load_images(fake, num_fake, seed, resolution)
        info["fake"] = str(fake)
    res = int(fake_images.shape[-1])
    out: dict[str, Any] = {}
    extractors = {}
    for name, stats in groups.items():
        ext = get_extractor(name, inception_path, inception_sha256, inception_url)
        extractors[name] = ext.describe()
        if isinstance(real, np.ndarray):
            fr = extract(ext, _resize(real, res))
            n_real = len(real)
        else:
            if is_network(real):
                raise ValueError(f"{real}: the real set must be images (a folder, .tar or pack), not a network")
            fr = _real_features(str(real), num_real, seed, res, ext)
            n_real = len(fr)
        ff = extract(ext, fake_images)
        out.update(metrics_from_features(fr, ff, stats, _prefix(name), kid_subsets, kid_subset_size, seed))
    info["real"] = "<array>" if isinstance(real, np.ndarray) else str(real)
    out.update(
        info,
        num_real=n_real,
        num_fake=int(len(fake_images)),
        resolution=res,
        seconds=round(time.perf_counter() - t0, 3),
        extractors=extractors,
    )
    return out


def _resize(images: np.ndarray, resolution: int) -> np.ndarray:
    from .images import to_resolution

    return to_resolution(images, resolution)


def network_kimg(path: str | os.PathLike[str], meta: dict[str, Any]) -> float | None:
    """Training progress of a network file: ``kimg`` (network-final.pt), the counters' images shown (snapshots),
    else the ``snapshot-<kimg>.pt`` file name; None when none of these is there."""
    if meta.get("kimg") is not None:
        return float(meta["kimg"])
    counters = meta.get("counters")
    if isinstance(counters, dict) and "nimg" in counters:
        return int(counters["nimg"]) / 1000
    stem = Path(path).stem
    if stem.startswith("snapshot-"):
        try:
            return float(stem.split("-", 1)[1])
        except ValueError:
            return None
    return None
