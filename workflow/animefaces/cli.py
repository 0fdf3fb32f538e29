"""``animefaces <command> ...``: one entry point for every stage CLI (each is also ``python -m animefaces.X``)."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "demo": "animefaces.demo",
    "ingest": "animefaces.ingest",
    "fetch-cascade": "animefaces.resources",
    "crop": "animefaces.crop",
    "clean": "animefaces.clean",
    "dedup": "animefaces.dedup",
    "normalise": "animefaces.normalise",
    "select": "animefaces.select",
    "rank": "animefaces.rank",
    "pack": "animefaces.pack",
    "train": "animefaces.train",
    "sample": "animefaces.sample",
    "metrics": "animefaces.metrics",
    "sample-classes": "animefaces.sample_classes",
    "report": "animefaces.report",
    "funnel": "animefaces.ledger",
    "runlock": "animefaces.runlock",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        print("usage: animefaces <command> [args...]\ncommands: " + ", ".join(COMMANDS), file=sys.stderr)
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    module = importlib.import_module(COMMANDS[argv[0]])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
