"""Demo corpus: generation time (1 vs 2 processes, same bytes) and detection recall of the seed's cascade.

    .venv/bin/python benchmarks/demo_corpus.py --cascade ../shared/data/cascade/lbpcascade_animeface.xml [--posts 300]

Prints a Markdown table for BENCHMARKS.md. Detection is the seed's (grey, equalizeHist, scaleFactor 1.1,
minNeighbors 5, minSize 50); a drawn face counts as found when a detection overlaps its recorded box with
IoU >= 0.3.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

from animefaces.demo import generate, tune  # noqa: E402


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cascade", required=True)
    ap.add_argument("--posts", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        digests = {}
        for threads in (1, 2):
            root = Path(tmp) / f"t{threads}"
            c0, w0 = _cpu(), time.perf_counter()
            truth = generate(root, seed=args.seed, posts=args.posts, threads=threads)
            wall, cpu = time.perf_counter() - w0, _cpu() - c0
            digests[threads] = _digest(root)
            rows.append((threads, wall, cpu, len(truth["posts"]) + len(truth["records"])))
        same = digests[1] == digests[2]

        cascade = tune.load_cascade(args.cascade)
        root = Path(tmp) / "t1"
        stats = {"ge60": [0, 0], "lt60": [0, 0]}
        false_pos = images = 0
        t0 = time.perf_counter()
        for p in truth["posts"]:
            if p["case"] != "ordinary":
                continue
            images += 1
            dets = tune.detect(cascade, (root / p["file"]).read_bytes())
            boxes = [f["box"] for f in p["faces"]]
            false_pos += sum(max((tune.iou(d, b) for b in boxes), default=0) < 0.3 for d in dets)
            for b in boxes:
                key = "ge60" if b[2] >= 60 else "lt60"
                stats[key][1] += 1
                stats[key][0] += any(tune.iou(d, b) >= 0.3 for d in dets)
        detect_s = time.perf_counter() - t0
        planted = tune.check(cascade, tune.planted_posts())
        planted_bad = sum(bool(v) for v in planted.values())

    print(f"demo corpus, seed {args.seed}, {args.posts} ordinary posts ({rows[0][3]} metadata records)\n")
    print("| processes | wall s | CPU s (all processes) | records/CPU s |")
    print("|---|---|---|---|")
    for threads, wall, cpu, n in rows:
        print(f"| {threads} | {wall:.1f} | {cpu:.1f} | {n / cpu:.1f} |")
    ratio = rows[0][1] / rows[1][1]
    print(f"\nbyte-identical outputs with 1 and 2 processes: {same}; wall-time ratio 1/2 = {ratio:.2f}")
    print(f"re-drawn for distinctness: {truth['distinctness']['redrawn_posts']} posts\n")
    print("| drawn faces | found (IoU >= 0.3) | recall |")
    print("|---|---|---|")
    for key, label in (("ge60", ">= 60 px"), ("lt60", "40-59 px")):
        f, t = stats[key]
        print(f"| {label}: {t} | {f} | {f / max(t, 1):.3f} |")
    print(f"\nfalse positives: {false_pos} in {images} images; detection {detect_s:.1f} s")
    print(f"planted cases behaving as recorded: {len(planted) - planted_bad} of {len(planted)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
