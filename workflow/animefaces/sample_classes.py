"""Sampling from a class-conditional generator (BigGAN, or StyleGAN2 with ``train.cond``), classes named from
``RES/ingest/classes.tsv`` (label 0 = ``(unlabelled)``, as ``classtable`` names it).

``python -m animefaces.sample_classes <what> --network NET --classes RES/ingest/classes.tsv ... --params JSON``:

- ``sheets``: ``OUT/sheet-000.png``, ... (rows = classes, ``sample.sheet_rows`` per sheet, each row labelled with
  its class name; columns = ``sample.sheet_seeds``, the same latent in every row, so a column shows one z across
  classes) + ``OUT/truncation.png`` (rows = classes with one seed each, columns = ``sample.class_truncations``)
  + ``OUT/sheets.json``;
- ``images``: ``sample.class_images`` images per class, ``OUT/c003_hatsune_miku_seed0000012.png`` (class id, class
  name and seed in the name: any image can be regenerated) + ``OUT/index.json``;
- ``video``: a class-interpolation video: ``video_grid`` x ``video_grid`` fixed latents while the class vector moves
  smoothly from one class to the next (``class_video_seconds`` per class), the current classes written on top.

Latents: z comes from the seed alone (numpy's legacy generator). Truncation (``sample.class_truncation``,
``class_truncations``): for BigGAN the threshold of the truncated normal (components beyond it redrawn; Brock et
al.); for StyleGAN2 the psi of ``w = w_avg + psi (w - w_avg)``. ``null`` = none.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .atomic import write_json
from .device import resolve_device
from .sample import seed_latent, write_mp4
from .train.monitor import save_png, tile, to_uint8


# ------------------------------------------------------------------------------------------------ renderers
def _render_stylegan2(G: nn.Module, seeds: list[int], c: Tensor, truncation: float | None, device) -> np.ndarray:
    z = torch.from_numpy(np.stack([seed_latent(s, G.z_dim) for s in seeds])).to(device)
    psi = 1.0 if truncation is None else float(truncation)
    ws = G.mapping(z, c.to(device), truncation_psi=psi)
    return to_uint8(G.synthesis(ws, noise_mode="const"))


def _render_biggan(G: nn.Module, seeds: list[int], c: Tensor, truncation: float | None, device) -> np.ndarray:
    from .train.biggan import truncated_latent

    z = torch.from_numpy(np.stack([truncated_latent(s, G.z_dim, truncation) for s in seeds])).to(device)
    return to_uint8(G(z, c.to(device)))


# train.model -> how a generator turns (seeds, label vectors, truncation) into uint8 images [N, H, W, 3]
RENDERERS: dict[str, Callable[..., np.ndarray]] = {"stylegan2": _render_stylegan2, "biggan": _render_biggan}


@torch.no_grad()
def render(
    G: nn.Module, model: str, seeds: list[int], c: Tensor, truncation: float | None, device, batch: int = 16
) -> np.ndarray:
    if model not in RENDERERS:
        raise ValueError(f"no class sampler for model {model!r}; known: {sorted(RENDERERS)}")
    out = [
        RENDERERS[model](G, seeds[i : i + batch], c[i : i + batch], truncation, device)
        for i in range(0, len(seeds), batch)
    ]
    return np.concatenate(out) if out else np.zeros((0, G.resolution, G.resolution, 3), np.uint8)


# ------------------------------------------------------------------------------------------------ classes
def safe_name(name: str) -> str:
    """A class name as a file-name fragment (letters, digits, ``.``, ``-``, ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "class"


def class_names(classes_tsv: str | os.PathLike[str] | None, c_dim: int) -> dict[int, str]:
    """class id -> name for 0..c_dim-1: from ``classes.tsv`` through ``classtable`` (0 is its '(unlabelled)');
    ids missing from the table are ``class<id>``."""
    from .classtable import UNLABELLED, UNLABELLED_NAME, read_classes
    from .classtable import class_names as table_names

    names = table_names(read_classes(classes_tsv)) if classes_tsv is not None else {UNLABELLED: UNLABELLED_NAME}
    return {k: names.get(k, f"class{k}") for k in range(c_dim)}


def pick_classes(selection: list[Any] | None, names: dict[int, str], counts: list[int] | None) -> list[int]:
    """The classes to show: ``sample.classes`` (names or ids) or every class with training images."""
    if selection:
        # a name as in the class table, or as in the file names ('unlabelled' for '(unlabelled)')
        by_name = {**{safe_name(n): k for k, n in names.items()}, **{n: k for k, n in names.items()}}
        out = []
        for entry in selection:
            k = by_name.get(entry) if isinstance(entry, str) else int(entry)
            if k is None or k not in names:
                raise ValueError(
                    f"sample.classes: {entry!r} is not a class of this network (it has {len(names)} classes: "
                    f"{', '.join(list(names.values())[:10])}{', ...' if len(names) > 10 else ''})"
                )
            out.append(k)
        return out
    if counts:
        return [k for k in names if k < len(counts) and counts[k] > 0]
    return list(names)


def onehot(ids: list[int], c_dim: int) -> Tensor:
    c = torch.zeros(len(ids), c_dim)
    c[torch.arange(len(ids)), torch.tensor(ids, dtype=torch.long)] = 1
    return c


def label_column(names: list[str], height: int, width: int) -> np.ndarray:
    """A white column with one black class name per ``height``-pixel row (PIL's default font)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (width, height * len(names)), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    for r, name in enumerate(names):
        draw.text((3, r * height + max(0, height // 2 - 6)), name[: max(1, width // 6)], fill=(0, 0, 0))
    return np.asarray(im)


def labelled_grid(cells: np.ndarray, names: list[str], cols: int, pad: int = 2) -> np.ndarray:
    rows = len(names)
    grid = tile(cells, rows, cols, pad=pad)
    h = cells.shape[1] + pad
    col = label_column(names, h, 6 * max(len(n) for n in names) + 8)[: grid.shape[0]]
    col = np.pad(col, ((0, grid.shape[0] - col.shape[0]), (0, 0), (0, 0)), constant_values=255)
    return np.concatenate([col, grid], axis=1)


# ------------------------------------------------------------------------------------------------ products
class Context:
    def __init__(self, G: nn.Module, meta: dict[str, Any], classes_tsv, cfg: dict[str, Any], device) -> None:
        from .train.models import model_of

        if not G.c_dim:
            raise ValueError("this generator is not class-conditional (train.cond false): use animefaces sample")
        self.G, self.cfg, self.device = G, cfg, device
        self.model = meta.get("model") or model_of(meta.get("config"))
        self.names = class_names(classes_tsv, G.c_dim)
        self.classes = pick_classes(cfg["classes"], self.names, meta.get("class_counts"))

    def images(self, seeds: list[int], ids: list[int], truncation: float | None) -> np.ndarray:
        return render(self.G, self.model, seeds, onehot(ids, self.G.c_dim), truncation, self.device, self.cfg["batch"])


def class_sheets(ctx: Context, outdir: str | os.PathLike[str]) -> dict[str, Any]:
    cfg, out = ctx.cfg, Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    seeds, per = cfg["sheet_seeds"], cfg["sheet_rows"]
    index: dict[str, Any] = {"seeds": seeds, "truncation": cfg["class_truncation"], "sheets": []}
    for s, start in enumerate(range(0, len(ctx.classes), per)):
        ids = ctx.classes[start : start + per]
        cells = ctx.images(
            [seed for _ in ids for seed in seeds], [k for k in ids for _ in seeds], cfg["class_truncation"]
        )
        name = f"sheet-{s:03d}.png"
        save_png(out / name, labelled_grid(cells, [ctx.names[k] for k in ids], len(seeds)))
        index["sheets"].append({"file": name, "rows": [{"class_id": k, "name": ctx.names[k]} for k in ids]})
    # truncation figure: one row per class (up to len(truncation_seeds) classes), one seed each
    truncs = cfg["class_truncations"]
    rows = [(k, seed) for k, seed in zip(ctx.classes, cfg["truncation_seeds"], strict=False)]
    cells = np.concatenate([_trunc_row(ctx, k, seed, truncs) for k, seed in rows])
    save_png(out / "truncation.png", labelled_grid(cells, [ctx.names[k] for k, _ in rows], len(truncs)))
    index["truncation_figure"] = {"file": "truncation.png", "columns": truncs, "rows": [[k, s] for k, s in rows]}
    write_json(out / "sheets.json", index)
    return index


def _trunc_row(ctx: Context, k: int, seed: int, truncs: list[float]) -> np.ndarray:
    return np.concatenate([ctx.images([seed], [k], t) for t in truncs])


def class_images(ctx: Context, outdir: str | os.PathLike[str]) -> dict[str, Any]:
    cfg, out = ctx.cfg, Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(cfg["seed_start"], cfg["seed_start"] + cfg["class_images"]))
    files: dict[str, list[str]] = {}
    for k in ctx.classes:
        imgs = ctx.images(seeds, [k] * len(seeds), cfg["class_truncation"])
        names = [f"c{k:03d}_{safe_name(ctx.names[k])}_seed{seed:07d}.png" for seed in seeds]
        for name, img in zip(names, imgs, strict=True):
            save_png(out / name, img)
        files[str(k)] = names
    index = {"classes": {str(k): ctx.names[k] for k in ctx.classes}, "seeds": seeds, "files": files}
    index["truncation"] = cfg["class_truncation"]
    write_json(out / "index.json", index)
    return index


def smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3 - 2 * x)


def class_path(
    classes: list[int], c_dim: int, frames_per_class: int
) -> tuple[np.ndarray, list[tuple[int, int, float]]]:
    """Label vectors [T, c_dim] moving from each class to the next (looping), and (from, to, weight) per frame."""
    n = len(classes)
    vecs, where = [], []
    for i in range(n):
        a, b = classes[i], classes[(i + 1) % n]
        for f in range(frames_per_class):
            w = float(smoothstep(np.asarray(f / frames_per_class)))
            v = np.zeros(c_dim, np.float32)
            v[a] += 1 - w
            v[b] += w
            vecs.append(v)
            where.append((a, b, w))
    return np.stack(vecs), where


def class_video(ctx: Context, path: str | os.PathLike[str]) -> tuple[int, int, int]:
    from PIL import Image, ImageDraw

    cfg = ctx.cfg
    g = cfg["video_grid"]
    fps = cfg["video_fps"]
    per_class = max(1, int(round(cfg["class_video_seconds"] * fps)))
    vecs, where = class_path(ctx.classes, ctx.G.c_dim, per_class)
    seeds = [cfg["video_seed"] + i for i in range(g * g)]

    def frames():
        for t in range(len(vecs)):
            c = torch.from_numpy(np.repeat(vecs[t][None], g * g, axis=0))
            imgs = render(ctx.G, ctx.model, seeds, c, cfg["class_truncation"], ctx.device, cfg["batch"])
            im = Image.fromarray(tile(imgs, g, g))
            a, b, w = where[t]
            label = ctx.names[a] if w < 0.5 else ctx.names[b]
            draw = ImageDraw.Draw(im)
            draw.rectangle([0, 0, 8 + 6 * len(label), 14], fill=(0, 0, 0))
            draw.text((4, 2), label, fill=(255, 255, 255))
            yield np.asarray(im)

    return write_mp4(path, frames(), fps, cfg["video_crf"])


# ------------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    from .cliflags import add_section_flags, section_or_exit
    from .train.checkpoint import load_generator

    ap = argparse.ArgumentParser(prog="animefaces sample-classes", description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["sheets", "images", "video"])
    ap.add_argument("--network", required=True, help="network-final.pt (or a snapshot) of a class-conditional run")
    ap.add_argument("--classes", help="the class table RES/ingest/classes.tsv (names); without it: class<id>")
    ap.add_argument("--outdir", help="sheets/images: output folder")
    ap.add_argument("--out", help="video: output .mp4")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add_section_flags(ap, "sample", aliases={"psis": ["--psi"]})
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    cfg = section_or_exit(ap, args, "sample")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.what in ("sheets", "images") and not args.outdir:
        ap.error(f"{args.what} needs --outdir")
    if args.what == "video" and not args.out:
        ap.error("video needs --out")
    try:
        device = resolve_device(cfg["device"], key="sample.device")
        G, meta = load_generator(args.network, device)
        ctx = Context(G, meta, args.classes, cfg, device)
        print(f"generator: {args.network} ({ctx.model}, {G.resolution} px, {G.c_dim} classes, kimg {meta.get('kimg')})")
        if args.what == "sheets":
            index = class_sheets(ctx, args.outdir)
            print(
                f"sheets: {len(index['sheets'])} sheet(s), {len(ctx.classes)} classes, truncation.png -> {args.outdir}"
            )
        elif args.what == "images":
            index = class_images(ctx, args.outdir)
            print(f"images: {len(index['seeds'])} per class x {len(ctx.classes)} classes -> {args.outdir}")
        else:
            n, w, h = class_video(ctx, args.out)
            print(f"video: {n} frames {w}x{h} -> {args.out}")
    except (ValueError, FileNotFoundError) as exc:
        print(f"animefaces sample-classes: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
