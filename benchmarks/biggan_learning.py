"""Learning evidence for class-conditional BigGAN on a labelled real set (class folders of face crops).

    nice -n 10 .venv/bin/python benchmarks/biggan_learning.py --characters ../shared/data/faces/characters \
        --out /tmp/biggan-characters --kimg 20 --threads 1
    # or the workflow's own pack and class table (e.g. the demo's), then the per-class figure over kimg:
    nice -n 5 .venv/bin/python benchmarks/biggan_learning.py --pack results/demo/pack/hdf5/demo.hdf5 \
        --classes results/demo/ingest/classes.tsv --out /tmp/biggan-demo --kimg 40 --threads 1
    .venv/bin/python benchmarks/biggan_learning.py --pack ... --classes ... --out /tmp/biggan-demo \
        --figure benchmarks/figures/biggan-demo-classes.png --kimgs 0 5 10 20 40

Builds an HDF5 pack in our layout (``imgs`` N x 3 x 64 x 64 uint8, centre-cropped + Lanczos-resized; ``labels`` =
class ids 1..K in sorted folder order, 0 reserved for "unlabelled") and the matching ``classes.tsv`` (names = folder
names without a leading ``NNN_``), trains ``train.model: biggan`` (preset ``biggan-tiny``, 32 px) into
``OUT/train`` (resumes if run again, e.g. with a larger ``--kimg``), then writes the class sheets and truncation
figure (``OUT/samples``) and prints the metrics of the first and last tick as one JSON line.
Run it from the repository root (the package is imported from ./workflow).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

SIZE = 64


def square(im: Image.Image, size: int) -> np.ndarray:
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)).transpose(2, 0, 1)


def build_pack(root: Path, out: Path) -> tuple[Path, Path]:
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    imgs, labels, rows = [], [], []
    for k, folder in enumerate(folders, start=1):
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
        for f in files:
            with Image.open(f) as im:
                imgs.append(square(im, SIZE))
            labels.append(k)
        rows.append((k, re.sub(r"^\d+_", "", folder.name), len(files)))
    out.mkdir(parents=True, exist_ok=True)
    pack = out / "characters.hdf5"
    with h5py.File(pack, "w") as f:
        f.create_dataset("imgs", data=np.stack(imgs), chunks=(16, 3, SIZE, SIZE))
        f["labels"] = np.asarray(labels, np.int64)
    tsv = out / "classes.tsv"
    tsv.write_text("class_id\tname\tcount\n" + "".join(f"{k}\t{n}\t{c}\n" for k, n, c in rows))
    return pack, tsv


def present_classes(pack: Path) -> list[int]:
    with h5py.File(pack, "r") as f:
        return sorted(set(np.asarray(f["labels"][:]).tolist()))


def cmd_train(args: argparse.Namespace, out: Path, pack: Path, tsv: Path) -> int:
    from animefaces.config import parse_params
    from animefaces.sample_classes import main as sample_main
    from animefaces.train.loop import train

    n_rows = len(present_classes(pack))  # tick grids: one row per class present (0 = unlabelled included)
    params = {
        "model": "biggan",
        "preset": "biggan-tiny",
        "device": "cpu",
        "gpus": 0,
        "threads": args.threads,
        "kimg": args.kimg,
        "kimg_per_tick": args.tick_kimg,
        "snap": args.snap,
        "keep_snapshots": 0,
        "grid_rows": n_rows,
        "grid_cols": 8,
    }
    for item in args.set:
        key, _, value = item.partition("=")
        params[key] = json.loads(value)
    # the loop itself in OUT/train (not the workflow's runs/<n>-<hash>/ layout), so snapshots are in OUT/train
    rc = train(parse_params(json.dumps(params), "train"), str(pack), str(out / "train"), threads=args.threads)
    if rc:
        return rc
    sample = json.dumps({"sheet_seeds": list(range(8)), "truncation_seeds": list(range(n_rows))})
    net = str(out / "train" / "network-final.pt")
    rc = sample_main(["sheets", "--network", net, "--classes", str(tsv), "--outdir", str(out / "samples"),
                      "--params", sample, "--threads", str(args.threads)])  # fmt: skip
    rows = [json.loads(x) for x in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    keys = ["kimg", "loss_G", "loss_D", "D_gap", "diversity_ratio", "sn_G_max", "sec_per_kimg", "time_s"]
    print(json.dumps({"first": {k: rows[0].get(k) for k in keys}, "last": {k: rows[-1].get(k) for k in keys}}))
    return rc


# The region whose mean colour tells the demo's characters apart (their hair colour: top of the head and fringe)
HAIR = (slice(2, 12), slice(8, 24))  # rows, columns at 32 px


def region_means(imgs: np.ndarray) -> np.ndarray:
    """Mean RGB (0-255) of the HAIR region of uint8 images [N, 32, 32, 3]."""
    return imgs[:, HAIR[0], HAIR[1]].reshape(len(imgs), -1, 3).mean(1)


def real_region_means(pack: Path, resolution: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Per-image HAIR means of the pack's images box-downscaled to the training resolution, and their labels."""
    with h5py.File(pack, "r") as f:
        imgs, labels = np.asarray(f["imgs"][:]), np.asarray(f["labels"][:])
    n, _, size, _ = imgs.shape
    f = size // resolution
    small = imgs.reshape(n, 3, resolution, f, resolution, f).mean((3, 5)).transpose(0, 2, 3, 1)
    return region_means(small), labels


def nearest_class_accuracy(means: np.ndarray, truth: np.ndarray, centroids: dict[int, np.ndarray]) -> float:
    ids = np.asarray(list(centroids))
    d = np.stack([np.linalg.norm(means - centroids[k], axis=1) for k in ids], axis=1)
    return float((ids[d.argmin(1)] == truth).mean())


def cmd_figure(args: argparse.Namespace, out: Path, pack: Path, tsv: Path) -> int:
    """Per-class sheets of the snapshots nearest to ``--kimgs`` (G_ema, the same seeds in every row and at every
    kimg: rows = classes named from the class table), stacked top to bottom with a kimg label; the median s/kimg
    of the run; and per snapshot a class accuracy: 64 samples per labelled class, each assigned to the class whose
    real images' mean HAIR colour is nearest (chance = 1 / classes; the real images themselves give the ceiling)."""
    from animefaces.config import parse_params
    from animefaces.sample_classes import Context, labelled_grid
    from animefaces.train.checkpoint import list_snapshots, load_generator
    from PIL import ImageDraw

    snaps = sorted(list_snapshots(out / "train" / "snapshots"))
    cfg = parse_params(json.dumps({"sheet_seeds": list(range(args.cols))}), "sample")
    chosen = []
    for k in args.kimgs:
        kimg, path = min(snaps, key=lambda s: abs(s[0] - k))
        if (kimg, path) not in chosen:
            chosen.append((kimg, path))
    real_means, real_labels = real_region_means(pack)
    labelled = sorted(k for k in set(real_labels.tolist()) if k > 0)
    centroids = {k: real_means[real_labels == k].mean(0) for k in labelled}
    keep = real_labels > 0
    ceiling = nearest_class_accuracy(real_means[keep], real_labels[keep], centroids)
    print(json.dumps({"real_images_accuracy": round(ceiling, 3), "chance": round(1 / len(labelled), 3)}))
    strips = []
    for kimg, path in chosen:
        G, meta = load_generator(path, "cpu")
        ctx = Context(G, meta, str(tsv), cfg, "cpu")
        seeds = cfg["sheet_seeds"]
        cells = ctx.images([s for _ in ctx.classes for s in seeds], [k for k in ctx.classes for _ in seeds], None)
        sheet = Image.fromarray(labelled_grid(cells, [ctx.names[k] for k in ctx.classes], len(seeds)))
        both = Image.new("RGB", (sheet.width, sheet.height + 14), "white")
        ImageDraw.Draw(both).text((2, 1), f"{kimg:.1f} kimg", fill="black")
        both.paste(sheet, (0, 14))
        strips.append(both.resize((both.width * args.zoom, both.height * args.zoom), Image.Resampling.NEAREST))
        probe = list(range(1000, 1064))
        fake = np.concatenate([region_means(ctx.images(probe, [k] * len(probe), None)) for k in labelled])
        acc = nearest_class_accuracy(fake, np.repeat(labelled, len(probe)), centroids)
        print(json.dumps({"snapshot": str(path), "kimg": round(kimg, 2), "class_accuracy": round(acc, 3)}), flush=True)
    canvas = Image.new("RGB", (max(s.width for s in strips), sum(s.height for s in strips)), "white")
    y = 0
    for s in strips:
        canvas.paste(s, (0, y))
        y += s.height
    Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.figure, optimize=True)
    rows = [json.loads(x) for x in (out / "train" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    sec = [r["sec_per_kimg"] for r in rows]
    print(json.dumps({"figure": args.figure, "kimg": rows[-1]["kimg"], "median_s_per_kimg": float(np.median(sec))}))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--characters", help="folder of class folders (packed into OUT/characters.hdf5)")
    src.add_argument("--pack", help="an HDF5 pack of the workflow (labels = class ids), e.g. the demo's")
    ap.add_argument("--classes", help="with --pack: its class table (RES/ingest/classes.tsv)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--kimg", type=float, default=20.0)
    ap.add_argument("--tick-kimg", type=float, default=1.0)
    ap.add_argument("--snap", type=int, default=2, help="snapshot every this many ticks (all kept)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="extra train.* override")
    ap.add_argument("--figure", help="no training: per-class sheets of the snapshots nearest to --kimgs -> PNG")
    ap.add_argument("--kimgs", type=float, nargs="+", default=[0, 5, 10, 20, 40])
    ap.add_argument("--cols", type=int, default=8, help="seeds per class row in the figure")
    ap.add_argument("--zoom", type=int, default=2)
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.pack:
        if not args.classes:
            ap.error("--pack needs --classes (the class table)")
        pack, tsv = Path(args.pack), Path(args.classes)
    else:
        pack, tsv = build_pack(Path(args.characters), out)
    if args.figure:
        return cmd_figure(args, out, pack, tsv)
    return cmd_train(args, out, pack, tsv)


if __name__ == "__main__":
    raise SystemExit(main())
