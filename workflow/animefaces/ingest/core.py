"""The ingest job: stream every metadata record once, decide kept/dropped per post, write the shard manifests.

Memory holds at most ``SPILL_BYTES`` of output rows (compact Arrow tables per shard, no per-row Python objects;
older rows are moved to a spill file under the output directory and read back shard by shard at the end), a
bitmap of the post ids seen (duplicate detection), the file index of the mirror (8 bytes per file) and the
character counts. Records are normalised in a tight Python loop into column lists and checked in vectorised
batches of ``BATCH`` records.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..manifest import DROPPED, KEPT, manifest_path, write_manifest
from ..shards import N_BUCKETS, check_count, shard_names
from . import filters as F
from .classes import CharacterNamer, ClassesConfig, top_classes, write_classes
from .folder import image_size, iter_folder
from .mirror import MirrorIndex, image_path
from .readers import READ_ERRORS, Malformed, MetadataError, iter_records, iter_sources
from .records import MAX_ID, TAG_WS, describe_bad_id, nested_tags, record_tags, to_bool, to_int

log = logging.getLogger("animefaces.ingest")

STAGE = "ingest"
UNSHARDED = "unsharded"
BATCH = 16384
SPILL_BYTES = 256 << 20  # output rows held in memory before they are moved to a spill file
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


@dataclass
class _Batch:
    """Column lists of one batch of records with usable ids, from one source (the Python path)."""

    source: str
    n: list[int] = field(default_factory=list)
    post_id: list[int] = field(default_factory=list)
    file_ext: list[Any] = field(default_factory=list)
    width: list[Any] = field(default_factory=list)
    height: list[Any] = field(default_factory=list)
    score: list[Any] = field(default_factory=list)
    rating: list[Any] = field(default_factory=list)
    md5: list[Any] = field(default_factory=list)
    deleted: list[bool] = field(default_factory=list)
    banned: list[bool] = field(default_factory=list)
    flagged: list[bool] = field(default_factory=list)
    general: list[str] = field(default_factory=list)
    character: list[str] = field(default_factory=list)
    copyright: list[str] = field(default_factory=list)
    artist: list[str] = field(default_factory=list)
    meta: list[str] = field(default_factory=list)

    def appenders(self) -> tuple:
        """The ``append`` methods of the 16 column lists, in field order (bound once per batch by the hot loop)."""
        return (
            self.n.append,
            self.post_id.append,
            self.file_ext.append,
            self.width.append,
            self.height.append,
            self.score.append,
            self.rating.append,
            self.md5.append,
            self.deleted.append,
            self.banned.append,
            self.flagged.append,
            self.general.append,
            self.character.append,
            self.copyright.append,
            self.artist.append,
            self.meta.append,
        )

    def arrays(self) -> dict[str, pa.Array]:
        return {
            "post_id": pa.array(self.post_id, pa.int64()),
            "file_ext": pa.array(self.file_ext, pa.string()),
            "width": _int_array(self.width),
            "height": _int_array(self.height),
            "score": _int_array(self.score),
            "rating": pa.array(self.rating, pa.string()),
            "md5": pa.array(self.md5, pa.string()),
            "deleted": pa.array(self.deleted, pa.bool_()),
            "banned": pa.array(self.banned, pa.bool_()),
            "flagged": pa.array(self.flagged, pa.bool_()),
            "general": pa.array(self.general, pa.string()),
            "character": pa.array(self.character, pa.string()),
            "copyright": pa.array(self.copyright, pa.string()),
            "artist": pa.array(self.artist, pa.string()),
            "meta": pa.array(self.meta, pa.string()),
        }


@dataclass
class _Folder:
    """What the folder source adds to a batch: parent ids (relative paths), paths, kept-row details."""

    parents: list[str]
    paths: list[str]
    kept_details: list[str]
    outside: list[bool]


def _int_array(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values, pa.int64())
    except (OverflowError, pa.ArrowInvalid):  # a number beyond Int64 counts as unknown
        return pa.array([v if v is None or -(1 << 63) <= v < (1 << 63) else None for v in values], pa.int64())


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
            "seconds": {k: round(v, 3) for k, v in self.timings.items()},
        }


class Ingestor:
    """Streams records in, keeps per-shard output rows, writes the manifests and the class table at the end."""

    def __init__(
        self,
        filter_cfg: F.FilterConfig,
        classes_cfg: ClassesConfig,
        shard_count: int,
        root: str,
        out_dir: str | os.PathLike[str],
    ) -> None:
        self.out_dir = os.fspath(out_dir)
        self.cfg = filter_cfg
        self.classes_cfg = classes_cfg
        self.count = check_count(shard_count)
        self.names = shard_names(self.count)
        self.root = root.rstrip("/") or "/"
        self.mirror = MirrorIndex(root)
        self.seen = SeenIds()
        self.namer = CharacterNamer(classes_cfg.aliases)
        self.char_counts: Counter[str] = Counter()
        self.parts: list[list[pa.Table]] = [[] for _ in self.names]  # output rows held in memory, per shard
        self.parts_bytes = 0
        self.spill_dir: str | None = None  # older rows, once memory held SPILL_BYTES: <out_dir>/.spill-*/
        self.spilled: list[list[tuple[str, int]]] = [[] for _ in self.names]  # per shard: (file, row group)
        self.spill_files: list[str] = []
        self.unsharded: list[tuple[str, str, str]] = []  # (item/parent id, reason, details json)
        self.result = IngestResult()
        self._shard_of_bucket = (np.arange(N_BUCKETS, dtype=np.int64) * self.count) // N_BUCKETS

    # ------------------------------------------------------------------------------------------ reading

    def _drop_unsharded(self, locator: str, reason: str, details: dict[str, Any]) -> None:
        self.unsharded.append((locator, reason, json.dumps(details, sort_keys=True)))
        self.result.counts[reason] += 1

    def add_metadata_file(self, path: str | os.PathLike[str]) -> None:
        for name, stream in iter_sources(path):
            try:
                self.add_records(name, iter_records(stream))
            except READ_ERRORS as exc:
                raise MetadataError(
                    f"metadata {name!r} (from {os.fspath(path)!r}) is damaged or truncated: {exc}; "
                    "re-download or re-create it"
                ) from exc

    def add_records(self, source: str, items) -> None:
        """Consume ``(n, record)`` pairs from one source (n is the record number used in the parent id).

        The hot loop of ingest: one pass per record appending the normalised fields to column lists (locals,
        not attributes: this loop runs millions of times); see ``records.normalise`` for the readable version
        (the tests check that both agree)."""
        t0 = time.perf_counter()
        shapes = self.result.shapes
        nested = flat = records = 0
        ws = TAG_WS
        b = _Batch(source)
        (a_n, a_id, a_ext, a_w, a_h, a_score, a_rating, a_md5, a_del, a_ban, a_flag, a_g, a_c, a_co, a_a, a_m) = (
            b.appenders()
        )
        for n, obj in items:
            records += 1
            if type(obj) is not dict:
                err = obj.error if isinstance(obj, Malformed) else f"record is a JSON {_json_type(obj)}, not an object"
                self._drop_unsharded(f"{source}:{n}", "malformed_record", {"error": err})
                continue
            get = obj.get
            pid = get("id")
            if type(pid) is not int:
                pid = to_int(pid)
            if pid is None or pid < 1 or pid > MAX_ID:
                self._drop_unsharded(f"{source}:{n}", "invalid_id", {"id": describe_bad_id(get("id"))})
                continue
            a_n(n)
            a_id(pid)
            v = get("file_ext")
            a_ext(v if type(v) is str else None)
            v = get("image_width")
            a_w(v if type(v) is int else to_int(v))
            v = get("image_height")
            a_h(v if type(v) is int else to_int(v))
            v = get("score")
            a_score(v if type(v) is int else to_int(v))
            v = get("rating")
            a_rating(v if type(v) is str else None)
            v = get("md5")
            a_md5(v if type(v) is str else "")
            v = get("is_deleted")
            a_del(v is True or (v is not False and v is not None and to_bool(v)))
            v = get("is_banned")
            a_ban(v is True or (v is not False and v is not None and to_bool(v)))
            v = get("is_flagged")
            a_flag(v is True or (v is not False and v is not None and to_bool(v)))
            tags = get("tags")
            v = get("tag_string_general")
            if type(tags) is list:
                nested += 1
                g = nested_tags(tags)
                a_g(" ".join(g["general"]))
                a_c(" ".join(g["character"]))
                a_co(" ".join(g["copyright"]))
                a_a(" ".join(g["artist"]))
                a_m(" ".join(g["meta"]))
            elif type(v) is str:
                flat += 1
                a_g(v.strip(ws))
                v = get("tag_string_character")
                a_c(v.strip(ws) if type(v) is str else "")
                v = get("tag_string_copyright")
                a_co(v.strip(ws) if type(v) is str else "")
                v = get("tag_string_artist")
                a_a(v.strip(ws) if type(v) is str else "")
                v = get("tag_string_meta")
                a_m(v.strip(ws) if type(v) is str else "")
            else:
                shape, t = record_tags(obj)
                shapes[shape] += 1
                a_g(t["general"])
                a_c(t["character"])
                a_co(t["copyright"])
                a_a(t["artist"])
                a_m(t["meta"])
            if len(b.n) >= BATCH:
                self._add_time("read", time.perf_counter() - t0)
                self._decide(source, np.asarray(b.n, dtype=np.int64), b.arrays())
                t0 = time.perf_counter()
                b = _Batch(source)
                (
                    a_n,
                    a_id,
                    a_ext,
                    a_w,
                    a_h,
                    a_score,
                    a_rating,
                    a_md5,
                    a_del,
                    a_ban,
                    a_flag,
                    a_g,
                    a_c,
                    a_co,
                    a_a,
                    a_m,
                ) = b.appenders()
        shapes["nested"] += nested
        shapes["flat"] += flat
        self.result.records += records
        self._add_time("read", time.perf_counter() - t0)
        if b.n:
            self._decide(source, np.asarray(b.n, dtype=np.int64), b.arrays())

    def add_folder(self, root: str) -> None:
        """The folder source: one post per image file under ``root`` (see :mod:`animefaces.ingest.folder`)."""
        t0 = time.perf_counter()
        need_size = bool(self.cfg.min_width or self.cfg.min_height)
        items = []
        for item in iter_folder(root):
            items.append(item)
            if len(items) >= BATCH:
                self._add_time("read", time.perf_counter() - t0)
                self._folder_batch(items, need_size)
                t0 = time.perf_counter()
                items = []
        self._add_time("read", time.perf_counter() - t0)
        if items:
            self._folder_batch(items, need_size)

    def _folder_batch(self, items: list, need_size: bool) -> None:
        first = self.result.records + 1
        self.result.records += len(items)
        self.result.shapes["folder"] += len(items)
        b = _Batch("folder")
        sizes = [image_size(it.path) if need_size and not it.outside else (None, None) for it in items]
        b.post_id = [it.post_id for it in items]
        b.file_ext = [it.file_ext for it in items]
        b.width = [w for w, _ in sizes]
        b.height = [h for _, h in sizes]
        k = len(items)
        b.score, b.rating, b.md5 = [None] * k, [None] * k, [""] * k
        b.deleted = b.banned = b.flagged = [False] * k
        b.general = b.character = b.copyright = b.artist = b.meta = [""] * k
        note = json.dumps({"id_from": "sha256 of the relative path (the file stem is not a number)"})
        extra = _Folder(
            parents=[it.relpath for it in items],
            paths=[it.path for it in items],
            kept_details=[note if it.id_from_hash else _EMPTY_DETAILS for it in items],
            outside=[it.outside for it in items],
        )
        self._decide("folder", np.arange(first, first + k, dtype=np.int64), b.arrays(), extra)

    def _add_time(self, key: str, seconds: float) -> None:
        self.result.timings[key] = self.result.timings.get(key, 0.0) + seconds

    # --------------------------------------------------------------------------------------- deciding

    def _decide(self, source: str, n: np.ndarray, cols: dict[str, pa.Array], folder: _Folder | None = None) -> None:
        """Check one batch of posts with usable ids and store its output rows by shard."""
        t0 = time.perf_counter()
        cfg = self.cfg
        rows = len(n)
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
        paths: list[str | None] = [None] * rows
        characters: list[str | None] = [None] * rows
        if len(kept_idx):
            take = pa.array(kept_idx)
            if folder is not None:
                for i in kept_idx:
                    paths[i] = folder.paths[i]
            else:
                root = self.root
                exts = cols["file_ext"].take(take).to_pylist()
                for i, pid, ext in zip(kept_idx.tolist(), ids[kept_idx].tolist(), exts, strict=True):
                    paths[i] = image_path(root, pid, ext)
            namer = self.namer
            for i, tags in zip(kept_idx.tolist(), cols["character"].take(take).to_pylist(), strict=True):
                characters[i] = namer(tags)
        char_arr = pa.array(characters, pa.string())
        eligible = np.zeros(rows, dtype=bool)
        with_char = np.flatnonzero(kept & _np_bool(pc.not_equal(char_arr, "")))
        if len(with_char):
            if self.classes_cfg.require_solo:
                solo = F.has_any_tag(cols["general"].take(pa.array(with_char)), ["solo"])
                with_char = with_char[solo]
            eligible[with_char] = True
            self.char_counts.update(characters[i] for i in with_char.tolist())
        details = self._details(source, n, ids, code, cols, checks, folder)
        kept_arr = pa.array(kept)
        out = {
            "post_id": cols["post_id"],
            "item_id": item,
            "parent_id": parent,
            "code": pa.array(code, pa.int8()),
            "details": pa.array(details, pa.string()),
            "path": pa.array(paths, pa.string()),
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
        bounds = np.searchsorted(shard_idx[order], np.arange(self.count + 1))
        for s in range(self.count):
            lo, hi = int(bounds[s]), int(bounds[s + 1])
            if hi > lo:
                self.parts[s].append(table.slice(lo, hi - lo))
        self.parts_bytes += table.nbytes
        if self.parts_bytes > SPILL_BYTES:
            self._spill()
        counts = self.result.counts
        for c, k in zip(*np.unique(code, return_counts=True), strict=True):
            counts[F.REASONS[int(c)]] += int(k)
        t3 = time.perf_counter()
        self._add_time("filter", (t1 - t0) + (t3 - t2))
        self._add_time("file_check", t2 - t1)

    def _details(self, source, n, ids, code, cols, checks: F.Checks, folder: _Folder | None) -> list[str]:
        """Ledger details per row (JSON, sorted keys): '{}' for kept rows (or the folder's id note), the value
        that failed (and the limit) for dropped rows. Built per reason with templates: json.dumps per row would
        cost more than the whole check."""
        details = list(folder.kept_details) if folder is not None else [_EMPTY_DETAILS] * len(code)
        cfg = self.cfg
        for c in np.unique(code):
            reason = F.REASONS[int(c)]
            if not reason:
                continue
            idx = np.flatnonzero(code == c)
            take = pa.array(idx)
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
            elif reason == "missing_file":
                if folder is not None:
                    texts = [
                        _dumps({"path": folder.paths[i], "why": "symlink resolving outside dataset.root"})
                        for i in idx.tolist()
                    ]
                else:
                    texts = self._missing_details(ids[idx].tolist(), cols["file_ext"].take(take).to_pylist())
            else:  # pragma: no cover - every reason above is handled
                raise AssertionError(reason)
            for i, text in zip(idx.tolist(), texts, strict=True):
                details[i] = text
        return details

    def _missing_details(self, ids: list[int], exts: list[str]) -> list[str]:
        texts = [
            '{"path": ' + json.dumps(image_path(self.root, pid, ext)) + "}" for pid, ext in zip(ids, exts, strict=True)
        ]
        if self.mirror.rejected:
            for k, (pid, ext) in enumerate(zip(ids, exts, strict=True)):
                why = self.mirror.rejected.get((pid, ext))
                if why:
                    texts[k] = _dumps({"path": image_path(self.root, pid, ext), "why": why})
        return texts

    # ---------------------------------------------------------------------------------------- writing

    def _spill(self) -> None:
        """Move the rows held in memory to one Parquet file under ``out_dir`` (one row group per shard), so
        memory stays bounded whatever the metadata size; ``finish`` reads them back shard by shard."""
        t0 = time.perf_counter()
        if self.spill_dir is None:
            os.makedirs(self.out_dir, exist_ok=True)
            self.spill_dir = tempfile.mkdtemp(prefix=".spill-", dir=self.out_dir)
        path = os.path.join(self.spill_dir, f"{len(self.spill_files):05d}.parquet")
        group = 0
        with pq.ParquetWriter(path, _PART_SCHEMA, compression="none") as writer:
            for s, parts in enumerate(self.parts):
                if not parts:
                    continue
                table = pa.concat_tables(parts)
                writer.write_table(table, row_group_size=max(table.num_rows, 1))
                self.spilled[s].append((path, group))
                group += 1
                self.parts[s] = []
        self.spill_files.append(path)
        self.parts_bytes = 0
        self._add_time("spill", time.perf_counter() - t0)

    def _shard_rows(self, s: int) -> pa.Table:
        """All output rows of shard ``s`` in arrival order: spilled row groups first, then those in memory."""
        tables = []
        by_file: dict[str, list[int]] = {}
        for path, group in self.spilled[s]:
            by_file.setdefault(path, []).append(group)
        for path in self.spill_files:  # files in spill order, so rows stay in arrival order
            if path in by_file:
                tables.append(pq.ParquetFile(path).read_row_groups(by_file[path]))
        tables.extend(self.parts[s])
        self.parts[s] = []
        return pa.concat_tables(tables) if tables else _PART_SCHEMA.empty_table()

    def close(self) -> None:
        """Remove the spill files (also after a failure)."""
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
        for s, name in enumerate(self.names):
            frame = _to_manifest(self._shard_rows(s), name, class_names)
            write_manifest(frame, _manifest_file(results, out_dir, name))
            del frame
        frame = _unsharded_frame(self.unsharded)
        write_manifest(frame, _manifest_file(results, out_dir, UNSHARDED))
        self.close()
        self.result.files_indexed = self.mirror.files_indexed
        self.result.buckets_listed = len(self.mirror.listed)
        self.result.direct_checks = self.mirror.direct_checks
        self.result.spill_files = len(self.spill_files)
        self.result.timings["file_index"] = self.mirror.seconds
        self.result.timings["write"] = time.perf_counter() - t0
        return self.result


def _manifest_file(results: str, out_dir: str, shard: str) -> str:
    # RES/ingest/manifests/<shard>.parquet, i.e. manifest_path(RES, "ingest", shard), relative to out_dir
    path = manifest_path(results, STAGE, shard)
    return os.path.join(out_dir, "manifests", path.name)


def _np_bool(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


_PANDAS_TYPES = {pa.string(): pd.StringDtype(), pa.int64(): pd.Int64Dtype()}


def _to_manifest(part: pa.Table, shard: str, class_names: pa.Array) -> pd.DataFrame:
    """Arrow part table -> manifest frame: ledger columns first (typed as ``animefaces.manifest`` does)."""
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
        "stage": pa.array([STAGE] * n, pa.string()),
        "shard": pa.array([shard] * n, pa.string()),
        "status": status,
        "reason": reasons,
        "details": part.column("details"),
    }
    for name in STAGE_COLUMNS:
        columns[name] = label if name == "label" else part.column(name)
    table = pa.table(columns)
    return table.to_pandas(types_mapper=_PANDAS_TYPES.get)


def _unsharded_frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
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
) -> IngestResult:
    """Run the whole ingest: read the source named by ``dataset`` and write ``out_dir``'s manifests and classes."""
    cfg = F.load_filter(filter_section)
    classes_cfg = ClassesConfig.from_section(classes_section)
    source = dataset.get("source", "danbooru")
    root = dataset.get("root") or "."
    ing = Ingestor(cfg, classes_cfg, shard_count, root, out_dir)
    try:
        _read_source(ing, source, root, dataset, filter_section)
        return ing.finish()
    finally:
        ing.close()


def _read_source(ing: Ingestor, source: str, root: str, dataset: dict, filter_section: dict) -> None:
    if source == "folder":
        ignored = [k for k in F.METADATA_KEYS if filter_section.get(k) not in (None, [], ())]
        if ignored:
            log.warning("dataset.source is folder: filter keys %s need Danbooru metadata and are ignored", ignored)
        ing.add_folder(root)
    else:
        files = [os.fspath(p) for p in dataset.get("metadata") or []]
        if not files:
            raise MetadataError("dataset.metadata lists no metadata files (required for dataset.source: danbooru)")
        check_unique_sources(files)
        for path in files:
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
