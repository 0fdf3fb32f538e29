"""Where the demo mirror's files go, and the config checks Snakemake runs at DAG build (no heavy imports here).

Layout under ``dataset.root`` (the real Danbooru20xx layout): ``original/{id % 1000:04d}/{id}.{file_ext}``,
the three metadata files below (``dataset.metadata`` must list exactly these, in this order) and
``ground_truth.json``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

NESTED = "metadata/danbooru2019-nested.tar.xz"  # Danbooru2017-2020 records in JSON Lines members of a tar.xz
FLAT = "metadata/danbooru2021-flat.jsonl.gz"  # Danbooru2021 flat records, gzip JSON Lines
API = "metadata/api-posts.json"  # Danbooru API flat records, one JSON array
METADATA_FILES = (NESTED, FLAT, API)
NESTED_MEMBERS = ("metadata/2019000000000000.json", "metadata/2019000000000001.json")
GROUND_TRUTH = "ground_truth.json"
MARKER = ".animefaces-demo"  # marks a mirror the demo wrote (so it may be wiped and regenerated)


def expected_paths(root: str | os.PathLike[str]) -> list[str]:
    """The metadata paths the demo writes under ``root``, in ``dataset.metadata`` order."""
    return [os.path.normpath(os.path.join(root, p)) for p in METADATA_FILES]


def check_metadata_paths(root: str | os.PathLike[str], metadata: Iterable[str]) -> None:
    """The demo writes exactly the three files ``dataset.metadata`` must list; anything else is a config error."""
    metadata = list(metadata)
    want = expected_paths(root)
    if [os.path.normpath(p) for p in metadata] != want:
        raise ValueError(
            f"demo.enabled is true, so dataset.metadata must list exactly the demo's metadata files under "
            f"dataset.root ({root}), in this order:\n  " + "\n  ".join(want) + f"\nbut it lists: {metadata}.\n"
            "Fix dataset.metadata in your config, or set demo.enabled: false to use your own mirror."
        )


def check_root(root: str | os.PathLike[str]) -> None:
    """Refuse to write into a mirror the demo did not make (it wipes ``original/`` before regenerating)."""
    root = Path(root)
    if (root / "original").exists() and not (root / MARKER).exists():
        raise ValueError(
            f"dataset.root ({root}) already holds an original/ folder that the demo did not write; refusing to "
            "overwrite it. Point dataset.root somewhere else, or set demo.enabled: false to use that mirror."
        )


def check_config(config: dict) -> None:
    """DAG-build check of a validated config when ``demo.enabled`` (raises ValueError naming the key)."""
    if not config["demo"]["enabled"]:
        return
    ds = config["dataset"]
    if ds["source"] != "danbooru":
        raise ValueError(
            f"demo.enabled is true but dataset.source is {ds['source']!r}: the demo writes a Danbooru mirror. "
            "Set dataset.source: danbooru, or demo.enabled: false."
        )
    check_metadata_paths(ds["root"], ds["metadata"])
    check_root(ds["root"])
