"""The train and sample rules for real (Snakemake, tiny CPU model) on a synthetic pack in a temp workdir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_train_fixtures import TINY, blob_images, write_h5

REPO = Path(__file__).resolve().parent.parent
NAME = "wf"


def snakemake(workdir: Path, config: dict, *targets: str) -> subprocess.CompletedProcess:
    (workdir / "override.yaml").write_text(json.dumps(config))  # JSON is YAML
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(bindir / "snakemake"), *targets, "-s", str(REPO / "Snakefile"), "--cores", "2"]
    cmd += ["--configfile", "config/demo.yaml", "override.yaml"]  # the demo, changed; last: it takes several values
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_train_and_sample_rules_end_to_end_and_continue_when_kimg_grows(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "demo.yaml").write_text((REPO / "config" / "demo.yaml").read_text())
    pack = tmp_path / "results" / NAME / "pack" / "hdf5" / f"{NAME}.hdf5"
    pack.parent.mkdir(parents=True)
    write_h5(pack, blob_images(24, 32), np.zeros(24))
    train_cfg = {k: v for k, v in TINY.items() if k not in ("deterministic",)}
    sample_cfg = {"count": 3, "psis": [0.5, 1.0], "video_seconds": 1, "video_fps": 6, "truncation_seeds": [1, 2]}
    config = {"dataset": {"name": NAME}, "pack": {"formats": ["hdf5"]}, "train": train_cfg, "sample": sample_cfg}
    res_dir = tmp_path / "results" / NAME
    targets = [
        f"results/{NAME}/samples/images.json",
        f"results/{NAME}/samples/truncation.png",
        f"results/{NAME}/samples/interpolation.mp4",
        f"results/{NAME}/samples/training_montage.mp4",
        f"results/{NAME}/train/losses.png",
    ]
    run = snakemake(tmp_path, config, *targets)
    assert run.returncode == 0, run.stderr[-4000:]
    assert sorted(p.name for p in (res_dir / "samples" / "psi0.50").glob("*.png")) == [
        f"seed{s:07d}.png" for s in range(3)
    ]
    with Image.open(res_dir / "samples" / "truncation.png") as im:
        assert im.size == (9 * 18 - 2, 2 * 18 - 2)
    assert len((res_dir / "train" / "metrics.jsonl").read_text().splitlines()) == 6
    assert (res_dir / "benchmarks" / "train.tsv").exists()

    # more kimg: the params changed, Snakemake reruns train, which continues from the last snapshot
    config["train"] = {**train_cfg, "kimg": 0.128}
    run = snakemake(tmp_path, config, f"results/{NAME}/train/network-final.pt")
    assert run.returncode == 0, run.stderr[-4000:]
    log = (res_dir / "logs" / "train.log").read_text()
    assert "resumed from" in log and "kimg 0.096" in log
    assert len((res_dir / "train" / "metrics.jsonl").read_text().splitlines()) == 8
