"""Cross-key config checks that JSON Schema cannot express, run once before any job (``validate_or_exit``).

Only the Snakefile (``validate_or_exit``) and ``animefaces config`` import this module: the checks import other
stages' modules (training presets, the demo, ingest filters), which a stage job must not need.

Each check takes the whole schema-valid, defaulted config and returns problem lines naming the key to fix.
Add a check to ``CHECKS`` (a registry: a stage adds its own here, not in a rule file).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from .config import ConfigError, resolve_config, validate_config

# Larger than nearly every image's shorter side: a cascade asked for faces this big finds none (every post
# no_face). The seed recommends 250-300 for a high-quality set.
MAX_MIN_FACE = 2048


def _pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def check_crop(cfg: dict) -> list[str]:
    crop, out = cfg["crop"], []
    if crop["min_face"] > MAX_MIN_FACE:
        out.append(
            f"crop.min_face = {crop['min_face']}: must be <= {MAX_MIN_FACE} px (larger than nearly every "
            "image, so every post would be no_face); the seed recommends 250-300 for a high-quality set"
        )
    path = crop.get("cascade_path")
    if path and crop["detector"] == "lbpcascade" and not os.path.isfile(path):
        out.append(f"crop.cascade_path = {path!r}: no such file (set null to download the cascade)")
    return out


def check_packs_and_training(cfg: dict) -> list[str]:
    from .pack.formats import pack_format

    size, train = cfg["normalise"]["size"], cfg["train"]
    needs = [
        what
        for what, yes in (
            *((f"the {name} pack", pack_format(name).power_of_two) for name in cfg["pack"]["formats"]),
            ("training", train["resolution"] is None),
        )
        if yes
    ]
    if not _pow2(size) and needs:
        return [f"normalise.size = {size}: {' and '.join(needs)} need a power of two (8..1024, e.g. 64, 128, 256, 512)"]
    from .train.presets import resolve

    try:
        resolve(train, size, 0, "cpu")
    except ValueError as exc:
        msg = str(exc)
        if msg.startswith("train.resolution: "):
            msg = f"train.resolution = {train['resolution']}: " + msg.removeprefix("train.resolution: ")
        return [f"{msg} (the packs hold normalise.size = {size} px images)"]
    return []


def check_demo(cfg: dict) -> list[str]:
    from .demo import check_config

    try:
        check_config(cfg)
    except ValueError as exc:
        return [str(exc)]
    return []


def check_ingest(cfg: dict) -> list[str]:
    from .ingest.classes import ClassesConfig
    from .ingest.filters import check_filter_config

    out = []
    for fn, section in ((check_filter_config, "filter"), (ClassesConfig.from_section, "classes")):
        try:
            fn(cfg[section])
        except ValueError as exc:
            out.append(str(exc))
    return out


def check_shards(cfg: dict) -> list[str]:
    from .shards import check_per_job

    try:
        check_per_job(cfg["shards"]["count"], cfg["shards"]["per_job"])
    except ValueError as exc:
        return [str(exc)]
    return []


CHECKS: list[Callable[[dict], list[str]]] = [
    check_shards,
    check_ingest,
    check_demo,
    check_crop,
    check_packs_and_training,
]


def validate_or_exit(cfg: dict, source: str = "") -> dict:
    """The Snakefile's check before any job: validate in place, or print one line per problem and exit 2."""
    try:
        return validate_config(cfg, check_all, source)
    except ConfigError as exc:
        print(f"animefaces: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def resolve_checked(configfiles: list | None = None, overrides: dict | None = None) -> dict:
    """``resolve_config`` with the cross-key checks: exactly what the Snakefile accepts."""
    return resolve_config(configfiles, overrides, check_all)


def check_all(cfg: dict[str, Any]) -> list[str]:
    """Every cross-key problem of a schema-valid, defaulted config (one line each)."""
    return [" ".join(line.split()) for check in CHECKS for line in check(cfg)]  # one line each
