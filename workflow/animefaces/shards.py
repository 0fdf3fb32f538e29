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


# ------------------------------------------------------------------------------ several shards per job
# Snakemake's cost is per job (~2-3 ms each in a dry run, ~1 s each when it runs them), so a plan of 1000 shards
# spends most of its time on the 2,000-3,000 per-shard jobs. ``shards.per_job`` runs several shards in one job of
# each per-shard stage. Snakemake needs every output of a job to carry its wildcard, so a job (wildcard
# ``batch``) covers the shards whose names share all but their last 1 or 2 digits: ``per_job`` is 1, 10 or 100
# and divides ``count``. Each shard keeps its own manifest, images and ledger rows; only the job (rerun unit,
# log) is shared.
JOB_SIZES = (1, 10, 100)


def _digits(per_job: int) -> int:
    """How many last digits of a shard name vary inside one job."""
    if per_job not in JOB_SIZES:
        raise ValueError(f"shards.per_job must be one of {', '.join(map(str, JOB_SIZES))}, got {per_job!r}")
    return len(str(per_job)) - 1


def check_per_job(count: int, per_job: int) -> int:
    digits = _digits(per_job)
    if int(count) % per_job:
        raise ValueError(
            f"shards.per_job = {per_job} must divide shards.count = {count} (a job covers the shards whose names "
            f"share all but their last {digits} digit(s)): use a count that is a multiple of {per_job}"
        )
    return per_job


def batch_suffixes(per_job: int) -> list[str]:
    """The last digits that tell apart the shards of one job (``[""]`` for one shard per job)."""
    digits = _digits(per_job)
    return [f"{j:0{digits}d}" for j in range(per_job)] if digits else [""]


def batch_pattern(per_job: int) -> str:
    """The ``batch`` wildcard's regex: a job's name is the digits its shards share (3 for one shard per job, 2
    for 10, 1 for 100)."""
    return rf"\d{{{3 - _digits(per_job)}}}"
