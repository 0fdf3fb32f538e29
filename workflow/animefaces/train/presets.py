"""Training presets and config resolution (config ``train`` section + preset + pack facts -> concrete settings).

Keys left ``null`` in the config take the preset's value. ``preset: auto`` picks by the training resolution.
Presets (widths follow StyleGAN2's rule ``channels(res) = min(channel_base // res, channel_max)``):

- ``tiny``: 32 px, 32-64 channels, CPU demo / tests; DiffAugment (the tiny demo set is far too small for ADA
  to adapt in a few hundred steps).
- ``small``: 32 px, 64-128 channels (1.1M / 1.2M parameters, 4x tiny's cost): the largest preset that trains for
  hundreds of kimg on a CPU in a working day; DiffAugment.
- ``faces64``: 64 px, 256 channels, mapping depth 4, ADA (a GPU preset: ~2 s per image on a CPU core).
- ``stylegan2-256`` / ``-512`` / ``-1024``: the values of the reference implementation's (stylegan2-ada)
  ``paper256`` / ``paper512`` / ``paper1024`` configurations (batch, minibatch-stddev group, widths, lr, R1 gamma,
  EMA half-life, 8-layer mapping, z = w = 512).

``r1_gamma: auto`` is the reference's heuristic for configurations it has no tuned value for:
gamma = 0.0002 * resolution^2 / batch (used by ``tiny``, ``small`` and ``faces64``).
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
        r1_gamma="auto",
        ema_kimg=0.5,
        kimg=2.0,
        kimg_per_tick=0.25,
        snap=2,
        augment="diffaugment",
    ),
    "small": dict(
        resolution=32,
        z_dim=128,
        w_dim=128,
        map_layers=2,
        channel_base=2048,
        channel_max=128,
        mbstd_group=4,
        batch=16,
        lr_g=0.0025,
        lr_d=0.0025,
        r1_gamma="auto",
        ema_kimg=2.0,
        kimg=500.0,
        kimg_per_tick=1.0,
        snap=10,
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
        r1_gamma="auto",
        ema_kimg=10.0,
        kimg=5000.0,
        kimg_per_tick=4.0,
        snap=25,
        augment="ada",
    ),
}
# The reference's paperNNN configurations: (batch, mbstd group, channel_base, lr, R1 gamma, EMA kimg).
_PAPER = {
    256: (64, 8, 16384, 0.0025, 1.0, 20.0),
    512: (64, 8, 32768, 0.0025, 0.5, 20.0),
    1024: (32, 4, 32768, 0.002, 2.0, 10.0),
}
for _res, (_batch, _mbstd, _base, _lr, _gamma, _ema) in _PAPER.items():
    PRESETS[f"stylegan2-{_res}"] = dict(
        resolution=_res,
        z_dim=512,
        w_dim=512,
        map_layers=8,
        channel_base=_base,
        channel_max=512,
        mbstd_group=_mbstd,
        batch=_batch,
        lr_g=_lr,
        lr_d=_lr,
        r1_gamma=_gamma,
        ema_kimg=_ema,
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
NETWORK_KEYS = [*ARCH_KEYS, "conv_clamp"]  # what build_networks needs


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


def auto_r1_gamma(resolution: int, batch: int) -> float:
    """The reference's R1 heuristic: gamma = 0.0002 * resolution^2 / batch."""
    return 0.0002 * resolution**2 / batch


def _pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def resolve(cfg: dict[str, Any], data_resolution: int, c_dim: int, device_type: str) -> dict[str, Any]:
    """Concrete training settings: config values, ``null`` ones from the preset; ``resolution`` fitted to the pack.

    ``data_resolution`` is the pack's image size S; training may use S or a power-of-two fraction of it
    (images are box-downscaled once on load). Raises ValueError naming the ``train.*`` key to fix.
    """
    from .models import get_model

    spec = get_model(cfg.get("model"))  # train.model picks the preset table (this module's for stylegan2)
    table = spec.preset_table
    out = dict(cfg)
    out["model"] = spec.name
    name = cfg.get("preset") or "auto"
    if name == "auto":
        name = table.auto_preset(cfg.get("resolution") or data_resolution)
    if name not in table.PRESETS:
        raise ValueError(
            f"train.preset: {name!r} is not a {spec.name} preset (train.model: {spec.name}); "
            f"choose one of {['auto', *table.PRESETS]}"
        )
    preset = table.PRESETS[name]
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
    cond = cfg.get("cond")
    out["cond"] = spec.conditional_by_default if cond is None else bool(cond)
    out["c_dim"] = int(c_dim) if out["cond"] else 0
    if int(out["batch"]) < 1:
        raise ValueError("train.batch: must be >= 1")
    if out["r1_gamma"] == "auto":
        out["r1_gamma"] = auto_r1_gamma(res, int(out["batch"]))
    if out.get("precision") in (None, "auto"):
        out["precision"] = "bf16" if device_type == "cuda" else "fp32"
    if device_type != "cuda" and out["precision"] != "fp32":
        out["precision"] = "fp32"  # autocast is only used on CUDA; CPU runs (tests, demo) are exact fp32
    out["conv_clamp"] = 256.0 if out["precision"] == "fp16" else None
    if out.get("channels_last") is None:
        out["channels_last"] = device_type == "cuda"
    out["num_ws"] = 2 * int(math.log2(res)) - 2
    finalize = getattr(table, "finalize", None)  # model-specific checks (presets_biggan.finalize)
    if finalize is not None:
        finalize(out)
    return out


def arch_of(resolved: dict[str, Any]) -> dict[str, Any]:
    """The architecture part of resolved settings (what the model's network builder needs)."""
    from .models import get_model

    return {k: resolved[k] for k in get_model(resolved.get("model")).preset_table.NETWORK_KEYS}


def incompatible(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys in the model's RESUME_KEYS whose values differ (and the model itself), as ``key: saved -> current``."""
    from .models import get_model, model_of

    if model_of(saved) != model_of(current):
        return [f"model: {model_of(saved)!r} -> {model_of(current)!r}"]
    keys = get_model(model_of(current)).preset_table.RESUME_KEYS
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]
