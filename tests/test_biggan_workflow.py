"""train.model: biggan through Snakemake on the demo's classes: the finished demo (the session's `demo_run`)
rerun with the shipped overlay `config/demo-biggan.yaml` -- the one command README documents -- trains the
biggan-tiny preset on the demo's HDF5 pack beside the demo's StyleGAN2 run, and the class-conditional sample rules
name their rows and files from the demo's class table (slow)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from animefaces.classtable import class_names, read_classes
from animefaces.sample_classes import safe_name
from animefaces.train import checkpoint as ckpt
from PIL import Image

REPO = Path(__file__).resolve().parent.parent

# Only what keeps the test short is changed on top of the documented command: 1 kimg in 4 ticks, a snapshot every
# 2 ticks, small class products.
FAST = {
    "train": {"kimg": 1, "kimg_per_tick": 0.25, "snap": 2},
    "sample": {"sheet_seeds": [0, 1, 2], "class_images": 2, "class_video_seconds": 0.4, "video_grid": 1},
}


def snakemake_biggan_demo(work: Path) -> subprocess.CompletedProcess:
    (work / "fast.yaml").write_text(json.dumps(FAST))
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(bindir / "snakemake"), "--cores", "2", "--configfile", "config/demo.yaml", "config/demo-biggan.yaml"]
    cmd += ["fast.yaml"]  # last: --configfile takes several values
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_biggan_tiny_trains_on_the_demo_classes_through_snakemake(demo_run, tmp_path):
    # a copy of the finished demo (results and .snakemake records): only train and the samples may rerun
    work = tmp_path / "wf"
    shutil.copytree(demo_run["work"], work, symlinks=True)
    assert (work / "config" / "demo-biggan.yaml").read_text() == (REPO / "config" / "demo-biggan.yaml").read_text()
    name = demo_run["config"]["dataset"]["name"]
    res = work / "results" / name
    stylegan_run = (res / "train" / "latest").resolve()

    run = snakemake_biggan_demo(work)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-4000:]
    # nothing upstream of train reran (the demo's jobs are finished); train and the class samples did
    jobs = set(re.findall(r"^(?:local)?rule (\w+):", run.stdout + run.stderr, flags=re.M))
    assert "train" in jobs and {"sample_class_sheets", "sample_class_images", "sample_class_video"} <= jobs
    assert not jobs & {"demo_corpus", "ingest", "crop", "clean", "dedup", "normalise", "select", "pack_hdf5"}, jobs

    with h5py.File(res / "pack" / "hdf5" / f"{name}.hdf5", "r") as f:
        labels = np.asarray(f["labels"][:])
    present = sorted(set(labels.tolist()))
    names = class_names(read_classes(res / "ingest" / "classes.tsv"))  # 0: the unlabelled faces
    assert len(present) >= 4 and all(k in names for k in present)  # the demo's characters (+ unlabelled faces)

    # the run: a new one beside the demo's StyleGAN2 run (the same pack, another model), with its snapshots
    log = (res / "logs" / "train.log").read_text()
    assert "preset biggan-tiny" in log and "conditional: True" in log
    assert "train.model is 'biggan'" in log and "trained 'stylegan2' on the same pack" in log
    bg_run = (res / "train" / "latest").resolve()
    assert bg_run != stylegan_run and stylegan_run.is_dir()
    assert json.loads((bg_run / "run.json").read_text())["model"] == "biggan"
    snaps = ckpt.list_snapshots(bg_run / "snapshots")
    assert [round(k, 1) for k, _ in snaps][:2] == [1.0, 0.5]
    snap = ckpt.load_file(snaps[0][1])
    assert snap["config"]["model"] == "biggan" and snap["config"]["c_dim"] == max(names) + 1
    final = ckpt.load_file(res / "train" / "network-final.pt")
    assert final["model"] == "biggan" and final["class_counts"] == np.bincount(labels).tolist()
    rows = [json.loads(x) for x in (res / "train" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(np.isfinite(r["loss_G"]) and np.isfinite(r["diversity_ratio"]) for r in rows)
    with Image.open(res / "train" / "grids" / "tick-000004.png") as im:  # one row per class present (grid_rows)
        assert im.size[1] == 6 * 32 and len(present) == 6

    # per-class sheets: rows = the classes present, named from the class table
    sheets = json.loads((res / "samples" / "classes" / "sheets" / "sheets.json").read_text())
    sheet_rows = [r for s in sheets["sheets"] for r in s["rows"]]
    assert [r["class_id"] for r in sheet_rows] == present
    assert [r["name"] for r in sheet_rows] == [names[k] for k in present]
    assert {"saber", "hoshino_mirai"} <= {r["name"] for r in sheet_rows}  # the demo cast's two most frequent
    with Image.open(res / "samples" / "classes" / "sheets" / sheets["sheets"][0]["file"]) as im:
        assert im.size[1] == len(sheets["sheets"][0]["rows"]) * 34 - 2 and im.size[0] > 3 * 34
        sheet = np.asarray(im.convert("RGB")).astype(int)
    cells = sheet[:, -(3 * 34 - 2) :]  # the image part right of the name column: rows differ (conditioning)
    row0, row1 = cells[:32], cells[34:66]
    assert np.abs(row0 - row1).mean() > 1.0

    # images per class: class id + class name + seed in the file name
    index = json.loads((res / "samples" / "classes" / "images" / "index.json").read_text())
    files = sorted(p.name for p in (res / "samples" / "classes" / "images").glob("*.png"))
    want = sorted(f"c{k:03d}_{safe_name(names[k])}_seed{s:07d}.png" for k in present for s in (0, 1))
    assert files == want and index["classes"] == {str(k): names[k] for k in present}
    with Image.open(res / "samples" / "classes" / "images" / want[0]) as im:
        assert im.size == (32, 32)
    assert (res / "samples" / "classes" / "class_interpolation.mp4").stat().st_size > 1000
    assert (res / "samples" / "training_montage.mp4").stat().st_size > 1000

    # the report's samples page shows the class sheets, the truncation figure and a gallery of the class images
    page = sorted(p.name for p in (res / "report" / "samples").iterdir())
    sheet_figures = [f"figure-class-{Path(s['file']).stem}.png" for s in sheets["sheets"]]
    assert {*sheet_figures, "figure-class-truncation.png", "gallery-class-images.png"} <= set(page), page
    assert {"video-class_interpolation.mp4", "video-training_montage.mp4"} <= set(page), page
