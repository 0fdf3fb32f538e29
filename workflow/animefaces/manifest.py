"""Stage manifests: one Parquet table per (stage, shard) holding one row per item that entered the stage.

Every row carries the ledger columns below; kept rows add the stage's own columns (``path``, ``width``, ...).
Downstream stages read only kept rows; the provenance ledger (:mod:`animefaces.ledger`) is the union of the
ledger columns of all manifests. Because a stage writes a row for *every* input, nothing is lost silently.

Layout: ``<results>/<stage>/manifests/<shard>.parquet`` (``unsharded.parquet`` for rows with no usable post id,
``all.parquet`` for global stages such as ``select``).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .atomic import atomic_path
from .shards import shard_names

KEPT = "kept"
DROPPED = "dropped"
LEDGER_COLUMNS = ["post_id", "item_id", "parent_id", "stage", "shard", "status", "reason", "details"]
_DTYPES = {
    "post_id": "Int64",
    "item_id": "string",
    "parent_id": "string",
    "stage": "string",
    "shard": "string",
    "status": "string",
    "reason": "string",
    "details": "string",
}


def manifest_path(results: str | os.PathLike[str], stage: str, shard: str) -> Path:
    return Path(results) / stage / "manifests" / f"{shard}.parquet"


def shard_manifests(results: str | os.PathLike[str], stage: str, shard_count: int) -> list[Path]:
    """``stage``'s manifest of every shard of a run with ``shards.count = shard_count``, in shard order: the files
    the stage's rules declare. Global steps take ``--results RES --shards N`` and build this list themselves, so
    their command line does not grow with the shard count (5,001 paths are ~200 KB, over Linux's 128 KB limit on
    one argument, and Snakemake passes a job's whole command to ``bash -c`` as one)."""
    return [manifest_path(results, stage, shard) for shard in shard_names(shard_count)]


class StageRows:
    """Accumulates a stage's rows for one shard; ``frame()`` returns the manifest table.

    ``parent_id`` is the item id at the previous stage (several kept rows may share a parent when a post yields
    several faces); for a dropped row ``item_id`` is the parent's own id.
    """

    def __init__(self, stage: str, shard: str) -> None:
        self.stage = stage
        self.shard = shard
        self._rows: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def kept(self, post_id: int | None, item_id: str, parent_id: str, details: dict | None = None, **cols: Any):
        self._add(post_id, item_id, parent_id, KEPT, "", details, cols)

    def dropped(
        self,
        post_id: int | None,
        item_id: str,
        reason: str,
        details: dict | None = None,
        parent_id: str | None = None,
        **cols: Any,
    ) -> None:
        if not reason:
            raise ValueError(f"dropped row for item {item_id!r} needs a reason code")
        self._add(post_id, item_id, item_id if parent_id is None else parent_id, DROPPED, reason, details, cols)

    def _add(self, post_id, item_id, parent_id, status, reason, details, cols) -> None:
        row = {
            "post_id": None if post_id is None else int(post_id),
            "item_id": str(item_id),
            "parent_id": str(parent_id),
            "stage": self.stage,
            "shard": self.shard,
            "status": status,
            "reason": reason,
            "details": json.dumps(details or {}, sort_keys=True, default=str),
        }
        row.update(cols)
        self._rows.append(row)

    def frame(self, extra_columns: Iterable[str] = ()) -> pd.DataFrame:
        return to_frame(self._rows, extra_columns)


def to_frame(rows: list[dict[str, Any]], extra_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Build a manifest frame with the ledger columns first and typed; ``extra_columns`` exist even if empty."""
    columns = list(LEDGER_COLUMNS)
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    for key in extra_columns:
        if key not in columns:
            columns.append(key)
    df = pd.DataFrame(rows, columns=columns)
    return df.astype(_DTYPES)


def check_frame(df: pd.DataFrame, where: str = "manifest") -> None:
    """The ledger rules of a manifest frame (see :func:`check_table`)."""
    missing = [c for c in LEDGER_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing ledger columns {missing}")
    cols = {c: pa.array(df[c].astype("string"), pa.string()) for c in ("status", "reason", "item_id")}
    check_table(pa.table(cols), where, ledger=False)


def check_table(table: pa.Table, where: str = "manifest", ledger: bool = True) -> None:
    """The ledger rules of a manifest: every ledger column present (``ledger``), status 'kept' or 'dropped' on
    every row, a reason on every dropped row, no item id twice. The error names the file and an example row."""
    if ledger:
        missing = [c for c in LEDGER_COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"{where}: missing ledger columns {missing}")
    status = table.column("status")
    if status.null_count:
        raise ValueError(f"{where}: rows with no status")
    bad = set(pc.unique(status).to_pylist()) - {KEPT, DROPPED}
    if bad:
        raise ValueError(f"{where}: status must be 'kept' or 'dropped', found {sorted(bad)}")
    no_reason = pc.and_(pc.equal(status, DROPPED), pc.equal(table.column("reason").fill_null(""), ""))
    if pc.any(no_reason).as_py():
        item = table.column("item_id").filter(no_reason)[0].as_py()
        raise ValueError(f"{where}: dropped rows without a reason, e.g. item {item!r}")
    items = table.column("item_id")
    if pc.count_distinct(items, mode="all").as_py() != len(items):
        counts = pc.value_counts(items)
        dup = counts.field("values").filter(pc.greater(counts.field("counts"), 1))[0].as_py()
        raise ValueError(f"{where}: item ids appear twice, e.g. {dup!r}")


def write_manifest(df: pd.DataFrame, path: str | os.PathLike[str], clean_stale: bool = True) -> None:
    """Validate the ledger columns and write the table atomically (Parquet, zstd). ``clean_stale=False``: the
    caller already removed the temporaries of killed earlier writes, e.g. with one
    :func:`~animefaces.atomic.remove_stale_temps_of` for a thousand manifests in one folder."""
    check_frame(df, str(path))
    with atomic_path(path, suffix=".parquet", clean_stale=clean_stale) as tmp:
        df.to_parquet(tmp, index=False, compression="zstd")


def write_manifest_table(table: pa.Table, path: str | os.PathLike[str], clean_stale: bool = True) -> None:
    """:func:`write_manifest` for an Arrow table of manifest columns (strings, int64): the file reads back as the
    frame :func:`write_manifest` would have written (pandas metadata: ``string`` and ``Int64`` dtypes), without
    the round trip through pandas (~5 ms per file, which a run with a thousand shards pays a thousand times)."""
    check_table(table, str(path))
    table = table.cast(_pandas_schema(tuple(table.schema)))
    with atomic_path(path, suffix=".parquet", clean_stale=clean_stale) as tmp:
        pq.write_table(table, tmp, compression="zstd")


@functools.lru_cache(maxsize=16)
def _pandas_schema(fields: tuple[pa.Field, ...]) -> pa.Schema:
    """The Arrow schema (with its pandas metadata) pandas writes for a frame of these columns: strings as
    ``StringDtype``, integers as ``Int64``."""
    for f in fields:
        if not (pa.types.is_string(f.type) or pa.types.is_int64(f.type)):
            raise TypeError(f"manifest column {f.name!r} is {f.type}; expected string or int64")
    frame = pd.DataFrame(
        {
            f.name: pd.Series([], dtype=pd.StringDtype() if pa.types.is_string(f.type) else pd.Int64Dtype())
            for f in fields
        }
    )
    return pa.Schema.from_pandas(frame, preserve_index=False)


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    return pd.read_parquet(path)


def read_kept(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Kept rows of one or several manifests, concatenated, index reset."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    frames = [read_manifest(p) for p in paths]
    frames = [f[f["status"] == KEPT] for f in frames]
    if not frames:
        return to_frame([])
    return pd.concat(frames, ignore_index=True)
