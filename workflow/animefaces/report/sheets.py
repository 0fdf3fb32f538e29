"""Contact sheets of the data: a sample of the final kept faces, examples of every drop reason, duplicate pairs."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .data import ImageIndex, Sources, dropped, load_rows, parse_details, short_details, stable_sample
from .images import Tile, contact_sheet, hstack, save_png, vstack, with_title, wrap

# Ingest drops are metadata decisions (rating, tags, score, ...): counted in the funnel, never shown as pictures
# (showing e.g. rating-filtered posts in a report is exactly what the filter was for).
PICTURE_STAGES = ["crop", "clean", "dedup", "normalise", "select"]
DETAIL_LINES = 2  # caption lines of ledger details under each dropped item


def kept_sheet(
    dataset: str | os.PathLike[str],
    out: str | os.PathLike[str],
    n: int = 64,
    cols: int = 8,
    tile: int = 96,
    base: str | os.PathLike[str] = ".",
) -> int:
    """A stable sample of ``n`` faces of the final dataset (``RES/select/dataset.parquet``); returns the count."""
    df = pd.read_parquet(dataset)
    if "path" not in df.columns or "item_id" not in df.columns:
        raise ValueError(f"{dataset}: needs columns 'item_id' and 'path' (the select stage's final manifest)")
    df = df.assign(item_id=df["item_id"].astype(str)).set_index("item_id")
    ids = stable_sample(df.index, n)
    tiles = []
    for item in sorted(ids):
        row = df.loc[item]
        lines = [item]
        character = row.get("character") if hasattr(row, "get") else None
        if isinstance(character, str) and character:
            lines.append(character)
        path = Path(str(row["path"]))
        tiles.append(Tile(path=path if path.is_absolute() else Path(base) / path, lines=lines))
    title = f"{len(ids)} of {len(df):,} faces in the final dataset (stable sample)"
    save_png(contact_sheet(tiles, cols=cols, tile=tile, title=title, empty_message="the dataset is empty"), out)
    return len(ids)


def drop_sheet_name(stage: str, reason: str) -> str:
    return f"{stage}-{reason}.png"


def drop_examples(rows: pd.DataFrame, stage: str, reason: str, n: int) -> tuple[pd.DataFrame, int]:
    """A stable sample of ``n`` rows that ``stage`` dropped for ``reason`` (indexed by item id), and the total."""
    df = dropped(rows, [stage])
    df = df[df["reason"] == reason].drop_duplicates("item_id").set_index("item_id")
    return df.loc[sorted(stable_sample(df.index.astype(str), n))], len(df)


def drop_tiles(examples: pd.DataFrame, index: ImageIndex, stage: str, tile_px: int = 128) -> list[Tile]:
    """One tile per dropped item: the picture the stage looked at, the item id and the ledger details."""
    tiles = []
    for item, row in examples.iterrows():
        path = index.input_image(stage, str(item))
        if path is None and isinstance(row["path"], str) and row["path"]:
            path = index.resolve(row["path"])
        details = wrap(short_details(row["details"]), tile_px, DETAIL_LINES, sep=", ")
        tiles.append(Tile(path=path, lines=[str(item), *details]))
    return tiles


def drop_sheets(
    sources: Sources,
    outdir: str | os.PathLike[str],
    n: int = 32,
    cols: int = 8,
    tile: int = 128,
    base: str | os.PathLike[str] = ".",
    stages: list[str] | None = None,
) -> list[Path]:
    """One contact sheet per (stage, reason) with drops, ``<outdir>/<stage>-<reason>.png``; returns the files.

    The picture of a dropped item is what the stage looked at: the source image for crop drops, the crop for
    clean/dedup drops, and so on (see :class:`ImageIndex`)."""
    rows = load_rows(sources)
    df = dropped(rows, stages or PICTURE_STAGES)
    groups = [
        (stage, reason, *drop_examples(rows, stage, reason, n))
        for stage in PICTURE_STAGES
        if stage in set(df["stage"])
        for reason in sorted(df.loc[df["stage"] == stage, "reason"].unique())
    ]
    index = ImageIndex(rows, base, ids={str(i) for *_, ex, _ in groups for i in ex.index})
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for stage, reason, examples, total in groups:
        tiles = drop_tiles(examples, index, stage, tile)
        title = f"{stage}: {reason} ({len(tiles)} of {total:,} dropped items)"
        path = outdir / drop_sheet_name(stage, reason)
        save_png(contact_sheet(tiles, cols=cols, tile=tile, title=title, lines=1 + DETAIL_LINES), path)
        written.append(path)
    return written


def duplicate_pairs(rows: pd.DataFrame) -> pd.DataFrame:
    """(dropped item, survivor, distance, reason) from the dedup ledger rows' details, near duplicates first,
    farthest first (the borderline matches a person should look at), then exact duplicates."""
    df = dropped(rows, ["dedup"])
    records = []
    for item, reason, text in zip(df["item_id"], df["reason"], df["details"], strict=True):
        details = parse_details(text)
        survivor = details.get("duplicate_of")
        if survivor is None:
            continue
        distance = details.get("distance")
        records.append(
            {
                "item_id": str(item),
                "duplicate_of": str(survivor),
                "distance": float(distance) if isinstance(distance, int | float) else float("nan"),
                "reason": str(reason),
            }
        )
    pairs = pd.DataFrame(records, columns=["item_id", "duplicate_of", "distance", "reason"])
    pairs["_exact"] = pairs["reason"] == "exact_duplicate"
    pairs = pairs.sort_values(["_exact", "distance", "item_id"], ascending=[True, False, True], na_position="last")
    return pairs.drop(columns="_exact").reset_index(drop=True)


def pairs_sheet(
    sources: Sources,
    out: str | os.PathLike[str],
    n: int = 24,
    per_row: int = 3,
    tile: int = 112,
    base: str | os.PathLike[str] = ".",
) -> int:
    """Duplicate pairs side by side (dropped copy | survivor, with the Hamming distance); returns pairs shown."""
    rows = load_rows(sources, ["ingest", "crop", "clean", "dedup"])
    pairs = duplicate_pairs(rows)
    shown = pairs.head(n)
    index = ImageIndex(rows, base, ids=set(shown["item_id"]) | set(shown["duplicate_of"]))
    tiles = []
    for row in shown.to_dict(orient="records"):
        dist = "" if pd.isna(row["distance"]) else f"d={row['distance']:g}"
        kind = "exact" if row["reason"] == "exact_duplicate" else "near"
        tiles.append(Tile(path=index.input_image("dedup", row["item_id"]), lines=[row["item_id"], f"{kind} {dist}"]))
        tiles.append(
            Tile(
                path=index.input_image("dedup", row["duplicate_of"], include_self=True),
                lines=[row["duplicate_of"], "kept"],
            )
        )
    n_exact = int((pairs["reason"] == "exact_duplicate").sum())
    title = (
        f"{len(shown)} of {len(pairs):,} duplicate pairs ({n_exact:,} exact, {len(pairs) - n_exact:,} near): "
        "dropped copy | kept survivor"
    )
    if not tiles:
        sheet = contact_sheet([], tile=tile, title=title, empty_message="no duplicates found")
    else:
        groups = [contact_sheet(tiles[i : i + 2], cols=2, tile=tile, lines=2) for i in range(0, len(tiles), 2)]
        rows_img = [hstack(groups[i : i + per_row], pad=12) for i in range(0, len(groups), per_row)]
        sheet = with_title(vstack(rows_img, pad=0), title)
    save_png(sheet, out)
    return len(shown)
