"""Schema detection and normalisation of one Danbooru post record to the internal fields ingest uses.

Two real shapes, detected per record (see ``../shared/data/metadata/SCHEMA.md``):

- **nested** (Danbooru2017-2020 dumps): ``tags`` is a list of ``{"id", "name", "category"}``; every number is a
  JSON string (``"id": "263162"``) and ``"0"`` means "none" for ids.
- **flat** (Danbooru2021 dump and the JSON API): ``tag_string_general``/``_character``/``_copyright``/``_artist``/
  ``_meta`` hold space-separated tags; numbers are integers or numeric strings; ``null`` means none.
  A record with only ``tag_string`` (no categories) is read as **uncategorised**: all its tags count as general.

Numbers are accepted as JSON integers, integral floats or ASCII digit strings; anything else counts as unknown.
Unknown fields are ignored. Only the post ``id`` is mandatory (a positive integer below 2**63); everything else
may be missing and is then unknown (``None``) or empty.
"""

from __future__ import annotations

import re
from typing import Any

MAX_ID = (1 << 63) - 1
CATEGORY_FIELDS = {  # Danbooru tag category code -> our name (2 is unused by Danbooru)
    0: "general",
    1: "artist",
    3: "copyright",
    4: "character",
    5: "meta",
}
FLAT_TAG_FIELDS = {
    "general": "tag_string_general",
    "artist": "tag_string_artist",
    "copyright": "tag_string_copyright",
    "character": "tag_string_character",
    "meta": "tag_string_meta",
}
SHAPES = ("nested", "flat", "uncategorised", "no_tags")
TAG_WS = " \t\n\r\x0b\x0c"  # stripped from the ends of tag strings (ASCII whitespace)
_BAD_TAG_CHARS = re.compile(r"[\x00-\x20\x7f]+")


def to_int(value: Any) -> int | None:
    """An integer from a JSON int, an integral float or an ASCII digit string (optionally signed); else None."""
    t = type(value)
    if t is int:
        return value
    if t is str:
        s = value.strip()
        if s.isascii():
            if s.isdigit():
                return int(s)
            if s[:1] in ("-", "+") and s[1:].isdigit():
                return int(s)
        return None
    if t is float and value.is_integer():
        return int(value)
    return None


def to_bool(value: Any) -> bool:
    """JSON booleans, and the strings/ints some exports use instead ("true", "t", "1", 1)."""
    if value is True or value is False or value is None:
        return value is True
    if type(value) is str:
        return value.strip().lower() in ("true", "t", "1", "yes")
    if type(value) is int:
        return value == 1
    return False


def to_str(value: Any) -> str | None:
    return value if type(value) is str else None


def post_id(record: dict) -> int | None:
    """The record's post id if it is a usable one (a positive integer that fits Int64), else None."""
    pid = record.get("id")
    if type(pid) is not int:
        pid = to_int(pid)
    if pid is None or pid < 1 or pid > MAX_ID:
        return None
    return pid


def clean_tag(name: str) -> str:
    """Danbooru tag names never contain spaces or control characters; if a broken record has some, the tag is
    kept as one token with ``_`` in their place (so space-joined tag strings stay parseable)."""
    if _BAD_TAG_CHARS.search(name) is None:
        return name
    return "_".join(part for part in _BAD_TAG_CHARS.split(name) if part)


def nested_tags(tags: list) -> dict[str, list[str]]:
    """Group a nested ``tags`` list by category; entries that are not ``{"name": str, ...}`` are skipped.
    An unknown category code counts as general."""
    out: dict[str, list[str]] = {"general": [], "artist": [], "copyright": [], "character": [], "meta": []}
    for entry in tags:
        if type(entry) is not dict:
            if type(entry) is str and entry:  # a bare tag name
                name = clean_tag(entry)
                if name:
                    out["general"].append(name)
            continue
        name = entry.get("name")
        if type(name) is not str or not name:
            continue
        cat = entry.get("category")
        if type(cat) is not int:
            cat = to_int(cat)
        name = clean_tag(name)
        if name:
            out[CATEGORY_FIELDS.get(cat, "general")].append(name)  # type: ignore[arg-type]
    return out


def record_tags(record: dict) -> tuple[str, dict[str, str]]:
    """``(shape, {category: space-joined tags})`` for a post record of either shape."""
    tags = record.get("tags")
    if type(tags) is list:
        grouped = nested_tags(tags)
        return "nested", {k: " ".join(v) for k, v in grouped.items()}
    flat = {}
    found = False
    for cat, field in FLAT_TAG_FIELDS.items():
        value = record.get(field)
        if type(value) is str:
            found = True
            flat[cat] = value.strip(TAG_WS)
        else:
            flat[cat] = ""
    if found:
        return "flat", flat
    loose = record.get("tag_string")
    if type(loose) is not str:
        loose = tags if type(tags) is str else None
    if type(loose) is str:
        flat["general"] = loose.strip(TAG_WS)
        return "uncategorised", flat
    return "no_tags", flat


def normalise(record: dict) -> dict[str, Any]:
    """The internal fields of one post record: the readable reference for the hot loop in
    ``core.Ingestor.add_records`` (the tests check that both agree).

    Keys: ``id``, ``shape``, ``file_ext``, ``width``, ``height``, ``score``, ``rating``, ``md5``, ``deleted``,
    ``banned``, ``flagged`` and the tag strings ``general``, ``artist``, ``copyright``, ``character``, ``meta``.
    """
    shape, tags = record_tags(record)
    return {
        "id": post_id(record),
        "shape": shape,
        "file_ext": to_str(record.get("file_ext")),
        "width": to_int(record.get("image_width")),
        "height": to_int(record.get("image_height")),
        "score": to_int(record.get("score")),
        "rating": to_str(record.get("rating")),
        "md5": to_str(record.get("md5")) or "",
        "deleted": to_bool(record.get("is_deleted")),
        "banned": to_bool(record.get("is_banned")),
        "flagged": to_bool(record.get("is_flagged")),
        **tags,
    }


def describe_bad_id(value: Any, limit: int = 60) -> str:
    """A short rendering of an unusable id for the ledger details."""
    if value is None:
        return "missing"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
