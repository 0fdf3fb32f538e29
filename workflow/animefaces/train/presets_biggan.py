"""BigGAN presets (``train.model: biggan``); keys left ``null`` in the config take the preset's value.

- ``biggan-128``: the seed's D1K command (BigGAN-PyTorch ``train.py --G_shared --hier --dim_z 120 --shared_dim 128
  --G_ch 96 --D_ch 96 --G_attn 64 --D_attn 64 --G_lr 1e-4 --D_lr 4e-4 --G_B2 0.999 --D_B2 0.999 --G_init ortho
  --D_init ortho --ema --ema_start 20000 --num_G_accumulations 8 --num_D_accumulations 8 --batch_size 32``), with
  BigGAN-PyTorch's defaults for what the command leaves out (2 D steps per G step, EMA decay 0.9999 per G step,
  no orthogonal regularisation). Iteration-based settings are converted to images (the loop counts images, so a
  restart with another batch size or accumulation keeps its place): one iteration = ``d_steps * d_accum * batch``
  = 512 real images, so ``ema_start 20000`` = 10240 kimg and decay 0.9999 = a half-life of
  ``ln 0.5 / ln 0.9999`` = 6931 iterations = 3549 kimg. See the README's key-by-key table.
- ``biggan-deep-256``: BigGAN-deep at 256 px (ch 128, z 128 given whole to every block, attention at 64 px,
  the same optimiser settings; batch 32 x 8 accumulations).
- ``biggan-tiny``: 32 px, 64 channels, attention at 16 px, DiffAugment; a CPU demo / test model.
"""

from __future__ import annotations

import math
from typing import Any

_BASE: dict[str, Any] = dict(
    g_shared=True,
    hier=True,
    deep=False,
    init="ortho",
    bn_eps=1e-5,
    ortho_reg=0.0,
    betas_g=[0.0, 0.999],
    betas_d=[0.0, 0.999],
    d_steps=2,
    g_accum=1,
    d_accum=1,
    augment="none",
    ema_rampup=None,
    # StyleGAN2-only settings, fixed so that a BigGAN config never picks up a StyleGAN2 regulariser by accident
    r1_gamma=0.0,
    pl_weight=0.0,
    style_mixing=0.0,
)


def _iter_kimg(iterations: float, batch: int, d_accum: int, d_steps: int) -> float:
    return iterations * batch * d_accum * d_steps / 1000


def _half_life_kimg(decay: float, batch: int, d_accum: int, d_steps: int) -> float:
    return round(math.log(0.5) / math.log(decay) * batch * d_accum * d_steps / 1000, 1)


PRESETS: dict[str, dict[str, Any]] = {
    "biggan-tiny": {
        **_BASE,
        "resolution": 32,
        "z_dim": 64,
        "shared_dim": 32,
        "g_ch": 16,
        "d_ch": 16,
        "g_attn": 16,
        "d_attn": 16,
        "batch": 16,
        "lr_g": 2e-4,
        "lr_d": 2e-4,
        "ortho_reg": 1e-4,
        "ema_kimg": 0.5,
        "ema_start_kimg": 0.5,
        "kimg": 3.0,
        "kimg_per_tick": 0.25,
        "snap": 2,
        "augment": "diffaugment",
    },
    "biggan-128": {
        **_BASE,
        "resolution": 128,
        "z_dim": 120,
        "shared_dim": 128,
        "g_ch": 96,
        "d_ch": 96,
        "g_attn": 64,
        "d_attn": 64,
        "batch": 32,
        "g_accum": 8,
        "d_accum": 8,
        "lr_g": 1e-4,
        "lr_d": 4e-4,
        "ema_kimg": _half_life_kimg(0.9999, 32, 8, 2),
        "ema_start_kimg": _iter_kimg(20000, 32, 8, 2),
        "kimg": 100000.0,
        "kimg_per_tick": 20.0,
        "snap": 25,
    },
    "biggan-deep-256": {
        **_BASE,
        "resolution": 256,
        "deep": True,
        "hier": False,
        "z_dim": 128,
        "shared_dim": 128,
        "g_ch": 128,
        "d_ch": 128,
        "g_attn": 64,
        "d_attn": 64,
        "batch": 32,
        "g_accum": 8,
        "d_accum": 8,
        "lr_g": 1e-4,
        "lr_d": 4e-4,
        "ema_kimg": _half_life_kimg(0.9999, 32, 8, 2),
        "ema_start_kimg": _iter_kimg(20000, 32, 8, 2),
        "kimg": 100000.0,
        "kimg_per_tick": 20.0,
        "snap": 25,
    },
}

ARCH_KEYS = [
    "resolution",
    "z_dim",
    "c_dim",
    "g_ch",
    "d_ch",
    "shared_dim",
    "g_shared",
    "hier",
    "g_attn",
    "d_attn",
    "deep",
    "init",
    "bn_eps",
]
NETWORK_KEYS = ARCH_KEYS  # what biggan.build_biggan needs
# batch, accumulation and D steps may change between runs (the sampler counts images, not iterations)
RESUME_KEYS = [*ARCH_KEYS, "seed", "augment", "mirror", "precision"]


def auto_preset(resolution: int) -> str:
    if resolution <= 32:
        return "biggan-tiny"
    if resolution <= 128:
        return "biggan-128"
    return "biggan-deep-256"


def finalize(out: dict[str, Any]) -> None:
    """BigGAN-specific checks of resolved settings (raise ValueError naming the key)."""
    for key in ("d_steps", "g_accum", "d_accum"):
        if int(out[key]) < 1:
            raise ValueError(f"train.{key}: must be >= 1, got {out[key]}")
    for key in ("betas_g", "betas_d"):
        b = out[key]
        if len(b) != 2 or not all(0 <= float(v) < 1 for v in b):
            raise ValueError(f"train.{key}: must be two numbers in [0, 1), got {b}")
    out["ema_start_kimg"] = float(out.get("ema_start_kimg") or 0.0)
    out["ema_rampup"] = None  # StyleGAN2's EMA ramp-up; BigGAN copies G until ema_start_kimg instead
