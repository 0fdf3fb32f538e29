"""A pre-flight check of ``dataset`` run when the workflow is parsed, before any job: does ``dataset.root`` look
like the mirror the metadata describes? It samples the first ``SAMPLE`` posts of the metadata that could have an
image (not deleted or banned, an image extension) and looks for their files; if none is there the run stops at
once with a message naming ``dataset.root`` (rather than after five stages ran on nothing, every post
``missing_file``). Reading stops after ``BUDGET_S`` seconds, so the check stays fast on any metadata size.
"""

from __future__ import annotations

import os
import time
from typing import Any

from .filters import FILE_EXT_PATTERN
from .mirror import LAYOUT_RATINGS, check_layout, image_path
from .readers import expand_metadata, iter_record_batches, iter_sources
from .records import POSTS, normalise_batch, raw_post

SAMPLE = 200
BUDGET_S = 5.0
_IMAGE_EXTS = {"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "avif"}


class PreflightError(ValueError):
    """``dataset`` does not describe a usable source; the message names the key to fix."""


def sample_posts(
    files: list[str], sample: int = SAMPLE, budget_s: float = BUDGET_S, ratings: frozenset[str] | None = None
) -> list[tuple[int, str]]:
    """``(post id, file_ext)`` of the first ``sample`` posts in ``files`` that should have an image file (with
    ``ratings``: only posts rated one of them, or with no rating; the 512px subset holds only 's' posts)."""
    import re

    ext_ok = re.compile(FILE_EXT_PATTERN).match
    t0 = time.perf_counter()
    out: list[tuple[int, str]] = []
    for path in files:
        for _, stream in iter_sources(path):
            for _, values in iter_record_batches(stream):
                posts = [v if type(v) in POSTS else raw_post(v) for v in values if type(v) in (*POSTS, dict)]
                norm = normalise_batch(posts)
                cols = {name: norm.columns[name].to_pylist() for name in ("file_ext", "deleted", "banned", "rating")}
                ids = norm.id.to_pylist()
                for k in norm.valid().tolist():
                    ext, rating = cols["file_ext"][k], cols["rating"][k]
                    if ratings is not None and rating and rating not in ratings:
                        continue
                    if ext and ext_ok(ext) and ext in _IMAGE_EXTS and not cols["deleted"][k] and not cols["banned"][k]:
                        out.append((ids[k], ext))
                if len(out) >= sample or time.perf_counter() - t0 > budget_s:
                    return out[:sample]
    return out


def preflight(dataset: dict[str, Any], demo_enabled: bool = False) -> str:
    """Raise PreflightError when ``dataset`` cannot be right; return a one-line summary of what was checked."""
    root = dataset.get("root") or "."
    source = dataset.get("source", "danbooru")
    if demo_enabled:
        return "dataset.root is made by the demo rule: not checked"
    if source == "folder":
        if not os.path.isdir(root):
            raise PreflightError(f"dataset.root {root!r} is not a directory (dataset.source: folder); fix dataset.root")
        return f"dataset.root {root!r} is a directory"
    layout = dataset.get("layout") or "original"
    folder, _ = check_layout(layout)
    files = [f for f in expand_metadata(list(dataset.get("metadata") or [])) if os.path.isfile(f)]
    if not files:
        return "no metadata file exists yet: not checked"
    if not os.path.isdir(os.path.join(root, folder)):
        raise PreflightError(
            f"dataset.root {root!r} has no {folder}/ folder (dataset.layout: {layout}); set dataset.root to the "
            f"mirror folder that holds {folder}/, or dataset.layout to the mirror's layout"
        )
    posts = sample_posts(files, ratings=LAYOUT_RATINGS.get(layout))
    if not posts:
        return "the metadata sample has no image posts: not checked"
    found = sum(os.path.isfile(image_path(root, pid, ext, layout)) for pid, ext in posts)
    if found == 0:
        pid, ext = posts[0]
        raise PreflightError(
            f"dataset.root {root!r} looks wrong: none of {len(posts)} posts sampled from the metadata has its image "
            f"(e.g. post {pid}: {image_path(root, pid, ext, layout)!r} does not exist). Fix dataset.root (the mirror "
            f"folder holding {folder}/) or dataset.layout ({layout})"
        )
    return f"dataset.root: {found} of {len(posts)} sampled posts have their image"
