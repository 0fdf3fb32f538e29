"""Reading what the stages wrote: manifest rows with their image paths, and where a dropped item's picture is.

A dropped row at stage S has no output image of its own; the picture that S looked at is the *input* of S, i.e.
the ``path`` of the kept row with the same item id at an earlier stage (crop drops -> the ingest source image,
clean drops -> the crop, dedup drops -> the crop, ...). :class:`ImageIndex` answers that by walking back through
the stages.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from ..ledger import STAGES, manifest_files
from ..manifest import DROPPED, KEPT, LEDGER_COLUMNS

EXTRA_COLUMNS = ["path", "width", "height", "character", "label"]
# A results directory, or manifest files / results directories (what a report rule passes as its inputs).
Sources = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def read_rows(path: str | os.PathLike[str], extra: Sequence[str] = EXTRA_COLUMNS) -> pd.DataFrame:
    """The ledger columns plus whichever of ``extra`` the manifest has (missing ones are filled with NA)."""
    names = set(pq.read_schema(path).names)
    missing = [c for c in LEDGER_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"{path}: not a stage manifest, missing ledger columns {missing}")
    cols = LEDGER_COLUMNS + [c for c in extra if c in names]
    df = pd.read_parquet(path, columns=cols)
    for c in extra:
        if c not in df.columns:
            df[c] = pd.NA
    return df


def manifest_sources(sources: Sources) -> list[Path]:
    """Manifest files from a results directory (every ``<stage>/manifests/*.parquet``) or an explicit list of
    files and directories (what a rule passes as its inputs)."""
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    files: list[Path] = []
    for src in sources:
        src = Path(src)
        if src.is_dir():
            found = [p for stage in STAGES for p in manifest_files(src, stage)]
            if not found:
                raise FileNotFoundError(f"no stage manifests under {src}/<stage>/manifests/ (has the workflow run?)")
            files.extend(found)
        elif src.is_file():
            files.append(src)
        else:
            raise FileNotFoundError(f"{src}: no such manifest file or results directory")
    return files


def load_rows(
    sources: Sources,
    stages: Iterable[str] = STAGES,
    extra: Sequence[str] = EXTRA_COLUMNS,
) -> pd.DataFrame:
    """Manifest rows (ledger columns + image columns) of ``stages`` from a results directory or manifest files."""
    stages = list(stages)
    frames = [read_rows(p, extra) for p in manifest_sources(sources)]
    rows = pd.concat(frames, ignore_index=True) if frames else read_rows_empty(extra)
    return rows[rows["stage"].isin(stages)].reset_index(drop=True)


def read_rows_empty(extra: Sequence[str] = EXTRA_COLUMNS) -> pd.DataFrame:
    from ..manifest import to_frame

    return to_frame([], extra)


def stable_sample(ids: Iterable[str], n: int, salt: str = "animefaces-report") -> list[str]:
    """``n`` ids chosen by a hash of the id: the same set gives the same sample on every run and machine."""
    keyed = sorted((hashlib.sha1(f"{salt}:{i}".encode()).hexdigest(), i) for i in set(ids))
    return [i for _, i in keyed[: max(0, n)]]


# Details keys that say how a stage was configured rather than what it found; left out of tile captions.
CONFIG_KEYS = {"detector", "scale_factor", "min_neighbors", "score", "rule", "scheme"}


def short_details(text: str | None, skip: Iterable[str] = CONFIG_KEYS, max_value: int = 24) -> str:
    """A ledger ``details`` JSON as ``k=v, k=v`` for a tile caption: file paths, configuration echoes
    (``skip``), empty and long values are left out."""
    try:
        details = json.loads(text) if text else {}
    except (TypeError, ValueError):
        return ""
    if not isinstance(details, dict):
        return str(details)[:max_value]
    parts = []
    for key, value in details.items():
        if key in skip or key.endswith("path") or value in (None, "", [], {}):
            continue
        if isinstance(value, float):
            value = f"{value:.3g}"
        value = value if isinstance(value, str) else json.dumps(value)
        if len(value) <= max_value:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def parse_details(text: str | None) -> dict:
    try:
        value = json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


class ImageIndex:
    """Per stage, the image path of every kept item (``path`` column); finds the picture behind any item."""

    def __init__(
        self, rows: pd.DataFrame, base: str | os.PathLike[str] = ".", ids: Iterable[str] | None = None
    ) -> None:
        """``ids``: index only these items (a report shows a few dozen; the ledger may hold millions)."""
        self.base = Path(base)
        self._paths: dict[str, dict[str, str]] = {}
        kept = rows[(rows["status"] == KEPT) & rows["path"].notna()]
        if ids is not None:
            kept = kept[kept["item_id"].isin(list(ids))]
        for stage, df in kept.groupby("stage", sort=False):
            self._paths[str(stage)] = dict(zip(df["item_id"].astype(str), df["path"].astype(str), strict=True))

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.base / p

    def path_at(self, stage: str, item_id: str) -> Path | None:
        path = self._paths.get(stage, {}).get(str(item_id))
        return None if path is None else self.resolve(path)

    def input_image(self, stage: str, item_id: str, include_self: bool = False) -> Path | None:
        """The newest image of ``item_id`` kept *before* ``stage`` (or at it, with ``include_self``)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {STAGES}")
        i = STAGES.index(stage)
        for s in reversed(STAGES[: i + 1] if include_self else STAGES[:i]):
            path = self.path_at(s, item_id)
            if path is not None:
                return path
        return None


def dropped(rows: pd.DataFrame, stages: Iterable[str] | None = None) -> pd.DataFrame:
    df = rows[rows["status"] == DROPPED]
    if stages is not None:
        df = df[df["stage"].isin(list(stages))]
    return df
