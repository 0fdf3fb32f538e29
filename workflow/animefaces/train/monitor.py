"""Monitoring outputs: image grids, metrics JSON Lines, the loss-curve plot, optional TensorBoard."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..atomic import atomic_path, write_text


def to_uint8(img: Tensor) -> np.ndarray:
    """float [N,3,H,W] in [-1,1] -> uint8 [N,H,W,3]."""
    x = (img.detach().float().cpu() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def tile(images: np.ndarray, rows: int, cols: int, pad: int = 0) -> np.ndarray:
    """uint8 [N,H,W,3] -> one [rows*H, cols*W, 3] image (row-major; missing cells black)."""
    n, h, w, c = images.shape
    out = np.zeros((rows * (h + pad) - pad, cols * (w + pad) - pad, c), dtype=np.uint8)
    for i in range(min(n, rows * cols)):
        r, q = divmod(i, cols)
        out[r * (h + pad) : r * (h + pad) + h, q * (w + pad) : q * (w + pad) + w] = images[i]
    return out


def save_png(path: str | os.PathLike[str], array: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def save_grid(path: str | os.PathLike[str], img: Tensor, rows: int, cols: int) -> None:
    save_png(path, tile(to_uint8(img), rows, cols))


def write_metrics(path: str | os.PathLike[str], history: list[dict[str, Any]]) -> None:
    """Rewrite the whole JSON Lines file atomically (a resumed run drops the lines of the lost ticks)."""
    write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in history))


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


PLOT_KEYS = [
    ("loss_G", "G loss"),
    ("loss_D", "D loss"),
    ("r1_penalty", "R1 penalty"),
    ("pl_penalty", "path-length penalty"),
    ("aug_p", "augment p"),
]


def plot_losses(path: str | os.PathLike[str], history: list[dict[str, Any]]) -> None:
    """Loss curves vs kimg (one panel per quantity present), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [(k, label) for k, label in PLOT_KEYS if any(_finite(row.get(k)) for row in history)]
    keys = keys or [("loss_G", "G loss")]
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.2 * len(keys)), sharex=True, squeeze=False)
    kimg = [row.get("kimg", 0) for row in history]
    for ax, (key, label) in zip(axes[:, 0], keys, strict=True):
        ys = [row.get(key, float("nan")) for row in history]
        ys = [y if _finite(y) else float("nan") for y in ys]
        ax.plot(kimg, ys, marker="." if len(ys) < 50 else None)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("kimg")
    fig.suptitle("training losses")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


class TensorBoard:
    """Writes scalars to ``outdir/tensorboard`` when enabled and ``tensorboard`` is installed; else a no-op."""

    def __init__(self, outdir: str | os.PathLike[str], enabled: bool, log=print) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 - tensorboard is optional and not a dependency
            log("train.tensorboard: the tensorboard package is not installed; skipping TensorBoard logging")
            return
        self.writer = SummaryWriter(str(Path(outdir) / "tensorboard"))

    def scalars(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step = int(row.get("kimg", 0) * 1000)
        for k, v in row.items():
            if _finite(v) and k not in ("kimg", "tick"):
                self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
