"""Upscaling of small face crops before normalisation (the seed ran waifu2x 2x, repeatedly, on small faces).

:func:`upscale_factor` says how much: a crop whose width *and* height are both below the target size gets 2x,
doubled again while both sides stay below, up to ``max_factor`` (a power of two; 1 disables upscaling).

Backends share one interface, :class:`Upscaler` (``upscale(rgb, factor) -> rgb``), and a registry by name
(:data:`UPSCALERS`, :func:`register`, :func:`make_upscaler`). ``lanczos`` (Pillow) is the default. ``torch_bicubic``
shows the GPU path: :class:`TorchUpscaler` is the base for torch backends (picks CUDA when available, moves
tensors, runs under ``inference_mode``); a learned anime super-resolution model (waifu2x/Real-ESRGAN-style) is
added by subclassing it, loading its checksummed weights in :meth:`TorchUpscaler.build`, and registering it.
torch is optional for the vision env: it is imported only when a torch backend is built.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from .device import resolve_device

UPSCALERS: dict[str, type[Upscaler]] = {}


def register(name: str) -> Callable[[type[Upscaler]], type[Upscaler]]:
    """Class decorator: make a backend available as ``normalise.upscale.backend: <name>``."""

    def deco(cls: type[Upscaler]) -> type[Upscaler]:
        if name in UPSCALERS and UPSCALERS[name] is not cls:
            raise ValueError(f"upscaler {name!r} registered twice")
        cls.name = name
        UPSCALERS[name] = cls
        return cls

    return deco


def make_upscaler(name: str, **options: Any) -> Upscaler:
    try:
        cls = UPSCALERS[name]
    except KeyError:
        raise ValueError(
            f"normalise.upscale.backend: unknown upscaler {name!r}; available: {sorted(UPSCALERS)}"
        ) from None
    return cls(**options)


def upscale_factor(width: int, height: int, target: int, max_factor: int) -> int:
    """2x while both sides are below ``target``, up to ``max_factor`` (1 = never upscale)."""
    factor = 1
    while width * factor < target and height * factor < target and factor * 2 <= max_factor:
        factor *= 2
    return factor


class Upscaler(ABC):
    """``upscale(rgb, factor)``: H x W x 3 uint8 -> (H*factor) x (W*factor) x 3 uint8, factor a power of two."""

    name = "?"

    def upscale(self, rgb: np.ndarray, factor: int) -> np.ndarray:
        if factor == 1:
            return rgb
        if factor < 1 or factor & (factor - 1):
            raise ValueError(f"upscale factor must be a power of two >= 1, got {factor}")
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an H x W x 3 uint8 array, got {rgb.shape} {rgb.dtype}")
        out = self._upscale(rgb, factor)
        h, w = rgb.shape[:2]
        if out.shape != (h * factor, w * factor, 3) or out.dtype != np.uint8:
            raise RuntimeError(f"upscaler {self.name} returned {out.shape} {out.dtype} for {rgb.shape} x{factor}")
        return out

    @abstractmethod
    def _upscale(self, rgb: np.ndarray, factor: int) -> np.ndarray: ...


@register("lanczos")
class LanczosUpscaler(Upscaler):
    """Pillow's Lanczos (a = 3) resampling: no model, CPU, deterministic."""

    def __init__(self, **_: Any) -> None:
        pass

    def _upscale(self, rgb: np.ndarray, factor: int) -> np.ndarray:
        h, w = rgb.shape[:2]
        im = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
        return np.asarray(im.resize((w * factor, h * factor), Image.Resampling.LANCZOS), dtype=np.uint8)


class TorchUpscaler(Upscaler):
    """Base for torch backends: ``device`` "auto" (CUDA if available, else CPU), "cpu" or "cuda[:n]".

    Subclasses implement :meth:`build` (return an ``nn.Module`` or callable mapping N x 3 x H x W float tensors in
    [0, 1] to N x 3 x 2H x 2W) and may override :meth:`forward`; the base handles conversion and repeats 2x steps
    (learned SR models are trained for a fixed scale, as waifu2x was)."""

    def __init__(self, device: str = "auto", **_: Any) -> None:
        try:
            import torch
        except ImportError as exc:  # torch is an optional extra of the vision env
            raise RuntimeError(
                f"upscaler {self.name!r} needs PyTorch; install torch or use normalise.upscale.backend: lanczos"
            ) from exc
        self.torch = torch
        self.device = resolve_device(device, key="normalise.upscale.device")
        self.model = self.build()

    def build(self) -> Callable:
        raise NotImplementedError

    def forward(self, x):
        return self.model(x)

    def _upscale(self, rgb: np.ndarray, factor: int) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device)
            x = x.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
            while factor > 1:
                x = self.forward(x)
                factor //= 2
            x = x.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
            return x.squeeze(0).permute(1, 2, 0).cpu().numpy()


@register("torch_bicubic")
class TorchBicubicUpscaler(TorchUpscaler):
    """Bicubic 2x steps with ``torch.nn.functional.interpolate`` (antialias off: upsampling), on GPU if present."""

    def build(self) -> Callable:
        F = self.torch.nn.functional
        return lambda x: F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
