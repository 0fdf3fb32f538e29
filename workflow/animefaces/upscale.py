"""Upscaling of small face crops before normalisation (the seed ran waifu2x 2x, repeatedly, on small faces).

:func:`upscale_factor` says how much: a crop whose width *and* height are both below the target size gets 2x,
doubled again while both sides stay below, up to ``max_factor`` (a power of two; 1 disables upscaling).

Backends share one interface, :class:`Upscaler` (``upscale(rgb, factor) -> rgb``), and a registry by name
(:data:`UPSCALERS`, :func:`register`, :func:`make_upscaler`). ``lanczos`` (Pillow) is the default.
:class:`TorchUpscaler` is the base for torch backends (picks CUDA when available, moves tensors, runs under
``inference_mode``, repeats the model's scale and resamples down to the exact factor when it overshoots):

- ``torch_bicubic``: bicubic 2x steps (the GPU path without a model);
- ``learned``: the compact 2x net trained on this dataset's own large crops (:mod:`animefaces.upscale_net`,
  trained by :mod:`animefaces.upscale_train`; ``weights`` = its model file, RES/upscale/model.pt in the workflow);
- ``weights``: a user's ESRGAN / Real-ESRGAN / waifu2x-class ``.pth`` / ``.safetensors`` file, loaded through
  `spandrel <https://github.com/chaiNNer-org/spandrel>`_ (which detects the architecture from the state dict; no
  network definitions are written here). spandrel imports torchvision, so this backend needs torch + torchvision +
  spandrel (the ``upscale`` extra / ``envs/upscale.yaml``); a missing one is named in the error.

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
    [0, 1] to N x 3 x sH x sW, s = :attr:`scale`) and may override :meth:`forward`; the base handles conversion,
    repeats the model (learned SR models are trained for a fixed scale, as waifu2x was) and, when the model's scale
    overshoots the factor (a 4x model asked for 2x), resamples down with an antialiased area filter."""

    scale = 2

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
            rgb = np.ascontiguousarray(rgb)
            x = torch.from_numpy(rgb if rgb.flags.writeable else rgb.copy()).to(self.device)
            x = x.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
            h, w = x.shape[-2:]
            done = 1
            while done < factor:
                x = self.forward(x)
                done *= self.scale
            if done != factor:
                size = (h * factor, w * factor)
                x = torch.nn.functional.interpolate(x.clamp(0.0, 1.0), size=size, mode="area")
            x = x.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
            return x.squeeze(0).permute(1, 2, 0).cpu().numpy()


@register("torch_bicubic")
class TorchBicubicUpscaler(TorchUpscaler):
    """Bicubic 2x steps with ``torch.nn.functional.interpolate`` (antialias off: upsampling), on GPU if present."""

    def build(self) -> Callable:
        F = self.torch.nn.functional
        return lambda x: F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


@register("learned")
class LearnedUpscaler(TorchUpscaler):
    """The compact 2x net trained on this dataset's own large crops (``weights``: its model file)."""

    def __init__(self, device: str = "auto", weights: str = "", **kw: Any) -> None:
        if not weights:
            raise ValueError(
                "normalise.upscale.backend: learned needs the trained model file (RES/upscale/model.pt, written by "
                "`python -m animefaces.upscale_train`; normalise's --upscale-model)"
            )
        self.weights = str(weights)
        super().__init__(device, **kw)

    def build(self) -> Callable:
        try:
            from .upscale_net import load_model
        except ImportError as exc:  # torch: the vision env has none; the upscale env does
            raise RuntimeError(f"normalise.upscale.backend: learned needs PyTorch ({exc})") from exc
        net, self.meta = load_model(self.weights, self.device)
        return net


def import_spandrel() -> Any:
    """``spandrel``, or a RuntimeError saying which package is missing and how to get it."""
    try:
        import spandrel
    except ImportError as exc:  # spandrel itself, or torchvision (imported by two of its architectures)
        missing = getattr(exc, "name", None) or str(exc)
        raise RuntimeError(
            f"normalise.upscale.backend: weights loads user models through spandrel, which could not be imported "
            f"({missing!r} missing: {exc}). Install the upscale extra (pip install 'animefaces[upscale]': spandrel, "
            "einops, safetensors, and a torchvision matching your torch) or use envs/upscale.yaml"
        ) from exc
    except RuntimeError as exc:  # a torchvision built for another torch ('operator torchvision::nms does not exist')
        raise RuntimeError(
            f"normalise.upscale.backend: weights loads user models through spandrel, whose import failed: {exc}. "
            "torchvision must be the build matching your torch (same version pair, same CPU/CUDA variant)"
        ) from exc
    return spandrel


def load_user_weights(path: str, device: Any = "cpu") -> Any:
    """A spandrel image-model descriptor (3 -> 3 channels, super-resolution) from a user's weights file."""
    from pathlib import Path

    if not path:
        raise ValueError(
            "normalise.upscale.backend: weights needs normalise.upscale.weights (a .pth/.safetensors file)"
        )
    if not Path(path).is_file():
        raise FileNotFoundError(f"normalise.upscale.weights: {path} does not exist")
    spandrel = import_spandrel()
    try:
        model = spandrel.ModelLoader(device=device).load_from_file(path)
    except OSError:
        raise  # a fault of the machine (I/O error, the file vanished): fail as it is, never as 'cannot load it'
    except Exception as exc:
        raise ValueError(
            f"normalise.upscale.weights: {path}: spandrel cannot load it ({type(exc).__name__}: {exc}); supported "
            "architectures: https://github.com/chaiNNer-org/spandrel#model-architecture-support"
        ) from exc
    if not isinstance(model, spandrel.ImageModelDescriptor):
        raise ValueError(f"normalise.upscale.weights: {path} is a {type(model).__name__}, not an image upscaler")
    if model.input_channels != 3 or model.output_channels != 3 or model.scale < 2:
        raise ValueError(
            f"normalise.upscale.weights: {path} is a {model.architecture.name} model with {model.input_channels} -> "
            f"{model.output_channels} channels at scale {model.scale}; an RGB upscaler (scale >= 2) is needed"
        )
    return model.eval()


@register("weights")
class UserWeightsUpscaler(TorchUpscaler):
    """A user's ESRGAN/Real-ESRGAN/waifu2x-class weights through spandrel (``weights``: the file)."""

    def __init__(self, device: str = "auto", weights: str = "", **kw: Any) -> None:
        self.weights = str(weights)
        super().__init__(device, **kw)

    def build(self) -> Callable:
        model = load_user_weights(self.weights, self.device)
        self.scale = int(model.scale)
        self.architecture = model.architecture.name
        return model
