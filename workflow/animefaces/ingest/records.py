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

A record is first reduced to a :class:`RawPost` (the 17 fields ingest reads, values as decoded, untyped): the fast
reader decodes JSON straight into it (``msgspec`` skips every other field without building it), the exact reader
via :func:`raw_post` from a ``json`` dict. :func:`normalise_batch` then turns a batch of them into typed columns:
the ONE coding of the rules above, run column by column (a column whose values all have the expected type is
taken as it is; otherwise each value goes through ``to_int``/``to_bool``/...). :func:`normalise` is the same
function on one record, for reading and testing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

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


MAX_DIGITS = 40  # a digit string longer than this (leading zeros aside) is beyond any Int64: unknown


def to_int(value: Any) -> int | None:
    """An integer from a JSON int, an integral float or an ASCII digit string (optionally signed); else None.
    Digit strings with more than ``MAX_DIGITS`` significant digits give None (they exceed Int64 anyway, and
    Python refuses to convert more than 4300 digits)."""
    t = type(value)
    if t is int:
        return value
    if t is str:
        s = value.strip()
        if s.isascii():
            digits = s[1:] if s[:1] in ("-", "+") else s
            if digits.isdigit():
                if len(digits) > MAX_DIGITS and len(digits.lstrip("0")) > MAX_DIGITS:
                    return None
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


def clean_tag(name: str) -> str:
    """Danbooru tag names never contain spaces or control characters; if a broken record has some, the tag is
    kept as one token with ``_`` in their place (so space-joined tag strings stay parseable)."""
    if _BAD_TAG_CHARS.search(name) is None:
        return name
    return "_".join(part for part in _BAD_TAG_CHARS.split(name) if part)


_CATEGORY_OF = {**CATEGORY_FIELDS, **{str(code): name for code, name in CATEGORY_FIELDS.items()}}
_GROUPS = ("general", "artist", "copyright", "character", "meta")


def nested_tags(tags: list) -> dict[str, list[str]]:
    """Group a nested ``tags`` list by category; entries that are not ``{"name": str, ...}`` are skipped.
    An unknown category code counts as general.

    (The hot loop of the Danbooru2017-2020 shape, ~30 entries per post: the usual category codes -- ints or
    the dumps' digit strings -- are one dict lookup, anything else goes through ``to_int``; names are checked
    for spaces and control characters once per post, joined, and cleaned one by one only when there are some.)"""
    out: dict[str, list[str]] = {group: [] for group in _GROUPS}
    category_of = _CATEGORY_OF.get
    names: list[str] = []
    for entry in tags:
        if type(entry) is not dict:
            if type(entry) is str and entry:  # a bare tag name
                out["general"].append(entry)
                names.append(entry)
            continue
        name = entry.get("name")
        if type(name) is not str or not name:
            continue
        cat = entry.get("category")
        t = type(cat)
        group = category_of(cat) if t is str or t is int else None
        if group is None:
            group = CATEGORY_FIELDS.get(cat if t is int else to_int(cat), "general")  # type: ignore[arg-type]
        out[group].append(name)
        names.append(name)
    if _BAD_TAG_CHARS.search("".join(names)) is not None:  # rare: clean each name, drop those left empty
        for group, found in out.items():
            out[group] = [c for c in map(clean_tag, found) if c]
    return out


class RawPost(msgspec.Struct, gc=False):
    """The fields of a post record that ingest reads, as decoded (any JSON type; ``None`` when absent)."""

    id: Any = None
    file_ext: Any = None
    image_width: Any = None
    image_height: Any = None
    score: Any = None
    rating: Any = None
    md5: Any = None
    is_deleted: Any = None
    is_banned: Any = None
    is_flagged: Any = None
    tags: Any = None
    # read only for records without categorised tags: decoded lazily (``loose_tags``); ``raw_post`` stores the
    # decoded value here directly
    tag_string: msgspec.Raw = None  # type: ignore[assignment]
    tag_string_general: Any = None
    tag_string_character: Any = None
    tag_string_copyright: Any = None
    tag_string_artist: Any = None
    tag_string_meta: Any = None


RAW_FIELDS = RawPost.__struct_fields__


def raw_post(record: dict) -> RawPost:
    """The :class:`RawPost` of a decoded JSON object (what the fast reader decodes directly)."""
    return RawPost(*map(record.get, RAW_FIELDS))


def record_tags(post: RawPost) -> tuple[str, dict[str, str]]:
    """``(shape, {category: space-joined tags})`` for a post record of either shape."""
    tags = post.tags
    if type(tags) is list:
        grouped = nested_tags(tags)
        return "nested", {k: " ".join(v) for k, v in grouped.items()}
    flat = {}
    found = False
    for cat, name in FLAT_TAG_FIELDS.items():
        value = getattr(post, name)
        if type(value) is str:
            found = True
            flat[cat] = value.strip(TAG_WS)
        else:
            flat[cat] = ""
    if found:
        return "flat", flat
    loose = loose_tags(post)
    if type(loose) is not str:
        loose = tags if type(tags) is str else None
    if type(loose) is str:
        flat["general"] = loose.strip(TAG_WS)
        return "uncategorised", flat
    return "no_tags", flat


def loose_tags(post: RawPost) -> Any:
    """The decoded ``tag_string`` (the fast reader keeps it as raw JSON: decoding it for every record would cost
    ~15%, and it is read only for records without categorised tags)."""
    value = post.tag_string
    return msgspec.json.decode(value) if type(value) is msgspec.Raw else value


_NONE = type(None)
_INTS = {int, _NONE}
_BOOLS = {bool, _NONE}
INT_COLUMNS = ("width", "height", "score")
BOOL_COLUMNS = ("deleted", "banned", "flagged")
STRING_COLUMNS = ("file_ext", "rating", "md5", "general", "character", "copyright", "artist", "meta")
TAG_COLUMNS = ("general", "character", "copyright", "artist", "meta")


def int_column(values: list) -> list[int | None]:
    """``to_int`` of every value (a column of plain ints and nulls is returned as it is)."""
    if set(map(type, values)) <= _INTS:
        return values
    return [v if type(v) is int else to_int(v) for v in values]


def str_column(values: list, missing: str | None = None) -> list[str | None]:
    """Strings kept, anything else ``missing``."""
    if set(map(type, values)) <= {str}:
        return values
    return [v if type(v) is str else missing for v in values]


def bool_column(values: list) -> list[bool]:
    """``to_bool`` of every value."""
    if set(map(type, values)) <= _BOOLS:
        return [v is True for v in values]
    return [to_bool(v) for v in values]


def int_array(values: list) -> pa.Array:
    """Int64 array; a number beyond Int64 counts as unknown."""
    try:
        return pa.array(values, pa.int64())
    except (OverflowError, pa.ArrowInvalid):
        return pa.array([v if v is None or -(1 << 63) <= v < (1 << 63) else None for v in values], pa.int64())


@dataclass
class Normalised:
    """One batch of records as columns, one entry per record in record order: ``id`` (a list; None or out of
    range: no usable post id, see ``valid``) and Arrow arrays ``file_ext``, ``width``, ``height``, ``score``,
    ``rating``, ``md5``, ``deleted``, ``banned``, ``flagged`` and the tag strings."""

    id: list[int | None]
    columns: dict[str, pa.Array]
    shapes: list[str]
    unencodable: dict[int, str] = field(default_factory=dict)  # row -> field holding a lone surrogate

    def valid(self) -> list[int]:
        """Rows with a usable post id and only valid Unicode in the fields ingest reads."""
        bad = self.unencodable
        return [i for i, pid in enumerate(self.id) if pid is not None and 1 <= pid <= MAX_ID and i not in bad]


def normalise_batch(posts: list[RawPost]) -> Normalised:
    """The internal fields of a batch of post records (see the module docstring for the rules)."""
    cols: dict[str, Any] = {
        "file_ext": str_column([p.file_ext for p in posts]),
        "width": int_column([p.image_width for p in posts]),
        "height": int_column([p.image_height for p in posts]),
        "score": int_column([p.score for p in posts]),
        "rating": str_column([p.rating for p in posts]),
        "md5": str_column([p.md5 for p in posts], ""),
        "deleted": bool_column([p.is_deleted for p in posts]),
        "banned": bool_column([p.is_banned for p in posts]),
        "flagged": bool_column([p.is_flagged for p in posts]),
    }
    # tags: the flat shape (tag_string_general a string, tags not a list) column by column, the rest per record
    general = [p.tag_string_general for p in posts]
    tags = [p.tags for p in posts]
    cols["general"] = str_column(general, "")
    cols["character"] = str_column([p.tag_string_character for p in posts], "")
    cols["copyright"] = str_column([p.tag_string_copyright for p in posts], "")
    cols["artist"] = str_column([p.tag_string_artist for p in posts], "")
    cols["meta"] = str_column([p.tag_string_meta for p in posts], "")
    shapes = ["flat"] * len(posts)
    if list in set(map(type, tags)) or not set(map(type, general)) <= {str}:
        for cat in TAG_COLUMNS:
            cols[cat] = list(cols[cat])
        for i, (t, g) in enumerate(zip(tags, general, strict=True)):
            if type(t) is list or type(g) is not str:
                shapes[i], grouped = record_tags(posts[i])
                for cat, text in grouped.items():
                    cols[cat][i] = text
    out = Normalised(int_column([p.id for p in posts]), {}, shapes)
    for name in INT_COLUMNS:
        out.columns[name] = int_array(cols[name])
    for name in BOOL_COLUMNS:
        out.columns[name] = pa.array(cols[name], pa.bool_())
    for name in STRING_COLUMNS:
        try:
            arr = pa.array(cols[name], pa.string())
        except UnicodeEncodeError:
            for i, v in enumerate(cols[name]):
                if v is not None and not _encodable(v):
                    out.unencodable.setdefault(i, name)
            arr = pa.array([v if v is None or _encodable(v) else "" for v in cols[name]], pa.string())
        out.columns[name] = pc.utf8_trim(arr, TAG_WS) if name in TAG_COLUMNS else arr
    return out


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def normalise(record: dict) -> dict[str, Any]:
    """The internal fields of one post record (:func:`normalise_batch` on it alone).

    Keys: ``id``, ``shape``, ``file_ext``, ``width``, ``height``, ``score``, ``rating``, ``md5``, ``deleted``,
    ``banned``, ``flagged`` and the tag strings ``general``, ``artist``, ``copyright``, ``character``, ``meta``.
    """
    batch = normalise_batch([raw_post(record)])
    out: dict[str, Any] = {"id": batch.id[0] if batch.valid() else None, "shape": batch.shapes[0]}
    out.update({name: values[0].as_py() for name, values in batch.columns.items()})
    return out


def describe_bad_id(value: Any, limit: int = 60) -> str:
    """A short rendering of an unusable id for the ledger details."""
    if value is None:
        return "missing"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
