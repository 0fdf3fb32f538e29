"""A large JSON Lines file decoded by reader processes (``ingest --threads N``, issue 15): the chunks cover the
file at line ends, and the manifests are byte for byte those of the serial reader, hostile records included."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from animefaces.ingest import chunks, ingest
from animefaces.ingest.readers import MetadataError
from test_ingest_fast import hostile_records, touch_image, write_lines

RECORD = {"file_ext": "png", "rating": "s", "tag_string_general": "1girl solo", "image_width": 500, "image_height": 500}


def _metadata(tmp_path: Path, n: int = 3000) -> Path:
    """Plain records with the hostile ones (malformed, blank, non-UTF-8, lone surrogates, bad ids, repeated ids)
    spread through the file, a BOM in front and no newline after the last line."""
    lines: list = []
    hostile = hostile_records()
    for i in range(1, n + 1):
        lines.append({**RECORD, "id": i * 7 % (n + 1) or n + 1, "score": i % 11})
        if i % 97 == 0:
            lines.append(hostile[(i // 97) % len(hostile)])
        if i % 501 == 0:  # the same id again, far from the first: a duplicate across chunks
            lines.append({**RECORD, "id": 7})
    path = write_lines(tmp_path / "posts.jsonl", lines)
    data = path.read_bytes()
    path.write_bytes(b"\xef\xbb\xbf" + data.rstrip(b"\n"))
    return path


def test_chunks_cover_the_file_at_line_ends(tmp_path):
    path = _metadata(tmp_path)
    data = path.read_bytes()
    got = chunks.line_chunks(path, 4096)
    assert got is not None and len(got) > 10
    assert got[0][0] == 0 and got[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(got, got[1:], strict=False))
    assert all(data[end - 1 : end] == b"\n" for _, end in got[:-1])
    assert chunks.line_chunks(path, len(data)) is None  # shorter than two chunks: serial
    gz = tmp_path / "posts.jsonl.gz"
    gz.write_bytes(gzip.compress(data))
    assert chunks.line_chunks(gz, 64) is None  # a compressed stream cannot be entered in the middle
    array = tmp_path / "posts.json"
    array.write_text("[" + ",".join(json.dumps({**RECORD, "id": i}) for i in range(1, 500)) + "]")
    assert chunks.line_chunks(array, 512) is None
    assert chunks.line_chunks(tmp_path / "missing.jsonl", 64) is None


def test_a_chunk_that_is_no_longer_there_fails_naming_the_file(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [{**RECORD, "id": i} for i in range(1, 50)])
    size = path.stat().st_size
    with pytest.raises(MetadataError, match="p.jsonl.*changed while it was being read"):
        chunks.parse_chunk(str(path), "p.jsonl", 0, size + 100, 16)


@pytest.mark.parametrize("shards", [4, 300])
def test_reader_processes_write_the_serial_readers_bytes(tmp_path, monkeypatch, shards):
    meta = _metadata(tmp_path)
    root = tmp_path / "mirror"
    for pid in range(1, 3001, 2):
        touch_image(root, pid, "png")
    dataset = {"source": "danbooru", "root": str(root), "metadata": [str(meta)]}
    flt = {"min_score": 2, "exclude_tags": ["comic"]}
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 16 << 10)  # ~100 records per chunk: many chunks, many batches
    serial = ingest(tmp_path / "a" / "ingest", dataset, flt, {"require_solo": False}, shards, threads=1)
    parallel = ingest(tmp_path / "b" / "ingest", dataset, flt, {"require_solo": False}, shards, threads=2)
    assert serial.chunks_by_readers == 0 and parallel.chunks_by_readers > 10
    # the job reports what its reader processes cost (the benchmark's CPU and memory figures come from here)
    assert parallel.reader_cpu > 0 and parallel.reader_peak_rss > 50 and serial.reader_cpu == 0
    assert parallel.summary()["peak_rss_mb"]["main"] > 50
    assert serial.records == parallel.records > 3000
    assert serial.counts == parallel.counts
    assert serial.counts["duplicate_id"] >= 5 and serial.counts["malformed_record"] >= 5
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == shards + 2  # every shard, unsharded.parquet, classes.tsv
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def _die(task: tuple) -> None:
    """Stands in for the chunk parser in a reader process and ends that process at once, as the out-of-memory
    killer would."""
    os._exit(9)


def test_a_reader_process_that_dies_fails_the_job_saying_what_to_do(tmp_path, monkeypatch, capsys):
    """A killed reader is a fault of the machine: the job fails (exit 1, not 2) naming the file and what to do, and
    writes no manifest (a rerun redoes it), where Python's own message says only that a process 'terminated
    abruptly'."""
    from animefaces.ingest import core
    from animefaces.ingest.cli import main

    meta = _metadata(tmp_path, 600)
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 4 << 10)
    monkeypatch.setattr(core, "_parse_chunk_task", _die)  # (pickled by name: the readers import this module)
    dataset = {"source": "danbooru", "root": str(tmp_path / "mirror"), "metadata": [str(meta)]}
    out = tmp_path / "ingest"
    with pytest.raises(chunks.ReaderDied, match=r"reader process died while .*posts\.jsonl.*--set-threads ingest=1"):
        ingest(out, dataset, {}, {}, 4, threads=2)
    assert not list(out.rglob("*.parquet")) and not list(out.rglob(".spill-*"))
    argv = ["--out", str(out), "--dataset", json.dumps(dataset), "--filter", "{}", "--classes", "{}"]
    assert main([*argv, "--shards", "4", "--threads", "2"]) == 1
    assert "a reader process died" in capsys.readouterr().err
    assert not list(out.rglob("*.parquet"))
