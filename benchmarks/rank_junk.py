"""Does the discriminator ranking find bad data? Plant junk in the demo's training set, train briefly, rank.

    nice -n 10 .venv/bin/python benchmarks/rank_junk.py --results results/demo --work results/bench_rank \
        [--kimg 3] [--junk 0.1] [--shared ../shared/data]

1. The demo's selected faces (RES/select/dataset.parquet) plus junk crops (``--junk`` of the total, in three equal
   kinds): background patches (random crops of the illustrations under ../shared/data/illustrations, faces
   unlikely), text (random words drawn on a plain colour) and greyscale faces (demo faces converted to grey). They
   are written as PNGs and packed into an HDF5 pack (animefaces.pack.hdf5).
2. Training: ``python -m animefaces.train`` with the demo's settings (tiny preset, CPU, 1 thread) for ``--kimg``.
3. Ranking: the newest snapshot's D (animefaces.rank, batch 4, 5 shuffles, seed 0) scores every image.
Prints how many junk images land in the bottom decile against chance (10% of each kind), per kind, and the mean
rank percentile of each kind. Prints Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

from animefaces.pack.hdf5 import write_hdf5  # noqa: E402
from animefaces.rank import load_discriminator, newest_snapshot, rank_items, score_images  # noqa: E402

WORDS = ["sample", "copyright", "artist", "page 12", "twitter", "pixiv", "2019", "thank you", "THE END", "chapter"]


def junk_images(faces: list[Path], shared: Path, n: int, size: int, seed: int) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    ill = sorted(p for p in (shared / "illustrations").rglob("*") if p.suffix.lower() in (".jpg", ".png", ".jpeg"))
    out: list[tuple[str, np.ndarray]] = []
    for k in range(n):
        kind = ("background", "text", "greyscale")[k % 3]
        if kind == "background" and ill:
            with Image.open(ill[int(rng.integers(len(ill)))]) as im:
                im = im.convert("RGB")
                side = int(min(im.size) * rng.uniform(0.15, 0.3))
                x = int(rng.integers(0, im.width - side + 1))
                y = int(rng.integers(0, im.height - side + 1))
                arr = np.asarray(im.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.BOX))
        elif kind == "text" or not ill:
            kind = "text"
            im = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(150, 256, 3)))
            d = ImageDraw.Draw(im)
            fnt = ImageFont.load_default(size=max(8, size // 6))
            for line in range(3):
                d.text((2, 2 + line * size // 3), str(rng.choice(WORDS)), fill=(0, 0, 0), font=fnt)
            arr = np.asarray(im)
        else:
            with Image.open(faces[int(rng.integers(len(faces)))]) as im:
                arr = np.asarray(im.convert("L").convert("RGB"))
        out.append((kind, arr))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results/demo")
    ap.add_argument("--work", default="results/bench_rank")
    ap.add_argument("--shared", default=os.environ.get("ANIMEFACES_SHARED", "../shared/data"))
    ap.add_argument("--kimg", type=float, default=3)
    ap.add_argument("--junk", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shuffles", type=int, default=5)
    ap.add_argument("--shuffle-seed", type=int, help="seed of the ranking's shuffles (default: --seed)")
    ap.add_argument("--rank-only", action="store_true", help="skip training; rank with the newest snapshot so far")
    ap.add_argument("--figure", default="", help="write a score plot per kind here (PNG)")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = pd.read_parquet(Path(args.results) / "select" / "dataset.parquet")
    faces = [Path(p) for p in data["path"]]
    size = Image.open(faces[0]).size[0]
    n_junk = int(round(args.junk * len(faces) / (1 - args.junk)))
    junk = junk_images(faces, Path(args.shared), n_junk, size, args.seed)
    kinds = ["face"] * len(faces) + [k for k, _ in junk]
    images = [np.asarray(Image.open(p).convert("RGB")) for p in faces] + [a for _, a in junk]
    order = np.random.default_rng(args.seed).permutation(len(images))
    images = [images[i] for i in order]
    kinds = [kinds[i] for i in order]
    pack = work / "pack.h5"
    t0 = time.perf_counter()
    if not pack.exists():
        write_hdf5(pack, images, np.zeros(len(images), dtype=np.int64), size)
    train_dir = work / "train"
    params = {"preset": "tiny", "gpus": 0, "threads": 1, "kimg": args.kimg, "device": "cpu"}
    if not args.rank_only and not (train_dir / "network-final.pt").exists():
        subprocess.run(
            [sys.executable, "-m", "animefaces.train", "--data", str(pack), "--outdir", str(train_dir)]
            + ["--params", json.dumps(params), "--threads", "1"],
            check=True,
        )
    train_s = time.perf_counter() - t0
    snap = newest_snapshot(train_dir)
    D, meta = load_discriminator(snap)
    x = np.stack([a.transpose(2, 0, 1) for a in images])
    from animefaces.pack.source import box_downscale

    x = box_downscale(x, size // int(D.resolution))
    shuffle_seed = args.seed if args.shuffle_seed is None else args.shuffle_seed
    scores = score_images(D, x, None, 4, args.shuffles, shuffle_seed)
    items = pd.DataFrame(
        {
            "item_id": [f"{k}:{i}" for i, k in enumerate(kinds)],
            "post_id": pd.array([None] * len(kinds), dtype="Int64"),
            "shard": "",
            "path": "",
            "label": 0,
        }
    )
    table = rank_items(items, scores)
    table["kind"] = table["item_id"].str.split(":").str[0]
    n = len(table)
    decile = table.head(int(np.ceil(n / 10)))
    nimg = meta.get("counters", {}).get("nimg", "?")
    print(
        f"{len(faces)} demo faces + {n_junk} junk ({args.junk:.0%}), trained {args.kimg} kimg (tiny preset, CPU, "
        f"1 thread; {train_s:.0f} s incl. packing), D from {snap.name} ({nimg} images), "
        f"batch 4, {args.shuffles} shuffles (seed {shuffle_seed}).\n"
    )
    print(
        "| kind | count | in bottom decile | share in bottom decile (chance 10%) | mean rank percentile (0 = lowest) |"
    )
    print("|---|---|---|---|---|")
    for kind in ["background", "text", "greyscale", "face"]:
        part = table[table["kind"] == kind]
        if not len(part):
            continue
        inb = int((decile["kind"] == kind).sum())
        print(f"| {kind} | {len(part)} | {inb} | {inb / len(part):.0%} | {((part['rank'] - 1) / (n - 1)).mean():.2f} |")
    junk_in = int((decile["kind"] != "face").sum())
    print(
        f"\nBottom decile: {len(decile)} images, {junk_in} of them junk ({junk_in / len(decile):.0%}; junk is "
        f"{n_junk / n:.0%} of the set). Mean std over shuffles {table['score_std'].mean():.3f} vs std of means "
        f"{table['score_mean'].std():.3f}."
    )
    table.to_csv(work / "ranking.tsv", sep="\t", index=False)
    if args.figure:
        plot_scores(table, float(decile["score_mean"].max()), Path(args.figure), f"D after {nimg} images")
    return 0


def plot_scores(table: pd.DataFrame, cut: float, path: Path, title: str) -> None:
    """One row of jittered points per kind (mean D score), the bottom-decile cut as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ["face", "greyscale", "text", "background"] if (table["kind"] == k).any()]
    fig, ax = plt.subplots(figsize=(6, 2.4), dpi=100)
    rng = np.random.default_rng(0)
    for row, kind in enumerate(kinds):
        part = table[table["kind"] == kind]["score_mean"].to_numpy()
        inb = int((part <= cut).sum())
        ax.scatter(part, row + rng.uniform(-0.25, 0.25, len(part)), s=6, alpha=0.6)
        ax.text(1.01, row, f"{inb}/{len(part)} in bottom 10%", transform=ax.get_yaxis_transform(), va="center",
                fontsize=7)  # fmt: skip
    ax.axvline(cut, color="k", lw=0.8, ls="--")
    ax.set_yticks(range(len(kinds)), kinds, fontsize=8)
    ax.set_xlabel("mean D score over shuffles (low = judged unreal)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(f"Planted junk in the demo set: {title}; dashed = bottom-decile cut", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
