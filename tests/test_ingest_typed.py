"""The typed per-batch ingest path (msgspec ``Post`` structs, Arrow columns, nested tags grouped per batch) against
a plain per-record reference of the record rules, and its outputs against main's code from before it, byte for
byte, on the real samples, the demo metadata and the hostile records."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from animefaces.demo.corpus import ASSUMED_CONFIG
from animefaces.ingest import readers
from animefaces.ingest.records import POSTS, Post, normalise_batch, raw_post
from test_ingest_fast import corpus, package_at, run, write_lines

REPO = Path(__file__).resolve().parent.parent
# main before the typed path: msgspec into an untyped struct, then the per-record column normaliser
UNTYPED = "e770e88d839ea1a5c2262705ae39d0dc682aa99c"
CATEGORIES = {0: "general", 1: "artist", 3: "copyright", 4: "character", 5: "meta"}
TAG_WS = " \t\n\r\x0b\x0c"
BAD_CHARS = {chr(c) for c in range(0x21)} | {"\x7f"}


# ---------------------------------------------------------------------------- the rules, one record at a time


def ref_int(v):
    """JSON int, integral float or (optionally signed, whitespace-padded) ASCII digit string; within Int64."""
    if type(v) is float and math.isfinite(v) and v.is_integer():
        v = int(v)
    elif type(v) is str:
        s = v.strip()
        digits = s[1:] if s[:1] in ("+", "-") else s
        if not (s.isascii() and digits.isdigit()):
            return None
        try:
            v = int(s)
        except ValueError:  # more digits than Python converts
            return None
    if type(v) is not int:
        return None
    return v if -(1 << 63) <= v < (1 << 63) else None


def ref_bool(v):
    if type(v) is str:
        return v.strip().lower() in ("true", "t", "1", "yes")
    return v is True or (type(v) is int and v == 1)


def ref_clean(name: str) -> str:
    out, run_ = [], ""
    for ch in name:
        if ch in BAD_CHARS:
            if run_:
                out.append(run_)
            run_ = ""
        else:
            run_ += ch
    if run_:
        out.append(run_)
    return "_".join(out)


def ref_tags(rec: dict) -> tuple[str, dict[str, str]]:
    groups: dict[str, list[str]] = {g: [] for g in CATEGORIES.values()}
    tags = rec.get("tags")
    if type(tags) is list:
        for entry in tags:
            if type(entry) is str and entry:
                name, cat = entry, None
            elif type(entry) is dict and type(entry.get("name")) is str and entry["name"]:
                name, cat = entry["name"], entry.get("category")
            else:
                continue
            name = ref_clean(name)
            if name:
                groups[CATEGORIES.get(ref_int(cat) if type(cat) is not bool else None, "general")].append(name)
        return "nested", {g: " ".join(names) for g, names in groups.items()}
    fields = {g: rec.get(f"tag_string_{g}") for g in groups}
    if any(type(v) is str for v in fields.values()):
        return "flat", {g: v.strip(TAG_WS) if type(v) is str else "" for g, v in fields.items()}
    loose = rec.get("tag_string")
    if type(loose) is not str:
        loose = tags if type(tags) is str else None
    out = dict.fromkeys(groups, "")
    if type(loose) is str:
        out["general"] = loose.strip(TAG_WS)
        return "uncategorised", out
    return "no_tags", out


def reference(rec: dict) -> dict:
    """The internal fields of one record, the rules written out plainly (id None: the record has no usable id or
    holds text that is not Unicode)."""

    def text(v, missing=None):
        return v if type(v) is str else missing

    shape, tags = ref_tags(rec)
    out = {
        "shape": shape,
        "file_ext": text(rec.get("file_ext")),
        "width": ref_int(rec.get("image_width")),
        "height": ref_int(rec.get("image_height")),
        "score": ref_int(rec.get("score")),
        "rating": text(rec.get("rating")),
        "md5": text(rec.get("md5"), ""),
        "deleted": ref_bool(rec.get("is_deleted")),
        "banned": ref_bool(rec.get("is_banned")),
        "flagged": ref_bool(rec.get("is_flagged")),
        **tags,
    }
    pid = ref_int(rec.get("id"))
    strings = [v for v in out.values() if type(v) is str]
    if pid is None or pid < 1 or any(map(_has_surrogate, strings)):
        pid = None
    out["id"] = pid
    return out


def _has_surrogate(s: str) -> bool:
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in s)


# ----------------------------------------------------------------------------------------- random records

_NAMES = ["a", "b_c", "has space", "tab\tx", "", " ", "\x00", "ok\x7f", "\u00fcn\u00ef", "x y z", "\n", "caf\u00e9"]
_CATS = [0, 1, 2, 3, 4, 5, 7, "0", "1", "3", "4", "5", " 4", "04", "+1", "-1", "x", None, 10**20]
_ODD_CATS = [True, False, 4.0, 4.5, [], {}]
# names and categories of entries in the dumps' form; "},{" in a name, quotes and escapes: read another way
_DUMP_NAMES = ["a", "has space", "caf\u00e9", "", "x},{y", 'q"uote', "back\\slash", "\t", "ok\x7f", "}]"]
_DUMP_CATS = ["0", "1", "2", "3", "4", "5", "04", "7", "999999999999999999", "1" * 19, ""]
_INTS = [1, 7, 123456, 0, -5, "12", "0007", " 12 ", "+3", "-4", "abc", "", "1" * 30, "9" * 60, 10**20, None]
_ODD_INTS = [1.0, 2.5, True, [1], {"a": 1}, 1e300]
_STRS = ["s", "q", "e", "png", "jpg", "", " png", "JPG", "../x", None]
_BOOLS = [True, False, None]
_ODD_BOOLS = ["true", "t", "1", "yes", "no", " TRUE ", 1, 0, 2, 1.0]
# (escapes: a backslash, quotes and the ends' whitespace, which the raw tag columns decode one by one)
_TAG_STRINGS = ["1girl solo", " lead and trail \t", "", "caf\u00e9 \U0001f600", "one", None, "\\m/ solo",
                ' say "hi" ', '"', "  ", "\u2028 x"]  # fmt: skip


def random_record(rng: random.Random, typed: bool) -> dict:
    """A post record; ``typed``: every value has a type the typed decoder accepts (the values may still be odd)."""

    def pick(usual, odd):
        return rng.choice(usual if typed or rng.random() < 0.7 else usual + odd)

    rec: dict = {}
    if rng.random() < 0.97:
        rec["id"] = pick(_INTS, _ODD_INTS)
    for key in ("image_width", "image_height", "score"):
        if rng.random() < 0.8:
            rec[key] = pick(_INTS, _ODD_INTS)
    for key in ("file_ext", "rating", "md5"):
        if rng.random() < 0.8:
            rec[key] = pick(_STRS, [5, ["x"]])
    for key in ("is_deleted", "is_banned", "is_flagged"):
        if rng.random() < 0.7:
            rec[key] = pick(_BOOLS, _ODD_BOOLS)
    shape = rng.random()
    if shape < 0.4 and typed and rng.random() < 0.5:  # nested, each entry in the dumps' form (key order, strings)
        rec["tags"] = [
            {"id": str(rng.randint(1, 999)), "name": rng.choice(_DUMP_NAMES), "category": rng.choice(_DUMP_CATS)}
            for _ in range(rng.randint(0, 8))
        ]
    elif shape < 0.4:  # nested
        tags = []
        for _ in range(rng.randint(0, 8)):
            entry = {}
            if rng.random() < 0.95:
                entry["name"] = pick(_NAMES, [None, 5])
            if rng.random() < 0.9:
                entry["category"] = pick(_CATS, _ODD_CATS)
            if rng.random() < 0.5:
                entry["id"] = str(rng.randint(1, 999))
            tags.append(entry)
        if not typed and rng.random() < 0.3:
            tags.insert(rng.randint(0, len(tags)), rng.choice(["bare", "", 5, None, ["x"]]))
        rec["tags"] = tags
        if rng.random() < 0.2:
            rec["tag_string_general"] = "ignored for nested records"
    elif shape < 0.85:  # flat
        for g in ("general", "character", "copyright", "artist", "meta"):
            if rng.random() < 0.8:
                rec[f"tag_string_{g}"] = pick(_TAG_STRINGS, [5, ["x"]])
    elif shape < 0.95:  # uncategorised / no tags
        if rng.random() < 0.7:
            rec["tag_string"] = rng.choice(_TAG_STRINGS + ([5] if not typed else []))
        if rng.random() < 0.3:
            rec["tags"] = rng.choice([" loose tags ", None])
    elif rng.random() < 0.5:  # not valid Unicode (a lone surrogate): the exact reader gives it, the record is malformed
        rec["tag_string_general"] = "a \ud800 b"
    else:  # the same in a nested tag name (the ledger names the category's field)
        rec["tags"] = [
            {"name": "ok", "category": "0"},
            {"name": "x\udc80", "category": rng.choice([0, "1", "3", 4, "5"])},
        ]
    if rng.random() < 0.3:
        rec["source"] = "https://example.org/\u00e9"  # a field ingest skips
    return rec


def utf8_line(rec: dict) -> str | bytes:
    """The record as compact JSON with non-ASCII characters as UTF-8, not ``\\u`` escapes (as the real dumps
    write it); a record holding a lone surrogate keeps its escapes."""
    text = json.dumps(rec, ensure_ascii=False, separators=(",", ":"))  # (compact, as the dumps are)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(rec, separators=(",", ":"))


def _check_file(path: Path) -> tuple[int, int]:
    """normalise_batch on the fast reader's batches (typed Posts, per-line RawPosts, exact dicts), and on their
    typed Posts alone, equals the reference on each record as the exact reader decodes it (every member of an
    archive)."""
    exact = {}
    for name, stream in readers.iter_sources(path):
        exact.update({(name, n): v for n, v in readers.iter_records(stream)})
    checked = typed = 0
    for name, stream in readers.iter_sources(path):
        for ns, values in readers.iter_record_batches(stream):
            keep = [(n, v if type(v) in POSTS else raw_post(v)) for n, v in zip(ns, values, strict=True)
                    if type(v) in POSTS or type(v) is dict]  # fmt: skip
            posts = [(n, v) for n, v in keep if type(v) is Post]
            typed += len(posts)
            # the batch as read, and its typed records alone (a batch of Posts only keeps the tag strings raw)
            for group in (keep, posts) if len(posts) < len(keep) else (keep,):
                norm = normalise_batch([v for _, v in group])
                valid = set(norm.valid().tolist())
                cols = {col: arr.to_pylist() for col, arr in norm.columns.items()}
                ids = norm.id.to_pylist()
                for k, (n, _) in enumerate(group):
                    record = exact[(name, n)]
                    want = reference(record)
                    got = {"id": ids[k] if k in valid else None, "shape": norm.shapes[k]}
                    got.update({col: values[k] for col, values in cols.items()})
                    if want["id"] is None:
                        assert got["id"] is None, (name, n, record, got)
                    else:
                        assert got == want, (name, n, record)
                    checked += 1
    return checked, typed


def test_typed_batches_follow_the_per_record_rules(tmp_path, shared):
    """Random records of both shapes (odd values of every kind, typed and untyped), the real samples, the demo's
    metadata and the hostile records: every record normalises as the plain per-record rules say."""
    rng = random.Random(15)
    typed = write_lines(tmp_path / "typed.jsonl", [random_record(rng, True) for _ in range(3000)])
    mixed = write_lines(tmp_path / "mixed.jsonl", [random_record(rng, False) for _ in range(3000)])
    utf8 = write_lines(tmp_path / "utf8.jsonl", [utf8_line(random_record(rng, True)) for _ in range(3000)])
    _, files = corpus(tmp_path, shared)
    seen_typed = 0
    for path in [typed, mixed, utf8, *map(Path, files)]:
        checked, n_typed = _check_file(path)
        assert checked > 0, path
        seen_typed += n_typed
    assert seen_typed > 2500  # the typed path ran (the odd-but-typed records among them)


# -------------------------------------------------------------------- outputs against main's untyped path


@pytest.fixture(scope="module")
def untyped(tmp_path_factory) -> Path:
    return package_at(UNTYPED, tmp_path_factory.mktemp("untyped"))


@pytest.mark.parametrize("flt", ["demo", "defaults"])
def test_outputs_byte_identical_to_the_untyped_path(tmp_path, shared, untyped, flt):
    """Every manifest and classes.tsv equal byte for byte to main's code before the typed path, on the real
    samples (both schemas, lines and array), the demo metadata, the hostile records and random records of both
    shapes (typed and odd)."""
    root, files = corpus(tmp_path, shared)
    rng = random.Random(7)
    records = [random_record(rng, rng.random() < 0.7) for _ in range(2000)]
    files.append(str(write_lines(tmp_path / "random.jsonl", records)))
    filter_ = dict(ASSUMED_CONFIG["filter"]) if flt == "demo" else {}
    dataset = {"source": "danbooru", "root": str(root), "metadata": files}
    _, result = run(tmp_path, dataset, filter_)
    assert result.records > 2150 and set(result.shapes) >= {"nested", "flat", "uncategorised", "no_tags"}
    new_out = tmp_path / "results" / "t" / "ingest"
    old_out = tmp_path / "results" / "old" / "ingest"
    proc = subprocess.run(
        [sys.executable, "-m", "animefaces.ingest", "--out", str(old_out), "--dataset", json.dumps(dataset),
         "--filter", json.dumps(filter_), "--classes", json.dumps({"require_solo": False}), "--shards", "4"],
        env={**os.environ, "PYTHONPATH": str(untyped)}, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["records"] == result.records
    names = sorted(str(p.relative_to(new_out)) for p in new_out.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(old_out)) for p in old_out.rglob("*") if p.is_file())
    assert len(names) >= 4 + 1 + 1  # 4 shards, unsharded, classes.tsv
    for name in names:
        assert (new_out / name).read_bytes() == (old_out / name).read_bytes(), name
