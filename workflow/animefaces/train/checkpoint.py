"""Snapshots (complete training state, for exact resume), the final network file, and transfer learning.

A snapshot ``RES/train/snapshots/snapshot-<kimg>.pt`` holds G, D, G_ema, both optimisers (and AMP scalers), the
counters, the augmentation probability and ADA accumulators, every RNG state (python, numpy, torch CPU, CUDA,
the batch sampler's generator; one set per DDP rank), the metrics history and the resolved config. It is
written to a temporary file, fsynced and renamed, so a killed job leaves either the old or the new snapshot.
Everything is plain tensors/containers: files load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_path

SNAPSHOT_FORMAT = "animefaces-snapshot/1"
NETWORK_FORMAT = "animefaces-network/1"
_SNAP_RE = re.compile(r"^snapshot-(\d+\.\d+)\.pt$")


def snapshot_name(nimg: int) -> str:
    return f"snapshot-{nimg / 1000:010.3f}.pt"


def list_snapshots(directory: str | os.PathLike[str]) -> list[tuple[float, Path]]:
    """(kimg, path) of every snapshot file, newest first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = []
    for p in d.iterdir():
        m = _SNAP_RE.match(p.name)
        if m:
            found.append((float(m.group(1)), p))
    return sorted(found, key=lambda t: t[0], reverse=True)


def save_file(path: str | os.PathLike[str], obj: dict[str, Any]) -> None:
    """torch.save atomically and durably (temp file + fsync + rename)."""
    with atomic_path(path, suffix=".tmp") as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


def load_file(path: str | os.PathLike[str], expect: str | None = None) -> dict[str, Any]:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or "format" not in obj:
        raise ValueError(f"{path}: not an animefaces snapshot/network file")
    if expect is not None and obj["format"] != expect:
        raise ValueError(f"{path}: format {obj['format']!r}, expected {expect!r}")
    return obj


def find_resumable(
    directory: str | os.PathLike[str], log: Callable[[str], None] = print
) -> tuple[Path, dict[str, Any]] | None:
    """The newest snapshot that loads; unreadable (partial/corrupt) newer ones are skipped with a warning.

    Temporary files of a snapshot write that was killed midway are removed.
    """
    d = Path(directory)
    if d.is_dir():
        for stale in d.glob(".snapshot-*.tmp"):
            stale.unlink(missing_ok=True)
    for _kimg, path in list_snapshots(directory):
        try:
            state = load_file(path, SNAPSHOT_FORMAT)
            for key in ("G", "D", "G_ema", "opt_G", "opt_D", "counters", "rng", "config"):
                if key not in state:
                    raise ValueError(f"missing {key!r}")
            return path, state
        except Exception as exc:  # noqa: BLE001 - any failure means "not usable", fall back
            msg = f"WARNING: snapshot {path} is unreadable ({type(exc).__name__}: {exc}); trying the previous one"
            log(msg)
            warnings.warn(msg, stacklevel=2)
    return None


def prune_snapshots(directory: str | os.PathLike[str], keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` snapshots (keep <= 0: keep all); returns the deleted paths."""
    if keep <= 0:
        return []
    old = [p for _k, p in list_snapshots(directory)[keep:]]
    for p in old:
        p.unlink(missing_ok=True)
    return old


# ------------------------------------------------------------------------------------------------ RNG states
def capture_rng() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(_to_tuple(state["python"]))
    npst = state["numpy"]
    np.random.set_state(
        ("MT19937", npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["cached"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, list | tuple) else x


# ------------------------------------------------------------------------------------------------ networks
def save_network(path: str | os.PathLike[str], G_ema: nn.Module, config: dict[str, Any], extra: dict) -> None:
    """The final generator (EMA weights) + the kwargs to rebuild it + the resolved training config."""
    save_file(
        path,
        {
            "format": NETWORK_FORMAT,
            "G_ema": {k: v.detach().cpu() for k, v in G_ema.state_dict().items()},
            "G_kwargs": dict(G_ema.init_kwargs),
            "config": config,
            **extra,
        },
    )


def load_generator(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """G_ema from a ``network-final.pt`` or a snapshot, in eval mode, plus the file's metadata."""
    from .models import get_model, model_of

    obj = load_file(path)
    G = get_model(obj.get("model") or model_of(obj.get("config"))).build_generator(obj["G_kwargs"])
    G.load_state_dict(obj["G_ema"])
    G.eval().requires_grad_(False).to(device)
    meta = {k: v for k, v in obj.items() if k not in ("G", "D", "G_ema", "opt_G", "opt_D", "rng")}
    return G, meta


def load_matching(module: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """Copy every tensor whose name and shape match; returns (skipped because shape differs, missing in source)."""
    own = module.state_dict()
    skipped, missing = [], []
    load = {}
    for name, tensor in own.items():
        if name not in state:
            missing.append(name)
        elif tuple(state[name].shape) != tuple(tensor.shape):
            skipped.append(f"{name} {tuple(state[name].shape)} -> {tuple(tensor.shape)}")
        else:
            load[name] = state[name]
    module.load_state_dict(load, strict=False)
    return skipped, missing


def transfer_from(
    path: str | os.PathLike[str],
    G: nn.Module,
    D: nn.Module,
    G_ema: nn.Module,
    log: Callable[[str], None] = print,
) -> dict[str, list[str]]:
    """Initialise G/D/G_ema from another run's snapshot or network file (same resolution).

    Parameters whose shapes differ (e.g. the class embedding when the class count changed) keep their fresh
    initialisation and are reported; a network file without D leaves D fresh.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"train.init_from: {path} does not exist")
    obj = load_file(path)
    src_res = obj.get("G_kwargs", {}).get("resolution")
    if src_res is not None and src_res != G.resolution:
        raise ValueError(
            f"train.init_from: {path} was trained at {src_res} px but this run trains at {G.resolution} px; "
            "transfer learning loads weights at full resolution, so set train.resolution to match"
        )
    report: dict[str, list[str]] = {}
    g_src = obj.get("G") or obj["G_ema"]
    for name, module, src in (("G", G, g_src), ("G_ema", G_ema, obj["G_ema"]), ("D", D, obj.get("D"))):
        if src is None:
            log(f"init_from: {path} has no {name}; {name} starts from scratch")
            report[name] = ["<all: not in source>"]
            continue
        skipped, missing = load_matching(module, src)
        report[name] = skipped + [f"{m} (not in source)" for m in missing]
        if report[name]:
            log(f"init_from: {name}: kept fresh initialisation for {len(report[name])} tensor(s): {report[name]}")
    log(f"init_from: loaded weights from {path}")
    return report
