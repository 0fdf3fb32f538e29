"""How good a 2x upscaler is: halve a real face, upscale it back, compare with the original.

:func:`halve` makes the low-resolution input (Pillow's antialiased bicubic to exactly half size, optionally JPEG at
a given quality: the degradations the learned upscaler is trained on). :func:`psnr` (RGB, 8-bit peak) and
:func:`ssim` (luma, Gaussian window 11 / sigma 1.5, the usual constants) compare with the original, leaving out a
``shave``-pixel border as SR papers do. :func:`evaluate` runs several upscalers over the same faces.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .upscale import Upscaler

SHAVE = 2


def even_crop(rgb: np.ndarray) -> np.ndarray:
    """Drop a last row/column so both sides are even (the original that a 2x of its half must reproduce)."""
    h, w = rgb.shape[:2]
    return rgb[: h - h % 2, : w - w % 2]


def halve(rgb: np.ndarray, jpeg_quality: int | None = None) -> np.ndarray:
    """Half-size bicubic (antialiased) of an even-sized image; then a JPEG round trip at ``jpeg_quality``."""
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"halve needs even sides, got {w}x{h}")
    im = Image.fromarray(np.ascontiguousarray(rgb)).resize((w // 2, h // 2), Image.Resampling.BICUBIC)
    if jpeg_quality is not None:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=int(jpeg_quality))
        im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def _shaved(a: np.ndarray, shave: int) -> np.ndarray:
    return a[shave:-shave, shave:-shave] if shave else a


def psnr(ref: np.ndarray, out: np.ndarray, shave: int = SHAVE) -> float:
    """Peak signal-to-noise ratio in dB over all RGB values (peak 255)."""
    d = _shaved(ref, shave).astype(np.float64) - _shaved(out, shave).astype(np.float64)
    mse = float(np.mean(d * d))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _gauss_filter(a: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(x * x) / (2 * sigma * sigma))
    k /= k.sum()
    # 'valid' separable convolution: rows then columns
    a = np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 1, a)
    return np.apply_along_axis(lambda c: np.convolve(c, k, mode="valid"), 0, a)


def ssim(ref: np.ndarray, out: np.ndarray, shave: int = SHAVE) -> float:
    """Mean structural similarity of the luma (Wang et al. 2004: Gaussian window 11, sigma 1.5, K = 0.01/0.03)."""
    x, y = _luma(_shaved(ref, shave)), _luma(_shaved(out, shave))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _gauss_filter(x), _gauss_filter(y)
    sxx = _gauss_filter(x * x) - mx * mx
    syy = _gauss_filter(y * y) - my * my
    sxy = _gauss_filter(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


@dataclass
class Scores:
    psnr: list[float]
    ssim: list[float]
    seconds: float
    images: int

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnr))

    @property
    def mean_ssim(self) -> float:
        return float(np.mean(self.ssim))

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("inf")


def evaluate(
    upscalers: Mapping[str, Upscaler], originals: Iterable[np.ndarray], with_ssim: bool = True
) -> dict[str, Scores]:
    """Each upscaler's 2x of every original's :func:`halve` against the (even-cropped) original."""
    pairs = [(ref, halve(ref)) for ref in (even_crop(o) for o in originals)]
    out: dict[str, Scores] = {}
    for name, up in upscalers.items():
        p, s, secs = [], [], 0.0
        for ref, low in pairs:
            t0 = time.perf_counter()
            big = up.upscale(low, 2)
            secs += time.perf_counter() - t0
            p.append(psnr(ref, big))
            s.append(ssim(ref, big) if with_ssim else float("nan"))
        out[name] = Scores(p, s, secs, len(pairs))
    return out
