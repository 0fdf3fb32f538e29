"""Sampling from a trained generator (``RES/train/network-final.pt``).

``python -m animefaces.sample <what> --network NET ... --params JSON`` with ``<what>``:

- ``images``: ``count`` images per truncation psi, ``OUT/psi0.70/seed0001234.png`` (z drawn from the seed alone,
  so any image can be regenerated from its file name), plus ``OUT/images.json``;
- ``figures``: ``OUT/truncation.png`` (rows = seeds, columns = psi from 1 to -1) and
  ``OUT/style_mixing_{coarse,middle,fine}.png`` (rows = destination seeds, columns = source seeds; each cell is
  the destination's w with the source's w in that layer range; the first row/column show the sources/destinations);
- ``video``: an interpolation video: a smoothed random walk in z (Gaussian-filtered white noise over time,
  circular so it loops) for a ``video_grid`` x ``video_grid`` grid, H.264 ``yuv420p`` through imageio-ffmpeg's
  bundled ffmpeg;
- ``montage``: the training montage video from the tick grids (``RES/train/grids/tick-*.png``).

Truncation: ``w = w_avg + psi (w - w_avg)`` on all layers (``G.mapping(..., truncation_psi=psi)``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .atomic import atomic_path, write_json
from .device import resolve_device
from .progress import Progress, track
from .train.monitor import save_png, tile, to_uint8


# ------------------------------------------------------------------------------------------------ helpers
def seed_latent(seed: int, z_dim: int) -> np.ndarray:
    """z for a seed: independent of batch composition and device (numpy's legacy Mersenne Twister)."""
    return np.random.RandomState(seed).randn(z_dim).astype(np.float32)


def seed_labels(G: nn.Module, seeds: list[int], class_idx: int | None) -> Tensor:
    c = torch.zeros(len(seeds), G.c_dim)
    if G.c_dim:
        for i, seed in enumerate(seeds):
            k = class_idx if class_idx is not None else np.random.RandomState(seed + 2**31).randint(G.c_dim)
            if not 0 <= k < G.c_dim:
                raise ValueError(f"sample.class_idx {k} is out of range: the network has {G.c_dim} classes")
            c[i, k] = 1
    return c


@torch.no_grad()
def seeds_to_ws(G: nn.Module, seeds: list[int], psi: float, class_idx: int | None, device) -> Tensor:
    z = torch.from_numpy(np.stack([seed_latent(s, G.z_dim) for s in seeds])).to(device)
    c = seed_labels(G, seeds, class_idx).to(device)
    return G.mapping(z, c, truncation_psi=psi)


@torch.no_grad()
def synth(G: nn.Module, ws: Tensor, noise_mode: str, batch: int) -> np.ndarray:
    """uint8 [N,H,W,3] from ws, in batches."""
    out = [to_uint8(G.synthesis(ws[i : i + batch], noise_mode=noise_mode)) for i in range(0, len(ws), batch)]
    return np.concatenate(out) if out else np.zeros((0, G.resolution, G.resolution, 3), np.uint8)


def psi_dirname(psi: float) -> str:
    return f"psi{psi:.2f}"


def even_pad(frame: np.ndarray) -> np.ndarray:
    """Pad H and W to even sizes (H.264 with yuv420p needs them)."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))


def write_mp4(path: str | os.PathLike[str], frames, fps: int, crf: int = 20) -> tuple[int, int, int]:
    """H.264/yuv420p MP4 from uint8 RGB frames (an iterable), written atomically; returns (frames, W, H)."""
    import imageio_ffmpeg

    it = iter(frames)
    first = even_pad(next(it))
    h, w = first.shape[:2]
    n = 0
    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            (w, h),
            fps=fps,
            codec="libx264",
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            quality=None,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=["-crf", str(crf), "-movflags", "+faststart"],
        )
        writer.send(None)
        for frame in _chain(first, it):
            frame = even_pad(frame)
            if frame.shape[:2] != (h, w):
                raise ValueError(f"{path}: frame {n} is {frame.shape[1]}x{frame.shape[0]}, expected {w}x{h}")
            writer.send(np.ascontiguousarray(frame))
            n += 1
        writer.close()
    return n, w, h


def _chain(first, rest):
    yield first
    yield from rest


def gaussian_smooth_circular(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter along axis 0 with wrap-around (so a smoothed random walk loops seamlessly)."""
    n = x.shape[0]
    if sigma <= 0 or n < 2:
        return x
    freqs = np.fft.rfftfreq(n)
    response = np.exp(-2 * (np.pi * freqs * sigma) ** 2)  # Fourier transform of a unit-area Gaussian
    return np.fft.irfft(np.fft.rfft(x, axis=0) * response.reshape(-1, *[1] * (x.ndim - 1)), n=n, axis=0)


def mixing_ranges(num_ws: int) -> dict[str, tuple[int, int]]:
    """Layer ranges of ws: the StyleGAN paper's coarse (4-8 px), middle (16-32 px), fine (64 px+) when the
    network is large enough (num_ws >= 10, i.e. >= 64 px), else the layers split in thirds."""
    if num_ws >= 10:
        return {"coarse": (0, 4), "middle": (4, 8), "fine": (8, num_ws)}
    a = max(1, round(num_ws / 3))
    return {"coarse": (0, a), "middle": (a, min(2 * a, num_ws - 1)), "fine": (min(2 * a, num_ws - 1), num_ws)}


# ------------------------------------------------------------------------------------------------ products
def sample_images(G: nn.Module, cfg: dict[str, Any], outdir: str | os.PathLike[str], device) -> dict[str, Any]:
    seeds = list(range(cfg["seed_start"], cfg["seed_start"] + cfg["count"]))
    index: dict[str, Any] = {"seeds": seeds, "psis": cfg["psis"], "dirs": {}}
    bar = Progress("sample images", len(seeds) * len(cfg["psis"]), "images")
    for psi in cfg["psis"]:
        d = Path(outdir) / psi_dirname(psi)
        d.mkdir(parents=True, exist_ok=True)
        for i in range(0, len(seeds), cfg["batch"]):
            chunk = seeds[i : i + cfg["batch"]]
            ws = seeds_to_ws(G, chunk, psi, cfg["class_idx"], device)
            for seed, img in zip(chunk, synth(G, ws, cfg["noise_mode"], cfg["batch"]), strict=True):
                save_png(d / f"seed{seed:07d}.png", img)
                bar.update()
        index["dirs"][f"{psi:.2f}"] = psi_dirname(psi)
    bar.close()
    write_json(Path(outdir) / "images.json", index)
    return index


def truncation_figure(G: nn.Module, cfg: dict[str, Any], path, device) -> np.ndarray:
    seeds, psis = cfg["truncation_seeds"], cfg["truncation_psis"]
    ws0 = seeds_to_ws(G, seeds, 1.0, cfg["class_idx"], device)
    cells = []
    for row in range(len(seeds)):
        w = ws0[row : row + 1]
        ws = torch.cat([G.w_avg.lerp(w, psi) for psi in psis])  # same as mapping(..., psi) per column
        cells.append(synth(G, ws, cfg["noise_mode"], cfg["batch"]))
    grid = tile(np.concatenate(cells), len(seeds), len(psis), pad=2)
    save_png(path, grid)
    return grid


def style_mixing_figures(G: nn.Module, cfg: dict[str, Any], outdir, device) -> dict[str, np.ndarray]:
    dst, src = cfg["mix_dst_seeds"], cfg["mix_src_seeds"]
    ws_dst = seeds_to_ws(G, dst, cfg["mix_psi"], cfg["class_idx"], device)
    ws_src = seeds_to_ws(G, src, cfg["mix_psi"], cfg["class_idx"], device)
    img_dst = synth(G, ws_dst, cfg["noise_mode"], cfg["batch"])
    img_src = synth(G, ws_src, cfg["noise_mode"], cfg["batch"])
    res = G.resolution
    blank = np.full((1, res, res, 3), 255, np.uint8)
    out = {}
    for name, (lo, hi) in mixing_ranges(G.num_ws).items():
        cells = [blank, img_src]
        for r in range(len(dst)):
            ws = ws_dst[r : r + 1].repeat(len(src), 1, 1).clone()
            ws[:, lo:hi] = ws_src[:, lo:hi]
            cells += [img_dst[r : r + 1], synth(G, ws, cfg["noise_mode"], cfg["batch"])]
        grid = tile(np.concatenate(cells), len(dst) + 1, len(src) + 1, pad=2)
        save_png(Path(outdir) / f"style_mixing_{name}.png", grid)
        out[name] = grid
    return out


def interpolation_video(G: nn.Module, cfg: dict[str, Any], path, device) -> tuple[int, int, int]:
    fps = cfg["video_fps"]
    n_frames = max(2, int(round(cfg["video_seconds"] * fps)))
    g = cfg["video_grid"]
    rng = np.random.RandomState(cfg["video_seed"])
    z = rng.randn(n_frames, g * g, G.z_dim)
    z = gaussian_smooth_circular(z, cfg["video_smoothing"] * fps)
    z = (z / np.sqrt(np.mean(np.square(z)))).astype(np.float32)  # back to unit variance
    c = torch.zeros(g * g, G.c_dim)
    if G.c_dim:
        k = cfg["class_idx"] if cfg["class_idx"] is not None else None
        classes = [k if k is not None else rng.randint(G.c_dim) for _ in range(g * g)]
        c[torch.arange(g * g), torch.tensor(classes)] = 1
    c = c.to(device)

    def frames():
        for t in range(n_frames):
            with torch.no_grad():
                ws = G.mapping(torch.from_numpy(z[t]).to(device), c, truncation_psi=cfg["video_psi"])
                imgs = synth(G, ws, cfg["noise_mode"], cfg["batch"])
            yield tile(imgs, g, g)

    return write_mp4(path, track(frames(), "sample video", n_frames, "frames"), fps, cfg["video_crf"])


def training_montage(grids_dir: str | os.PathLike[str], path, fps: int, crf: int = 20) -> tuple[int, int, int]:
    """One frame per tick grid (``tick-*.png`` in tick order), labelled with the tick number."""
    from PIL import Image, ImageDraw

    files = sorted(Path(grids_dir).glob("tick-*.png"))
    if not files:
        raise ValueError(f"{grids_dir}: no tick-*.png grids (run training first)")

    def frames():
        size = None
        for f in files:
            with Image.open(f) as im:
                im = im.convert("RGB")
                if size is None:
                    size = im.size
                elif im.size != size:
                    im = im.resize(size, Image.Resampling.LANCZOS)
                draw = ImageDraw.Draw(im)
                label = f"tick {int(f.stem.split('-')[1])}"
                draw.rectangle([0, 0, 8 + 6 * len(label), 14], fill=(0, 0, 0))
                draw.text((4, 2), label, fill=(255, 255, 255))
                yield np.asarray(im)

    return write_mp4(path, track(frames(), "sample montage", len(files), "frames"), fps, crf)


# ------------------------------------------------------------------------------------------------ CLI
def seed_range(text: str) -> dict:
    """``--seeds A-B`` (or ``A``) as the sample keys it means: ``{"seed_start": A, "count": B - A + 1}``."""
    start, _, end = text.partition("-")
    try:
        a, b = int(start), int(end or start)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed range like 0-99") from None
    if a < 0 or b < a:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= A <= B")
    return {"seed_start": a, "count": b - a + 1}


def main(argv: list[str] | None = None) -> int:
    from .cliflags import add_section_flags, section_or_exit
    from .train.checkpoint import load_generator

    ap = argparse.ArgumentParser(prog="animefaces sample", description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["images", "figures", "video", "montage"])
    ap.add_argument("--network", help="network-final.pt (or a snapshot); not needed for montage")
    ap.add_argument("--outdir", help="images/figures: output folder (RES/samples)")
    ap.add_argument("--out", help="video/montage: output .mp4")
    ap.add_argument("--grids", help="montage: the tick-grid folder (RES/train/grids)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--seeds", type=seed_range, metavar="A-B", help="images: seeds A..B (sets seed_start and count)")
    add_section_flags(ap, "sample", aliases={"psis": ["--psi"]})
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    cfg = section_or_exit(ap, args, "sample", extra=args.seeds or {})
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.what == "montage":
            if not (args.grids and args.out):
                ap.error("montage needs --grids and --out")
            n, w, h = training_montage(args.grids, args.out, cfg["montage_fps"], cfg["video_crf"])
            print(f"montage: {n} frames {w}x{h} -> {args.out}")
            return 0
        if not args.network:
            ap.error(f"{args.what} needs --network")
        device = resolve_device(cfg["device"], key="sample.device")
        G, meta = load_generator(args.network, device)
        model = meta.get("model") or (meta.get("config") or {}).get("model") or "stylegan2"
        if model != "stylegan2":
            raise ValueError(
                f"{args.network} is a {model} generator; psi image sets, style mixing and the latent walk need "
                "StyleGAN2's mapping network. Use `animefaces sample-classes sheets|images|video` instead"
            )
        print(f"generator: {args.network} ({G.resolution} px, {G.num_ws} ws, c_dim {G.c_dim}, kimg {meta.get('kimg')})")
        if args.what == "images":
            if not args.outdir:
                ap.error("images needs --outdir")
            index = sample_images(G, cfg, args.outdir, device)
            print(f"images: {len(index['seeds'])} seeds x psi {cfg['psis']} -> {args.outdir}")
        elif args.what == "figures":
            if not args.outdir:
                ap.error("figures needs --outdir")
            truncation_figure(G, cfg, Path(args.outdir) / "truncation.png", device)
            style_mixing_figures(G, cfg, args.outdir, device)
            print(f"figures: truncation.png, style_mixing_*.png -> {args.outdir}")
        else:
            if not args.out:
                ap.error("video needs --out")
            n, w, h = interpolation_video(G, cfg, args.out, device)
            print(f"video: {n} frames {w}x{h} -> {args.out}")
    except (ValueError, FileNotFoundError) as exc:
        print(f"animefaces sample: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
