"""Clean stage (per shard): fully decode every face crop, drop unusable ones, hash the rest for dedup.

Checks, in order (the first that fails names the ledger reason):
1. ``blocklisted`` by item id or post id (``clean.blocklist``);
2. ``empty_file`` / ``file_too_small`` from the file size (``clean.min_file_bytes``; the seed used 40 KB; 0 = off);
3. a full decode with :func:`animefaces.decode.load_rgb` (not just ``verify()``): ``undecodable``, ``truncated``,
   ``decompression_bomb`` (Pillow's pixel limit: recorded, never a crash);
4. ``blocklisted`` by file or decoded-pixel SHA-256;
5. ``too_small``: ``min(width, height) < clean.min_size``;
6. the monochrome tests listed in ``clean.monochrome`` (in that order):
   ``greyscale``: fewer than ``greyscale.min_coloured_fraction`` of the pixels have a saturation (chroma,
   ``(max(R,G,B) - min(R,G,B)) / 255``) above ``greyscale.saturation``. Chroma rather than HSV saturation
   because HSV saturation explodes on dark pixels, where JPEG noise alone would make a grey picture "coloured".
   ``low_colour``: fewer than ``low_colour.min_colours`` distinct RGB colours (the seed's ``< 257`` test).

Kept rows carry the crop columns forward and add ``width``, ``height`` (decoded), ``file_bytes``, ``file_sha256``,
``pixel_sha256``, ``perceptual_hash`` (64-bit, as int64; algorithm ``dedup.hash``, recorded in
``perceptual_hash_method``), ``colour_thumb``
(16 x 16 RGB block means, hex; dedup's colour check), ``sharpness`` and ``blockiness`` (dedup's survivor
rule, :mod:`animefaces.dedup.quality`), ``source_format`` and ``lossless`` (from the *source*
post's file: sniffed from its bytes, else ``source_ext``).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .cliflags import add_section_flags, section_or_exit, shard_runs_or_exit
from .columns import is_missing, str_or_none
from .config import fill_defaults
from .decode import ImageRejected, format_of_file, is_lossless, load_rgb, read_file
from .dedup.hashing import colour_thumb, file_sha256, perceptual_hash, pixel_sha256
from .dedup.quality import blockiness, sharpness
from .faults import raise_if_fault
from .idlists import read_list_file
from .manifest import read_kept, write_manifest
from .stage import carried_columns, item_manifest, print_summary

STAGE = "clean"
BLOCKLISTED = "blocklisted"
FILE_TOO_SMALL = "file_too_small"
TOO_SMALL = "too_small"
GREYSCALE = "greyscale"
LOW_COLOUR = "low_colour"
MONOCHROME_TESTS = (GREYSCALE, LOW_COLOUR)
KEPT_COLUMNS = [
    "path",
    "width",
    "height",
    "file_bytes",
    "file_sha256",
    "pixel_sha256",
    "perceptual_hash",
    "perceptual_hash_method",
    "colour_thumb",
    "sharpness",
    "blockiness",
    "source_format",
    "lossless",
]
# Nullable dtypes: dropped rows have no hashes, and a float column would silently round 64-bit hashes.
KEPT_DTYPES = {
    "width": "Int64",
    "height": "Int64",
    "file_bytes": "Int64",
    "file_sha256": "string",
    "pixel_sha256": "string",
    "perceptual_hash": "Int64",
    "perceptual_hash_method": "string",
    "colour_thumb": "string",
    "sharpness": "Float64",
    "blockiness": "Float64",
    "source_format": "string",
    "lossless": "boolean",
}
_EXT_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP", "bmp": "BMP"}


@dataclass
class Blocklist:
    """Item ids, post ids and SHA-256 digests (file or decoded pixels) to drop."""

    ids: set[str] = field(default_factory=set)
    digests: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.ids) + len(self.digests)


def load_blocklist(path: str | os.PathLike[str] | None) -> Blocklist:
    """Read a blocklist file: one entry per line (item id, post id, or 64-hex SHA-256), ``#`` starts a comment."""
    bl = Blocklist()
    if not path:
        return bl
    for _, entry in read_list_file(path, "clean.blocklist"):
        low = entry.lower()
        if len(low) == 64 and all(c in "0123456789abcdef" for c in low):
            bl.digests.add(low)
        else:
            bl.ids.add(entry)
    return bl


def coloured_fraction(rgb: np.ndarray, saturation: float) -> float:
    """Fraction of pixels whose chroma ``(max - min) / 255`` exceeds ``saturation``."""
    chroma = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)
    return float(np.count_nonzero(chroma > saturation * 255) / chroma.size)


def count_colours(rgb: np.ndarray, stop_at: int | None = None) -> int:
    """Distinct RGB colours; with ``stop_at``, may return any value >= ``stop_at`` as soon as that is certain."""
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    packed = packed.ravel()
    if stop_at is not None and packed.size > 4 * 4096:
        # a strided sample first: most colour pictures exceed the threshold already there
        sample = np.unique(packed[:: max(1, packed.size // 4096)])
        if sample.size >= stop_at:
            return int(sample.size)
    return int(np.unique(packed).size)


def source_format(source_path: str | None, source_ext: str | None) -> str | None:
    """The source post's container format: sniffed from the file when it exists, else from its extension."""
    if source_path and Path(source_path).is_file():
        fmt, webp_ll = format_of_file(source_path)
        if fmt:
            return "WEBP_LOSSLESS" if webp_ll else fmt
    ext = (source_ext or "").lower().lstrip(".")
    return _EXT_FORMATS.get(ext)


def _lossless(fmt: str | None) -> bool:
    return fmt == "WEBP_LOSSLESS" or is_lossless(fmt)


@dataclass
class Verdict:
    """What clean decided for one item: ``reason`` empty = kept; ``cols`` are the kept row's new columns."""

    reason: str = ""
    details: dict = field(default_factory=dict)
    cols: dict = field(default_factory=dict)


def check_image(
    path: str | os.PathLike[str],
    params: dict,
    blocklist: Blocklist | None = None,
    ids: tuple[str, ...] = (),
    source: tuple[str | None, str | None] = (None, None),
    hash_method: str | None = None,
) -> Verdict:
    """Run every clean check on one crop file (``ids``: item id / post id for the blocklist;
    ``source``: (source_path, source_ext) of the post it was cut from, for ``lossless``; ``hash_method``: the
    perceptual hash dedup compares, ``dedup.hash``, None = its schema default)."""
    hash_method = hash_method or dedup_hash_method()
    blocklist = blocklist or Blocklist()
    for ident in ids:
        if ident and ident in blocklist.ids:
            return Verdict(BLOCKLISTED, {"matched": ident})
    p = Path(path)
    try:
        data = read_file(p)
    except ImageRejected as exc:
        return Verdict(exc.reason, {"error": exc.detail})
    except OSError as exc:
        # the crop file is our own output, listed by crop: vanished, I/O error, no permission = fail the job
        raise_if_fault(exc, own_file=True)
        return Verdict("undecodable", {"error": f"cannot read {p}: {exc}"})
    if not data:
        return Verdict("empty_file", {"error": "file has 0 bytes"})
    min_bytes = int(params["min_file_bytes"])
    if min_bytes and len(data) < min_bytes:
        return Verdict(FILE_TOO_SMALL, {"file_bytes": len(data), "min_file_bytes": min_bytes})
    try:
        img = load_rgb(p, data=data)
    except ImageRejected as exc:
        return Verdict(exc.reason, {"error": exc.detail})
    rgb = img.rgb
    fsha = file_sha256(data)
    psha = pixel_sha256(rgb)
    for digest in (fsha, psha):
        if digest in blocklist.digests:
            return Verdict(BLOCKLISTED, {"matched": digest})
    h, w = rgb.shape[:2]
    if min(w, h) < int(params["min_size"]):
        return Verdict(TOO_SMALL, {"width": w, "height": h, "min_size": int(params["min_size"])})
    for test in params["monochrome"]:
        if test == GREYSCALE:
            g = params["greyscale"]
            frac = coloured_fraction(rgb, float(g["saturation"]))
            if frac < float(g["min_coloured_fraction"]):
                return Verdict(
                    GREYSCALE,
                    {
                        "coloured_fraction": round(frac, 5),
                        "saturation": g["saturation"],
                        "min_coloured_fraction": g["min_coloured_fraction"],
                    },
                )
        elif test == LOW_COLOUR:
            need = int(params["low_colour"]["min_colours"])
            n = count_colours(rgb, stop_at=need)
            if n < need:
                return Verdict(LOW_COLOUR, {"colours": n, "min_colours": need})
        else:
            raise ValueError(f"clean.monochrome: unknown test {test!r} (choose from {list(MONOCHROME_TESTS)})")
    src_fmt = source_format(*source)
    if src_fmt is None:  # no source information: the crop's own container is the best we know
        src_fmt = "WEBP_LOSSLESS" if img.format == "WEBP" and img.info.get("webp_lossless") else img.format
    notes = {k: img.info[k] for k in ("icc", "icc_error", "exif_orientation", "frames") if img.info.get(k)}
    notes = {k: v for k, v in notes.items() if not (k == "exif_orientation" and v == 1)}
    if notes.get("frames") == 1:
        notes.pop("frames")
    return Verdict(
        "",
        notes,
        {
            "width": int(w),
            "height": int(h),
            "file_bytes": len(data),
            "file_sha256": fsha,
            "pixel_sha256": psha,
            "perceptual_hash": perceptual_hash(rgb, hash_method),
            "perceptual_hash_method": hash_method,
            "colour_thumb": colour_thumb(rgb),
            "sharpness": round(sharpness(rgb), 3),
            "blockiness": round(blockiness(rgb), 4),
            "source_format": src_fmt,
            "lossless": _lossless(src_fmt),
        },
    )


def dedup_hash_method(dedup_params: dict | None = None) -> str:
    """The perceptual hash clean computes for dedup: ``dedup.hash`` (dedup owns the choice)."""
    return fill_defaults(dedup_params or {}, "dedup")["hash"]


def clean_frame(
    items: pd.DataFrame,
    shard: str,
    params: dict,
    blocklist: Blocklist | None = None,
    threads: int = 1,
    hash_method: str | None = None,
) -> pd.DataFrame:
    """The clean manifest for the kept rows of a crop manifest (one output row per input row)."""

    def run(rec: dict) -> Verdict:
        post = rec.get("post_id")
        post_s = None if is_missing(post) else str(int(post))
        ids = tuple(x for x in (str(rec["item_id"]), post_s) if x)
        source = (str_or_none(rec.get("source_path")), str_or_none(rec.get("source_ext")))
        try:
            return check_image(rec["path"], params, blocklist, ids, source, hash_method)
        except ImageRejected as exc:  # pragma: no cover - check_image maps these itself
            return Verdict(exc.reason, {"error": exc.detail})

    def drop_details(rec: dict, v: Verdict) -> dict:
        return {"path": str(rec["path"]), **v.details}

    carry = carried_columns(items)
    return item_manifest(
        STAGE, shard, items, run, threads, carry, KEPT_COLUMNS, KEPT_DTYPES, drop_details, unit="crops"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="animefaces clean",
        description="Decode every face crop of a shard (or of several in turn: each flag one value per shard), drop "
        "unusable ones with a reason, hash the rest for dedup.",
    )
    ap.add_argument(
        "--input", nargs="+", required=True, help="crop manifest of each shard (RES/crop/manifests/<shard>.parquet)"
    )
    ap.add_argument("--output", nargs="+", required=True, help="clean manifest to write for each shard")
    ap.add_argument("--shard", nargs="+", help="shard names (default: the input files' stems)")
    ap.add_argument("--threads", type=int, default=1, help="worker threads (default: %(default)s)")
    ap.add_argument("--hash", help="perceptual hash for dedup (the config's dedup.hash; default: its schema default)")
    add_section_flags(ap, STAGE)
    args = ap.parse_args(argv)
    params = section_or_exit(ap, args, STAGE)
    runs = shard_runs_or_exit(ap, args.shard, input=args.input, output=args.output)
    blocklist = load_blocklist(params["blocklist"])
    for shard, paths in runs:
        t0 = time.perf_counter()
        items = read_kept(paths["input"])
        frame = clean_frame(items, shard, params, blocklist, args.threads, args.hash)
        write_manifest(frame, paths["output"])
        print_summary(frame, items, shard, t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
