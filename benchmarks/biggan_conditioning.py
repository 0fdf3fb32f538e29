"""Does BigGAN's class conditioning learn? A measurable toy: three classes of discs whose colours depend on the class.

    nice -n 10 .venv/bin/python benchmarks/biggan_conditioning.py --out /tmp/biggan-cond --kimg 3 --threads 1

Class k (1..3) = a disc of colour FG[k] on background BG[k] (position/size random), 60 images at 32 px, trained at
16 px with a small BigGAN (``biggan-tiny`` with widths 8). For every snapshot, G_ema (eval mode, standing stats)
draws 64 images per class; each image's mean colour is assigned to the nearest real class mean colour. Prints one
JSON line per snapshot: kimg, the class accuracy (1/3 = chance, 1 = every sample shows its class's colours) and the
mean distance (0-255 scale) between generated and real per-class mean colours.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

FG = {1: (220, 40, 40), 2: (40, 200, 60), 3: (50, 70, 220)}
BG = {1: (250, 250, 240), 2: (20, 20, 20), 3: (150, 150, 150)}


def discs(n_per_class: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    imgs, labels = [], []
    for k in FG:
        for _ in range(n_per_class):
            cx, cy, r = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.2, 0.3)
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
            img = np.where(disc[None], np.array(FG[k])[:, None, None], np.array(BG[k])[:, None, None])
            imgs.append(img.astype(np.uint8))
            labels.append(k)
    return np.stack(imgs), np.asarray(labels, np.int64)


def evaluate(net: Path, real_means: dict[int, np.ndarray], per_class: int = 64) -> dict:
    from animefaces.train import checkpoint as ckpt

    obj = ckpt.load_file(net)
    G, _ = ckpt.load_generator(net)
    hits, dists = 0, []
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for k, mean in real_means.items():
            z = torch.randn(per_class, G.z_dim, generator=gen)
            c = torch.nn.functional.one_hot(torch.full((per_class,), k), G.c_dim).float()
            img = (G(z, c) * 127.5 + 127.5).clamp(0, 255).mean(dim=(2, 3)).numpy()  # [N, 3] mean colours
            names = list(real_means)
            d = np.stack([np.linalg.norm(img - real_means[j], axis=1) for j in names], axis=1)
            hits += int((np.asarray(names)[d.argmin(1)] == k).sum())
            dists.append(float(np.linalg.norm(img.mean(0) - mean)))
    return {
        "kimg": obj["counters"]["nimg"] / 1000 if "counters" in obj else obj.get("kimg"),
        "class_accuracy": hits / (per_class * len(real_means)),
        "mean_colour_error": round(float(np.mean(dists)), 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--kimg", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    imgs, labels = discs(20, 32)
    pack = out / "discs.hdf5"
    with h5py.File(pack, "w") as f:
        f["imgs"] = imgs
        f["labels"] = labels
    real = imgs.reshape(len(imgs), 3, -1).mean(2)
    real_means = {k: real[labels == k].mean(0) for k in FG}
    params = {
        "model": "biggan",
        "preset": "biggan-tiny",
        "device": "cpu",
        "gpus": 0,
        "threads": args.threads,
        "resolution": 16,
        "z_dim": 48,
        "g_ch": 8,
        "d_ch": 8,
        "shared_dim": 16,
        "g_attn": 8,
        "d_attn": 8,
        "kimg": args.kimg,
        "kimg_per_tick": 0.5,
        "snap": 1,
        "keep_snapshots": 0,
        "grid_rows": 3,
        "grid_cols": 8,
    }
    from animefaces.config import parse_params
    from animefaces.train import checkpoint as ckpt
    from animefaces.train.loop import train

    # the loop itself in OUT/train (not the workflow's runs/<n>-<hash>/ layout), so snapshots are in OUT/train
    rc = train(parse_params(json.dumps(params), "train"), str(pack), str(out / "train"))
    for _kimg, path in sorted(ckpt.list_snapshots(out / "train" / "snapshots")):
        print(json.dumps(evaluate(path, real_means)))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
