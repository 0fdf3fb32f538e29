"""The workstation and SLURM profiles: parsed by Snakemake itself, naming only real rules, covering every rule, and
turned into the intended sbatch options by the installed SLURM plugin (the real submission: tests/test_slurm.py)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.cli import parse_args
from snakemake_executor_plugin_slurm.submit_string import get_submit_command
from snakemake_executor_plugin_slurm.utils import set_gres_string
from test_envs import load_rules

REPO = Path(__file__).resolve().parent.parent
PROFILES = REPO / "workflow" / "profiles"
GPU_RULE_PREFIXES = ("train", "sample")


def profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def snakemake_args(name: str):
    _, args = parse_args(["--profile", str(PROFILES / name), "-n"])
    return args


@pytest.fixture(scope="module")
def rules():
    return {r.name: r for r in load_rules(REPO / "Snakefile", REPO) if r.runs_something}


def values(resources) -> dict:
    """Snakemake Resource objects -> plain values (those computed per job, like tmpdir, left out)."""
    out = {}
    for key, res in resources.items():
        with contextlib.suppress(ValueError):
            out[key] = res.value
    return out


def test_default_profile_as_snakemake_reads_it():
    args = snakemake_args("default")
    assert args.executor in (None, "local")
    assert values(args.resources)["gpu"] >= 1  # at most this many GPU jobs at once
    assert values(args.default_resources)["mem_mb"] >= 1000
    assert args.rerun_incomplete and args.printshellcmds and not args.keep_going
    assert args.latency_wait > 0
    for rule, res in args.set_resources.items():
        if rule.startswith(GPU_RULE_PREFIXES):
            assert values(res).get("gpu") == 1, rule


def test_slurm_profile_as_snakemake_reads_it():
    args = snakemake_args("slurm")
    assert args.executor == "slurm"
    assert args.jobs >= 1 and args.latency_wait >= 30 and args.retries >= 1
    defaults = values(args.default_resources)
    assert defaults["runtime"] > 0 and defaults["mem_mb"] > 0
    for rule, res in args.set_resources.items():
        res = values(res)
        assert res["mem_mb"] > 0 and res["runtime"] > 0, rule
        assert ("gpu" in res) == rule.startswith(GPU_RULE_PREFIXES), f"{rule}: a GPU exactly for train/sample rules"


# ids avoid the word "slurm": conftest skips tests whose keywords contain the `slurm` marker name
@pytest.mark.parametrize("name", ["default", "slurm"], ids=["workstation", "cluster"])
def test_profiles_name_only_real_rules(rules, name):
    """Snakemake silently ignores set-resources for a rule that does not exist: a renamed rule would lose them."""
    prof = profile(name)
    named = set(prof.get("set-resources", {})) | set(prof.get("set-threads", {}))
    assert named - set(rules) == set(), f"{name} profile names rules the workflow does not have"


def test_slurm_profile_sizes_every_rule(rules):
    sized = profile("slurm")["set-resources"]
    missing = sorted(set(rules) - set(sized))
    assert missing == [], f"rules without a SLURM memory/runtime request in workflow/profiles/slurm: {missing}"


def test_gpu_rules_of_the_workflow_request_a_gpu(rules):
    gpu_rules = [r for r in rules if r.startswith(GPU_RULE_PREFIXES)]
    for name in ("default", "slurm"):
        sized = profile(name)["set-resources"]
        assert all(sized.get(r, {}).get("gpu") == 1 for r in gpu_rules), (name, gpu_rules)


# ---------------------------------------------------------------- what the plugin makes of it
class Resources(dict):
    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


class FakeJob:
    def __init__(self, name: str, threads: int, resources: dict):
        self.name, self.threads, self.resources, self.wildcards = name, threads, Resources(resources), {}

    def is_group(self) -> bool:
        return False


def sbatch(rule: str, threads: int, overrides: dict | None = None) -> str:
    prof = profile("slurm")
    res = {**prof["default-resources"], **prof["set-resources"].get(rule, {}), **(overrides or {})}
    job = FakeJob(rule, threads, res)
    params = {
        "run_uuid": "run",
        "slurm_logfile": "log",
        "comment_str": f"rule_{rule}",
        "account": "",
        "partition": "-p gpu",
        "workdir": "/w",
    }
    return get_submit_command(job, params) + set_gres_string(job)


def test_plugin_requests_one_gpu_for_train_and_cpus_memory_time_for_cpu_rules():
    prof = profile("slurm")
    train = prof["set-resources"]["train"]
    cmd = sbatch("train", prof["set-threads"]["train"])
    assert " --gpus=1" in cmd and "--gres" not in cmd
    assert f"--mem {train['mem_mb']}" in cmd and f"-t {train['runtime']}" in cmd
    assert f"--cpus-per-task={prof['set-threads']['train']}" in cmd
    crop = prof["set-resources"]["crop"]
    cmd = sbatch("crop", 2)
    assert "--gpus" not in cmd and "--gres" not in cmd
    assert f"--mem {crop['mem_mb']}" in cmd and f"-t {crop['runtime']}" in cmd and "--cpus-per-task=2" in cmd


def test_documented_gres_and_gpu_model_alternatives():
    """README/profile comments: sites that only accept --gres use `gres: "gpu:1"` instead of `gpu: 1`."""
    train = {k: v for k, v in profile("slurm")["set-resources"]["train"].items() if k != "gpu"}
    cmd = sbatch("x", 8, {**train, "gres": "gpu:1"})
    assert "--gres=gpu:1" in cmd and "--gpus" not in cmd
    cmd = sbatch("train", 8, {"gpu_model": "a100"})
    assert "--gpus=a100:1" in cmd


def test_profile_readme_documents_every_site_setting():
    text = (PROFILES / "README.md").read_text()
    for key in ("slurm_account", "slurm_partition", "gres", "gpu_model", "--sdm conda", "slurm-status-command"):
        assert key in text, key


# ids avoid the word "slurm": conftest skips tests whose keywords contain the `slurm` marker name
@pytest.mark.parametrize("name", ["default", "slurm"], ids=["workstation", "cluster"])
def test_workflow_dry_runs_with_profile(name, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", str(PROFILES / name), "-n", "--quiet", "rules"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
