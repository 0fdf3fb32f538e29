"""The pack-format registry: every place that depends on a format (the pack stage, the pack rules, the train
rule's choice of pack, the training reader) looks the format up here instead of switching on its name.

A format is a module with

- ``write_pack(job: PackJob) -> PackWritten`` (writes ``job.out`` atomically),
- optionally ``load_for_training(path, resolution, max_memory_gb) -> PackImages`` and ``probe(path) -> (count,
  resolution, classes)`` when the trainer can read it,

and one :func:`register_pack_format` line below naming the module, whether the pack is a file or a directory, and
its path suffix. Modules are imported only when used, so an environment without one format's libraries can still
use the others (the train env has no crc32c for TFRecords).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import pandas as pd

from .source import PackError


@dataclass
class PackJob:
    """What a writer gets: the dataset table (rows in pack order), its labels, where to write, this format's
    options (``pack.<format>``), the dataset name and the image-reading threads."""

    items: pd.DataFrame
    labels: np.ndarray
    out: Path
    name: str
    options: dict[str, Any]
    threads: int = 1
    label: str = "pack"

    def sources(self, order: Any = None, decode: bool = True) -> Any:
        """The dataset's images in ``order`` (``source.iter_sources``), with a progress line in the job's log."""
        from ..progress import track
        from .source import iter_sources

        return track(iter_sources(self.items, order, self.threads, decode), self.label, len(self.items), "images")


@dataclass
class PackWritten:
    """What a writer reports for the dataset card: resolution, the files written, whether labels were stored, and
    how pack order relates to the dataset table's rows."""

    size: int
    files: list[Path]
    labels_stored: bool
    order: str


@dataclass
class PackImages:
    """What a training reader returns: uint8 ``N x 3 x R x R`` images in memory, or ``read_rows`` (sorted unique
    row indices -> those rows at ``resolution``) for packs too large for memory; labels are class ids ``[N]`` or
    label vectors ``[N, C]``."""

    count: int
    source_resolution: int
    resolution: int
    labels: np.ndarray | None
    images: np.ndarray | None = None
    read_rows: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class PackFormat:
    name: str
    module: str  # importable module with write_pack (and load_for_training / probe when trainable)
    output: Literal["file", "directory"]
    suffix: str  # the pack is RES/pack/<format>/<dataset name><suffix>
    trainable: bool = False  # the trainer reads it (module has load_for_training and probe)
    read_suffixes: tuple[str, ...] = ()  # further suffixes the trainer accepts for this format
    power_of_two: bool = False  # the format needs normalise.size to be a power of two (a DAG-time config check)
    # what the dataset card always says about this format's size on disk ({resolution} is filled in); empty: the
    # card warns only when the pack outgrows the image files by BLOWUP_WARN
    size_note: str = ""

    def code(self) -> ModuleType:
        return importlib.import_module(self.module)

    def path(self, res: str, dataset_name: str) -> str:
        return f"{res}/pack/{self.name}/{dataset_name}{self.suffix}"


PACK_FORMATS: dict[str, PackFormat] = {}


def register_pack_format(
    name: str,
    module: str,
    output: Literal["file", "directory"],
    suffix: str,
    trainable: bool = False,
    read_suffixes: tuple[str, ...] = (),
    power_of_two: bool = False,
    size_note: str = "",
) -> PackFormat:
    """Register (or replace) a pack format; registration order is the trainer's order of preference."""
    if output not in ("file", "directory"):
        raise ValueError(f"pack format {name!r}: output must be 'file' or 'directory', got {output!r}")
    PACK_FORMATS[name] = PackFormat(name, module, output, suffix, trainable, read_suffixes, power_of_two, size_note)
    return PACK_FORMATS[name]


def pack_format(name: str) -> PackFormat:
    try:
        return PACK_FORMATS[name]
    except KeyError:
        raise PackError(f"unknown pack format {name!r}; choose one of {list(PACK_FORMATS)} (pack.formats)") from None


def format_of_path(path: str | os.PathLike[str]) -> PackFormat:
    """The trainable format whose suffix ``path`` ends with (how the trainer knows what it was given)."""
    name = Path(path).name.lower()
    for fmt in PACK_FORMATS.values():
        if fmt.trainable and fmt.suffix and name.endswith(tuple(x.lower() for x in (fmt.suffix, *fmt.read_suffixes))):
            return fmt
    suffixes = [f.suffix for f in PACK_FORMATS.values() if f.trainable]
    raise ValueError(f"{path}: unsupported training data format; use a pack ending in one of {suffixes}")


def training_format(formats: list[str]) -> PackFormat:
    """The pack the trainer reads: the first trainable format (registry order) among ``pack.formats``, else the
    first trainable format (the workflow then builds that pack for training)."""
    trainable = [f for f in PACK_FORMATS.values() if f.trainable]
    return next((f for f in trainable if f.name in formats), trainable[0])


register_pack_format("hdf5", "animefaces.pack.hdf5", "file", ".hdf5", trainable=True, read_suffixes=(".h5",))
SEED_TFRECORD_BLOWUP = 19  # what the seed project measured for its TFRecords vs its PNG set
register_pack_format(
    "tfrecord",
    "animefaces.pack.tfrecord",
    "directory",
    "",
    power_of_two=True,  # one record file per resolution from 4x4 up
    size_note="TFRecords store raw uint8 pixels at every resolution from 4x4 to {resolution}x{resolution} (the seed "
    f"project measured ~{SEED_TFRECORD_BLOWUP}x for its TFRecords); prefer the zip or hdf5 pack unless a StyleGAN "
    "1/2 trainer needs this one",
)
register_pack_format("zip", "animefaces.pack.zipds", "file", ".zip", trainable=True)
