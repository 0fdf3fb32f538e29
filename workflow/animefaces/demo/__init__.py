"""The embedded demo corpus: a seeded, procedurally drawn Danbooru-format mini mirror with planted problem cases.

``python -m animefaces.demo --root R --params JSON [--metadata F ...]`` writes ``R/original/...``, the three
metadata files and ``R/ground_truth.json``. Modules: :mod:`~animefaces.demo.layout` (paths and config checks,
light to import), :mod:`~animefaces.demo.corpus` (planning, planted cases, metadata, ground truth),
:mod:`~animefaces.demo.draw` (the procedural characters), :mod:`~animefaces.demo.cast` (invented cast and tags).
"""

from __future__ import annotations

from .layout import GROUND_TRUTH, METADATA_FILES, check_config, check_metadata_paths

__all__ = ["GROUND_TRUTH", "METADATA_FILES", "check_config", "check_metadata_paths", "generate", "main"]


def generate(*args, **kwargs) -> dict:
    """See :func:`animefaces.demo.corpus.generate` (imported lazily: it pulls in numpy, Pillow and OpenCV)."""
    from .corpus import generate as _generate

    return _generate(*args, **kwargs)


def main(argv: list[str] | None = None) -> int:
    from .__main__ import main as _main

    return _main(argv)
