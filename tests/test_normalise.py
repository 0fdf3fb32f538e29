"""Normalise stage: fit modes, upscaling backends, the strict gate, and the whole clean -> dedup -> normalise
chain over Danbooru's decoding fixtures with the ledger reconciled."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from animefaces import clean, ledger, normalise, upscale
from animefaces.config import SCHEMA_FILE, ConfigError, defaults, parse_params
from animefaces.dedup import main as dedup_main
from animefaces.manifest import StageRows, manifest_path, read_manifest, write_manifest
from PIL import Image


@pytest.fixture()
def params():
    return defaults()["normalise"]


def gradient(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), np.full_like(x, 200)], axis=2).astype(np.uint8)


def test_fit_pad_keeps_aspect_and_centres():
    img = gradient(50, 100)
    out = normalise.fit_image(img, 64, "pad", (0, 0, 0))
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    rows = np.flatnonzero(out.any(axis=(1, 2)))
    assert (rows.min(), rows.max()) == (16, 47)  # 100x50 -> 64x32, centred vertically
    assert (out[:16] == 0).all() and (out[48:] == 0).all()
    red = normalise.fit_image(img, 64, "pad", (255, 0, 0))
    assert (red[:16] == (255, 0, 0)).all()
    assert np.array_equal(
        normalise.fit_image(gradient(64, 64), 64, "pad", (0, 0, 0)), gradient(64, 64)
    )  # no-op at size


def test_fit_crop_center_and_top():
    img = gradient(200, 100)  # tall
    img[:10] = (255, 0, 0)  # a red band at the top
    top = normalise.fit_image(img, 50, "crop_top", (0, 0, 0))
    centre = normalise.fit_image(img, 50, "crop_center", (0, 0, 0))
    assert top.shape == centre.shape == (50, 50, 3)
    assert top[0, 25, 0] > 200 and top[0, 25, 1] < 40  # the band survives crop_top
    assert centre[0, 25, 1] > 40  # and is cut by crop_center
    with pytest.raises(ValueError, match="normalise.fit"):
        normalise.fit_image(img, 50, "stretch", (0, 0, 0))


@pytest.mark.parametrize(
    "w,h,target,cap,want",
    [(100, 100, 256, 4, 4), (100, 300, 256, 4, 1), (200, 100, 256, 4, 2), (30, 30, 256, 4, 4), (30, 30, 256, 16, 16)]
    + [(256, 10, 256, 4, 1), (255, 255, 256, 1, 1), (127, 127, 256, 8, 4)],
)
def test_upscale_factor(w, h, target, cap, want):
    assert upscale.upscale_factor(w, h, target, cap) == want


def test_upscalers_registry_matches_schema():
    schema = yaml.safe_load(SCHEMA_FILE.read_text())
    enum = schema["properties"]["normalise"]["properties"]["upscale"]["properties"]["backend"]["enum"]
    assert set(enum) == set(upscale.UPSCALERS)
    with pytest.raises(ValueError, match="normalise.upscale.backend"):
        upscale.make_upscaler("waifu2x")
    with pytest.raises(ConfigError):
        parse_params('{"upscale": {"max_factor": 3}}', "normalise")


def test_lanczos_and_torch_backends():
    img = gradient(20, 30)
    lz = upscale.make_upscaler("lanczos").upscale(img, 4)
    assert lz.shape == (80, 120, 3) and lz.dtype == np.uint8
    assert upscale.make_upscaler("lanczos").upscale(img, 1) is img
    with pytest.raises(ValueError, match="power of two"):
        upscale.make_upscaler("lanczos").upscale(img, 3)
    pytest.importorskip("torch")
    tb = upscale.make_upscaler("torch_bicubic", device="cpu")
    assert tb.device.type == "cpu"
    out = tb.upscale(img, 4)
    assert out.shape == (80, 120, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - lz).mean() < 4  # two interpolators of a smooth ramp agree closely


def _png(path, arr):
    Image.fromarray(arr).save(path)
    return path


def test_gate_rejects_what_downstream_must_not_get(tmp_path):
    ok = _png(tmp_path / "ok.png", gradient(32, 32))
    assert normalise.gate(ok, 32, "png") is None
    assert "size 32x32 != 64x64" in normalise.gate(ok, 64, "png")
    assert "format PNG != JPEG" in normalise.gate(ok, 32, "jpeg")
    rgba = tmp_path / "rgba.png"
    Image.fromarray(gradient(32, 32)).convert("RGBA").save(rgba)
    assert "mode RGBA" in normalise.gate(rgba, 32, "png")
    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), gradient(32, 32).astype(np.uint16) * 257)
    assert "bit depth" in normalise.gate(deep, 32, "png")
    cut = tmp_path / "cut.png"
    cut.write_bytes(ok.read_bytes()[:-40])
    assert normalise.gate(cut, 32, "png") is not None
    with pytest.raises(FileNotFoundError):  # our own file vanished: a fault of the machine, not a gate failure
        normalise.gate(tmp_path / "missing.png", 32, "png")
    jpg = tmp_path / "ok.jpg"
    Image.fromarray(gradient(32, 32)).save(jpg, quality=33)
    assert normalise.gate(jpg, 32, "jpeg") is None


def _dedup_like(files, shard="000"):
    rows = StageRows("dedup", shard)
    for k, path in enumerate(files):
        arr = np.asarray(Image.open(path))
        rows.kept(k + 1, f"{k + 1}_0", f"{k + 1}_0", path=str(path), width=arr.shape[1], height=arr.shape[0], label=1)
    return rows.frame()


def test_gate_failures_and_errors_become_ledger_rows(tmp_path, params, monkeypatch):
    crops = [_png(tmp_path / f"c{k}.png", gradient(40 + k, 50)) for k in range(3)]
    (tmp_path / "c3.png").write_bytes(b"")  # an empty crop: normalise_failed with the decoder's reason
    crops.append(tmp_path / "c3.png")
    items = _dedup_like(crops[:3])
    extra = StageRows("dedup", "000")
    extra.kept(4, "4_0", "4_0", path=str(crops[3]), width=40, height=40, label=1)
    items = pd.concat([items, extra.frame()], ignore_index=True)
    real_encode = normalise.encode

    def broken(rgb, fmt="png", quality=95):  # threads=1: items are encoded in order
        broken.calls += 1
        if broken.calls == 2:
            return real_encode(rgb[:32], fmt, quality)  # a wrong-size file: the gate must catch it
        if broken.calls == 3:
            raise RuntimeError("disk on fire")
        return real_encode(rgb, fmt, quality)

    broken.calls = 0
    monkeypatch.setattr(normalise, "encode", broken)
    out_dir = tmp_path / "out"
    frame = normalise.normalise_frame(items, "000", {**params, "size": 64}, out_dir, threads=1)
    by = frame.set_index("item_id")
    assert by.loc["1_0", "status"] == "kept"
    assert by.loc["2_0", "reason"] == "gate_failed"
    assert "size 64x32" in json.loads(by.loc["2_0", "details"])["problem"]
    assert not (out_dir / "2_0.png").exists()  # removed, never passed on
    assert by.loc["3_0", "reason"] == "normalise_failed"
    assert "disk on fire" in json.loads(by.loc["3_0", "details"])["error"]
    assert by.loc["4_0", "reason"] == "normalise_failed"
    assert json.loads(by.loc["4_0", "details"])["decoder_reason"] == "empty_file"
    assert sorted(p.name for p in out_dir.iterdir()) == ["1_0.png"]
    assert by.loc["1_0", "sha256"] == hashlib.sha256((out_dir / "1_0.png").read_bytes()).hexdigest()


def test_jpeg_output_and_upscale(tmp_path, params):
    crops = [_png(tmp_path / "small.png", gradient(30, 40)), _png(tmp_path / "big.png", gradient(300, 200))]
    p = {**params, "size": 128, "format": "jpeg", "quality": 33, "upscale": {**params["upscale"], "max_factor": 2}}
    frame = normalise.normalise_frame(_dedup_like(crops), "000", p, tmp_path / "out", threads=2)
    assert (frame["status"] == "kept").all()
    assert frame["upscale_factor"].tolist() == [2, 1]  # 30x40 -> 2x (cap 2) -> fit; 300x200 untouched
    for row in frame.itertuples():
        assert row.path.endswith(".jpg") and row.format == "jpeg"
        with Image.open(row.path) as im:
            assert im.format == "JPEG" and im.size == (128, 128) and im.mode == "RGB"
    assert frame["crop_width"].tolist() == [40, 200] and frame["width"].tolist() == [128, 128]
    assert str(frame["label"].dtype) == "Int64"


def test_fixtures_through_clean_dedup_normalise(shared, tmp_path):
    """Danbooru's 59 decoding fixtures as crops: no crash, every file accounted for in every stage, every output
    exactly 64x64 8-bit RGB PNG, EXIF-rotated pictures upright."""
    root = shared / "robustness" / "danbooru_test_files"
    files = sorted(p for p in root.rglob("*") if p.is_file())
    res = tmp_path / "res"
    rows = StageRows("crop", "000")
    for k, path in enumerate(files):
        rows.kept(k + 1, f"{k + 1}_0", str(k + 1), path=str(path), source_path=str(path), source_ext=path.suffix[1:])
    write_manifest(rows.frame(), manifest_path(res, "crop", "000"))
    m = {s: str(manifest_path(res, s, "000")) for s in ("crop", "clean", "dedup", "normalise")}
    cp = json.dumps({"min_size": 16, "monochrome": ["greyscale"]})
    assert clean.main(["--input", m["crop"], "--output", m["clean"], "--params", cp, "--threads", "2"]) == 0
    pairs = str(res / "dedup" / "pairs.parquet")
    assert dedup_main(["--inputs", m["clean"], "--outputs", m["dedup"], "--pairs", pairs]) == 0
    images = res / "normalise" / "images" / "000"
    npar = json.dumps({"size": 64})
    args = ["--input", m["dedup"], "--output", m["normalise"], "--images", str(images), "--params", npar]
    assert normalise.main([*args, "--threads", "2"]) == 0

    led = ledger.load_ledger(res)
    assert ledger.reconcile(led) == []
    assert (led[led["stage"] == "clean"]["parent_id"].nunique()) == len(files) == 59
    out = read_manifest(m["normalise"])
    kept = out[out["status"] == "kept"]
    assert len(kept) > 15 and (out["status"] == "kept").all()  # nothing the gate had to stop
    assert sorted(p.name for p in images.iterdir()) == sorted(f"{i}.png" for i in kept["item_id"])
    for row in kept.itertuples():
        assert normalise.gate(row.path, 64, "png") is None
        assert hashlib.sha256(Path(row.path).read_bytes()).hexdigest() == row.sha256

    # upright: each rotated fixture's output equals the fitted, independently transposed stored pixels
    name = {f"{k + 1}_0": p.relative_to(root).as_posix() for k, p in enumerate(files)}
    by_name = {name[i]: row for i, row in zip(kept["item_id"], kept.itertuples(), strict=True)}
    checked = 0
    for fixture, k, flip in [("jpg/test-rotation-180.jpg", 2, False), ("webp/Exif2.webp", 0, True)]:
        with Image.open(root / fixture) as im:
            raw = np.asarray(im.convert("RGB"))
        upright = np.fliplr(raw) if flip else np.rot90(raw, k)
        want = normalise.fit_image(np.ascontiguousarray(upright), 64, "pad", (0, 0, 0)).astype(float)
        wrong = normalise.fit_image(np.ascontiguousarray(raw), 64, "pad", (0, 0, 0)).astype(float)
        got = np.asarray(Image.open(by_name[fixture].path)).astype(float)
        assert np.abs(got - want).mean() < 1.0, fixture
        assert np.abs(got - wrong).mean() > 10, fixture
        checked += 1
    assert checked == 2
    assert by_name["gif/test-static-32x32.gif"].upscale_factor == 2  # 32 px -> 64 px
