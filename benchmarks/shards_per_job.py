"""``shards.per_job``: the per-shard stages of a real run, one shard per job against several, side by side.

    .venv/bin/python benchmarks/shards_per_job.py [--shards 20] [--per-job 10] [--posts 200] [--reps 3]

The demo mirror (``--posts`` posts) is drawn and ingested once into ``--shards`` shards; then, alternately, ``--reps``
times each, a fresh copy of the workflow with those ingest manifests (mtimes kept) runs crop, clean, dedup and
normalise of every shard (``snakemake --cores 2`` on the normalise manifests) with ``shards.per_job`` 1 and with
``--per-job``: wall seconds, jobs, medians. Every run's manifests must equal the first per_job-1 run's (checked), so
the two settings do the same work. The cascade comes from ``../shared/data/cascade`` (or $ANIMEFACES_SHARED)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ANIMEFACES_SHARED", REPO.parent / "shared" / "data"))


def workflow(dest: Path, shards: int, per_job: int, posts: int) -> Path:
    """A copy of the workflow with the cascade in place and a config: the demo with ``posts`` posts."""
    dest.mkdir(parents=True)
    shutil.copy2(REPO / "Snakefile", dest / "Snakefile")
    for name in ("workflow", "config", "envs"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "resources").mkdir()
    shutil.copy(SHARED / "cascade" / "lbpcascade_animeface.xml", dest / "resources" / "lbpcascade_animeface.xml")
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["demo"]["posts"] = posts
    cfg["shards"].update(count=shards, per_job=per_job)
    (dest / "run.yaml").write_text(yaml.safe_dump(cfg))
    return dest


def snakemake(work: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args, "--configfile", "run.yaml"]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"snakemake {' '.join(args)} failed in {work}:\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def manifests(work: Path, shards: int) -> dict[str, pd.DataFrame]:
    return {
        f"{stage}/{s:03d}": pd.read_parquet(work / f"results/demo/{stage}/manifests/{s:03d}.parquet")
        for stage in ("crop", "clean", "dedup", "normalise")
        for s in range(shards)
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, default=20)
    ap.add_argument("--per-job", type=int, default=10)
    ap.add_argument("--posts", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    targets = [f"results/demo/normalise/manifests/{s:03d}.parquet" for s in range(args.shards)]
    root = Path(tempfile.mkdtemp(prefix="per_job_"))
    try:
        return run(root, args, targets)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(root: Path, args: argparse.Namespace, targets: list[str]) -> int:
    base = workflow(root / "base", args.shards, 1, args.posts)
    snakemake(base, f"results/demo/ingest/manifests/{args.shards - 1:03d}.parquet")  # the mirror and ingest
    runs: dict[int, list[float]] = {1: [], args.per_job: []}
    jobs: dict[int, int] = {}
    reference = None
    loads = []
    for rep in range(args.reps):
        for per_job in runs:
            work = workflow(root / f"run{rep}-{per_job}", args.shards, per_job, args.posts)
            for part in ("results/demo_mirror", "results/demo/ingest"):
                shutil.copytree(base / part, work / part)
            loads.append(os.getloadavg()[0])
            t0 = time.perf_counter()
            out = snakemake(work, *targets)
            runs[per_job].append(time.perf_counter() - t0)
            jobs[per_job] = sum(1 for line in out.splitlines() if line.strip().startswith("localrule ") or
                                line.strip().startswith("rule "))  # fmt: skip
            got = manifests(work, args.shards)
            if reference is None:
                reference = got
            for key, frame in got.items():
                pd.testing.assert_frame_equal(frame, reference[key], obj=f"per_job {per_job}: {key}")
            shutil.rmtree(work)
    report = {
        "shards": args.shards,
        "posts": args.posts,
        **{
            f"per_job_{per_job}": {
                "jobs": jobs[per_job],
                "wall_s_median": round(statistics.median(walls), 1),
                "wall_s_all": [round(w, 1) for w in walls],
            }
            for per_job, walls in runs.items()
        },
        "ratio": round(statistics.median(runs[args.per_job]) / statistics.median(runs[1]), 2),
        "loadavg_1min_min_max": [round(min(loads), 1), round(max(loads), 1)],
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
