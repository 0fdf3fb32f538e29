"""Report assets: each builder on a tiny synthetic results tree, the report rules through Snakemake
(`snakemake --report x.zip` on the synthetic tree), and — slow — the whole report on the demo run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from animefaces.ledger import funnel, load_ledger, reconcile
from animefaces.manifest import StageRows, manifest_path, write_manifest
from animefaces.report import cards, data, images, samples, sheets, training
from animefaces.report import funnel as rfunnel
from animefaces.report.cli import main as report_main
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SHARD = "000"


def colour(i: int) -> tuple[int, int, int]:
    """A distinct saturated colour per index, so a tile can be traced back to the file it shows."""
    rng = np.random.default_rng(i)
    return tuple(int(v) for v in rng.integers(30, 226, size=3))


def png(path: Path, rgb: tuple[int, int, int], size: tuple[int, int], root: Path | None = None) -> str:
    """Write a one-colour PNG; return its path relative to ``root`` (the workflow's working directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path)
    return str(path.relative_to(root) if root else path)


def build_results(root: Path) -> dict:
    """A results tree with every stage's manifest: 7 posts, faces, drops at every stage, 2 duplicate pairs.

    Image paths in the manifests are relative to ``root`` (the working directory), as the workflow writes them.
    Returns the results directory, the root and the colour of each image keyed by (stage, item id)."""
    res = root / "results" / "synth"
    cols: dict[tuple[str, str], tuple[int, int, int]] = {}
    ingest = StageRows("ingest", SHARD)
    for post in range(1, 7):
        cols["ingest", str(post)] = colour(post)
        path = png(root / "mirror" / f"{post}.png", colour(post), (80, 60), root)
        ingest.kept(post, str(post), f"posts.json:{post}", path=path, width=80, height=60)
    ingest.dropped(7, "7", "rating", {"rating": "e"}, parent_id="posts.json:7")
    write_manifest(ingest.frame(["path", "width", "height"]), manifest_path(res, "ingest", SHARD))
    write_manifest(StageRows("ingest", "unsharded").frame(), manifest_path(res, "ingest", "unsharded"))

    crop = StageRows("crop", SHARD)
    faces = {1: ["1_0", "1_1"], 2: ["2_0"], 4: ["4_0"], 5: ["5_0"], 6: ["6_0"]}
    for post in range(1, 7):
        if post not in faces:
            crop.dropped(post, str(post), "no_face", {"detector": "lbpcascade"})
            continue
        for k, item in enumerate(faces[post]):
            c = colour(100 + post * 10 + k)
            cols["crop", item] = c
            path = png(res / "crop" / "images" / SHARD / f"{item}.png", c, (40, 40), root)
            crop.kept(post, item, str(post), path=path, width=40, height=40, character="")
    write_manifest(crop.frame(), manifest_path(res, "crop", SHARD))

    clean = StageRows("clean", SHARD)
    for post, items in faces.items():
        for item in items:
            if item == "5_0":
                clean.dropped(post, item, "greyscale", {"saturation": 0.01})
            else:
                clean.kept(post, item, item, path=f"results/synth/crop/images/{SHARD}/{item}.png")
    write_manifest(clean.frame(), manifest_path(res, "clean", SHARD))

    dedup = StageRows("dedup", SHARD)
    dedup.dropped(1, "1_1", "near_duplicate", {"duplicate_of": "1_0", "distance": 5})
    dedup.dropped(6, "6_0", "exact_duplicate", {"duplicate_of": "2_0", "distance": 0})
    for post, item in [(1, "1_0"), (2, "2_0"), (4, "4_0")]:
        dedup.kept(post, item, item)  # no path column of its own: the report must walk back to clean/crop
    write_manifest(dedup.frame(), manifest_path(res, "dedup", SHARD))
    # dedup's pairs table (the report rules' input standing for every dedup manifest; the sheets read the ledger)
    pd.DataFrame(
        {"a": [0, 1], "b": [2, 3], "distance": [5, 0], "kind": ["near", "exact"], "colour_residual": [0.01, 0.0]}
    ).to_parquet(res / "dedup" / "pairs.parquet", index=False)

    norm = StageRows("normalise", SHARD)
    for post, item in [(1, "1_0"), (2, "2_0")]:
        c = colour(200 + post)
        cols["normalise", item] = c
        norm.kept(post, item, item, path=png(res / "normalise" / "images" / SHARD / f"{item}.png", c, (32, 32), root))
    norm.dropped(4, "4_0", "gate_failed", {"size": [31, 32]})
    write_manifest(norm.frame(), manifest_path(res, "normalise", SHARD))

    select = StageRows("select", "all")
    select.kept(1, "1_0", "1_0", path=f"results/synth/normalise/images/{SHARD}/1_0.png", character="rin")
    select.dropped(2, "2_0", "excluded_by_user", {"listed": "2"})
    write_manifest(select.frame(), manifest_path(res, "select", "all"))
    kept = select.frame()
    kept = kept[kept["status"] == "kept"][["item_id", "path", "character"]].assign(label=0, sha256="x")
    kept.to_parquet(res / "select" / "dataset.parquet", index=False)

    (res / "pack" / "cards").mkdir(parents=True)
    for fmt, count in [("hdf5", 1), ("zip", 1)]:
        card = {
            "format": fmt,
            "count": count,
            "resolution": 32,
            "disk_bytes": 123456,
            "classes": [{"label": 0, "name": "(unlabelled)", "count": count}],
            "code": {"animefaces": "0.1.0", "git": None},
            "warnings": [],
        }
        (res / "pack" / "cards" / f"{fmt}.json").write_text(json.dumps(card))

    (res / "train" / "grids").mkdir(parents=True)
    lines = [
        {"tick": t, "kimg": t * 0.5, "loss_G": 2.0 / (t + 1), "loss_D": 1.0 + t % 2, "aug_p": 0.0} for t in range(6)
    ]
    (res / "train" / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    for t in [0, 2, 4, 9, 10, 11]:
        png(res / "train" / "grids" / f"tick-{t}.png", colour(300 + t), (64, 48))  # unpadded: sort numerically

    for seed in range(5):
        png(res / "samples" / "psi0.70" / f"seed{seed:07d}.png", colour(400 + seed), (32, 32))
    png(res / "samples" / "truncation.png", colour(500), (3000, 200))
    for k, part in enumerate(["coarse", "middle", "fine"]):
        png(res / "samples" / f"style_mixing_{part}.png", colour(510 + k), (64, 64))
    (res / "samples" / "images.json").write_text("{}")
    for name in ["interpolation", "training_montage"]:
        (res / "samples" / f"{name}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + name.encode())
    (res / "train" / "network-final.pt").write_bytes(b"not a network")
    (res / "train" / "grids" / "index.json").write_text(json.dumps({"grids": ["tick-0.png", "tick-11.png"]}))
    return {"res": res, "root": root, "colours": cols}


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> dict:
    return build_results(tmp_path_factory.mktemp("report"))


def tile_colour(sheet: Image.Image, i: int, cols: int, tile: int, lines: int, pad: int = 4, title: bool = True):
    """Centre pixel of tile ``i`` of a contact sheet built with those parameters."""
    r, c = divmod(i, cols)
    y0 = pad + (images.LINE_HEIGHT + pad if title else 0)
    x = pad + c * (tile + pad) + tile // 2
    y = y0 + r * (tile + lines * images.LINE_HEIGHT + pad) + tile // 2
    return sheet.getpixel((x, y))


def test_fixture_ledger_reconciles(synth):
    assert reconcile(load_ledger(synth["res"])) == []


def test_contact_sheet_geometry_and_bad_files(tmp_path):
    good = png(tmp_path / "a.png", (200, 10, 10), (50, 100))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    tiles = [images.Tile(path=good, lines=["a"]), images.Tile(path=tmp_path / "bad.png", lines=["b", "x"])]
    tiles += [images.Tile(path=tmp_path / "missing.png"), images.Tile(path=None)]
    sheet = images.contact_sheet(tiles, cols=3, tile=64, title="t")
    assert sheet.size == images.sheet_size(4, 3, 64, 2, 4, True)
    assert sheet.size == (3 * 64 + 4 * 4, 2 * (64 + 2 * 14) + 3 * 4 + 14 + 4)
    assert tile_colour(sheet, 0, 3, 64, 2) == (200, 10, 10)
    for i in (1, 2, 3):  # unreadable, missing and absent files become grey placeholders, not errors
        assert tile_colour(sheet, i, 3, 64, 2) == images.PLACEHOLDER or tile_colour(sheet, i, 3, 64, 2) == images.TEXT
    assert images.contact_sheet([], title="x").size == images.sheet_size(1, 8, 128, 0, 4, True)


def test_short_details_and_wrap():
    text = json.dumps({"detector": "lbpcascade", "faces_detected": 0, "source_path": "a/b.png", "faces": [], "n": 2.5})
    assert data.short_details(text) == "faces_detected=0, n=2.5"
    assert data.short_details("not json") == ""
    lines = images.wrap("alpha=1, beta=2, gamma=3, delta=4", images.text_width("alpha=1, beta=2"), 2, sep=", ")
    assert lines[0] == "alpha=1, beta=2" and len(lines) == 2 and lines[1].startswith("gamma=3")
    width = images.text_width("a b")
    out = images.wrap("a b c d e f", width, 2)  # too long for two lines: the last one ends in an ellipsis
    assert out[0] == "a b" and out[1].endswith("…") and images.text_width(out[1]) <= width


def test_stable_sample_is_deterministic_and_bounded():
    ids = [f"{i}_0" for i in range(100)]
    a = data.stable_sample(ids, 10)
    assert a == data.stable_sample(list(reversed(ids)), 10)
    assert len(set(a)) == 10 and set(a) <= set(ids)
    assert data.stable_sample(ids, 500) and len(data.stable_sample(ids, 500)) == 100
    assert set(data.stable_sample(ids, 10)) != set(data.stable_sample(ids, 10, salt="other"))


def test_image_index_walks_back_to_the_stage_input(synth):
    res = synth["res"]
    index = data.ImageIndex(data.load_rows(res), base=synth["root"])
    assert index.input_image("crop", "3") == synth["root"] / "mirror" / "3.png"  # no_face: the source
    assert index.input_image("clean", "5_0") == res / "crop/images/000/5_0.png"
    assert index.input_image("dedup", "1_1") == res / "crop/images/000/1_1.png"
    assert index.input_image("normalise", "4_0") == res / "crop/images/000/4_0.png"  # dedup row has no path
    assert index.input_image("select", "2_0") == res / "normalise/images/000/2_0.png"
    assert index.input_image("dedup", "1_0", include_self=True) == res / "crop/images/000/1_0.png"
    assert index.input_image("crop", "7") is None  # dropped at ingest: never had a kept image
    only = data.ImageIndex(data.load_rows(res), base=synth["root"], ids={"5_0"})  # index just what is shown
    assert only.input_image("clean", "5_0") == index.input_image("clean", "5_0")
    assert only.input_image("dedup", "1_1") is None


def test_funnel_assets_match_ledger(synth, tmp_path):
    res = synth["res"]
    table, problems = rfunnel.write_funnel(res, tmp_path / "f.tsv", tmp_path / "f.html", tmp_path / "f.png")
    expected = funnel(load_ledger(res))
    assert problems == []
    back = pd.read_csv(tmp_path / "f.tsv", sep="\t", dtype={"reason": str}, keep_default_na=False, na_values={})
    assert list(back.columns) == list(expected.columns)
    for col in expected.columns:
        assert back[col].astype(str).tolist() == [
            "" if pd.isna(v) else str(int(v)) if isinstance(v, float) else str(v) for v in expected[col]
        ], col
    totals = back[back["reason"] == ""].set_index("stage")
    assert totals.loc["crop", "in"] == "6" and totals.loc["crop", "kept"] == "6"  # 5 posts -> 6 faces
    assert totals.loc["select", "kept"] == "1"
    page = (tmp_path / "f.html").read_text()
    for stage, reason in zip(expected["stage"], expected["reason"], strict=True):
        assert f">{stage}<" in page and (not reason or f">{reason}<" in page)
    assert "Reconciled" in page
    with Image.open(tmp_path / "f.png") as im:
        assert im.format == "PNG" and im.width >= 800


def test_funnel_html_lists_reconciliation_problems():
    table = pd.DataFrame(
        [{"stage": "crop", "reason": "", "in": 2, "kept": 1, "kept_parents": 1, "dropped": 1}],
    )
    page = rfunnel.funnel_html(table, ["crop: 1 items kept by ingest never reached crop, e.g. '9'"])
    assert "Reconciliation problems" in page and "never reached crop" in page


def test_drop_sheets_show_what_each_stage_dropped(synth, tmp_path):
    res = synth["res"]
    written = sheets.drop_sheets(res, tmp_path, cols=4, tile=48, base=synth["root"])
    names = sorted(p.name for p in written)
    assert names == sorted(
        [
            "crop-no_face.png",
            "clean-greyscale.png",
            "dedup-exact_duplicate.png",
            "dedup-near_duplicate.png",
            "normalise-gate_failed.png",
            "select-excluded_by_user.png",
        ]
    )  # no ingest sheet: metadata drops are counted, not shown
    expect = {
        "crop-no_face.png": synth["colours"]["ingest", "3"],
        "clean-greyscale.png": synth["colours"]["crop", "5_0"],
        "dedup-near_duplicate.png": synth["colours"]["crop", "1_1"],
        "normalise-gate_failed.png": synth["colours"]["crop", "4_0"],
        "select-excluded_by_user.png": synth["colours"]["normalise", "2_0"],
    }
    for name, rgb in expect.items():
        with Image.open(tmp_path / name) as im:
            assert im.size == images.sheet_size(1, 4, 48, 1 + sheets.DETAIL_LINES, 4, True)
            assert tile_colour(im.convert("RGB"), 0, 4, 48, 1 + sheets.DETAIL_LINES) == rgb, name


def test_duplicate_pairs_order_and_sheet(synth, tmp_path):
    rows = data.load_rows(synth["res"])
    pairs = sheets.duplicate_pairs(rows)
    assert pairs[["item_id", "duplicate_of", "reason"]].values.tolist() == [
        ["1_1", "1_0", "near_duplicate"],
        ["6_0", "2_0", "exact_duplicate"],
    ]
    assert pairs["distance"].tolist() == [5.0, 0.0]
    out = tmp_path / "pairs.png"
    assert sheets.pairs_sheet(synth["res"], out, per_row=1, tile=48, base=synth["root"]) == 2
    with Image.open(out) as im:
        arr = np.asarray(im.convert("RGB"))
    c = synth["colours"]
    centres = {}
    for item in ["1_1", "1_0", "6_0", "2_0"]:
        ys, xs = np.nonzero((arr == c["crop", item]).all(axis=2))
        assert len(xs) == 48 * 48, item  # each crop shown once, as a full 48 px tile
        centres[item] = (xs.mean(), ys.mean())
    for dropped_item, survivor in [("1_1", "1_0"), ("6_0", "2_0")]:  # dropped copy left of its survivor
        assert centres[dropped_item][0] < centres[survivor][0]
        assert centres[dropped_item][1] == centres[survivor][1]
    assert centres["1_1"][1] < centres["6_0"][1]  # near duplicates first


def test_pairs_sheet_without_duplicates(tmp_path):
    rows = StageRows("dedup", SHARD)
    rows.kept(1, "1_0", "1_0")
    write_manifest(rows.frame(), manifest_path(tmp_path, "dedup", SHARD))
    assert sheets.pairs_sheet(tmp_path, tmp_path / "p.png") == 0
    assert Image.open(tmp_path / "p.png").size[0] > 0


def test_kept_sheet(synth, tmp_path):
    out = tmp_path / "kept.png"
    assert sheets.kept_sheet(synth["res"] / "select" / "dataset.parquet", out, cols=8, tile=40, base=synth["root"]) == 1
    with Image.open(out) as im:
        assert im.size == images.sheet_size(1, 8, 40, 2, 4, True)  # item id + character
        assert tile_colour(im.convert("RGB"), 0, 8, 40, 2) == synth["colours"]["normalise", "1_0"]
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"item_id": ["1_0"]}).to_parquet(bad)
    with pytest.raises(ValueError, match="path"):
        sheets.kept_sheet(bad, out)


class _Table(HTMLParser):
    """Rows of the outermost table as lists of cell texts (nested tables' text goes into their cell)."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self._tables = 0
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._tables += 1
        elif self._tables == 1 and tag == "tr":
            self.rows.append([])
        elif self._tables == 1 and tag in {"td", "th"}:
            self.rows[-1].append("")
            self._in_cell = True

    def handle_endtag(self, tag):
        if tag == "table":
            self._tables -= 1
        elif self._tables == 1 and tag in {"td", "th"}:
            self._in_cell = False

    def handle_data(self, text):
        if self._in_cell:
            self.rows[-1][-1] += text


def test_cards_html_table(synth, tmp_path):
    paths = sorted((synth["res"] / "pack" / "cards").glob("*.json"))
    assert cards.write_cards(paths, tmp_path / "c.html") == 2
    parser = _Table()
    parser.feed((tmp_path / "c.html").read_text())
    header, *rows = parser.rows
    assert header[:5] == ["card", "format", "count", "resolution", "classes"]
    assert [r[0] for r in rows] == ["hdf5", "zip"]
    assert "120.6 KiB" in rows[0][header.index("disk_bytes")]
    assert "(unlabelled)" in rows[0][header.index("classes")]  # list of records -> nested table in the cell
    assert rows[1][header.index("count")] == "1"
    (tmp_path / "broken.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="broken.json"):
        cards.load_cards([tmp_path / "broken.json"])
    assert "No dataset cards" in cards.cards_html([])


def test_metrics_and_curves(synth, tmp_path):
    metrics = synth["res"] / "train" / "metrics.jsonl"
    df = training.read_metrics(metrics)
    assert len(df) == 6
    assert training.numeric_metrics(df) == ("kimg", ["loss_G", "loss_D", "aug_p"])
    assert training.plot_curves(df, tmp_path / "c.png") == ["loss_G", "loss_D", "aug_p"]
    assert training.panels(["D_real", "aug_p", "loss_G", "loss_D", "D_fake"]) == [
        ("losses", ["loss_G", "loss_D"]),
        ("discriminator outputs", ["D_real", "D_fake"]),
        ("aug_p", ["aug_p"]),
    ]
    assert Image.open(tmp_path / "c.png").format == "PNG"
    cut = tmp_path / "cut.jsonl"
    cut.write_text(metrics.read_text() + '{"tick": 6, "kimg": 3')  # killed mid-line
    assert len(training.read_metrics(cut)) == 6
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tick": 0}\nnot json\n{"tick": 1}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        training.read_metrics(bad)


def test_tick_montage_picks_first_last_and_numeric_order(synth, tmp_path):
    grids = sorted((synth["res"] / "train" / "grids").glob("tick-*.png"))
    chosen = training.tick_montage(grids, tmp_path / "m.png", n=3, width=64)
    assert [training.tick_number(p) for p in chosen] == [0, 4, 11]
    with Image.open(tmp_path / "m.png") as im:
        assert im.width == 3 * 64 + 4 * 8
    assert [training.tick_number(p) for p in training.pick_ticks(grids, 10)] == [0, 2, 4, 9, 10, 11]
    griddir = synth["res"] / "train" / "grids"
    assert sorted(training.grid_files([griddir])) == grids
    index = tmp_path / "index.json"  # the trainer's grids/index.json names the grids relative to itself
    index.write_text(json.dumps({"grids": [p.name for p in grids[:2]]}))
    assert training.grid_files([index]) == [tmp_path / p.name for p in grids[:2]]


def test_sample_assets(synth, tmp_path):
    written = samples.sample_assets(synth["res"] / "samples", tmp_path, n=3)
    assert sorted(p.name for p in written) == [
        "figure-style_mixing_coarse.png",
        "figure-style_mixing_fine.png",
        "figure-style_mixing_middle.png",
        "figure-truncation.png",
        "gallery-psi0.70.png",
        "video-interpolation.mp4",
        "video-training_montage.mp4",
    ]
    with Image.open(tmp_path / "figure-truncation.png") as im:
        assert max(im.size) == samples.MAX_FIGURE
    with Image.open(tmp_path / "gallery-psi0.70.png") as im:
        assert im.size == images.sheet_size(3, 8, 96, 1, 4, True)
    video = (synth["res"] / "samples/interpolation.mp4").read_bytes()
    assert (tmp_path / "video-interpolation.mp4").read_bytes() == video
    # what the rule passes: the sample folders and files themselves
    again = samples.sample_assets(
        [synth["res"] / "samples" / "psi0.70", synth["res"] / "samples" / "interpolation.mp4"], tmp_path / "b", n=3
    )
    assert [p.name for p in again] == ["gallery-psi0.70.png", "video-interpolation.mp4"]
    with pytest.raises(FileNotFoundError, match="sample rule"):
        samples.sample_assets([tmp_path / "nope"], tmp_path / "c")


def test_cli(synth, tmp_path):
    res = synth["res"]
    assert report_main(["funnel", str(res), "--png", str(tmp_path / "f.png")]) == 0
    assert report_main(["pairs", str(res), "--out", str(tmp_path / "p.png"), "-n", "1"]) == 0
    # what the rules pass: the results folder and its shard count (exactly the run's manifests, not a glob)
    shards = len(list((res / "crop" / "manifests").glob("*.parquet")))
    tsv = tmp_path / "f.tsv"
    assert report_main(["funnel", str(res), "--shards", str(shards), "--tsv", str(tsv)]) == 0
    assert report_main(["funnel", str(res), "--tsv", str(tmp_path / "glob.tsv")]) == 0
    assert tsv.read_bytes() == (tmp_path / "glob.tsv").read_bytes()
    assert report_main(["funnel", str(res), "--shards", str(shards + 1), "--tsv", str(tmp_path / "x.tsv")]) == 1
    metrics = res / "train" / "metrics.jsonl"
    argv = ["training", str(metrics), "--curves", str(tmp_path / "c.png"), "--montage", str(tmp_path / "m.png")]
    assert report_main(argv) == 0
    assert all((tmp_path / f).is_file() for f in ["f.png", "p.png", "c.png", "m.png"])
    with pytest.raises(SystemExit):
        report_main(["nonsense"])


# ---------------------------------------------------------------- the report rules through Snakemake

SNAKEFILE = """
import sys
sys.path.insert(0, {package!r})
from animefaces.config import section_json
from animefaces.wiring import results_of
shell.prefix("export PYTHONPATH={package}; ")
config = {{"dataset": {{"name": "synth", "root": "mirror"}}, "shards": {{"count": 1}},
          "pack": {{"formats": ["hdf5", "zip"]}}}}
RES = "results/synth"
SHARDS = ["000"]
TARGETS = []
TRAIN_MODEL = "stylegan2"  # train.smk's; the samples page shows StyleGAN2's products
# Stand-ins for the train and sample rules (their outputs exist already; report.smk refers to them by name).
rule train:
    output: network=f"{{RES}}/train/network-final.pt", metrics=f"{{RES}}/train/metrics.jsonl",
            grids=f"{{RES}}/train/grids/index.json"
rule sample_images:
    output: dirs=[directory(f"{{RES}}/samples/psi0.70")], index=f"{{RES}}/samples/images.json"
rule sample_figures:
    output: truncation=f"{{RES}}/samples/truncation.png",
            mixing=[f"{{RES}}/samples/style_mixing_{{r}}.png" for r in ["coarse", "middle", "fine"]]
rule sample_video:
    output: video=f"{{RES}}/samples/interpolation.mp4"
rule sample_montage:
    output: video=f"{{RES}}/samples/training_montage.mp4"
include: {rules!r}
rule all:
    default_target: True
    input: TARGETS
"""


def parse_report(html: str) -> tuple[dict, dict, str]:
    def var(name):
        m = re.search(rf'<script id="{name}">\s*var \w+ = (.*?);?\s*</script>', html, re.S)
        assert m, f"report has no {name} block"
        return m.group(1)

    return json.loads(var("results")), json.loads(var("categories")), json.loads(var("workflow-desc"))


def check_report_zip(zip_path: Path, expect_drops: set[str]) -> dict:
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        page = zf.read(next(n for n in names if n.endswith("report.html"))).decode()
    results, categories, desc = parse_report(page)
    assert "animefaces" in desc
    assert set(categories) == {
        "1. Funnel",
        "2. Kept faces",
        "3. Dropped items",
        "4. Duplicates",
        "5. Dataset packs",
        "6. Training",
        "7. Samples",
    }
    files = {Path(k).name: v for k, v in results.items()}
    for name in ["funnel.html", "funnel.png", "funnel.tsv", "contact_kept.png", "dup_pairs.png", "cards.html"]:
        assert name in files, name
        assert files[name]["caption"].strip(), f"{name} has no caption"
    for name in ["training_curves.png", "tick_grids.png"]:
        assert name in files
    drops = {k for k in files if re.fullmatch(r"[a-z]+-[a-z_]+\.png", k) and not k.startswith(("gallery", "figure"))}
    assert drops == expect_drops
    assert "Ledger funnel" in files["funnel.html"]["caption"]
    assert "Reason codes" in files[next(iter(expect_drops))]["caption"]
    # every asset is in the archive itself (self-contained)
    for name in ["funnel.png", "contact_kept.png", "dup_pairs.png", "cards.html", "training_curves.png"]:
        assert any(n.endswith("/" + name) for n in names), name
    return files


def test_report_rules_build_a_report(synth, tmp_path):
    work = tmp_path / "wf"
    shutil.copytree(synth["root"], work)  # results/ and mirror/; manifest paths are relative to it
    (work / "Snakefile").write_text(
        SNAKEFILE.format(package=str(REPO / "workflow"), rules=str(REPO / "workflow/rules/report.smk"))
    )
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [venv_bin / "snakemake", "-c1", "-q", "--report", "report.zip", "--report-after-run"]
    run = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    files = check_report_zip(
        work / "report.zip",
        {
            "crop-no_face.png",
            "clean-greyscale.png",
            "dedup-exact_duplicate.png",
            "dedup-near_duplicate.png",
            "normalise-gate_failed.png",
            "select-excluded_by_user.png",
        },
    )
    assert {"gallery-psi0.70.png", "figure-truncation.png", "video-interpolation.mp4"} <= set(files)
    assert {"figure-style_mixing_fine.png", "video-training_montage.mp4"} <= set(files)
    # the tick montage used the grids the trainer listed in grids/index.json
    with Image.open(work / "results/synth/report/tick_grids.png") as im:
        assert im.width == 2 * 384 + 3 * 8
    assert files["crop-no_face.png"]["labels"] == {"stage": "crop", "reason": "no_face"}


# ---------------------------------------------------------------- the whole report on the demo (slow)


@pytest.mark.slow
def test_report_on_the_demo(demo_run):
    """The shipped demo run end to end with `snakemake --report report.zip` (the `demo_run` fixture): every
    section is there with its caption, and the figures agree with the ledger."""
    work, cfg = demo_run["work"], demo_run["config"]
    res = work / "results" / cfg["dataset"]["name"]
    rows = data.load_rows(res)
    pictured = rows[(rows["status"] == "dropped") & rows["stage"].isin(sheets.PICTURE_STAGES)]
    expect = {sheets.drop_sheet_name(s, r) for s, r in zip(pictured["stage"], pictured["reason"], strict=True)}
    assert expect, "the demo plants problem cases: some items must be dropped after ingest"
    files = check_report_zip(work / "report.zip", expect)
    assert any(name.startswith("gallery-") for name in files), "no sample gallery in the report"
    # the funnel in the report is the ledger's
    table = pd.read_csv(res / "report" / "funnel.tsv", sep="\t", dtype={"reason": str}, keep_default_na=False)
    ledger = funnel(load_ledger(res))
    assert table["dropped"].astype(int).tolist() == ledger["dropped"].astype(int).tolist()
    assert reconcile(load_ledger(res)) == []
    dataset = pd.read_parquet(res / "select" / "dataset.parquet")
    with Image.open(res / "report" / "contact_kept.png") as im:
        n = min(64, len(dataset))
        assert im.size in {images.sheet_size(n, 8, 96, lines, 4, True) for lines in (1, 2)}  # id (+ character)
