"""Train the learned 2x upscaler on the dataset's own large face crops (once per dataset; normalise then uses it).

Training material: the kept dedup crops whose shorter side is at least ``normalise.upscale.learned.min_side``
(0 = ``normalise.size``: the crops normalise will *not* upscale). Items are split by item id into training and
validation sets (``val_fraction``, seeded). Pairs are made on the fly: a random ``patch`` x ``patch`` window of a
training crop (mirrored half the time) is the target; its half-size bicubic (antialiased), JPEG-compressed with
probability ``jpeg_probability`` at a quality drawn from ``jpeg_quality``, is the input. The net
(:mod:`animefaces.upscale_net`) is trained with an L1 loss, Adam and a cosine learning-rate decay for ``steps``
steps of ``batch`` pairs, on CUDA when present (``normalise.upscale.device``), else on the CPU.

At the end the held-out crops are halved (bicubic, no JPEG) and upscaled back by the learned net, lanczos and
bicubic; PSNR/SSIM against the originals go into the model file and ``--report`` (JSON), and a warning is
printed when the net does not beat lanczos.

    python -m animefaces.upscale_train --manifests RES/dedup/manifests/*.parquet --out RES/upscale/model.pt \
        --report RES/upscale/validation.json [--params JSON] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .atomic import write_bytes
from .cliflags import add_section_flags, add_shard_set_flags, section_or_exit, shard_set_or_exit
from .decode import load_rgb
from .device import resolve_device
from .manifest import read_kept, shard_manifests
from .progress import Progress
from .upscale import LanczosUpscaler, TorchBicubicUpscaler, TorchUpscaler
from .upscale_eval import evaluate, halve
from .upscale_net import SRNet, save_model

SECTION = "normalise"


def min_side(params: dict) -> int:
    """The shorter side a crop needs to be training material (``learned.min_side``, 0 = ``size``)."""
    return int(params["upscale"]["learned"]["min_side"]) or int(params["size"])


def training_items(items: pd.DataFrame, side: int, max_images: int, seed: int) -> pd.DataFrame:
    """Kept crops whose width and height are both >= ``side``, sorted by item id; at most ``max_images`` of them
    (a seeded sample, so the same dataset gives the same set)."""
    big = items[(items["width"] >= side) & (items["height"] >= side)]
    big = big.sort_values("item_id").reset_index(drop=True)
    if max_images and len(big) > max_images:
        pick = np.sort(np.random.default_rng(seed).choice(len(big), size=max_images, replace=False))
        big = big.iloc[pick].reset_index(drop=True)
    return big


def split_items(item_ids: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(training ids, validation ids): a seeded split by item (at least one of each when there are two or more)."""
    ids = sorted(map(str, item_ids))
    if len(ids) < 2:
        return ids, []
    n_val = min(len(ids) - 1, max(1, int(round(val_fraction * len(ids))))) if val_fraction > 0 else 0
    order = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(ids[i] for i in order[:n_val])
    chosen = set(val)
    return [i for i in ids if i not in chosen], val


class PairSampler:
    """Random (low, high) training pairs from full-resolution images (H x W x 3 uint8, both sides >= patch)."""

    def __init__(self, images: Sequence[np.ndarray], learned: dict, seed: int) -> None:
        self.patch = int(learned["patch"])
        if self.patch % 2:
            raise ValueError(f"normalise.upscale.learned.patch must be even, got {self.patch}")
        self.images = [im for im in images if min(im.shape[:2]) >= self.patch]
        if not self.images:
            raise ValueError(
                f"no training crop has both sides >= normalise.upscale.learned.patch ({self.patch}); "
                "lower the patch size or normalise.upscale.learned.min_side"
            )
        self.jpeg_p = float(learned["jpeg_probability"])
        self.jpeg_q = (int(learned["jpeg_quality"][0]), int(learned["jpeg_quality"][1]))
        self.rng = np.random.default_rng(seed)

    def pair(self) -> tuple[np.ndarray, np.ndarray]:
        rng, p = self.rng, self.patch
        im = self.images[int(rng.integers(len(self.images)))]
        y = int(rng.integers(im.shape[0] - p + 1))
        x = int(rng.integers(im.shape[1] - p + 1))
        high = im[y : y + p, x : x + p]
        if rng.random() < 0.5:
            high = high[:, ::-1]
        high = np.ascontiguousarray(high)
        q = int(rng.integers(self.jpeg_q[0], self.jpeg_q[1] + 1)) if rng.random() < self.jpeg_p else None
        return halve(high, q), high

    def batch(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        lows, highs = zip(*(self.pair() for _ in range(n)), strict=True)

        def t(arrs):
            x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float().div_(255.0)
            return x.to(device)

        return t(lows), t(highs)


class NetUpscaler(TorchUpscaler):
    """An in-memory :class:`~animefaces.upscale_net.SRNet` as an upscaler (validation, benchmarks)."""

    def __init__(self, net: SRNet, device: torch.device | str = "cpu") -> None:  # noqa: D107
        self._net = net
        super().__init__(str(device))

    def build(self):
        return self._net.to(self.device).eval()


def train_net(
    images: Sequence[np.ndarray],
    learned: dict,
    device: torch.device,
    log=sys.stderr,
    callback: Callable[[int, SRNet], None] | None = None,
) -> SRNet:
    """Train a fresh net on random pairs from ``images`` (the training split) for ``learned['steps']`` steps;
    ``callback(step, net)`` after every tenth of them (benchmarks measure the curve)."""
    seed = int(learned["seed"])
    torch.manual_seed(seed)
    sampler = PairSampler(images, learned, seed)
    net = SRNet(learned["channels"], learned["blocks"]).to(device).train()
    steps, batch = int(learned["steps"]), int(learned["batch"])
    opt = torch.optim.Adam(net.parameters(), lr=float(learned["lr"]))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    running = None
    with Progress("upscale_train", steps, "steps", stream=log) as bar:
        for step in range(steps):
            low, high = sampler.batch(batch, device)
            loss = torch.nn.functional.l1_loss(net(low), high)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            value = float(loss.detach())
            running = value if running is None else 0.98 * running + 0.02 * value
            bar.update()
            if (step + 1) % max(1, steps // 10) == 0:
                print(f"step {step + 1}/{steps}: L1 {running:.4f} (x255 = {running * 255:.2f})", file=log, flush=True)
                if callback is not None:
                    net.eval()
                    callback(step + 1, net)
                    net.train()
    return net.eval()


def validate(net: SRNet, originals: Sequence[np.ndarray], device: torch.device) -> dict:
    """Held-out originals halved and upscaled back: mean PSNR (dB) / SSIM of the net, lanczos and bicubic."""
    if not originals:
        return {}
    ups = {"learned": NetUpscaler(net, device), "lanczos": LanczosUpscaler(), "bicubic": TorchBicubicUpscaler("cpu")}
    scores = evaluate(ups, originals)
    out = {name: {"psnr": round(s.mean_psnr, 4), "ssim": round(s.mean_ssim, 5)} for name, s in scores.items()}
    out["images"] = len(originals)
    out["gain_over_lanczos_db"] = round(out["learned"]["psnr"] - out["lanczos"]["psnr"], 4)
    return out


def load_images(paths: Sequence[str], background: Sequence[int]) -> list[np.ndarray]:
    return [load_rgb(p, background=tuple(background)).rgb for p in paths]


def run(items: pd.DataFrame, params: dict, out: Path, report: Path | None, threads: int = 1) -> dict:
    """Select, split, load, train, validate, write the model (and the report). Returns the report dict."""
    learned = params["upscale"]["learned"]
    torch.set_num_threads(max(1, threads))
    device = resolve_device(params["upscale"]["device"], key="normalise.upscale.device")
    side, seed = min_side(params), int(learned["seed"])
    chosen = training_items(items, side, int(learned["max_images"]), seed)
    train_ids, val_ids = split_items(chosen["item_id"], float(learned["val_fraction"]), seed)
    if len(train_ids) < int(learned["min_images"]):
        raise SystemExit(
            f"upscale_train: only {len(train_ids)} training crops have both sides >= {side} px "
            f"(normalise.upscale.learned.min_side, 0 = normalise.size) and "
            f"normalise.upscale.learned.min_images is {learned['min_images']}: lower min_side, or use "
            "normalise.upscale.backend: lanczos"
        )
    by_id = chosen.set_index("item_id")["path"]
    print(
        f"upscale_train: {len(chosen)} crops >= {side} px ({len(train_ids)} training, {len(val_ids)} held out), "
        f"device {device}, {learned['steps']} steps x {learned['batch']} pairs of {learned['patch']} px",
        file=sys.stderr,
        flush=True,
    )
    background = params["background"]
    t0 = time.perf_counter()
    net = train_net(load_images([by_id[i] for i in train_ids], background), learned, device)
    seconds = time.perf_counter() - t0
    val = validate(net, load_images([by_id[i] for i in val_ids], background), device)
    result = {
        "training": {
            "crops": len(train_ids),
            "min_side": side,
            "seconds": round(seconds, 1),
            "device": str(device),
            "settings": learned,
        },
        "validation": val,
        "validation_items": val_ids,
    }
    save_model(out, net, **result)
    if report is not None:
        write_bytes(report, (json.dumps(result, indent=1) + "\n").encode())
    if val:
        print(
            "validation on {images} held-out crops (2x of the half-size): learned {l:.2f} dB / SSIM {ls:.4f}, "
            "lanczos {z:.2f} dB / {zs:.4f}, bicubic {b:.2f} dB / {bs:.4f}".format(
                images=val["images"],
                l=val["learned"]["psnr"],
                ls=val["learned"]["ssim"],
                z=val["lanczos"]["psnr"],
                zs=val["lanczos"]["ssim"],
                b=val["bicubic"]["psnr"],
                bs=val["bicubic"]["ssim"],
            ),
            file=sys.stderr,
        )
        if val["gain_over_lanczos_db"] <= 0:
            print(
                f"WARNING: the learned upscaler is {-val['gain_over_lanczos_db']:.2f} dB below lanczos on the held-out "
                "crops: train longer (normalise.upscale.learned.steps) or keep normalise.upscale.backend: lanczos",
                file=sys.stderr,
            )
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="animefaces upscale_train",
        description="Train the learned 2x upscaler on the dataset's own large crops (normalise.upscale.learned).",
    )
    ap.add_argument("--manifests", nargs="+", help="dedup manifests (RES/dedup/manifests/*.parquet)")
    ap.add_argument("--out", required=True, help="model file to write (RES/upscale/model.pt)")
    ap.add_argument("--report", help="validation JSON to write (RES/upscale/validation.json)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    add_shard_set_flags(ap)
    add_section_flags(ap, SECTION)
    args = ap.parse_args(argv)
    if shard_set_or_exit(ap, args, args.manifests):
        args.manifests = shard_manifests(args.results, "dedup", args.shards)
    params = section_or_exit(ap, args, SECTION)
    items = pd.concat([read_kept(m) for m in args.manifests], ignore_index=True)
    run(items, params, Path(args.out), Path(args.report) if args.report else None, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
