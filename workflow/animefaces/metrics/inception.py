"""The standard FID/KID features: Inception-v3 ``inception-2015-12-05`` as StyleGAN2-ADA's TorchScript detector.

Why not a library: ``torch-fidelity``, ``clean-fid`` and ``pytorch-fid`` all import ``torchvision``. The only
torchvision builds that can be installed here (PyPI) are linked against CUDA torch; with the pinned CPU wheel
``torch==2.13.0+cpu`` ``import torchvision`` fails (``libc10_cuda.so`` missing, ``torchvision::nms does not exist``),
and pip would otherwise replace torch by a multi-GB CUDA build. So no FID library is a dependency.

What we load instead is small and needs no architecture code of ours: the file
``inception-2015-12-05.pt`` (NVIDIA's TorchScript translation of TensorFlow's
``inception-2015-12-05.tgz``, the network of the original FID/KID code; used as is by stylegan2-ada-pytorch and
clean-fid). It is called exactly as the reference calls it: uint8 images ``[N, 3, H, W]`` of any size,
``detector(images, return_features=True)`` -> the 2048-d pool features; resizing to 299 px and scaling happen
inside the file. FIDs computed with it are therefore comparable with StyleGAN2-ADA's numbers for the same image
sets (the usual caveats of FID apply: number of images, resolution, preprocessing of the real set).

Obtaining the file (like the face cascade, :mod:`animefaces.resources`), first that works:

1. ``metrics.inception_path`` (config) / ``--inception-path``: a local copy, for machines without internet;
2. the cached copy at ``resources/inception-2015-12-05.pt``;
3. a download from the upstream URL into that cache.

The file's sha256 is NOT pinned by this project: it could not be obtained on the offline machine this was
written on. Every result records the sha256 of the file it used (``inception_sha256``), and setting
``metrics.inception_sha256`` pins it (every source is then checked and a mismatch is an error). Independently of
the checksum, a file is only accepted if it loads as TorchScript and returns ``[N, 2048]`` features for a probe
batch, so a wrong file fails with a message naming it instead of producing a meaningless number.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..resources import (
    ChecksumMismatch,
    ResourceError,
    SourceUnavailable,
    sha256_bytes,
    sha256_file,
    url_source,
)

log = logging.getLogger("animefaces.metrics")

INCEPTION_NAME = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
INCEPTION_CACHE = Path("resources") / INCEPTION_NAME
INCEPTION_DIM = 2048


class InceptionUnavailable(ResourceError):
    """The Inception file could not be found, downloaded, or loaded; the message says what was tried."""


def _jit_load(path: str | os.PathLike[str]) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript; loading works
        return torch.jit.load(str(path), map_location="cpu")


def check_detector(module: Any, where: str) -> None:
    """Raise InceptionUnavailable unless ``module(uint8 [2,3,64,64], return_features=True)`` is ``[2, 2048]``."""
    try:
        out = module(torch.zeros(2, 3, 64, 64, dtype=torch.uint8), return_features=True)
    except Exception as exc:  # noqa: BLE001 - any failure means "not the detector"
        raise InceptionUnavailable(
            f"{where}: does not behave like the FID Inception detector {INCEPTION_NAME} "
            f"(calling it with return_features=True failed: {type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(out, Tensor) or tuple(out.shape) != (2, INCEPTION_DIM):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise InceptionUnavailable(
            f"{where}: returns {shape} features, expected [N, {INCEPTION_DIM}]: not the FID Inception detector"
        )


def locate_inception(
    inception_path: str | None = None,
    cache: str | os.PathLike[str] = INCEPTION_CACHE,
    url: str | None = INCEPTION_URL,
    expected_sha256: str | None = None,
) -> Path:
    """The path of a usable Inception file: the configured one, else the cache, else downloaded into the cache.

    Raises InceptionUnavailable listing every source tried and what to do."""
    tried: list[str] = []

    def ok(path: Path, what: str, trusted: bool) -> bool:
        if expected_sha256 is None:
            return True
        actual = sha256_file(path)
        if actual == expected_sha256:
            return True
        err = ChecksumMismatch(f"{what} {path}", expected_sha256, actual)
        if trusted:
            raise InceptionUnavailable(str(err))
        tried.append(str(err))
        return False

    if inception_path:
        p = Path(inception_path)
        if not p.is_file():
            tried.append(f"config metrics.inception_path={p}: does not exist")
        elif ok(p, "config metrics.inception_path", trusted=True):
            return p
    cache = Path(cache)
    if cache.is_file():
        if ok(cache, "cached", trusted=False):
            return cache
    else:
        tried.append(f"cache {cache}: not there")
    if url:
        try:
            data = url_source(url).fetch()
        except SourceUnavailable as exc:
            tried.append(f"upstream {url}: {exc}")
        else:
            actual = sha256_bytes(data)
            if expected_sha256 is not None and actual != expected_sha256:
                tried.append(str(ChecksumMismatch(f"download {url}", expected_sha256, actual)))
            else:
                from ..atomic import write_bytes

                write_bytes(cache, data)
                log.info("%s downloaded from %s (%d bytes, sha256 %s)", cache, url, len(data), actual)
                return cache
    pin = f"sha256 {expected_sha256}" if expected_sha256 else "sha256 not pinned (set metrics.inception_sha256)"
    raise InceptionUnavailable(
        f"could not obtain the FID Inception weights {INCEPTION_NAME} ({pin}); sources tried:\n  "
        + "\n  ".join(tried)
        + f"\nDownload {url or INCEPTION_URL} on a machine with internet and set config key metrics.inception_path"
        f" (or --inception-path) to the file, or place it at {cache}. Without it, use the offline proxy metrics"
        " rand-fd / rand-kid (not FID)."
    )


class InceptionFeatures:
    """The FID Inception detector as a feature extractor: uint8 [N,3,H,W] -> float64 [N, 2048]."""

    name = "inception"
    dim = INCEPTION_DIM

    def __init__(self, module: Any, path: Path, device: str | torch.device = "cpu") -> None:
        self.module, self.path, self.device = module, path, torch.device(device)
        self.sha256 = sha256_file(path)

    @classmethod
    def load(
        cls,
        inception_path: str | None = None,
        cache: str | os.PathLike[str] = INCEPTION_CACHE,
        url: str | None = INCEPTION_URL,
        expected_sha256: str | None = None,
        device: str | torch.device = "cpu",
        **_: Any,
    ) -> InceptionFeatures:
        path = locate_inception(inception_path, cache, url, expected_sha256)
        try:
            module = _jit_load(path)
        except Exception as exc:  # noqa: BLE001 - a corrupt/foreign file: say which
            raise InceptionUnavailable(
                f"{path}: cannot be loaded as the TorchScript file {INCEPTION_NAME} ({type(exc).__name__}: {exc}); "
                f"download it again from {INCEPTION_URL}"
            ) from exc
        module.eval()
        check_detector(module, str(path))
        module.to(device)
        return cls(module, path, device)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> np.ndarray:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        out = self.module(images.to(self.device), return_features=True)
        return out.double().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {"extractor": "inception", "file": str(self.path), "inception_sha256": self.sha256, "dim": self.dim}
