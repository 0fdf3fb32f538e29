"""Provenance ledger: the ledger columns of every stage manifest, the per-stage funnel, and reconciliation.

Reconciliation rules (``reconcile``), stage by stage in ``STAGES`` order:
- no item id appears twice within a stage;
- the parents of a stage's rows are exactly the kept items of the stage before (every input id appears);
- the first stage's parents are source locators (``file:record``); later, a parent is either dropped once
  (``item_id == parent_id``) or kept as one or more items (a post may yield
  several face crops), never both.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from .config import split_snakemake_argv
from .manifest import DROPPED, KEPT, LEDGER_COLUMNS, manifest_path, read_manifest, shard_manifests

STAGES = ["ingest", "crop", "clean", "dedup", "normalise", "select"]


def ledger_manifests(results: str | os.PathLike[str], shard_count: int, until: str | None = None) -> list[Path]:
    """Every manifest of a run in ``STAGES`` order, or of the stages up to and including ``until``: each stage's
    per-shard files (ingest's ``unsharded.parquet`` too) and select's single ``all.parquet``. Exactly the run's
    files, unlike a glob of the folders, which would also count a shard left over from a larger ``shards.count``."""
    stages = STAGES if until is None else STAGES[: STAGES.index(until) + 1]
    files: list[Path] = []
    for stage in stages:
        if stage == "select":
            files.append(manifest_path(results, "select", "all"))
            continue
        files += shard_manifests(results, stage, shard_count)
        if stage == "ingest":
            files.append(manifest_path(results, "ingest", "unsharded"))
    return files


def manifest_files(results: str | os.PathLike[str], stage: str) -> list[Path]:
    return sorted((Path(results) / stage / "manifests").glob("*.parquet"))


def load_ledger(results: str | os.PathLike[str]) -> pd.DataFrame:
    """All stages' ledger rows under a results directory (stages without manifests are absent)."""
    frames = []
    for stage in STAGES:
        for path in manifest_files(results, stage):
            frames.append(read_manifest(path)[LEDGER_COLUMNS])
    if not frames:
        raise FileNotFoundError(f"no stage manifests under {results}/<stage>/manifests/ (has the workflow run?)")
    return pd.concat(frames, ignore_index=True)


def present_stages(ledger: pd.DataFrame) -> list[str]:
    have = set(ledger["stage"].unique())
    return [s for s in STAGES if s in have]


def funnel(ledger: pd.DataFrame) -> pd.DataFrame:
    """One row per (stage, reason): ``in`` (parents entering), ``kept`` (items out), ``dropped`` per reason.

    The first row of each stage has reason ``""`` and the stage totals."""
    rows = []
    for stage in present_stages(ledger):
        df = ledger[ledger["stage"] == stage]
        kept = df[df["status"] == KEPT]
        dropped = df[df["status"] == DROPPED]
        rows.append(
            {
                "stage": stage,
                "reason": "",
                "in": int(df["parent_id"].nunique()),
                "kept": len(kept),
                "kept_parents": int(kept["parent_id"].nunique()),
                "dropped": len(dropped),
            }
        )
        for reason, n in dropped["reason"].value_counts().sort_index().items():
            rows.append(
                {"stage": stage, "reason": reason, "in": None, "kept": None, "kept_parents": None, "dropped": int(n)}
            )
    table = pd.DataFrame(rows, columns=["stage", "reason", "in", "kept", "kept_parents", "dropped"])
    return table.astype({"in": "Int64", "kept": "Int64", "kept_parents": "Int64", "dropped": "Int64"})


def reconcile(ledger: pd.DataFrame) -> list[str]:
    """Problems found (empty list = the ledger adds up)."""
    problems: list[str] = []
    previous_kept: set[str] | None = None
    previous = None
    for stage in present_stages(ledger):
        df = ledger[ledger["stage"] == stage]
        dup = df["item_id"][df["item_id"].duplicated()]
        if len(dup):
            problems.append(f"{stage}: {len(dup)} item ids appear twice, e.g. {dup.iloc[0]!r}")
        kept = df[df["status"] == KEPT]
        dropped = df[df["status"] == DROPPED]
        bad_drop = dropped[dropped["item_id"] != dropped["parent_id"]]
        if previous_kept is not None and len(bad_drop):  # the first stage's parents are source records
            problems.append(
                f"{stage}: dropped rows whose item id is not their parent's, e.g. {bad_drop['item_id'].iloc[0]!r}"
            )
        both = set(kept["parent_id"]) & set(dropped["parent_id"])
        if both:
            problems.append(f"{stage}: {len(both)} parents both kept and dropped, e.g. {sorted(both)[0]!r}")
        if (dropped["reason"].fillna("") == "").any():
            problems.append(f"{stage}: dropped rows without a reason")
        if previous_kept is not None:
            parents = set(df["parent_id"])
            lost = previous_kept - parents
            unknown = parents - previous_kept
            if lost:
                problems.append(
                    f"{stage}: {len(lost)} items kept by {previous} never reached {stage}, e.g. {sorted(lost)[0]!r}"
                )
            if unknown:
                problems.append(
                    f"{stage}: {len(unknown)} parents were not kept by {previous}, e.g. {sorted(unknown)[0]!r}"
                )
        previous_kept = set(kept["item_id"])
        previous = stage
    return problems


def format_funnel(table: pd.DataFrame) -> str:
    lines = [f"{'stage':<10} {'reason':<24} {'in':>8} {'kept':>8} {'dropped':>8}"]
    for row in table.to_dict(orient="records"):
        if row["reason"] == "":
            lines.append(f"{row['stage']:<10} {'(total)':<24} {row['in']:>8} {row['kept']:>8} {row['dropped']:>8}")
        else:
            lines.append(f"{'':<10} {row['reason']:<24} {'':>8} {'':>8} {row['dropped']:>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv, snake_args = split_snakemake_argv(argv)
    ap = argparse.ArgumentParser(
        prog="animefaces funnel",
        description="Print the per-stage funnel of a results directory and check that every item is accounted for.",
        epilog="With --run, arguments after -- are a snakemake command line; its --configfile/--config name the run.",
    )
    ap.add_argument("results", nargs="?", help="results directory, e.g. results/demo")
    ap.add_argument("--run", action="store_true", help="the results of the run a snakemake command line makes")
    ap.add_argument("--json", action="store_true", help="print the funnel as JSON records")
    ap.add_argument("--out", help="also write the funnel table to this file (.tsv or .parquet)")
    args = ap.parse_args(argv)
    if args.run or not args.results:
        from .config import ConfigError, resolve_config, snakemake_config_args

        files, overrides = snakemake_config_args(snake_args)
        try:
            results = f"results/{resolve_config(files, overrides)['dataset']['name']}"
        except ConfigError as exc:
            print(f"animefaces funnel: {exc}", file=sys.stderr)
            return 2
        if args.run and not any(manifest_files(results, stage) for stage in STAGES):
            print(f"animefaces funnel: {results} has no stage manifests yet (nothing to count)")
            return 0
    else:
        results = args.results
    try:
        ledger = load_ledger(results)
    except FileNotFoundError as exc:
        print(f"animefaces funnel: {exc}", file=sys.stderr)
        return 1
    table = funnel(ledger)
    if args.json:
        print(json.dumps(table.to_dict(orient="records"), indent=1, default=str))
    else:
        print(format_funnel(table))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".parquet":
            table.to_parquet(out, index=False)
        else:
            table.to_csv(out, sep="\t", index=False)
    problems = reconcile(ledger)
    for p in problems:
        print(f"RECONCILE: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
