"""Selection: the user's final say over which normalised faces go into the training packs (one global job).

Filters, applied in this order to every item that normalisation kept (the first one that drops an item gives its
ledger reason):

1. ``excluded_by_user``: ids listed in ``select.exclude_file`` (default ``config/exclude.txt``): one id per line,
   either an item id ``<post>_<n>`` (one face) or a post id ``<post>`` (all faces of that post); ``#`` starts a
   comment, blank lines are ignored. Editing this file reruns only ``select`` and what depends on it.
2. ``class_filtered``: ``select.classes`` (keep only these classes, by name from ``classes.tsv`` or by class id),
   ``select.keep_unlabelled`` (whether label-0 items survive), ``select.min_class_count`` (drop classes with fewer
   items left after the steps before).
3. ``low_d_score``: the discriminator-ranking cut (:mod:`animefaces.rank`), when ``select.drop_bottom_fraction`` > 0
   or ``select.min_d_score`` is set: the items in the bottom ``floor(fraction * N)`` of the ranked table
   (``RES/rank/scores.parquet``, N = its rows, i.e. exactly the bottom of the table the report shows) and those
   scoring below ``min_d_score``. Details: score, rank, rule. (:func:`select_items` takes any such ``rank_cut``.)

The sha256 of every selected image is re-checked against normalisation's manifest (an image changed after
normalisation is an error, not a silent change in the dataset).

Outputs: ``RES/select/manifests/all.parquet`` (ledger rows: one per normalise-kept item) and the final dataset
table ``RES/select/dataset.parquet`` (item_id, post_id, shard, path, label, character, sha256), ordered by post id
and face index: the order the packs use.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .classtable import read_classes
from .cliflags import add_section_flags, add_shard_set_flags, section_or_exit, shard_set_or_exit
from .columns import is_missing
from .config import ConfigError
from .idlists import list_entries, read_list_file
from .manifest import read_kept, shard_manifests, write_manifest
from .parallel import ordered_map
from .stage import item_manifest

STAGE = "select"
EXCLUDED_BY_USER = "excluded_by_user"
CLASS_FILTERED = "class_filtered"
LOW_D_SCORE = "low_d_score"
DATASET_COLUMNS = ["item_id", "post_id", "shard", "path", "label", "character", "sha256"]
_ID = re.compile(r"^(\d+)(?:_(\d+))?$")

Drops = dict[str, tuple[str, dict]]
# A ranking cut: given the items still selected (dataset columns), return {item_id: (reason code, details)}.
RankCut = Callable[[pd.DataFrame], Drops]


class SelectError(ValueError):
    """Bad selection input; the message names the file/line or config key to fix."""


@dataclass
class ExcludeList:
    """Parsed exclude file: item ids and post ids, each with the line it came from."""

    file: str = ""
    items: dict[str, int] = field(default_factory=dict)
    posts: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items) + len(self.posts)


def parse_exclude(lines: Iterable[str], source: str = "<exclude list>") -> ExcludeList:
    """Parse exclude-file lines (``<post>_<n>`` or ``<post>``, ``#`` comments, blank lines)."""
    return exclude_from_entries(list_entries(lines), source)


def exclude_from_entries(entries: Iterable[tuple[int, str]], source: str) -> ExcludeList:
    """The exclude list of ``(line number, entry)`` pairs (:mod:`animefaces.idlists`)."""
    out = ExcludeList(file=source)
    for number, text in entries:
        m = _ID.match(text)
        if not m:
            raise SelectError(
                f"{source}:{number}: {text!r} is not an item id (<post>_<n>, e.g. 4018204_0) or a post id "
                "(digits only); put one id per line and comments after '#'"
            )
        if m.group(2) is None:
            out.posts.setdefault(int(m.group(1)), number)
        else:
            out.items.setdefault(f"{int(m.group(1))}_{int(m.group(2))}", number)
    return out


def read_exclude(path: str | os.PathLike[str] | None) -> ExcludeList:
    if not path:
        return ExcludeList()
    return exclude_from_entries(read_list_file(path, "select.exclude_file", SelectError), str(path))


def read_class_table(path: str | os.PathLike[str] | None) -> pd.DataFrame:
    """``classes.tsv`` (:func:`animefaces.classtable.read_classes`); errors are SelectErrors."""
    return read_classes(path, SelectError)


def resolve_classes(wanted: list, table: pd.DataFrame) -> set[int]:
    """Class ids for ``select.classes`` entries (names as in classes.tsv, or integer class ids)."""
    by_name = dict(zip(table["name"], table["class_id"], strict=True))
    ids = set(table["class_id"].tolist())
    out: set[int] = set()
    for entry in wanted:
        if isinstance(entry, bool):
            raise SelectError(f"select.classes: {entry!r} is neither a class name nor a class id")
        if isinstance(entry, int):
            if entry not in ids:
                raise SelectError(f"select.classes: class id {entry} is not in the class table (ids: {sorted(ids)})")
            out.add(entry)
        elif entry in by_name:
            out.add(int(by_name[entry]))
        else:
            known = ", ".join(sorted(by_name)[:20]) or "(none)"
            raise SelectError(f"select.classes: no class named {entry!r} in the class table; known: {known}")
    return out


def load_items(manifests: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """The kept rows of the normalise manifests, with the columns select needs, sorted by post id and face."""
    manifests = list(manifests)
    df = read_kept(manifests)
    if len(df) == 0:  # nothing survived normalisation: an empty selection (the packs then say so)
        df = pd.DataFrame({c: pd.Series(dtype="object") for c in ("item_id", "path", "sha256", "label", "shard")})
        df["post_id"] = pd.Series(dtype="Int64")
    for col in ("item_id", "post_id", "path", "sha256", "label"):
        if col not in df.columns:
            raise SelectError(f"normalise manifests ({', '.join(map(str, manifests[:3]))}...) lack column {col!r}")
    if "character" not in df.columns:
        df["character"] = ""
    df = df.assign(
        item_id=df["item_id"].astype(str),
        label=df["label"].fillna(0).astype("int64"),
        character=df["character"].astype("string").fillna(""),
        path=df["path"].astype(str),
        sha256=df["sha256"].astype(str),
    )
    face = pd.to_numeric(df["item_id"].str.rsplit("_", n=1).str[-1], errors="coerce").fillna(0)
    df = df.assign(_face=face).sort_values(["post_id", "_face", "item_id"], kind="stable").drop(columns="_face")
    return df.reset_index(drop=True)


def _exclude_drops(items: pd.DataFrame, excl: ExcludeList) -> Drops:
    drops: Drops = {}
    for item_id, post_id in zip(items["item_id"], items["post_id"], strict=True):
        if item_id in excl.items:
            drops[item_id] = (EXCLUDED_BY_USER, {"file": excl.file, "line": excl.items[item_id], "matched": "item"})
        elif not is_missing(post_id) and int(post_id) in excl.posts:
            line = excl.posts[int(post_id)]
            drops[item_id] = (EXCLUDED_BY_USER, {"file": excl.file, "line": line, "matched": "post"})
    return drops


def _class_drops(items: pd.DataFrame, table: pd.DataFrame, params: dict) -> Drops:
    drops: Drops = {}
    wanted = resolve_classes(params["classes"], table) if params["classes"] else None
    for item_id, label in zip(items["item_id"], items["label"], strict=True):
        if label == 0 and not params["keep_unlabelled"]:
            drops[item_id] = (CLASS_FILTERED, {"label": 0, "rule": "keep_unlabelled"})
        elif label != 0 and wanted is not None and int(label) not in wanted:
            drops[item_id] = (CLASS_FILTERED, {"label": int(label), "rule": "classes"})
    minimum = int(params["min_class_count"])
    if minimum > 0:
        left = items[~items["item_id"].isin(drops) & (items["label"] != 0)]
        counts = left["label"].value_counts()
        small = {int(k): int(v) for k, v in counts.items() if v < minimum}
        for item_id, label in zip(left["item_id"], left["label"], strict=True):
            if int(label) in small:
                drops[item_id] = (
                    CLASS_FILTERED,
                    {"label": int(label), "rule": "min_class_count", "count": small[int(label)], "min": minimum},
                )
    return drops


def score_cut(scores: pd.DataFrame, params: dict) -> RankCut | None:
    """The ``low_d_score`` cut from a ranking table (None when neither key asks for one)."""
    fraction = float(params["drop_bottom_fraction"] or 0)
    threshold = params["min_d_score"]
    if fraction <= 0 and threshold is None:
        return None
    table = scores.sort_values("rank", kind="stable")
    bottom = int(np.floor(fraction * len(table) + 1e-9))
    named: dict[str, dict] = {}
    for row in table.head(bottom).itertuples():
        named[str(row.item_id)] = {"score": round(float(row.score_mean), 4), "rank": int(row.rank), "rule": "bottom"}
    if threshold is not None:
        for row in table[table["score_mean"] < float(threshold)].itertuples():
            named.setdefault(
                str(row.item_id),
                {"score": round(float(row.score_mean), 4), "rank": int(row.rank), "rule": "min_d_score"},
            )

    def cut(remaining: pd.DataFrame) -> Drops:
        missing = sorted(set(remaining["item_id"]) - set(table["item_id"].astype(str)))
        if missing:
            raise SelectError(
                f"the ranking table lacks {len(missing)} selected items (e.g. {missing[0]}): it is older than the "
                "normalised faces; rerun the rank rule"
            )
        return {i: (LOW_D_SCORE, named[i]) for i in remaining["item_id"] if i in named}

    return cut


def select_items(
    items: pd.DataFrame,
    params: dict,
    exclude: ExcludeList | None = None,
    classes: pd.DataFrame | None = None,
    rank_cut: RankCut | None = None,
) -> tuple[dict[str, tuple[str, dict]], pd.DataFrame]:
    """Apply the filters (module doc) to ``items`` (from :func:`load_items`). Returns the drops
    ({item_id: (reason, details)}) and the selected items (dataset columns, in order)."""
    exclude = exclude or ExcludeList()
    classes = read_class_table(None) if classes is None else classes
    drops: Drops = {}
    steps: list[Callable[[pd.DataFrame], Drops]] = [
        lambda df: _exclude_drops(df, exclude),
        lambda df: _class_drops(df, classes, params),
    ]
    if rank_cut is not None:
        steps.append(rank_cut)
    for step in steps:
        remaining = items[~items["item_id"].isin(drops)]
        for item_id, (reason, details) in step(remaining).items():
            if not reason:
                raise SelectError(f"a selection filter dropped item {item_id!r} without a reason code")
            drops.setdefault(item_id, (reason, details))
    kept = items[~items["item_id"].isin(drops)]
    return drops, kept[DATASET_COLUMNS].reset_index(drop=True)


def _sha256(path: str) -> str | None:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


def verify_hashes(dataset: pd.DataFrame, threads: int = 1) -> None:
    """Re-hash every selected image; raise naming the first missing or changed file."""
    paths = dataset["path"].tolist()
    actual = ordered_map(_sha256, paths, threads)
    for item_id, path, want, got in zip(dataset["item_id"], paths, dataset["sha256"], actual, strict=True):
        if got is None:
            raise SelectError(f"item {item_id}: normalised image {path} is missing; rerun normalise for its shard")
        if got != want:
            raise SelectError(
                f"item {item_id}: {path} changed after normalisation (sha256 {got[:12]} != manifest {want[:12]}); "
                "rerun normalise (snakemake --forcerun normalise)"
            )


@dataclass
class _Decision:
    """Select's verdict on one item for the stage skeleton: kept (no reason) or the filter's drop."""

    reason: str = ""
    details: dict = field(default_factory=dict)
    cols: dict = field(default_factory=dict)


def ledger_frame(items: pd.DataFrame, drops: Drops) -> pd.DataFrame:
    """One ledger row per input item (kept: path, label, character, sha256; dropped: reason and details, label
    and character kept), built by the stage skeleton (:func:`animefaces.stage.item_manifest`); each row keeps its
    item's shard."""

    def decide(rec: dict) -> _Decision:
        reason, details = drops.get(rec["item_id"], ("", {}))
        return _Decision(reason, details)

    carry = ["path", "label", "character", "sha256"]
    dtypes = {"path": "str", "label": "int64", "character": "str", "sha256": "str"}
    return item_manifest(
        STAGE, None, items, decide, 1, carry, [], dtypes, kept_on_drop=("label", "character"), progress=False
    )


def run(
    manifests: list[str],
    classes_path: str | None,
    params: dict,
    out_manifest: str,
    out_dataset: str,
    threads: int = 1,
    rank_cut: RankCut | None = None,
    scores: str | None = None,
) -> pd.DataFrame:
    """The whole stage: read, filter, verify, write the dataset table then the ledger manifest."""
    if rank_cut is None and scores:
        rank_cut = score_cut(pd.read_parquet(scores), params)
    elif rank_cut is None and (params["drop_bottom_fraction"] or params["min_d_score"] is not None):
        raise SelectError(
            "select.drop_bottom_fraction / select.min_d_score need a ranking table: set rank.network (see "
            "python -m animefaces.rank freeze)"
        )
    items = load_items(manifests)
    if "shard" not in items.columns:
        items["shard"] = ""
    exclude = read_exclude(params["exclude_file"])
    table = read_class_table(classes_path)
    drops, dataset = select_items(items, params, exclude, table, rank_cut)
    unmatched = [i for i in exclude.items if i not in set(items["item_id"])]
    unmatched += [str(p) for p in exclude.posts if p not in set(items["post_id"].dropna().astype(int))]
    if unmatched:
        print(
            f"select: {len(unmatched)} ids in {exclude.file} match no item normalisation kept (dropped earlier, "
            f"or a typo?): {', '.join(unmatched[:10])}",
            file=sys.stderr,
        )
    verify_hashes(dataset, threads)
    dataset = dataset.astype({"post_id": "Int64", "label": "int64"})
    with atomic_path(out_dataset, suffix=".parquet") as tmp:
        dataset.to_parquet(tmp, index=False)
    write_manifest(ledger_frame(items, drops), out_manifest)
    reasons = pd.Series([r for r, _ in drops.values()], dtype="string").value_counts().to_dict()
    print(f"select: {len(items)} items in, {len(dataset)} selected, dropped {reasons or 'none'}", file=sys.stderr)
    return dataset


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="animefaces select",
        description="Apply the exclude list and class filters to the normalised faces; write the final dataset table.",
    )
    ap.add_argument("--manifests", nargs="+", help="normalise manifests (RES/normalise/manifests/*)")
    ap.add_argument("--classes", help="class table RES/ingest/classes.tsv")
    ap.add_argument("--manifest-out", required=True, help="ledger manifest to write (RES/select/manifests/all.parquet)")
    ap.add_argument("--dataset-out", required=True, help="dataset table to write (RES/select/dataset.parquet)")
    ap.add_argument("--scores", help="the ranking table RES/rank/scores.parquet (for the low_d_score cut)")
    ap.add_argument("--threads", type=int, default=1, help="worker threads (default: %(default)s)")
    add_shard_set_flags(ap)
    add_section_flags(ap, "select")
    args = ap.parse_args(argv)
    if shard_set_or_exit(ap, args, args.manifests):
        args.manifests = shard_manifests(args.results, "normalise", args.shards)
    params = section_or_exit(ap, args, "select")
    try:
        run(args.manifests, args.classes, params, args.manifest_out, args.dataset_out, args.threads, scores=args.scores)
    except (SelectError, ConfigError) as exc:
        print(f"animefaces select: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
