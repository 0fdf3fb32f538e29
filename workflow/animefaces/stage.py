"""The skeleton of a per-item stage (clean, normalise): run one function per input row on the ordered bounded
parallel map, then build the manifest the same way every time (one row per input item, kept rows carrying the
input's stage columns forward plus the stage's own, dropped rows with empty stage columns, exact nullable dtypes).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
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


def carried_columns(items: pd.DataFrame, replaced: Sequence[str] = ()) -> list[str]:
    """The input's stage columns a stage carries forward (all but the ledger's and those it ``replaced``)."""
    return [c for c in items.columns if c not in LEDGER_COLUMNS and c not in replaced]


def item_manifest(
    stage: str,
    shard: str,
    items: pd.DataFrame,
    work: Callable[[dict], ItemResult],
    threads: int,
    carry: list[str],
    kept_columns: list[str],
    kept_dtypes: dict[str, str],
    carry_first: bool = True,
    drop_details: Callable[[dict, ItemResult], dict] | None = None,
    kept_defaults: dict[str, Any] | None = None,
    unit: str = "items",
) -> pd.DataFrame:
    """The manifest frame of a per-item stage over the kept rows ``items`` of the previous stage's manifest.

    ``work(record)`` runs per input row (``threads`` workers, input order kept); a kept row is the carried columns,
    then ``kept_defaults`` for what the item lacks, then the result's ``cols``; ``drop_details(record, result)``
    (default: the result's details) is what a dropped row records. Progress (``unit`` per second, ETA) goes to
    the job's log as ``<stage> <shard>`` lines (``animefaces.progress``)."""
    records = items.to_dict(orient="records")
    rows = StageRows(stage, shard)
    empty = na_columns([c for c in [*carry, *kept_dtypes] if c != "path"])
    for rec, res in zip(
        records, track(ordered_map(work, records, threads), f"{stage} {shard}", len(records), unit), strict=True
    ):
        post_id = int_or_none(rec.get("post_id"))
        item = str(rec["item_id"])
        if res.reason:
            details = drop_details(rec, res) if drop_details is not None else res.details
            rows.dropped(post_id, item, res.reason, details, **empty)
        else:
            cols = {c: rec[c] for c in carry}
            cols.update(res.cols)
            for key, value in (kept_defaults or {}).items():
                cols.setdefault(key, value)
            rows.kept(post_id, item, item, res.details, **cols)
    order = [*carry, *kept_columns] if carry_first else [*kept_columns, *carry]
    out = rows.frame(extra_columns=order)
    return with_dtypes(out, {**carried_dtypes(items, carry), **kept_dtypes})


def print_summary(frame: pd.DataFrame, items: pd.DataFrame, shard: str, t0: float) -> None:
    """One JSON line on stderr (the job's log): items in, kept, drops by reason, seconds since ``t0``."""
    dropped = frame[frame["status"] != "kept"]["reason"].value_counts().to_dict()
    summary = {"shard": shard, "in": len(items), "kept": int((frame["status"] == "kept").sum()), "dropped": dropped}
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(summary, sort_keys=True), file=sys.stderr)
