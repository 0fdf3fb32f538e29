"""``python -m animefaces.ingest``: the ingest job's command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from ..cliflags import add_section_flags, flag_values, section_from_args
from ..config import ConfigError, load_config
from .chunks import ReaderDied
from .classes import ClassesConfigError
from .core import ingest
from .filters import FilterConfigError, RatingSchemeMismatch
from .readers import MetadataError

# config section -> the attribute of its JSON option (--dataset, --filter, --classes)
SECTIONS = {"dataset": "dataset", "filter": "filter_", "classes": "classes"}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="animefaces ingest",
        description=(
            "Stream Danbooru metadata (or list an image folder), apply the filter and classes config, and write "
            "OUT/manifests/<shard>.parquet for every shard, OUT/manifests/unsharded.parquet and OUT/classes.tsv."
        ),
    )
    ap.add_argument("--out", required=True, help="output directory, normally results/<dataset.name>/ingest")
    ap.add_argument("--config", help="a workflow config file (YAML); the other sections' flags override it")
    ap.add_argument("--dataset", help="the dataset config section as JSON (source, root, metadata)")
    ap.add_argument("--filter", dest="filter_", metavar="FILTER", help="the filter config section as JSON")
    ap.add_argument("--classes", help="the classes config section as JSON")
    ap.add_argument("--shards", type=int, help="number of shards (shards.count)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="more than 1: THREADS processes decode large plain JSON Lines files while the main one decides and "
        "writes (the output does not depend on it)",
    )
    ap.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    for section in ("dataset", "filter", "classes"):
        add_section_flags(ap, section, common=False)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config) if args.config else {}
        # Any section given (a config file, a JSON option or a flag): the others take their defaults.
        given = bool(cfg) or any(getattr(args, a) or flag_values(args, s) for s, a in SECTIONS.items())
        dataset, filter_section, classes_section = (
            section_from_args(args, s, base=cfg.get(s), json_attr=a) if given else None for s, a in SECTIONS.items()
        )
        shards = args.shards if args.shards is not None else cfg.get("shards", {}).get("count")
        missing = [
            flag
            for flag, value in (
                ("--dataset", dataset),
                ("--filter", filter_section),
                ("--classes", classes_section),
                ("--shards", shards),
            )
            if value is None
        ]
        if missing:
            print(f"animefaces ingest: give --config or {', '.join(missing)}", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        result = ingest(args.out, dataset, filter_section, classes_section, int(shards), args.threads)
    except (ConfigError, FilterConfigError, ClassesConfigError, RatingSchemeMismatch, MetadataError) as exc:
        print(f"animefaces ingest: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        print(f"animefaces ingest: {exc}", file=sys.stderr)
        return 2
    except ReaderDied as exc:  # the machine's fault: exit 1 (not 2, a problem with the input)
        print(f"animefaces ingest: {exc}", file=sys.stderr)
        return 1
    summary = result.summary()
    summary["seconds"]["total"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(summary, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
