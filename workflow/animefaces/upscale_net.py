"""The learned 2x upscaler's network: a compact residual net with a pixel-shuffle output (ESPCN/EDSR-class).

``x`` (N x 3 x H x W in [0, 1]) -> bicubic 2x of ``x`` plus a learned correction: head conv, ``blocks`` residual
blocks (conv-ReLU-conv, skip), a conv to 3 * 2 * 2 channels and ``PixelShuffle(2)``. The last conv starts at zero,
so an untrained net is exactly bicubic and training only has to learn the residual. Convolutions pad by
replicating edges (no dark border). ~75k parameters at 32 channels x 4 blocks: fast on a CPU, trivial on a GPU.

A model file (:func:`save_model`, :func:`load_model`) is a ``torch.save`` dict: ``format``, ``arch`` (channels,
blocks, scale), ``state_dict``, and what the trainer recorded (``training``, ``validation``); it loads with
``weights_only=True``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .atomic import atomic_path

FORMAT = "animefaces-sr-v1"
SCALE = 2


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, padding_mode="replicate")


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv(channels, channels)
        self.conv2 = _conv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class SRNet(nn.Module):
    """2x super-resolution: bicubic 2x + a residual net's pixel-shuffled correction."""

    def __init__(self, channels: int = 32, blocks: int = 4) -> None:
        super().__init__()
        self.channels, self.blocks = int(channels), int(blocks)
        self.head = _conv(3, self.channels)
        self.body = nn.Sequential(*[ResBlock(self.channels) for _ in range(self.blocks)])
        self.tail = _conv(self.channels, 3 * SCALE * SCALE)
        self.shuffle = nn.PixelShuffle(SCALE)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=SCALE, mode="bicubic", align_corners=False)
        f = F.relu(self.head(x * 2.0 - 1.0))
        return base + self.shuffle(self.tail(self.body(f)))

    def arch(self) -> dict:
        return {"channels": self.channels, "blocks": self.blocks, "scale": SCALE}


def save_model(path: str | os.PathLike[str], net: SRNet, **extra: Any) -> None:
    """Write ``net`` (weights on the CPU) and ``extra`` (plain values: training settings, validation numbers)."""
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "arch": net.arch(), "state_dict": state, **extra}, tmp)


def load_model(path: str | os.PathLike[str], device: Any = "cpu") -> tuple[SRNet, dict]:
    """(network in eval mode on ``device``, the file's dict without the weights). Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"learned upscaler {path} does not exist (written by `python -m animefaces.upscale_train`, the "
            "upscale_train rule)"
        )
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not an animefaces learned-upscaler file (format {FORMAT}); for ESRGAN/Real-ESRGAN-class "
            ".pth files use normalise.upscale.backend: weights"
        )
    arch = blob["arch"]
    if int(arch.get("scale", SCALE)) != SCALE:
        raise ValueError(f"{path}: scale {arch.get('scale')} != {SCALE}")
    net = SRNet(arch["channels"], arch["blocks"])
    net.load_state_dict(blob["state_dict"])
    net.to(device).eval()
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    return net, meta
