"""The whole demo, end to end, against the demo generator's ground truth (slow: runs the shipped config once).

What must hold for `./dev demo` on a fresh clone: every stage runs, the ledger reconciles, every planted problem
case ends at the stage and with the reason the ground truth names (duplicates pointing at the expected survivor),
the special files (CMYK, RGBA, PNG named .jpg, duplicate sources) survive to the final selection, the default
detector finds >= 80% of the drawn faces, and the packs, training and sampling outputs are there and consistent.
"""

from __future__ import annotations

import json

import h5py
import pandas as pd
import pytest
from animefaces.ledger import funnel, load_ledger, reconcile
from PIL import Image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(demo_run):
    res = demo_run["results"]
    root = demo_run["work"] / demo_run["config"]["dataset"]["root"]
    truth = json.loads((root / "ground_truth.json").read_text())
    return {**demo_run, "ledger": load_ledger(res), "truth": truth}


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / float(aw * ah + bw * bh - inter)


def test_ledger_reconciles_through_every_stage(run):
    ledger = run["ledger"]
    assert reconcile(ledger) == []
    assert list(dict.fromkeys(ledger["stage"])) == ["ingest", "crop", "clean", "dedup", "normalise", "select"]


def test_funnel_matches_ground_truth(run):
    table = funnel(run["ledger"])
    expected = run["truth"]["expected_funnel"]
    ingest = table[table["stage"] == "ingest"]
    total = ingest[ingest["reason"] == ""].iloc[0]
    assert total["in"] == expected["ingest"]["records"] and total["kept"] == expected["ingest"]["kept"]
    for stage, exp in expected.items():
        if stage not in {"ingest", "crop", "clean", "dedup"}:
            continue
        got = table[(table["stage"] == stage) & (table["reason"] != "")].set_index("reason")["dropped"].to_dict()
        exact = exp["dropped"] if exp.get("exact") else {r: exp["dropped"][r] for r in exp["exact_reasons"]}
        for reason, n in exact.items():
            assert got.get(reason, 0) == n, (stage, reason, got)


def test_every_planted_post_ends_as_expected(run):
    ledger = run["ledger"]
    for post in run["truth"]["posts"]:
        exp = post["expected"]
        if post["case"] == "ordinary" or post["case"] == "duplicate_id_first":
            continue
        rows = ledger[(ledger["post_id"] == post["id"]) & (ledger["stage"] == exp["stage"])]
        if exp["status"] == "dropped":
            # the ingest-level duplicate id has its own row; every other planted post has exactly its drop
            rows = rows[rows["status"] == "dropped"]
            assert len(rows) >= 1, (post["case"], post["id"])
            assert set(rows["reason"]) == {exp["reason"]}, (post["case"], rows[["item_id", "reason"]])
            if "duplicate_of" in exp:
                survivors = {json.loads(d)["duplicate_of"].split("_")[0] for d in rows["details"]}
                assert survivors == {str(exp["duplicate_of"])}, (post["case"], survivors)
        else:
            assert len(rows) >= 1 and set(rows["status"]) == {"kept"}, (post["case"], post["id"])
    kept_to_end = set(run["truth"]["expected_funnel"]["kept_to_end"])
    final = ledger[(ledger["stage"] == "select") & (ledger["status"] == "kept")]
    assert kept_to_end <= set(final["post_id"].astype(int))


def test_default_detector_finds_most_drawn_faces(run):
    crop = run["ledger"]
    crop = crop[(crop["stage"] == "crop") & (crop["status"] == "kept")]
    boxes: dict[int, list] = {}
    for pid, details in zip(crop["post_id"], crop["details"], strict=True):
        boxes.setdefault(int(pid), []).append(json.loads(details)["box"])
    drawn = found = 0
    for post in run["truth"]["posts"]:
        if post["case"] != "ordinary" or post["expected"]["status"] != "kept":
            continue
        for face in post["faces"]:
            if face["box"][2] < 60:
                continue
            drawn += 1
            found += any(_iou(face["box"], b) >= 0.3 for b in boxes.get(post["id"], []))
    assert drawn > 200
    assert found / drawn >= 0.8, f"{found}/{drawn}"


def test_packs_training_and_samples_are_consistent(run):
    res = run["results"]
    dataset = pd.read_parquet(res / "select" / "dataset.parquet")
    size = run["config"]["normalise"]["size"]
    assert len(dataset) > 300
    with h5py.File(res / "pack" / "hdf5" / "demo.hdf5", "r") as f:
        assert f["imgs"].shape == (len(dataset), 3, size, size) and f["labels"].shape == (len(dataset),)
        assert sorted(set(f["labels"][:].tolist())) == sorted(set(dataset["label"].astype(int)))
    for fmt in ("hdf5", "tfrecord", "zip"):
        card = json.loads((res / "pack" / "cards" / f"{fmt}.json").read_text())
        assert card["count"] == len(dataset), fmt
    train = res / "train"
    metrics = [json.loads(line) for line in (train / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert metrics and metrics[-1]["kimg"] >= run["config"]["train"]["kimg"]
    assert (train / "network-final.pt").stat().st_size > 0
    pngs = sorted((res / "samples").rglob("*.png"))
    assert len(pngs) >= run["config"]["sample"]["count"]
    with Image.open(pngs[0]) as im:
        assert im.mode == "RGB"
    assert sorted((res / "samples").rglob("*.mp4")), "no videos"
