"""``python -m animefaces.report <asset> ...``: build one report asset (the report rules call these)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..ledger import ledger_manifests
from . import cards, funnel, samples, sheets, training

SOURCES_HELP = "a results directory (e.g. results/demo) or stage manifest files"
SHARDS_HELP = (
    "the run's shards.count: read exactly its manifests under the one results directory given (what the rules "
    "pass; without it every manifest file found there is read)"
)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="animefaces report",
        description="Build the figures and tables that `snakemake --report` collects (one asset kind per command).",
    )
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("funnel", help="ledger funnel: TSV, HTML table and bar chart")
    p.add_argument("sources", nargs="+", help=SOURCES_HELP)
    p.add_argument("--shards", type=int, metavar="N", help=SHARDS_HELP)
    p.add_argument("--tsv")
    p.add_argument("--html")
    p.add_argument("--png")

    p = sub.add_parser("kept", help="contact sheet of a stable sample of the final dataset")
    p.add_argument("dataset", help="a results directory or its final dataset table, RES/select/dataset.parquet")
    p.add_argument("--out", required=True)
    p.add_argument("-n", type=int, default=64, help="faces to show (default 64)")

    p = sub.add_parser("drops", help="one contact sheet per (stage, drop reason): <out>/<stage>-<reason>.png")
    p.add_argument("sources", nargs="+", help=SOURCES_HELP)
    p.add_argument("--shards", type=int, metavar="N", help=SHARDS_HELP)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("-n", type=int, default=32, help="examples per reason (default 32)")

    p = sub.add_parser("pairs", help="duplicate pairs side by side with their distance")
    p.add_argument("sources", nargs="+", help=SOURCES_HELP)
    p.add_argument("--shards", type=int, metavar="N", help=SHARDS_HELP)
    p.add_argument("--out", required=True)
    p.add_argument("-n", type=int, default=24, help="pairs to show (default 24)")

    p = sub.add_parser("cards", help="pack dataset cards as one HTML table")
    p.add_argument("cards", nargs="*", help="a results directory or RES/pack/cards/<format>.json files")
    p.add_argument("--out", required=True)

    p = sub.add_parser("training", help="training curves from metrics.jsonl and a montage of tick grids")
    p.add_argument("metrics", help="a results directory or RES/train/metrics.jsonl")
    p.add_argument("--curves", required=True, help="output PNG for the curves")
    p.add_argument(
        "--grids",
        nargs="*",
        default=None,
        help="tick grid PNGs, grid folders or grids/index.json (default: <metrics dir>/grids/)",
    )
    p.add_argument("--montage", required=True, help="output PNG for the tick-grid montage")
    p.add_argument("-n", type=int, default=4, help="tick grids in the montage (default 4)")

    p = sub.add_parser("samples", help="galleries, figures and videos from the samples folder")
    p.add_argument("samples", nargs="+", help="sample folders (one gallery each), figures, videos, RES/samples or RES")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("-n", type=int, default=32, help="images per gallery (default 32)")
    return ap


def in_results(path: str, inside: str, strict: bool = True) -> str:
    """``path`` itself, or ``path/inside`` when ``path`` is a results directory. ``strict``: a directory must hold
    ``inside`` (FileNotFoundError naming it otherwise)."""
    p = Path(path)
    if p.is_dir() and (p / inside).exists():
        return str(p / inside)
    if strict and p.is_dir():
        raise FileNotFoundError(f"{path} is a folder without {inside} (has that stage run for this results folder?)")
    return path


def card_files(paths: list[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        folder = Path(p) / "pack" / "cards"
        if Path(p).is_dir() and not folder.is_dir():
            raise FileNotFoundError(f"{p} is a folder without pack/cards/ (have the packs been built?)")
        out += sorted(map(str, folder.glob("*.json"))) if Path(p).is_dir() else [p]
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, ValueError, KeyError) as exc:
        msg = str(exc) if not isinstance(exc, KeyError) else f"missing column or key {exc}"
        print(f"animefaces report {args.command}: error: {msg}", file=sys.stderr)
        return 1


def run_manifests(sources: list[str], shards: int, until: str | None = None) -> list[Path]:
    """The manifests of a run with ``shards.count = shards`` under the one results directory in ``sources``."""
    if len(sources) != 1 or not Path(sources[0]).is_dir():
        raise ValueError(f"--shards takes one results directory, got {' '.join(sources)}")
    return ledger_manifests(sources[0], shards, until=until)


def _run(args: argparse.Namespace) -> int:
    if args.command in ("funnel", "drops", "pairs") and args.shards is not None:
        args.sources = run_manifests(args.sources, args.shards, until="dedup" if args.command == "pairs" else None)
    if args.command == "kept":
        args.dataset = in_results(args.dataset, "select/dataset.parquet")
    elif args.command == "training":
        args.metrics = in_results(args.metrics, "train/metrics.jsonl")
    elif args.command == "cards":
        args.cards = card_files(args.cards)
    elif args.command == "samples":
        args.samples = [in_results(p, "samples", strict=False) for p in args.samples]
    if args.command == "funnel":
        table, problems = funnel.write_funnel(args.sources, args.tsv, args.html, args.png)
        print(f"funnel: {len(table)} rows, {len(problems)} reconciliation problems")
        for problem in problems:
            print(f"RECONCILE: {problem}", file=sys.stderr)
    elif args.command == "kept":
        print(f"kept: {sheets.kept_sheet(args.dataset, args.out, n=args.n)} faces -> {args.out}")
    elif args.command == "drops":
        written = sheets.drop_sheets(args.sources, args.out, n=args.n)
        print(f"drops: {len(written)} sheets -> {args.out}")
    elif args.command == "pairs":
        print(f"pairs: {sheets.pairs_sheet(args.sources, args.out, n=args.n)} pairs -> {args.out}")
    elif args.command == "cards":
        print(f"cards: {cards.write_cards(args.cards, args.out)} cards -> {args.out}")
    elif args.command == "training":
        df = training.read_metrics(args.metrics)
        plotted = training.plot_curves(df, args.curves)
        grids = training.grid_files(args.grids if args.grids is not None else [Path(args.metrics).parent / "grids"])
        chosen = training.tick_montage(grids, args.montage, n=args.n)
        print(f"training: {len(df)} metric rows, {len(plotted)} curves, {len(chosen)} of {len(grids)} tick grids")
    elif args.command == "samples":
        written = samples.sample_assets(args.samples, args.out, n=args.n)
        print(f"samples: {len(written)} assets -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
