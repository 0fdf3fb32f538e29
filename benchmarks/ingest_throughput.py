"""Ingest throughput: records/s per CPU core and peak RSS of the real ingest job on synthetic Danbooru-style
metadata, side by side in one run: the parser candidates (parse + the one record normaliser) and the whole job,
this tree against earlier versions of the package from git history (``--baselines``: ``untyped`` = main before the
typed per-batch path, i.e. msgspec into an untyped struct + the per-record normaliser (the default), ``msgspec`` =
the fast path as this issue's session 2 left it, ``json`` = the stdlib json ingest before it), repeated and
interleaved, medians, and each package's start-up cost (the same job on a 1-record file, interleaved too) so that
records/s per core past start-up can be given.

    .venv/bin/python benchmarks/ingest_throughput.py [--records 1000000] [--schema flat|nested|mixed]
        [--present 0.9] [--reps 3] [--baselines untyped msgspec json] [--filters demo_filter defaults]

Steps (only steps 3 and 4 are timed; CPU seconds, so other jobs on the machine distort them less than wall time):
1. generate ``records`` JSON Lines (``danbooru_synth``: real field set, realistic tags, 0.1% duplicate ids, 0.01%
   malformed lines, 0.01% records without id; ``mixed`` = 20% nested Danbooru2017-2020 records in one file, 80%
   flat Danbooru2021 ones in another) in a FRESH work folder (``--work``/run-<params>, deleted first);
2. create a mirror ``original/{bucket}/{id}.{ext}`` with empty files for a fraction ``present`` of the posts, from
   scratch, and verify the count of files made;
3. parser candidates on the first 100k lines of the last file held in memory: stdlib ``json``, ``orjson`` (if
   importable; not a dependency), ``msgspec`` (the fast reader), each followed by ``records.normalise_batch``;
   and two floors on the same lines (those that are JSON objects, in 1 MiB blocks): ``msgspec`` decoding them into
   ``Post`` alone, and decoding only the ``id`` (the JSON scan itself);
4. ``python -m animefaces.ingest`` (what the rule runs) in a subprocess, this tree and each baseline alternately
   ``--reps`` times per filter block (the demo's, the schema defaults), each rep also on a 1-record file (the
   start-up: imports, config, empty manifests); CPU from ``os.wait4``, peak RSS ``ru_maxrss``; records/s per core
   past start-up = records / (median CPU - median start-up CPU); the kept/dropped counts of every baseline are
   checked against this tree's, and with ``--compare-outputs`` every manifest and classes.tsv of the first rep too
   (byte for byte). The load average is reported before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from danbooru_synth import write  # noqa: E402  (the Danbooru2021-shaped generator, both schemas)


def make_mirror(root: Path, posts: list[tuple[int, str]], present: float, seed: int = 1) -> int:
    rng = random.Random(seed)
    made = 0
    for bucket in range(1000):
        (root / "original" / f"{bucket:04d}").mkdir(parents=True, exist_ok=True)
    for post_id, ext in posts:
        if rng.random() < present:
            p = root / "original" / f"{post_id % 1000:04d}" / f"{post_id}.{ext}"
            p.touch()
            made += 1
    return made


from animefaces.demo.corpus import ASSUMED_CONFIG  # noqa: E402  (the demo's filter block, one source)

FILTERS = {
    # the demo's filter block (config/demo.yaml): most posts are dropped, few rows carry kept-row columns
    "demo_filter": dict(ASSUMED_CONFIG["filter"]),
    # the schema defaults (keep every rating): most posts are kept, the worst case for memory
    "defaults": {},
}


BASELINES = {
    "untyped": "e770e88d839ea1a5c2262705ae39d0dc682aa99c",  # main before the typed per-batch path (this session)
    "msgspec": "49f3daa5621b056d3a8e069785000ced2dae0894",  # the msgspec path of the last session (issue 15 start)
    "json": "dd48c619688758164f6e0b03c36b1456e6c4e591",  # main before the msgspec fast path (json ingest)
}


def baseline_package(work: Path, commit: str) -> Path:
    """The package at ``commit``, extracted from git history into ``work``."""
    where = work / f"baseline-{commit[:10]}"
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "workflow"], capture_output=True, check=True)
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    return where / "workflow"


def run_ingest(work: Path, metadata: Path, root: Path, shards: int, flt: dict, package: Path, label: str = "x") -> dict:
    out = work / "results" / label / "ingest"
    shutil.rmtree(out, ignore_errors=True)
    dataset = {"source": "danbooru", "root": str(root), "metadata": [str(metadata)]}
    classes = {"top_k": 1000, "aliases": {"character_1_(series_1)": "character_0_(series_0)"}}
    cmd = [
        sys.executable,
        "-m",
        "animefaces.ingest",
        "--out",
        str(out),
        "--dataset",
        json.dumps(dataset),
        "--filter",
        json.dumps(flt),
        "--classes",
        json.dumps(classes),
        "--shards",
        str(shards),
        "--log-level",
        "WARNING",
    ]
    env = dict(os.environ, PYTHONPATH=str(package))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    stdout = proc.stdout.read()  # type: ignore[union-attr]
    stderr = proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"ingest failed:\n{stderr.decode()}")
    summary = json.loads(stdout)
    return {
        "out": out,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        # the job's own VmHWM: wait4's ru_maxrss survives fork + exec, so it reports this script's size when that
        # is larger (a 991 MB "peak" for a 640 MB job, with the sample lines held here); older packages lack it
        "max_rss_mb": (summary.get("peak_rss_mb") or {}).get("main", usage.ru_maxrss / 1024),
        "summary": summary,
    }


def same_outputs(a: Path, b: Path) -> bool:
    """Every manifest (Parquet) and classes.tsv under two ingest output folders, byte for byte."""
    names = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    if names != sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file()):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def naive_exists(root: Path, posts: list[tuple[int, str]], sample: int = 100_000, seed: int = 2) -> float:
    """Seconds per post for os.path.exists on the image path (cold-ish dentry cache not guaranteed)."""
    rng = random.Random(seed)
    chosen = rng.sample(posts, min(sample, len(posts)))
    paths = [f"{root}/original/{pid % 1000:04d}/{pid}.{ext}" for pid, ext in chosen]
    t0 = time.process_time()
    for p in paths:
        os.path.exists(p)
    return (time.process_time() - t0) / len(paths)


def index_cost(root: Path) -> tuple[float, int]:
    """CPU seconds per file to list all 1000 buckets with the real MirrorIndex, and the files indexed."""
    sys.path.insert(0, str(REPO / "workflow"))
    from animefaces.ingest.mirror import MirrorIndex

    t0 = time.process_time()
    index = MirrorIndex(root)
    index.ensure(range(1000))
    return (time.process_time() - t0) / max(index.files_indexed, 1), index.files_indexed


def parser_candidates(metadata: Path, lines: int = 100_000, reps: int = 3) -> dict:
    """CPU records/s of parse + ``normalise_batch`` per candidate on the same lines in memory (interleaved reps,
    medians). Malformed lines go the candidate's error path (json/orjson: exception -> skipped)."""
    import statistics

    from animefaces.ingest import readers
    from animefaces.ingest.records import POSTS, normalise_batch, raw_post

    with open(metadata, "rb") as fh:
        sample = [line for _, line in zip(range(lines), fh, strict=False)]
    block = b"".join(sample)

    def via(loads):
        def run() -> int:
            posts = []
            for line in sample:
                try:
                    v = loads(line)
                except ValueError:
                    continue
                if type(v) is dict:
                    posts.append(raw_post(v))
            for i in range(0, len(posts), 16384):
                normalise_batch(posts[i : i + 16384])
            return len(posts)

        return run

    def fast() -> int:
        import io

        n = 0
        for _, values in readers.iter_json_lines_fast(io.BufferedReader(io.BytesIO(block))):
            posts = [v for v in values if type(v) in POSTS]
            normalise_batch(posts)
            n += len(posts)
        return n

    # floors: what the fastest decoder costs before any rule runs, on the lines that are valid JSON objects, in
    # 1 MiB blocks of whole lines (a block with a bad line would fail as a whole)
    import msgspec
    from animefaces.ingest.records import Post

    clean = [line for line in sample if _is_object(line)]
    blocks, size, start = [], 0, 0
    for i, line in enumerate(clean):
        size += len(line)
        if size >= 1 << 20 or i == len(clean) - 1:
            blocks.append(b"".join(clean[start : i + 1]))
            start, size = i + 1, 0

    class _Id(msgspec.Struct):
        id: int | str | None = None

    def decode_only(decoder):
        def run() -> int:
            return sum(len(decoder.decode_lines(b)) for b in blocks)

        return run

    candidates = {
        "stdlib json + normalise": via(json.loads),
        "msgspec typed fast reader + normalise": fast,
        "floor: msgspec decode into Post only (no rules)": decode_only(msgspec.json.Decoder(Post)),
        "floor: msgspec JSON scan only (the id)": decode_only(msgspec.json.Decoder(_Id)),
    }
    try:
        import orjson

        candidates["orjson + normalise"] = via(orjson.loads)
    except ImportError:
        pass
    times: dict[str, list[float]] = {k: [] for k in candidates}
    for _ in range(reps):
        for name, fn in candidates.items():
            t0 = time.process_time()
            fn()
            times[name].append(time.process_time() - t0)
    return {name: round(len(sample) / statistics.median(ts)) for name, ts in times.items()}


def _is_object(line: bytes) -> bool:
    try:
        return type(json.loads(line)) is dict
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    import statistics

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--schema", choices=["flat", "nested", "mixed"], default="flat")
    ap.add_argument("--present", type=float, default=0.9, help="fraction of posts whose image file exists")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--baselines", nargs="*", default=["untyped"], choices=sorted(BASELINES))
    ap.add_argument("--filters", nargs="*", default=sorted(FILTERS), choices=sorted(FILTERS))
    ap.add_argument("--skip-candidates", action="store_true", help="skip step 3 (parser candidates)")
    ap.add_argument("--compare-outputs", action="store_true", help="check every output file of the first rep")
    ap.add_argument("--work", type=Path, default=Path("/tmp/animefaces-ingest-bench"))
    args = ap.parse_args(argv)
    work = args.work / f"run-{args.records}-{args.schema}-{args.present}"
    shutil.rmtree(work, ignore_errors=True)  # inputs are always built from scratch
    work.mkdir(parents=True)
    meta_dir = work / "metadata"
    root = work / "mirror"
    t0 = time.perf_counter()
    made = write(meta_dir, args.records, args.schema)
    size = sum(m[1] for m in made)
    posts = [p for m in made for p in m[2]]
    made_files = make_mirror(root, posts, args.present)
    on_disk = sum(len(os.listdir(root / "original" / f"{b:04d}")) for b in range(1000))
    if on_disk != made_files:
        raise SystemExit(f"mirror check failed: made {made_files} files, found {on_disk}")
    gen_s = time.perf_counter() - t0
    sys.path.insert(0, str(REPO / "workflow"))
    report: dict = {
        "records": args.records,
        "schema": args.schema,
        "bytes_per_record": round(size / args.records),
        "metadata_mb": round(size / 2**20, 1),
        "image_files_in_mirror": made_files,
        "generate_s": round(gen_s, 1),
        "naive_exists_us_per_post": round(naive_exists(root, posts) * 1e6, 2),
        "index_listing_us_per_file": round(index_cost(root)[0] * 1e6, 2),
    }
    if not args.skip_candidates:
        report["parse_and_normalise_records_per_s_cpu"] = parser_candidates(made[-1][0], reps=args.reps)
    packages = {"new": REPO / "workflow"}
    packages.update({name: baseline_package(work, BASELINES[name]) for name in args.baselines})
    one = work / "one-record"  # the start-up cost: the same job on a 1-record file
    one.mkdir()
    with open(made[-1][0], "rb") as fh:
        (one / "posts.jsonl").write_bytes(fh.readline())
    report["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    for name in args.filters:
        flt = FILTERS[name]
        runs: dict[str, list[dict]] = {k: [] for k in packages}
        starts: dict[str, list[dict]] = {k: [] for k in packages}
        for rep in range(args.reps):  # interleaved: new, baseline(s), new, baseline(s), ...
            for label, package in packages.items():
                runs[label].append(run_ingest(work, meta_dir, root, args.shards, flt, package, label))
                if rep == 0 and args.compare_outputs and label != "new":
                    report.setdefault("identical_outputs", {})[f"{name}: new vs {label}"] = same_outputs(
                        runs["new"][0]["out"], runs[label][0]["out"]
                    )
                starts[label].append(run_ingest(work, one, root, args.shards, flt, package, label + "-one"))
        report[name] = {}
        for label, rs in runs.items():
            cpu = statistics.median(r["cpu_s"] for r in rs)
            start = statistics.median(r["cpu_s"] for r in starts[label])
            summ = rs[0]["summary"]
            report[name][label] = {
                "cpu_s_median": round(cpu, 2),
                "cpu_s_all": [round(r["cpu_s"], 2) for r in rs],
                "startup_cpu_s_median": round(start, 2),
                "startup_cpu_s_all": [round(r["cpu_s"], 2) for r in starts[label]],
                "wall_s_median": round(statistics.median(r["wall_s"] for r in rs), 2),
                "records_per_s_per_core": round(summ["records"] / cpu),
                "records_per_s_per_core_past_startup": round(summ["records"] / max(cpu - start, 1e-9)),
                "peak_rss_mb_max": round(max(r["max_rss_mb"] for r in rs)),
                "kept": summ["kept"],
                "dropped": summ["dropped"],
                "stage_seconds_first_run": summ["seconds"],
            }
            if label != "new":  # the ledger counts must not change
                same = (summ["kept"], summ["dropped"]) == (report[name]["new"]["kept"], report[name]["new"]["dropped"])
                report[name][label]["same_counts_as_new"] = same
                report[name][f"speedup_cpu_vs_{label}"] = round(cpu / report[name]["new"]["cpu_s_median"], 2)
                new_past = report[name]["new"]["cpu_s_median"] - report[name]["new"]["startup_cpu_s_median"]
                report[name][f"speedup_past_startup_vs_{label}"] = round((cpu - start) / max(new_past, 1e-9), 2)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
