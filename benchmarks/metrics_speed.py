"""Speed of the offline proxy metric on the CPU: random-feature extraction (images/s) and the statistics.

    nice -n 10 .venv/bin/python benchmarks/metrics_speed.py --threads 1 --repeats 3

Real getchu faces (``../shared/data/getchu_faces_64.tar``, or synthetic discs with ``--synthetic``) at 32 and
64 px; feature extraction is timed per resolution (median of ``--repeats``, interleaved), then rand-fd and rand-kid
(100 subsets of 1000) on 2 x ``--n`` feature rows. Prints one JSON line. Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

import torch  # noqa: E402
from animefaces.metrics.features import RandomConvFeatures, extract  # noqa: E402
from animefaces.metrics.images import load_images, to_resolution  # noqa: E402
from animefaces.metrics.stats import frechet_distance_features, kernel_distance  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="images per set")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/getchu_faces_64.tar"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    faces = load_images(args.data, limit=args.n, seed=0)
    load_s = time.perf_counter() - t0
    ext = RandomConvFeatures()
    sets = {res: to_resolution(faces, res) for res in (32, 64)}
    times: dict[int, list[float]] = {32: [], 64: []}
    for _ in range(args.repeats):
        for res, imgs in sets.items():  # interleaved
            t = time.perf_counter()
            extract(ext, imgs)
            times[res].append(time.perf_counter() - t)
    feats = extract(ext, sets[32])
    other = extract(ext, to_resolution(load_images(args.data, limit=args.n, seed=1), 32))
    t = time.perf_counter()
    frechet_distance_features(feats, other)
    fd_s = time.perf_counter() - t
    t = time.perf_counter()
    kernel_distance(feats, other, 100, 1000)
    kid_s = time.perf_counter() - t
    t = time.perf_counter()
    kernel_distance(feats, other, 100, 1000, max_gram_bytes=0)
    kid_subsets_s = time.perf_counter() - t
    out = {
        "n": args.n,
        "threads": args.threads,
        "load_tar_images_per_s": round(args.n / load_s, 1),
        "features_images_per_s_32px": round(args.n / statistics.median(times[32]), 1),
        "features_images_per_s_64px": round(args.n / statistics.median(times[64]), 1),
        "rand_fd_s": round(fd_s, 3),
        "rand_kid_s_whole_kernel": round(kid_s, 3),
        "rand_kid_s_per_subset": round(kid_subsets_s, 3),
        "dim": ext.dim,
        "loadavg": [round(x, 1) for x in __import__("os").getloadavg()],
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
