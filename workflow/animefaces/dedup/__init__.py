"""Dedup stage (one global job): exact and near-duplicate removal across all shards.

``python -m animefaces.dedup --inputs RES/clean/manifests/000.parquet ... --outputs RES/dedup/manifests/000.parquet
... --pairs RES/dedup/pairs.parquet --params '{"max_distance": 8}'``, or ``--results RES --shards N`` for the
clean -> dedup manifests of every shard of the run (what the rule passes).

Modules: :mod:`.hashing` (pixel/file/perceptual hashes, computed by the clean stage), :mod:`.index` (sub-quadratic
Hamming search), :mod:`.core` (grouping and the survivor rule; see its docstring).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..atomic import atomic_path, remove_stale_temps_of
from ..cliflags import add_section_flags, add_shard_set_flags, section_or_exit, shard_runs_or_exit, shard_set_or_exit
from ..manifest import read_manifest, shard_manifests, write_manifest
from ..progress import track
from .core import EXACT, NEAR, dedup_manifests, find_duplicates
from .index import all_pairs, near_pairs, plan

__all__ = ["EXACT", "NEAR", "all_pairs", "dedup_manifests", "find_duplicates", "main", "near_pairs", "plan"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="animefaces dedup",
        description="Drop exact and near duplicates across every shard's clean manifest (one global job).",
    )
    ap.add_argument("--inputs", nargs="+", help="clean manifests, one per shard")
    ap.add_argument("--outputs", nargs="+", help="dedup manifests, same order and count as --inputs")
    ap.add_argument("--pairs", required=True, help="Parquet table of every duplicate pair found")
    add_shard_set_flags(ap)
    add_section_flags(ap, "dedup")
    args = ap.parse_args(argv)
    if shard_set_or_exit(ap, args, args.inputs or args.outputs):
        args.inputs = shard_manifests(args.results, "clean", args.shards)
        args.outputs = shard_manifests(args.results, "dedup", args.shards)
    elif not (args.inputs and args.outputs):
        ap.error("--inputs and --outputs go together")
    runs = shard_runs_or_exit(ap, None, inputs=args.inputs, outputs=args.outputs)
    params = section_or_exit(ap, args, "dedup")
    t0 = time.perf_counter()
    frames = {shard: read_manifest(files["inputs"]) for shard, files in track(runs, "dedup read", unit="shards")}
    shard_of_output = {shard: files["outputs"] for shard, files in runs}
    results, pairs, summary = dedup_manifests(frames, params)
    with atomic_path(args.pairs, suffix=".parquet") as tmp:
        pairs.to_parquet(tmp, index=False, compression="zstd")
    remove_stale_temps_of(shard_of_output.values())  # (one listing of the folder, not one per manifest)
    for shard, frame in results.items():
        write_manifest(frame, shard_of_output[shard], clean_stale=False)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(summary, sort_keys=True), file=sys.stderr)
    return 0
