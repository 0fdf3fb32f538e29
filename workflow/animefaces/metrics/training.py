"""Metrics during training: every ``train.metrics_every`` ticks (and at the last tick), G_ema vs the training data.

The real images are ``train.metrics_images`` images drawn (seeded) from the training data at the training
resolution; their features are computed once per process. G_ema generates as many images (seeds 0.., constant
noise), without touching the run's RNG streams, so enabling metrics does not change training. Values go into the
tick's row of ``metrics.jsonl`` (keys ``rand-fd``, ``rand-kid``, ``fid``, ``kid``, ``*_std``, ``metrics_s``).
Only rank 0 computes (the other DDP ranks return nothing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import fill_defaults
from .compute import compute
from .features import check_metric_names
from .images import generate_images, pick_subset


class TrainingMetrics:
    def __init__(
        self,
        names: list[str],
        every: int,
        num_images: int,
        reals: Callable[[np.ndarray], torch.Tensor] | None,
        count: int,
        device: str | torch.device = "cpu",
        inception_path: str | None = None,
        enabled: bool = True,
        log: Callable[[str], None] = print,
    ) -> None:
        check_metric_names(list(names), "train.metrics")
        self.names, self.every, self.num_images = list(names), max(1, int(every)), int(num_images)
        self.reals, self.count, self.device = reals, count, device
        self.inception_path, self.enabled, self.log = inception_path, enabled and bool(names), log
        self._real_images: np.ndarray | None = None
        self._real_features: dict[str, np.ndarray] = {}

    @classmethod
    def from_config(cls, cfg: dict[str, Any], data: Any, device, rank: int, log=print) -> TrainingMetrics:
        """From the train section (``metrics``, ``metrics_every``, ``metrics_images``, ``metrics_inception_path``)
        and the training :class:`~animefaces.train.data.ImageData`."""
        cfg = fill_defaults(cfg, "train")
        return cls(
            list(cfg["metrics"] or []),
            cfg["metrics_every"],
            cfg["metrics_images"],
            lambda idx: data.get(torch.from_numpy(idx)),
            len(data),
            device,
            cfg.get("metrics_inception_path"),
            enabled=rank == 0,
            log=log,
        )

    def due(self, tick: int, done: bool) -> bool:
        return self.enabled and (done or tick % self.every == 0)

    def at_tick(self, tick: int, done: bool, G_ema: nn.Module) -> dict[str, Any]:
        """The metric values for this tick's row ({} when not due or disabled)."""
        if not self.due(tick, done):
            return {}
        t0 = time.perf_counter()
        if self._real_images is None:
            self._real_images = self.reals(pick_subset(self.count, self.num_images, 0)).numpy()
        fake = generate_images(G_ema, len(self._real_images), seed=0, device=self.device)
        values = compute(
            self._real_images,
            fake,
            self.names,
            inception_path=self.inception_path,
            real_features=self._real_features,
        )
        values["metrics_s"] = time.perf_counter() - t0
        self.log("metrics: " + "  ".join(f"{k} {v:.5g}" for k, v in values.items()))
        return values
