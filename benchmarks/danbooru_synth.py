"""Danbooru2021-shaped metadata at any size, both schemas, for benchmarks (the 5M-post plan, ingest throughput).

    .venv/bin/python benchmarks/danbooru_synth.py --records 5000000 --schema mixed --out /tmp/synth [--seed 0]

``flat``: the Danbooru2021 dump / JSON API shape (``tag_string_*`` fields, integers), ``nested``: the
Danbooru2017-2020 dumps (a ``tags`` list of ``{"id", "name", "category"}``, every number a string), ``mixed``: one
file of each (nested for the lower 20% of ids). Realistic field set and value distributions, Zipf-like tag
frequencies, 0.1% duplicate ids, 0.01% malformed lines, 0.01% records without id. Same seed, same bytes.
Writes ``<out>/posts-<schema>.jsonl`` and returns the ``(id, file_ext)`` of every record with a usable id.
"""

from __future__ import annotations

import argparse
import json
import random
import zlib
from pathlib import Path

GENERAL = [f"general_tag_{i}" for i in range(3000)] + ["solo", "comic", "1girl", "long_hair", "smile"]
CHARACTERS = [f"character_{i}_(series_{i % 97})" for i in range(5000)]
COPYRIGHTS = [f"series_{i}" for i in range(97)]
ARTISTS = [f"artist_{i}" for i in range(20000)]
META = ["highres", "commentary", "commentary_request", "absurdres", "translated"]


def _zipf_pick(rng: random.Random, items: list[str], k: int) -> list[str]:
    out = set()
    while len(out) < k:
        out.add(items[min(int(rng.paretovariate(1.1)) - 1, len(items) - 1)])
    return sorted(out)


class RecordMaker:
    """Draws realistic flat records quickly: tag strings come from pools drawn once (Zipf-like tag frequencies,
    8-40 general tags, 0-3 characters), the scalar fields per record."""

    def __init__(self, rng: random.Random, pool: int = 4000) -> None:
        self.rng = rng
        self.generals = []
        for _ in range(pool):
            general = set(_zipf_pick(rng, GENERAL, rng.randint(8, 40)))
            if rng.random() < 0.5:
                general.add("solo")
            if rng.random() < 0.03:
                general.add("comic")
            self.generals.append(" ".join(sorted(general)))
        self.chars = [
            " ".join(_zipf_pick(rng, CHARACTERS, rng.choices([0, 1, 2, 3], weights=[20, 60, 15, 5])[0]))
            for _ in range(pool)
        ]
        self.copies = [" ".join(_zipf_pick(rng, COPYRIGHTS, rng.randint(0, 2))) for _ in range(pool)]
        self.metas = [" ".join(_zipf_pick(rng, META, rng.randint(0, 2))) for _ in range(pool)]

    def __call__(self, post_id: int) -> dict:
        rng = self.rng
        general_s = rng.choice(self.generals)
        chars = rng.choice(self.chars)
        copy = rng.choice(self.copies)
        meta = rng.choice(self.metas)
        artist = rng.choice(ARTISTS)
        md5 = f"{rng.getrandbits(128):032x}"
        ext = rng.choices(["jpg", "png", "gif", "webm", "mp4", "zip"], weights=[70, 25, 2, 1, 1, 1])[0]
        w, h = rng.randint(300, 4000), rng.randint(300, 4000)
        if rng.random() < 0.02:
            w, h = rng.randint(16, 63), rng.randint(16, 63)
        stamp = f"2020-07-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:31:20.176-04:00"
        all_tags = " ".join(sorted({*general_s.split(), *chars.split(), *copy.split(), artist, *meta.split()}))
        return {
            "id": post_id,
            "created_at": stamp,
            "uploader_id": rng.randint(1, 900000),
            "score": rng.choices([-2, -1, 0, 1, 2, 5, 20, 100], weights=[2, 5, 20, 25, 20, 15, 10, 3])[0],
            "source": f"https://i.pximg.net/img-original/img/2020/07/26/23/24/44/{rng.randint(1, 10**8)}_p0.png",
            "md5": md5,
            "last_comment_bumped_at": None,
            "rating": rng.choices(["s", "q", "e"], weights=[75, 15, 10])[0],
            "image_width": w,
            "image_height": h,
            "tag_string": all_tags,
            "is_note_locked": False,
            "fav_count": rng.randint(0, 500),
            "file_ext": ext,
            "last_noted_at": None,
            "is_rating_locked": False,
            "parent_id": None,
            "has_children": False,
            "approver_id": None,
            "tag_count_general": general_s.count(" ") + 1,
            "tag_count_artist": 1,
            "tag_count_character": len(chars.split()),
            "tag_count_copyright": len(copy.split()),
            "file_size": rng.randint(10**4, 10**7),
            "is_status_locked": False,
            "pool_string": "",
            "up_score": 1,
            "down_score": 0,
            "is_pending": False,
            "is_flagged": rng.random() < 0.002,
            "is_deleted": rng.random() < 0.03,
            "tag_count": all_tags.count(" ") + 1,
            "updated_at": stamp,
            "is_banned": rng.random() < 0.005,
            "pixiv_id": rng.randint(1, 10**8) if rng.random() < 0.5 else None,
            "last_commented_at": None,
            "has_active_children": False,
            "bit_flags": 0,
            "tag_count_meta": len(meta.split()),
            "has_large": True,
            "has_visible_children": False,
            "is_favorited": False,
            "tag_string_general": general_s,
            "tag_string_character": chars,
            "tag_string_copyright": copy,
            "tag_string_artist": artist,
            "tag_string_meta": meta,
            "file_url": f"https://danbooru.donmai.us/data/{md5}.{ext}",
            "large_file_url": f"https://danbooru.donmai.us/data/sample/sample-{md5}.jpg",
            "preview_file_url": f"https://cdn.donmai.us/preview/{md5[:2]}/{md5[2:4]}/{md5}.jpg",
        }


POOL = 50_000  # distinct record bodies drawn per file; every record gets its own id and md5
_ID = "@@id@@"
_MD5 = "@@md5@@"


def _body(make_record: RecordMaker, nested: bool) -> tuple[list[str], str]:
    """One record's JSON split around its id and md5 (so a record is a join, not a draw + encode), and its ext."""
    rec = make_record(0)
    rec["id"] = _ID
    rec["md5"] = _MD5
    text = json.JSONEncoder(separators=(",", ":")).encode(as_nested(rec) if nested else rec)
    # flat records hold the id as a JSON integer, nested ones as a string
    text = text.replace(f'"{_ID}"', _ID if not nested else f'"{_ID}"')
    head, rest = text.split(_ID)
    mid, tail = rest.split(_MD5)
    return [head, mid, tail], rec["file_ext"]


def generate(
    path: Path, records: int, seed: int = 0, nested: bool = False, first_id: int = 1000
) -> tuple[int, list[tuple[int, str]]]:
    """Write the JSONL file; return its size and the (id, ext) of every record with a usable id.

    ``min(records, POOL)`` record bodies are drawn with :class:`RecordMaker` (tags, sizes, scores, flags...); each
    written record is one of them with its own id (increasing, gaps of 1-3) and its own random md5, so 5M records
    take a minute, not hours. Rates: 0.1% duplicate ids, 0.01% malformed lines, 0.01% records without id."""
    rng = random.Random(seed)
    make_record = RecordMaker(rng)
    bodies = [_body(make_record, nested) for _ in range(min(records, POOL))]
    no_id = make_record(0)
    del no_id["id"]
    no_id_line = json.dumps(as_nested(no_id) if nested else no_id, separators=(",", ":")) + "\n"
    posts: list[tuple[int, str]] = []
    next_id = first_id
    getrandbits, randint, random_ = rng.getrandbits, rng.randint, rng.random
    n_bodies = len(bodies)
    with open(path, "w", encoding="utf-8", buffering=1 << 22) as fh:
        lines: list[str] = []
        for _ in range(records):
            roll = random_()
            if roll < 0.0001:
                lines.append('{"id": 12, "rating": "s", "tag_string_general": "unterminated\n')
                continue
            if roll < 0.0002:
                lines.append(no_id_line)
                continue
            (head, mid, tail), ext = bodies[int(random_() * n_bodies)]
            if roll < 0.0012 and posts:
                post_id = posts[int(random_() * len(posts))][0]  # duplicate id
            else:
                next_id += randint(1, 3)
                post_id = next_id
                posts.append((post_id, ext))
            lines.append(f"{head}{post_id}{mid}{getrandbits(128):032x}{tail}\n")
            if len(lines) >= 4096:
                fh.write("".join(lines))
                lines = []
        fh.write("".join(lines))
    return path.stat().st_size, posts


CATEGORY = {"general": "0", "artist": "1", "copyright": "3", "character": "4", "meta": "5"}


def as_nested(rec: dict) -> dict:
    """The Danbooru2017-2020 dump form of a flat record: numbers as strings, tags as a list of objects."""
    tags = []
    for cat, code in CATEGORY.items():
        for name in rec[f"tag_string_{cat}"].split():
            tags.append({"id": str(zlib.crc32(name.encode()) % 10**6), "name": name, "category": code})
    out = {
        "id": str(rec["id"]) if "id" in rec else None,
        "created_at": rec["created_at"][:19].replace("T", " ") + " UTC",
        "uploader_id": str(rec["uploader_id"]),
        "score": str(rec["score"]),
        "source": rec["source"],
        "md5": rec["md5"],
        "rating": rec["rating"],
        "image_width": str(rec["image_width"]),
        "image_height": str(rec["image_height"]),
        "is_note_locked": False,
        "file_ext": rec["file_ext"],
        "parent_id": "0",
        "has_children": False,
        "approver_id": "0",
        "file_size": str(rec["file_size"]),
        "is_status_locked": False,
        "up_score": "1",
        "down_score": "0",
        "is_pending": False,
        "is_flagged": rec["is_flagged"],
        "is_deleted": rec["is_deleted"],
        "is_banned": rec["is_banned"],
        "pixiv_id": str(rec["pixiv_id"] or 0),
        "tags": tags,
        "pools": [],
        "favs": [],
    }
    if out["id"] is None:
        del out["id"]
    return out


def write(out: Path, records: int, schema: str, seed: int = 0) -> list[tuple[Path, int, list[tuple[int, str]]]]:
    """The metadata files for ``schema`` (flat, nested or mixed: 20% nested, 80% flat, disjoint ids)."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    if schema in ("flat", "nested"):
        path = out / f"posts-{schema}.jsonl"
        made.append((path, *generate(path, records, seed, nested=schema == "nested")))
    else:
        n_nested = records // 5
        path = out / "posts-nested.jsonl"
        made.append((path, *generate(path, n_nested, seed, nested=True)))
        last = max((p for p, _ in made[0][2]), default=1000)
        path = out / "posts-flat.jsonl"
        made.append((path, *generate(path, records - n_nested, seed + 1, first_id=last + 1)))
    return made


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--schema", choices=["flat", "nested", "mixed"], default="mixed")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for path, size, posts in write(args.out, args.records, args.schema, args.seed):
        print(json.dumps({"file": str(path), "bytes": size, "posts": len(posts)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
