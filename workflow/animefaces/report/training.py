"""Training figures: curves from ``RES/train/metrics.jsonl`` and a montage of a few tick grids."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from PIL import Image

from ..atomic import atomic_path
from .images import hstack, save_png, with_title

X_KEYS = ["kimg", "step", "tick", "epoch"]  # the first present is the x axis
NOT_METRICS = {"kimg", "step", "tick", "epoch", "time", "time_s", "timestamp", "wall_time", "seed"}
# Metrics sharing a prefix share a panel (the losses together, the discriminator's mean outputs together).
# Quality metrics (train.metrics): one panel each, the KID's subset spread with it; the proxy labelled as such.
PANEL_GROUPS = [
    ("loss", "losses"),
    ("D_", "discriminator outputs"),
    ("fid", "FID (Inception)"),
    ("kid", "KID (Inception)"),
    ("rand-fd", "rand-fd (offline proxy, not FID)"),
    ("rand-kid", "rand-kid (offline proxy, not KID)"),
]


def read_metrics(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per JSON line (blank lines skipped); a bad line is an error naming the file and line number."""
    records = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                if not line.endswith("\n"):  # a last line cut short by a killed writer: ignore it
                    break
                raise ValueError(f"{path}:{n}: not a JSON object ({exc})") from exc
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object, got {type(record).__name__}")
            records.append(record)
    return pd.DataFrame.from_records(records)


def numeric_metrics(df: pd.DataFrame) -> tuple[str | None, list[str]]:
    """(x column or None for the row number, metric columns: numeric, not constant-NaN, not counters)."""
    x = next((k for k in X_KEYS if k in df.columns and pd.api.types.is_numeric_dtype(df[k])), None)
    metrics = []
    for col in df.columns:
        if col in NOT_METRICS or col == x:
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        if df[col].dtype == bool or values.notna().sum() == 0:
            continue
        metrics.append(col)
    return x, metrics


def panels(metrics: list[str]) -> list[tuple[str, list[str]]]:
    """(title, metrics) per panel: the :data:`PANEL_GROUPS` first (when they have metrics), then one per metric."""
    out, used = [], set()
    for prefix, title in PANEL_GROUPS:
        group = [m for m in metrics if m.startswith(prefix)]
        if group:
            out.append((title, group))
            used.update(group)
    out.extend((m, [m]) for m in metrics if m not in used)
    return out


def plot_curves(df: pd.DataFrame, path: str | os.PathLike[str], cols: int = 3, dpi: int = 90) -> list[str]:
    """Small panels of the metrics against kimg (or step/tick/row), related ones together; returns the metrics
    plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, metrics = numeric_metrics(df) if len(df) else (None, [])
    layout = panels(metrics)
    n = max(len(layout), 1)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), squeeze=False, constrained_layout=True)
    xs = df[x] if x else pd.Series(range(len(df)))
    for ax, (title, names) in zip(axes.flat, layout, strict=False):
        for name in names:
            ys = pd.to_numeric(df[name], errors="coerce")
            ok = ys.notna() & ys.map(lambda v: math.isfinite(v) if pd.notna(v) else False)
            ax.plot(xs[ok], ys[ok], marker="." if ok.sum() < 30 else None, linewidth=1, label=name)
        if len(names) > 1:
            ax.legend(fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(x or "row", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(layout) :]:
        ax.axis("off")
    if not metrics:
        axes.flat[0].text(0.5, 0.5, "no numeric metrics recorded", ha="center", va="center")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return metrics


def tick_number(path: str | os.PathLike[str]) -> int:
    m = re.search(r"(\d+)", Path(path).stem)
    if not m:
        raise ValueError(f"{path}: tick grid names must carry the tick number, e.g. tick-000012.png")
    return int(m.group(1))


def grid_files(sources: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Tick grid PNGs from files, grid folders (``tick-*.png`` inside) or the trainer's ``grids/index.json``."""
    files: list[Path] = []
    for src in map(Path, sources):
        if src.is_dir():
            files.extend(sorted(src.glob("tick-*.png")))
        elif src.suffix == ".json":
            index = json.loads(src.read_text(encoding="utf-8"))
            files.extend(src.parent / name for name in index.get("grids", []))
        else:
            files.append(src)
    return files


def pick_ticks(paths: Sequence[str | os.PathLike[str]], n: int = 4) -> list[Path]:
    """``n`` grids evenly spread over training, always the first and the last."""
    ordered = sorted((Path(p) for p in paths), key=tick_number)
    if len(ordered) <= n:
        return ordered
    if n == 1:
        return [ordered[-1]]
    idx = sorted({round(i * (len(ordered) - 1) / (n - 1)) for i in range(n)})
    return [ordered[i] for i in idx]


def tick_montage(
    paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], n: int = 4, width: int = 384
) -> list[Path]:
    """A few tick grids side by side, each scaled to ``width`` px and titled with its tick; returns them."""
    chosen = pick_ticks(paths, n)
    panels = []
    for p in chosen:
        with Image.open(p) as im:
            im = im.convert("RGB")
            scale = width / im.width
            im = im.resize((width, max(1, round(im.height * scale))), Image.Resampling.LANCZOS)
        panels.append(with_title(im, f"tick {tick_number(p)}"))
    if not panels:
        from .images import placeholder

        panels = [placeholder(width // 2, "no tick grids were written")]
    save_png(hstack(panels, pad=8), out)
    return chosen
