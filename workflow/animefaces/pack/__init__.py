"""Packing the selected dataset for GAN training: one writer per format plus a dataset card each.

- ``hdf5``: BigGAN-PyTorch (``imgs`` N x 3 x S x S uint8, ``labels`` int64), see :mod:`.hdf5`;
- ``tfrecord``: StyleGAN 1/2 multi-resolution TFRecords, written without TensorFlow, see :mod:`.tfrecord`;
- ``zip``: stylegan2-ada / stylegan3 zip of PNGs + ``dataset.json``, see :mod:`.zipds`.

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

from ..config import ConfigError, parse_params
from . import card as cards
from . import hdf5, tfrecord, zipds
from .source import PackError, iter_arrays, iter_sources, load_dataset, read_classes

FORMATS = ("hdf5", "tfrecord", "zip")


def _first_size(items) -> int:
    """The dataset's resolution, from its first image."""
    (first,) = list(iter_sources(items.iloc[:1], threads=1))
    assert first.rgb is not None
    return int(first.rgb.shape[0])


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
    """Pack the dataset table ``dataset`` as ``fmt`` at ``out`` and write its card; returns the card."""
    if fmt not in FORMATS:
        raise PackError(f"unknown pack format {fmt!r}; choose one of {FORMATS}")
    items = load_dataset(dataset)
    names = read_classes(classes)
    out = Path(out)
    name = name or out.stem
    labels = items["label"].to_numpy(dtype=np.int64)
    config = {"pack": {fmt: params[fmt]}, **(card_config or {})}  # this format's options (its rule's params)
    t0 = time.perf_counter()
    if fmt == "hdf5":
        size = _first_size(items)
        opts = params["hdf5"]
        hdf5.write_hdf5(
            out,
            iter_arrays(iter_sources(items, threads=threads)),
            labels,
            size,
            item_ids=items["item_id"].astype(str).tolist(),
            chunk=opts["chunk"],
            compression=opts["compression"],
        )
        files = cards.file_entries([out], out.parent)
        stored, order = True, "dataset table order (RES/select/dataset.parquet rows)"
    elif fmt == "tfrecord":
        size = _first_size(items)
        tfrecord.resolution_log2(size)  # fail before reading everything
        opts = params["tfrecord"]
        perm = np.random.default_rng(opts["seed"]).permutation(len(items))
        stored = zipds.want_labels(opts["labels"], labels)
        tfrecord.write_tfrecords(
            out,
            name,
            iter_arrays(iter_sources(items, order=perm, threads=threads)),
            size,
            labels=labels[perm] if stored else None,
        )
        files = cards.file_entries(sorted(p for p in out.iterdir() if p.is_file()), out.parent)
        order = f"record i is dataset table row numpy.random.default_rng({opts['seed']}).permutation({len(items)})[i]"
    else:
        opts = params["zip"]
        stored = zipds.want_labels(opts["labels"], labels)
        _, size = zipds.write_zip(out, iter_sources(items, threads=threads, decode=False), labels, opts["labels"])
        files = cards.file_entries([out], out.parent)
        order = "dataset table order (RES/select/dataset.parquet rows)"
    seconds = time.perf_counter() - t0
    card = cards.build_card(fmt, name, items, size, files, names, config, stored, order)
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
    ap.add_argument("format", choices=FORMATS)
    ap.add_argument("--dataset", required=True, help="dataset table written by select (RES/select/dataset.parquet)")
    ap.add_argument("--classes", help="class table (RES/ingest/classes.tsv) for class names in the card")
    ap.add_argument("--out", required=True, help="pack file (hdf5, zip) or directory (tfrecord)")
    ap.add_argument("--card", help="dataset card JSON to write (RES/pack/cards/<format>.json)")
    ap.add_argument("--name", help="dataset name (TFRecord file prefix); default: the output's stem")
    ap.add_argument("--params", default="{}", help="the pack config section as JSON")
    ap.add_argument("--card-config", default="{}", help="further config sections (JSON object) to record in the card")
    ap.add_argument("--threads", type=int, default=1, help="image decoding threads")
    args = ap.parse_args(argv)
    try:
        params = parse_params(args.params, "pack")
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
