"""A wrong ``dataset.root`` through Snakemake: time from invocation to exit (issue 12: "< 10 s").

Side by side, interleaved, ``--repeats`` times each (medians; the machine is shared):

- ``wrong_root``: ``snakemake --cores 2 --configfile wrong.yaml`` on this repository's Snakefile, where
  ``dataset.root`` holds an empty ``original/`` and the metadata is ``--posts`` Danbooru-style records: the
  pre-flight samples 200 posts, finds none of their images and stops (exit 2) before any job;
- ``bare_snakemake``: ``snakemake --cores 2 -n`` on a one-rule Snakefile: Snakemake's own start-up (imports, plugin
  registry, parsing), which no workflow can go below.

Per run: wall time, and CPU time of the process tree (user + sys, from ``wait4``). On an idle machine wall ~= CPU
(one busy thread, no I/O wait once the files are cached); on a loaded one wall is CPU plus the time the scheduler
gave to others (a ``nice -n 10`` process next to two busy threads gets ~10% of a core), so CPU time is the figure
that transfers to a quiet machine. Prints one JSON line per run and a summary table.

    nice -n 10 python benchmarks/preflight_startup.py [--repeats 5] [--posts 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _setup(work: Path, posts: int) -> dict[str, list[str]]:
    meta = work / "meta" / "posts.jsonl"
    meta.parent.mkdir(parents=True)
    with open(meta, "w") as fh:
        for i in range(1, posts + 1):
            fh.write(json.dumps({"id": i, "file_ext": "jpg", "rating": "s", "tag_string": "1girl solo"}) + "\n")
    (work / "wrong" / "original").mkdir(parents=True)
    cfg = {"dataset": {"name": "wr", "root": str(work / "wrong"), "metadata": [str(meta)]}, "demo": {"enabled": False}}
    (work / "wrong.yaml").write_text(yaml.safe_dump(cfg))
    (work / "bare").mkdir()
    (work / "bare" / "Snakefile").write_text('rule all:\n    output: "x"\n    shell: "touch {output}"\n')
    snakemake = str(BIN / "snakemake")
    return {
        "wrong_root": [snakemake, "-s", str(REPO / "Snakefile"), "-d", str(work / "run")]
        + ["--cores", "2", "--configfile", str(work / "wrong.yaml")],
        "bare_snakemake": [snakemake, "-s", str(work / "bare" / "Snakefile"), "-d", str(work / "bare"), "--cores", "2"]
        + ["-n"],
    }


def _run(cmd: list[str]) -> dict:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"rc": proc.returncode, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "out": out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--posts", type=int, default=100_000)
    args = ap.parse_args(argv)
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="preflight-") as tmp:
        cmds = _setup(Path(tmp), args.posts)
        for rep in range(args.repeats):
            for name, cmd in cmds.items():
                r = _run(cmd)
                load = os.getloadavg()[0]
                if name == "wrong_root":
                    assert r["rc"] == 2 and "dataset.root" in r["out"] and "looks wrong" in r["out"], r["out"][-2000:]
                    assert not (Path(tmp) / "run" / "results").exists(), "a job ran"
                else:
                    assert r["rc"] == 0, r["out"][-2000:]
                row = {"case": name, "rep": rep, "wall_s": round(r["wall_s"], 2), "cpu_s": round(r["cpu_s"], 2)}
                print(json.dumps({**row, "load1": round(load, 2)}), flush=True)
                results.setdefault(name, []).append(r)
    print("\n| case | wall median (s) | CPU median (s) | runs |\n|---|---|---|---|")
    for name, runs in results.items():
        wall = statistics.median(r["wall_s"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        print(f"| {name} | {wall:.1f} | {cpu:.2f} | {len(runs)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
