"""At Danbooru scale (``shards.count: 1000``) no job's command grows with the shard count.

Snakemake runs a job's command as ONE argument to ``bash -c``, and Linux caps one argument at 128 KB
(MAX_ARG_STRLEN): a rule that put every shard's manifest on its command line (the report's funnel took 5,001 paths,
~209 KB at 1000 shards) fails with "Argument list too long" before it starts. The global steps take
``--results RES --shards N`` instead (``animefaces.manifest.shard_manifests``). Checked on the real rule files by a
dry run of the whole workflow, the learned upscaler and the ranking included, at 4 and at 1000 shards.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_partial_rerun import copy_workflow, snakemake, write_config

MAX_ARG_STRLEN = 128 * 1024


def longest_commands(workdir: Path, shards: int, **shard_keys) -> dict[str, int]:
    """{rule: length of its longest shell command} in a dry run with ``shards`` shards (and other ``shards`` keys)."""
    (workdir / "frozen-d.pt").touch()  # rank.network: a file no rule writes; the rank rule joins the DAG
    config = {"shards": {"count": shards, **shard_keys}, "normalise": {"upscale": {"backend": "learned"}}}
    write_config(workdir, {**config, "rank": {"network": "frozen-d.pt"}})
    out = snakemake(workdir, "-n", "-p", "--notemp", timeout=600)
    jobs = re.search(r"^(?:crop_clean|crop)\s+(\d+)\s*$", out, re.M)
    assert jobs and int(jobs.group(1)) == shards // shard_keys.get("per_job", 1), out[-3000:]
    longest: dict[str, int] = {}
    rule = None
    for line in out.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
        elif line.startswith("Shell command: ") and rule is not None:
            longest[rule] = max(longest.get(rule, 0), len(line) - len("Shell command: "))
    assert longest, f"no shell commands in the dry run:\n{out[-3000:]}"
    return longest


@pytest.mark.slow  # two dry runs of the whole workflow, one with 3,000 jobs: ~40 s on an idle core
def test_no_job_command_grows_with_the_shard_count(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    small = longest_commands(wd, 4)
    large = longest_commands(wd, 1000)
    assert set(large) == set(small)
    assert {"dedup", "rank", "select", "upscale_train", "report_funnel", "report_drops", "report_pairs"} <= set(large)
    grown = {rule: (small[rule], large[rule]) for rule in large if large[rule] > small[rule] + 3}  # "4" -> "1000"
    assert not grown, f"commands that grow with the shard count (4 -> 1000 shards): {grown}"
    assert max(large.values()) < MAX_ARG_STRLEN // 16


@pytest.mark.slow  # a dry run of 1000 shards in 10 jobs per per-shard stage: ~10 s
def test_a_hundred_shards_per_job_stay_under_the_argument_cap(tmp_path):
    """``shards.per_job`` puts each shard's files on its job's command line: at the largest setting (100 shards per
    job, crop and clean fused: five paths per shard) the longest command must stay below the cap even with a
    results path much longer than the demo's."""
    wd = copy_workflow(tmp_path / "wf")
    large = longest_commands(wd, 1000, per_job=100, fuse=True)
    assert large["crop_clean"] > large["dedup"]  # the per-shard lists are there
    # 100 shards x 5 paths (ingest, crop and clean manifests, crop images, the crop manifest again for clean): a
    # results folder 100 characters longer than `results/demo` still fits
    assert large["crop_clean"] + 500 * 100 < MAX_ARG_STRLEN, large["crop_clean"]
