"""The ingest job: stream every metadata record once, decide kept/dropped per post, write the shard manifests.

Memory holds at most ``SPILL_BYTES`` of output rows (one compact Arrow table per batch, sorted by shard, no
per-row Python objects; older rows are moved to an Arrow IPC spill file under the output directory and read back
shard by shard at the end), a bitmap of the post ids seen (duplicate detection), the file index of the mirror
(8 bytes per file) and the character counts. Records arrive decoded into typed structs (``records.Post``) and are
normalised (:func:`parse_batch`), checked and written in vectorised batches of ``BATCH`` records (Arrow/numpy
column by column; Python per record only for the rare records whose values have unusual types). With ``threads``
> 1 the decoding and normalising of large plain JSON Lines files runs in reader processes (:mod:`.chunks`).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor, Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..atomic import remove_stale_temps_of
from ..manifest import DROPPED, KEPT, manifest_path, write_manifest_table
from ..parallel import ordered_map
from ..progress import Progress, track
from ..shards import N_BUCKETS, check_count, shard_names, shard_of_bucket
from . import filters as F
from .chunks import ReaderDied, line_chunks, parse_chunk, reader_pool
from .classes import CharacterNamer, ClassesConfig, top_classes, write_classes
from .folder import FolderItem, FolderProblem, image_size, iter_folder
from .mirror import MirrorIndex, image_path, image_paths
from .readers import (
    READ_ERRORS,
    DamagedMetadata,
    Malformed,
    MetadataError,
    expand_metadata,
    iter_record_batches,
    iter_sources,
)
from .records import (
    BOOL_COLUMNS,
    INT_COLUMNS,
    POSTS,
    STRING_COLUMNS,
    describe_bad_id,
    int_array,
    normalise_batch,
    raw_post,
)

log = logging.getLogger("animefaces.ingest")

STAGE = "ingest"
UNSHARDED = "unsharded"
BATCH = 16384
SPILL_BYTES = 256 << 20  # output rows held in memory before they are moved to a spill file
HELD_GROUP_SHARDS = 64  # shards put in order by one take when held rows are spilled or written
BITMAP_LIMIT = 1 << 31  # ids below this are tracked in a bitmap (<= 256 MiB); larger ones in a set
# output columns after the ledger columns (kept rows fill them; dropped rows leave them null)
STAGE_COLUMNS = ["path", "file_ext", "width", "height", "rating", "score", "md5", "character", "label", "tags"]
_PART_SCHEMA = pa.schema(
    [
        ("post_id", pa.int64()),
        ("item_id", pa.string()),
        ("parent_id", pa.string()),
        ("code", pa.int8()),
        ("details", pa.string()),
        ("path", pa.string()),
        ("file_ext", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("rating", pa.string()),
        ("score", pa.int64()),
        ("md5", pa.string()),
        ("character", pa.string()),
        ("eligible", pa.bool_()),
        ("tags", pa.string()),
    ]
)
_KEPT_ONLY = ["path", "file_ext", "width", "height", "rating", "score", "md5", "character", "tags"]
_EMPTY_DETAILS = "{}"
_POST_TYPES = set(POSTS)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


def _templated(values: list[Any], make: Callable[[Any], dict]) -> list[str]:
    """json.dumps(make(v)) per value, computed once per distinct value."""
    cache: dict[Any, str] = {}
    out = []
    for v in values:
        text = cache.get(v)
        if text is None:
            text = cache[v] = _dumps(make(v))
        out.append(text)
    return out


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), "null")


class SeenIds:
    """Post ids seen so far: a growing bitmap for ids < BITMAP_LIMIT, a set above. ``mark`` returns which ids
    of a batch were already seen (earlier batches or earlier in the same batch: the first occurrence wins)."""

    def __init__(self) -> None:
        self.bits = np.zeros(1 << 17, dtype=np.uint8)
        self.big: set[int] = set()

    def mark(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        dup = np.zeros(len(ids), dtype=bool)
        if len(ids) == 0:
            return dup
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        dup[order[1:]] = sorted_ids[1:] == sorted_ids[:-1]
        small = ids < BITMAP_LIMIT
        if small.any():
            s = ids[small]
            need = int(s.max() >> 3) + 1
            if need > len(self.bits):
                grown = np.zeros(max(need, 2 * len(self.bits)), dtype=np.uint8)
                grown[: len(self.bits)] = self.bits
                self.bits = grown
            byte = s >> 3
            bit = np.left_shift(1, s & 7).astype(np.uint8)
            dup[small] |= (self.bits[byte] & bit) != 0
            np.bitwise_or.at(self.bits, byte, bit)
        if not small.all():
            for i in np.flatnonzero(~small):
                pid = int(ids[i])
                if pid in self.big:
                    dup[i] = True
                self.big.add(pid)
        return dup


def _arrays(cols: dict[str, list], ids: list[int]) -> dict[str, pa.Array]:
    """Arrow arrays of the folder source's columns."""
    out = {"post_id": pa.array(ids, pa.int64())}
    for name in INT_COLUMNS:
        out[name] = int_array(cols[name])
    for name in BOOL_COLUMNS:
        out[name] = pa.array(cols[name], pa.bool_())
    for name in STRING_COLUMNS:
        out[name] = pa.array(cols[name], pa.string())
    return out


@dataclass
class _Folder:
    """What the folder source adds to a batch: parent ids (relative paths), paths, kept-row details."""

    parents: list[str]
    paths: list[str]
    kept_details: list[str]
    outside: list[bool]
    unsupported: list[str]  # why a file is not an image Pillow reads ("" = it is one)


@dataclass
class IngestResult:
    counts: Counter = field(default_factory=Counter)  # reason ("" = kept) -> rows
    shapes: Counter = field(default_factory=Counter)
    ratings: Counter = field(default_factory=Counter)
    records: int = 0
    classes: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)
    files_indexed: int = 0
    buckets_listed: int = 0
    direct_checks: int = 0
    spill_files: int = 0
    chunks_by_readers: int = 0  # chunks of plain JSON Lines files decoded by reader processes
    reader_cpu: float = 0.0  # CPU seconds the reader processes spent on them
    reader_peak_rss: int = 0  # MB, the largest reader process

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "kept": self.counts.get("", 0),
            "dropped": {k: v for k, v in sorted(self.counts.items()) if k},
            "shapes": dict(self.shapes),
            "ratings_seen": {str(k): v for k, v in sorted(self.ratings.items(), key=lambda kv: str(kv[0]))},
            "classes": 0 if self.classes is None else len(self.classes),
            "files_indexed": self.files_indexed,
            "buckets_listed": self.buckets_listed,
            "file_checks_by_lstat": self.direct_checks,
            "spill_files": self.spill_files,
            "chunks_by_reader_processes": self.chunks_by_readers,
            "cpu_seconds": {
                "main": round(_own_cpu(), 3),  # this process since it started (imports included)
                "reader_processes": round(self.reader_cpu, 3),
            },
            "peak_rss_mb": {"main": peak_rss_mb(), "largest_reader": self.reader_peak_rss},
            "seconds": {k: round(v, 3) for k, v in self.timings.items()},
        }


@dataclass
class ParsedBatch:
    """One batch of metadata records, normalised: what the reader hands to the deciding step (picklable, so a
    reader process can send it). ``numbers`` and the ``n`` of ``unsharded`` are record numbers as the reader
    counted them (line numbers within the chunk it read, for a chunk of a JSON Lines file)."""

    records: int
    unsharded: list[tuple[int, str, str]]  # (record number, reason, details json), in record order
    numbers: np.ndarray  # record number of each row of ``columns``
    columns: dict[str, pa.Array]  # normalised columns and ``post_id``, one row per post with a usable id
    shapes: Counter


def parse_batch(source: str, ns: list[int], values: list[Any]) -> ParsedBatch:
    """Normalise one batch of records: those without a usable post id (or not an object, or holding text that
    is not Unicode) become unsharded rows, in record order; the rest become columns for ``Ingestor._decide``."""
    unsharded: list[tuple[int, str, str]] = []
    if set(map(type, values)) <= _POST_TYPES:  # the usual batch: every record decoded as a post
        objects: list[int] | range = range(len(values))
        posts = values
    else:
        values = [raw_post(v) if type(v) is dict else v for v in values]
        objects = [i for i, v in enumerate(values) if type(v) in POSTS]
        posts = [values[i] for i in objects]
    norm = normalise_batch(posts)
    good = norm.valid()
    if len(good) != len(values):  # the rare batch with rows that go to unsharded.parquet
        bad = dict.fromkeys(range(len(values)))
        for k in good.tolist():
            del bad[objects[k]]
        where = {i: k for k, i in enumerate(objects)}
        for i in bad:
            value = values[i]
            k = where.get(i)
            if k is None:
                err = (
                    value.error
                    if isinstance(value, Malformed)
                    else f"record is a JSON {_json_type(value)}, not an object"
                )
                details = {"error": err}
            elif k in norm.unencodable:
                err = f"field {norm.unencodable[k]!r} is not valid Unicode (a lone surrogate escape)"
                details = {"error": err}
            else:
                details = {"id": describe_bad_id(posts[k].id)}
            reason = "invalid_id" if k is not None and k not in norm.unencodable else "malformed_record"
            unsharded.append((ns[i], reason, _dumps(details)))
    cols = dict(norm.columns)
    ids = norm.id
    shapes = norm.shapes
    numbers = np.asarray(ns, dtype=np.int64)
    if len(good) != len(posts):
        take = pa.array(good)
        cols = {name: col.take(take) for name, col in cols.items()}
        ids = ids.take(take)
        shapes = [shapes[k] for k in good.tolist()]
    if len(good) != len(values):
        numbers = numbers[np.asarray(objects, dtype=np.int64)[good]]
    cols["post_id"] = ids
    return ParsedBatch(len(ns), unsharded, numbers, cols, Counter(shapes))


class Ingestor:
    """Streams records in, keeps per-shard output rows, writes the manifests and the class table at the end."""

    def __init__(
        self,
        filter_cfg: F.FilterConfig,
        classes_cfg: ClassesConfig,
        shard_count: int,
        root: str,
        out_dir: str | os.PathLike[str],
        layout: str = "original",
        threads: int = 1,
    ) -> None:
        self.out_dir = os.fspath(out_dir)
        # threads > 1: that many reader processes decode large plain JSON Lines files while this one decides and
        # writes. Not threads - 1: this process waits for the readers part of the time, and on 2 cores 2 readers
        # beat 1 (5M records: BENCHMARKS.md, "Ingest at 5M"); with 1 thread, reading in-process is cheapest.
        self.readers = int(threads) if int(threads) > 1 else 0
        self.threads = max(1, int(threads))  # (and as many threads write the manifests)
        self._pool: Executor | None = None
        self.cfg = filter_cfg
        self.classes_cfg = classes_cfg
        self.count = check_count(shard_count)
        self.names = shard_names(self.count)
        self.root = root.rstrip("/") or "/"
        self.layout = layout
        self.mirror = MirrorIndex(root, layout)
        self.seen = SeenIds()
        self.namer = CharacterNamer(classes_cfg.aliases)
        self.char_counts: Counter[str] = Counter()
        # output rows held in memory: one table per batch, sorted by shard, with each shard's row bounds (a slice
        # per shard and batch would cost more in object overhead than the rows themselves with 1000 shards)
        self.held: list[tuple[pa.Table, np.ndarray]] = []
        self.parts_bytes = 0
        self.spill_dir: str | None = None  # older rows, once memory held SPILL_BYTES: <out_dir>/.spill-*/
        self.spilled: list[list[tuple[str, int]]] = [[] for _ in self.names]  # per shard: (spill file, record batch)
        self.spill_files: list[str] = []
        self._spill_readers: dict[str, pa.ipc.RecordBatchFileReader] = {}
        self.unsharded: list[tuple[str, str, str]] = []  # (item/parent id, reason, details json)
        self.result = IngestResult()
        self.progress: Progress | None = None  # records decided so far (ingest() sets it)
        self._shard_of_bucket = np.asarray([shard_of_bucket(b, self.count) for b in range(N_BUCKETS)], np.int64)

    # ------------------------------------------------------------------------------------------ reading

    def _drop_unsharded(self, locator: str, reason: str, details: dict[str, Any]) -> None:
        self.unsharded.append((locator, reason, json.dumps(details, sort_keys=True)))
        self.result.counts[reason] += 1

    def add_metadata_file(self, path: str | os.PathLike[str]) -> None:
        chunks = line_chunks(path) if self.readers else None
        if chunks:
            try:
                self._add_chunks(os.fspath(path), chunks)
            except READ_ERRORS as exc:
                raise DamagedMetadata(
                    f"metadata {os.fspath(path)!r} could not be read: {exc}; check the disk, or re-create the file"
                ) from exc
            return
        for name, stream in iter_sources(path):
            try:
                self.add_records(name, iter_record_batches(stream))
            except READ_ERRORS as exc:
                raise DamagedMetadata(
                    f"metadata {name!r} (from {os.fspath(path)!r}) is damaged or truncated: {exc}; "
                    "re-download or re-create it"
                ) from exc

    def _add_chunks(self, path: str, chunks: list[tuple[int, int]]) -> None:
        """One plain JSON Lines file, its chunks decoded by the reader processes and decided here in file order."""
        if self._pool is None:
            self._pool = reader_pool(self.readers)
        source = os.path.basename(path)
        offset = 0  # lines of the file before the chunk at hand
        tasks = ((path, source, start, end, BATCH) for start, end in chunks)
        t0 = time.perf_counter()
        results = ordered_map(_parse_chunk_task, tasks, pool=self._pool, window=2 * self.readers + 1)
        try:
            for parsed, lines, cpu, rss in results:
                self._add_time("read", time.perf_counter() - t0)  # (the wait for the readers)
                for batch in parsed:
                    self._add_parsed(source, batch, offset)
                offset += lines
                self.result.chunks_by_readers += 1
                self.result.reader_cpu += cpu
                self.result.reader_peak_rss = max(self.result.reader_peak_rss, rss)
                t0 = time.perf_counter()
        except BrokenExecutor as exc:
            raise ReaderDied(path) from exc
        self._add_time("read", time.perf_counter() - t0)

    def add_records(self, source: str, batches: Iterable[tuple[list[int], list[Any]]]) -> None:
        """Consume ``(record numbers, values)`` batches from one source (n is the record number used in the
        parent id; a value is a ``Post``/``RawPost``, a decoded JSON value or a ``Malformed``), in ``BATCH``-sized
        steps."""
        t0 = time.perf_counter()
        ns: list[int] = []
        values: list[Any] = []
        try:
            for batch_ns, batch_values in batches:
                ns += batch_ns
                values += batch_values
                while len(ns) >= BATCH:
                    self._add_time("read", time.perf_counter() - t0)
                    self._add_batch(source, ns[:BATCH], values[:BATCH])
                    t0 = time.perf_counter()
                    del ns[:BATCH], values[:BATCH]
        except (*READ_ERRORS, MetadataError):  # damaged data: keep what was read before it, then fail
            if ns:
                self._add_batch(source, ns, values)
            raise
        self._add_time("read", time.perf_counter() - t0)
        if ns:
            self._add_batch(source, ns, values)

    def _add_batch(self, source: str, ns: list[int], values: list[Any]) -> None:
        t0 = time.perf_counter()
        parsed = parse_batch(source, ns, values)
        self._add_time("read", time.perf_counter() - t0)
        self._add_parsed(source, parsed)

    def _add_parsed(self, source: str, parsed: ParsedBatch, line_offset: int = 0) -> None:
        """Take one parsed batch (``line_offset``: lines of the file before the chunk it was parsed from)."""
        self.result.records += parsed.records
        for n, reason, details in parsed.unsharded:
            self.unsharded.append((f"{source}:{n + line_offset}", reason, details))
            self.result.counts[reason] += 1
        self.result.shapes.update(parsed.shapes)
        if len(parsed.columns["post_id"]):
            numbers = parsed.numbers + line_offset if line_offset else parsed.numbers
            self._decide(source, numbers, dict(parsed.columns))

    def add_folder(self, root: str) -> None:
        """The folder source: one ledger row per file under ``root`` (see :mod:`animefaces.ingest.folder`)."""
        t0 = time.perf_counter()
        need_size = bool(self.cfg.min_width or self.cfg.min_height)
        items = []
        for item in iter_folder(root):
            if isinstance(item, FolderProblem):
                self.result.records += 1
                self.result.shapes["folder"] += 1
                self._drop_unsharded(item.locator, item.reason, item.details)
                continue
            items.append(item)
            if len(items) >= BATCH:
                self._add_time("read", time.perf_counter() - t0)
                self._folder_batch(items, need_size)
                t0 = time.perf_counter()
                items = []
        self._add_time("read", time.perf_counter() - t0)
        if items:
            self._folder_batch(items, need_size)

    def _folder_batch(self, items: list[FolderItem], need_size: bool) -> None:
        first = self.result.records + 1
        self.result.records += len(items)
        self.result.shapes["folder"] += len(items)
        sizes = [
            image_size(it.path) if need_size and not it.outside and not it.unsupported else (None, None) for it in items
        ]
        k = len(items)
        cols: dict[str, list] = {
            "file_ext": [it.file_ext for it in items],
            "width": [w for w, _ in sizes],
            "height": [h for _, h in sizes],
            "score": [None] * k,
            "rating": [None] * k,
            "md5": [""] * k,
            **{name: [False] * k for name in ("deleted", "banned", "flagged")},
            **{name: [""] * k for name in ("general", "character", "copyright", "artist", "meta")},
        }
        arrays = _arrays(cols, [it.post_id for it in items])
        arrays["unsupported"] = np.asarray([bool(it.unsupported) for it in items], dtype=bool)
        kept_details = []
        for it in items:
            note = {"id_from": "sha256 of the relative path (the file stem is not a number)"} if it.id_from_hash else {}
            if it.file_ext != it.relpath.rpartition(".")[2].lower():
                note["file_ext_from"] = "the file's content (its name has no image extension)"
            kept_details.append(_dumps(note) if note else _EMPTY_DETAILS)
        extra = _Folder(
            parents=[it.relpath for it in items],
            paths=[it.path for it in items],
            kept_details=kept_details,
            outside=[it.outside for it in items],
            unsupported=[it.unsupported for it in items],
        )
        self._decide("folder", np.arange(first, first + k, dtype=np.int64), arrays, extra)

    def _add_time(self, key: str, seconds: float) -> None:
        self.result.timings[key] = self.result.timings.get(key, 0.0) + seconds

    # --------------------------------------------------------------------------------------- deciding

    def _decide(self, source: str, n: np.ndarray, cols: dict[str, pa.Array], folder: _Folder | None = None) -> None:
        """Check one batch of posts with usable ids and store its output rows by shard."""
        t0 = time.perf_counter()
        cfg = self.cfg
        rows = len(n)
        if self.progress is not None:
            self.progress.update(rows)
        ids = np.asarray(cols["post_id"].to_numpy(zero_copy_only=False), dtype=np.int64)
        if folder is None:
            for item in pc.value_counts(cols["rating"]).to_pylist():
                self.result.ratings[item["values"]] += item["counts"]
            F.check_rating_scheme(cfg, self.result.ratings, f"metadata {source!r}")
        dup = self.seen.mark(ids)
        checks = F.apply_filters(cols, cfg, dup, metadata=folder is None)
        code = checks.code
        # missing_file: last, only for posts that passed everything else
        t1 = time.perf_counter()
        cand = np.flatnonzero(code == 0)
        if folder is not None:
            outside = np.asarray(folder.outside, dtype=bool)
            code[cand[outside[cand]]] = F.CODE["missing_file"]
        elif len(cand):
            exts = cols["file_ext"].take(pa.array(cand)).to_pylist()
            present = self.mirror.present(ids[cand], exts)
            code[cand[~present]] = F.CODE["missing_file"]
        t2 = time.perf_counter()
        kept = code == 0
        kept_idx = np.flatnonzero(kept)
        # ledger ids
        if folder is not None:
            parent = pa.array(folder.parents, pa.string())
        else:
            parent = pc.binary_join_element_wise(source, pc.cast(pa.array(n, pa.int64()), pa.string()), ":")
        item = pc.if_else(pa.array(dup), parent, pc.cast(cols["post_id"], pa.string()))
        # kept-only values: path and character
        kept_arr = pa.array(kept)
        if folder is not None:
            paths = pc.if_else(kept_arr, pa.array(folder.paths, pa.string()), pa.scalar(None, pa.string()))
        else:  # (built for the kept posts only)
            kept_paths = image_paths(self.root, ids[kept_idx], cols["file_ext"].take(pa.array(kept_idx)), self.layout)
            paths = pc.replace_with_mask(pa.nulls(rows, pa.string()), kept_arr, kept_paths)
        char_arr = pa.nulls(rows, pa.string())
        if len(kept_idx):  # the namer runs once per distinct character string of the batch
            coded = cols["character"].take(pa.array(kept_idx)).dictionary_encode()
            names = pa.array(list(map(self.namer, coded.dictionary.to_pylist())), pa.string())
            char_arr = pc.replace_with_mask(char_arr, kept_arr, names.take(coded.indices))
        eligible = np.zeros(rows, dtype=bool)
        with_char = np.flatnonzero(kept & _np_bool(pc.not_equal(char_arr, "")))
        if len(with_char):
            if self.classes_cfg.require_solo:
                solo = F.has_any_tag(cols["general"].take(pa.array(with_char)), ["solo"])
                with_char = with_char[solo]
            eligible[with_char] = True
            for counted in pc.value_counts(char_arr.take(pa.array(with_char))).to_pylist():
                self.char_counts[counted["values"]] += counted["counts"]
        details = self._details(source, n, ids, code, cols, checks, folder)
        out = {
            "post_id": cols["post_id"],
            "item_id": item,
            "parent_id": parent,
            "code": pa.array(code, pa.int8()),
            "details": details,
            "path": paths,
            "character": char_arr,
            "eligible": pa.array(eligible, pa.bool_()),
            "tags": pc.if_else(kept_arr, cols["general"], pa.scalar(None, pa.string())),
        }
        for name in ("file_ext", "width", "height", "rating", "score", "md5"):
            out[name] = pc.if_else(kept_arr, cols[name], pa.scalar(None, cols[name].type))
        table = pa.table([out[f.name] for f in _PART_SCHEMA], schema=_PART_SCHEMA)
        shard_idx = self._shard_of_bucket[ids % N_BUCKETS]
        order = np.argsort(shard_idx, kind="stable")
        table = table.take(pa.array(order))
        self.held.append((table, np.searchsorted(shard_idx[order], np.arange(self.count + 1))))
        self.parts_bytes += table.nbytes
        if self.parts_bytes > SPILL_BYTES:
            self._spill()
        counts = self.result.counts
        for c, k in zip(*np.unique(code, return_counts=True), strict=True):
            counts[F.REASONS[int(c)]] += int(k)
        t3 = time.perf_counter()
        self._add_time("filter", (t1 - t0) + (t3 - t2))
        self._add_time("file_check", t2 - t1)

    def _details(self, source, n, ids, code, cols, checks: F.Checks, folder: _Folder | None) -> pa.Array:
        """Ledger details per row (JSON, sorted keys): '{}' for kept rows (or the folder's id note), the value
        that failed (and the limit) for dropped rows. Built per reason with templates: json.dumps per row would
        cost more than the whole check; the texts are put in place by one Arrow ``take``."""
        if folder is not None:
            details = pa.array(folder.kept_details, pa.string())
        else:
            details = pa.repeat(pa.scalar(_EMPTY_DETAILS, pa.string()), len(code))
        cfg = self.cfg
        rows: list[np.ndarray] = []  # per reason: its rows, and their texts
        texts_of: list[pa.Array] = []
        for c in np.unique(code):
            reason = F.REASONS[int(c)]
            if not reason:
                continue
            idx = np.flatnonzero(code == c)
            take = pa.array(idx)
            texts: list[str] | pa.Array
            if reason in ("deleted", "banned", "flagged", "not_in_id_list"):
                texts = [_EMPTY_DETAILS] * len(idx)
            elif reason == "missing_any_tag":
                texts = [_dumps({"any_of": list(cfg.any_tags)})] * len(idx)
            elif reason == "excluded_tag":
                names = [_dumps({"tag": t}) for t in cfg.exclude_tags]
                texts = [names[k] for k in checks.excluded[idx].tolist()]
            elif reason == "missing_required_tag":
                names = [_dumps({"tag": t}) for t in cfg.require_tags]
                texts = [names[k] for k in checks.missing[idx].tolist()]
            elif reason == "duplicate_id":
                texts = [f'{{"id": {pid}, "rule": "the first record with an id wins"}}' for pid in ids[idx].tolist()]
            elif reason in ("invalid_file_ext", "extension_not_allowed"):
                texts = _templated(cols["file_ext"].take(take).to_pylist(), lambda v: {"file_ext": v})
            elif reason == "rating":
                texts = _templated(
                    cols["rating"].take(take).to_pylist(), lambda v: {"rating": v, "scheme": cfg.rating_scheme}
                )
            elif reason == "low_score":
                head = f'{{"min_score": {cfg.min_score}, "score": '
                texts = [f"{head}{s}}}" for s in cols["score"].take(take).to_pylist()]
            elif reason == "image_too_small":
                ws = cols["width"].take(take).to_pylist()
                hs = cols["height"].take(take).to_pylist()
                texts = [
                    _dumps({"width": w, "height": h, "min_width": cfg.min_width, "min_height": cfg.min_height})
                    for w, h in zip(ws, hs, strict=True)
                ]
            elif reason == "unsupported_format":
                if folder is not None:
                    texts = [_dumps({"path": folder.parents[i], "why": folder.unsupported[i]}) for i in idx.tolist()]
                else:
                    texts = _templated(
                        cols["file_ext"].take(take).to_pylist(),
                        lambda v: {"file_ext": v, "why": "Pillow (as installed) has no decoder for this format"},
                    )
            elif reason == "missing_file":
                if folder is not None:
                    texts = [
                        _dumps({"path": folder.paths[i], "why": "symlink resolving outside dataset.root"})
                        for i in idx.tolist()
                    ]
                else:
                    texts = self._missing_details(ids[idx], cols["file_ext"].take(take))
            else:  # pragma: no cover - every reason above is handled
                raise AssertionError(reason)
            values = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.string())
            rows.append(idx)
            texts_of.append(values.cast(pa.string()))
        if not rows:
            return details
        # one take from [the defaults, every reason's texts] puts them all in place (a replace per reason copied
        # the whole column each time)
        where = np.arange(len(code), dtype=np.int64)
        where[np.concatenate(rows)] = len(code) + np.arange(sum(map(len, rows)), dtype=np.int64)
        return pa.concat_arrays([details.cast(pa.string()), *texts_of]).take(pa.array(where))

    def _missing_details(self, ids: np.ndarray, exts: pa.Array) -> pa.Array:
        """``{"path": <where the image should be>}`` per post, built in Arrow: only the root can need JSON
        escaping (the rest is digits, '/', '.' and an extension that passed ``^[a-z0-9]{1,5}$``), so it is
        escaped once."""
        inner = json.dumps(self.root)[1:-1]  # the root as it appears inside a JSON string
        paths = image_paths(inner, ids, exts, self.layout)
        joined = pc.binary_join_element_wise('{"path": "', paths, '"}', "")
        if not self.mirror.rejected:
            return joined
        texts = joined.to_pylist()
        for k, (pid, ext) in enumerate(zip(ids.tolist(), exts.to_pylist(), strict=True)):
            why = self.mirror.rejected.get((pid, ext))
            if why:
                texts[k] = _dumps({"path": image_path(self.root, pid, ext, self.layout), "why": why})
        return pa.array(texts, pa.string())

    # ---------------------------------------------------------------------------------------- writing

    def _spill(self) -> None:
        """Move the rows held in memory to one Arrow IPC file under ``out_dir`` (a record batch per shard: written
        and read back at about the speed of a copy), so memory stays bounded whatever the metadata size;
        ``finish`` reads them back shard by shard."""
        t0 = time.perf_counter()
        if self.spill_dir is None:
            os.makedirs(self.out_dir, exist_ok=True)
            self.spill_dir = tempfile.mkdtemp(prefix=".spill-", dir=self.out_dir)
        path = os.path.join(self.spill_dir, f"{len(self.spill_files):05d}.arrow")
        group = 0
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, _PART_SCHEMA) as writer:
            for s, rows in self._held_by_shard():
                for batch in rows.to_batches():
                    writer.write_batch(batch)
                    self.spilled[s].append((path, group))
                    group += 1
        self.spill_files.append(path)
        self.held = []
        self.parts_bytes = 0
        self._add_time("spill", time.perf_counter() - t0)

    def _held_by_shard(self) -> Iterator[tuple[int, pa.Table]]:
        """``(shard, its rows among those held in memory, in arrival order)`` for every shard that has some, in
        shard order. Per group of ``HELD_GROUP_SHARDS`` shards, one slice of each held batch, one copy and one
        ``take`` put the rows in shard order (memory: a group's copies at a time; a ``take`` over all the held
        batches at once copied them all). Slicing every batch per shard instead was ~100k slices and 1000
        concatenations per spill at 1000 shards."""
        for g0 in range(0, self.count, HELD_GROUP_SHARDS):
            g1 = min(g0 + HELD_GROUP_SHARDS, self.count)
            pieces, shard_of_row = [], []
            for table, bounds in self.held:
                lo, hi = int(bounds[g0]), int(bounds[g1])
                if hi > lo:
                    pieces.append(table.slice(lo, hi - lo))
                    shard_of_row.append(np.repeat(np.arange(g0, g1, dtype=np.int32), np.diff(bounds[g0 : g1 + 1])))
            if not pieces:
                continue
            shard_ids = np.concatenate(shard_of_row)
            order = np.argsort(shard_ids, kind="stable")  # stable: arrival order within a shard
            rows = pa.concat_tables(pieces).combine_chunks().take(pa.array(order))
            starts = np.searchsorted(shard_ids[order], np.arange(g0, g1 + 1))
            for s in range(g0, g1):
                a, b = int(starts[s - g0]), int(starts[s - g0 + 1])
                if b > a:
                    yield s, rows.slice(a, b - a)

    def _shard_rows(self, s: int, held: pa.Table | None) -> pa.Table:
        """All output rows of shard ``s`` in arrival order: spilled batches first, then ``held`` (its rows still in
        memory)."""
        tables = []
        for path, group in self.spilled[s]:  # (in spill order, so rows stay in arrival order)
            if path not in self._spill_readers:  # opened once: its footer lists every shard's batch
                self._spill_readers[path] = pa.ipc.open_file(pa.OSFile(path))  # (read, not mapped: RSS stays low)
            tables.append(pa.Table.from_batches([self._spill_readers[path].get_batch(group)]))
        if held is not None:
            tables.append(held)
        return pa.concat_tables(tables) if tables else _PART_SCHEMA.empty_table()

    def _all_shard_rows(self) -> Iterator[tuple[int, pa.Table]]:
        """``(shard, all its output rows)`` for every shard, in shard order."""
        held = self._held_by_shard()
        pending = next(held, None)
        for s in range(self.count):
            rows = None
            if pending is not None and pending[0] == s:
                rows = pending[1]
                pending = next(held, None)
            yield s, self._shard_rows(s, rows)

    def close(self) -> None:
        """Stop the reader processes and remove the spill files (also after a failure)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._spill_readers = {}  # (their files close when the readers go)
        if self.spill_dir is not None:
            shutil.rmtree(self.spill_dir, ignore_errors=True)
            self.spill_dir = None

    def finish(self) -> IngestResult:
        """Write ``classes.tsv``, then every shard manifest (empty ones too) and ``unsharded.parquet``."""
        t0 = time.perf_counter()
        out_dir = self.out_dir
        results = os.path.dirname(out_dir.rstrip("/")) or "."
        table = top_classes(self.char_counts, self.classes_cfg)
        self.result.classes = table
        write_classes(table, os.path.join(out_dir, "classes.tsv"))
        class_names = pa.array(table["name"].tolist(), pa.string())
        targets = [_manifest_file(results, out_dir, name) for name in [*self.names, UNSHARDED]]
        remove_stale_temps_of(targets)  # (one listing of the folder, not one per manifest)

        def write(item: tuple[int, pa.Table]) -> None:
            s, rows = item
            write_manifest_table(_to_manifest(rows, self.names[s], class_names), targets[s], clean_stale=False)

        # rows read here in shard order; manifests built and written on `threads` threads (Arrow's kernels and the
        # Parquet writer release the GIL)
        for _ in ordered_map(write, self._all_shard_rows(), workers=self.threads, thread_name_prefix="manifest"):
            pass
        table = _unsharded_table(self.unsharded)
        write_manifest_table(table, targets[-1], clean_stale=False)
        self.held = []
        self.close()
        self.result.files_indexed = self.mirror.files_indexed
        self.result.buckets_listed = len(self.mirror.listed)
        self.result.direct_checks = self.mirror.direct_checks
        self.result.spill_files = len(self.spill_files)
        self.result.timings["file_index"] = self.mirror.seconds
        self.result.timings["write"] = time.perf_counter() - t0
        return self.result


def peak_rss_mb() -> int:
    """This process's peak resident memory: ``VmHWM`` where Linux gives it (``ru_maxrss`` survives ``exec``, so
    a job started from a big parent would report the parent's size), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux, bytes on macOS
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10))


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _parse_chunk_task(task: tuple[str, str, int, int, int]) -> tuple[list[ParsedBatch], int, float, int]:
    return parse_chunk(*task)


def _manifest_file(results: str, out_dir: str, shard: str) -> str:
    # RES/ingest/manifests/<shard>.parquet, i.e. manifest_path(RES, "ingest", shard), relative to out_dir
    path = manifest_path(results, STAGE, shard)
    return os.path.join(out_dir, "manifests", path.name)


def _np_bool(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _to_manifest(part: pa.Table, shard: str, class_names: pa.Array) -> pa.Table:
    """Arrow part table -> manifest table: ledger columns first."""
    n = part.num_rows
    code = part.column("code").combine_chunks() if n else pa.array([], pa.int8())
    reasons = pc.take(pa.array(F.REASONS, pa.string()), pc.cast(code, pa.int32()))
    kept = pc.equal(code, pa.scalar(0, pa.int8()))
    status = pc.if_else(kept, pa.scalar(KEPT), pa.scalar(DROPPED))
    character = part.column("character")
    label_idx = pc.index_in(character, value_set=class_names)  # 0-based or null
    label = pc.if_else(
        pc.and_(part.column("eligible").fill_null(False), pc.is_valid(label_idx)),
        pc.add(pc.cast(label_idx, pa.int64()), 1),
        pa.scalar(0, pa.int64()),
    )
    label = pc.if_else(kept, label, pa.scalar(None, pa.int64()))
    columns = {
        "post_id": part.column("post_id"),
        "item_id": part.column("item_id"),
        "parent_id": part.column("parent_id"),
        "stage": pa.repeat(pa.scalar(STAGE, pa.string()), n),
        "shard": pa.repeat(pa.scalar(shard, pa.string()), n),
        "status": status,
        "reason": reasons,
        "details": part.column("details"),
    }
    for name in STAGE_COLUMNS:
        columns[name] = label if name == "label" else part.column(name)
    # one chunk per column: how the rows arrived (batches, reader chunks) must not change the Parquet bytes
    return pa.table(columns).combine_chunks()


def _unsharded_table(rows: list[tuple[str, str, str]]) -> pa.Table:
    n = len(rows)
    part = pa.table(
        {
            "post_id": pa.nulls(n, pa.int64()),
            "item_id": pa.array([r[0] for r in rows], pa.string()),
            "parent_id": pa.array([r[0] for r in rows], pa.string()),
            "code": pa.array([F.CODE[r[1]] for r in rows], pa.int8()),
            "details": pa.array([r[2] for r in rows], pa.string()),
            **{name: pa.nulls(n, _PART_SCHEMA.field(name).type) for name in _KEPT_ONLY},
            "eligible": pa.nulls(n, pa.bool_()),
        },
        schema=_PART_SCHEMA,
    )
    return _to_manifest(part, UNSHARDED, pa.array([], pa.string()))


def ingest(
    out_dir: str | os.PathLike[str],
    dataset: dict[str, Any],
    filter_section: dict[str, Any],
    classes_section: dict[str, Any],
    shard_count: int,
    threads: int = 1,
) -> IngestResult:
    """Run the whole ingest: read the source named by ``dataset`` and write ``out_dir``'s manifests and classes.
    ``threads`` > 1: large plain JSON Lines files are decoded by ``threads`` reader processes while this one
    decides and writes (the output is the same)."""
    cfg = F.load_filter(filter_section)
    classes_cfg = ClassesConfig.from_section(classes_section)
    source = dataset.get("source", "danbooru")
    root = dataset.get("root") or "."
    ing = Ingestor(cfg, classes_cfg, shard_count, root, out_dir, dataset.get("layout") or "original", threads)
    ing.progress = Progress("ingest", None, "records")
    try:
        try:
            _read_source(ing, source, root, dataset, filter_section)
        except DamagedMetadata as exc:
            raise DamagedMetadata(f"{exc}. {_save_partial(ing)}") from exc
        return ing.finish()
    finally:
        ing.progress.close()
        ing.close()


def _save_partial(ing: Ingestor) -> str:
    """After damaged metadata: write the ledger of the records read before the damage to ``OUT/damaged/`` (not
    an output of the job, which fails) and say so."""
    records = ing.result.records
    where = os.path.join(ing.out_dir, "damaged")
    ing.out_dir = where
    result = ing.finish()
    kept = result.counts.get("", 0)
    return (
        f"{records} records were read before the damage ({kept} would be kept); their ledger rows are in "
        f"{where}/manifests/ for inspection. Ingest stopped: nothing downstream runs on a partial metadata set"
    )


def _read_source(ing: Ingestor, source: str, root: str, dataset: dict, filter_section: dict) -> None:
    if source == "folder":
        ignored = [k for k in F.METADATA_KEYS if filter_section.get(k) not in (None, [], ())]
        if ignored:
            log.warning("dataset.source is folder: filter keys %s need Danbooru metadata and are ignored", ignored)
        ing.add_folder(root)
    else:
        files = expand_metadata([os.fspath(p) for p in dataset.get("metadata") or []])
        if not files:
            raise MetadataError("dataset.metadata lists no metadata files (required for dataset.source: danbooru)")
        check_unique_sources(files)
        for path in track(files, "ingest metadata", unit="files"):
            log.info("reading %s", path)
            ing.add_metadata_file(path)


def check_unique_sources(files: list[str]) -> None:
    """Parent ids are ``<file name>:<n>``, so two metadata files must not share a name."""
    seen: dict[str, str] = {}
    for path in files:
        name = os.path.basename(path)
        if name in seen:
            raise MetadataError(
                f"dataset.metadata: {seen[name]!r} and {path!r} have the same file name {name!r}; ledger parent ids "
                "are '<file name>:<record>', so rename one (or list each file once)"
            )
        seen[name] = path
