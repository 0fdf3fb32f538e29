"""train.model: biggan through Snakemake on the demo's classes: the tiny preset trains on the demo's HDF5 pack and
the class-conditional sample rules name their rows and files from the demo's class table (slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from animefaces.sample_classes import safe_name
from PIL import Image
from test_train_workflow import snakemake

REPO = Path(__file__).resolve().parent.parent
NAME = "bg"

TRAIN = {
    "model": "biggan",
    "preset": "biggan-tiny",
    "gpus": 0,
    "threads": 1,
    "batch": 8,
    "d_steps": 1,
    "kimg": 0.064,
    "kimg_per_tick": 0.016,
    "snap": 2,
    "grid_cols": 4,
}
SAMPLE = {"sheet_seeds": [0, 1, 2], "class_images": 2, "class_video_seconds": 0.4, "video_fps": 5, "video_grid": 1}


def run_biggan_rules(work: Path, pack: Path, classes_tsv: Path) -> dict:
    """Plant the pack and class table in a fresh workdir, run train + class samples, return what to check."""
    (work / "config").mkdir(parents=True)
    (work / "config" / "config.yaml").write_text((REPO / "config" / "config.yaml").read_text())
    res = work / "results" / NAME
    (res / "pack" / "hdf5").mkdir(parents=True)
    (res / "ingest").mkdir(parents=True)
    shutil.copy(pack, res / "pack" / "hdf5" / f"{NAME}.hdf5")
    shutil.copy(classes_tsv, res / "ingest" / "classes.tsv")
    config = {"dataset": {"name": NAME}, "pack": {"formats": ["hdf5"]}, "train": TRAIN, "sample": SAMPLE}
    targets = [
        f"results/{NAME}/samples/classes/sheets/sheets.json",
        f"results/{NAME}/samples/classes/images/index.json",
        f"results/{NAME}/samples/classes/class_interpolation.mp4",
        f"results/{NAME}/samples/training_montage.mp4",
    ]
    run = snakemake(work, config, *targets)
    assert run.returncode == 0, run.stderr[-4000:]
    return {"res": res, "stderr": run.stderr}


def check_outputs(res: Path, labels: np.ndarray, classes: pd.DataFrame) -> None:
    present = sorted(set(labels.tolist()))
    names = {0: "unlabelled", **dict(zip(classes["class_id"], classes["name"], strict=True))}
    log = (res / "logs" / "train.log").read_text()
    assert "preset biggan-tiny" in log and "conditional: True" in log
    rows = [json.loads(x) for x in (res / "train" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(np.isfinite(r["loss_G"]) and np.isfinite(r["diversity_ratio"]) for r in rows)
    # tick grids: one row per class present (rows cycle through the present classes)
    with Image.open(res / "train" / "grids" / "tick-000004.png") as im:
        assert im.size == (4 * 32, 4 * 32)
    sheets = json.loads((res / "samples" / "classes" / "sheets" / "sheets.json").read_text())
    sheet_rows = [r for s in sheets["sheets"] for r in s["rows"]]
    assert [r["class_id"] for r in sheet_rows] == present
    assert [r["name"] for r in sheet_rows] == [names[k] for k in present]
    with Image.open(res / "samples" / "classes" / "sheets" / sheets["sheets"][0]["file"]) as im:
        assert im.size[1] == len(sheets["sheets"][0]["rows"]) * 34 - 2 and im.size[0] > 3 * 34
    index = json.loads((res / "samples" / "classes" / "images" / "index.json").read_text())
    files = sorted(p.name for p in (res / "samples" / "classes" / "images").glob("*.png"))
    want = sorted(f"c{k:03d}_{safe_name(names[k])}_seed{s:07d}.png" for k in present for s in (0, 1))
    assert files == want and index["classes"] == {str(k): names[k] for k in present}
    video = res / "samples" / "classes" / "class_interpolation.mp4"
    assert video.stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.heavy  # has not passed end to end on the merged tree yet (config loading); see the closing note
def test_biggan_tiny_trains_on_the_demo_classes_through_snakemake(demo_run, tmp_path):
    demo_res = demo_run["results"]
    name = demo_run["config"]["dataset"]["name"]
    pack = demo_res / "pack" / "hdf5" / f"{name}.hdf5"
    classes_tsv = demo_res / "ingest" / "classes.tsv"
    out = run_biggan_rules(tmp_path / "wf", pack, classes_tsv)
    with h5py.File(pack, "r") as f:
        labels = np.asarray(f["labels"][:])
    from animefaces.ingest.classes import read_classes

    check_outputs(out["res"], labels, read_classes(classes_tsv))
