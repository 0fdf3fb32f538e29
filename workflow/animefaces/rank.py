"""Discriminator ranking (the seed's ``ranker.py``): score every normalised face with a trained D, find bad data.

A trained discriminator gives real-looking faces high logits and junk (background patches, text, greyscale or
broken crops) low ones. The StyleGAN2 D has a minibatch-stddev layer, so an image's score depends on the other
images in its batch; each item is therefore scored in ``rank.shuffles`` random batchings of ``rank.batch`` items
and the mean and std over them are reported (the seed used batch 4 and 5 shuffles). Deterministic for a fixed
``rank.seed`` (same D, same images, CPU).

No cycle in the workflow: select may drop the lowest-scored items (``select.drop_bottom_fraction`` /
``select.min_d_score``), and the packs and training depend on select, so the ranking can never read the network
that this very DAG trains. It reads a *frozen* discriminator, ``rank.network``: a file no rule writes. Make one
from the latest training run with ``python -m animefaces.rank freeze RES`` (copies the newest snapshot's D and
its constructor kwargs to ``RES/rank/discriminator.pt``), point ``rank.network`` at it, and rerun: rank, select,
the packs, training (a new dataset-aware run), sampling and the report rerun; nothing upstream does.

Outputs: ``RES/rank/scores.parquet`` (item_id, post_id, shard, path, label, score_mean, score_std, rank; rank 1 =
lowest score) and ``RES/rank/sheets/{bottom,top}.png`` (contact sheets of the bottom / top ``rank.sheet_fraction``
with each item's id and score under it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from .atomic import atomic_path
from .cliflags import add_section_flags, add_shard_set_flags, section_or_exit, shard_set_or_exit
from .config import fill_defaults
from .manifest import shard_manifests
from .select import load_items

STAGE = "rank"
FROZEN_FORMAT = "animefaces-frozen-discriminator-v1"
SCORE_COLUMNS = ["item_id", "post_id", "shard", "path", "label", "score_mean", "score_std", "rank"]


class RankError(ValueError):
    """Bad ranking input; the message names the file or key to fix."""


# ------------------------------------------------------------------------------------------------ networks
def _load_torch(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise RankError(
            f"rank.network: {p} does not exist; freeze a trained discriminator first: "
            "python -m animefaces.rank freeze RES (then set rank.network to RES/rank/discriminator.pt)"
        )
    obj = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or "D" not in obj or "D_kwargs" not in obj:
        raise RankError(
            f"rank.network: {p} holds no discriminator (needs 'D' and 'D_kwargs': a training snapshot "
            "RES/train/runs/<run>/snapshots/snapshot-*.pt or a file written by `animefaces.rank freeze`; "
            "network-final.pt holds the generator only)"
        )
    return obj


def load_discriminator(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The discriminator of a training snapshot or frozen file, built from its saved kwargs, in eval mode."""
    from .train.networks import Discriminator

    obj = _load_torch(path)
    D = Discriminator(**obj["D_kwargs"])
    D.load_state_dict(obj["D"])
    D.eval().requires_grad_(False)
    meta = {k: obj[k] for k in ("D_kwargs", "counters", "dataset", "source") if k in obj}
    return D, meta


def newest_snapshot(train_dir: str | Path) -> Path:
    """The newest training snapshot under ``train_dir`` (``latest/snapshots``, ``runs/*/snapshots``, ``snapshots``)."""
    from .train.checkpoint import list_snapshots

    d = Path(train_dir)
    found: list[tuple[float, Path]] = []
    for sub in [d / "latest" / "snapshots", d / "snapshots", *sorted(d.glob("runs/*/snapshots"))]:
        found += [(p.stat().st_mtime, p) for _k, p in list_snapshots(sub)]
    if not found:
        raise RankError(f"no training snapshot under {d} (train first: snakemake ... train)")
    return max(found, key=lambda t: (t[0], str(t[1])))[1]


def freeze(results: str | Path, out: str | Path | None = None, snapshot: str | Path | None = None) -> Path:
    """Copy the discriminator of the newest snapshot in ``RES/train`` to a stable file no rule writes."""
    res = Path(results)
    src = Path(snapshot) if snapshot else newest_snapshot(res / "train")
    obj = _load_torch(src)
    dst = Path(out) if out else res / "rank" / "discriminator.pt"
    dst.parent.mkdir(parents=True, exist_ok=True)
    frozen = {
        "format": FROZEN_FORMAT,
        "D": obj["D"],
        "D_kwargs": obj["D_kwargs"],
        "counters": obj.get("counters", {}),
        "dataset": obj.get("dataset", {}),
        "source": str(src),
    }
    with atomic_path(dst, suffix=".pt") as tmp:
        torch.save(frozen, tmp)
    return dst


# ------------------------------------------------------------------------------------------------ scoring
def load_images(paths: list[str], resolution: int) -> np.ndarray:
    """uint8 ``[N, 3, R, R]`` at the discriminator's resolution (box-averaged by an integer factor, as training
    reads a pack of larger images)."""
    from .pack.source import box_downscale

    out = np.empty((len(paths), 3, resolution, resolution), dtype=np.uint8)
    for k, p in enumerate(paths):
        with Image.open(p) as im:
            rgb = np.asarray(im.convert("RGB"))
        h, w = rgb.shape[:2]
        if h != w or h % resolution or (h // resolution) & (h // resolution - 1):
            raise RankError(
                f"{p}: {w}x{h} cannot be box-downscaled to the discriminator's {resolution} px "
                "(normalise.size must be the D resolution times a power of two)"
            )
        out[k] = box_downscale(rgb.transpose(2, 0, 1)[None], h // resolution)[0]
    return out


@torch.no_grad()
def score_images(
    D: torch.nn.Module,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    batch: int | None = None,
    shuffles: int | None = None,
    seed: int | None = None,
) -> np.ndarray:
    """Logits ``[shuffles, N]``: shuffle ``s`` scores every image once, in batches of ``batch`` images drawn by a
    seeded permutation (minibatch-stddev couples the members of a batch). Left out: the schema's ``rank``
    defaults."""
    default = fill_defaults({}, "rank")
    batch = default["batch"] if batch is None else batch
    shuffles = default["shuffles"] if shuffles is None else shuffles
    seed = default["seed"] if seed is None else seed
    n = len(images)
    c_dim = int(getattr(D, "c_dim", 0))
    x = torch.from_numpy(images).float() / 127.5 - 1.0
    c = torch.zeros(n, 0)
    if c_dim:
        lab = np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        if lab.max(initial=0) >= c_dim:
            raise RankError(f"labels up to {lab.max()} but the discriminator has {c_dim} classes")
        c = torch.zeros(n, c_dim)
        c[torch.arange(n), torch.from_numpy(lab)] = 1.0
    out = np.zeros((shuffles, n), dtype=np.float64)
    rng = np.random.default_rng(seed)
    for s in range(shuffles):
        perm = rng.permutation(n)
        for start in range(0, n, batch):
            idx = torch.from_numpy(perm[start : start + batch])
            logits = D(x.index_select(0, idx), c.index_select(0, idx) if c_dim else None)
            out[s, idx.numpy()] = logits[:, 0].double().numpy()
    return out


def rank_items(items: pd.DataFrame, scores: np.ndarray) -> pd.DataFrame:
    """The ranked table: mean and std over shuffles, rank 1 = lowest mean (ties: item id)."""
    table = items[["item_id", "post_id", "shard", "path", "label"]].copy()
    table["score_mean"] = scores.mean(axis=0)
    table["score_std"] = scores.std(axis=0)
    table = table.sort_values(["score_mean", "item_id"], kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table[SCORE_COLUMNS]


def sheets(table: pd.DataFrame, outdir: str | Path, fraction: float, max_items: int, tile: int = 96) -> list[Path]:
    """Contact sheets of the bottom and top ``fraction`` (at most ``max_items`` each), id and score under each."""
    from .report.images import Tile, contact_sheet, save_png

    n = max(1, min(max_items, int(np.ceil(fraction * len(table))))) if len(table) else 0
    outdir = Path(outdir)
    written = []
    for name, part in (("bottom", table.head(n)), ("top", table.tail(n).iloc[::-1])):
        tiles = [
            Tile(path=r.path, lines=[str(r.item_id), f"#{r.rank} {r.score_mean:+.2f}±{r.score_std:.2f}"])
            for r in part.itertuples()
        ]
        title = f"{name} {len(part)} of {len(table)} by discriminator score (rank, mean ± std over shuffles)"
        path = outdir / f"{name}.png"
        save_png(contact_sheet(tiles, cols=8, tile=tile, title=title), path)
        written.append(path)
    return written


def run(manifests: list[str], params: dict, out: str, sheets_dir: str, threads: int = 1) -> pd.DataFrame:
    """The whole step: load D and every face normalisation kept, score, write the table and the sheets."""
    torch.set_num_threads(max(1, threads))
    if not params["network"]:
        raise RankError("rank.network is empty: set it to a frozen discriminator (python -m animefaces.rank freeze)")
    D, meta = load_discriminator(params["network"])
    items = load_items(manifests)
    if "shard" not in items.columns:
        items["shard"] = ""
    images = load_images(items["path"].tolist(), int(D.resolution))
    scores = score_images(
        D, images, items["label"].to_numpy(), int(params["batch"]), int(params["shuffles"]), int(params["seed"])
    )
    table = rank_items(items, scores)
    table = table.astype({"post_id": "Int64", "label": "int64"})
    with atomic_path(out, suffix=".parquet") as tmp:
        table.to_parquet(tmp, index=False)
    sheets(table, sheets_dir, float(params["sheet_fraction"]), int(params["sheet_max"]))
    print(
        json.dumps({"items": len(table), "network": str(params["network"]), "kimg": meta.get("counters", {})}),
        file=sys.stderr,
    )
    return table


def read_scores(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise RankError(f"{p}: no ranking table (run the rank rule; set rank.network)")
    table = pd.read_parquet(p)
    missing = {"item_id", "score_mean", "rank"} - set(table.columns)
    if missing:
        raise RankError(f"{p}: not a ranking table (missing {sorted(missing)})")
    return table


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "freeze":
        ap = argparse.ArgumentParser(prog="animefaces rank freeze", description=freeze.__doc__)
        ap.add_argument("results", help="the results folder RES (results/<dataset.name>)")
        ap.add_argument("--snapshot", help="a specific snapshot file (default: the newest under RES/train)")
        ap.add_argument("--out", help="default RES/rank/discriminator.pt")
        a = ap.parse_args(argv[1:])
        try:
            dst = freeze(a.results, a.out, a.snapshot)
        except RankError as exc:
            print(f"animefaces rank freeze: error: {exc}", file=sys.stderr)
            return 1
        print(f"froze the discriminator to {dst}; set rank.network: {dst} and rerun the workflow")
        return 0
    ap = argparse.ArgumentParser(prog="animefaces rank", description="Score every normalised face with a trained D.")
    ap.add_argument("--manifests", nargs="+", help="normalise manifests (RES/normalise/manifests/*)")
    ap.add_argument("--out", required=True, help="ranking table to write (RES/rank/scores.parquet)")
    ap.add_argument("--sheets", required=True, help="folder for bottom.png / top.png (RES/rank/sheets)")
    ap.add_argument("--threads", type=int, default=1)
    add_shard_set_flags(ap)
    add_section_flags(ap, STAGE)
    args = ap.parse_args(argv)
    if shard_set_or_exit(ap, args, args.manifests):
        args.manifests = shard_manifests(args.results, "normalise", args.shards)
    params = section_or_exit(ap, args, STAGE)  # a config error: one line naming the key, exit 2
    try:
        run(args.manifests, params, args.out, args.sheets, args.threads)
    except RankError as exc:
        print(f"animefaces rank: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
