"""Samples for the report: one gallery sheet per sample folder (e.g. ``RES/samples/psi0.70/``), the sampling
figures (truncation, style mixing, ...) scaled to a viewable size, and the videos copied for download. A
class-conditional model's sample indexes (``sample_classes``) are read too: ``sheets.json`` gives one figure per
class sheet (rows = classes) plus its truncation figure, an images ``index.json`` a gallery of the per-class images
(captioned ``c<id>_<name>_seed<seed>``)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from ..atomic import atomic_path
from .data import stable_sample
from .images import Tile, contact_sheet, save_png

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".webm", ".gif"}
MAX_FIGURE = 1536  # px, longest side of a figure in the report


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def gallery(folder: Path, out: Path, n: int = 32, cols: int = 8, tile: int = 96) -> int:
    """A stable sample of ``n`` images of ``folder`` as a contact sheet captioned by file name."""
    files = {p.stem: p for p in _images(folder)}
    chosen = sorted(stable_sample(files, n))
    tiles = [Tile(path=files[name], lines=[name]) for name in chosen]
    title = f"{folder.name}: {len(chosen)} of {len(files):,} samples"
    save_png(contact_sheet(tiles, cols=cols, tile=tile, title=title), out)
    return len(chosen)


def scaled_figure(src: Path, out: Path, max_side: int = MAX_FIGURE) -> None:
    with Image.open(src) as im:
        im = im.convert("RGB")
        if max(im.size) > max_side:
            im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        save_png(im, out)


def class_index_assets(index_file: Path, outdir: Path, n: int) -> list[Path]:
    """The report assets of a ``sample_classes`` index: ``figure-class-<sheet>.png`` per sheet of a ``sheets.json``
    (and its truncation figure), or ``gallery-class-images.png`` for an images ``index.json``; [] for other JSON."""
    try:
        index = json.loads(index_file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{index_file}: not a sample index ({exc}); rerun the sample rule that wrote it") from exc
    folder, written = index_file.parent, []
    if isinstance(index, dict) and "sheets" in index:
        names = [sheet["file"] for sheet in index["sheets"]]
        if index.get("truncation_figure"):
            names.append(index["truncation_figure"]["file"])
        for name in names:
            target = outdir / f"figure-class-{Path(name).stem}.png"
            scaled_figure(folder / name, target)
            written.append(target)
    elif isinstance(index, dict) and "files" in index and "classes" in index:
        target = outdir / "gallery-class-images.png"
        gallery(folder, target, n=n)
        written.append(target)
    return written


def sample_assets(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], outdir: str | os.PathLike[str], n: int = 32
) -> list[Path]:
    """Build ``gallery-<folder>.png``, ``figure-<name>.png`` and ``video-<name>.<ext>`` under ``outdir``.

    ``sources``: folders of sample images (one gallery each), figure images, videos, class sample indexes (see
    :func:`class_index_assets`), or a folder holding those (e.g. ``RES/samples``); other JSON files are skipped."""
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    entries: list[Path] = []  # folders first (galleries), then files, each group in name order
    for src in map(Path, sources):
        if not src.exists():
            raise FileNotFoundError(f"{src}: no such sample file or folder (has the sample rule run?)")
        if src.is_dir() and any(p.is_dir() for p in src.iterdir()):  # a folder of sample folders and figures
            entries.extend(sorted(src.iterdir()))
        else:
            entries.append(src)
    written = []
    for entry in sorted(entries, key=lambda p: (not p.is_dir(), p.name)):
        if entry.is_dir() and _images(entry):
            target = outdir / f"gallery-{entry.name}.png"
            gallery(entry, target, n=n)
        elif entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
            target = outdir / f"figure-{entry.stem}.png"
            scaled_figure(entry, target)
        elif entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES:
            target = outdir / f"video-{entry.stem}{entry.suffix.lower()}"
            with atomic_path(target) as tmp:
                shutil.copyfile(entry, tmp)
        elif entry.is_file() and entry.suffix.lower() == ".json":
            written.extend(class_index_assets(entry, outdir, n))
            continue
        else:
            continue
        written.append(target)
    return written
