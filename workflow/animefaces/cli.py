"""``animefaces <command> ...``: one entry point for every stage CLI (each is also ``python -m animefaces.X``).

Exit status, uniform over the commands: 0 done, 1 the data or an input file is wrong, 2 a config or usage error.
"""

from __future__ import annotations

import importlib
import sys

# command -> module with main(argv) (read statically by tests/test_envs.py: keep it a plain literal)
COMMANDS = {
    "config": "animefaces.configcli",
    "demo": "animefaces.demo",
    "ingest": "animefaces.ingest",
    "fetch-cascade": "animefaces.resources",
    "crop": "animefaces.crop",
    "clean": "animefaces.clean",
    "dedup": "animefaces.dedup",
    "upscale-train": "animefaces.upscale_train",
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
    "progress": "animefaces.progress",
}
# command -> one-line summary for `animefaces --help`
SUMMARIES = {
    "config": "print the effective config of a run (--resolved), one key, or the template",
    "demo": "write the demo Danbooru-format mirror (images, metadata, ground truth)",
    "ingest": "stream Danbooru metadata (or list a folder), filter, shard, write manifests",
    "fetch-cascade": "put lbpcascade_animeface.xml in place (sha256-checked)",
    "crop": "detect and crop faces for one shard",
    "clean": "decode, size/monochrome/blocklist checks and hashes for one shard",
    "dedup": "drop exact and near duplicates across all shards",
    "upscale-train": "train the learned 2x upscaler on the dataset's own large crops (once per dataset)",
    "normalise": "upscale, resize to S x S sRGB, gate every output (one shard)",
    "select": "apply the exclude list and class filters; write the final dataset table",
    "rank": "score every normalised face with a frozen discriminator (or freeze one from a run)",
    "pack": "write a training pack (hdf5, tfrecord, zip) and its dataset card",
    "train": "train the StyleGAN2-style GAN on a pack (resumes from snapshots)",
    "sample": "images, figures and videos from a trained generator",
    "metrics": "FID/KID (Inception) or the offline proxy between image sets, packs and generators",
    "sample-classes": "class sheets, images and videos from a class-conditional generator",
    "report": "build one report asset from a results folder",
    "funnel": "print a results folder's per-stage funnel and reconcile the ledger",
    "runlock": "show or break the run lock of a results folder (one live run per folder)",
    "progress": "show the latest progress line of each job of a run",
}


def usage() -> str:
    from . import __version__

    width = max(map(len, COMMANDS))
    lines = [
        f"animefaces {__version__}: Danbooru-style images -> anime-face dataset -> GAN -> samples",
        "usage: animefaces <command> [options]   (animefaces <command> --help for its options and defaults)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {SUMMARIES.get(name, COMMANDS[name])}" for name in COMMANDS]
    lines += ["", "exit status: 0 done, 1 data or input-file error, 2 config or usage error"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in {"-V", "--version"}:
        from . import __version__

        print(f"animefaces {__version__}")
        return 0
    if not argv or argv[0] in {"-h", "--help"}:
        print(usage())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        import difflib

        near = difflib.get_close_matches(argv[0], list(COMMANDS), n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        print(f"animefaces: unknown command '{argv[0]}'{hint} (animefaces --help lists them)", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
