"""Dataset cards: one JSON per pack (``RES/pack/cards/<format>.json``) saying what is in it and what made it.

Fields: format, name, count, resolution, per-class counts (names from ``classes.tsv``), the pack's files with
their sizes and sha256, total disk size and its ratio to the normalised image files it was made from, the config
sections and code version (``animefaces.__version__`` and ``git describe --always --dirty`` when available) that
produced it, and warnings (e.g. the TFRecord disk blow-up).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..atomic import write_json
from ..classtable import UNLABELLED_NAME
from .formats import PACK_FORMATS, pack_format

BLOWUP_WARN = 5.0  # warn when a pack is this many times larger than the image files it holds (TFRecord: always)


def sha256_file(path: str | os.PathLike[str], block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def code_version() -> dict[str, str | None]:
    """The package version and, when the package sits in a git checkout, ``git describe --always --dirty``."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        git = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        git = None
    return {"animefaces": __version__, "git": git}


def class_counts(labels: Iterable[int], names: dict[int, str]) -> list[dict[str, Any]]:
    """[{label, name, count}] for every label present, by label."""
    values, counts = np.unique(np.asarray(list(labels), dtype=np.int64), return_counts=True)
    return [
        {"label": int(v), "name": names.get(int(v), UNLABELLED_NAME if v == 0 else f"class {int(v)}"), "count": int(c)}
        for v, c in zip(values, counts, strict=True)
    ]


def file_entries(files: Iterable[str | os.PathLike[str]], root: str | os.PathLike[str] | None = None) -> list[dict]:
    entries = []
    for f in sorted(Path(p) for p in files):
        name = str(f.relative_to(root)) if root is not None else str(f)
        entries.append({"path": name, "bytes": f.stat().st_size, "sha256": sha256_file(f)})
    return entries


def build_card(
    fmt: str,
    name: str,
    items: pd.DataFrame,
    resolution: int,
    files: list[dict],
    class_names: dict[int, str],
    config: dict[str, Any],
    labels_stored: bool,
    order: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The card dict. ``items`` is the dataset table (its ``path`` files give the source size)."""
    disk = int(sum(f["bytes"] for f in files))
    source = int(sum(Path(p).stat().st_size for p in items["path"].astype(str)))
    ratio = disk / source if source else None
    raw = len(items) * 3 * resolution * resolution
    card: dict[str, Any] = {
        "format": fmt,
        "name": name,
        "count": int(len(items)),
        "resolution": int(resolution),
        "channels": 3,
        "labels_stored": bool(labels_stored),
        "classes": class_counts(items["label"], class_names),
        "order": order,
        "files": files,
        "disk_bytes": disk,
        "source_image_bytes": source,
        "size_vs_source_images": None if ratio is None else round(ratio, 3),
        "size_vs_raw_pixels": round(disk / raw, 3) if raw else None,
        "config": config,
        "code": code_version(),
        "warnings": [],
    }
    if extra:
        card.update(extra)
    note = pack_format(fmt).size_note if fmt in PACK_FORMATS else ""
    if ratio is not None and (note or ratio >= BLOWUP_WARN):
        card["warnings"].append(
            f"disk blow-up: this {fmt} pack takes {ratio:.1f}x the space of the {len(items)} normalised image files "
            f"({disk / 2**20:.1f} MiB vs {source / 2**20:.1f} MiB)"
            + (f"; {note.format(resolution=resolution)}" if note else "")
        )
    return card


def write_card(path: str | os.PathLike[str], card: dict[str, Any]) -> None:
    write_json(path, card)
