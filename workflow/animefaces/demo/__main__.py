"""CLI: ``python -m animefaces.demo --root R --params JSON [--metadata F ...] [--threads N]``."""

from __future__ import annotations

import argparse
import sys
import time

from ..cliflags import add_section_flags, section_or_exit
from ..config import ConfigError
from .corpus import generate
from .layout import check_metadata_paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="animefaces demo",
        description="Write the demo Danbooru-format mirror (images, metadata, ground_truth.json) under --root.",
    )
    ap.add_argument("--root", required=True, help="mirror root to write (dataset.root)")
    ap.add_argument(
        "--metadata", nargs="*", default=None, help="dataset.metadata as configured: must be the demo's three files"
    )
    ap.add_argument("--threads", type=int, default=1, help="processes for drawing (output is identical)")
    add_section_flags(ap, "demo", skip=("enabled",))
    args = ap.parse_args(argv)
    params = section_or_exit(ap, args, "demo")
    try:
        if args.metadata is not None:
            check_metadata_paths(args.root, args.metadata)
        t0 = time.perf_counter()
        truth = generate(args.root, seed=params["seed"], posts=params["posts"], threads=max(1, args.threads))
    except (ConfigError, ValueError) as exc:
        print(f"animefaces demo: {exc}", file=sys.stderr)
        return 2
    funnel = truth["expected_funnel"]["ingest"]
    print(
        f"demo mirror at {args.root}: {len(truth['posts'])} posts + {len(truth['records'])} extra records "
        f"(seed {params['seed']}), ingest expects {funnel['kept']} kept of {funnel['records']}; "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
