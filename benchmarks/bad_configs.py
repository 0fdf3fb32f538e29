"""Bad configs -> message table (RELIABILITY.md): every config mistake should stop the workflow before any job,
with a message naming the key.

Each case is the demo config (config/demo.yaml, a valid run as shipped: the unchanged config is checked first and
must pass) with one mistake, checked with `snakemake -n` (DAG build and config validation, no job runs) in one
scratch copy of the repository. The table records whether it was caught
before any job ("caught") and the first line of the error, so it can be rerun after config validation changes.

    python benchmarks/bad_configs.py [--cases a,b] [--jobs 2] [--markdown]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
Config = dict[str, Any]


def _set(path: str, value: Any, demo_off: bool = False) -> Callable[[Config], Config]:
    def apply(cfg: Config) -> Config:
        cfg = copy.deepcopy(cfg)
        if demo_off:
            cfg["demo"]["enabled"] = False
        node = cfg
        keys = path.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
        return cfg

    return apply


METADATA = "posts.jsonl"  # a real metadata file (written into the scratch copy), so only dataset.root is wrong


def _root_missing(cfg: Config) -> Config:
    cfg = _set("dataset.root", "/nonexistent/danbooru", demo_off=True)(cfg)
    cfg["dataset"]["metadata"] = [METADATA]
    return cfg


CASES: dict[str, tuple[Callable[[Config], Config], str]] = {
    # name: (mutation, the key the message should name)
    "unknown_top_level_key": (_set("cropp", {"min_face": 5}), "cropp"),
    "misspelled_key": (_set("crop.min_fac", 50), "min_fac"),
    "wrong_type": (_set("shards.count", "four"), "shards.count"),
    "zero_shards": (_set("shards.count", 0), "shards.count"),
    "negative_min_face": (_set("crop.min_face", -1), "crop.min_face"),
    "min_face_5000": (_set("crop.min_face", 5000), "crop.min_face"),
    "min_face_100000": (_set("crop.min_face", 100000), "crop.min_face"),
    "root_missing": (_root_missing, "dataset.root"),
    "metadata_missing": (_set("dataset.metadata", ["/nonexistent/posts.json"], demo_off=True), "dataset.metadata"),
    "size_100_with_tfrecord": (_set("normalise.size", 100), "normalise.size"),
    "train_resolution_48": (_set("train.resolution", 48), "train.resolution"),
    "cascade_path_missing": (_set("crop.cascade_path", "/nonexistent/cascade.xml"), "crop.cascade_path"),
    "unknown_pack_format": (_set("pack.formats", ["npz"]), "pack.formats"),
    "unknown_rating": (_set("filter.ratings", ["x"]), "filter.ratings"),
    "normalise_format_gif": (_set("normalise.format", "gif"), "normalise.format"),
    "train_device_tpu": (_set("train.device", "tpu"), "train.device"),
    "source_ftp": (_set("dataset.source", "ftp"), "dataset.source"),
    "blocklist_missing": (_set("clean.blocklist", "/nonexistent/blocklist.txt"), "clean.blocklist"),
    "exclude_file_missing": (_set("select.exclude_file", "/nonexistent/exclude.txt"), "select.exclude_file"),
    "empty_psis": (_set("sample.psis", []), "sample.psis"),
    "name_with_slash": (_set("dataset.name", "../escape"), "dataset.name"),
    "fit_stretch": (_set("normalise.fit", "stretch"), "normalise.fit"),
}


# Snakemake's banner and traceback lines, never the message
_NOISE = ("WorkflowError in file", "Command:", "File ", "Traceback", "Snakefile:", "Config file", "Building DAG")
_NOISE += ("User:", "Host:", "Date:", "Platform:", "Workflow ID:", "Snakemake version:", "Python version:")
_NOISE += ("Base directory:", "Run directory:", "Working directory:", "Config MD5:", "SNAKEMAKE", "=====")


def _message(text: str, key: str) -> str:
    """The error's most telling line: the first that names the key, else the first error-like line."""
    missing = re.search(r"(Missing input files for rule \w+):.*?affected files:\s*(\S+)", text, re.S)
    if missing:  # Snakemake's own check: names the file, not the config key
        return f"{missing.group(1)}: {missing.group(2)}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(_NOISE)]
    lines = [ln for ln in lines if not re.match(r"^[A-Z][a-z]+( [a-z]+)*: ", ln) or "rror" in ln or key in ln]
    for ln in lines:
        if key in ln:
            return ln[:220]
    for ln in lines:
        if re.search(r"rror|invalid|not |must|missing|does not exist", ln):
            return ln[:220]
    return (lines[-1] if lines else "")[:220]


def run_case(name: str, work: Path, base: Config) -> dict:
    mutate, key = CASES[name] if name != "control" else (lambda cfg: cfg, "")
    cfg_file = work / f"case-{name}.yaml"
    cfg_file.write_text(yaml.safe_dump(mutate(base)))
    venv_bin = Path(sys.executable).parent
    cmd = [str(venv_bin / "snakemake"), "-n", "--quiet", "rules", "--configfile", cfg_file.name, "--cores", "1"]
    run = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=900)
    out = run.stdout + run.stderr
    if run.returncode == 0:
        return {"case": name, "caught": False, "names_key": False, "message": "(not caught before any job)"}
    # the key named as written (crop.min_face) or as the schema validator words it (min_face ... crop)
    last = key.split(".")[-1]
    msg = _message(out, last)
    return {"case": name, "caught": True, "names_key": last in msg, "message": msg}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", help="comma-separated cases (default: all)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    base = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    names = args.cases.split(",") if args.cases else list(CASES)
    with tempfile.TemporaryDirectory(prefix="bad-configs-") as tmp:
        work = Path(tmp) / "wf"
        skip = {".git", ".snakemake", "results", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache"}
        shutil.copytree(REPO, work, ignore=lambda d, names: {n for n in names if n in skip})
        posts = ({"id": i, "file_ext": "jpg", "rating": "s", "tag_string": "1girl"} for i in range(1, 11))
        (work / METADATA).write_text("".join(json.dumps(p) + "\n" for p in posts))
        control = run_case("control", work, base)
        if control["caught"]:  # the unchanged demo config must pass, or every case would be "caught" by it
            print(f"error: the unchanged demo config fails `snakemake -n`: {control['message']}", file=sys.stderr)
            return 1
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda n: run_case(n, work, base), names))
        funnel = subprocess.run(
            [sys.executable, "-m", "animefaces", "funnel", str(work / "results" / "nothing")],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(REPO / "workflow"), "PATH": ""},
        )
        out = (funnel.stdout + funnel.stderr).strip()
        results.append(
            {
                "case": "funnel_without_manifests",
                "caught": "Traceback" not in out,
                "names_key": True,
                "message": ("TRACEBACK: " if "Traceback" in out else "") + (out.splitlines() or [""])[-1][:200],
            }
        )
    if args.markdown:
        print("| case | before any job | names the key | message |\n|---|---|---|---|")
        for r in results:
            msg = r["message"].replace("|", "\\|")
            print(f"| {r['case']} | {'yes' if r['caught'] else 'NO'} | {'yes' if r['names_key'] else 'no'} | {msg} |")
    else:
        for r in results:
            print(f"{r['case']:26s} caught={r['caught']!s:5s} key={r['names_key']!s:5s} {r['message']}")
    caught = sum(r["caught"] for r in results)
    named = sum(r["caught"] and r["names_key"] for r in results)
    print(f"\n{caught} of {len(results)} caught before any job; {named} of them name the key")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
