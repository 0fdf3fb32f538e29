"""Quality metrics for generators: FID/KID on the standard Inception features, and an offline proxy.

- :mod:`.stats` -- Fréchet distance between Gaussians, KID (unbiased MMD^2, cubic polynomial kernel);
- :mod:`.features` -- the extractor registry: ``inception`` (standard, needs the weights file) and ``rand``
  (fixed-seed random conv features, needs nothing; its metrics ``rand-fd`` / ``rand-kid`` are a proxy, not FID);
- :mod:`.inception` -- locating/loading the Inception file (config path, cache, upstream URL, clear error);
- :mod:`.images` -- image sets from folders, tars, packs and generators;
- :mod:`.compute` -- :func:`compute` (arrays) and :func:`evaluate` (paths), used by the CLI and training;
- :mod:`.cli` -- ``animefaces metrics`` / ``python -m animefaces.metrics``.
"""

from __future__ import annotations

from .compute import DEFAULT_METRICS, compute, evaluate
from .features import METRICS
from .stats import frechet_distance, kernel_distance

__all__ = ["DEFAULT_METRICS", "METRICS", "compute", "evaluate", "frechet_distance", "kernel_distance"]


def main(argv: list[str] | None = None) -> int:
    from .cli import main as cli_main

    return cli_main(argv)
