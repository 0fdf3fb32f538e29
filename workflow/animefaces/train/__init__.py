"""GAN training (StyleGAN2-class, pure PyTorch): ``python -m animefaces.train --data PACK --outdir RES/train``.

Modules: ``networks`` (G/D), ``losses``, ``augment`` (DiffAugment + ADA), ``data`` (pack loaders, sampler),
``loop`` (training, snapshots, resume, DDP), ``runs`` (one run folder per pack), ``checkpoint``, ``presets``,
``monitor`` (grids, metrics, plots).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from ..cliflags import add_section_flags, section_or_exit

    ap = argparse.ArgumentParser(
        prog="animefaces train",
        description="Train a StyleGAN2-style GAN on a pack, in RES/train/runs/<n>-<pack hash>/ (resumes the run of the "
        "same pack automatically; a different pack starts a new run; RES/train/latest points at the current run).",
    )
    ap.add_argument(
        "--data",
        required=True,
        help="the pack: RES/pack/hdf5/<name>.hdf5 or a stylegan2-ada zip (RES/pack/zip/<name>.zip)",
    )
    ap.add_argument("--outdir", required=True, help="the training folder (RES/train): runs/, latest, final outputs")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch (train.threads overrides)")
    ap.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)  # tests: simulated kill
    add_section_flags(ap, "train")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    params = section_or_exit(ap, args, "train")
    from .runs import train_in_runs

    try:
        return train_in_runs(params, args.data, args.outdir, args.threads, args.stop_after_steps)
    except (ValueError, FileNotFoundError) as exc:
        print(f"animefaces train: error: {exc}", file=sys.stderr)
        return 1
