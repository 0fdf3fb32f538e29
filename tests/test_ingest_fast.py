"""Ingest at scale and under attack: the msgspec fast path gives the same ledger as the previous (json) ingest,
hostile records and files become ledger rows, damaged archives keep what was read, Danbooru metadata as globs and
directories, the 512px layout, the pre-flight check of dataset.root, folder ids and shard balance."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest
from animefaces import ledger
from animefaces.config import validate_config
from animefaces.demo.corpus import ASSUMED_CONFIG, build_metadata, plan_corpus
from animefaces.ingest import ingest, readers
from animefaces.ingest.folder import HASH_ID_BASE, HashedIds
from animefaces.ingest.preflight import PreflightError, preflight
from animefaces.ingest.records import POSTS, normalise, normalise_batch, raw_post
from animefaces.shards import shard_of
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
# main before the fast path (json + a hand-unrolled normaliser): the reference ledger is computed by that code
BASELINE = "dd48c619688758164f6e0b03c36b1456e6c4e591"
SAMPLES = ("danbooru2017-2020_nested_example.jsonl", "danbooru_api_2020-07_posts.jsonl")
SAMPLE_ARRAY = "danbooru_api_2020-07_posts_search.json"
LEGACY_EXTS = ["jpg", "jpeg", "png", "webp", "gif", "bmp"]


def write_lines(path: Path, lines) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for line in lines:
            text = line if isinstance(line, (bytes, str)) else json.dumps(line)
            fh.write((text if isinstance(text, bytes) else text.encode()) + b"\n")
    return path


def touch_image(root: Path, pid: int, ext: str, layout: str = "original") -> None:
    path = root / layout / f"{pid % 1000:04d}" / f"{pid}.{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def run(tmp_path: Path, dataset: dict, filter_=None, shards=4, name="t"):
    out = tmp_path / "results" / name / "ingest"
    cfg = validate_config({"filter": filter_ or {}, "classes": {"require_solo": False}})
    result = ingest(out, dataset, cfg["filter"], cfg["classes"], shards)
    rows = pd.concat([pd.read_parquet(p) for p in sorted((out / "manifests").glob("*.parquet"))], ignore_index=True)
    return rows, result


def hostile_records() -> list:
    """Odd-but-readable records the old ingest handled (the reference for equality)."""
    base = {"id": 5, "file_ext": "png", "rating": "s", "tag_string_general": "1girl solo", "image_width": 500}
    return [
        base,
        {**base, "id": "77", "image_width": "100", "image_height": 50.0, "score": "-3", "rating": None,
         "tag_string_general": None, "tag_string": " a  b ", "is_deleted": "false", "is_flagged": 1},
        {"id": 78, "file_ext": "png", "tags": [{"name": "x y", "category": "4"}, "bare", 5, {"name": ""},
                                               {"name": "z", "category": 2}], "md5": None},
        {"id": 79, "file_ext": "png", "tag_string_character": " c1 ", "image_width": True, "score": "1e3"},
        {"id": 80, "file_ext": "png"},
        "{not json",
        "[1, 2]",
        "",
        "   ",
        {**base, "id": -5},
        {**base, "id": "abc"},
        {**base, "id": 10**20},
        {**base, "id": 5, "md5": "dup"},
        {**base, "id": 81, "file_ext": "../../etc/passwd"},
        {**base, "id": 82, "file_ext": "JPG"},
        {**base, "id": 83, "score": 1.5, "image_height": 1e400},
        '{"id": 84, "file_ext": "png", "x": NaN, "y": Infinity}',
        '{"id": 85, "file_ext": "png", "id": 86}',
        b'{"id": 87, "file_ext": "png", "source": "\xff\xfe"}',
        '{"id": 88, "file_ext": "png", "tag_string_general": "caf\\u00e9 \\ud83d\\ude00"}',
        '{"id": 89, "file_ext": "png", "tag_string_general": "\\t lead \\n"}\r',
        '{"id": 90, "file_ext": "png"} {"id": 91}',
        {**base, "id": 92, "is_deleted": True},
        {**base, "id": 93, "rating": "e", "tag_string_general": "comic solo"},
    ]  # fmt: skip


def corpus(tmp_path: Path, shared: Path) -> tuple[Path, list[str]]:
    """A mirror (empty image files) and metadata: the real samples, the demo's three files, the hostile records."""
    root = tmp_path / "mirror"
    files = [str(shared / "metadata" / name) for name in (*SAMPLES, SAMPLE_ARRAY)]
    plan = plan_corpus(0, 120)
    metadata, _ = build_metadata(plan)
    for rel, data in metadata.items():
        path = tmp_path / "demo" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files.append(str(path))
    files.append(str(write_lines(tmp_path / "hostile.jsonl", hostile_records())))
    ids = set()
    for path in files:
        for _, stream in readers.iter_sources(path):
            for _, value in readers.iter_records(stream):
                if isinstance(value, dict):
                    n = normalise(value)
                    if n["id"] is not None and n["file_ext"] and n["file_ext"].isalnum() and n["id"] % 3:
                        ids.add((n["id"], n["file_ext"]))  # two posts in three have their file
    for pid, ext in ids:
        touch_image(root, pid, ext)
    return root, files


def package_at(commit: str, where: Path) -> Path:
    """``workflow/`` (the package) as it was at ``commit``, extracted from git history under ``where``; the test
    is skipped when the clone lacks that history (e.g. a shallow checkout)."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", commit, "workflow"], capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"baseline commit {commit[:8]} not in this clone's history: {exc}")
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where / "workflow"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """The package as it was before the fast path, from git history."""
    return package_at(BASELINE, tmp_path_factory.mktemp("baseline"))


@pytest.mark.parametrize("flt", ["demo", "defaults"])
def test_fast_path_ledger_identical_to_the_json_ingest(tmp_path, shared, baseline, flt):
    root, files = corpus(tmp_path, shared)
    filter_ = dict(ASSUMED_CONFIG["filter"]) if flt == "demo" else {}
    filter_["extensions"] = LEGACY_EXTS  # (tif/tiff/avif joined the default list after the baseline)
    dataset = {"source": "danbooru", "root": str(root), "metadata": files}
    new_rows, result = run(tmp_path, dataset, filter_)
    assert result.records > 150 and set(result.shapes) >= {"nested", "flat", "uncategorised", "no_tags"}
    old_out = tmp_path / "results" / "old" / "ingest"
    proc = subprocess.run(
        [sys.executable, "-m", "animefaces.ingest", "--out", str(old_out), "--dataset", json.dumps(dataset),
         "--filter", json.dumps(filter_), "--classes", json.dumps({"require_solo": False}), "--shards", "4"],
        env={**os.environ, "PYTHONPATH": str(baseline)}, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    old_rows = pd.concat([pd.read_parquet(p) for p in sorted((old_out / "manifests").glob("*.parquet"))])
    assert json.loads(proc.stdout)["records"] == result.records

    def canonical(rows: pd.DataFrame) -> pd.DataFrame:
        # shards are now dealt in turn (bucket % count) instead of contiguous: compare everything else
        return rows.drop(columns=["shard"]).sort_values("parent_id").reset_index(drop=True)

    pd.testing.assert_frame_equal(canonical(new_rows), canonical(old_rows))
    sharded = new_rows[new_rows["shard"] != "unsharded"]
    assert (sharded["shard"] == [shard_of(int(p), 4) for p in sharded["post_id"]]).all()
    assert (new_rows["status"] == "kept").sum() > 5 and new_rows["reason"].nunique() >= 8


def test_fast_reader_equals_the_exact_reader_block_by_block(tmp_path, monkeypatch):
    """Every line through msgspec blocks, per-line msgspec and the json fallback: same records as iter_records."""
    path = write_lines(tmp_path / "h.jsonl", hostile_records() * 3)
    with open(path, "rb") as fh:
        exact = list(readers.iter_records(io.BufferedReader(fh)))  # type: ignore[attr-defined]
    for block in (1, 7, 64, 1 << 20):
        monkeypatch.setattr(readers, "LINE_BLOCK_BYTES", block)
        with open(path, "rb") as fh:
            fast = [(n, v) for ns, vs in readers.iter_record_batches(io.BufferedReader(fh))
                    for n, v in zip(ns, vs, strict=True)]  # fmt: skip
        assert [n for n, _ in fast] == [n for n, _ in exact], block
        for (n, a), (_, b) in zip(fast, exact, strict=True):
            if isinstance(b, readers.Malformed):
                assert isinstance(a, readers.Malformed) and a.error == b.error, n
            elif isinstance(b, dict):
                assert isinstance(a, (*POSTS, dict)), n
                ra = a if isinstance(a, POSTS) else raw_post(a)
                na, nb = normalise_batch([ra]), normalise_batch([raw_post(b)])
                assert na.id.to_pylist() == nb.id.to_pylist() and na.shapes == nb.shapes
                assert na.unencodable == nb.unencodable, n
                assert {k: v.to_pylist() for k, v in na.columns.items()} == {
                    k: v.to_pylist() for k, v in nb.columns.items()
                }, n
            else:
                assert a == b, n


# ------------------------------------------------------------------------------------- hostile records


HOSTILE = {
    "number_5000_digits": ('{"id": 7, "file_ext": "png", "image_width": ' + "9" * 5000 + "}", "kept", None),
    "id_number_5000_digits": ('{"id": ' + "9" * 5000 + ', "file_ext": "png"}', "invalid_id", "5000 digits"),
    "id_string_5000_digits": ('{"id": "' + "9" * 5000 + '", "file_ext": "png"}', "invalid_id", "'999"),
    "unknown_field_5000_digits": ('{"id": 8, "file_ext": "png", "fav": ' + "1" * 5000 + "}", "kept", None),
    "nested_brackets_100000": ('{"id": 9, "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "malformed_record", "nested"),
    "lone_surrogate_tag": ('{"id": 10, "file_ext": "png", "tag_string_general": "a \\ud800 b"}', "malformed_record",
                           "not valid Unicode"),
    "lone_surrogate_unused_field": ('{"id": 11, "file_ext": "png", "source": "\\udc80"}', "kept", None),
}  # fmt: skip


@pytest.mark.parametrize("form", ["lines", "array"])
def test_hostile_records_become_ledger_rows(tmp_path, form):
    root = tmp_path / "mirror"
    for pid in (7, 8, 9, 10, 11):
        touch_image(root, pid, "png")
    texts = [text for text, _, _ in HOSTILE.values()]
    if form == "lines":
        meta = tmp_path / "h.jsonl"
        meta.write_text("\n".join(texts) + "\n")
    else:
        meta = tmp_path / "h.json"
        meta.write_text("[" + ",\n".join(texts) + "]")
    rows, result = run(tmp_path, {"source": "danbooru", "root": str(root), "metadata": [str(meta)]})
    assert result.records == len(HOSTILE) == len(rows)
    by_parent = {r["parent_id"]: r for r in rows.to_dict(orient="records")}
    for n, (case, (_, outcome, detail)) in enumerate(HOSTILE.items(), 1):
        row = by_parent[f"{meta.name}:{n}"]
        if outcome == "kept":
            assert row["status"] == "kept", (case, row)
        else:
            assert row["reason"] == outcome, (case, row)
            assert detail in row["details"], (case, row["details"])
    assert pd.isna(by_parent[f"{meta.name}:1"]["width"])  # a number beyond Int64 is unknown
    assert ledger.reconcile(ledger.load_ledger(tmp_path / "results" / "t")) == []


def test_truncated_archive_stops_but_records_what_was_read(tmp_path):
    def lines(first: int) -> bytes:
        return "".join(json.dumps({"id": i, "file_ext": "png"}) + "\n" for i in range(first, first + 5000)).encode()

    tar = tmp_path / "meta.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        for k in range(2):
            member = tmp_path / f"posts{k}.jsonl"
            member.write_bytes(lines(1 + 5000 * k))
            tf.add(member, arcname=f"a/posts00{k}.jsonl")
    data = tar.read_bytes()
    tar.write_bytes(data[: len(data) * 3 // 4])  # the second member breaks off
    gz = tmp_path / "posts.jsonl.gz"
    gz.write_bytes(gzip.compress(lines(1))[:-4000])
    for path in (tar, gz):
        out = tmp_path / "results" / path.name / "ingest"
        with pytest.raises(readers.MetadataError, match=r"damaged.* (\d+) records were read before the damage") as exc:
            ingest(out, {"source": "danbooru", "root": str(tmp_path), "metadata": [str(path)]},
                   validate_config({})["filter"], validate_config({})["classes"], 2)  # fmt: skip
        read = int(str(exc.value).split(" records were read")[0].rsplit(" ", 1)[1])
        assert 1000 < read < 10000
        partial = pd.concat([pd.read_parquet(p) for p in (out / "damaged" / "manifests").glob("*.parquet")])
        assert len(partial) == read and partial["reason"].eq("missing_file").sum() == read
        assert not (out / "manifests").exists()  # the job's outputs are not written


# ------------------------------------------------------------------------------------------ folder source


def _png(path: Path, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (80, 80), (200, 30, 30)).save(path, format=fmt)


def test_every_file_under_a_folder_gets_a_row(tmp_path, monkeypatch):
    root = tmp_path / "images"
    _png(root / "1.tif", "TIFF")
    _png(root / "2.tiff", "TIFF")
    _png(root / "3.avif", "AVIF")
    _png(root / "photo", "JPEG")  # no extension: identified by Pillow
    (root / "4.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + os.urandom(200))
    (root / "README").write_text("not an image")
    os.mkfifo(root / "5.jpg")
    _png(root / "locked" / "6.png")
    _png(root / "ok" / "7.png")
    broot = os.fsencode(root)
    os.makedirs(os.path.join(broot, b"dir\xff"))
    Image.new("RGB", (8, 8)).save(os.path.join(broot, b"dir\xff", b"8.png").decode(errors="surrogateescape"), "PNG")
    with open(os.path.join(broot, b"bad\xfe\xfd.png"), "wb") as fh:
        fh.write(b"\x89PNG")
    os.chmod(root / "locked", 0)
    real_scandir = os.scandir

    def scandir(path="."):  # root ignores permissions: make the refusal happen anyway
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    try:
        rows, result = run(tmp_path, {"source": "folder", "root": str(root)})
    finally:
        os.chmod(root / "locked", 0o755)
    got = {r["parent_id"]: r for r in rows.to_dict(orient="records")}
    for name in ("1.tif", "2.tiff", "3.avif", "photo", "ok/7.png"):
        assert got[name]["status"] == "kept", (name, got[name])
    assert got["photo"]["file_ext"] == "jpg" and "content" in got["photo"]["details"]
    for name in ("4.heic", "README", "5.jpg"):
        assert got[name]["reason"] == "unsupported_format", name
    assert "FIFO" in got["5.jpg"]["details"]
    assert got["locked"]["reason"] == "unreadable_directory" and got["locked"]["shard"] == "unsharded"
    assert got["dir\\xff/8.png"]["reason"] == "invalid_file_name"
    assert got["bad\\xfe\\xfd.png"]["reason"] == "invalid_file_name"
    assert len(rows) == result.records == 11
    assert ledger.reconcile(ledger.load_ledger(tmp_path / "results" / "t")) == []


def test_danbooru_posts_of_new_formats(tmp_path):
    root = tmp_path / "mirror"
    recs = [{"id": i, "file_ext": ext} for i, ext in ((1, "avif"), (2, "tif"), (3, "heic"), (4, "mp4"))]
    for rec in recs:
        touch_image(root, rec["id"], rec["file_ext"])
    rows, _ = run(tmp_path, {"source": "danbooru", "root": str(root),
                             "metadata": [str(write_lines(tmp_path / "m.jsonl", recs))]})  # fmt: skip
    got = {r["item_id"]: r for r in rows.to_dict(orient="records")}
    assert got["1"]["status"] == got["2"]["status"] == "kept"
    assert got["3"]["reason"] == "unsupported_format" and "decoder" in got["3"]["details"]
    assert got["4"]["reason"] == "extension_not_allowed"


def test_folder_ids_short_stable_and_named(tmp_path, monkeypatch):
    root = tmp_path / "images"
    names = ["cat.png", "dog.png", "sub/cat.png", "12.png", "0012.png"]
    for name in names:
        _png(root / name)
    rows, _ = run(tmp_path, {"source": "folder", "root": str(root)})
    ids = dict(zip(rows["parent_id"], rows["post_id"], strict=True))
    assert ids["12.png"] == 12
    for name in ("cat.png", "dog.png", "sub/cat.png", "0012.png"):
        assert HASH_ID_BASE <= ids[name] < 10 * HASH_ID_BASE and len(str(ids[name])) == 11
    assert len(set(ids.values())) == len(names)
    rows2, _ = run(tmp_path, {"source": "folder", "root": str(root)}, name="again")
    assert dict(zip(rows2["parent_id"], rows2["post_id"], strict=True)) == ids
    # collisions move to the next free id instead of becoming duplicate_id drops
    from animefaces.ingest import folder

    monkeypatch.setattr(folder, "HASH_ID_SPACE", 2)
    hashed = HashedIds()
    assert sorted(hashed(n) for n in ("a", "b")) == [HASH_ID_BASE, HASH_ID_BASE + 1]


def test_folder_of_consecutive_ids_spreads_over_every_shard(tmp_path):
    root = tmp_path / "images"
    for i in range(1, 25):
        _png(root / f"{i}.png")
    rows, _ = run(tmp_path, {"source": "folder", "root": str(root)}, shards=8)
    counts = rows.groupby("shard").size()
    assert set(counts.index) == {f"{i:03d}" for i in range(8)} and counts.max() == counts.min() == 3


# ------------------------------------------------------------------------------------- Danbooru layouts


def test_metadata_globs_directories_and_512px_layout(tmp_path):
    root = tmp_path / "mirror"
    meta = tmp_path / "meta"
    for k in range(3):
        recs = [{"id": 100 * k + i, "file_ext": "png" if i % 2 else "gif"} for i in range(1, 6)]
        write_lines(meta / f"posts{k:03d}.json", recs)
        for rec in recs:
            touch_image(root, rec["id"], "jpg", "512px")  # 512px: every file is .jpg
    (meta / "README.txt").write_text("not metadata")
    for metadata in (
        [str(meta)],
        [str(meta / "posts*.json")],
        [str(meta / "posts000.json"), str(meta / "posts00[12].json")],
    ):
        dataset = {"source": "danbooru", "root": str(root), "metadata": metadata, "layout": "512px"}
        rows, result = run(tmp_path, dataset, name=f"m{abs(hash(metadata[-1]))}")
        assert result.records == 15 and (rows["status"] == "kept").all(), metadata
        assert all(p.endswith(".jpg") and "/512px/" in p for p in rows["path"])
    assert run(tmp_path, {**dataset, "layout": "original"}, name="orig")[0]["reason"].eq("missing_file").all()
    with pytest.raises(readers.MetadataError, match="matches no file"):
        readers.expand_metadata([str(meta / "nothing*.json")])


def test_mirror_paths_follow_the_documented_danbooru2021_layout():
    """Danbooru2021's description (gwern.net/danbooru2021, "Format"; repeated in the Danbooru2023 README built on
    it): 1000 buckets 0000-0999 = id modulo 1000, zero-padded to 4 digits; files at {original,512px}/$BUCKET/$ID.$EXT,
    the 512px subset being SFW posts downscaled to 512x512 JPGs. Written out literally, not recomputed."""
    from animefaces.ingest.mirror import image_path

    assert image_path("/m", 5020995, "png") == "/m/original/0995/5020995.png"  # Danbooru2021's final id
    assert image_path("/m", 5020995, "png", "512px") == "/m/512px/0995/5020995.jpg"
    assert image_path("/m", 7, "gif", "512px") == "/m/512px/0007/7.jpg"
    assert image_path("/m", 1000, "jpeg") == "/m/original/0000/1000.jpeg"


def test_preflight_of_the_512px_layout_samples_only_sfw_posts(tmp_path):
    """The 512px subset holds only 's' posts: 300 'e' posts first (no file there) must not fail the check."""
    root = tmp_path / "mirror"
    recs = [{"id": i, "file_ext": "png", "rating": "e"} for i in range(1, 301)]
    recs += [{"id": i, "file_ext": "png", "rating": "s"} for i in range(301, 401)]
    for rec in recs[300:]:
        touch_image(root, rec["id"], "jpg", "512px")
    meta = write_lines(tmp_path / "posts.jsonl", recs)
    dataset = {"source": "danbooru", "root": str(root), "metadata": [str(meta)], "layout": "512px"}
    assert "100 of 100 sampled posts" in preflight(dataset)
    (root / "original").mkdir()
    with pytest.raises(PreflightError, match="none of 200"):  # the original layout expects every rating
        preflight({**dataset, "layout": "original"})


def test_preflight_fails_fast_naming_dataset_root(tmp_path, repo):
    root = tmp_path / "mirror"
    recs = [{"id": i, "file_ext": "jpg"} for i in range(1, 100_001)]
    meta = write_lines(tmp_path / "posts.jsonl", recs)
    for rec in recs[:50]:
        touch_image(root, rec["id"], "jpg")
    ok = {"source": "danbooru", "root": str(root), "metadata": [str(meta)]}
    assert "50 of 200" in preflight(ok)
    wrong = tmp_path / "elsewhere"
    (wrong / "original").mkdir(parents=True)
    t0 = time.perf_counter()
    with pytest.raises(PreflightError, match=rf"dataset.root '{wrong}' looks wrong: none of 200"):
        preflight({**ok, "root": str(wrong)})
    assert time.perf_counter() - t0 < 10
    with pytest.raises(PreflightError, match="has no original/ folder"):
        preflight({**ok, "root": str(tmp_path / "nope")})
    with pytest.raises(PreflightError, match="dataset.root .* is not a directory"):
        preflight({"source": "folder", "root": str(tmp_path / "nope")})
    # through Snakemake: test_a_wrong_root_stops_snakemake_before_any_job (slow)


@pytest.mark.slow
def test_a_wrong_root_stops_snakemake_before_any_job(tmp_path, repo):
    """`snakemake --cores 2 --configfile X` (a real run, not -n) with a dataset.root that holds none of the
    metadata's images: exit 2 with one message naming dataset.root, no job, no results folder. Records wall and CPU
    time (BENCHMARKS.md "Wrong dataset.root through Snakemake"); the bound is on CPU time, which a loaded machine
    does not inflate the way it does wall time, and is generous (~4 s measured)."""
    meta = write_lines(tmp_path / "meta" / "posts.jsonl", [{"id": i, "file_ext": "jpg"} for i in range(1, 100_001)])
    wrong = tmp_path / "elsewhere"
    (wrong / "original").mkdir(parents=True)
    cfg = tmp_path / "c.yaml"
    dataset = {"root": str(wrong), "metadata": [str(meta.parent)], "name": "pf"}  # a metadata directory
    cfg.write_text(json.dumps({"dataset": dataset, "demo": {"enabled": False}}))
    work = tmp_path / "work"
    work.mkdir()
    cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(repo / "Snakefile"), "-d", str(work)]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    t0, cpu0 = time.perf_counter(), _children_cpu_seconds()
    proc = subprocess.Popen([*cmd, "--cores", "2", "--configfile", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    out = proc.communicate(timeout=600)[0]
    wall = time.perf_counter() - t0
    cpu = _children_cpu_seconds() - cpu0
    print(f"wrong dataset.root through snakemake: wall {wall:.1f} s, CPU {cpu:.2f} s (load {os.getloadavg()[0]:.1f})")
    assert proc.returncode == 2, out[-3000:]
    assert f"dataset.root '{wrong}' looks wrong: none of 200 posts" in out and "Traceback" not in out, out
    assert len(out.strip().splitlines()) <= 5, out
    assert "Building DAG" not in out and "Job stats" not in out, out  # stopped while the Snakefile was read
    assert not (work / "results").exists() and not (tmp_path / "results").exists()
    assert cpu < 30, f"{cpu:.1f} s of CPU to fail on a wrong dataset.root (about 4 s measured)"


def _children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the waited-for children of this process, summed
    return usage.ru_utime + usage.ru_stime


def _nested_tags_reference(tags: list) -> dict[str, list[str]]:
    """The nested-shape rules written plainly, one entry at a time (the spec ``records.nested_tags`` speeds up)."""
    from animefaces.ingest.records import CATEGORY_FIELDS, clean_tag, to_int

    out: dict[str, list[str]] = {"general": [], "artist": [], "copyright": [], "character": [], "meta": []}
    for entry in tags:
        if type(entry) is str and entry:
            name, cat = entry, None
        elif type(entry) is dict and type(entry.get("name")) is str and entry["name"]:
            name, cat = entry["name"], entry.get("category")
        else:
            continue
        name = clean_tag(name)
        if name:
            out[CATEGORY_FIELDS.get(cat if type(cat) is int else to_int(cat), "general")].append(name)
    return out


def test_nested_tag_grouping_follows_the_plain_rules():
    """Category codes as ints, digit strings, padded/signed strings, bools, floats, junk; names with spaces and
    control characters; bare names and non-objects: 20,000 random tag lists group exactly as the plain rules say."""
    import random

    from animefaces.ingest.records import nested_tags

    rng = random.Random(0)
    cats = [0, 1, 2, 3, 4, 5, 7, "0", "1", "3", "4", "5", " 4", "04", "+1", "-1", True, False, None, 4.0, 4.5, [], {},
            "x", "\u0664", 1e300]  # fmt: skip
    names = ["a", "b_c", "has space", "tab\tx", "", " ", "\x00", "ok\x7f", "\u00fcn\u00ef", 5, None, "x y z", "\n"]
    for _ in range(20000):
        tags: list = []
        for _ in range(rng.randint(0, 8)):
            r = rng.random()
            if r < 0.1:
                tags.append(rng.choice(names))
            elif r < 0.15:
                tags.append(rng.choice([1, None, [1], "bare tag"]))
            else:
                entry = {}
                if rng.random() < 0.95:
                    entry["name"] = rng.choice(names)
                if rng.random() < 0.95:
                    entry["category"] = rng.choice(cats)
                tags.append(entry)
        assert nested_tags(tags) == _nested_tags_reference(tags), tags


def test_bad_tag_character_check_matches_the_regex_on_slices():
    """``has_bad_tag_chars`` (a test of the UTF-8 bytes) says what ``_BAD_TAG_CHARS`` says of the strings, also
    for sliced arrays whose other rows hold such characters, and for non-ASCII text."""
    import random

    import pyarrow as pa
    from animefaces.ingest.records import _BAD_TAG_CHARS, has_bad_tag_chars

    rng = random.Random(1)
    alphabet = ["a", "_", "\u00e9", "\u3000", "\U0001f600", " ", "\t", "\x00", "\x7f", "\x1f", "!", "\x80"]
    found = {True: 0, False: 0}
    for _ in range(3000):
        words = ["".join(rng.choices(alphabet, k=rng.randint(0, 3))) for _ in range(rng.randint(0, 6))]
        arr = pa.array(words, pa.string())
        lo = rng.randint(0, len(words))
        hi = rng.randint(lo, len(words))
        expected = any(_BAD_TAG_CHARS.search(w) for w in words[lo:hi])
        assert has_bad_tag_chars(arr.slice(lo, hi - lo)) is expected, (words, lo, hi)
        found[expected] += 1
    assert min(found.values()) > 300, found
