"""Crop throughput: the seed's way (one Python process per image through ``xargs -P``) vs our shard job vs a raw
decode + detectMultiScale loop, on the same images and the same cores, side by side in one run.

Images: the shared illustrations (../shared/data/illustrations, 15 files) rescaled to a random longer side in
[lo, hi] px (default 400-800, like the 512 px Danbooru downloads the seed cropped), randomly mirrored, saved as
JPEG q90 -- N of them (default 300) in a temporary folder. Nothing is committed.

    .venv/bin/python benchmarks/crop_throughput.py [--images 300] [--cores 2] [--repeat 3]

Methods (each timed as a whole command, Python start-up included, because that is what a user pays; wall and
CPU time of the command and its descendants; ``--repeat`` interleaved runs, medians reported):
- seed:   ``xargs -P cores -n 1 python seed_crop.py IMG OUTDIR`` -- a process per image that imports cv2, loads
          the cascade, reads, equalises, detects (1.1, 5, 50) and writes the face boxes as PNG crops;
- ours:   ``python -m animefaces.crop --threads cores`` on an ingest-style manifest of the same images (decode
          with checks, detectMultiScale3, portrait crops, PNG writes, ledger rows, manifest);
- raw:    one process: ``cv2.imread`` + cvtColor + equalizeHist + detectMultiScale per image, no writes (the floor
          our job's overhead is measured against); OpenCV uses its own threads on all cores.
Extra variants of our job (``--variants``) show why the default threading was chosen.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workflow"))

from animefaces.manifest import StageRows, manifest_path, read_manifest, write_manifest  # noqa: E402

SEED_SCRIPT = """
import os.path
import sys

import cv2


def detect(filename, outdir, cascade_file):
    cascade = cv2.CascadeClassifier(cascade_file)
    image = cv2.imread(filename)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    gray = cv2.equalizeHist(gray)
    faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(50, 50))
    stem = os.path.splitext(os.path.basename(filename))[0]
    for n, (x, y, w, h) in enumerate(faces):
        cv2.imwrite(os.path.join(outdir, f"{stem}_{n}.png"), image[y : y + h, x : x + w])


detect(sys.argv[1], sys.argv[2], sys.argv[3])
"""

RAW_SCRIPT = """
import json, sys, time
import cv2
files = open(sys.argv[1]).read().split()
cascade = cv2.CascadeClassifier(sys.argv[2])
n = 0
for f in files:
    grey = cv2.equalizeHist(cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2GRAY))
    n += len(cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(50, 50)))
print(json.dumps({"faces": n}))
"""


def make_images(shared: Path, out: Path, count: int, lo: int, hi: int, seed: int = 0) -> list[Path]:
    sources = sorted(p for p in (shared / "illustrations").rglob("*") if p.suffix.lower() in {".jpg", ".png"})
    sources = [s for s in sources if "face" not in s.name]  # whole illustrations only
    rng = np.random.default_rng(seed)
    decoded = [cv2.imread(str(s)) for s in sources]
    files = []
    for i in range(count):
        img = decoded[i % len(decoded)]
        side = int(rng.integers(lo, hi + 1))
        scale = side / max(img.shape[:2])
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        path = out / f"{100000 + i}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        files.append(path)
    return files


def timed(cmd: list[str] | str, env: dict | None = None, shell: bool = False) -> tuple[float, str, float]:
    """``(wall s, stdout, CPU s)`` of a command; CPU = user + system of the process and every descendant it
    waited for (``RUSAGE_CHILDREN`` before/after), so xargs' per-image processes are counted, and an idle core is
    not (wall x cores would count it)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, shell=shell, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, proc.stdout, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--size", default="400-800", help="longer side range in px (default %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs of each method; medians reported")
    ap.add_argument("--variants", action="store_true", help="also time our job with other threading set-ups")
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    lo, hi = (int(v) for v in args.size.split("-"))
    shared = Path(os.environ.get("ANIMEFACES_SHARED", args.shared))
    cascade = shared / "cascade" / "lbpcascade_animeface.xml"
    py = sys.executable
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow"))
    with tempfile.TemporaryDirectory(prefix="crop-bench-") as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "img").mkdir()
        files = make_images(shared, tmp / "img", args.images, lo, hi)
        (tmp / "files.txt").write_text("\n".join(map(str, files)) + "\n")
        (tmp / "seed_crop.py").write_text(SEED_SCRIPT)
        (tmp / "raw.py").write_text(RAW_SCRIPT)
        rows = StageRows("ingest", "000")
        for i, f in enumerate(files):
            pid = int(f.stem)
            rows.kept(pid, str(pid), f"bench:{i}", path=str(f), file_ext="jpg", label=0, character="")
        res = tmp / "res"
        write_manifest(rows.frame(), manifest_path(res, "ingest", "000"))

        def seed() -> tuple[float, int]:
            out = tmp / "seed_out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            cmd = (
                f"xargs -a {tmp / 'files.txt'} -P {args.cores} -I{{}} {py} {tmp / 'seed_crop.py'} {{}} {out} {cascade}"
            )
            t, _, cpu = timed(cmd, shell=True)
            return t, len(list(out.iterdir())), cpu

        def ours(threads: int, extra: dict | None = None, tag: str = "ours") -> tuple[float, int]:
            params = json.dumps({"geometry": "box", "min_crop": 1, **(extra or {})})
            out_manifest = res / tag / "000.parquet"
            cmd = [
                py,
                "-m",
                "animefaces.crop",
                "--shard",
                "000",
                "--manifest",
                str(manifest_path(res, "ingest", "000")),
            ]
            cmd += ["--out-manifest", str(out_manifest), "--images", str(res / tag / "img"), "--cascade", str(cascade)]
            cmd += ["--params", params, "--threads", str(threads), "--no-progress"]
            t, _, cpu = timed(cmd, env=env)
            df = read_manifest(out_manifest)
            return t, int((df["status"] == "kept").sum()), cpu

        def raw() -> tuple[float, int]:
            t, out, cpu = timed([py, str(tmp / "raw.py"), str(tmp / "files.txt"), str(cascade)])
            return t, json.loads(out)["faces"], cpu

        methods = {
            "seed (process per image, xargs -P)": seed,
            "ours (shard job, threads=cores)": lambda: ours(args.cores),
            "raw loop (imread + detectMultiScale)": raw,
        }
        if args.variants:
            methods["ours, threads=1 (OpenCV's own threads)"] = lambda: ours(1, tag="t1")
            methods["ours, threads=cores, png_compression=6"] = lambda: ours(
                args.cores, {"png_compression": 6}, tag="png6"
            )

        def startup(n: int = 10) -> float:
            """Seconds one seed process spends before its image: Python + import cv2 + load the cascade."""
            code = f"import cv2; cv2.CascadeClassifier({str(cascade)!r})"
            t, _, cpu = timed(f"for i in $(seq {n}); do {py} -c {json.dumps(code)}; done", shell=True)
            return cpu / n

        empty = StageRows("ingest", "000")
        write_manifest(empty.frame(), manifest_path(res / "empty", "ingest", "000"))

        def ours_fixed() -> float:
            """Our job's fixed cost (imports, config validation, cascade load, manifest write) on 0 images."""
            cmd = [py, "-m", "animefaces.crop", "--shard", "000"]
            cmd += ["--manifest", str(manifest_path(res / "empty", "ingest", "000"))]
            cmd += ["--out-manifest", str(res / "empty" / "out.parquet"), "--images", str(res / "empty" / "img")]
            cmd += ["--cascade", str(cascade), "--no-progress"]
            return timed(cmd, env=env)[2]

        def raw_fixed() -> float:
            (tmp / "none.txt").write_text("")
            return timed([py, str(tmp / "raw.py"), str(tmp / "none.txt"), str(cascade)])[2]

        runs: dict[str, list[tuple[float, int, float]]] = {name: [] for name in methods}
        per_process = statistics.median(startup() for _ in range(args.repeat))
        fixed_ours = statistics.median(ours_fixed() for _ in range(args.repeat))
        fixed_raw = statistics.median(raw_fixed() for _ in range(args.repeat))
        for _ in range(args.repeat):
            for name, fn in methods.items():  # interleaved so that load changes hit all methods alike
                runs[name].append(fn())
        results = {}
        for name, rs in runs.items():
            wall = statistics.median(r[0] for r in rs)
            cpu = statistics.median(r[2] for r in rs)
            results[name] = {
                "seconds": round(wall, 2),
                "img_per_s": round(len(files) / wall, 2),
                "cpu_s": round(cpu, 2),
                "cpu_ms_per_image": round(1000 * cpu / len(files), 1),
                "faces": rs[0][1],
                "runs_wall_s": [round(r[0], 2) for r in rs],
                "runs_cpu_s": [round(r[2], 2) for r in rs],
            }
    seed_r = results["seed (process per image, xargs -P)"]
    ours_r = results["ours (shard job, threads=cores)"]
    raw_r = results["raw loop (imread + detectMultiScale)"]
    summary = {
        "images": len(files),
        "size": args.size,
        "cores": args.cores,
        "repeat": args.repeat,
        "results": results,
        "speedup_vs_seed": round(ours_r["img_per_s"] / seed_r["img_per_s"], 2),
        "cpu_speedup_vs_seed": round(seed_r["cpu_s"] / ours_r["cpu_s"], 2),
        "cpu_overhead_vs_raw_pct": round(100 * (ours_r["cpu_s"] / raw_r["cpu_s"] - 1), 1),
        "seed_process_startup_cpu_s": round(per_process, 3),
        "ours_fixed_cpu_s": round(fixed_ours, 2),
        "raw_fixed_cpu_s": round(fixed_raw, 2),
        "cpu_overhead_vs_raw_steady_pct": round(
            100 * ((ours_r["cpu_s"] - fixed_ours) / (raw_r["cpu_s"] - fixed_raw) - 1), 1
        ),
    }
    # CPU seconds of real work per image (measured, not wall x cores) and the most any batching can gain over a
    # process per image: (start-up + work) / work, since the boxes (hence the detector's work) must not change.
    work = (ours_r["cpu_s"] - fixed_ours) / len(files)
    summary["work_cpu_s_per_image"] = round(work, 4)
    summary["speedup_bound"] = round((per_process + work) / work, 2)
    width = max(len(k) for k in results)
    print(f"{len(files)} images, longer side {args.size} px, {args.cores} cores, medians of {args.repeat} runs")
    for name, r in results.items():
        print(
            f"  {name:<{width}}  {r['seconds']:8.2f} s  {r['img_per_s']:8.2f} img/s  CPU {r['cpu_s']:8.2f} s "
            f"({r['cpu_ms_per_image']} ms/img)  faces {r['faces']}"
        )
    print(
        f"  seed process start-up {per_process:.3f} CPU s; our work {work:.4f} CPU s/image; "
        f"bound for any batching: {summary['speedup_bound']}x"
    )
    print(f"  ours / seed: {summary['speedup_vs_seed']}x wall, {summary['cpu_speedup_vs_seed']}x CPU")
    print(f"  ours CPU overhead over raw decode+detect: {summary['cpu_overhead_vs_raw_pct']}% (target <= 20%)")
    print(
        f"  fixed start-up CPU: ours {fixed_ours:.2f} s, raw {fixed_raw:.2f} s; per-image CPU overhead over raw "
        f"without it: {summary['cpu_overhead_vs_raw_steady_pct']}%"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
