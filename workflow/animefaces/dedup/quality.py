"""Measurable image quality for the dedup survivor rule: sharpness and JPEG blockiness of a decoded picture.

Both are computed once per item by the clean stage (columns ``sharpness`` and ``blockiness``) so that dedup, a
global job, never decodes images.

- ``sharpness``: variance of the 4-neighbour Laplacian of the luma (0-255 levels): blur and upscaling lower it.
- ``blockiness``: JPEG's 8 x 8 blocks leave steps on one column (row) phase modulo 8. For each direction, the mean
  absolute luma step on the strongest phase divided by that on the phases 2 and 4 away (which cancels the period
  2 / 4 patterns of upscaling); the larger direction is kept. 1 for clean pictures, above 1 with block edges.
  The phase search makes it independent of where a face crop starts inside the source's block grid.
"""

from __future__ import annotations

import numpy as np

BLOCK = 8


def _luma(rgb: np.ndarray) -> np.ndarray:
    x = np.asarray(rgb, dtype=np.float64)
    if x.ndim == 2:
        return x
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the luma Laplacian (higher = sharper)."""
    y = _luma(rgb)
    if min(y.shape) < 3:
        return 0.0
    lap = y[1:-1, :-2] + y[1:-1, 2:] + y[:-2, 1:-1] + y[2:, 1:-1] - 4 * y[1:-1, 1:-1]
    return float(lap.var())


def _phase_ratio(steps: np.ndarray) -> float:
    """How much the strongest column phase (mod 8) of ``steps`` (steps between columns ``k`` and ``k + 1``) stands
    out against the phases 2 and 4 away. Comparing within those phases cancels the period-2 and period-4 patterns
    that 2x / 4x upscaling leaves, so only an 8-periodic grid (JPEG blocks) counts."""
    if steps.shape[1] < 2 * BLOCK:
        return 1.0
    per_col = steps.mean(axis=0)
    phases = np.array([per_col[p::BLOCK].mean() for p in range(BLOCK)])
    best = 1.0
    for p in range(BLOCK):
        ref = max(phases[(p + 4) % BLOCK], (phases[(p + 2) % BLOCK] + phases[(p + 6) % BLOCK]) / 2)
        if ref > 1e-9:
            best = max(best, float(phases[p] / ref))
    return best


def blockiness(rgb: np.ndarray) -> float:
    """JPEG block-edge strength (1 = none; higher = blockier)."""
    y = _luma(rgb)
    horizontal = _phase_ratio(np.abs(np.diff(y, axis=1)))
    vertical = _phase_ratio(np.abs(np.diff(y, axis=0)).T)
    return max(horizontal, vertical)
