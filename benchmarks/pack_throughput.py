"""Pack throughput per format vs the raw sequential write bandwidth of the same disk, measured in one run.

For N images of S x S (default 10,000 x 256 x 256):
- raw: ``numpy.ndarray.tofile`` of exactly the bytes HDF5 stores (N x 3 x S x S uint8), then fsync;
- from arrays: HDF5 and TFRecord writers fed already-decoded arrays (no PNG decoding), fsync included;
- end to end: ``animefaces.pack.pack(...)`` from PNG files listed in a dataset table, as the workflow runs it
  (read + sha256 check + decode on ``--threads`` threads + write + fsync + the card's sha256 of the output).
CPU ms/image is this process's user + system time (all threads) per image: a measure that does not depend on how
busy the machine is, unlike the wall-clock ratios.
Image content: the 100 real 256x256 anime faces in ../shared/data/faces/selfie2anime (resized if --size differs),
cycled to N (synthetic gradients + noise when the shared data is absent). Image generation and PNG writing happen
before any timing. The raw measurement runs before and after the packs; the ratio uses their mean.

    .venv/bin/python benchmarks/pack_throughput.py --n 10000 --size 256 --threads 2
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workflow"))

from animefaces import pack as packmod  # noqa: E402
from animefaces.config import defaults  # noqa: E402
from animefaces.pack import hdf5, tfrecord  # noqa: E402


def pool_images(size: int, shared: Path) -> list[np.ndarray]:
    faces = sorted((shared / "faces" / "selfie2anime").glob("*"))
    if faces:
        out = []
        for p in faces:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.LANCZOS)
                out.append(np.asarray(im))
        return out
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * 255 // size, yy * 255 // size, (xx + yy) * 127 // size], axis=-1)
    return [np.clip(base + rng.integers(-30, 30, (size, size, 3)), 0, 255).astype(np.uint8) for _ in range(100)]


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def raw_write(path: Path, pool_chw: np.ndarray, n: int, batch: int = 500) -> tuple[float, float]:
    """(wall, CPU) seconds to write the N x 3 x S x S bytes with ndarray.tofile in batches, plus fsync."""
    k = len(pool_chw)
    batches = [np.ascontiguousarray(pool_chw[np.arange(i, i + batch) % k]) for i in range(0, k * batch, batch)][:k]
    t0, c0 = time.perf_counter(), cpu_seconds()
    with open(path, "wb") as fh:
        done = 0
        j = 0
        while done < n:
            b = batches[j % len(batches)][: n - done]
            b.tofile(fh)
            done += len(b)
            j += 1
        fh.flush()
        os.fsync(fh.fileno())
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    path.unlink()
    return seconds, cpu


def cycle(pool: list[np.ndarray], n: int):
    for i in range(n):
        yield pool[i % len(pool)]


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2, help="decode threads for the end-to-end runs")
    ap.add_argument("--dir", default=str(REPO / "results" / "bench_pack"), help="scratch directory (same disk)")
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    args = ap.parse_args(argv)
    n, size = args.n, args.size
    work = Path(args.dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    # ---- untimed: image pool, PNG files, dataset table
    pool = pool_images(size, Path(args.shared))
    pool_chw = np.stack([p.transpose(2, 0, 1) for p in pool])
    pngs = []
    for i, img in enumerate(pool):
        p = work / f"pool_{i}.png"
        Image.fromarray(img).save(p)
        pngs.append(p.read_bytes())
    img_dir = work / "images"
    img_dir.mkdir()
    rows = []
    for i in range(n):
        data = pngs[i % len(pngs)]
        path = img_dir / f"{i}_0.png"
        path.write_bytes(data)
        rows.append(
            {
                "item_id": f"{i}_0",
                "post_id": i,
                "path": str(path),
                "label": i % 5,
                "character": "",
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    table = work / "dataset.parquet"
    pd.DataFrame(rows).to_parquet(table, index=False)
    png_bytes = sum(len(pngs[i % len(pngs)]) for i in range(n))
    labels = np.arange(n) % 5
    params = defaults()["pack"]
    raw_bytes = n * 3 * size * size
    os.sync()

    results: dict[str, float] = {}
    sizes: dict[str, int] = {}
    cpu: dict[str, float] = {}
    results["raw (before)"], cpu["raw (before)"] = raw_write(work / "raw.bin", pool_chw, n)

    out = work / "a.hdf5"
    t0, c0 = time.perf_counter(), cpu_seconds()
    hdf5.write_hdf5(out, cycle(pool, n), labels, size, chunk=params["hdf5"]["chunk"])
    results["hdf5 from arrays"] = time.perf_counter() - t0
    cpu["hdf5 from arrays"] = cpu_seconds() - c0
    sizes["hdf5 from arrays"] = size_of(out)
    out.unlink()

    out = work / "tfr"
    t0, c0 = time.perf_counter(), cpu_seconds()
    tfrecord.write_tfrecords(out, "bench", cycle(pool, n), size, labels=labels)
    results["tfrecord from arrays"] = time.perf_counter() - t0
    cpu["tfrecord from arrays"] = cpu_seconds() - c0
    sizes["tfrecord from arrays"] = size_of(out)
    shutil.rmtree(out)

    for fmt, target in (("hdf5", work / "e.hdf5"), ("tfrecord", work / "e_tfr"), ("zip", work / "e.zip")):
        os.sync()
        t0, c0 = time.perf_counter(), cpu_seconds()
        packmod.pack(fmt, table, target, None, params, name="bench", threads=args.threads)
        results[f"{fmt} end-to-end from PNG"] = time.perf_counter() - t0
        cpu[f"{fmt} end-to-end from PNG"] = cpu_seconds() - c0
        sizes[f"{fmt} end-to-end from PNG"] = size_of(target)
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    results["raw (after)"], cpu["raw (after)"] = raw_write(work / "raw.bin", pool_chw, n)
    raw = (results["raw (before)"] + results["raw (after)"]) / 2
    hdf5_arrays = results["hdf5 from arrays"]

    print(f"N={n} images {size}x{size}, raw bytes {raw_bytes / 2**20:.0f} MiB, PNG set {png_bytes / 2**20:.0f} MiB")
    print(f"cores={os.cpu_count()} threads={args.threads} dir={work} load average at the end {os.getloadavg()}")
    print()
    print(
        "| measurement | seconds | images/s | MiB/s written | CPU ms/image | size vs PNG set | vs raw write "
        "| vs HDF5 (arrays) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, sec in results.items():
        written = sizes.get(key, raw_bytes)
        print(
            f"| {key} | {sec:.2f} | {n / sec:.0f} | {written / 2**20 / sec:.0f} | {cpu[key] / n * 1e3:.2f} "
            f"| {written / png_bytes:.2f}x "
            f"| {raw / sec:.2f} | {hdf5_arrays / sec:.2f} |"
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
