"""Near-duplicate search benchmark: multi-index Hamming search vs all-pairs, and the max_distance calibration.

    .venv/bin/python benchmarks/neardup_search.py [--sizes 100000 1000000] [--subset 20000] [--shared ../shared/data]

1. search: random 64-bit hashes with planted pairs at every distance 0..t (must all be found) and t+1..t+4 (must
   not be); times ``near_pairs`` and measures its peak memory (tracemalloc sees numpy's allocations); runs the
   all-pairs baseline on a subset, checks both return the same pairs there, and extrapolates all-pairs to n.
2. threshold: 64-bit pHash distances on real anime faces (../shared/data/faces): distinct faces against each
   other, and each face against edited copies of itself (re-encodings, rescales, small crops, recolouring).
   The colour verification that follows the hash is calibrated by benchmarks/dedup_calibration.py.
Prints Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

from animefaces.dedup.hashing import as_uint64, perceptual_hash  # noqa: E402
from animefaces.dedup.index import all_pairs, index_bytes, near_pairs, plan  # noqa: E402


def planted_hashes(n: int, t: int, n_pairs: int, seed: int):
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, n, dtype=np.uint64)
    idx = rng.permutation(n)[: 2 * n_pairs].reshape(n_pairs, 2)
    dist = np.arange(n_pairs) % (t + 5)  # 0..t+4
    for (a, b), d in zip(idx, dist, strict=True):
        flips = rng.choice(64, size=int(d), replace=False)
        h[b] = h[a] ^ np.uint64(int(sum(1 << int(f) for f in flips)))
    pairs = {(int(min(a, b)), int(max(a, b))): int(d) for (a, b), d in zip(idx, dist, strict=True)}
    return h, pairs


def bench_search(n: int, t: int, subset: int, seed: int) -> dict:
    h, pairs = planted_hashes(n, t, n_pairs=2000, seed=seed)
    p = plan(n, t)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    i, j, d = near_pairs(h, t, p)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    want = [pr for pr, dd in pairs.items() if dd <= t]
    far = [pr for pr, dd in pairs.items() if dd > t]
    recall = sum(pr in found for pr in want) / len(want)
    far_found = sum(pr in found for pr in far)
    assert (d <= t).all()
    # all-pairs baseline on the first `subset` hashes, and the index on the same subset
    sub = h[:subset]
    t0 = time.perf_counter()
    bi, bj, _ = all_pairs(sub, t)
    brute = time.perf_counter() - t0
    t0 = time.perf_counter()
    si, sj, _ = near_pairs(sub, t)
    index_sub = time.perf_counter() - t0
    same = np.array_equal(bi, si) and np.array_equal(bj, sj)
    extrapolated = brute * (n / subset) ** 2
    return {
        "n": n,
        "plan": f"m={len(p.blocks)} blocks of {'/'.join(str(w) for _, w in p.blocks)} bits, radius {p.radius}, "
        f"{p.probes} probes",
        "seconds": seconds,
        "pairs": len(i),
        "recall": recall,
        "planted": len(want),
        "far_found": far_found,
        "far": len(far),
        "peak_bytes_per_image": peak / n,
        "index_bytes_per_image": index_bytes(n, p) / n,
        "subset": subset,
        "brute_subset_s": brute,
        "index_subset_s": index_sub,
        "subset_equal": same,
        "brute_extrapolated_s": extrapolated,
        "speedup": extrapolated / seconds,
    }


def edits(rgb: np.ndarray) -> dict[str, np.ndarray]:
    from PIL import Image, ImageEnhance

    im = Image.fromarray(rgb)
    w, h = im.size

    def jpeg(q):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)
        return np.asarray(Image.open(buf).convert("RGB"))

    c = max(1, round(0.03 * w))
    return {
        "jpeg q=90": jpeg(90),
        "jpeg q=33": jpeg(33),
        "downscale 0.5x": np.asarray(im.resize((w // 2, h // 2), Image.Resampling.LANCZOS)),
        "upscale 4x": np.asarray(im.resize((w * 4, h * 4), Image.Resampling.LANCZOS)),
        "crop 3% border": np.asarray(im.crop((c, c, w - c, h - c))),
        "brightness +10%": np.asarray(ImageEnhance.Brightness(im).enhance(1.1)),
        "greyscale": np.asarray(im.convert("L").convert("RGB")),
        "hue shift (R<->B)": np.ascontiguousarray(rgb[:, :, ::-1]),
        "mirror (not a duplicate)": np.ascontiguousarray(rgb[:, ::-1]),
    }


def bench_threshold(shared: Path) -> str:
    from animefaces.decode import load_rgb

    files = []
    for sub in ("faces/getchu", "faces/characters", "faces/selfie2anime"):
        files += sorted(p for p in (shared / sub).rglob("*") if p.is_file())
    if not files:
        return f"(no faces under {shared}: threshold calibration skipped)\n"
    rgbs = [load_rgb(p).rgb for p in files]
    hashes = as_uint64(np.array([perceptual_hash(x) for x in rgbs], dtype=np.int64))
    n = len(hashes)
    d = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    iu = np.triu_indices(n, 1)
    between = d[iu]
    lines = [
        f"pHash (64 bit) on {n} real anime faces from ../shared/data/faces (getchu 64x64, character crops, "
        "selfie2anime 256x256).",
        "",
        f"Distinct faces, all {len(between)} pairs: mean distance {between.mean():.1f}, 1st percentile "
        f"{np.percentile(between, 1):.0f}, minimum {between.min()}.",
        "",
        "| t | distinct-face pairs within t | " + " | ".join(k for k in edits(rgbs[0])) + " |",
        "|---|---|" + "---|" * len(edits(rgbs[0])),
    ]
    per_edit: dict[str, list[int]] = {}
    for rgb, h0 in zip(rgbs, hashes, strict=True):
        for name, arr in edits(rgb).items():
            per_edit.setdefault(name, []).append(int(np.bitwise_count(h0 ^ as_uint64([perceptual_hash(arr)])[0])))
    for t in (4, 6, 8, 10, 12):
        cells = [f"{np.mean(np.array(v) <= t):.0%}" for v in per_edit.values()]
        lines.append(f"| {t} | {int((between <= t).sum())} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Median distance per edit: "
        + ", ".join(f"{k} {int(np.median(v))}" for k, v in per_edit.items())
        + ". Cells: share of edited copies found as near duplicates of their original at threshold t."
    )
    # the colour verification on top of the hash: benchmarks/dedup_calibration.py
    close = [(int(a), int(b), int(d[a, b])) for a, b in zip(*iu, strict=True) if d[a, b] <= 8]
    if close:
        lines.append("")
        lines.append(
            "Distinct-file pairs within 8: "
            + "; ".join(f"{files[a].name} ~ {files[b].name} ({dd} bits)" for a, b, dd in close[:10])
            + (" ..." if len(close) > 10 else "")
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--subset", type=int, default=20_000, help="hashes for the all-pairs baseline")
    ap.add_argument("--max-distance", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shared", default=os.environ.get("ANIMEFACES_SHARED", "../shared/data"))
    ap.add_argument("--skip-threshold", action="store_true")
    ap.add_argument("--skip-search", action="store_true", help="only the threshold calibration")
    args = ap.parse_args(argv)
    t = args.max_distance
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}; single-threaded numpy.\n")
    print(
        f"| n | plan | search time | pairs found (t={t}) | recall on planted (d<={t}) | planted d>{t} reported | "
        "peak memory / image | index / image | all-pairs on subset | index on subset | same pairs | "
        "all-pairs extrapolated to n | speedup |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in [] if args.skip_search else args.sizes:
        r = bench_search(n, t, min(args.subset, n), args.seed)
        print(
            f"| {n:,} | {r['plan']} | {r['seconds']:.1f} s | {r['pairs']} | {r['recall']:.3f} ({r['planted']}) | "
            f"{r['far_found']} of {r['far']} | {r['peak_bytes_per_image']:.0f} B | {r['index_bytes_per_image']:.0f} B"
            f" | {r['brute_subset_s']:.2f} s ({r['subset']:,}) | {r['index_subset_s']:.2f} s | {r['subset_equal']} | "
            f"{r['brute_extrapolated_s']:,.0f} s | {r['speedup']:,.0f}x |"
        )
        sys.stdout.flush()
    if not args.skip_threshold:
        print()
        print(bench_threshold(Path(args.shared)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
