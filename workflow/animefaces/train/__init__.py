"""GAN training (StyleGAN2-class, pure PyTorch): ``python -m animefaces.train --data PACK --outdir RES/train``.

Modules: ``networks`` (G/D), ``losses``, ``augment`` (DiffAugment + ADA), ``data`` (pack loaders, sampler),
``loop`` (training, snapshots, resume, DDP), ``runs`` (one run folder per pack), ``checkpoint``, ``presets``,
``monitor`` (grids, metrics, plots).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from ..config import parse_params

    ap = argparse.ArgumentParser(
        prog="animefaces train",
        description="Train a StyleGAN2-style GAN on a pack, in RES/train/runs/<n>-<pack hash>/ (resumes the run of the "
        "same pack automatically; a different pack starts a new run; RES/train/latest points at the current run).",
    )
    ap.add_argument("--data", required=True, help="the HDF5 pack (RES/pack/<name>.h5) or stylegan2-ada zip")
    ap.add_argument("--outdir", required=True, help="the training folder (RES/train): runs/, latest, final outputs")
    ap.add_argument("--params", default="", help="the config 'train' section as JSON (missing keys: defaults)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch (train.threads overrides)")
    ap.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)  # tests: simulated kill
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    from ..config import ConfigError

    try:
        params = parse_params(args.params, "train")
    except ConfigError as exc:
        print(f"animefaces train: {exc}", file=sys.stderr)
        return 2
    from .runs import train_in_runs

    try:
        return train_in_runs(params, args.data, args.outdir, args.threads, args.stop_after_steps)
    except (ValueError, FileNotFoundError) as exc:
        print(f"animefaces train: error: {exc}", file=sys.stderr)
        return 1
