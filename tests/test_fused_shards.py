"""``shards.fuse``: crop and clean of a shard as one crop_clean job (fewer jobs for a 1000-shard plan) write exactly
the manifests, crops and logs that the separate crop and clean jobs write, on the real demo mirror.

Slow: the demo corpus, ingest and crop + clean of 4 shards run for real, twice (unfused, then fused on a copy of the
same mirror and ingest)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_partial_rerun import REPO, copy_workflow, planned_jobs, snakemake


def workflow_copy(dest: Path, shared: Path, fuse: bool, posts: int = 60) -> tuple[Path, Path, list[str]]:
    """A workflow copy with the cascade in place and a config file: the demo with ``posts`` posts (and fuse)."""
    work = copy_workflow(dest)
    (work / "resources").mkdir(exist_ok=True)
    shutil.copy(shared / "cascade" / "lbpcascade_animeface.xml", work / "resources" / "lbpcascade_animeface.xml")
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["demo"]["posts"] = posts
    cfg["shards"]["fuse"] = fuse
    configfile = work / "run.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    targets = [f"results/demo/clean/manifests/{s:03d}.parquet" for s in range(cfg["shards"]["count"])]
    return work, configfile, targets


@pytest.mark.slow
def test_fused_crop_clean_writes_what_crop_and_clean_write(tmp_path, shared):
    plain, plain_cfg, targets = workflow_copy(tmp_path / "plain", shared, fuse=False)
    snakemake(plain, *targets, "--configfile", str(plain_cfg))

    fused, fused_cfg, _ = workflow_copy(tmp_path / "fused", shared, fuse=True)
    # the same mirror and ingest manifests (mtimes kept): only the fused jobs are left to run
    for part in ("results/demo_mirror", "results/demo/ingest"):
        src = plain / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, fused / part)
    jobs = planned_jobs(fused, *targets, "--configfile", str(fused_cfg))
    assert jobs == {"crop_clean": 4}, jobs
    snakemake(fused, *targets, "--configfile", str(fused_cfg))

    for stage in ("crop", "clean"):
        for shard in ("000", "001", "002", "003"):
            rel = f"results/demo/{stage}/manifests/{shard}.parquet"
            pd.testing.assert_frame_equal(pd.read_parquet(fused / rel), pd.read_parquet(plain / rel), obj=rel)
            # each stage keeps its own log
            assert (fused / f"results/demo/logs/{stage}/{shard}.log").stat().st_size > 0
    crops = sorted(p.relative_to(plain) for p in (plain / "results/demo/crop/images").rglob("*.png"))
    assert crops and crops == sorted(p.relative_to(fused) for p in (fused / "results/demo/crop/images").rglob("*.png"))
    for rel in crops:
        assert (fused / rel).read_bytes() == (plain / rel).read_bytes(), rel
    # kept rows in clean: every crop the fused job wrote was cleaned (the planted drops are there too)
    clean = pd.concat(pd.read_parquet(p) for p in sorted((fused / "results/demo/clean/manifests").glob("*.parquet")))
    assert (clean["status"] == "kept").any() and (clean["status"] == "dropped").any()
    # a change to the clean section reruns the fused job of every shard, and nothing before it
    cfg = yaml.safe_load(fused_cfg.read_text())
    cfg.setdefault("clean", {})["min_size"] = 80
    fused_cfg.write_text(yaml.safe_dump(cfg))
    assert planned_jobs(fused, *targets, "--configfile", str(fused_cfg)) == {"crop_clean": 4}
