"""Training presets and config resolution (config ``train`` section + preset + pack facts -> concrete settings).

Keys left ``null`` in the config take the preset's value. ``preset: auto`` picks by the training resolution.
Presets (widths follow StyleGAN2's rule ``channels(res) = min(channel_base // res, channel_max)``):

- ``tiny``: 32 px, 32-64 channels, CPU demo / tests; DiffAugment (the tiny demo set is far too small for ADA
  to adapt in a few hundred steps).
- ``faces64``: 64 px, 256 channels, mapping depth 4, ADA.
- ``stylegan2-256`` / ``-512`` / ``-1024``: StyleGAN2 config-f widths (channel_base 32768, channel_max 512),
  8-layer mapping, z = w = 512, R1 gamma 10, ADA.
"""

from __future__ import annotations

import math
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        resolution=32,
        z_dim=64,
        w_dim=64,
        map_layers=2,
        channel_base=1024,
        channel_max=64,
        mbstd_group=4,
        batch=16,
        lr_g=0.002,
        lr_d=0.002,
        r1_gamma=0.05,
        ema_kimg=0.5,
        kimg=2.0,
        kimg_per_tick=0.25,
        snap=2,
        augment="diffaugment",
    ),
    "faces64": dict(
        resolution=64,
        z_dim=256,
        w_dim=256,
        map_layers=4,
        channel_base=16384,
        channel_max=256,
        mbstd_group=4,
        batch=32,
        lr_g=0.0025,
        lr_d=0.0025,
        r1_gamma=0.1,
        ema_kimg=10.0,
        kimg=5000.0,
        kimg_per_tick=4.0,
        snap=25,
        augment="ada",
    ),
}
for _res in (256, 512, 1024):
    PRESETS[f"stylegan2-{_res}"] = dict(
        resolution=_res,
        z_dim=512,
        w_dim=512,
        map_layers=8,
        channel_base=32768,
        channel_max=512,
        mbstd_group=4,
        batch=32,
        lr_g=0.002,
        lr_d=0.002,
        r1_gamma=10.0,
        ema_kimg=10.0,
        kimg=25000.0,
        kimg_per_tick=4.0,
        snap=25,
        augment="ada",
    )

PRESET_NAMES = ["auto", *PRESETS]
ARCH_KEYS = ["resolution", "z_dim", "w_dim", "map_layers", "channel_base", "channel_max", "mbstd_group", "c_dim"]
# Settings that must not change between a snapshot and the run resuming it (the saved state would not fit or
# the run would silently become a different experiment); everything else (kimg, snap, lr, ...) may change.
RESUME_KEYS = [*ARCH_KEYS, "batch", "conv_clamp", "seed", "augment", "mirror", "precision"]


def auto_preset(resolution: int) -> str:
    if resolution <= 32:
        return "tiny"
    if resolution <= 64:
        return "faces64"
    if resolution <= 256:
        return "stylegan2-256"
    if resolution <= 512:
        return "stylegan2-512"
    return "stylegan2-1024"


def _pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def resolve(cfg: dict[str, Any], data_resolution: int, c_dim: int, device_type: str) -> dict[str, Any]:
    """Concrete training settings: config values, ``null`` ones from the preset; ``resolution`` fitted to the pack.

    ``data_resolution`` is the pack's image size S; training may use S or a power-of-two fraction of it
    (images are box-downscaled once on load). Raises ValueError naming the ``train.*`` key to fix.
    """
    out = dict(cfg)
    name = cfg.get("preset") or "auto"
    if name == "auto":
        name = auto_preset(cfg.get("resolution") or data_resolution)
    if name not in PRESETS:
        raise ValueError(f"train.preset: unknown preset {name!r}; choose one of {PRESET_NAMES}")
    preset = PRESETS[name]
    out["preset"] = name
    for key, value in preset.items():
        if out.get(key) is None:
            out[key] = value
    if cfg.get("resolution") is None:
        out["resolution"] = min(preset["resolution"], data_resolution)
    res = int(out["resolution"])
    if not _pow2(res) or not 8 <= res <= 1024:
        raise ValueError(f"train.resolution: must be a power of two in 8..1024, got {res}")
    if res > data_resolution:
        raise ValueError(
            f"train.resolution: {res} is larger than the pack's {data_resolution} px images; "
            f"set train.resolution <= {data_resolution} (or re-run normalise/pack at a larger size)"
        )
    if data_resolution % res or not _pow2(data_resolution // res):
        raise ValueError(f"train.resolution: {res} must be the pack size {data_resolution} divided by a power of two")
    out["c_dim"] = int(c_dim) if cfg.get("cond") else 0
    if int(out["batch"]) < 1:
        raise ValueError("train.batch: must be >= 1")
    if out.get("precision") in (None, "auto"):
        out["precision"] = "bf16" if device_type == "cuda" else "fp32"
    if device_type != "cuda" and out["precision"] != "fp32":
        out["precision"] = "fp32"  # autocast is only used on CUDA; CPU runs (tests, demo) are exact fp32
    out["conv_clamp"] = 256.0 if out["precision"] == "fp16" else None
    if out.get("channels_last") is None:
        out["channels_last"] = device_type == "cuda"
    out["num_ws"] = 2 * int(math.log2(res)) - 2
    return out


def arch_of(resolved: dict[str, Any]) -> dict[str, Any]:
    """The architecture part of resolved settings (what ``networks.build_networks`` needs)."""
    return {k: resolved[k] for k in [*ARCH_KEYS, "conv_clamp"]}


def incompatible(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys in RESUME_KEYS whose values differ, as ``key: saved -> current`` strings."""
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in RESUME_KEYS if saved.get(k) != current.get(k)]
