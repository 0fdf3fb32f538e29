"""Sharding: posts go to one of 1000 buckets by ``id % 1000`` (Danbooru's own folder layout), and the buckets
are dealt to ``count`` shards in turn (bucket ``b`` -> shard ``b % count``), so any run of consecutive ids, e.g. a
folder of ``1.png`` .. ``N.png``, spreads over every shard (contiguous groups would put ids 1..124 all in shard 0
of 8). The DAG has one job per shard, never one per image.

(Until 2026-11 buckets were grouped contiguously, ``b * count // 1000``: results/ made before then have other
shard assignments and are rebuilt from ingest on.)"""

from __future__ import annotations

N_BUCKETS = 1000


def check_count(count: int) -> int:
    if not 1 <= int(count) <= N_BUCKETS:
        raise ValueError(f"shards.count must be between 1 and {N_BUCKETS}, got {count!r}")
    return int(count)


def bucket_of(post_id: int) -> int:
    return int(post_id) % N_BUCKETS


def shard_of_bucket(bucket: int, count: int) -> int:
    """Shard index of a bucket: bucket ``b`` belongs to shard ``b % count``."""
    return int(bucket) % check_count(count)


def shard_index(post_id: int, count: int) -> int:
    """Shard index of a post."""
    return shard_of_bucket(bucket_of(post_id), count)


def shard_name(index: int) -> str:
    return f"{index:03d}"


def shard_of(post_id: int, count: int) -> str:
    return shard_name(shard_index(post_id, count))


def shard_names(count: int) -> list[str]:
    return [shard_name(i) for i in range(check_count(count))]


def buckets_of_shard(index: int, count: int) -> range:
    """The buckets a shard holds (inverse of :func:`shard_index`)."""
    return range(index, N_BUCKETS, check_count(count))
