"""The ``filter`` config block: validation (the rating-scheme ambiguity) and the vectorised per-batch checks.

Checks run in ``ORDER``; a post gets the reason code of the FIRST check it fails, so the ledger is
deterministic. ``malformed_record`` and ``invalid_id`` are decided while reading (those rows have no usable
post id and go to ``unsharded.parquet``); ``missing_file`` is decided last, only for posts that passed every
other check, because it is the one check that touches the file system.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import fill_defaults
from ..idlists import read_list_file

ORDER = [
    "malformed_record",
    "invalid_id",
    "invalid_file_name",
    "unreadable_directory",
    "duplicate_id",
    "invalid_file_ext",
    "deleted",
    "banned",
    "flagged",
    "rating",
    "excluded_tag",
    "missing_required_tag",
    "missing_any_tag",
    "low_score",
    "image_too_small",
    "unsupported_format",
    "extension_not_allowed",
    "not_in_id_list",
    "missing_file",
]
CODE = {reason: i + 1 for i, reason in enumerate(ORDER)}  # 0 = kept
REASONS = [""] + ORDER  # code -> reason string
FILE_EXT_PATTERN = r"^[a-z0-9]{1,5}$"
SCHEMES = {"legacy": ("s", "q", "e"), "modern": ("g", "s", "q", "e")}
METADATA_KEYS = ("ratings", "require_tags", "exclude_tags", "any_tags", "min_score")
# image formats seen in the wild; those Pillow has no decoder for here are dropped as unsupported_format
IMAGE_LIKE_EXTENSIONS = (
    "avif", "heic", "heif", "jxl", "jp2", "j2k", "tif", "tiff", "psd", "ico", "tga", "dds", "exr", "hdr", "svg", "dng",
)  # fmt: skip


@functools.cache
def undecodable_extensions() -> frozenset[str]:
    """Extensions of image formats that Pillow (as installed) cannot decode."""
    from PIL import Image

    known = {ext.lstrip(".").lower() for ext in Image.registered_extensions()}
    return frozenset(ext for ext in IMAGE_LIKE_EXTENSIONS if ext not in known)


class FilterConfigError(ValueError):
    """A ``filter`` block that cannot be applied as written; the message names the key to fix."""


class RatingSchemeMismatch(ValueError):
    """The metadata uses a rating that does not exist in the configured ``filter.rating_scheme``."""


@dataclass
class FilterConfig:
    ratings: tuple[str, ...] = ()
    rating_scheme: str | None = None
    require_tags: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    any_tags: tuple[str, ...] = ()
    min_score: int | None = None
    min_width: int = 0
    min_height: int = 0
    extensions: tuple[str, ...] = ()
    drop_deleted: bool = True
    drop_banned: bool = True
    drop_flagged: bool = True
    id_list: str | None = None
    id_set: np.ndarray | None = field(default=None, repr=False)  # sorted unique ids read from id_list

    @property
    def uses_tags(self) -> bool:
        return bool(self.require_tags or self.exclude_tags or self.any_tags)


def check_filter_config(section: dict[str, Any]) -> FilterConfig:
    """Validate the (schema-defaulted) ``filter`` section beyond what JSON Schema can say; raise
    FilterConfigError naming the key. Does not read the id list (see :func:`load_filter`)."""
    section = fill_defaults(section, "filter")
    ratings = tuple(section.get("ratings") or ())
    scheme = section.get("rating_scheme")
    if scheme is not None and scheme not in SCHEMES:
        raise FilterConfigError(f"filter.rating_scheme must be legacy, modern or null, got {scheme!r}")
    if "s" in ratings and scheme is None:
        raise FilterConfigError(
            "filter.ratings contains 's', which is ambiguous: in Danbooru2017-2021 dumps (ratings s/q/e) 's' means "
            "SAFE, but in newer API data (ratings g/s/q/e) 's' means SENSITIVE and the safe rating is 'g'. "
            "Set filter.rating_scheme: legacy (s = safe) or filter.rating_scheme: modern (s = sensitive) to say "
            "which your metadata uses."
        )
    if scheme is not None:
        bad = [r for r in ratings if r not in SCHEMES[scheme]]
        if bad:
            raise FilterConfigError(
                f"filter.ratings contains {bad}, which the {scheme} rating scheme does not have "
                f"(it has {list(SCHEMES[scheme])}); fix filter.ratings or filter.rating_scheme"
            )
    ratings_set = set(ratings)
    if ratings_set and "g" in ratings_set and scheme is None:
        scheme = "modern"  # only the modern scheme has 'g'
    for key in ("require_tags", "exclude_tags", "any_tags"):
        for tag in section.get(key) or ():
            if not isinstance(tag, str) or not tag or any(ch.isspace() for ch in tag):
                raise FilterConfigError(f"filter.{key}: {tag!r} is not a tag name (Danbooru tags have no spaces)")
    both = set(section.get("require_tags") or ()) & set(section.get("exclude_tags") or ())
    if both:
        raise FilterConfigError(
            f"filter.require_tags and filter.exclude_tags both list {sorted(both)}: no post can pass"
        )
    for key in ("min_width", "min_height"):
        if int(section.get(key) or 0) < 0:
            raise FilterConfigError(f"filter.{key} must be >= 0")
    exts = tuple(section.get("extensions") or ())
    for ext in exts:
        if not isinstance(ext, str) or not ext.isascii() or not ext.isalnum() or ext != ext.lower() or len(ext) > 5:
            raise FilterConfigError(f"filter.extensions: {ext!r} is not a lower-case extension without the dot")
    return FilterConfig(
        ratings=ratings,
        rating_scheme=scheme,
        require_tags=tuple(section.get("require_tags") or ()),
        exclude_tags=tuple(section.get("exclude_tags") or ()),
        any_tags=tuple(section.get("any_tags") or ()),
        min_score=section.get("min_score"),
        min_width=int(section.get("min_width") or 0),
        min_height=int(section.get("min_height") or 0),
        extensions=exts,
        drop_deleted=bool(section["drop_deleted"]),
        drop_banned=bool(section["drop_banned"]),
        drop_flagged=bool(section["drop_flagged"]),
        id_list=section.get("id_list"),
    )


def read_id_list(path: str | os.PathLike[str]) -> np.ndarray:
    """Post ids from a text file: one integer per line, blank lines and ``#`` comments ignored."""
    ids: list[int] = []
    for lineno, text in read_list_file(path, "filter.id_list", FilterConfigError):
        if not (text.isascii() and text.isdigit()):
            raise FilterConfigError(
                f"filter.id_list {os.fspath(path)!r} line {lineno}: {text[:40]!r} is not a post id "
                "(expected one non-negative integer per line)"
            )
        ids.append(int(text))
    return np.unique(np.asarray(ids, dtype=np.int64))


def load_filter(section: dict[str, Any]) -> FilterConfig:
    cfg = check_filter_config(section)
    if cfg.id_list:
        cfg.id_set = read_id_list(cfg.id_list)
    return cfg


def check_rating_scheme(cfg: FilterConfig, ratings_seen: dict[str | None, int], where: str) -> None:
    """Fail when a legacy-scheme run meets 'g' ratings: that data is modern and its 's' means sensitive."""
    if cfg.rating_scheme == "legacy" and ratings_seen.get("g"):
        raise RatingSchemeMismatch(
            f"{where}: the metadata has rating 'g', which only exists in the modern rating scheme (g/s/q/e, where "
            "'s' means SENSITIVE), but filter.rating_scheme is legacy (s = safe). Set filter.rating_scheme: modern "
            "and pick filter.ratings for it (e.g. [g] for general-audience posts)."
        )


# ----------------------------------------------------------------------------------------- vectorised checks


def re2_literal(text: str) -> str:
    """``text`` as an RE2 pattern matching it literally (every non-word character as ``\\x{..}``)."""
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch == "_") else f"\\x{{{ord(ch):x}}}" for ch in text)


def tag_pattern(tags: tuple[str, ...] | list[str]) -> str:
    """RE2 pattern matching a space-separated tag string that contains any of ``tags`` as a whole tag."""
    alternatives = "|".join(re2_literal(t) for t in tags)
    return rf"(?:^|\s)(?:{alternatives})(?:\s|$)"


def has_any_tag(tag_strings: pa.Array, tags: tuple[str, ...] | list[str]) -> np.ndarray:
    """Which space-separated tag strings contain any of ``tags`` as a whole tag. A plain substring search picks
    the candidates first; the (slower) whole-tag regex runs only on those."""
    n = len(tag_strings)
    out = np.zeros(n, dtype=bool)
    if n == 0 or not tags:
        return out
    cand = np.zeros(n, dtype=bool)
    for tag in tags:
        cand |= _np_bool(pc.match_substring(tag_strings, tag))
    idx = np.flatnonzero(cand)
    if len(idx):
        sub = tag_strings.take(pa.array(idx))
        out[idx] = _np_bool(pc.match_substring_regex(sub, tag_pattern(tags)))
    return out


def first_tag_hit(tag_strings: pa.Array, tags: tuple[str, ...], present: bool) -> np.ndarray:
    """Per row, the index in ``tags`` of the first tag that is present (``present=True``) or absent
    (``present=False``); -1 where there is none."""
    first = np.full(len(tag_strings), -1, dtype=np.int32)
    for i, tag in enumerate(tags):
        hit = has_any_tag(tag_strings, [tag])
        if not present:
            hit = ~hit
        first[(first < 0) & hit] = i
    return first


def _np_bool(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _below(values: pa.Array, threshold: int) -> np.ndarray:
    """values < threshold where known (unknown values pass)."""
    return _np_bool(pc.less(values, pa.scalar(threshold, pa.int64())))


@dataclass
class Checks:
    """The result of :func:`apply_filters` on a batch: per-row reason code (0 = passed so far) and, for the tag
    checks, which configured tag decided (index into ``exclude_tags``/``require_tags``; -1 = none)."""

    code: np.ndarray
    excluded: np.ndarray
    missing: np.ndarray


def apply_filters(batch: dict[str, Any], cfg: FilterConfig, duplicate: np.ndarray, metadata: bool = True) -> Checks:
    """Reason codes for one batch of posts with usable ids, in ``ORDER`` (all but the reading-time checks and
    ``missing_file``). ``batch`` holds Arrow arrays ``post_id``, ``file_ext``, ``width``, ``height``, ``score``,
    ``rating``, ``deleted``, ``banned``, ``flagged`` and the tag strings ``general``, ``character``,
    ``copyright``, ``artist``, ``meta``; ``metadata=False`` (folder source) skips the checks that need Danbooru
    metadata."""
    n = len(batch["post_id"])
    code = np.zeros(n, dtype=np.int8)
    excluded = np.full(n, -1, dtype=np.int32)
    missing = np.full(n, -1, dtype=np.int32)

    def mark(reason: str, mask: np.ndarray) -> None:
        code[(code == 0) & mask] = CODE[reason]

    mark("duplicate_id", duplicate)
    ext = batch["file_ext"]
    mark("invalid_file_ext", ~_np_bool(pc.match_substring_regex(ext, FILE_EXT_PATTERN)))
    if metadata:
        if cfg.drop_deleted:
            mark("deleted", _np_bool(batch["deleted"]))
        if cfg.drop_banned:
            mark("banned", _np_bool(batch["banned"]))
        if cfg.drop_flagged:
            mark("flagged", _np_bool(batch["flagged"]))
        if cfg.ratings:
            mark("rating", ~_np_bool(pc.is_in(batch["rating"], value_set=pa.array(list(cfg.ratings), pa.string()))))
        live = np.flatnonzero(code == 0)
        if cfg.uses_tags and len(live):
            # tag checks only for the posts still in (they are the expensive ones)
            take = pa.array(live)
            all_tags = pc.binary_join_element_wise(
                *(batch[c].take(take) for c in ("general", "character", "copyright", "artist", "meta")), " "
            )
            sub = np.zeros(len(live), dtype=np.int8)
            if cfg.exclude_tags:
                first = first_tag_hit(all_tags, cfg.exclude_tags, present=True)
                excluded[live] = first
                sub[(sub == 0) & (first >= 0)] = CODE["excluded_tag"]
            if cfg.require_tags:
                first = first_tag_hit(all_tags, cfg.require_tags, present=False)
                missing[live] = first
                sub[(sub == 0) & (first >= 0)] = CODE["missing_required_tag"]
            if cfg.any_tags:
                sub[(sub == 0) & ~has_any_tag(all_tags, cfg.any_tags)] = CODE["missing_any_tag"]
            code[live] = sub
        if cfg.min_score is not None:
            mark("low_score", _below(batch["score"], int(cfg.min_score)))
    if cfg.min_width or cfg.min_height:
        small = np.zeros(n, dtype=bool)
        if cfg.min_width:
            small |= _below(batch["width"], cfg.min_width)
        if cfg.min_height:
            small |= _below(batch["height"], cfg.min_height)
        mark("image_too_small", small)
    if "unsupported" in batch:  # folder source: decided per file (see animefaces.ingest.folder)
        mark("unsupported_format", batch["unsupported"])
    else:
        mark(
            "unsupported_format",
            _np_bool(pc.is_in(ext, value_set=pa.array(sorted(undecodable_extensions()), pa.string()))),
        )
    if cfg.extensions:
        mark("extension_not_allowed", ~_np_bool(pc.is_in(ext, value_set=pa.array(list(cfg.extensions), pa.string()))))
    if cfg.id_set is not None:
        ids = np.asarray(batch["post_id"].to_numpy(zero_copy_only=False), dtype=np.int64)
        if len(cfg.id_set):
            pos = np.minimum(np.searchsorted(cfg.id_set, ids), len(cfg.id_set) - 1)
            listed = cfg.id_set[pos] == ids
        else:
            listed = np.zeros(n, dtype=bool)
        mark("not_in_id_list", ~listed)
    return Checks(code=code, excluded=excluded, missing=missing)
