"""Packing the selected dataset for GAN training: one writer per format plus a dataset card each.

- ``hdf5``: BigGAN-PyTorch (``imgs`` N x 3 x S x S uint8, ``labels`` int64), see :mod:`.hdf5`;
- ``tfrecord``: StyleGAN 1/2 multi-resolution TFRecords, written without TensorFlow, see :mod:`.tfrecord`;
- ``zip``: stylegan2-ada / stylegan3 zip of PNGs + ``dataset.json``, see :mod:`.zipds`.

Formats are looked up in :data:`animefaces.pack.formats.PACK_FORMATS` (how to add one: CONTRIBUTING.md).

CLI: ``python -m animefaces.pack <format> --dataset RES/select/dataset.parquet --classes RES/ingest/classes.tsv
--out <pack path> --card RES/pack/cards/<format>.json --params '<pack config JSON>'``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..cliflags import add_section_flags, section_or_exit
from ..config import ConfigError
from . import card as cards
from .formats import PACK_FORMATS, PackJob, pack_format
from .source import PackError, load_dataset, read_classes


def pack(
    fmt: str,
    dataset: str | os.PathLike[str],
    out: str | os.PathLike[str],
    card_path: str | os.PathLike[str] | None,
    params: dict[str, Any],
    classes: str | os.PathLike[str] | None = None,
    name: str | None = None,
    threads: int = 1,
    card_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Pack the dataset table ``dataset`` as ``fmt`` (a registered format) at ``out`` and write its card."""
    writer = pack_format(fmt).code().write_pack
    items = load_dataset(dataset)
    names = read_classes(classes)
    out = Path(out)
    name = name or out.stem
    labels = items["label"].to_numpy(dtype=np.int64)
    config = {"pack": {fmt: params[fmt]}, **(card_config or {})}  # this format's options (its rule's params)
    t0 = time.perf_counter()
    written = writer(PackJob(items, labels, out, name, params[fmt], threads, f"pack {fmt}"))
    size = written.size
    files = cards.file_entries(written.files, out.parent)
    seconds = time.perf_counter() - t0
    card = cards.build_card(fmt, name, items, size, files, names, config, written.labels_stored, written.order)
    print(
        f"pack {fmt}: {card['count']} images {size}x{size} -> {out} ({card['disk_bytes'] / 2**20:.1f} MiB, "
        f"{card['size_vs_source_images']}x the image files) in {seconds:.1f} s",
        file=sys.stderr,
    )
    for warning in card["warnings"]:
        print(f"WARNING: {warning}", file=sys.stderr)
    if card_path is not None:
        cards.write_card(card_path, card)
    return card


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="animefaces pack", description="Pack the selected dataset for GAN training.")
    ap.add_argument("format", help=f"a registered pack format ({', '.join(PACK_FORMATS)})")
    ap.add_argument("--dataset", required=True, help="dataset table written by select (RES/select/dataset.parquet)")
    ap.add_argument("--classes", help="class table (RES/ingest/classes.tsv) for class names in the card")
    ap.add_argument("--out", required=True, help="pack file (hdf5, zip) or directory (tfrecord)")
    ap.add_argument("--card", help="dataset card JSON to write (RES/pack/cards/<format>.json)")
    ap.add_argument("--name", help="dataset name (TFRecord file prefix); default: the output's stem")
    ap.add_argument("--card-config", default="{}", help="further config sections (JSON object) to record in the card")
    ap.add_argument("--threads", type=int, default=1, help="image decoding threads")
    add_section_flags(ap, "pack", skip=("formats",))
    args = ap.parse_args(argv)
    params = section_or_exit(ap, args, "pack")
    try:
        pack(
            args.format,
            args.dataset,
            args.out,
            args.card,
            params,
            classes=args.classes,
            name=args.name,
            threads=args.threads,
            card_config=json.loads(args.card_config),
        )
    except (PackError, ConfigError) as exc:
        print(f"animefaces pack {args.format}: error: {exc}", file=sys.stderr)
        return 1
    return 0
