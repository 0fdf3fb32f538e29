"""Clean stage: every crop decoded and either kept with its hashes or dropped with a reason code."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pandas as pd
import pytest
from animefaces import clean, ledger
from animefaces.config import ConfigError, defaults, parse_params
from animefaces.decode import load_rgb
from animefaces.dedup.hashing import perceptual_hash, pixel_sha256
from animefaces.manifest import StageRows, manifest_path, read_manifest, write_manifest
from PIL import Image


@pytest.fixture()
def params():
    return defaults()["clean"]


def crop_rows(files, shard="000"):
    rows = StageRows("crop", shard)
    for k, path in enumerate(files):
        rows.kept(
            k + 1,
            f"{k + 1}_0",
            str(k + 1),
            path=str(path),
            source_path=str(path),
            source_ext=str(path).rsplit(".", 1)[-1],
            label=k % 3,
            character=f"c{k % 3}",
        )
    return rows.frame()


@pytest.fixture(scope="module")
def colour_face(shared):
    faces = sorted((shared / "faces" / "getchu").iterdir())
    return load_rgb(faces[0]).rgb


def test_greyscale_and_low_colour(tmp_path, params, colour_face):
    face = np.asarray(Image.fromarray(colour_face).resize((128, 128), Image.Resampling.LANCZOS))
    grey = np.asarray(Image.fromarray(face).convert("L").convert("RGB"))
    files = {"colour.png": face, "grey.png": grey}
    for name, arr in files.items():
        Image.fromarray(arr).save(tmp_path / name)
    Image.fromarray(grey).save(tmp_path / "grey.jpg", quality=75)  # grey stored as 3-channel JPEG: chroma noise
    quant = Image.fromarray(face).quantize(colors=200).convert("RGB")  # a colour picture with 200 colours
    quant.save(tmp_path / "quant.png")
    verdict = {p.name: clean.check_image(p, params) for p in sorted(tmp_path.iterdir())}
    assert verdict["colour.png"].reason == ""
    assert verdict["grey.png"].reason == "greyscale" and verdict["grey.jpg"].reason == "greyscale"
    assert verdict["grey.png"].details["coloured_fraction"] == 0
    assert verdict["quant.png"].reason == "low_colour" and verdict["quant.png"].details["colours"] <= 200
    # config chooses the tests and their order
    only_grey = {**params, "monochrome": ["greyscale"]}
    assert clean.check_image(tmp_path / "quant.png", only_grey).reason == ""
    seed_order = {**params, "monochrome": ["low_colour", "greyscale"]}
    assert clean.check_image(tmp_path / "grey.png", seed_order).reason == "low_colour"  # 256 greys < 257
    lenient = {**params, "greyscale": {"saturation": 0.1, "min_coloured_fraction": 0.0}, "monochrome": ["greyscale"]}
    assert clean.check_image(tmp_path / "grey.jpg", lenient).reason == ""


def test_count_colours_early_exit_is_consistent():
    rng = np.random.default_rng(0)
    for colours in (5, 256, 257, 3000):
        palette = rng.integers(0, 256, (colours, 3), dtype=np.uint8)
        img = palette[rng.integers(0, colours, (300, 200))]
        exact = len({tuple(p) for p in img.reshape(-1, 3)})
        assert clean.count_colours(img) == exact
        fast = clean.count_colours(img, stop_at=257)
        assert (fast >= 257) == (exact >= 257) and (fast == exact or fast >= 257)


def test_size_floors_and_blocklist(tmp_path, params, colour_face):
    big = tmp_path / "big.png"
    Image.fromarray(colour_face).resize((96, 80)).save(big)
    small = tmp_path / "small.png"
    Image.fromarray(colour_face).resize((60, 90)).save(small)
    assert clean.check_image(small, params).reason == "too_small"
    assert clean.check_image(small, params).details == {"width": 60, "height": 90, "min_size": 64}
    size = big.stat().st_size
    v = clean.check_image(big, {**params, "min_file_bytes": size + 1})
    assert v.reason == "file_too_small" and v.details["file_bytes"] == size
    assert clean.check_image(big, {**params, "min_file_bytes": size}).reason == ""

    kept = clean.check_image(big, params)
    psha = kept.cols["pixel_sha256"]
    fsha = hashlib.sha256(big.read_bytes()).hexdigest()
    assert kept.cols["file_sha256"] == fsha and psha == pixel_sha256(load_rgb(big).rgb)
    blk = tmp_path / "block.txt"
    blk.write_text(f"# blocklist\n77_0\n1234   # a whole post\n{psha.upper()}\n\n")
    bl = clean.load_blocklist(blk)
    assert bl.ids == {"77_0", "1234"} and bl.digests == {psha}
    assert clean.check_image(big, params, bl, ids=("77_0", "77")).reason == "blocklisted"
    assert clean.check_image(big, params, bl, ids=("1234_3", "1234")).details == {"matched": "1234"}
    assert clean.check_image(big, params, bl, ids=("5_0", "5")).details == {"matched": psha}
    blk.write_text(fsha + "\n")
    assert clean.check_image(big, params, clean.load_blocklist(blk)).details == {"matched": fsha}
    with pytest.raises(FileNotFoundError, match="clean.blocklist"):
        clean.load_blocklist(tmp_path / "missing.txt")


def test_config_is_validated():
    assert parse_params('{"monochrome": ["low_colour"]}', "clean")["min_size"] == 64
    with pytest.raises(ConfigError, match="clean.monochrome"):
        parse_params('{"monochrome": ["sepia"]}', "clean")
    with pytest.raises(ConfigError, match="dedup.hash"):
        parse_params('{"hash": "md5"}', "dedup")
    with pytest.raises(ConfigError, match="clean"):  # the hash is dedup's choice now
        parse_params('{"hash": "phash"}', "clean")


def test_robustness_fixtures_all_accounted_for(shared, tmp_path, params):
    """All 59 files (58 images + README.md) of Danbooru's decoding fixtures: one row each, no crash,
    the ledger reconciles with the crop manifest."""
    root = shared / "robustness" / "danbooru_test_files"
    files = sorted(p for p in root.rglob("*") if p.is_file())
    crop = crop_rows(files)
    write_manifest(crop, manifest_path(tmp_path, "crop", "000"))
    args = ["--input", str(manifest_path(tmp_path, "crop", "000")), "--output"]
    args += [str(manifest_path(tmp_path, "clean", "000")), "--threads", "2"]
    assert clean.main([*args, "--params", json.dumps({"min_size": 32})]) == 0
    out = read_manifest(manifest_path(tmp_path, "clean", "000"))
    assert len(out) == len(files) == 59
    assert ledger.reconcile(ledger.load_ledger(tmp_path)) == []
    by_file = {
        (p.relative_to(root).as_posix()): row for p, row in zip(files, out.to_dict(orient="records"), strict=True)
    }
    assert by_file["webp/README.md"]["reason"] == "undecodable"
    assert by_file["png/empty.png"]["reason"] == "empty_file"
    assert by_file["jpg/test-exif-small.jpg"]["reason"] == "truncated"
    assert by_file["webp/truncated.webp"]["reason"] == "truncated"
    assert by_file["gif/test-static-32x32.gif"]["reason"] == "low_colour"  # 32 px passes min_size 32
    assert by_file["png/jpg.png"]["reason"] == "too_small"  # 16 x 16
    assert by_file["jpg/test-grey-no-profile.jpg"]["reason"] == "greyscale"
    assert by_file["dupes/black-100x200.png"]["reason"] == "greyscale"
    assert by_file["dupes/countergirl-grey.png"]["reason"] == "greyscale"
    for name in ("jpg/test.jpg", "png/test.png", "jpg/test-cmyk-no-profile.jpg", "webp/Exif6.webp"):
        assert by_file[name]["status"] == "kept", (name, by_file[name]["details"])
    kept = out[out["status"] == "kept"]
    assert str(kept["perceptual_hash"].dtype) == "Int64" and kept["pixel_sha256"].str.len().eq(64).all()
    posts = [int(i.split("_")[0]) for i in kept["item_id"]]
    assert kept["label"].tolist() == [(p - 1) % 3 for p in posts]  # crop columns carried forward
    assert kept["character"].tolist() == [f"c{(p - 1) % 3}" for p in posts]
    # lossless comes from the source's real format: the JPEG named .png is lossy, the VP8L WebP lossless
    kept_by = {p: r for p, r in by_file.items() if r["status"] == "kept"}
    assert kept_by["png/test.png"]["lossless"] and not kept_by["jpg/test.jpg"]["lossless"]
    assert kept_by["webp/lossless1.webp"]["lossless"] and not kept_by["webp/fjord.webp"]["lossless"]
    for name, row in kept_by.items():
        assert row["width"] >= 32 and row["height"] >= 32
        img = load_rgb(root / name)
        assert row["perceptual_hash"] == perceptual_hash(img.rgb, "phash"), name
    drops = out[out["status"] == "dropped"]
    assert set(drops["reason"]) <= {
        "empty_file",
        "undecodable",
        "truncated",
        "too_small",
        "greyscale",
        "low_colour",
    }
    assert all("path" in json.loads(d) for d in drops["details"])


def test_lossless_falls_back_to_source_ext(tmp_path, params, colour_face):
    crop = tmp_path / "crop.png"
    Image.fromarray(colour_face).save(crop)
    # the source file is gone: its extension decides
    assert not clean.check_image(crop, params, source=(str(tmp_path / "gone.jpg"), "jpg")).cols["lossless"]
    assert clean.check_image(crop, params, source=(None, "png")).cols["lossless"]
    buf = io.BytesIO()
    Image.fromarray(colour_face).save(buf, "JPEG")
    disguised = tmp_path / "source.png"  # JPEG bytes named .png: sniffed
    disguised.write_bytes(buf.getvalue())
    v = clean.check_image(crop, params, source=(str(disguised), "png"))
    assert v.cols["source_format"] == "JPEG" and not v.cols["lossless"]
    assert pd.api.types.is_integer(v.cols["perceptual_hash"])
