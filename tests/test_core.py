"""Shards, manifests, ledger reconciliation and config validation (the foundation every stage uses)."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pytest
from animefaces import ledger, shards
from animefaces.atomic import atomic_path
from animefaces.config import ConfigError, defaults, validate_config
from animefaces.manifest import StageRows, manifest_path, read_kept, write_manifest, write_manifest_table


def test_shards_partition_all_buckets():
    for count in (1, 3, 4, 7, 1000):
        names = shards.shard_names(count)
        seen = []
        for i, _ in enumerate(names):
            seen.extend(shards.buckets_of_shard(i, count))
        assert sorted(seen) == list(range(1000))  # every bucket in exactly one shard
        if count <= 7:  # dealt in turn: consecutive ids spread over every shard
            assert {shards.shard_index(i, count) for i in range(1, count + 1)} == set(range(count))
        for post_id in (0, 999, 1000, 123456789, 4018204):
            idx = shards.shard_index(post_id, count)
            assert post_id % 1000 in shards.buckets_of_shard(idx, count)
    with pytest.raises(ValueError, match="shards.count"):
        shards.shard_names(0)


def test_jobs_of_several_shards_cover_every_shard_once_and_keep_their_names():
    """What the rules use (``per_batch`` patterns, ``batch_pattern`` as the wildcard's regex): every shard's file is
    made by exactly one job, ``count / per_job`` jobs in all, consecutive shards in one job."""
    import re

    from animefaces.wiring import per_batch

    for count, per_job in ((4, 1), (20, 10), (500, 10), (1000, 10), (1000, 100)):
        shards.check_per_job(count, per_job)
        patterns = per_batch("RES/crop/manifests/{shard}.parquet", per_job)
        regexes = [re.compile(re.escape(p).replace(r"\{batch\}", f"({shards.batch_pattern(per_job)})") + "$")
                   for p in patterns]  # fmt: skip
        job_of = {}
        for name in shards.shard_names(count):
            hits = [m.group(1) for r in regexes if (m := r.match(f"RES/crop/manifests/{name}.parquet"))]
            assert len(hits) == 1, (name, hits)
            job_of[name] = hits[0]
        jobs = list(dict.fromkeys(job_of.values()))
        assert len(jobs) == count // per_job
        for job in jobs:  # per_job consecutive shards each
            members = [int(name) for name, j in job_of.items() if j == job]
            assert members == list(range(members[0], members[0] + per_job)), (job, members)
    assert per_batch("RES/crop/manifests/{shard}.parquet", 1) == ["RES/crop/manifests/{batch}.parquet"]
    files = per_batch("RES/crop/images/{shard}", 10)
    assert [f.format(batch="04") for f in files][3] == "RES/crop/images/043" and len(files) == 10
    with pytest.raises(ValueError, match="no {shard}"):
        per_batch("RES/dedup/pairs.parquet", 10)
    with pytest.raises(ValueError, match=r"shards.per_job = 10 must divide shards.count = 25"):
        shards.check_per_job(25, 10)
    with pytest.raises(ValueError, match="shards.per_job must be one of 1, 10, 100"):
        shards.batch_suffixes(4)


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def _write(results, stage, shard, rows: StageRows):
    write_manifest(rows.frame(), manifest_path(results, stage, shard))


def test_ledger_reconciles_and_detects_lost_items(tmp_path):
    ing = StageRows("ingest", "000")
    ing.kept(1, "1", "meta.jsonl:1", path="a.png")
    ing.kept(2, "2", "meta.jsonl:2", path="b.png")
    ing.dropped(3, "3", "rating", {"rating": "e"}, parent_id="meta.jsonl:3")
    _write(tmp_path, "ingest", "000", ing)
    crop = StageRows("crop", "000")
    crop.kept(1, "1_0", "1")
    crop.kept(1, "1_1", "1")
    crop.dropped(2, "2", "no_face")
    _write(tmp_path, "crop", "000", crop)
    led = ledger.load_ledger(tmp_path)
    assert ledger.reconcile(led) == []
    table = ledger.funnel(led)
    totals = table[table["reason"] == ""].set_index("stage")
    assert totals.loc["ingest", "in"] == 3 and totals.loc["ingest", "kept"] == 2
    assert totals.loc["crop", "in"] == 2 and totals.loc["crop", "kept"] == 2 and totals.loc["crop", "dropped"] == 1
    assert len(read_kept(manifest_path(tmp_path, "crop", "000"))) == 2

    # a stage that forgets an input is caught
    crop2 = StageRows("crop", "000")
    crop2.kept(1, "1_0", "1")
    _write(tmp_path, "crop", "000", crop2)
    problems = ledger.reconcile(ledger.load_ledger(tmp_path))
    assert any("never reached crop" in p and "'2'" in p for p in problems)
    assert ledger.main([str(tmp_path)]) == 1


def test_manifest_rejects_dropped_without_reason_and_duplicates(tmp_path):
    rows = StageRows("clean", "001")
    rows.kept(5, "5_0", "5_0")
    rows.kept(5, "5_0", "5_0")
    with pytest.raises(ValueError, match="twice"):
        write_manifest(rows.frame(), tmp_path / "m.parquet")
    with pytest.raises(ValueError, match="reason"):
        StageRows("clean", "001").dropped(1, "1", "")
    df = rows.frame()
    assert str(df["post_id"].dtype) == "Int64" and json.loads(df["details"].iloc[0]) == {}
    assert isinstance(df, pd.DataFrame)


def test_config_defaults_and_errors_name_the_key():
    cfg = defaults()
    assert cfg["shards"]["count"] >= 1 and cfg["dataset"]["source"] in {"danbooru", "folder"}
    with pytest.raises(ConfigError, match=r"dataset.source.*danbooru.*folder"):
        validate_config({"dataset": {"source": "booru"}})
    with pytest.raises(ConfigError, match=r"shards.nonsense: unknown key"):
        validate_config({"shards": {"nonsense": 1}})
    with pytest.raises(ConfigError, match=r"shards.count"):
        validate_config({"shards": {"count": "four"}})


def _frame_and_table() -> tuple[pd.DataFrame, pa.Table]:
    rows = StageRows("ingest", "003")
    rows.kept(5, "5", "p.jsonl:1", path="/m/original/0005/5.png", width=512)
    rows.dropped(6, "6", "p.jsonl:2", "missing_file", {"path": "/m/original/0006/6.png"})
    rows.dropped(None, "p.jsonl:3", "p.jsonl:3", "malformed_record", {"error": "Expecting value"})
    frame = rows.frame(["path", "width"])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.cast(pa.schema([pa.field(f.name, pa.string() if f.name != "post_id" and f.name != "width"
                                           else pa.int64()) for f in table.schema]))  # fmt: skip
    return frame, table.replace_schema_metadata(None)


def test_manifest_from_arrow_reads_back_as_the_pandas_written_one(tmp_path):
    """Ingest writes its thousand manifests from Arrow, not via pandas (its strings as ``string``, its integers
    as ``Int64``): the same bytes as the pandas round trip it replaced, and the same frame read back."""
    _, table = _frame_and_table()
    typed = {pa.string(): pd.StringDtype(), pa.int64(): pd.Int64Dtype()}
    frame = table.to_pandas(types_mapper=typed.get)
    write_manifest(frame, tmp_path / "a.parquet")
    write_manifest_table(table, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    back = pd.read_parquet(tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(back, frame)
    assert str(back["width"].dtype) == "Int64" and str(back["path"].dtype) == "string"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop_columns(["reason"]), r"missing ledger columns \['reason'\]"),
        (lambda t: t.set_column(5, "status", pa.array(["kept", "gone", "dropped"])), "found \\['gone'\\]"),
        (lambda t: t.set_column(5, "status", pa.array(["kept", None, "dropped"])), "no status"),
        (lambda t: t.set_column(6, "reason", pa.array([None, "", "x"])), "without a reason, e.g. item '6'"),
        (lambda t: t.set_column(1, "item_id", pa.array(["5", "x", "x"])), "appear twice, e.g. 'x'"),
    ],
)
def test_manifest_rules_hold_for_frames_and_tables(tmp_path, change, message):
    frame, table = _frame_and_table()
    bad = change(table)
    with pytest.raises(ValueError, match=message):
        write_manifest_table(bad, tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=message):
        write_manifest(bad.to_pandas(), tmp_path / "f.parquet")
    assert not list(tmp_path.iterdir())
