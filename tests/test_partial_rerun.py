"""Editing the exclude list reruns only ``select`` and what depends on it (the packs), never the earlier stages.

Two levels:
- fast: the real select/pack rule files in a workflow copy whose normalised outputs are synthetic source files;
- slow: the whole demo workflow in a temporary copy of the repository, run up to the packs, then the exclude file
  is edited and the dry-run job list is asserted (the honest test: ingest ... normalise are real rules there).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from animefaces.manifest import StageRows, manifest_path, write_manifest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
PACK_RULES = {"pack_hdf5", "pack_tfrecord", "pack_zip"}


def copy_workflow(dest: Path) -> Path:
    """The workflow (Snakefile, rules, package, schema, config, envs) copied to ``dest``; no results."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile",):
        shutil.copy2(REPO / name, dest / name)
    for name in ("workflow", "config", "envs"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> str:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted(workdir.glob("results/*/logs/**/*.log")))
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{out[-6000:]}\n{logs[-6000:]}")
    return out


def planned_jobs(workdir: Path, *targets: str) -> dict[str, int]:
    """{rule: job count} that ``snakemake -n`` would run for ``targets`` (parsed from its job stats table)."""
    out = snakemake(workdir, "-n", *targets)
    if "Nothing to be done" in out:
        return {}
    jobs: dict[str, int] = {}
    in_table = False
    for line in out.splitlines():
        if line.startswith("Job stats:"):
            in_table = True
            continue
        if in_table:
            m = re.match(r"^(\S+)\s+(\d+)\s*$", line)
            if m and m.group(1) != "total":
                jobs[m.group(1)] = int(m.group(2))
            elif m and m.group(1) == "total":
                break
    assert jobs, f"could not parse the dry-run job list:\n{out[-3000:]}"
    return jobs


def write_config(workdir: Path, overrides: dict) -> None:
    path = workdir / "config" / "demo.yaml"  # what snakemake runs without --configfile
    cfg = yaml.safe_load(path.read_text()) or {}
    for key, value in overrides.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


# ----------------------------------------------------------------------------------------------- fast


MINI_SNAKEFILE = """
configfile: "config/demo.yaml"

include: "workflow/rules/common.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/pack.smk"

rule all:
    input: TARGETS
"""


def synthetic_normalised(workdir: Path, name: str, shards: int) -> list[str]:
    """Normalise manifests + PNGs + classes.tsv, as normalisation and ingest would leave them."""
    res = workdir / "results" / name
    rng = np.random.default_rng(0)
    ids = []
    for s in range(shards):
        shard = f"{s:03d}"
        rows = StageRows("normalise", shard)
        for k in range(3):
            post = 1000 * k + s * (1000 // shards)
            item = f"{post}_0"
            rel = Path("results") / name / "normalise" / "images" / shard / f"{item}.png"
            (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(workdir / rel)
            sha = hashlib.sha256((workdir / rel).read_bytes()).hexdigest()
            rows.kept(post, item, item, path=str(rel), sha256=sha, label=k % 2, character="a" if k % 2 else "")
            ids.append(item)
        write_manifest(rows.frame(), manifest_path(res, "normalise", shard))
    (res / "ingest").mkdir(parents=True, exist_ok=True)
    (res / "ingest" / "classes.tsv").write_text("class_id\tname\tcount\n1\ta\t3\n", encoding="utf-8")
    return ids


def test_select_and_pack_rules_rerun_only_what_the_exclude_list_feeds(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    (wd / "Snakefile").write_text(MINI_SNAKEFILE)
    all_formats = {"formats": ["hdf5", "tfrecord", "zip"]}
    write_config(wd, {"dataset": {"name": "mini"}, "shards": {"count": 2}, "pack": all_formats})
    ids = synthetic_normalised(wd, "mini", 2)
    snakemake(wd)
    res = wd / "results" / "mini"
    assert len(pd.read_parquet(res / "select" / "dataset.parquet")) == 6
    card = json.loads((res / "pack" / "cards" / "tfrecord.json").read_text())
    # the card records what changes the pack, never runtime keys (where the exclude list lives is one: its
    # contents reach the pack through select's dataset)
    assert card["count"] == 6 and "exclude_file" not in card["config"]["select"]
    assert sorted(p.name for p in (res / "pack" / "tfrecord" / "mini").iterdir())[-1] == "mini-rxx.labels"

    # one format's setting reruns only that pack
    write_config(wd, {"pack": {**all_formats, "hdf5": {"chunk": 2}}})
    assert planned_jobs(wd) == {"pack_hdf5": 1, "all": 1}
    write_config(wd, {"pack": all_formats})

    with open(wd / "config" / "exclude.txt", "a", encoding="utf-8") as fh:
        fh.write(f"{ids[0]}\n")
    assert planned_jobs(wd) == {"select": 1, **dict.fromkeys(PACK_RULES, 1), "all": 1}


# ----------------------------------------------------------------------------------------------- slow, real


@pytest.mark.slow
def test_demo_workflow_exclude_edit_reruns_only_select_and_packs(tmp_path, shared):
    wd = copy_workflow(tmp_path / "wf")
    write_config(
        wd,
        {
            "demo": {"enabled": True, "seed": 0, "posts": 50},
            "crop": {"cascade_path": str(shared / "cascade" / "lbpcascade_animeface.xml")},
            "normalise": {"size": 64},
            "pack": {"formats": ["hdf5", "tfrecord", "zip"]},
            "train": {"preset": "tiny", "kimg": 0.128, "kimg_per_tick": 0.064, "snap": 1, "threads": 1},
        },
    )
    res = wd / "results" / "demo"
    network = "results/demo/train/network-final.pt"
    targets = [
        str(Path("results/demo/pack/hdf5/demo.hdf5")),
        str(Path("results/demo/pack/tfrecord/demo")),
        str(Path("results/demo/pack/zip/demo.zip")),
        *(f"results/demo/pack/cards/{f}.json" for f in ("hdf5", "tfrecord", "zip")),
    ]
    first = planned_jobs(wd, *targets)
    assert {"normalise", "select", *PACK_RULES} <= set(first), first
    snakemake(wd, *targets, network, timeout=1500)
    assert planned_jobs(wd, *targets) == {}
    old_run = (res / "train" / "latest").resolve()
    old_net = torch.load(res / "train" / "network-final.pt", weights_only=True)
    dataset = pd.read_parquet(res / "select" / "dataset.parquet")
    assert len(dataset) > 0
    before = {p: p.stat().st_mtime_ns for p in res.glob("*/manifests/*.parquet")}

    victim = dataset["item_id"].iloc[0]
    with open(wd / "config" / "exclude.txt", "a", encoding="utf-8") as fh:
        fh.write(f"{victim}  # excluded by the partial-rerun test\n")
    plan = planned_jobs(wd, *targets)
    assert plan == {"select": 1, **dict.fromkeys(PACK_RULES, 1)}, plan
    # the default target (train, sample, report, ... too): of the rules that ran, only select and the packs rerun
    plan_all = planned_jobs(wd)
    assert set(plan_all) & set(first) == {"select", *PACK_RULES}, plan_all

    snakemake(wd, *targets, timeout=900)
    after = {p: p.stat().st_mtime_ns for p in res.glob("*/manifests/*.parquet")}
    changed = sorted(str(p.relative_to(res)) for p in before if after[p] != before[p])
    assert changed == ["select/manifests/all.parquet"], changed
    new = pd.read_parquet(res / "select" / "dataset.parquet")
    assert victim not in set(new["item_id"]) and len(new) == len(dataset) - 1
    ledger = pd.read_parquet(res / "select" / "manifests" / "all.parquet").set_index("item_id")
    assert ledger.loc[victim, "reason"] == "excluded_by_user"
    for fmt in ("hdf5", "tfrecord", "zip"):
        assert json.loads((res / "pack" / "cards" / f"{fmt}.json").read_text())["count"] == len(new)

    # training retrains on the cleaned pack in a new run (the old run is kept), never "resumes" the old model
    assert set(planned_jobs(wd, network)) == {"train"}
    snakemake(wd, network, timeout=900)
    log = (res / "logs" / "train.log").read_text()
    assert "new run (the pack changed since run 001-" in log and "resumed from" not in log
    new_run = (res / "train" / "latest").resolve()
    assert new_run != old_run and new_run.name.startswith("002-") and old_run.is_dir()
    card = json.loads((new_run / "run.json").read_text())
    pack_card = json.loads((res / "pack" / "cards" / "hdf5.json").read_text())
    assert card["dataset"]["count"] == len(new) and card["dataset"]["sha256"] == pack_card["files"][0]["sha256"]
    new_net = torch.load(res / "train" / "network-final.pt", weights_only=True)
    assert any(not torch.equal(old_net["G_ema"][k], new_net["G_ema"][k]) for k in old_net["G_ema"])
