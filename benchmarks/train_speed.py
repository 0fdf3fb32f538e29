"""Training speed (s/kimg, img/s) of a preset at a resolution on whatever device is there; prints one JSON line.

    .venv/bin/python benchmarks/train_speed.py --preset tiny --resolution 32 --steps 30
    python benchmarks/train_speed.py --preset stylegan2-256 --resolution 256 --steps 50 --device cuda
    .venv/bin/python benchmarks/train_speed.py --model biggan --threads 1 --steps 10 --warmup 2
    python benchmarks/train_speed.py --model biggan --preset biggan-128 --device cuda --steps 10 --warmup 2

Synthetic random images (an in-memory HDF5 pack in a temp dir, 10 classes) feed the real training step
(StyleGAN2: G main, D main, lazy R1 every 16 steps, EMA, augmentation; BigGAN: d_steps x d_accum D micro-batches,
g_accum G micro-batches, EMA); the first ``--warmup`` steps (cudnn autotuning, compile) are not timed.
Run it from the repository root (the package is imported from ./workflow).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from animefaces.config import parse_params  # noqa: E402
from animefaces.train.loop import Logger, Trainer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="stylegan2", help="train.model (stylegan2 | biggan)")
    ap.add_argument("--preset", default=None, help="default: tiny / biggan-tiny")
    ap.add_argument("--resolution", type=int, default=None, help="default: the preset's")
    ap.add_argument("--batch", type=int, default=None, help="default: the preset's")
    ap.add_argument("--steps", type=int, default=30, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    ap.add_argument("--augment", default=None, help="none|diffaugment|ada|ada+diffaugment (default: preset)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--images", type=int, default=256, help="synthetic dataset size")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="extra train.* override")
    args = ap.parse_args(argv)

    from animefaces.train.models import get_model

    preset = args.preset or {"stylegan2": "tiny", "biggan": "biggan-tiny"}.get(args.model)
    res = args.resolution or get_model(args.model).preset_table.PRESETS[preset]["resolution"]
    overrides = {
        "model": args.model,
        "preset": preset,
        "resolution": res,
        "device": args.device,
        "gpus": 1 if args.device != "cpu" else 0,
        "precision": args.precision,
        "compile": args.compile,
        "threads": args.threads,
        "resume": False,
        "aug_p": 0.2,  # ADA presets start at p = 0; time them with the augmentation actually applied
    }
    if args.batch:
        overrides["batch"] = args.batch
    if args.augment:
        overrides["augment"] = args.augment
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    params = parse_params(json.dumps(overrides), "train")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bench.h5"
        rng = np.random.default_rng(0)
        with h5py.File(data, "w") as f:
            f["imgs"] = rng.integers(0, 256, (args.images, 3, res, res), dtype=np.uint8)
            f["labels"] = np.arange(args.images, dtype=np.int64) % 10  # 10 classes (used by conditional models)
        tr = Trainer(params, str(data), str(Path(tmp) / "out"), log=Logger(1))
        stats: dict = {}
        for _ in range(args.warmup):
            tr.train_step(stats)
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0, c0, n0 = time.perf_counter(), time.process_time(), tr.counters.nimg
        for _ in range(args.steps):
            tr.train_step(stats)
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        imgs = tr.counters.nimg - n0  # real images shown to D (BigGAN: d_steps x d_accum x batch per step)
        out = {
            "benchmark": "train_speed",
            "device": torch.cuda.get_device_name() if tr.device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "model": tr.cfg["model"],
            "preset": tr.cfg["preset"],
            "resolution": res,
            "batch": tr.cfg["batch"],
            "precision": tr.cfg["precision"],
            "augment": tr.cfg["augment"],
            "compile": bool(args.compile),
            "G_params_M": round(sum(p.numel() for p in tr.G.parameters()) / 1e6, 3),
            "D_params_M": round(sum(p.numel() for p in tr.D.parameters()) / 1e6, 3),
            "steps": args.steps,
            "seconds": round(dt, 3),
            "img_per_s": round(imgs / dt, 2),
            "s_per_kimg": round(dt / (imgs / 1000), 2),
            # CPU seconds of this process per kimg: on a shared, overloaded machine wall time is inflated;
            # cpu_s_per_kimg / threads is what the same run would take on otherwise idle cores
            "cpu_s_per_kimg": round(cpu / (imgs / 1000), 2),
            "gpu_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if tr.device.type == "cuda" else None,
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
