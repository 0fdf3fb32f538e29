"""Learned 2x upscaler vs lanczos vs bicubic on held-out real anime faces (issue 11, part 2).

    nice -n 10 .venv/bin/python benchmarks/upscale_quality.py [--shared ../shared/data] [--steps N] \
        [--model results/bench_upscale/model.pt] [--figure benchmarks/figures/upscale_side_by_side.png]

Training set: ../shared/data/faces/selfie2anime (100 anime faces, 256 px JPEG); evaluation set: a different
source, ../shared/data/faces/characters (100 faces of 10 characters, ~160 px PNG), never seen in training.
The net (animefaces.upscale_net) is trained with animefaces.upscale_train.train_net and the schema's defaults of
normalise.upscale.learned unless flags override them, on the CPU with one thread; its checkpoints are scored on
the evaluation set every tenth of the run (the curve). Each evaluation face is cropped to even sides, halved
(Pillow bicubic, antialiased), upscaled 2x back by each method and compared with the original: PSNR (RGB) and SSIM
(luma), 2-pixel border shaved. Speed: images/s of each method over the evaluation set, ``--repeats`` rounds with
the methods interleaved, medians. A side-by-side picture (original | bicubic | lanczos | learned, nearest-zoomed
crops) goes to ``--figure``. Prints Markdown for BENCHMARKS.md. A trained model is cached at ``--model`` and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

from animefaces.config import fill_defaults  # noqa: E402
from animefaces.upscale import LanczosUpscaler, TorchBicubicUpscaler  # noqa: E402
from animefaces.upscale_eval import evaluate, even_crop, halve  # noqa: E402
from animefaces.upscale_net import load_model, save_model  # noqa: E402
from animefaces.upscale_train import NetUpscaler, train_net  # noqa: E402


def load_faces(folder: Path) -> list[np.ndarray]:
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def side_by_side(ref: np.ndarray, ups: dict, path: Path, box: int = 64, zoom: int = 2) -> None:
    """One face: the full original, then a ``box``-pixel crop of original / each method, zoomed ``zoom``x."""
    ref = even_crop(ref)
    low = halve(ref)
    h, w = ref.shape[:2]
    y, x = min(h - box, max(0, int(h * 0.6) - box // 2)), max(0, w // 2 - box // 2)  # around the eyes
    tiles = [("original", ref)] + [(name, up.upscale(low, 2)) for name, up in ups.items()]
    side = box * zoom
    canvas = Image.new("RGB", (w + len(tiles) * (side + 4) + 4, max(h, side) + 16), (255, 255, 255))
    full = Image.fromarray(ref)
    ImageDraw.Draw(full).rectangle((x, y, x + box - 1, y + box - 1), outline=(255, 0, 0))
    canvas.paste(full, (0, 16))
    draw = ImageDraw.Draw(canvas)
    draw.text((2, 2), "original", fill=(0, 0, 0))
    for k, (name, img) in enumerate(tiles):
        crop = Image.fromarray(img[y : y + box, x : x + box]).resize((side, side), Image.Resampling.NEAREST)
        left = w + 4 + k * (side + 4)
        canvas.paste(crop, (left, 16))
        draw.text((left + 2, 2), name, fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.environ.get("ANIMEFACES_SHARED", "../shared/data"))
    ap.add_argument("--train-set", default="faces/selfie2anime")
    ap.add_argument("--eval-set", default="faces/characters")
    ap.add_argument("--model", default="results/bench_upscale/model.pt", help="cache of the trained net")
    ap.add_argument("--figure", default="benchmarks/figures/upscale_side_by_side.png")
    ap.add_argument("--repeats", type=int, default=3)
    for key in ("steps", "batch", "patch", "channels", "blocks", "seed"):
        ap.add_argument(f"--{key}", type=int)
    ap.add_argument("--lr", type=float)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    shared = Path(args.shared)
    learned = fill_defaults({}, "normalise")["upscale"]["learned"]
    learned.update({k: getattr(args, k) for k in ("steps", "batch", "patch", "channels", "blocks", "seed", "lr")
                    if getattr(args, k) is not None})  # fmt: skip
    train, held_out = load_faces(shared / args.train_set), load_faces(shared / args.eval_set)
    cpu = torch.device("cpu")
    base = {"lanczos": LanczosUpscaler(), "bicubic": TorchBicubicUpscaler("cpu")}
    model = Path(args.model)
    curve: list[tuple[int, float]] = []
    if model.is_file() and load_model(model)[1].get("training", {}).get("settings") == learned:
        net, meta = load_model(model)
        train_s, curve = meta["training"]["seconds"], [tuple(c) for c in meta.get("curve", [])]
        print(f"reusing {model} (trained in {train_s:.0f} s)", file=sys.stderr)
    else:

        def checkpoint(step: int, net) -> None:
            score = evaluate({"learned": NetUpscaler(net, cpu)}, held_out[::3], with_ssim=False)["learned"].mean_psnr
            curve.append((step, round(score, 3)))
            print(f"  step {step}: PSNR {score:.3f} dB on every third held-out face", file=sys.stderr, flush=True)

        t0 = time.perf_counter()
        net = train_net(train, learned, cpu, callback=checkpoint)
        train_s = time.perf_counter() - t0  # includes the checkpoint evaluations
        save_model(model, net, training={"settings": learned, "seconds": round(train_s, 1)}, curve=curve)
    ups = {"bicubic": base["bicubic"], "lanczos": base["lanczos"], "learned": NetUpscaler(net, cpu)}
    quality = evaluate(ups, held_out)
    speeds: dict[str, list[float]] = {name: [] for name in ups}
    for _ in range(args.repeats):  # interleaved rounds; quality is deterministic, only the time varies
        for name, up in ups.items():
            speeds[name].append(evaluate({name: up}, held_out, with_ssim=False)[name].images_per_second)
    lanczos = quality["lanczos"].mean_psnr
    n_params = sum(p.numel() for p in net.parameters())
    print(
        f"Train: {len(train)} faces of {args.train_set} ({learned['steps']} steps x {learned['batch']} pairs of "
        f"{learned['patch']} px, {learned['channels']} channels x {learned['blocks']} blocks = {n_params:,} "
        f"parameters, CPU, 1 thread, nice 10: {train_s / 60:.1f} min incl. checkpoint scoring). Evaluate: "
        f"{len(held_out)} faces of {args.eval_set}, halved and upscaled 2x back.\n"
    )
    print("| method | PSNR (dB, mean) | vs lanczos | SSIM (luma, mean) | faces better than lanczos | img/s (median) |")
    print("|---|---|---|---|---|---|")
    for name, s in quality.items():
        better = sum(a > b for a, b in zip(s.psnr, quality["lanczos"].psnr, strict=True))
        print(
            f"| {name} | {s.mean_psnr:.2f} | {s.mean_psnr - lanczos:+.2f} | {s.mean_ssim:.4f} | "
            f"{better}/{len(s.psnr)} | {np.median(speeds[name]):.1f} |"
        )
    if curve:
        print(
            "\nPSNR (dB) of every third held-out face during training, by step: "
            + ", ".join(f"{s}: {p:.2f}" for s, p in curve)
        )
    gains = np.array(quality["learned"].psnr) - np.array(quality["lanczos"].psnr)
    pick = int(np.argsort(gains)[len(gains) // 2])  # the face with the median gain, not the best one
    side_by_side(held_out[pick], ups, Path(args.figure))
    print(f"\nFigure: {args.figure} (face {pick} of the evaluation set, median gain {gains[pick]:+.2f} dB)")
    print(json.dumps({k: round(v.mean_psnr, 3) for k, v in quality.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
