"""``animefaces metrics FAKE [FAKE ...] --real REAL``: FID/KID (with the Inception file) and the offline proxy.

FAKE: a network/snapshot ``.pt`` of our trainer (G_ema generates ``--num-fake`` images, seeds 0..), an image
folder, a ``.tar`` of images, or an ``.h5``/``.zip`` pack; REAL: a folder, ``.tar`` or pack. Several FAKEs (e.g.
``snapshots/*.pt``) are evaluated against the same reals, embedded once. One line per FAKE on stdout;
``--json PATH`` also writes one JSON object per FAKE (JSON Lines; ``-`` = stdout instead of the text lines).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

import torch

from ..cliflags import add_section_flags, section_or_exit
from .compute import evaluate
from .features import check_metric_names
from .inception import InceptionUnavailable

PROXY_NOTE = "rand-* = offline proxy on fixed random features; NOT FID, comparable only with rand-* values"


def format_result(r: dict[str, Any]) -> str:
    head = r.get("fake", "?")
    bits = [f"{r['resolution']} px", f"{r['num_fake']} vs {r['num_real']} real"]
    if r.get("kimg") is not None:
        bits.insert(0, f"kimg {r['kimg']:.3f}")
    vals = []
    for key in ("fid", "kid", "rand-fd", "rand-kid"):
        if key in r:
            v = f"{key} {r[key]:.5g}"
            if f"{key}_std" in r:
                v += f" ± {r[f'{key}_std']:.2g}"
            vals.append(v)
    return f"{head} ({', '.join(bits)}): " + "  ".join(vals)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="animefaces metrics", description=__doc__.split("\n\n")[0])
    ap.add_argument("fake", nargs="+", help="network/snapshot .pt, image folder, .tar of images, or .h5/.zip pack")
    ap.add_argument("--real", required=True, help="the real images: folder, .tar of images, or .h5/.zip pack")
    ap.add_argument("--num-fake", type=int, help="images per FAKE (default metrics.num_images)")
    ap.add_argument("--num-real", type=int, help="real images (default metrics.num_images)")
    ap.add_argument("--resolution", type=int, help="compare at this size (default: the network's / the fakes')")
    ap.add_argument("--json", help="write JSON Lines here ('-' = stdout)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (network generation and features)")
    add_section_flags(ap, "metrics")  # --metrics, --num-images, --seed, --psi, --inception-path, ... and --params
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    cfg = section_or_exit(ap, args, "metrics")  # a config error: one line naming the key, exit 2
    names = list(cfg["metrics"])
    try:
        check_metric_names(names, "--metrics")
    except ValueError as exc:
        print(f"animefaces metrics: {exc}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    out = sys.stdout if args.json == "-" else None
    fh = open(args.json, "w", encoding="utf-8") if args.json and args.json != "-" else None  # noqa: SIM115
    try:
        for fake in args.fake:
            r = evaluate(
                fake,
                args.real,
                names,
                num_fake=args.num_fake or cfg["num_images"],
                num_real=args.num_real or cfg["num_images"],
                seed=cfg["seed"],
                resolution=args.resolution,
                psi=cfg["psi"],
                kid_subsets=cfg["kid_subsets"],
                kid_subset_size=cfg["kid_subset_size"],
                inception_path=cfg["inception_path"],
                inception_sha256=cfg["inception_sha256"],
                inception_url=cfg["inception_url"],
                device=args.device,
            )
            line = json.dumps(r, sort_keys=True)
            if out is not None:
                print(line, flush=True)
            else:
                print(format_result(r), flush=True)
            if fh is not None:
                fh.write(line + "\n")
                fh.flush()
        if out is None and any(n.startswith("rand-") for n in names):
            print(f"note: {PROXY_NOTE}")
    except InceptionUnavailable as exc:
        print(f"animefaces metrics: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as exc:
        print(f"animefaces metrics: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if fh is not None:
            fh.close()
    return 0
