"""The skeleton of a per-item stage (crop, clean, normalise, select's ledger): run one function per input row on
the ordered bounded parallel map, then build the manifest the same way every time (one row per input item, kept
rows carrying the input's stage columns forward plus the stage's own, dropped rows with empty stage columns, exact
column types, columns in a fixed order).

A result keeps its item (``reason`` empty, new columns in ``cols``), drops it (``reason`` = the ledger code), or,
for a stage that turns one input into several items (crop: a post into its faces), lists them in ``kept_items``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from .columns import carried_dtypes, int_or_none, na_columns, with_dtypes
from .manifest import LEDGER_COLUMNS, StageRows
from .parallel import ordered_map
from .progress import track


class ItemResult(Protocol):
    """What a stage decided for one item: ``reason`` empty = kept; ``cols`` = the kept row's new columns."""

    reason: str
    details: dict
    cols: dict


@dataclass
class KeptItem:
    """One of several items a single input turned into: its own id, ledger details and stage columns."""

    item_id: str
    details: dict
    cols: dict


def carried_columns(items: pd.DataFrame, replaced: Sequence[str] = ()) -> list[str]:
    """The input's stage columns a stage carries forward (all but the ledger's and those it ``replaced``)."""
    return [c for c in items.columns if c not in LEDGER_COLUMNS and c not in replaced]


def item_manifest(
    stage: str,
    shard: str | None,
    items: pd.DataFrame,
    work: Callable[[dict], ItemResult],
    threads: int,
    carry: list[str],
    kept_columns: list[str],
    kept_dtypes: dict[str, str],
    drop_details: Callable[[dict, ItemResult], dict] | None = None,
    kept_defaults: dict[str, Any] | None = None,
    unit: str = "items",
    pool: Executor | None = None,
    kept_on_drop: Sequence[str] = (),
    progress: bool = True,
) -> pd.DataFrame:
    """The manifest frame of a per-item stage over the kept rows ``items`` of the previous stage's manifest.

    ``work(record)`` runs per input row (``threads`` workers, or the caller's ``pool``; input order kept); a kept
    row is the carried columns, then ``kept_defaults`` for what the item lacks, then the result's ``cols``; a
    result with ``kept_items`` (a list of :class:`KeptItem`) gives one kept row per entry instead, each with the
    input's item id as parent. ``drop_details(record, result)`` (default: the result's details) is what a dropped
    row records; its stage columns are empty except the carried ``kept_on_drop``. ``shard=None``: a global stage,
    each row keeps its input's ``shard``. Columns, whether or not the first row was kept: the ledger's, then
    ``carry``, then ``kept_columns`` (those not carried), then any other a result added; types: the input's
    (nullable) for carried columns, ``kept_dtypes`` over them. Progress (``unit`` per second, ETA) goes to the
    job's log as ``<stage> <shard>`` lines (``animefaces.progress``)."""
    records = items.to_dict(orient="records")
    rows = StageRows(stage, "" if shard is None else shard)
    empty = na_columns([c for c in [*carry, *kept_dtypes] if c != "path"])
    results = ordered_map(work, records, threads, pool=pool, thread_name_prefix=stage)
    if progress:
        results = track(results, f"{stage} {shard or 'all'}", len(records), unit)
    for rec, res in zip(records, results, strict=True):
        post_id = int_or_none(rec.get("post_id"))
        item = str(rec["item_id"])
        where = {"shard": str(rec["shard"])} if shard is None else {}
        if res.reason:
            details = drop_details(rec, res) if drop_details is not None else res.details
            cols = {**empty, **{c: rec[c] for c in kept_on_drop}, **where}
            rows.dropped(post_id, item, res.reason, details, **cols)
            continue
        carried = {c: rec[c] for c in carry}
        kept = getattr(res, "kept_items", None)
        for one in [KeptItem(item, res.details, res.cols)] if kept is None else kept:
            cols = {**carried, **one.cols}
            for key, value in (kept_defaults or {}).items():
                cols.setdefault(key, value)
            rows.kept(post_id, one.item_id, item, one.details, **cols, **where)
    order = [*carry, *kept_columns]
    out = rows.frame(extra_columns=order)
    fixed = [*LEDGER_COLUMNS, *dict.fromkeys(order)]
    out = out[[*fixed, *(c for c in out.columns if c not in fixed)]]
    return with_dtypes(out, {**carried_dtypes(items, carry), **kept_dtypes})


def print_summary(frame: pd.DataFrame, items: pd.DataFrame, shard: str, t0: float) -> None:
    """One JSON line on stderr (the job's log): items in, kept, drops by reason, seconds since ``t0``."""
    dropped = frame[frame["status"] != "kept"]["reason"].value_counts().to_dict()
    summary = {"shard": shard, "in": len(items), "kept": int((frame["status"] == "kept").sum()), "dropped": dropped}
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(summary, sort_keys=True), file=sys.stderr)
