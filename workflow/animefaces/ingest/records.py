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

A record is first reduced to a :class:`Post` (the 17 fields ingest reads, typed as the real dumps write them, the
tags kept as raw JSON) or, when a value has another type, a :class:`RawPost` (the same fields, values as decoded,
untyped): the fast reader decodes JSON Lines blocks straight into ``Post``s (``msgspec`` skips every other field
without building it) and falls back to ``RawPost`` per line, the exact reader goes via :func:`raw_post` from a
``json`` dict. :func:`normalise_batch` then turns a batch of either into typed Arrow columns: the ONE coding of the
rules above, run column by column (a column whose values all have the expected type is converted in Arrow; otherwise
each value goes through ``to_int``/``to_bool``/...; the nested tags of the whole batch are grouped in Arrow, see
:func:`group_nested`). In a batch of ``Post``s the tag strings and the nested lists in the dumps' own form go from
their raw JSON into Arrow without a Python object per value or per tag (:func:`raw_text_column`,
:func:`group_nested_raw`); anything else in them is decoded and takes the same rules. :func:`normalise` is the same
function on one record, for reading and testing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import msgspec
import numpy as np
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


_GROUPS = ("general", "artist", "copyright", "character", "meta")
_GROUP_INDEX = {name: k for k, name in enumerate(_GROUPS)}
# the usual category codes (ints and the dumps' digit strings) -> index in _GROUPS; anything else goes through to_int
_CODE_OF = {key: _GROUP_INDEX[name] for code, name in CATEGORY_FIELDS.items() for key in (code, str(code))}


def tag_entries(tags: list) -> tuple[list[str], list[Any]]:
    """``(names, categories)`` of a nested ``tags`` list as decoded (any JSON): ``{"name": str, ...}`` entries with a
    non-empty name, and bare non-empty strings (category None: general); other entries are skipped. A category that
    is not an int or a string is given as ``to_int`` of it (so a float 4.0 is 4, a boolean None)."""
    names: list[str] = []
    cats: list[Any] = []
    for entry in tags:
        if type(entry) is dict:
            name = entry.get("name")
            if type(name) is not str or not name:
                continue
            cat = entry.get("category")
            t = type(cat)
            names.append(name)
            cats.append(cat if t is int or t is str else to_int(cat))
        elif type(entry) is str and entry:  # a bare tag name
            names.append(entry)
            cats.append(None)
    return names, cats


def category_codes(cats: list[int | str | None]) -> np.ndarray:
    """Index in ``_GROUPS`` of each category code (an int, a string or None): a Danbooru code as an int or a
    digit string (``to_int`` rules: ``" 4"``, ``"+4"``, ``"04"`` count as 4); an unknown code counts as general."""
    codes = np.fromiter(map(_CODE_OF.get, cats, repeat(-1)), dtype=np.int8, count=len(cats))
    general = _GROUP_INDEX["general"]
    for i in np.flatnonzero(codes < 0).tolist():  # the unusual ones
        cat = cats[i]
        name = CATEGORY_FIELDS.get(cat if type(cat) is int else to_int(cat))  # type: ignore[arg-type]
        codes[i] = general if name is None else _GROUP_INDEX[name]
    return codes


def group_nested(tag_lists: list[list]) -> tuple[list[pa.Array], list[set[int]]]:
    """Group nested ``tags`` lists (as decoded: any JSON) by category, for a whole batch at once: per group of
    ``_GROUPS`` an Arrow string array with one entry per list (its names in that group, in list order, joined by
    spaces), and per group the lists whose names there are not valid Unicode (lone surrogates: the record is
    malformed).

    The rules (the ONE coding of the nested shape): entries as :func:`tag_entries` reads them; categories by
    :func:`category_codes`; names with spaces or control characters cleaned by :func:`clean_tag`, and names empty
    after cleaning dropped (:func:`_group`). :func:`group_nested_raw` reads the dumps' own form of a list faster,
    to the same result."""
    n = len(tag_lists)
    names, cats = [], []
    counts = np.zeros(n, dtype=np.int64)
    for i, tags in enumerate(tag_lists):
        got, got_cats = tag_entries(tags)
        names += got
        cats += got_cats
        counts[i] = len(got)
    codes = category_codes(cats)
    bad: list[set[int]] = [set() for _ in _GROUPS]
    try:
        arr = pa.array(names, pa.string())
    except UnicodeEncodeError:
        owner = np.repeat(np.arange(n, dtype=np.int64), counts)
        for k, name in enumerate(names):
            if not _encodable(name):
                bad[codes[k]].add(int(owner[k]))
                names[k] = ""
        arr = pa.array(names, pa.string())
    return _group(arr, codes, counts), bad


# One entry of a ``tags`` list as the dumps write it, once the list's text is split at "},{": the first entry
# opens the list and the last closes it. The name holds no quote or backslash (so no escape): its raw text is it.
_DUMP_ENTRY = r'^(?:\[\{)?"id":"[0-9]+","name":"(?P<name>[^"\\]*)","category":"(?P<category>[0-9]{1,18})"(?:\}\])?$'
_GROUP_OF_CODE = np.full(max(CATEGORY_FIELDS) + 1, _GROUP_INDEX["general"], dtype=np.int8)
for _code, _name in CATEGORY_FIELDS.items():
    _GROUP_OF_CODE[_code] = _GROUP_INDEX[_name]


def group_nested_raw(raws: list) -> tuple[list[pa.Array], np.ndarray]:
    """:func:`group_nested` of raw JSON lists (``msgspec.Raw``) in the dumps' compact form
    (``[{"id":"540830","name":"1boy","category":"0"},...]``), read in Arrow without a Python object per entry:
    the grouped arrays, and which lists are in another form (their groups are left empty: group them with
    :func:`group_nested` from their decoded values). Every entry of a list in this form has a
    string name and a digit-string category, so the rules reduce to the category's number and the cleaning."""
    text = _joined(raws)[0]
    parts = pc.split_pattern(text, "},{")
    counts = np.asarray(pc.list_value_length(parts), dtype=np.int64)
    found = pc.extract_regex(pc.list_flatten(parts), _DUMP_ENTRY)
    owner = np.repeat(np.arange(len(raws), dtype=np.int64), counts)
    other = np.zeros(len(raws), dtype=bool)
    other[owner[~_np_true(found.is_valid())]] = True
    if other.any():
        found = found.filter(pa.array(~other[owner]))
        counts[other] = 0
    numbers = np.asarray(pc.cast(found.field("category"), pa.int64()), dtype=np.int64)
    codes = _GROUP_OF_CODE[np.minimum(numbers, len(_GROUP_OF_CODE) - 1)]
    codes[numbers >= len(_GROUP_OF_CODE)] = _GROUP_INDEX["general"]
    return _group(found.field("name").cast(pa.string()), codes, counts), other


def _group(arr: pa.Array, codes: np.ndarray, counts: np.ndarray) -> list[pa.Array]:
    """Tag names (``arr``, in list order, ``counts[i]`` for list i) grouped by ``codes`` (index in ``_GROUPS``):
    cleaned (:func:`clean_tag`), empty ones dropped, joined by spaces per list and group in Arrow."""
    n = len(counts)
    owner = np.repeat(np.arange(n, dtype=np.int64), counts)
    if has_bad_tag_chars(arr):  # rare: clean each name
        arr = pa.array(list(map(clean_tag, arr.to_pylist())), pa.string())
    keep = _np_true(pc.not_equal(arr, ""))
    out = []
    for g in range(len(_GROUPS)):
        mask = keep & (codes == g)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(np.bincount(owner[mask], minlength=n), out=offsets[1:])
        lists = pa.ListArray.from_arrays(pa.array(offsets), arr.filter(pa.array(mask)))
        out.append(pc.binary_join(lists, " "))
    return out


def has_bad_tag_chars(arr: pa.Array) -> bool:
    """Whether any string of ``arr`` holds a character that :func:`clean_tag` replaces (``_BAD_TAG_CHARS``),
    tested on the UTF-8 bytes at once: those characters are single bytes that no other character's encoding
    contains (a regex over every tag name cost ~8% of reading a nested record)."""
    offsets = np.frombuffer(arr.buffers()[1], np.int32, len(arr) + 1, arr.offset * 4)
    data = np.frombuffer(arr.buffers()[2] or b"", np.uint8)[offsets[0] : offsets[-1]]
    return bool(((data <= 0x20) | (data == 0x7F)).any())


def _np_true(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def nested_tags(tags: list) -> dict[str, list[str]]:
    """One nested ``tags`` list grouped by category (:func:`group_nested` on it alone, split back into names)."""
    joined, _ = group_nested([tags])
    out = {}
    for group, texts in zip(_GROUPS, joined, strict=True):
        text = texts[0].as_py()
        out[group] = text.split(" ") if text else []
    return out


class Post(msgspec.Struct, gc=False):
    """A post record of either shape, typed as the real dumps write it (numbers as JSON integers or strings, the
    flags as booleans), its ``tags`` and tag strings kept as raw JSON (any value): what the fast reader decodes a
    JSON Lines block into. A record with another value type in the typed fields fails the typed decode and is read
    as a :class:`RawPost` instead (the tolerant path); both go through :func:`normalise_batch`, which applies the
    same rules."""

    id: int | str | None = None
    file_ext: str | None = None
    image_width: int | str | None = None
    image_height: int | str | None = None
    score: int | str | None = None
    rating: str | None = None
    md5: str | None = None
    is_deleted: bool | None = None
    is_banned: bool | None = None
    is_flagged: bool | None = None
    tags: msgspec.Raw = None  # type: ignore[assignment]  (raw JSON: a list in the dumps' form is read in Arrow)
    tag_string: msgspec.Raw = None  # type: ignore[assignment]  (read lazily, see loose_tags)
    # the tag strings as raw JSON: a column of them becomes Arrow strings without a Python str per value (see
    # raw_text_column); a record whose general one is not a JSON string goes through flat_tags, decoded
    tag_string_general: msgspec.Raw = None  # type: ignore[assignment]
    tag_string_character: msgspec.Raw = None  # type: ignore[assignment]
    tag_string_copyright: msgspec.Raw = None  # type: ignore[assignment]
    tag_string_artist: msgspec.Raw = None  # type: ignore[assignment]
    tag_string_meta: msgspec.Raw = None  # type: ignore[assignment]


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
assert Post.__struct_fields__ == RAW_FIELDS
POSTS = (Post, RawPost)


def raw_post(record: dict) -> RawPost:
    """The :class:`RawPost` of a decoded JSON object (what the fast reader decodes directly)."""
    return RawPost(*map(record.get, RAW_FIELDS))


def flat_tags(post: Post | RawPost) -> tuple[str, dict[str, str]]:
    """``(shape, {category: space-joined tags})`` for a post record whose ``tags`` is not a list (``flat``,
    ``uncategorised`` or ``no_tags``)."""
    flat = {}
    found = False
    for cat, name in FLAT_TAG_FIELDS.items():
        value = decoded(getattr(post, name))
        if type(value) is str:
            found = True
            flat[cat] = value.strip(TAG_WS)
        else:
            flat[cat] = ""
    if found:
        return "flat", flat
    loose = loose_tags(post)
    tags = decoded(post.tags)
    if type(loose) is not str:
        loose = tags if type(tags) is str else None
    if type(loose) is str:
        flat["general"] = loose.strip(TAG_WS)
        return "uncategorised", flat
    return "no_tags", flat


def loose_tags(post: Post | RawPost) -> Any:
    """The decoded ``tag_string`` (the fast reader keeps it as raw JSON: decoding it for every record would cost
    ~15%, and it is read only for records without categorised tags)."""
    value = post.tag_string
    return msgspec.json.decode(value) if type(value) is msgspec.Raw else value


_NONE = type(None)
_INTS = {int, _NONE}
_BOOLS = {bool, _NONE}
_STRS = {str, _NONE}
INT_COLUMNS = ("width", "height", "score")
BOOL_COLUMNS = ("deleted", "banned", "flagged")
STRING_COLUMNS = ("file_ext", "rating", "md5", "general", "character", "copyright", "artist", "meta")
TAG_COLUMNS = ("general", "character", "copyright", "artist", "meta")
_CANONICAL_DIGITS = r"^[0-9]{1,18}$"  # digit strings Arrow's cast reads exactly as int() does (< 2**63)


def int_array(values: list) -> pa.Array:
    """Int64 array of a list of ints and Nones; a number beyond Int64 counts as unknown."""
    try:
        return pa.array(values, pa.int64())
    except (OverflowError, pa.ArrowInvalid):
        return pa.array([v if v is None or -(1 << 63) <= v < (1 << 63) else None for v in values], pa.int64())


def int_column(values: list) -> pa.Array:
    """``to_int`` of every value as an Int64 array (beyond Int64: unknown). A column of ints and nulls is taken as
    it is; one of strings (the nested dumps) is read in Arrow where a string is 1-18 plain digits, the rest of
    its values (and any other column) value by value."""
    types = set(map(type, values))
    if types <= _INTS:
        return int_array(values)
    if types <= _STRS:
        try:
            text = pa.array(values, pa.string())
        except UnicodeEncodeError:  # a lone surrogate: value by value
            pass
        else:
            canonical = pc.match_substring_regex(text, _CANONICAL_DIGITS)
            ints = pc.cast(pc.if_else(canonical, text, pa.scalar(None, pa.string())), pa.int64())
            rest = np.flatnonzero(~_np_true(canonical) & _np_true(pc.is_valid(text)))
            if not len(rest):
                return ints
            out = ints.to_pylist()
            for i in rest.tolist():
                out[i] = to_int(values[i])
            return int_array(out)
    return int_array([v if type(v) is int else to_int(v) for v in values])


def bool_column(values: list) -> pa.Array:
    """``to_bool`` of every value as a Boolean array."""
    if set(map(type, values)) <= _BOOLS:
        arr = pa.array(values, pa.bool_())
        return arr.fill_null(False) if arr.null_count else arr
    return pa.array([to_bool(v) for v in values], pa.bool_())


def str_column(values: list, column: str, unencodable: dict[int, str], missing: str | None = None) -> pa.Array:
    """Strings kept, anything else ``missing``; a string that is not valid Unicode (a lone surrogate escape from
    the exact reader) becomes ``""`` and its row is noted in ``unencodable`` (first column wins)."""
    if not set(map(type, values)) <= _STRS:
        values = [v if type(v) is str else None for v in values]
    try:
        arr = pa.array(values, pa.string())
    except UnicodeEncodeError:
        for i, v in enumerate(values):
            if v is not None and not _encodable(v):
                unencodable.setdefault(i, column)
        arr = pa.array([v if v is None or _encodable(v) else "" for v in values], pa.string())
    return arr if missing is None or not arr.null_count else arr.fill_null(missing)


@dataclass
class Normalised:
    """One batch of records as columns, one entry per record in record order: ``id`` (Int64; null or < 1: no
    usable post id, see ``valid``) and Arrow arrays ``file_ext``, ``width``, ``height``, ``score``, ``rating``,
    ``md5``, ``deleted``, ``banned``, ``flagged`` and the tag strings."""

    id: pa.Array
    columns: dict[str, pa.Array]
    shapes: list[str]
    unencodable: dict[int, str] = field(default_factory=dict)  # row -> field holding a lone surrogate

    def valid(self) -> np.ndarray:
        """Rows with a usable post id and only valid Unicode in the fields ingest reads."""
        ok = _np_true(pc.greater_equal(self.id, pa.scalar(1, pa.int64())))
        if self.unencodable:
            ok[list(self.unencodable)] = False
        return np.flatnonzero(ok)


def normalise_batch(posts: list[Post | RawPost]) -> Normalised:
    """The internal fields of a batch of post records (see the module docstring for the rules): column by column
    in Arrow, per record only where a value has an unusual type, and per tag entry only to extract the nested
    shape's names and category codes (:func:`group_nested`)."""
    unencodable: dict[int, str] = {}
    cols: dict[str, pa.Array] = {
        "file_ext": str_column([p.file_ext for p in posts], "file_ext", unencodable),
        "width": int_column([p.image_width for p in posts]),
        "height": int_column([p.image_height for p in posts]),
        "score": int_column([p.score for p in posts]),
        "rating": str_column([p.rating for p in posts], "rating", unencodable),
        "md5": str_column([p.md5 for p in posts], "md5", unencodable, ""),
        "deleted": bool_column([p.is_deleted for p in posts]),
        "banned": bool_column([p.is_banned for p in posts]),
        "flagged": bool_column([p.is_flagged for p in posts]),
    }
    # tags: flat records column by column; nested ones (tags a list) grouped for the batch at once; the rest
    # (tag_string_general not a string: other flat fields, uncategorised, no tags) record by record
    tags = [p.tags for p in posts]
    texts = {
        "general": [p.tag_string_general for p in posts],
        "character": [p.tag_string_character for p in posts],
        "copyright": [p.tag_string_copyright for p in posts],
        "artist": [p.tag_string_artist for p in posts],
        "meta": [p.tag_string_meta for p in posts],
    }
    n = len(posts)
    # a batch of Posts only: tags and tag strings as raw JSON, read in Arrow; otherwise decoded (as RawPost has them)
    raw = set(map(type, posts)) == {Post}
    if raw:
        first = raw_text_column(texts["general"])
        general_is_str = first[1]
        is_nested = np.zeros(n, dtype=bool)
        if msgspec.Raw in set(map(type, tags)):
            _, tag_bytes, tag_offsets, _ = _joined(tags)
            is_nested = tag_bytes[tag_offsets[:-1]] == 0x5B  # a JSON list
    else:
        tags = list(map(decoded, tags))
        texts = {name: list(map(decoded, values)) for name, values in texts.items()}
        general_is_str = np.fromiter((type(g) is str for g in texts["general"]), dtype=bool, count=n)
        is_nested = np.fromiter((type(t) is list for t in tags), dtype=bool, count=n)
    nested = np.flatnonzero(is_nested).tolist()
    shapes = ["flat"] * n
    for i in nested:
        shapes[i] = "nested"
    odd: dict[int, dict[str, str]] = {}  # record -> its texts by flat_tags (general not a string, not nested)
    for i in np.flatnonzero(~is_nested & ~general_is_str).tolist():
        shapes[i], odd[i] = flat_tags(posts[i])
    if nested:
        grouped_nested, bad_nested = _group_nested_rows([tags[i] for i in nested], raw)
        mask = pa.array(is_nested)
    for name in TAG_COLUMNS:
        values = texts[name]
        if raw:
            arr = first[0] if name == "general" else raw_text_column(values)[0]
            if odd:  # those records' texts by flat_tags, through the same rules
                rows = sorted(odd)
                bad: dict[int, str] = {}
                arr = _put(arr, rows, pc.utf8_trim(str_column([odd[i][name] for i in rows], name, bad, ""), TAG_WS))
                for k in bad:
                    unencodable.setdefault(rows[k], name)
        else:
            for i, grouped in odd.items():
                values[i] = grouped[name]
            for i in nested:  # (their tag_string_* values are not used: not even checked for Unicode)
                values[i] = ""
            arr = pc.utf8_trim(str_column(values, name, unencodable, ""), TAG_WS)
        if nested:
            g = _GROUPS.index(name)
            arr = pc.replace_with_mask(arr, mask, grouped_nested[g])
            for k in sorted(bad_nested[g]):
                unencodable.setdefault(nested[k], name)
        cols[name] = arr
    return Normalised(int_column([p.id for p in posts]), cols, shapes, unencodable)


def _group_nested_rows(tag_lists: list, raw: bool) -> tuple[list[pa.Array], list[set[int]]]:
    """:func:`group_nested` of a batch's nested ``tags`` lists; ``raw``: they are raw JSON, those in the dumps'
    form read by :func:`group_nested_raw` and only the others decoded."""
    if not raw:
        return group_nested(tag_lists)
    grouped, other = group_nested_raw(tag_lists)
    if not other.any():
        return grouped, [set() for _ in _GROUPS]
    rows = np.flatnonzero(other).tolist()
    rest, bad = group_nested([msgspec.json.decode(tag_lists[k]) for k in rows])
    where = pa.array(other)
    grouped = [pc.replace_with_mask(a, where, b) for a, b in zip(grouped, rest, strict=True)]
    return grouped, [{rows[k] for k in b} for b in bad]


def decoded(value: Any) -> Any:
    """A value as decoded JSON: a ``msgspec.Raw`` (how ``Post`` holds the tag strings) decoded, else as it is."""
    return msgspec.json.decode(value) if type(value) is msgspec.Raw else value


_TEXT_TRIM = '"' + TAG_WS  # a JSON string without escapes: its quotes and the ends' whitespace in one trim


def raw_text_column(raws: list) -> tuple[pa.Array, np.ndarray]:
    """A tag-string column from raw JSON values (``msgspec.Raw``, or None where the field is absent), with the
    rules of ``str_column`` then the trim of ``TAG_WS``: the text of a JSON string, ``""`` for anything else; and
    which rows hold a JSON string. Built in Arrow from the raw bytes joined (no Python ``str`` per value): a
    string's quotes go in the trim, since without a backslash it holds no quote and no control character; only
    strings with an escape are decoded one by one. (Every such string is valid Unicode: ``msgspec`` refuses a
    record with a lone surrogate escape, even in a raw field, and the exact reader takes it.)"""
    text, data, offsets, raws = _joined(raws)
    is_str = data[offsets[:-1]] == 0x22 if len(raws) else np.zeros(0, dtype=bool)
    arr = pc.utf8_trim(text, _TEXT_TRIM)
    if not is_str.all():
        arr = pc.if_else(pa.array(is_str), arr, pa.scalar("", pa.large_string()))
    escaped = np.flatnonzero(data == 0x5C)
    if len(escaped):
        rows = [i for i in np.unique(np.searchsorted(offsets, escaped, side="right") - 1).tolist() if is_str[i]]
        fixed = [msgspec.json.decode(raws[i]).strip(TAG_WS) for i in rows]
        arr = _put(arr, rows, pa.array(fixed, pa.large_string()))
    return arr.cast(pa.string()), is_str


def _joined(raws: list) -> tuple[pa.Array, np.ndarray, np.ndarray, list]:
    """Raw JSON values (``msgspec.Raw``; None, an absent field, counts as ``null``) as one Arrow large string
    array over their bytes joined: ``(array, the bytes as numpy, offsets, the values)``."""
    n = len(raws)
    try:
        joined = b"".join(raws)
    except TypeError:  # (a None: faster to find this way than by a search of the list)
        raws = [b"null" if v is None else v for v in raws]
        joined = b"".join(raws)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, raws), dtype=np.int64, count=n), out=offsets[1:])
    text = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(joined))
    return text, np.frombuffer(joined, np.uint8), offsets, raws


def _put(arr: pa.Array, rows: list[int], values: pa.Array) -> pa.Array:
    """``arr`` with ``values`` at ``rows`` (ascending)."""
    if not rows:
        return arr
    mask = np.zeros(len(arr), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(arr, pa.array(mask), values.cast(arr.type))


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
    out: dict[str, Any] = {"id": batch.id[0].as_py() if len(batch.valid()) else None, "shape": batch.shapes[0]}
    out.update({name: values[0].as_py() for name, values in batch.columns.items()})
    return out


def describe_bad_id(value: Any, limit: int = 60) -> str:
    """A short rendering of an unusable id for the ledger details."""
    if value is None:
        return "missing"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
