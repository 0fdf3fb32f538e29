"""Training data path throughput (img/s) at S px: the old inline path vs the read-ahead loader, side by side.

What one "image" costs here is what the training loop's ``_next_batch`` costs per image: the sampler's draw, the
read (HDF5 rows, or a PNG decoded from the zip) with the box-downscale, the uint8 batch handed to the device, and
the float conversion + flips (measured apart: on a GPU it runs there). Paths, each over the same batches:

- ``mem``: the pack decoded into memory, gathered per batch (inline; on a GPU into pinned memory instead);
- ``h5``: HDF5 rows read per batch: the old read (one h5py fancy-indexed read of the sorted rows, in the training
  process: kept here as the baseline) vs the new one (one hyperslab read per run of consecutive rows) inline and in
  W loader processes reading ahead (``train.loader_workers``);
- ``zip per batch``: zip images decoded per batch, inline and in W workers (new: before, a zip was always decoded
  whole into memory, so a zip larger than RAM could not be trained on);
- ``zip load into memory``: decoding the whole zip at start, 1 thread (old) vs W threads (new);
- ``to_float``: the old (mirrored copy of the whole batch + select) vs the new (in place, only flipped images
  mirrored) conversion, checked equal bit for bit on every batch.

Each round runs every path once, in a rotated order; ``--rounds`` rounds; medians. Reported per path: wall img/s
(what this machine delivered, shared and noisy), img per CPU-second of this process + its loader workers (user +
system: the per-core rate that sizes the workers a GPU needs: 2,000 img/s at 256 px, an H100-class GPU at the
goal's speed, / rate = cores), and img per CPU-second of the training process alone (what reading costs the
process that also drives the GPU). On a CPU-only machine the pinned-memory and GPU-transfer parts are not
exercised (not measured). CPU times come from psutil (10 ms ticks): the cheap in-memory rows are coarse.

Packs are built from scratch in a temp dir: N faces from ../shared/data/getchu_faces_64.tar (64 px), upscaled
(bicubic) to S px, written by the project's HDF5 pack writer (chunked, uncompressed: the default) and as a
stylegan2-ada zip of PNGs (PIL's default compression, as the zip pack writes them). Synthetic noise images when the
tar is absent. The HDF5 file is in the page cache after writing: this measures the CPU path, not the disk.

    .venv/bin/python benchmarks/loader_throughput.py --size 256 --n 512 --workers 2 --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import psutil
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workflow"))

from animefaces.pack import zipds  # noqa: E402
from animefaces.pack.hdf5 import _RowReader, write_hdf5  # noqa: E402
from animefaces.pack.source import box_downscale  # noqa: E402
from animefaces.pack.zipds import archive_name  # noqa: E402
from animefaces.train.data import BatchSampler, open_dataset, to_float  # noqa: E402
from animefaces.train.loader import BatchLoader  # noqa: E402

GPU_APPETITE_256 = 2000  # img/s an H100-class GPU consumes at 256 px at the goal's speed (issue 15)


def source_images(n: int, size: int, tar: Path) -> list[np.ndarray]:
    """``n`` HWC uint8 images of ``size`` px: getchu faces upscaled, or noise when the tar is absent."""
    out: list[np.ndarray] = []
    if tar.exists():
        with tarfile.open(tar) as tf:
            for member in tf:
                if not member.isfile() or not member.name.lower().endswith((".jpg", ".png")):
                    continue
                with Image.open(tf.extractfile(member)) as im:
                    out.append(np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC)))
                if len(out) == n:
                    break
    rng = np.random.default_rng(0)
    while len(out) < n:
        out.append(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return out


def build_packs(d: Path, n: int, size: int, tar: Path) -> tuple[Path, Path]:
    imgs = source_images(n, size, tar)
    h5 = d / "pack.hdf5"
    write_hdf5(h5, imgs, np.zeros(n, np.int64), size, fsync=False)
    zp = d / "pack.zip"
    with zipfile.ZipFile(zp, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, img in enumerate(imgs):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            zf.writestr(archive_name(i), buf.getvalue())
        zf.writestr("dataset.json", json.dumps({"labels": None}))
    return h5, zp


class FancyIndexH5Reader(_RowReader):
    """The old on-disk HDF5 read (before the loader): one h5py fancy-indexed read of the batch's sorted rows."""

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if self._h5 is None:
            import h5py

            self._h5 = h5py.File(self.path, "r")
        return box_downscale(self._h5["imgs"][rows], self.factor)


def cpu_seconds() -> tuple[float, float]:
    """User + system CPU seconds of (this process, this process + its live children: the loader's workers)."""
    me = psutil.Process()
    own = sum(me.cpu_times()[:2])
    total = own
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # a worker that just exited
            total += sum(child.cpu_times()[:2])
    return own, total


Rates = tuple[float, float, float]  # img/s wall, img per CPU-second (all processes), img per trainer CPU-second


def rates(images: int, t0: float, c0: tuple[float, float]) -> Rates:
    wall, c1 = time.perf_counter() - t0, cpu_seconds()
    return images / wall, images / max(c1[1] - c0[1], 1e-3), images / max(c1[0] - c0[0], 1e-3)


def time_loader(
    path: Path, size: int, batch: int, steps: int, workers: int, in_memory: bool, old: bool = False
) -> Rates:
    """Rates of ``steps`` batches after one warm-up batch (worker start-up excluded)."""
    data = open_dataset(str(path), size, max_memory_gb=64.0 if in_memory else 1e-9)
    if old:
        data._read_rows = FancyIndexH5Reader(data._read_rows.path, data._read_rows.factor)
    sampler = BatchSampler(len(data), seed=0)
    loader = BatchLoader(data, sampler, batch, torch.device("cpu"), workers)
    loader.next()
    t0, c0 = time.perf_counter(), cpu_seconds()
    for _ in range(steps):
        imgs, flips, _ = loader.next()
        assert imgs.shape == (batch, 3, size, size)
    out = rates(steps * batch, t0, c0)
    loader.close()
    return out


def time_zip_load(path: Path, size: int, threads: int) -> Rates:
    t0, c0 = time.perf_counter(), cpu_seconds()
    data = zipds.load_for_training(str(path), size, max_memory_gb=64.0, threads=threads)
    return rates(data.count, t0, c0)


def time_convert(size: int, batch: int, steps: int) -> Rates:
    """to_float (uint8 -> [-1, 1] float32 + flips) on the CPU; on a GPU this runs on the device."""
    imgs = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    t0, c0 = time.perf_counter(), cpu_seconds()
    for _ in range(steps):
        to_float(imgs, torch.rand(batch, generator=gen) < 0.5)
    return rates(steps * batch, t0, c0)


def old_to_float(images_u8: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """The old conversion (before the loader): a mirrored copy of the whole batch, then a select."""
    x = images_u8.float() / 127.5 - 1.0
    if flips.any():
        x = torch.where(flips.reshape(-1, 1, 1, 1), x.flip(3), x)
    return x


def time_convert_old(size: int, batch: int, steps: int) -> Rates:
    imgs = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    t0, c0 = time.perf_counter(), cpu_seconds()
    for _ in range(steps):
        flips = torch.rand(batch, generator=gen) < 0.5
        assert torch.equal(old_to_float(imgs, flips), to_float(imgs, flips))  # same values, bit for bit
    return rates(steps * batch, t0, c0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--n", type=int, default=512, help="images in the packs")
    ap.add_argument("--batch", type=int, default=32, help="per-GPU batch")
    ap.add_argument("--steps", type=int, default=16, help="timed batches per path and round")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in this process (the trainer's)")
    ap.add_argument("--tar", type=Path, default=REPO.parent / "shared" / "data" / "getchu_faces_64.tar")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    w, s, b, k = args.workers, args.size, args.batch, args.steps
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        h5, zp = build_packs(Path(tmp), args.n, s, args.tar)
        print(f"packs: {args.n} images at {s} px built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        z = max(2, k // 4)  # PNG decoding is ~10x dearer: fewer batches
        paths = {
            "mem (inline gather)": lambda: time_loader(h5, s, b, 4 * k, 0, True),
            "h5 fancy-index inline (old)": lambda: time_loader(h5, s, b, k, 0, False, old=True),
            "h5 run reads inline (new, 0 workers)": lambda: time_loader(h5, s, b, k, 0, False),
            f"h5 run reads, {w} workers (new)": lambda: time_loader(h5, s, b, k, w, False),
            "zip per batch inline (new, 0 workers)": lambda: time_loader(zp, s, b, z, 0, False),
            f"zip per batch, {w} workers (new)": lambda: time_loader(zp, s, b, z, w, False),
            "zip load into memory, 1 thread (old)": lambda: time_zip_load(zp, s, 1),
            f"zip load into memory, {w} threads (new)": lambda: time_zip_load(zp, s, w),
            "to_float + flips on CPU (old)": lambda: time_convert_old(s, b, k),
            "to_float + flips on CPU (new)": lambda: time_convert(s, b, k),
        }
        names = list(paths)
        results: dict[str, list[Rates]] = {name: [] for name in names}
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                results[name].append(paths[name]())
    rows = []
    for name in names:
        med = [statistics.median(x[i] for x in results[name]) for i in range(3)]
        rows.append(
            {
                "path": name,
                "img_s": round(med[0], 1),
                "img_per_cpu_s": round(med[1], 1),
                "img_per_trainer_cpu_s": round(med[2], 1),
            }
        )
    print(
        f"| path ({s} px, batch {b}, N={args.n}, {args.rounds} rounds) | img/s (wall) | img per CPU-s (all)"
        " | img per trainer CPU-s |"
    )
    print("|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['path']} | {row['img_s']:,.0f} | {row['img_per_cpu_s']:,.0f}"
            f" | {row['img_per_trainer_cpu_s']:,.0f} |"
        )
    target = GPU_APPETITE_256 * (256 / s) ** 2
    print(
        f"GPU appetite: {GPU_APPETITE_256} img/s at 256 px (scaled by pixels: {target:,.0f} img/s at {s} px); "
        "cores needed = appetite / img per CPU-second"
    )
    print(json.dumps({"size": s, "n": args.n, "batch": b, "workers": w, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
