"""Ingest: real Danbooru samples (both schemas), every filter, classes, ledger, path safety, the folder source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from animefaces import ledger
from animefaces.classtable import read_classes
from animefaces.config import validate_config
from animefaces.ingest import core, ingest
from animefaces.ingest.classes import ClassesConfigError, resolve_aliases
from animefaces.ingest.filters import ORDER, FilterConfigError, RatingSchemeMismatch, check_filter_config
from animefaces.ingest.readers import iter_records, iter_sources
from animefaces.ingest.records import normalise
from animefaces.manifest import LEDGER_COLUMNS
from animefaces.shards import shard_of
from PIL import Image

NESTED = "danbooru2017-2020_nested_example.jsonl"
FLAT_ARRAY = "danbooru_api_2020-07_posts_search.json"
FLAT_LINES = "danbooru_api_2020-07_posts.jsonl"


# ------------------------------------------------------------------------------------------------ helpers


def post(post_id, **overrides):
    """A flat (API / Danbooru2021) record that passes every default filter once its file exists."""
    rec = {
        "id": post_id,
        "rating": "s",
        "image_width": 640,
        "image_height": 480,
        "score": 5,
        "md5": f"{post_id:032x}" if isinstance(post_id, int) else "0" * 32,
        "file_ext": "png",
        "is_deleted": False,
        "is_banned": False,
        "is_flagged": False,
        "tag_string_general": "1girl solo smile",
        "tag_string_character": "",
        "tag_string_copyright": "original",
        "tag_string_artist": "someone",
        "tag_string_meta": "highres",
    }
    rec.update(overrides)
    return rec


def write_jsonl(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write((rec if isinstance(rec, str) else json.dumps(rec)) + "\n")
    return path


def put_image(root: Path, post_id: int, ext: str = "png") -> Path:
    path = root / "original" / f"{post_id % 1000:04d}" / f"{post_id}.{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "bmp": "BMP"}.get(ext, "PNG")
    Image.new("RGB", (8, 8), (200, 100, 50)).save(path, format=fmt)
    return path


def run(tmp_path: Path, metadata, filter_=None, classes=None, shards=4, root=None, source="danbooru"):
    """Run ingest into tmp_path/results/t/ingest; return all manifest rows (one frame) and the result."""
    out = tmp_path / "results" / "t" / "ingest"
    dataset = {"source": source, "root": str(root or tmp_path / "mirror"), "metadata": [str(m) for m in metadata]}
    cfg = validate_config({"filter": filter_ or {}, "classes": classes or {}})
    result = ingest(out, dataset, cfg["filter"], cfg["classes"], shards)
    rows = pd.concat([pd.read_parquet(p) for p in sorted((out / "manifests").glob("*.parquet"))], ignore_index=True)
    return rows, result


def by_id(rows: pd.DataFrame) -> dict[str, dict]:
    return {r["item_id"]: r for r in rows.to_dict(orient="records")}


# ------------------------------------------------------------------------------------- the real samples


def test_nested_sample_parsed_field_by_field(shared, tmp_path):
    path = shared / "metadata" / NESTED
    records = [rec for _, rec in (item for _, s in iter_sources(path) for item in iter_records(s))]
    assert len(records) == 1
    n = normalise(records[0])
    assert n["id"] == 263162 and n["shape"] == "nested"
    assert (n["width"], n["height"], n["score"], n["rating"], n["file_ext"]) == (797, 794, 1, "s", "jpg")
    assert n["md5"] == "9a0f9e0f08907d12b7d08e46047ae4d8"
    assert (n["deleted"], n["banned"], n["flagged"]) == (False, False, False)
    assert n["general"].split() == [
        "1boy", "1girl", "bangs", "blunt_bangs", "brown_hair", "flute", "hair_bun", "hime_cut",
        "instrument", "japanese_clothes", "long_hair", "mask", "ribbon", "yellow_eyes",
    ]  # fmt: skip
    assert n["character"] == "larva_(vampire_princess_miyu) miyu_(vampire_princess_miyu)"
    assert n["copyright"] == "vampire_princess_miyu" and n["artist"] == "kakinouchi_narumi" and n["meta"] == ""
    # the whole job on it: numbers were strings, the manifest has real integers; two characters -> no character
    put_image(tmp_path / "mirror", 263162, "jpg")
    rows, result = run(tmp_path, [path])
    row = by_id(rows)["263162"]
    assert row["status"] == "kept" and row["parent_id"] == f"{NESTED}:1" and row["shard"] == shard_of(263162, 4)
    assert (row["width"], row["height"], row["score"], row["rating"]) == (797, 794, 1, "s")
    assert row["md5"] == "9a0f9e0f08907d12b7d08e46047ae4d8" and row["tags"] == n["general"]
    assert row["path"] == f"{tmp_path}/mirror/original/0162/263162.jpg" and Path(row["path"]).is_file()
    assert row["character"] == "" and row["label"] == 0
    assert result.shapes["nested"] == 1


def test_flat_samples_parsed_field_by_field(shared, tmp_path):
    path = shared / "metadata" / FLAT_ARRAY
    records = [rec for _, s in iter_sources(path) for _, rec in iter_records(s)]
    assert [r["id"] for r in records] == list(range(4018204, 4018194, -1))
    first = normalise(records[0])
    assert first["shape"] == "flat"
    assert (first["width"], first["height"], first["file_ext"], first["rating"], first["score"]) == (
        1037, 988, "png", "s", 1
    )  # fmt: skip
    assert first["md5"] == "4f39497ef8fcd059984c3b1fe86cf542"
    assert first["character"] == "eyjafjalla_(arknights)" and first["copyright"] == "arknights"
    assert first["artist"] == "chagara" and first["meta"] == "commentary"
    assert first["general"].split()[:3] == ["1girl", "ahoge", "animal_ears"] and "solo" in first["general"].split()
    assert len(first["general"].split()) == 20  # tag_count_general in the record
    two_chars = normalise(records[6])
    assert two_chars["id"] == 4018198 and two_chars["character"] == "ch'en_(arknights) hoshiguma_(arknights)"
    assert normalise(records[4])["character"] == ""  # 4018200: original character, no character tag
    assert normalise(records[3])["copyright"] == "pokemon pokemon_(game) pokemon_swsh"
    # ingest: kept rows carry the same values; posts with several characters get character ''
    for rec in records:
        put_image(tmp_path / "mirror", rec["id"], rec["file_ext"])
    rows, _ = run(tmp_path, [path], classes={"require_solo": False, "top_k": 3})
    got = by_id(rows)
    assert all(got[str(r["id"])]["status"] == "kept" for r in records)
    r = got["4018204"]
    assert (r["width"], r["height"], r["file_ext"], r["md5"]) == (1037, 988, "png", "4f39497ef8fcd059984c3b1fe86cf542")
    assert r["character"] == "eyjafjalla_(arknights)" and r["parent_id"] == f"{FLAT_ARRAY}:1"
    assert got["4018198"]["character"] == "" and got["4018195"]["parent_id"] == f"{FLAT_ARRAY}:10"
    assert got["4018203"]["character"] == "kagiyama_hina"
    assert got["4018202"]["md5"] == "34efe539c2028016338a7488febb39d9"


def test_hot_loop_agrees_with_reference_normalise(shared, tmp_path):
    """The batch loop in core and records.normalise are two codings of the same rules: compare them on the real
    records plus odd-but-valid ones (numbers as strings, nulls, uncategorised tags, bad tag entries)."""
    recs = [rec for f in (NESTED, FLAT_ARRAY) for _, _, rec in _all_records(shared / "metadata" / f)]
    recs += [
        {"id": "77", "image_width": "100", "image_height": 50.0, "score": "-3", "rating": None, "file_ext": "jpg",
         "tag_string": " a  b ", "is_deleted": "false", "is_flagged": 1},
        {"id": 78, "file_ext": "png", "tags": [{"name": "x y", "category": "4"}, "bare", 5, {"name": ""},
                                                {"name": "z", "category": 2}], "md5": None},
        {"id": 79, "file_ext": "png", "tag_string_character": " c1 ", "image_width": True, "score": "1e3"},
        {"id": 80, "file_ext": "png"},
    ]  # fmt: skip
    meta = write_jsonl(tmp_path / "m.jsonl", recs)
    for rec in recs:
        n = normalise(rec)
        put_image(tmp_path / "mirror", n["id"], n["file_ext"])
    rows, result = run(tmp_path, [meta], filter_={"drop_deleted": False, "drop_flagged": False})
    got = by_id(rows)
    for rec in recs:
        n = normalise(rec)
        row = got[str(n["id"])]
        assert row["status"] == "kept", row
        for key in ("width", "height", "score"):
            assert (None if pd.isna(row[key]) else row[key]) == n[key], (n["id"], key)
        assert (None if pd.isna(row["rating"]) else row["rating"]) == n["rating"]
        assert row["md5"] == n["md5"] and row["tags"] == n["general"] and row["file_ext"] == n["file_ext"]
    assert normalise(recs[-4])["general"] == "a  b" and normalise(recs[-4])["shape"] == "uncategorised"
    assert normalise(recs[-3])["character"] == "x_y" and normalise(recs[-3])["general"] == "bare z"
    assert normalise(recs[-2])["width"] is None and normalise(recs[-2])["score"] is None
    assert normalise(recs[-4])["flagged"] is True and normalise(recs[-4])["deleted"] is False
    assert result.shapes == {"nested": 2, "flat": 11, "uncategorised": 1, "no_tags": 1}


# ------------------------------------------------------------------------------------------- file formats


def _all_records(path):
    return [(name, n, rec) for name, s in iter_sources(path) for n, rec in iter_records(s)]


def test_array_lines_and_compressed_forms_are_equivalent(shared, tmp_path):
    import bz2
    import gzip
    import lzma
    import tarfile

    src_array = shared / "metadata" / FLAT_ARRAY
    src_lines = shared / "metadata" / FLAT_LINES
    expected = json.loads(src_array.read_text())
    forms = {"array": src_array, "lines": src_lines}
    data = src_lines.read_bytes()
    for name, opener in (("gz", gzip.open), ("xz", lzma.open), ("bz2", bz2.open)):
        p = tmp_path / f"posts.jsonl.{name}"
        with opener(p, "wb") as fh:
            fh.write(data)
        forms[name] = p
    pretty = tmp_path / "pretty.json"  # an array spread over many lines, as a human would write it
    pretty.write_text(json.dumps(expected, indent=2))
    forms["pretty"] = pretty
    tar = tmp_path / "metadata.json.tar.xz"
    with tarfile.open(tar, "w:xz") as tf:
        tf.add(src_lines, arcname="metadata/posts000.jsonl")
        tf.add(forms["gz"], arcname="metadata/posts001.jsonl.gz")
        tf.add(src_array, arcname="README")  # not a metadata member name: skipped
        tf.add(src_array, arcname="metadata/posts002.json")  # a JSON array member of a streamed archive
    for label, path in forms.items():
        got = _all_records(path)
        assert [rec for _, _, rec in got] == expected, label
        assert [n for _, n, _ in got] == list(range(1, 11)), label
    got = _all_records(tar)
    assert [rec for _, _, rec in got] == expected * 3
    assert {name for name, _, _ in got} == {
        "metadata.json.tar.xz/metadata/posts000.jsonl",
        "metadata.json.tar.xz/metadata/posts001.jsonl.gz",
        "metadata.json.tar.xz/metadata/posts002.json",
    }


def test_json_array_parser_survives_bad_elements_and_chunk_boundaries(tmp_path, monkeypatch):
    from animefaces.ingest import readers

    text = (
        '\ufeff[ {"id": 1, "s": "a\\"]},{["}, {"id": 2,, "x": 1}, 12345678901234567890, {"id": 3, "t": [1, {"u": 2}]},'
        '\n  "str" , {"id": 4, "name": "ドラゴン_é"}  ]  '
    )
    path = tmp_path / "a.json"
    path.write_text(text, encoding="utf-8")
    for chunk in (1, 3, 7, 64, 1 << 20):  # tiny chunks force every value (and UTF-8 sequence) across a boundary
        monkeypatch.setattr(readers, "CHUNK_BYTES", chunk)
        got = _all_records(path)
        assert [n for _, n, _ in got] == [1, 2, 3, 4, 5, 6], chunk
        vals = [v for _, _, v in got]
        assert vals[0] == {"id": 1, "s": 'a"]},{['}
        assert isinstance(vals[1], readers.Malformed)
        assert vals[2] == 12345678901234567890 and vals[3] == {"id": 3, "t": [1, {"u": 2}]}
        assert vals[4] == "str" and vals[5] == {"id": 4, "name": "ドラゴン_é"}
    bad = tmp_path / "b.json"
    bad.write_bytes(b'[{"id": 1}, {"id": 2, "s": "\xff"}, {"id": 3} {"id": 4}, {"id": 5}')
    got = [v for _, _, v in _all_records(bad)]
    assert got[0] == {"id": 1}
    assert isinstance(got[1], readers.Malformed) and "UTF-8" in got[1].error
    assert got[2] == {"id": 3} and isinstance(got[3], readers.Malformed)  # missing comma
    assert got[-1].error.startswith("file ends inside the JSON array")
    assert readers.iter_records  # the parser never needs the whole file: see MAX_RECORD_BYTES test below


def test_oversized_and_bad_lines(tmp_path, monkeypatch):
    from animefaces.ingest import readers

    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", 64)
    path = tmp_path / "l.jsonl"
    path.write_bytes(
        b'{"id": 1}\n\n   \n{"id": 2, "pad": "' + b"x" * 200 + b'"}\n{"id": 3} {"id": 4}\n\xff\xfe\n[1]\n{"id": 5}'
    )
    got = _all_records(path)
    assert [n for _, n, _ in got] == [1, 4, 5, 6, 7, 8]  # blank lines 2, 3 skipped but counted
    vals = [v for _, _, v in got]
    assert vals[0] == {"id": 1} and vals[-1] == {"id": 5} and vals[4] == [1]
    assert "longer than 64" in vals[1].error and "Extra data" in vals[2].error and "utf-8" in vals[3].error


def test_damaged_compressed_file_is_an_error_naming_it(tmp_path):
    import gzip

    path = tmp_path / "posts.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": 1}\n' * 1000)[:-40])
    with pytest.raises(core.MetadataError, match="posts.jsonl.gz.*damaged or truncated"):
        run(tmp_path, [path])


# ------------------------------------------------------------------------------------ bad records, ids


def test_bad_records_become_ledger_rows_and_ledger_reconciles(tmp_path):
    mirror = tmp_path / "mirror"
    records = [
        post(1001),
        "{not json",
        "[1, 2]",
        post(-5),
        post("abc"),
        post("0"),
        {k: v for k, v in post(1).items() if k != "id"},
        post(1001, md5="second"),
        post(2002, file_ext="../../etc/passwd"),
        post(2003, file_ext=None),
        post(2004, file_ext="JPG"),
        post("3003"),
        post(10**20),
    ]
    meta = write_jsonl(tmp_path / "m.jsonl", records)
    for pid in (1001, 3003):
        put_image(mirror, pid)
    rows, result = run(tmp_path, [meta])
    assert set(rows["stage"]) == {"ingest"} and list(rows.columns[: len(LEDGER_COLUMNS)]) == LEDGER_COLUMNS
    got = by_id(rows)
    assert got["1001"]["status"] == "kept" and got["1001"]["md5"] == f"{1001:032x}"  # the first record wins
    assert got["3003"]["status"] == "kept"  # "3003" (string id) is a normal id
    dup = got["m.jsonl:8"]
    assert dup["reason"] == "duplicate_id" and dup["post_id"] == 1001 and dup["shard"] == shard_of(1001, 4)
    assert json.loads(dup["details"])["id"] == 1001
    for n, reason in ((2, "malformed_record"), (3, "malformed_record"), (4, "invalid_id"), (5, "invalid_id")):
        row = got[f"m.jsonl:{n}"]
        assert row["reason"] == reason and row["shard"] == "unsharded" and pd.isna(row["post_id"])
    assert json.loads(got["m.jsonl:3"]["details"])["error"] == "record is a JSON array, not an object"
    assert json.loads(got["m.jsonl:5"]["details"]) == {"id": "'abc'"}
    assert json.loads(got["m.jsonl:6"]["details"]) == {"id": "'0'"}
    assert json.loads(got["m.jsonl:7"]["details"]) == {"id": "missing"}
    assert json.loads(got["m.jsonl:13"]["details"]) == {"id": str(10**20)}
    for pid in ("2002", "2003", "2004"):
        assert got[pid]["reason"] == "invalid_file_ext" and pd.isna(got[pid]["path"])
    assert json.loads(got["2002"]["details"]) == {"file_ext": "../../etc/passwd"}
    assert len(rows) == len(records) == result.records
    assert sum(result.counts.values()) == len(records)
    assert ledger.reconcile(ledger.load_ledger(tmp_path / "results" / "t")) == []


def test_every_shard_has_a_manifest_with_the_same_columns(tmp_path):
    meta = write_jsonl(tmp_path / "m.jsonl", [post(5)])
    put_image(tmp_path / "mirror", 5)
    run(tmp_path, [meta], shards=7)
    files = sorted((tmp_path / "results" / "t" / "ingest" / "manifests").glob("*.parquet"))
    assert [f.stem for f in files] == [f"{i:03d}" for i in range(7)] + ["unsharded"]
    frames = [pd.read_parquet(f) for f in files]
    assert all(list(f.columns) == list(frames[0].columns) for f in frames)
    assert all(dict(f.dtypes) == dict(frames[0].dtypes) for f in frames)
    assert [len(f) for f in frames] == [int(shard_of(5, 7) == f.stem) for f in files]
    assert shard_of(5, 7) == "005"  # bucket 5 of 7 shards dealt in turn
    assert str(frames[0]["post_id"].dtype) == "Int64" and str(frames[0]["label"].dtype) == "Int64"


# ----------------------------------------------------------------------------------------------- filters

# (filter config, the record that must fail, the record that must pass, expected reason, expected details)
FILTER_CASES = {
    "deleted": ({}, {"is_deleted": True}, {"is_deleted": False}, {}),
    "banned": ({}, {"is_banned": True}, {"is_banned": None}, {}),
    "flagged": ({}, {"is_flagged": True}, {}, {}),
    "rating": (
        {"ratings": ["s"], "rating_scheme": "legacy"},
        {"rating": "e"},
        {"rating": "s"},
        {"rating": "e", "scheme": "legacy"},
    ),
    "excluded_tag": (
        {"exclude_tags": ["comic", "monochrome"]},
        {"tag_string_meta": "comic", "tag_string_general": "monochrome solo"},
        {"tag_string_general": "comics solo monochrome_background"},
        {"tag": "comic"},
    ),
    "missing_required_tag": (
        {"require_tags": ["solo", "1girl"]},
        {"tag_string_general": "solo"},
        {"tag_string_general": "1girl solo"},
        {"tag": "1girl"},
    ),
    "missing_any_tag": (
        {"any_tags": ["hatsune_miku", "c++"]},
        {"tag_string_character": "hatsune_miku_(append)"},
        {"tag_string_copyright": "c++"},
        {"any_of": ["hatsune_miku", "c++"]},
    ),
    "low_score": ({"min_score": 0}, {"score": -1}, {"score": None}, {"score": -1, "min_score": 0}),
    "image_too_small": (
        {"min_width": 64, "min_height": 64},
        {"image_width": 640, "image_height": 63},
        {"image_width": 64, "image_height": "64"},
        {"width": 640, "height": 63, "min_width": 64, "min_height": 64},
    ),
    "extension_not_allowed": ({"extensions": ["jpg", "png"]}, {"file_ext": "webm"}, {}, {"file_ext": "webm"}),
    "missing_file": ({}, {"id": 999001}, {}, {"path": "MIRROR/original/0001/999001.png"}),
}


@pytest.mark.parametrize("reason", sorted(FILTER_CASES))
def test_each_filter(tmp_path, reason):
    cfg, failing, passing, details = FILTER_CASES[reason]
    mirror = tmp_path / "mirror"
    bad = post(111, **failing)
    good = post(222, **passing)
    meta = write_jsonl(tmp_path / "m.jsonl", [bad, good])
    put_image(mirror, 222, good["file_ext"])
    if reason != "missing_file":
        put_image(mirror, 111, bad["file_ext"])
    rows, _ = run(tmp_path, [meta], filter_=cfg)
    got = by_id(rows)
    bad_row = got[str(bad["id"])]
    assert bad_row["status"] == "dropped" and bad_row["reason"] == reason
    expected = {k: v.replace("MIRROR", str(mirror)) if isinstance(v, str) else v for k, v in details.items()}
    assert json.loads(bad_row["details"]) == expected
    assert got["222"]["status"] == "kept", got["222"]
    # the check is off by default or with its switch off: the same record is kept
    off = {"deleted": {"drop_deleted": False}, "banned": {"drop_banned": False}, "flagged": {"drop_flagged": False}}
    if reason in off:
        rows, _ = run(tmp_path, [meta], filter_=off[reason])
        assert by_id(rows)["111"]["status"] == "kept"


def test_id_list(tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("# the posts I want\n222\n\n333  # trailing comment\n")
    meta = write_jsonl(tmp_path / "m.jsonl", [post(111), post(222), post(333)])
    for pid in (111, 222, 333):
        put_image(tmp_path / "mirror", pid)
    rows, _ = run(tmp_path, [meta], filter_={"id_list": str(ids)})
    assert {k: v["reason"] for k, v in by_id(rows).items()} == {"111": "not_in_id_list", "222": "", "333": ""}
    ids.write_text("222\nabc\n")
    with pytest.raises(FilterConfigError, match=r"filter.id_list .*ids.txt' line 2: 'abc'"):
        run(tmp_path, [meta], filter_={"id_list": str(ids)})


def test_first_failing_reason_follows_the_documented_order(tmp_path):
    cfg = {"ratings": ["s"], "rating_scheme": "legacy", "exclude_tags": ["comic"], "min_score": 0, "min_width": 64}
    everything_wrong = {"is_deleted": True, "is_banned": True, "rating": "e", "tag_string_meta": "comic", "score": -9,
                        "image_width": 5, "file_ext": "zip"}  # fmt: skip
    recs = []
    expect = {}
    # knock the failures off one at a time: the reason is always the earliest remaining one in ORDER
    fixes = [("is_deleted", False), ("is_banned", False), ("rating", "s"), ("tag_string_meta", ""), ("score", 1),
             ("image_width", 100), ("file_ext", "png")]  # fmt: skip
    current = dict(everything_wrong)
    for i, (key, value) in enumerate(fixes):
        pid = 500 + i
        recs.append(post(pid, **current))
        expect[str(pid)] = ["deleted", "banned", "rating", "excluded_tag", "low_score", "image_too_small",
                            "extension_not_allowed"][i]  # fmt: skip
        current[key] = value
    meta = write_jsonl(tmp_path / "m.jsonl", recs)
    rows, _ = run(tmp_path, [meta], filter_=dict(cfg, extensions=["png"]))
    assert {k: v["reason"] for k, v in by_id(rows).items()} == expect
    assert [ORDER.index(r) for r in expect.values()] == sorted(ORDER.index(r) for r in expect.values())


def test_rating_scheme_ambiguity_is_an_error_naming_the_key(tmp_path):
    with pytest.raises(FilterConfigError, match=r"filter\.rating_scheme") as err:
        check_filter_config({"ratings": ["s", "q"]})
    assert "SAFE" in str(err.value) and "SENSITIVE" in str(err.value)
    with pytest.raises(FilterConfigError, match=r"filter\.ratings contains \['g'\].*legacy"):
        check_filter_config({"ratings": ["g"], "rating_scheme": "legacy"})
    assert check_filter_config({"ratings": ["q", "e"]}).ratings == ("q", "e")  # unambiguous without a scheme
    assert check_filter_config({"ratings": ["g"]}).rating_scheme == "modern"
    # the demo's exact filter block is accepted by the schema
    demo = {"ratings": ["s"], "rating_scheme": "legacy", "exclude_tags": ["comic"], "min_score": 0, "min_width": 64,
            "min_height": 64, "extensions": ["jpg", "jpeg", "png", "webp"]}  # fmt: skip
    check_filter_config(validate_config({"filter": demo})["filter"])
    # legacy scheme but the data has 'g': its 's' means sensitive -> refuse
    meta = write_jsonl(tmp_path / "modern.jsonl", [post(1, rating="g"), post(2, rating="s")])
    with pytest.raises(RatingSchemeMismatch, match=r"rating 'g'.*filter\.rating_scheme: modern"):
        run(tmp_path, [meta], filter_={"ratings": ["s"], "rating_scheme": "legacy"})
    put_image(tmp_path / "mirror", 1)
    put_image(tmp_path / "mirror", 2)
    rows, _ = run(tmp_path, [meta], filter_={"ratings": ["g"], "rating_scheme": "modern"})
    assert {k: v["reason"] for k, v in by_id(rows).items()} == {"1": "", "2": "rating"}


def test_cli_reports_config_errors_without_traceback(tmp_path, repo):
    env = dict(os.environ, PYTHONPATH=str(repo / "workflow"))
    cmd = [sys.executable, "-m", "animefaces.ingest", "--out", str(tmp_path / "o"), "--dataset", "{}",
           "--filter", '{"ratings": ["s"]}', "--classes", "{}", "--shards", "2"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "filter.rating_scheme" in proc.stderr and "Traceback" not in proc.stderr
    # --config: the whole workflow config file, as a user would run it by hand
    meta = write_jsonl(tmp_path / "m.jsonl", [post(7), post(8, rating="e")])
    put_image(tmp_path / "mirror", 7)
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "dataset": {"name": "x", "root": str(tmp_path / "mirror"), "metadata": [str(meta)]},
                "shards": {"count": 3},
                "filter": {"ratings": ["s"], "rating_scheme": "legacy"},
            }
        )
    )
    out = tmp_path / "results" / "x" / "ingest"
    cmd = [sys.executable, "-m", "animefaces", "ingest", "--out", str(out), "--config", str(config)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["kept"] == 1 and summary["dropped"] == {"rating": 1} and summary["records"] == 2
    assert sorted(p.name for p in (out / "manifests").iterdir()) == ["000.parquet", "001.parquet", "002.parquet",
                                                                       "unsharded.parquet"]  # fmt: skip


# ------------------------------------------------------------------------------------------------ classes


def test_class_table_with_alias_merge(tmp_path):
    def char(pid, chars, solo=True, **kw):
        return post(pid, tag_string_character=chars, tag_string_general="1girl solo" if solo else "2girls", **kw)

    recs = [
        char(1, "saber"),
        char(2, "saber_alter"),
        char(3, "saber saber_alter"),  # merges to one character
        char(4, "tohsaka_rin"),
        char(5, "tohsaka_rin"),
        char(6, "archer"),
        char(7, "archer", solo=False),  # not solo: no count, no label
        char(8, "tohsaka_rin matou_sakura"),  # two characters: character ''
        char(9, "tohsaka_rin", rating="e"),  # dropped posts do not count
        char(10, "illyasviel_von_einzbern"),
    ]
    meta = write_jsonl(tmp_path / "m.jsonl", recs)
    for r in recs:
        put_image(tmp_path / "mirror", r["id"])
    flt = {"ratings": ["s"], "rating_scheme": "legacy"}
    rows, result = run(tmp_path, [meta], filter_=flt, classes={"top_k": 2, "aliases": {"saber_alter": "saber"}})
    table = read_classes(tmp_path / "results" / "t" / "ingest" / "classes.tsv")
    assert table.to_dict(orient="list") == {"class_id": [1, 2], "name": ["saber", "tohsaka_rin"], "count": [3, 2]}
    got = by_id(rows)
    labels = {k: (v["character"], v["label"]) for k, v in got.items() if v["status"] == "kept"}
    assert labels == {
        "1": ("saber", 1), "2": ("saber", 1), "3": ("saber", 1), "4": ("tohsaka_rin", 2), "5": ("tohsaka_rin", 2),
        "6": ("archer", 0), "7": ("archer", 0), "8": ("", 0), "10": ("illyasviel_von_einzbern", 0),
    }  # fmt: skip
    assert pd.isna(got["9"]["label"]) and got["9"]["reason"] == "rating"
    # ties are broken by name; min_count and require_solo change the counting
    aliases = {"saber_alter": "saber"}
    rows, result = run(
        tmp_path, [meta], filter_=flt, classes={"top_k": 10, "require_solo": False, "min_count": 2, "aliases": aliases}
    )
    assert result.classes.to_dict(orient="list") == {
        "class_id": [1, 2, 3], "name": ["saber", "archer", "tohsaka_rin"], "count": [3, 2, 2]
    }  # fmt: skip
    assert by_id(rows)["7"]["label"] == 2  # without require_solo the non-solo archer post is labelled too
    rows, result = run(tmp_path, [meta], filter_=flt, classes={"top_k": 0})
    assert len(result.classes) == 0 and set(rows["label"].dropna()) == {0}


def test_alias_chains_and_cycles():
    assert resolve_aliases({"a": "b", "b": "c"}) == {"a": "c", "b": "c"}
    with pytest.raises(ClassesConfigError, match=r"classes.aliases has a cycle: a -> b -> a"):
        resolve_aliases({"a": "b", "b": "a"})


# ------------------------------------------------------------------------------------ paths and safety


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.mark.parametrize("list_after", [1, 1000], ids=["listing", "lstat"])
def test_path_traversal_is_impossible(tmp_path, monkeypatch, list_after):
    from animefaces.ingest import mirror as mirror_mod

    monkeypatch.setattr(mirror_mod, "LIST_AFTER", list_after)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "4242.png"
    Image.new("RGB", (8, 8)).save(secret)
    mirror = tmp_path / "mirror"
    put_image(mirror, 1)
    bucket = mirror / "original" / "0242"
    bucket.mkdir(parents=True)
    os.symlink(secret, bucket / "4242.png")  # an image symlink leaving the mirror
    os.symlink(outside, mirror / "original" / "0243")  # a bucket directory symlink leaving it
    Image.new("RGB", (8, 8)).save(outside / "4243.png")
    inside = mirror / "original" / "0244"
    inside.mkdir()
    os.symlink(mirror / "original" / "0001" / "1.png", inside / "4244.png")  # stays inside: fine
    recs = [
        post(1),
        post(4242),
        post(4243),
        post(4244),
        post(5, file_ext="png/../../../outside/4242"),
        post(6, file_ext="/etc/passwd"),
        post("../1"),
        post(7, file_ext="p\x00g"),
    ]
    meta = write_jsonl(tmp_path / "meta" / "m.jsonl", recs)
    import tarfile

    evil = tmp_path / "meta" / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tf:
        tf.add(meta, arcname="../../escape.jsonl")
    before = _tree(tmp_path)
    rows, _ = run(tmp_path, [meta, evil])
    got = by_id(rows)
    assert got["1"]["status"] == "kept" and got["4244"]["status"] == "kept"
    assert got["4242"]["reason"] == "missing_file"
    assert json.loads(got["4242"]["details"])["why"] == "symlink pointing outside the mirror"
    assert got["4243"]["reason"] == "missing_file"
    assert got["5"]["reason"] == got["6"]["reason"] == got["7"]["reason"] == "invalid_file_ext"
    assert got["m.jsonl:7"]["reason"] == "invalid_id"
    assert got["evil.tar.gz/../../escape.jsonl:1"]["reason"] == "duplicate_id"
    kept_paths = [Path(p) for p in rows["path"].dropna()]
    assert all(str(p).startswith(str(mirror / "original")) for p in kept_paths)
    # nothing was written anywhere but under results/
    assert {p for p in _tree(tmp_path) - before if not p.startswith("results")} == set()
    assert not (tmp_path.parent / "escape.jsonl").exists()


def test_duplicate_metadata_file_names_are_refused(tmp_path):
    a = write_jsonl(tmp_path / "a" / "posts.jsonl", [post(1)])
    b = write_jsonl(tmp_path / "b" / "posts.jsonl", [post(2)])
    with pytest.raises(core.MetadataError, match="same file name 'posts.jsonl'"):
        run(tmp_path, [a, b])
    with pytest.raises(core.MetadataError, match="does not exist"):
        run(tmp_path, [tmp_path / "nope.jsonl"])


def test_missing_files_are_checked_by_listing_each_bucket_once(tmp_path, monkeypatch):
    """Many checks in a bucket: the bucket is listed once, no stat per post. Few: one lstat per post."""
    from animefaces.ingest import mirror as mirror_mod

    monkeypatch.setattr(mirror_mod, "LIST_AFTER", 1)
    mirror = tmp_path / "mirror"
    recs = [post(pid) for pid in range(1000, 1200)]
    for pid in range(1000, 1200, 2):
        put_image(mirror, pid)
    (mirror / "original" / "0001" / "1001.png").mkdir(parents=True)  # a directory is not an image
    (mirror / "original" / "0003").mkdir()
    (mirror / "original" / "0003" / "01003.png").touch()  # not the canonical name of post 1003
    meta = write_jsonl(tmp_path / "m.jsonl", recs)
    calls = []
    real_scandir, real_exists, real_isfile = os.scandir, os.path.exists, os.path.isfile

    def scandir(p):
        calls.append(str(p))
        return real_scandir(p)

    def no_stat(real):
        def check(p):
            if str(p).startswith(str(mirror)):
                raise AssertionError(f"per-post stat of {p}")
            return real(p)

        return check

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os.path, "exists", no_stat(real_exists))
    monkeypatch.setattr(os.path, "isfile", no_stat(real_isfile))
    rows, result = run(tmp_path, [meta])
    monkeypatch.undo()
    got = by_id(rows)
    assert all(got[str(pid)]["status"] == ("kept" if pid % 2 == 0 else "dropped") for pid in range(1000, 1200))
    assert {got[str(pid)]["reason"] for pid in range(1001, 1200, 2)} == {"missing_file"}
    calls = [c for c in calls if c.startswith(str(mirror))]
    assert len(calls) == len(set(calls)) == 200 == result.buckets_listed
    # below the listing threshold: the same answers from one lstat per post, no listing at all
    monkeypatch.setattr(mirror_mod, "LIST_AFTER", 1000)
    calls.clear()
    monkeypatch.setattr(os, "scandir", scandir)
    rows2, result2 = run(tmp_path, [meta])
    monkeypatch.undo()
    assert [c for c in calls if c.startswith(str(mirror))] == [] and result2.buckets_listed == 0
    pd.testing.assert_frame_equal(rows2, rows)


# ------------------------------------------------------------------------------------------ folder source


def test_folder_source(tmp_path):
    root = tmp_path / "images"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for rel, size in (("a/12.png", (80, 80)), ("b/12.jpg", (80, 80)), ("b/cat.PNG", (80, 80)), ("a/7.webp", (30, 80))):
        Image.new("RGB", size, (10, 20, 30)).save(root / rel, format={"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[
            rel.rsplit(".", 1)[1].lower()])  # fmt: skip
    (root / "notes.txt").write_text("not an image")
    (root / "b" / "13.gif").write_bytes(b"GIF89a")
    outside = tmp_path / "elsewhere.png"
    Image.new("RGB", (80, 80)).save(outside)
    os.symlink(outside, root / "a" / "99.png")
    rows, result = run(
        tmp_path,
        [],
        root=root,
        source="folder",
        filter_={"min_width": 64, "extensions": ["png", "jpg", "webp"], "ratings": ["e"]},  # fmt: skip
    )
    got = {r["parent_id"]: r for r in rows.to_dict(orient="records")}
    assert set(got) == {"a/12.png", "a/7.webp", "a/99.png", "b/12.jpg", "b/13.gif", "b/cat.PNG", "notes.txt"}
    assert got["notes.txt"]["reason"] == "unsupported_format"
    assert got["a/12.png"]["status"] == "kept" and got["a/12.png"]["post_id"] == 12
    assert got["a/12.png"]["path"] == str(root / "a" / "12.png") and got["a/12.png"]["width"] == 80
    assert got["b/12.jpg"]["reason"] == "duplicate_id"
    assert got["a/7.webp"]["reason"] == "image_too_small"
    assert got["b/13.gif"]["reason"] == "extension_not_allowed"
    assert got["a/99.png"]["reason"] == "missing_file"
    cat = got["b/cat.PNG"]
    assert cat["status"] == "kept" and 10**10 <= cat["post_id"] < 10**11 and cat["file_ext"] == "png"
    assert "sha256 of the relative path" in json.loads(cat["details"])["id_from"]
    rows2, _ = run(tmp_path, [], root=root, source="folder")
    assert {r["parent_id"]: r["post_id"] for r in rows2.to_dict(orient="records")}["b/cat.PNG"] == cat["post_id"]
    assert ledger.reconcile(ledger.load_ledger(tmp_path / "results" / "t")) == []
    assert result.shapes == {"folder": 7}


# ---------------------------------------------------------------------------------------------- workflow


@pytest.mark.slow
def test_snakemake_rule_runs_ingest(tmp_path, repo, shared):
    """The rule wires config -> CLI: run it alone, in an empty working directory with a small config."""
    work = tmp_path / "wf"
    (work / "config").mkdir(parents=True)
    mirror = work / "mirror"
    for rec in json.loads((shared / "metadata" / FLAT_ARRAY).read_text()):
        put_image(mirror, rec["id"], rec["file_ext"])
    cfg = {
        "dataset": {"name": "t", "root": "mirror", "metadata": [str(shared / "metadata" / FLAT_LINES)]},
        "demo": {"enabled": False},
        "shards": {"count": 2},
        "filter": {"ratings": ["s"], "rating_scheme": "legacy"},
        "classes": {"top_k": 3, "require_solo": False},
    }
    (work / "config" / "config.yaml").write_text(json.dumps(cfg))
    venv_bin = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run(
        [
            str(venv_bin / "snakemake"),
            "-s",
            str(repo / "Snakefile"),
            "-d",
            str(work),
            "--cores",
            "1",
            "results/t/ingest/classes.tsv",
            "--configfile",  # last: it takes several values
            "config/config.yaml",
        ],  # fmt: skip
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pd.concat([pd.read_parquet(p) for p in (work / "results" / "t" / "ingest" / "manifests").glob("*.parquet")])
    assert (rows["status"] == "kept").sum() == 10
    assert len(read_classes(work / "results" / "t" / "ingest" / "classes.tsv")) == 3


@pytest.mark.parametrize("group", [64, 3, 1])
def test_small_batches_and_spilling_give_identical_manifests(tmp_path, monkeypatch, group):
    """Memory is bounded by spilling rows to disk; the manifests must not depend on batch size or spilling, nor on
    how many shards one step puts in order (``HELD_GROUP_SHARDS``; 7 shards here)."""
    recs = [post(pid, rating="sqe"[pid % 3], tag_string_character=f"char_{pid % 4}") for pid in range(100, 400)]
    recs += [post(150), "oops", post(-1)]
    meta = write_jsonl(tmp_path / "m.jsonl", recs)
    for pid in range(100, 400, 3):
        put_image(tmp_path / "mirror", pid)
    out = tmp_path / "results" / "t" / "ingest"

    def manifests():
        return {p.name: pd.read_parquet(p) for p in sorted((out / "manifests").glob("*.parquet"))}

    flt = {"ratings": ["s", "q"], "rating_scheme": "legacy"}
    cls = {"top_k": 2, "require_solo": False}
    _, plain = run(tmp_path, [meta], filter_=flt, classes=cls, shards=7)
    expected = manifests()
    monkeypatch.setattr(core, "BATCH", 7)
    monkeypatch.setattr(core, "HELD_GROUP_SHARDS", group)
    for spill_bytes, spills in ((1, (10, 1000)), (4096, (3, 30)), (1 << 30, (0, 0))):
        # every batch spilled alone; several batches per spill plus some held to the end; all held to the end
        monkeypatch.setattr(core, "SPILL_BYTES", spill_bytes)
        _, spilled = run(tmp_path, [meta], filter_=flt, classes=cls, shards=7)
        assert spills[0] <= spilled.spill_files <= spills[1] and plain.spill_files == 0, spilled.spill_files
        got = manifests()
        assert got.keys() == expected.keys()
        for name in expected:
            pd.testing.assert_frame_equal(got[name], expected[name])
        assert not list(out.glob(".spill-*"))  # spill files are removed
    assert (expected["000.parquet"]["status"] == "kept").sum() > 0
