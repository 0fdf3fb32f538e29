"""Crop geometry, decoding for crops, and the sharded crop stage on a tiny manifest with real images."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from animefaces import crop, ledger
from animefaces.config import defaults
from animefaces.crop import CropBox, apply_crop, crop_box, decode_for_crop, has_transparency
from animefaces.decode import load_rgb
from animefaces.detect import Face
from animefaces.manifest import StageRows, manifest_path, read_manifest, write_manifest


def _params(**over) -> dict:
    p = dict(defaults()["crop"])
    p.update(over)
    return p


# ----------------------------------------------------------------------------------------------- geometry


def test_defaults_are_the_seeds_detector():
    p = defaults()["crop"]
    assert (p["detector"], p["scale_factor"], p["min_neighbors"], p["min_face"]) == ("lbpcascade", 1.1, 5, 50)


def test_box_geometry_is_the_detected_box():
    b = crop_box(Face(30, 40, 100, 100), 500, 400, _params(geometry="box"))
    assert b == CropBox(30, 40, 100, 100)


def test_portrait_margins_and_square_center():
    p = _params(geometry="portrait", margin_side=0.25, margin_top=0.5, margin_bottom=0.25, square=False)
    b = crop_box(Face(200, 200, 100, 100), 1000, 1000, p)
    assert (b.x, b.y, b.w, b.h) == (175, 150, 150, 175)
    sq = crop_box(Face(200, 200, 100, 100), 1000, 1000, {**p, "square": True})
    # 150 wide -> grown to 175, centred: 12 px more on the left, 13 on the right
    assert (sq.x, sq.y, sq.w, sq.h) == (163, 150, 175, 175)
    assert not sq.padded and sq.shifted == (0, 0)


def test_square_top_alignment_keeps_the_top_edge():
    p = _params(geometry="portrait", margin_side=0.5, margin_top=0.1, margin_bottom=0.1)
    center = crop_box(Face(200, 200, 100, 100), 1000, 1000, {**p, "align": "center"})
    top = crop_box(Face(200, 200, 100, 100), 1000, 1000, {**p, "align": "top"})
    assert (center.x, center.w, center.h) == (top.x, top.w, top.h) == (150, 200, 200)
    assert top.y == 190  # the expanded box's top (200 - 10): everything added goes below
    assert center.y == 190 - (200 - 120) // 2


def test_edge_shift_moves_inside_without_shrinking():
    b = crop_box(Face(5, 480, 100, 100), 600, 560, _params(geometry="box", edge="shift"))
    assert (b.x, b.y, b.w, b.h) == (5, 460, 100, 100)
    assert b.pad == (0, 0, 0, 0) and b.shifted == (0, -20)
    p = _params(geometry="portrait", margin_side=0.2, margin_top=0.4, margin_bottom=0.2)
    b = crop_box(Face(0, 0, 100, 100), 600, 560, p)
    assert (b.x, b.y, b.w, b.h) == (0, 0, 160, 160) and not b.padded


def test_edge_shift_pads_when_crop_larger_than_image():
    # 160 px portrait crop in a 120 px tall image: shifted horizontally, padded vertically, never shrunk
    p = _params(geometry="portrait", margin_side=0.2, margin_top=0.4, margin_bottom=0.2)
    b = crop_box(Face(400, 10, 100, 100), 450, 120, p)
    assert (b.w, b.h) == (160, 160)
    assert b.x == 450 - 160
    assert b.pad[0] == b.pad[2] == 0
    assert b.pad[1] + b.pad[3] == 40 and b.y == -b.pad[1]
    assert b.padded


def test_edge_pad_keeps_position():
    b = crop_box(Face(-10, 560, 100, 100), 600, 600, _params(geometry="box", edge="pad"))
    assert (b.x, b.y, b.w, b.h) == (-10, 560, 100, 100)
    assert b.pad == (10, 0, 0, 60)


def test_apply_crop_exact_region_and_padding():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (120, 200, 3), dtype=np.uint8)
    inner = apply_crop(img, CropBox(10, 20, 50, 40), "replicate", 255)
    assert np.array_equal(inner, img[20:60, 10:60])
    box = CropBox(-5, 100, 30, 30, pad=(5, 0, 0, 10))
    rep = apply_crop(img, box, "replicate", 255)
    assert rep.shape == (30, 30, 3)
    assert np.array_equal(rep[:20, 5:], img[100:120, 0:25])
    assert np.array_equal(rep[:20, 0], img[100:120, 0])  # left pad repeats the edge column
    const = apply_crop(img, box, "constant", 255)
    assert (const[20:] == 255).all() and (const[:, :5] == 255).all()
    refl = apply_crop(img, box, "reflect", 255)
    assert np.array_equal(refl[:20, 4], img[100:120, 1])


# ----------------------------------------------------------------------------------------------- decoding


def test_transparent_files_are_flattened_like_load_rgb(shared):
    robust = shared / "robustness" / "danbooru_test_files"
    for rel in ("png/alpha.png", "dupes/countergirl.png", "webp/2_webp_a.webp"):
        path = robust / rel
        assert has_transparency(path.read_bytes()[:65536]), rel
        assert np.array_equal(decode_for_crop(path), load_rgb(path).rgb[:, :, ::-1]), rel
    for rel in ("jpg/test.jpg", "dupes/countergirl-whitebg-noalpha.png", "webp/test.webp"):
        assert not has_transparency((robust / rel).read_bytes()[:65536]), rel


# ----------------------------------------------------------------------------------------------- the stage

SAMPLES = "illustrations/jonathonyan_detection_samples"


@pytest.fixture()
def tiny_shard(tmp_path, shared):
    """An ingest manifest for shard 000 with one post per case; images referenced in place or made in tmp."""
    src = tmp_path / "mirror"
    src.mkdir()
    (src / "1001.jpg").write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (src / "1002.png").write_bytes(b"")
    grad = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    cv2.imwrite(str(src / "1003.png"), cv2.merge([grad, grad[:, ::-1], grad]))
    whole = (shared / SAMPLES / "detect_03.jpg").read_bytes()
    (src / "1005.jpg").write_bytes(whole[: len(whole) * 6 // 10])
    posts = [
        (1001, src / "1001.jpg", "jpg", 0, ""),
        (1002, src / "1002.png", "png", 0, ""),
        (1003, src / "1003.png", "png", 0, ""),
        (1004, shared / SAMPLES / "sample1.jpg", "jpg", 2, "kagamine_rin"),
        (1005, src / "1005.jpg", "jpg", 0, ""),
        (1006, shared / SAMPLES / "detect_03.jpg", "jpg", 1, "hatsune_miku"),
        (1007, shared / SAMPLES / "detect_01.jpg", "jpg", 0, ""),
    ]
    rows = StageRows("ingest", "000")
    for i, (pid, path, ext, label, character) in enumerate(posts):
        rows.kept(pid, str(pid), f"meta.jsonl:{i}", path=str(path), file_ext=ext, label=label, character=character)
    res = tmp_path / "results"
    write_manifest(rows.frame(), manifest_path(res, "ingest", "000"))
    return res


def test_stage_on_tiny_shard_exact_ledger(tiny_shard, shared):
    res = tiny_shard
    params = json.dumps({"geometry": "box", "min_crop": 100})
    images = res / "crop" / "images" / "000"
    rc = crop.main(
        [
            "--shard",
            "000",
            "--manifest",
            str(manifest_path(res, "ingest", "000")),
            "--out-manifest",
            str(manifest_path(res, "crop", "000")),
            "--images",
            str(images),
            "--cascade",
            str(shared / "cascade" / "lbpcascade_animeface.xml"),
            "--params",
            params,
            "--threads",
            "2",
        ]
    )
    assert rc == 0
    df = read_manifest(manifest_path(res, "crop", "000"))
    got = [tuple(r) for r in df[["item_id", "parent_id", "status", "reason"]].itertuples(index=False)]
    assert got == [
        ("1001", "1001", "dropped", "undecodable"),
        ("1002", "1002", "dropped", "empty_file"),
        ("1003", "1003", "dropped", "no_face"),
        ("1004_0", "1004", "kept", ""),
        ("1004_1", "1004", "kept", ""),
        ("1005", "1005", "dropped", "truncated"),
        ("1006", "1006", "dropped", "face_too_small"),
        ("1007_0", "1007", "kept", ""),
        ("1007_1", "1007", "kept", ""),
    ]
    assert (df["stage"] == "crop").all() and (df["shard"] == "000").all()
    # detect_01: four faces; the two whose crops are >= 100 px are numbered by score, the others listed
    d7 = json.loads(df.set_index("item_id").loc["1007_0", "details"])
    assert d7["box"] == [202, 218, 117, 117] and d7["faces_detected"] == 4
    assert [f["box"] for f in d7["faces_too_small"]] == [[356, 159, 98, 98], [38, 140, 94, 94]]
    assert json.loads(df.set_index("item_id").loc["1007_1", "details"])["box"] == [288, 318, 163, 163]
    kept = df[(df["status"] == "kept") & (df["post_id"] == 1004)].set_index("item_id")
    # sample1: the cascade's two faces; n=0 has the higher level weight
    assert kept.loc["1004_0", ["box_x", "box_y", "box_w", "box_h"]].tolist() == [79, 88, 143, 143]
    assert kept.loc["1004_1", ["box_x", "box_y", "box_w", "box_h"]].tolist() == [269, 99, 126, 126]
    assert kept.loc["1004_0", "score"] > kept.loc["1004_1", "score"] > 0
    assert kept["label"].tolist() == [2, 2] and kept["character"].tolist() == ["kagamine_rin"] * 2
    assert kept["source_ext"].tolist() == ["jpg", "jpg"] and kept["detector"].tolist() == ["lbpcascade"] * 2
    assert kept["source_path"].tolist() == [str(shared / SAMPLES / "sample1.jpg")] * 2
    assert (kept["source_width"] == 480).all() and (kept["source_height"] == 539).all()
    src = cv2.imread(str(shared / SAMPLES / "sample1.jpg"))
    for item, row in kept.iterrows():
        assert row["path"] == str(images / f"{item}.png")
        pixels = cv2.imread(row["path"], cv2.IMREAD_UNCHANGED)
        x, y, w, h = row[["crop_x", "crop_y", "crop_w", "crop_h"]].tolist()
        assert (row["width"], row["height"]) == (w, h) == (pixels.shape[1], pixels.shape[0])
        assert np.array_equal(pixels, src[y : y + h, x : x + w])  # lossless, native resolution
        d = json.loads(row["details"])
        assert d["box"] == row[["box_x", "box_y", "box_w", "box_h"]].tolist()
        assert d["detector"] == "lbpcascade" and d["score"] == pytest.approx(row["score"])
    assert sorted(p.name for p in images.iterdir()) == ["1004_0.png", "1004_1.png", "1007_0.png", "1007_1.png"]
    details = {r.item_id: json.loads(r.details) for r in df.itertuples()}
    assert details["1003"]["faces"] == [] and details["1003"]["detector"] == "lbpcascade"
    assert details["1006"]["faces"] == [
        {"box": [69, 41, 84, 84], "score": pytest.approx(4.631352), "crop_size": [84, 84]}
    ]
    assert details["1006"]["min_crop"] == 100
    assert "error" in details["1001"] and "error" in details["1005"]
    assert ledger.reconcile(ledger.load_ledger(res)) == []


def test_output_independent_of_thread_count(tmp_path, shared):
    names = ["detect_01.jpg", "detect_03.jpg", "sample1.jpg", "detect_06.jpg"]
    rows = StageRows("ingest", "001")
    for i, name in enumerate(names):
        rows.kept(10 + i, str(10 + i), f"m:{i}", path=str(shared / SAMPLES / name), file_ext="jpg", label=0)
    posts = rows.frame()
    cascade = shared / "cascade" / "lbpcascade_animeface.xml"
    params = _params(geometry="portrait", edge="shift")
    one = crop.run_crop(posts, "001", tmp_path / "t1", params, cascade, threads=1, progress=False)
    three = crop.run_crop(posts, "001", tmp_path / "t3", params, cascade, threads=3, progress=False)
    assert len(one) == 1 + 4 + 2 + 1
    pd.testing.assert_frame_equal(
        one.drop(columns=["path"]), three.drop(columns=["path"]), check_exact=True, check_like=False
    )
    for a, b in zip(one["path"].dropna(), three["path"].dropna(), strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()
    # detect_01's 4 faces are numbered by score, and the portrait crops are square and inside the image
    d1 = one[one["post_id"] == 10]
    assert d1["item_id"].tolist() == ["10_0", "10_1", "10_2", "10_3"]
    assert d1["score"].is_monotonic_decreasing
    assert (d1["width"] == d1["height"]).all() and not d1["padded"].any()


def test_missing_cascade_is_a_clear_error(tiny_shard, tmp_path, capsys):
    rc = crop.main(
        [
            "--shard",
            "000",
            "--manifest",
            str(manifest_path(tiny_shard, "ingest", "000")),
            "--out-manifest",
            str(tmp_path / "out.parquet"),
            "--images",
            str(tmp_path / "img"),
            "--cascade",
            str(tmp_path / "missing.xml"),
        ]
    )
    assert rc == 1
    assert "missing.xml not found" in capsys.readouterr().err
    assert not (tmp_path / "out.parquet").exists()


def test_empty_shard_gives_empty_manifest(tmp_path, shared):
    res = tmp_path / "res"
    write_manifest(StageRows("ingest", "002").frame(), manifest_path(res, "ingest", "002"))
    args = ["--shard", "002", "--manifest", str(manifest_path(res, "ingest", "002"))]
    args += ["--out-manifest", str(manifest_path(res, "crop", "002")), "--images", str(tmp_path / "img")]
    args += ["--cascade", str(shared / "cascade" / "lbpcascade_animeface.xml")]
    assert crop.main(args) == 0
    df = read_manifest(manifest_path(res, "crop", "002"))
    assert len(df) == 0 and {"path", "box_x", "score", "label", "character"} <= set(df.columns)
    assert (tmp_path / "img").is_dir()


def test_nvxs_stage_with_worker_processes(tmp_path, shared):
    """nvxs keeps the GIL, so --threads > 1 uses processes; the output equals the single-worker run."""
    files = sorted((shared / "faces" / "selfie2anime").iterdir())[:4]
    rows = StageRows("ingest", "003")
    for i, f in enumerate(files):
        rows.kept(300 + i, str(300 + i), f"m:{i}", path=str(f), file_ext="jpg", label=0)
    params = _params(detector="nvxs", geometry="box", min_crop=1)
    one = crop.run_crop(rows.frame(), "003", tmp_path / "p1", params, None, threads=1, progress=False)
    two = crop.run_crop(rows.frame(), "003", tmp_path / "p2", params, None, threads=2, progress=False)
    pd.testing.assert_frame_equal(one.drop(columns=["path"]), two.drop(columns=["path"]), check_exact=True)
    assert (one["status"] == "kept").sum() >= 3 and set(one["detector"].dropna()) == {"nvxs"}
    for a, b in zip(one["path"].dropna(), two["path"].dropna(), strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()
