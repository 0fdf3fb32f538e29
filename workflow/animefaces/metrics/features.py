"""Feature extractors for the metrics: a registry of named extractors, each mapping uint8 images to features.

- ``rand``: the offline proxy. A small convolutional network whose weights are drawn once from numpy's legacy
  Mersenne Twister (``RandomState(seed)``, identical on every machine, OS and torch version) and never trained.
  Features: the global mean of every stage's activations (32 + 64 + 128 + 256 = 480 values). Distances on such
  features are a *proxy* (random-feature statistics; cf. Naeem et al. 2020 on randomly initialised embeddings for
  evaluating generative models): they rank models trained on the same data, they are NOT FID and are not
  comparable with any published number. Metric names: ``rand-fd``, ``rand-kid``.
- ``inception``: the standard FID/KID feature extractor, the 2048-d pool features of the TensorFlow Inception-v3
  graph ``inception-2015-12-05`` as the TorchScript file the StyleGAN2-ADA reference uses (see
  :mod:`animefaces.metrics.inception`). Metric names: ``fid``, ``kid``.

An extractor takes uint8 images ``[N, 3, H, W]`` (a CPU tensor) and returns float64 numpy features ``[N, D]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


class FeatureExtractor(Protocol):
    name: str
    dim: int

    def __call__(self, images: Tensor) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


RAND_SEED = 20260101
RAND_WIDTHS = (32, 64, 128, 256)


class RandomConvFeatures:
    """The proxy extractor: conv3x3 stages (stride 1, then stride 2) with leaky ReLU, He-scaled Gaussian weights
    drawn from ``numpy.random.RandomState(seed)``; features = per-stage global average of the activations.

    Input: uint8 images at any resolution >= 16 px, mapped to [-1, 1] exactly as the training data is. The
    network is fully convolutional, so distances depend on the resolution the images are compared at; callers
    compare both sets at one resolution (see :func:`animefaces.metrics.images.to_resolution`).
    """

    name = "rand"

    def __init__(self, seed: int = RAND_SEED, widths: tuple[int, ...] = RAND_WIDTHS) -> None:
        rng = np.random.RandomState(seed)
        self.seed, self.widths = seed, tuple(widths)
        self.weights: list[Tensor] = []
        self.biases: list[Tensor] = []
        cin = 3
        for cout in widths:
            w = rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))
            b = rng.standard_normal(cout) * 0.1
            self.weights.append(torch.from_numpy(w.astype(np.float32)))
            self.biases.append(torch.from_numpy(b.astype(np.float32)))
            cin = cout
        self.dim = int(sum(widths))

    @torch.no_grad()
    def activations(self, images: Tensor) -> Tensor:
        """float32 features [N, dim] of uint8 images [N, 3, H, W] (CPU)."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        if min(images.shape[2:]) < 16:
            raise ValueError(f"images must be at least 16 px for the proxy features, got {tuple(images.shape[2:])}")
        x = images.float() / 127.5 - 1.0
        feats = []
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = F.leaky_relu(F.conv2d(x, w, b, stride=1 if i == 0 else 2, padding=1), 0.2)
            feats.append(x.mean(dim=(2, 3)))
        return torch.cat(feats, dim=1)

    def __call__(self, images: Tensor) -> np.ndarray:
        return self.activations(images).double().numpy()

    def describe(self) -> dict[str, Any]:
        return {"extractor": "rand", "seed": self.seed, "widths": list(self.widths), "dim": self.dim}


def build_rand(**_: Any) -> RandomConvFeatures:
    return RandomConvFeatures()


def build_inception(inception_path: str | None = None, **kw: Any) -> FeatureExtractor:
    from .inception import InceptionFeatures

    return InceptionFeatures.load(inception_path, **kw)


EXTRACTORS: dict[str, Callable[..., FeatureExtractor]] = {"rand": build_rand, "inception": build_inception}

# metric name -> (extractor, statistic)
METRICS: dict[str, tuple[str, str]] = {
    "fid": ("inception", "fd"),
    "kid": ("inception", "kid"),
    "rand-fd": ("rand", "fd"),
    "rand-kid": ("rand", "kid"),
}


def check_metric_names(names: list[str], where: str = "metrics") -> None:
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"{where}: unknown metric(s) {unknown}; choose from {sorted(METRICS)}")


def extract(extractor: FeatureExtractor, images: np.ndarray | Tensor, batch: int = 256) -> np.ndarray:
    """Features of uint8 images ``[N, 3, H, W]`` in batches (CPU)."""
    t = torch.as_tensor(images)
    if len(t) == 0:
        return np.zeros((0, extractor.dim))
    return np.concatenate([extractor(t[i : i + batch]) for i in range(0, len(t), batch)])
