"""Learning evidence: train on the real getchu faces on the CPU, keep snapshots, then grids + a metric over kimg.

    # 1. train (hours on one CPU core; run it in the background; resumes from its snapshots when restarted)
    nohup .venv/bin/python benchmarks/learning_evidence.py train --preset tiny --resolution 32 --kimg 200 \\
        --out results/evidence/tiny32 > results/evidence/tiny32.log 2>&1 &
    # 2. grids at chosen kimg points + the offline proxy metric of every snapshot against held-out real faces
    .venv/bin/python benchmarks/learning_evidence.py evaluate --out results/evidence/tiny32 \\
        --figure benchmarks/figures/tiny32-grids.png --curve benchmarks/figures/tiny32-curve.png

The tar (``../shared/data/getchu_faces_64.tar``, 19,992 real 64x64 JPEG faces) is decoded once into an HDF5
pack (``results/evidence/getchu64.h5``, our pack writer) with a fixed 1,000-face hold-out set that training never
sees (``getchu64-heldout.h5``); the metric compares generated images with the hold-out faces. Training is the
project's own loop (``animefaces.train.loop.Trainer``) with one tick per kimg and a snapshot every
``--snap-kimg`` kimg (all kept).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TAR = REPO.parent / "shared" / "data" / "getchu_faces_64.tar"
HELDOUT = 1000


def build_packs(tar_path: Path, out_dir: Path) -> tuple[Path, Path]:
    """Decode the tar once into a training pack and a hold-out pack (sorted names; every 20th face held out)."""
    from animefaces.pack.hdf5 import write_hdf5

    train_h5, held_h5 = out_dir / "getchu64.h5", out_dir / "getchu64-heldout.h5"
    if train_h5.exists() and held_h5.exists():
        return train_h5, held_h5
    out_dir.mkdir(parents=True, exist_ok=True)
    imgs = []
    with tarfile.open(tar_path) as tf:
        members = sorted(
            (m for m in tf.getmembers() if m.isfile() and m.name.lower().endswith(".jpg")), key=lambda m: m.name
        )
        for m in members:
            with Image.open(io.BytesIO(tf.extractfile(m).read())) as im:
                imgs.append(np.asarray(im.convert("RGB").resize((64, 64), Image.LANCZOS)))
    held = set(range(0, len(imgs), len(imgs) // HELDOUT)[:HELDOUT])
    train = [a for i, a in enumerate(imgs) if i not in held]
    hold = [a for i, a in enumerate(imgs) if i in held]
    write_hdf5(train_h5, train, np.zeros(len(train), dtype=np.int64), 64)
    write_hdf5(held_h5, hold, np.zeros(len(hold), dtype=np.int64), 64)
    print(f"packs: {len(train)} training faces -> {train_h5}, {len(hold)} held out -> {held_h5}", flush=True)
    return train_h5, held_h5


def cmd_train(args: argparse.Namespace) -> int:
    from animefaces.config import parse_params
    from animefaces.train.loop import train

    train_h5, _ = build_packs(Path(args.tar), Path(args.packs))
    overrides = {
        "preset": args.preset,
        "resolution": args.resolution,
        "device": "cpu",
        "gpus": 0,
        "threads": args.threads,
        "kimg": args.kimg,
        "kimg_per_tick": 1.0,
        "snap": args.snap_kimg,
        "keep_snapshots": 0,
        "seed": args.seed,
    }
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    params = parse_params(json.dumps(overrides), "train")
    return train(params, str(train_h5), args.out, threads=args.threads)


def _grid_rows(out: Path, kimgs: list[float]) -> list[tuple[float, Path]]:
    """The tick grid nearest to each wanted kimg (tick 0 = before training)."""
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    ticks = [(0.0, 0)] + [(float(r["kimg"]), int(r["tick"])) for r in metrics]
    chosen = []
    for k in kimgs:
        kimg, tick = min(ticks, key=lambda t: abs(t[0] - k))
        path = out / "grids" / f"tick-{tick:06d}.png"
        if path.exists() and (kimg, path) not in chosen:
            chosen.append((kimg, path))
    return chosen


def cmd_evaluate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    rows = _grid_rows(out, args.kimgs)
    if args.figure:
        figure(rows, Path(args.figure), args.crop)
    results = []
    if args.metric:
        from animefaces.train.checkpoint import list_snapshots

        _, held_h5 = build_packs(Path(args.tar), Path(args.packs))
        metric = _proxy(held_h5, args.n)
        done = {}
        cache = out / "evidence-metric.json"
        if cache.exists():
            done = {float(r["kimg"]): r for r in json.loads(cache.read_text())["points"]}
        for i, (kimg, path) in enumerate(sorted(list_snapshots(out / "snapshots"))):
            if kimg not in done and (i + 1) % args.stride == 0:
                done[kimg] = {"kimg": kimg, **metric(path)}
                print(json.dumps(done[kimg]), flush=True)
                cache.write_text(json.dumps({"points": [done[k] for k in sorted(done)]}, indent=1))
        results = [done[k] for k in sorted(done)]
        if args.curve:
            curve(results, Path(args.curve))
    speed = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    sec = [r["sec_per_kimg"] for r in speed]
    print(
        json.dumps(
            {
                "grids": [[k, str(p)] for k, p in rows],
                "kimg": speed[-1]["kimg"] if speed else 0,
                "median_s_per_kimg": float(np.median(sec)) if sec else None,
                "metric": results,
            }
        )
    )
    return 0


def _proxy(held_h5: Path, n: int):
    """A function snapshot -> the offline proxy metrics (rand-fd, rand-kid) of its G_ema against ``n`` held-out
    real faces (never seen in training), both at the network's resolution."""
    from animefaces.metrics import evaluate

    def run(path: Path) -> dict:
        r = evaluate(str(path), str(held_h5), ["rand-fd", "rand-kid"], num_fake=n, num_real=n, seed=123)
        return {k: r[k] for k in ("rand-fd", "rand-kid")}

    return run


def figure(rows: list[tuple[float, Path]], path: Path, crop: int) -> None:
    """One strip per kimg point: the first ``crop`` columns of the tick grid, labelled with the kimg."""
    from PIL import ImageDraw

    strips = []
    for kimg, grid_path in rows:
        with Image.open(grid_path) as im:
            g = im.convert("RGB")
        cell = g.width // 8  # tick grids are train.grid_cols = 8 columns wide (the default)
        strip = g.crop((0, 0, g.width, min(g.height, crop * cell)))
        label = Image.new("RGB", (strip.width, 14), "white")
        ImageDraw.Draw(label).text((2, 1), f"{kimg:.0f} kimg", fill="black")
        both = Image.new("RGB", (strip.width, strip.height + 14), "white")
        both.paste(label, (0, 0))
        both.paste(strip, (0, 14))
        strips.append(both)
    width = max(s.width for s in strips)
    canvas = Image.new("RGB", (width, sum(s.height for s in strips)), "white")
    y = 0
    for s in strips:
        canvas.paste(s, (0, y))
        y += s.height
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)
    print(f"figure: {path}", flush=True)


def curve(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in results[0] if k != "kimg"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot([r["kimg"] for r in results], [r[key] for r in results], marker=".")
        ax.set_xlabel("kimg")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    print(f"curve: {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("train", "evaluate"):
        p = sub.add_parser(name)
        p.add_argument("--out", required=True, help="training output folder")
        p.add_argument("--tar", default=str(TAR))
        p.add_argument("--packs", default="results/evidence", help="where the decoded packs are cached")
    t = sub.choices["train"]
    t.add_argument("--preset", default="tiny")
    t.add_argument("--resolution", type=int, default=32)
    t.add_argument("--kimg", type=float, default=200)
    t.add_argument("--snap-kimg", type=int, default=5, help="snapshot every this many 1-kimg ticks")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="extra train.* override")
    e = sub.choices["evaluate"]
    e.add_argument("--kimgs", type=float, nargs="+", default=[0, 10, 25, 50, 100, 150, 200])
    e.add_argument("--crop", type=int, default=2, help="grid rows per kimg point in the figure")
    e.add_argument("--figure", default=None)
    e.add_argument("--curve", default=None)
    e.add_argument("--metric", action="store_true", help="compute the offline proxy metric of every snapshot")
    e.add_argument("--n", type=int, default=1000, help="images per side for the metric")
    e.add_argument("--stride", type=int, default=1, help="evaluate every this-many-th snapshot")
    args = ap.parse_args(argv)
    return cmd_train(args) if args.cmd == "train" else cmd_evaluate(args)


if __name__ == "__main__":
    raise SystemExit(main())
