"""Packs: HDF5 (BigGAN-PyTorch), TFRecord (StyleGAN 1/2, our own protobuf + CRC32C) and zip (stylegan2-ada)
round-trip a tiny synthetic normalised set pixel for pixel, with labels, cards and clear errors."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from animefaces import pack
from animefaces.config import defaults
from animefaces.pack import tfrecord, zipds
from animefaces.pack.source import PackError
from PIL import Image

CLASS_NAMES = {1: "hakurei_reimu", 2: "kirisame_marisa", 3: "izayoi_sakuya"}


def synthetic_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth colour gradient plus noise (PNG-compressible, but every pixel differs)."""
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * 255 // size, yy * 255 // size, (xx + yy) * 127 // size], axis=-1)
    noise = rng.integers(-40, 40, size=(size, size, 3))
    return np.clip(base + noise + rng.integers(0, 60), 0, 255).astype(np.uint8)


def make_dataset(
    root: Path, n: int = 12, size: int = 32, labelled: bool = True, seed: int = 0, jpeg: int | None = 3
) -> tuple[Path, Path, list[np.ndarray]]:
    """Write ``n`` normalised images (PNG; item ``jpeg`` as JPEG, item 5 as a palette PNG) plus the dataset table
    (as select writes it) and classes.tsv. Returns (dataset.parquet, classes.tsv, decoded images in order)."""
    rng = np.random.default_rng(seed)
    img_dir = root / "normalise" / "images" / "000"
    img_dir.mkdir(parents=True, exist_ok=True)
    rows, decoded = [], []
    for i in range(n):
        arr = synthetic_image(rng, size)
        item = f"{1000 + i}_0"
        if i == jpeg:
            path = img_dir / f"{item}.jpg"
            Image.fromarray(arr).save(path, quality=90)
        elif i == 5:
            path = img_dir / f"{item}.png"
            Image.fromarray(arr).quantize(64).save(path)
        else:
            path = img_dir / f"{item}.png"
            Image.fromarray(arr).save(path)
        with Image.open(path) as im:
            decoded.append(np.asarray(im.convert("RGB")))
        label = int(i % 4) if labelled else 0
        rows.append(
            {
                "item_id": item,
                "post_id": 1000 + i,
                "shard": "000",
                "path": str(path),
                "label": label,
                "character": CLASS_NAMES.get(label, ""),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            }
        )
    dataset = root / "select" / "dataset.parquet"
    dataset.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(dataset, index=False)
    classes = root / "classes.tsv"
    classes.write_text(
        "class_id\tname\tcount\n" + "".join(f"{k}\t{v}\t{10 * k}\n" for k, v in CLASS_NAMES.items()),
        encoding="utf-8",
    )
    return dataset, classes, decoded


def pack_params(**overrides) -> dict:
    params = defaults()["pack"]
    for key, value in overrides.items():
        params[key].update(value) if isinstance(value, dict) else params.__setitem__(key, value)
    return params


def block_mean_half_even(img_hwc: np.ndarray, factor: int) -> np.ndarray:
    """Independent reference for StyleGAN's lower resolutions: the exact mean of each factor x factor block in
    integer arithmetic, rounded half to even (np.rint's rule), as C x H x W."""
    s = img_hwc.shape[0] // factor
    sums = img_hwc.astype(np.int64).reshape(s, factor, s, factor, 3).sum(axis=(1, 3))
    d = factor * factor
    q, r = np.divmod(sums, d)
    up = (2 * r > d) | ((2 * r == d) & (q % 2 == 1))
    return (q + up).astype(np.uint8).transpose(2, 0, 1)


# ----------------------------------------------------------------------------------------------- HDF5


@pytest.mark.parametrize("compression", ["none", "lzf", "gzip"])
def test_hdf5_round_trip_biggan_access_pattern(tmp_path, compression):
    dataset, classes, decoded = make_dataset(tmp_path)
    out = tmp_path / "pack" / "demo.hdf5"
    params = pack_params(hdf5={"chunk": 5, "compression": compression})
    card = pack.pack("hdf5", dataset, out, tmp_path / "cards" / "hdf5.json", params, classes=classes, threads=2)
    table = pd.read_parquet(dataset)
    # BigGAN-PyTorch's ILSVRC_HDF5: len from f['labels'], then f['imgs'][index], f['labels'][index] per item
    with h5py.File(out, "r") as f:
        assert f["imgs"].dtype == np.uint8 and f["labels"].dtype == np.int64
        assert f["imgs"].shape == (12, 3, 32, 32)
        assert f["imgs"].chunks == (5, 3, 32, 32)
        assert f["imgs"].compression == (None if compression == "none" else compression)
        n = len(f["labels"])
        for i in range(n):
            img, label = f["imgs"][i], f["labels"][i]
            assert np.array_equal(img.transpose(1, 2, 0), decoded[i]), f"image {i} differs"
            assert label == table["label"].iloc[i]
        assert [x.decode() for x in f["item_ids"][:]] == table["item_id"].tolist()
    saved = json.loads((tmp_path / "cards" / "hdf5.json").read_text())
    assert saved == json.loads(json.dumps(card))
    assert saved["count"] == 12 and saved["resolution"] == 32 and saved["format"] == "hdf5"
    assert saved["files"][0]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert saved["disk_bytes"] == out.stat().st_size
    by_label = {c["label"]: (c["name"], c["count"]) for c in saved["classes"]}
    names = {0: "(unlabelled)", **CLASS_NAMES}
    assert by_label == {k: (v, 3) for k, v in names.items()}
    assert saved["config"]["pack"]["hdf5"]["compression"] == compression
    assert saved["code"]["animefaces"] and saved["warnings"] == []
    assert [p.name for p in out.parent.iterdir()] == ["demo.hdf5"]  # no temporary left behind


def test_hdf5_chunk_capped_and_memory_batching(tmp_path):
    dataset, classes, decoded = make_dataset(tmp_path, n=7)
    out = tmp_path / "x.hdf5"
    pack.pack("hdf5", dataset, out, None, pack_params(), classes=classes)  # default chunk 500 > N
    with h5py.File(out, "r") as f:
        assert f["imgs"].chunks == (7, 3, 32, 32)
        assert np.array_equal(f["imgs"][6].transpose(1, 2, 0), decoded[6])


# ----------------------------------------------------------------------------------------------- TFRecord


def test_protobuf_and_framing_match_hand_encoded_bytes():
    # Example{features{feature{key: "a", value{int64_list{value: [1]}}}}} encoded by hand from the .proto files
    ex = b"".join(tfrecord.encode_example({"a": tfrecord.int64_feature([1])}))
    assert ex == bytes.fromhex("0a0c" + "0a0a" + "0a0161" + "1205" + "1a03" + "0a0101")
    assert tfrecord.parse_example(ex) == {"a": [1]}
    # varints: 300 -> ac 02; -1 as int64 -> ten bytes
    assert tfrecord.varint(300) == b"\xac\x02"
    assert tfrecord.varint(-1) == b"\xff" * 9 + b"\x01"
    mixed = {
        "neg": tfrecord.int64_feature([-5, 0, 2**40]),
        "b": tfrecord.bytes_feature([b"", b"xyz"]),
        "f": tfrecord.float_feature([0.5, -2.0]),
    }
    assert tfrecord.parse_example(b"".join(tfrecord.encode_example(mixed))) == {
        "neg": [-5, 0, 2**40],
        "b": [b"", b"xyz"],
        "f": [0.5, -2.0],
    }
    # CRC-32C check value of "123456789" is 0xE3069283 (RFC 3720); the mask is TFRecord's rotate-and-add
    crc = 0xE3069283
    assert tfrecord.masked_crc32c([b"1234", b"56789"]) == ((crc >> 15 | crc << 17) + 0xA282EAD8) & 0xFFFFFFFF
    framed = b"".join(tfrecord.frame_record([b"hello"]))
    assert framed[:8] == (5).to_bytes(8, "little") and framed[12:17] == b"hello" and len(framed) == 21


def test_tfrecord_round_trip_all_resolutions(tmp_path):
    dataset, classes, decoded = make_dataset(tmp_path, n=10, size=32)
    out = tmp_path / "pack" / "tfrecord" / "demo"
    params = pack_params(tfrecord={"seed": 7, "labels": "auto"})
    card = pack.pack("tfrecord", dataset, out, None, params, classes=classes, name="demo", threads=2)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["demo-r02.tfrecords", "demo-r03.tfrecords", "demo-r04.tfrecords", "demo-r05.tfrecords"] + [
        "demo-rxx.labels"
    ]
    perm = np.random.default_rng(7).permutation(10)
    labels = pd.read_parquet(dataset)["label"].to_numpy()
    for log2 in (5, 4, 3, 2):
        images = list(tfrecord.read_images(out / f"demo-r{log2:02d}.tfrecords"))
        res = 2**log2
        assert len(images) == 10
        for k, img in enumerate(images):
            assert img.shape == (3, res, res) and img.dtype == np.uint8
            want = block_mean_half_even(decoded[perm[k]], 32 // res)
            assert np.array_equal(img, want), f"record {k} at {res}x{res}"
    onehot = np.load(out / "demo-rxx.labels")
    assert onehot.dtype == np.float32 and onehot.shape == (10, 4)
    assert np.array_equal(onehot.argmax(axis=1), labels[perm]) and np.all(onehot.sum(axis=1) == 1)
    assert card["labels_stored"] and len(card["files"]) == 5
    assert card["size_vs_source_images"] > 1  # raw pixels at 4 resolutions vs compressed PNGs
    assert card["disk_bytes"] == sum((out / f["path"].split("/")[-1]).stat().st_size for f in card["files"])
    (warning,) = card["warnings"]
    assert f"{card['size_vs_source_images']:.1f}x" in warning and "19x" in warning


def test_tfrecord_rounding_is_dataset_tools_not_repeated_rounding():
    # dataset_tool averages the unrounded float level above, so 4x4 is the exact mean of each 4x4 block of the
    # original, rounded once (half to even). Top-left 4x4 block: 2x2 sub-block means 1.5, 1.5, 1.5, 0.5.
    img = np.zeros((1, 3, 16, 16), dtype=np.uint8)
    img[0, :, 0, 0:4] = 3  # sub-blocks (0,0) and (0,1): [[3, 3], [0, 0]] -> 1.5
    img[0, :, 2, 0:2] = 3  # sub-block (1,0): 1.5
    img[0, :, 2, 2] = 2  # sub-block (1,1): [[2, 0], [0, 0]] -> 0.5
    levels = tfrecord.pyramid(img)
    assert [lv.shape[-1] for lv in levels] == [16, 8, 4]
    assert levels[1][0, 0, :2, :2].tolist() == [[2, 2], [2, 0]]  # 1.5 -> 2, 0.5 -> 0 (half to even)
    assert levels[2][0, 0, 0, 0] == 1  # exact mean 20/16 = 1.25; re-averaging the rounded level would give 2
    big = np.random.default_rng(1).integers(0, 256, size=(2, 3, 256, 256), dtype=np.uint8)
    big[0, 0, :128, :128] = 255  # the largest block sums (overflow check)
    x = big.astype(np.float32)  # dataset_tool's float32 cascade, as a second reference
    for k, level in enumerate(tfrecord.pyramid(big)):
        if k:
            x = (x[:, :, 0::2, 0::2] + x[:, :, 0::2, 1::2] + x[:, :, 1::2, 0::2] + x[:, :, 1::2, 1::2]) * 0.25
        assert np.array_equal(level, np.rint(x).clip(0, 255).astype(np.uint8)), f"level {k}"
        for b in range(2):
            assert np.array_equal(level[b], block_mean_half_even(big[b].transpose(1, 2, 0), 2**k))
    assert [lv.shape[-1] for lv in tfrecord.pyramid(big)] == [256, 128, 64, 32, 16, 8, 4]


def test_record_writer_bytes_equal_generic_encoder(tmp_path):
    img = np.random.default_rng(2).integers(0, 256, size=(3, 8, 8), dtype=np.uint8)
    path = tmp_path / "r.tfrecords"
    with open(path, "wb") as fh:
        tfrecord.ImageRecordWriter(fh, img.shape).write(img)
    assert path.read_bytes() == b"".join(tfrecord.frame_record(tfrecord.image_example(img)))
    with open(path, "wb") as fh, pytest.raises(PackError, match="holds uint8"):
        tfrecord.ImageRecordWriter(fh, (3, 4, 4)).write(img)


def test_tfrecord_reader_detects_corruption(tmp_path):
    dataset, classes, _ = make_dataset(tmp_path, n=3, size=8)
    out = tmp_path / "t"
    pack.pack("tfrecord", dataset, out, None, pack_params(), classes=classes, name="t")
    path = out / "t-r03.tfrecords"
    data = bytearray(path.read_bytes())
    assert len(list(tfrecord.read_records(path))) == 3
    data[40] ^= 0x01  # a pixel byte of the first record
    path.write_bytes(bytes(data))
    with pytest.raises(PackError, match="data CRC mismatch"):
        list(tfrecord.read_records(path))
    assert len(list(tfrecord.read_records(path, verify=False))) == 3
    path.write_bytes(bytes(data[:-3]))
    with pytest.raises(PackError, match="truncated"):
        list(tfrecord.read_records(path, verify=False))


def test_tfrecord_unlabelled_and_power_of_two(tmp_path):
    dataset, classes, _ = make_dataset(tmp_path / "a", n=4, size=16, labelled=False)
    out = tmp_path / "a" / "t"
    card = pack.pack("tfrecord", dataset, out, None, pack_params(), classes=classes, name="t")
    assert not card["labels_stored"] and not (out / "t-rxx.labels").exists()
    dataset, classes, _ = make_dataset(tmp_path / "b", n=2, size=24)
    with pytest.raises(PackError, match="power-of-two"):
        pack.pack("tfrecord", dataset, tmp_path / "b" / "t", None, pack_params(), classes=classes)
    assert not (tmp_path / "b" / "t").exists()


# ----------------------------------------------------------------------------------------------- zip


def test_zip_round_trip_stylegan2_ada_layout(tmp_path):
    n = 12
    dataset, classes, decoded = make_dataset(tmp_path, n=n)
    out = tmp_path / "pack" / "demo.zip"
    card = pack.pack("zip", dataset, out, None, pack_params(), classes=classes, threads=2)
    table = pd.read_parquet(dataset)
    with zipfile.ZipFile(out) as zf:
        infos = zf.infolist()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        names = [i.filename for i in infos if i.filename.endswith(".png")]
        assert names == [f"00000/img{i:08d}.png" for i in range(n)]
        meta = json.loads(zf.read("dataset.json"))
        assert meta["labels"] == [[f"00000/img{i:08d}.png", int(table["label"].iloc[i])] for i in range(n)]
        # stylegan2-ada's ImageFolderDataset: labels = dict(labels)[fname]; image = np.array(PIL.Image.open(f))
        labels = dict(meta["labels"])
        for i, name in enumerate(sorted(names)):
            with zf.open(name) as f:
                img = np.array(Image.open(f))
            assert img.dtype == np.uint8 and img.shape == (32, 32, 3) and np.array_equal(img, decoded[i])
            assert labels[name] == table["label"].iloc[i]
            src = Path(table["path"].iloc[i]).read_bytes()
            copied = zf.read(name) == src
            assert copied == (i not in (3, 5)), "RGB PNGs are stored as is, JPEG / palette PNG re-encoded"
    assert card["labels_stored"] and card["count"] == n


def test_zip_labels_modes_and_folders(tmp_path):
    assert zipds.archive_name(999) == "00000/img00000999.png"
    assert zipds.archive_name(1000) == "00001/img00001000.png"
    assert zipds.archive_name(123456) == "00123/img00123456.png"
    dataset, classes, _ = make_dataset(tmp_path, n=3, size=8, labelled=False)
    for mode, expect_null in (("auto", True), ("always", False), ("never", True)):
        out = tmp_path / f"{mode}.zip"
        pack.pack("zip", dataset, out, None, pack_params(zip={"labels": mode}), classes=classes)
        with zipfile.ZipFile(out) as zf:
            labels = json.loads(zf.read("dataset.json"))["labels"]
        assert (labels is None) == expect_null
        if not expect_null:
            assert labels == [[zipds.archive_name(i), 0] for i in range(3)]


def test_zip_is_reproducible(tmp_path):
    dataset, classes, _ = make_dataset(tmp_path, n=4, size=8)
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    pack.pack("zip", dataset, a, None, pack_params(), classes=classes)
    pack.pack("zip", dataset, b, None, pack_params(), classes=classes, threads=2)
    assert a.read_bytes() == b.read_bytes()


# ----------------------------------------------------------------------------------------------- errors, CLI


def test_errors_name_the_item(tmp_path):
    dataset, classes, _ = make_dataset(tmp_path, n=4, size=16)
    table = pd.read_parquet(dataset)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(table["path"].iloc[2])  # a different size
    for fmt in ("hdf5", "zip"):
        with pytest.raises(PackError, match="item 1002_0.*sha256"):
            pack.pack(fmt, dataset, tmp_path / f"o.{fmt}", None, pack_params(), classes=classes)
    table.loc[2, "sha256"] = hashlib.sha256(Path(table["path"].iloc[2]).read_bytes()).hexdigest()
    table.to_parquet(dataset, index=False)
    for fmt in ("hdf5", "zip", "tfrecord"):
        with pytest.raises(PackError, match="item 1002_0.*8x8"):
            pack.pack(fmt, dataset, tmp_path / f"o.{fmt}", None, pack_params(), classes=classes)
        assert not (tmp_path / f"o.{fmt}").exists()
    pd.DataFrame(columns=table.columns).to_parquet(dataset, index=False)
    with pytest.raises(PackError, match="empty"):
        pack.pack("hdf5", dataset, tmp_path / "e.hdf5", None, pack_params(), classes=classes)


def test_cli_writes_pack_and_card(tmp_path, capsys):
    dataset, classes, decoded = make_dataset(tmp_path, n=4, size=16)
    out, card = tmp_path / "p" / "d.hdf5", tmp_path / "cards" / "hdf5.json"
    argv = ["hdf5", "--dataset", str(dataset), "--classes", str(classes), "--out", str(out), "--card", str(card)]
    argv += ["--params", json.dumps({"hdf5": {"chunk": 2}}), "--card-config", json.dumps({"select": {"x": 1}})]
    assert pack.main(argv) == 0
    saved = json.loads(card.read_text())
    assert saved["config"]["select"] == {"x": 1} and saved["config"]["pack"]["hdf5"]["chunk"] == 2
    with h5py.File(out, "r") as f:
        assert np.array_equal(f["imgs"][3].transpose(1, 2, 0), decoded[3])
    assert pack.main(["zip", "--dataset", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "z.zip")]) == 1
    assert "nope.parquet" in capsys.readouterr().err
    bad = ["zip", "--dataset", str(dataset), "--out", str(tmp_path / "z.zip"), "--params", '{"zip": {"labels": "x"}}']
    with pytest.raises(SystemExit) as exc:  # a config error: exit 2, like argparse's usage errors
        pack.main(bad)
    assert exc.value.code == 2
    assert "pack.zip.labels" in capsys.readouterr().err
    assert not (tmp_path / "z.zip").exists()
