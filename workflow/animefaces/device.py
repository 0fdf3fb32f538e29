"""One device choice for every torch user (train, sample, the learned upscalers): ``cpu``, ``cuda`` or ``auto``."""

from __future__ import annotations

from typing import Any


def resolve_device(
    setting: str, gpus: int | None = None, local_rank: int | None = None, key: str = "train.device"
) -> Any:
    """The ``torch.device`` for config key ``key`` = ``setting`` (``cpu``, ``cuda``, ``cuda:N`` or ``auto``).

    ``auto``: CUDA when a device is visible (and, when ``gpus`` is given, ``gpus > 0``), else CPU; ``cuda`` without
    a visible device is a ValueError naming the key. With ``local_rank`` (DDP), that GPU is selected and returned."""
    try:
        import torch
    except ImportError as exc:  # optional in the vision env (only the learned upscalers need it)
        raise RuntimeError(f"{key}: choosing a torch device needs PyTorch, which is not installed") from exc

    base, _, index = setting.partition(":")
    if base not in ("cpu", "cuda", "auto") or (index and (base != "cuda" or not index.isdigit())):
        raise ValueError(f"{key} must be cpu, cuda, cuda:N or auto, got {setting!r}")
    wants_cuda = base == "cuda" or (setting == "auto" and (gpus is None or gpus > 0) and torch.cuda.is_available())
    if not wants_cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"{key} is {setting!r} but no CUDA device is visible (set {key}: auto or cpu)")
    if local_rank is None:
        return torch.device(setting if index else "cuda")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)
