"""The 5M-post plan: ingest of Danbooru2021-sized metadata, the DAG with 1000 shards, the near-duplicate index.

    .venv/bin/python benchmarks/plan_5m.py [--records 5000000] [--hashes 5000000] [--work /tmp/plan5m]
    .venv/bin/python benchmarks/plan_5m.py --skip-ingest --hashes 5000000     # only the DAG and the index
    .venv/bin/python benchmarks/plan_5m.py --skip-ingest --skip-index --dag-baseline /tmp/before   # DAG before/after

1. ingest: ``danbooru_synth`` metadata in both schemas (20% nested, 80% flat; generated from scratch in --work, not
   timed) through ``python -m animefaces.ingest`` (what the rule runs), 1000 shards, against an empty mirror (every
   post ends ``missing_file``: the parsing, checks and ledger cost; the file index costs ~1-2 us per file more),
   with each ``--threads`` value (default 1 and 2) and ``--ingest-baseline DIR`` (another checkout: serial, or
   with ``--baseline-threads N`` for a checkout that has ``--threads``)
   alternately, ``--ingest-reps`` runs each: wall, CPU (the job's own report: its main process and its reader
   processes), peak RSS of the main process; medians.
2. ``snakemake -n`` of the whole workflow with ``shards.count: 1000`` (also with ``shards.fuse: true``, and with
   ``shards.per_job`` 10 and 100) and with the demo's 4 (demo config otherwise, written to --work/dag): wall and
   CPU, interleaved, ``--dag-reps`` runs each, medians; ``--dag-baseline DIR`` times another checkout (e.g.
   ``git archive`` of an older commit) alongside.
3. ``animefaces.dedup.index.near_pairs`` over N random 64-bit hashes (plus 1,000 planted pairs within distance
   8): wall, recall on the planted pairs, and index bytes per image (``index_bytes``) + 8 B of hash.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def bench_ingest(
    work: Path, records: int, threads: list[int], reps: int, baseline: Path | None = None, baseline_threads: int = 0
) -> dict:
    """Generate the metadata once (from scratch), then run the ingest job with each ``--threads`` value (and
    ``baseline``'s package when given: serially, or with ``--threads baseline_threads``) alternately ``reps``
    times: wall, CPU of the job (its own ``cpu_seconds`` report: the main process and the reader processes), peak
    RSS of the main process; medians."""
    from danbooru_synth import write

    meta = work / "metadata"
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    made = write(meta, records, "mixed")
    gen_s = time.perf_counter() - t0
    (work / "mirror" / "original").mkdir(parents=True)
    dataset = {"source": "danbooru", "root": str(work / "mirror"), "metadata": [str(meta)]}
    variants = [(f"threads={t}", REPO, t) for t in threads]
    if baseline is not None:
        variants.append((f"baseline {baseline.name}", baseline, baseline_threads))
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
    for _ in range(reps):
        for name, tree, t in variants:
            out = work / "results" / "plan" / "ingest"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [sys.executable, "-m", "animefaces.ingest", "--out", str(out), "--dataset", json.dumps(dataset),
                   "--filter", "{}", "--classes", "{}", "--shards", "1000", "--log-level", "WARNING"]  # fmt: skip
            if t:  # (a baseline without the option runs serially)
                cmd += ["--threads", str(t)]
            t1 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=dict(os.environ, PYTHONPATH=str(tree / "workflow")))  # fmt: skip
            stdout, stderr = proc.communicate()
            wall = time.perf_counter() - t1
            if proc.returncode:
                raise SystemExit(f"ingest ({name}) failed: {stderr.decode()[-2000:]}")
            summary = json.loads(stdout)
            cpu = summary.get("cpu_seconds") or {}
            runs[name].append({"wall_s": wall, "cpu": cpu, "rss": summary.get("peak_rss_mb") or {}, "summary": summary})
            print(json.dumps({name: round(wall, 1), "cpu": cpu}), flush=True)
    report = {"records": records, "metadata_mb": round(sum(size for _, size, _ in made) / 2**20),
              "generate_s": round(gen_s, 1), "reps": reps}  # fmt: skip
    med = statistics.median
    for name, got in runs.items():
        entry = {"wall_s_median": round(med(r["wall_s"] for r in got), 1),
                 "wall_s_all": [round(r["wall_s"], 1) for r in got]}  # fmt: skip
        if "main" in got[0]["cpu"]:  # (a baseline older than the job's own CPU report has none)
            cpu = [r["cpu"]["main"] + r["cpu"]["reader_processes"] for r in got]
            entry.update(cpu_s_median=round(med(cpu), 1), records_per_cpu_s=round(records / med(cpu)),
                         cpu_main_s_median=round(med(r["cpu"]["main"] for r in got), 1),
                         peak_rss_mb_main_max=max(r["rss"]["main"] for r in got),
                         peak_rss_mb_largest_reader_max=max(r["rss"]["largest_reader"] for r in got))  # fmt: skip
        last = got[-1]["summary"]
        entry.update(records=last["records"], stage_seconds_wall_last=last["seconds"],
                     chunks_by_reader_processes=last.get("chunks_by_reader_processes", 0))  # fmt: skip
        report[name] = entry
    return report


def dag_config(work: Path, shards: int, fuse: bool = False, per_job: int = 1) -> Path:
    """config/demo.yaml with ``shards.count`` (and ``shards.fuse``, ``shards.per_job`` when set) (a --configfile
    replaces the demo config, it is not merged; and ``--config shards={count: N}`` passes N as a string, which the
    schema rightly refuses)."""
    import yaml

    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["shards"]["count"] = shards
    if fuse:
        cfg["shards"]["fuse"] = True
    if per_job != 1:  # (a baseline checkout from before shards.per_job refuses the key)
        cfg["shards"]["per_job"] = per_job
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"shards{shards}{'-fused' if fuse else ''}{f'-per{per_job}' if per_job != 1 else ''}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


Variant = tuple[str, Path, int, bool, int, tuple[str, ...]]


def dag_variants(baseline: Path | None) -> list[Variant]:
    """(label, checkout, shards, fuse, per_job, extra snakemake args): this tree at 4 and 1000 shards, 1000 fused,
    each 1000 also with ``--notemp`` (what the profiles set), and 10 or 100 shards per job; the plain and the fused,
    ``--notemp`` 1000 on a ``baseline`` checkout (e.g. ``git archive <commit>``) when given, so before and after run
    side by side."""
    nt = ("--notemp",)
    out = [("4", REPO, 4, False, 1, ()), ("1000", REPO, 1000, False, 1, ()), ("1000-fused", REPO, 1000, True, 1, ()),
           ("1000-notemp", REPO, 1000, False, 1, nt), ("1000-fused-notemp", REPO, 1000, True, 1, nt),
           ("1000-notemp-per10", REPO, 1000, False, 10, nt), ("1000-fused-notemp-per10", REPO, 1000, True, 10, nt),
           ("1000-fused-notemp-per100", REPO, 1000, True, 100, nt)]  # fmt: skip
    if baseline is not None:
        out += [
            ("baseline-1000", baseline, 1000, False, 1, ()),
            ("baseline-1000-fused-notemp", baseline, 1000, True, 1, nt),
        ]
    return out


def bench_dag(work: Path, variants: list[Variant], reps: int = 3) -> dict:
    """``snakemake -n`` wall and CPU (the child's user + system), each variant in turn ``reps`` times
    (interleaved), medians: the 4-shard demo DAG is the fixed cost (imports, plugins, config check)."""
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label, *_ in variants}
    jobs: dict[str, dict[str, int]] = {}
    loads: list[float] = []
    _children_cpu()
    for _ in range(reps):
        for label, tree, shards, fuse, per_job, extra in variants:
            configfile = dag_config(work, shards, fuse, per_job)
            cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "2", "--configfile",
                   str(configfile), *extra]  # fmt: skip
            loads.append(os.getloadavg()[0])
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
            runs[label].append((time.perf_counter() - t0, _children_cpu()))
            if proc.returncode:
                raise SystemExit(f"snakemake -n ({label}) failed: {proc.stderr[-2000:]}")
            jobs[label] = {
                parts[0]: int(parts[1])
                for parts in map(str.split, proc.stdout.splitlines())
                if len(parts) == 2 and parts[1].isdigit()
            }
    out: dict = {
        label: {
            "wall_s_median": round(statistics.median(w for w, _ in rs), 2),
            "cpu_s_median": round(statistics.median(c for _, c in rs), 2),
            "cpu_s_all": [round(c, 2) for _, c in rs],
            "jobs_total": jobs[label].get("total"),
        }
        for label, rs in runs.items()
    }
    out["loadavg_1min_min_median_max"] = [round(min(loads), 1), round(statistics.median(loads), 1),
                                          round(max(loads), 1)]  # fmt: skip
    return out


_CHILD_CPU = [0.0]


def _children_cpu() -> float:
    """CPU seconds of the children reaped since the last call."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = ru.ru_utime + ru.ru_stime
    used, _CHILD_CPU[0] = total - _CHILD_CPU[0], total
    return used


def bench_index(n: int, seed: int = 0) -> dict:
    import numpy as np
    from animefaces.dedup.index import index_bytes, near_pairs, plan

    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, size=n, dtype=np.int64).view(np.uint64) ^ rng.integers(0, 2, size=n).astype(
        np.uint64
    ) << np.uint64(63)
    k = 1000
    src = rng.choice(n, size=2 * k, replace=False)
    a, b = src[:k], src[k:]
    flips = rng.integers(0, 9, size=k)
    for i, j, f in zip(a, b, flips, strict=True):
        bits = rng.choice(64, size=f, replace=False)
        mask = np.uint64(0)
        for bit in bits:
            mask |= np.uint64(1) << np.uint64(bit)
        hashes[j] = hashes[i] ^ mask
    p = plan(n, 8)
    t0 = time.perf_counter()
    i, j, _ = near_pairs(hashes, 8, p)
    wall = time.perf_counter() - t0
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    recall = sum((min(x, y), max(x, y)) in found for x, y in zip(a.tolist(), b.tolist(), strict=True)) / k
    return {
        "n": n,
        "wall_s": round(wall, 1),
        "pairs": len(found),
        "recall_planted": recall,
        "index_bytes_per_image": round(index_bytes(n, p) / n, 1),
        "plus_hash_bytes_per_image": 8,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=5_000_000)
    ap.add_argument("--hashes", type=int, default=5_000_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/plan5m"))
    ap.add_argument("--dag-reps", type=int, default=3)
    ap.add_argument("--dag-baseline", type=Path, help="another checkout whose DAG to time side by side (unfused)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="ingest --threads values to compare")
    ap.add_argument("--ingest-reps", type=int, default=2)
    ap.add_argument("--ingest-baseline", type=Path, help="another checkout whose ingest to time alongside")
    ap.add_argument("--baseline-threads", type=int, default=0, help="its --threads (default: none, serial)")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-dag", action="store_true")
    ap.add_argument("--skip-index", action="store_true")
    args = ap.parse_args(argv)
    report: dict = {}
    if not args.skip_dag:
        report["snakemake_n"] = bench_dag(args.work / "dag", dag_variants(args.dag_baseline), reps=args.dag_reps)
        print(json.dumps(report), flush=True)
    if not args.skip_index:
        report["near_dup_index"] = bench_index(args.hashes)
        print(json.dumps(report), flush=True)
    if not args.skip_ingest:
        report["ingest"] = bench_ingest(args.work / "ingest", args.records, args.threads, args.ingest_reps,
                                        args.ingest_baseline, args.baseline_threads)  # fmt: skip
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
