"""Danbooru metadata ingest: stream the metadata (or list an image folder), filter, assign character classes and
write one manifest per shard (``RES/ingest/manifests/<shard>.parquet``, ``unsharded.parquet``) plus
``RES/ingest/classes.tsv``. One job for all metadata; see :mod:`.core` for the flow, :mod:`.filters` for the
check order and reason codes, :mod:`.readers` for the accepted file formats, :mod:`.records` for the two schemas.

CLI: ``python -m animefaces.ingest --out RES/ingest --config config/config.yaml`` or, from the workflow rule,
``--dataset JSON --filter JSON --classes JSON --shards N``.
"""

from __future__ import annotations

from .cli import main
from .core import Ingestor, IngestResult, ingest

__all__ = ["IngestResult", "Ingestor", "ingest", "main"]
