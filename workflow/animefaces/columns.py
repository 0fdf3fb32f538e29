"""Exact column types for stage manifests whose dropped rows leave stage columns empty.

``pandas.DataFrame(rows)`` turns an integer column with missing values into float64, which silently rounds 64-bit
perceptual hashes. Stages therefore give dropped rows explicit ``pd.NA`` (:func:`na_columns`), which keeps such
columns as Python objects, and cast them with :func:`with_dtypes` to nullable types (``Int64``, ``boolean``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd


def na_columns(columns: Iterable[str]) -> dict:
    return {c: pd.NA for c in columns}


def carried_dtypes(items: pd.DataFrame, columns: Iterable[str]) -> dict[str, str]:
    """Nullable versions of the input's dtypes for the columns a stage carries forward."""
    out = {}
    for col in columns:
        if col not in items.columns:
            continue
        dt = items[col].dtype
        if pd.api.types.is_bool_dtype(dt):
            out[col] = "boolean"
        elif pd.api.types.is_integer_dtype(dt):
            out[col] = "Int64"
        elif pd.api.types.is_float_dtype(dt):
            out[col] = "Float64"
        elif isinstance(dt, pd.StringDtype):
            out[col] = "string"
    return out


def is_missing(value: Any) -> bool:
    """None, pd.NA or NaN: how a manifest cell says "no value" (the one missing-value test of every stage)."""
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def int_or_none(value: Any) -> int | None:
    return None if is_missing(value) else int(value)


def str_or_none(value: Any) -> str | None:
    return None if is_missing(value) else str(value)


def str_or_empty(value: Any) -> str:
    return "" if is_missing(value) else str(value)


def with_dtypes(frame: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    """Cast the columns present in ``frame`` to ``dtypes``; integers are converted exactly (never via float)."""
    for col, dt in dtypes.items():
        if col not in frame.columns:
            continue
        if dt == "Int64" and frame[col].dtype == object:
            frame[col] = pd.array([None if is_missing(v) else int(v) for v in frame[col]], dtype="Int64")
        elif dt == "boolean" and frame[col].dtype == object:
            frame[col] = pd.array([None if is_missing(v) else bool(v) for v in frame[col]], dtype="boolean")
        else:
            frame[col] = frame[col].astype(dt)
    return frame
