"""Sharding: posts go to one of 1000 buckets by ``id % 1000`` (Danbooru's own folder layout), and the buckets
are grouped into ``count`` contiguous shards. The DAG has one job per shard, never one per image."""

from __future__ import annotations

N_BUCKETS = 1000


def check_count(count: int) -> int:
    if not 1 <= int(count) <= N_BUCKETS:
        raise ValueError(f"shards.count must be between 1 and {N_BUCKETS}, got {count!r}")
    return int(count)


def bucket_of(post_id: int) -> int:
    return int(post_id) % N_BUCKETS


def shard_index(post_id: int, count: int) -> int:
    """Shard index of a post: bucket ``b`` belongs to shard ``b * count // 1000``."""
    return bucket_of(post_id) * check_count(count) // N_BUCKETS


def shard_name(index: int) -> str:
    return f"{index:03d}"


def shard_of(post_id: int, count: int) -> str:
    return shard_name(shard_index(post_id, count))


def shard_names(count: int) -> list[str]:
    return [shard_name(i) for i in range(check_count(count))]


def buckets_of_shard(index: int, count: int) -> range:
    """The contiguous bucket range a shard holds (inverse of :func:`shard_index`)."""
    count = check_count(count)
    lo = -(-index * N_BUCKETS // count)  # ceil(index * 1000 / count)
    hi = -(-(index + 1) * N_BUCKETS // count)
    return range(lo, hi)
