"""Ingest throughput: records/s per CPU core and peak RSS of the real ingest job on synthetic Danbooru2021-style
(flat) metadata, plus the cost of the ``missing_file`` check against a naive ``os.path.exists`` per post.

    .venv/bin/python benchmarks/ingest_throughput.py [--records 1000000] [--present 0.9] [--work DIR]

Steps (only step 3 is timed):
1. generate ``records`` JSON Lines in the flat shape (the real API field set, realistic tag counts and value
   distributions, 0.1% duplicate ids, 0.01% malformed lines, 0.01% records without id) in --work;
2. create a mirror ``original/{bucket}/{id}.{ext}`` holding empty files for a fraction ``present`` of the posts
   (kept in --work and reused);
3. run ``python -m animefaces.ingest`` (the code path the workflow rule runs) in a subprocess, once with the demo's
   filter block and once with the schema defaults (most posts kept: the memory worst case), and read its CPU
   time and ru_maxrss from ``os.wait4``; records/s/core = records / (user + system CPU seconds);
4. time ``os.path.exists`` for a sample of the same image paths, for comparison with the bucket-listing index.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
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


def generate(path: Path, records: int, seed: int = 0) -> tuple[int, list[tuple[int, str]]]:
    """Write the JSONL file; return its size and the (id, ext) of every record with a usable id."""
    rng = random.Random(seed)
    make_record = RecordMaker(rng)
    posts: list[tuple[int, str]] = []
    next_id = 1000
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(records):
            roll = rng.random()
            if roll < 0.0001:
                fh.write('{"id": 12, "rating": "s", "tag_string_general": "unterminated\n')
                continue
            if roll < 0.0002:
                rec = make_record(0)
                del rec["id"]
            elif roll < 0.0012 and posts:
                rec = make_record(rng.choice(posts)[0])  # duplicate id
            else:
                next_id += rng.randint(1, 3)
                rec = make_record(next_id)
                posts.append((next_id, rec["file_ext"]))
            fh.write(dumps(rec) + "\n")
    return path.stat().st_size, posts


def make_mirror(root: Path, posts: list[tuple[int, str]], present: float, seed: int = 1) -> int:
    rng = random.Random(seed)
    made = 0
    for bucket in range(1000):
        (root / "original" / f"{bucket:04d}").mkdir(parents=True, exist_ok=True)
    for post_id, ext in posts:
        if rng.random() < present:
            p = root / "original" / f"{post_id % 1000:04d}" / f"{post_id}.{ext}"
            p.touch()
            made += 1
    return made


from animefaces.demo.corpus import ASSUMED_CONFIG  # noqa: E402  (the demo's filter block, one source)

FILTERS = {
    # the demo's filter block (config/config.yaml): most posts are dropped, few rows carry kept-row columns
    "demo_filter": dict(ASSUMED_CONFIG["filter"]),
    # the schema defaults (keep every rating): most posts are kept, the worst case for memory
    "defaults": {},
}


def run_ingest(work: Path, metadata: Path, root: Path, shards: int, flt: dict) -> dict:
    out = work / "results" / "bench" / "ingest"
    dataset = {"source": "danbooru", "root": str(root), "metadata": [str(metadata)]}
    classes = {"top_k": 1000, "aliases": {"character_1_(series_1)": "character_0_(series_0)"}}
    cmd = [
        sys.executable,
        "-m",
        "animefaces.ingest",
        "--out",
        str(out),
        "--dataset",
        json.dumps(dataset),
        "--filter",
        json.dumps(flt),
        "--classes",
        json.dumps(classes),
        "--shards",
        str(shards),
        "--log-level",
        "WARNING",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow"))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    stdout = proc.stdout.read()  # type: ignore[union-attr]
    stderr = proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"ingest failed:\n{stderr.decode()}")
    summary = json.loads(stdout)
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_mb": usage.ru_maxrss / 1024,
        "summary": summary,
    }


def naive_exists(root: Path, posts: list[tuple[int, str]], sample: int = 100_000, seed: int = 2) -> float:
    """Seconds per post for os.path.exists on the image path (cold-ish dentry cache not guaranteed)."""
    rng = random.Random(seed)
    chosen = rng.sample(posts, min(sample, len(posts)))
    paths = [f"{root}/original/{pid % 1000:04d}/{pid}.{ext}" for pid, ext in chosen]
    t0 = time.process_time()
    for p in paths:
        os.path.exists(p)
    return (time.process_time() - t0) / len(paths)


def parse_ceiling(metadata: Path, lines: int = 100_000) -> float:
    """Records/s (CPU) of ``json.loads`` alone on the first lines of the file: the bound for any pure-Python
    ingest of this metadata (every record has to be decoded)."""
    sample = []
    with open(metadata, "rb") as fh:
        for line in fh:
            sample.append(line)
            if len(sample) >= lines:
                break
    sample = [line for line in sample if not line.startswith(b'{"id": 12, ')]  # the planted malformed lines
    t0 = time.process_time()
    for line in sample:
        json.loads(line.decode())
    return len(sample) / (time.process_time() - t0)


def index_cost(root: Path) -> tuple[float, int]:
    """CPU seconds per file to list all 1000 buckets with the real MirrorIndex, and the files indexed."""
    sys.path.insert(0, str(REPO / "workflow"))
    from animefaces.ingest.mirror import MirrorIndex

    t0 = time.process_time()
    index = MirrorIndex(root)
    index.ensure(range(1000))
    return (time.process_time() - t0) / max(index.files_indexed, 1), index.files_indexed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--present", type=float, default=0.9, help="fraction of posts whose image file exists")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--work", type=Path, default=Path("/tmp/animefaces-ingest-bench"))
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    metadata = args.work / f"posts-{args.records}.jsonl"
    root = args.work / f"mirror-{args.records}-{args.present}"
    sidecar = metadata.with_suffix(".posts.json")
    t0 = time.perf_counter()
    if metadata.is_file() and sidecar.is_file():  # same seed, same file: reuse it
        size, posts = metadata.stat().st_size, [tuple(p) for p in json.loads(sidecar.read_text())]
    else:
        size, posts = generate(metadata, args.records)
        sidecar.write_text(json.dumps(posts))
    gen_s = time.perf_counter() - t0
    if not (root / "original").is_dir():
        made = make_mirror(root, posts, args.present)
    else:
        made = sum(1 for _ in (root / "original").rglob("*.*"))
    per_exists = naive_exists(root, posts)
    per_file, indexed = index_cost(root)
    ceiling = parse_ceiling(metadata)
    report: dict = {
        "records": args.records,
        "bytes_per_record": round(size / args.records),
        "metadata_mb": round(size / 2**20, 1),
        "image_files_in_mirror": made,
        "generate_s": round(gen_s, 1),
        "naive_exists_us_per_post": round(per_exists * 1e6, 2),
        "index_listing_us_per_file": round(per_file * 1e6, 2),
        "files_indexed": indexed,
        "json_loads_alone_records_per_s": round(ceiling),
    }
    for name, flt in FILTERS.items():
        run = run_ingest(args.work, metadata, root, args.shards, flt)
        summ = run["summary"]
        checked = summ["kept"] + summ["dropped"].get("missing_file", 0)
        report[name] = {
            "ingest_wall_s": round(run["wall_s"], 2),
            "ingest_cpu_s": round(run["cpu_s"], 2),
            "records_per_s_per_core": round(summ["records"] / run["cpu_s"]),
            "mb_per_s_per_core": round(size / 2**20 / run["cpu_s"], 1),
            "peak_rss_mb": round(run["max_rss_mb"]),
            "kept": summ["kept"],
            "dropped": summ["dropped"],
            "stage_seconds_wall": summ["seconds"],
            "file_checks": checked,
            "naive_exists_s_for_same_checks": round(per_exists * checked, 3),
        }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
