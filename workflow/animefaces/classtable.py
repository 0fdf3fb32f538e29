"""The class table ``RES/ingest/classes.tsv`` (columns class_id, name, count; written by ingest, read by select,
pack and the report): one writer and one reader. Label 0 means unlabelled and is not listed in the file."""

from __future__ import annotations

import os

import pandas as pd

from .atomic import atomic_path

UNLABELLED = 0
UNLABELLED_NAME = "(unlabelled)"
COLUMNS = ("class_id", "name", "count")


def write_classes(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    with atomic_path(path, suffix=".tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False, lineterminator="\n")


def read_classes(path: str | os.PathLike[str] | None, error: type[Exception] = ValueError) -> pd.DataFrame:
    """The class table (class_id int64, name string, count int64); None gives an empty table. A file without the
    class_id and name columns raises ``error`` naming the file."""
    if path is None:
        return pd.DataFrame({c: pd.Series(dtype="string" if c == "name" else "int64") for c in COLUMNS})
    table = pd.read_csv(path, sep="\t", dtype={"name": "string"}, keep_default_na=False)
    if not {"class_id", "name"} <= set(table.columns):
        raise error(f"{path}: class table needs columns class_id, name, count; found {list(table.columns)}")
    table["class_id"] = table["class_id"].astype("int64")
    if "count" in table.columns:
        table["count"] = table["count"].astype("int64")
    return table


def class_names(table: pd.DataFrame) -> dict[int, str]:
    """{class_id: name} with label 0 as '(unlabelled)'."""
    names = {UNLABELLED: UNLABELLED_NAME}
    names.update((int(i), str(n)) for i, n in zip(table["class_id"], table["name"], strict=True))
    return names
