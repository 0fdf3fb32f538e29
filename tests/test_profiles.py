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


def profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def snakemake_args(name: str):
    _, args = parse_args(["--profile", str(PROFILES / name), "-n"])
    return args


# The demo config trains on the CPU (train.gpus: 0); the profiles are for real runs: one GPU for train.
TRAIN = {"gpus": 1, "device": "auto", "preset": "auto", "kimg": None}


@pytest.fixture(scope="module")
def rules():
    return {r.name: r for r in load_rules(REPO / "Snakefile", REPO, {"train": TRAIN}) if r.runs_something}


@pytest.fixture(scope="module")
def fused_rules():
    """The rules with shards.fuse (crop_clean instead of crop and clean)."""
    config = {"train": TRAIN, "shards": {"count": 4, "fuse": True}}
    return {r.name: r for r in load_rules(REPO / "Snakefile", REPO, config) if r.runs_something}


def values(resources) -> dict:
    """Snakemake Resource objects -> plain values (those computed per job, like tmpdir, left out)."""
    out = {}
    for key, res in resources.items():
        with contextlib.suppress(ValueError):
            out[key] = res.value
    return out


def test_default_profile_as_snakemake_reads_it(rules):
    args = snakemake_args("default")
    assert args.executor in (None, "local")
    gpus = values(args.resources)["gpu"]
    # the train rule takes gpu=<train.gpus> slots (1 with the default config): it must fit, or it would never run
    assert rules["train"].resources.get("gpu", 0) <= gpus
    assert values(args.default_resources)["mem_mb"] >= 1000
    assert args.rerun_incomplete and args.printshellcmds and not args.keep_going
    assert args.latency_wait > 0


def test_slurm_profile_as_snakemake_reads_it():
    args = snakemake_args("slurm")
    assert args.executor == "slurm"
    assert args.jobs >= 1 and args.latency_wait >= 30 and args.retries >= 1
    defaults = values(args.default_resources)
    assert defaults["runtime"] > 0 and defaults["mem_mb"] > 0
    for rule, res in args.set_resources.items():
        res = values(res)
        assert res["mem_mb"] > 0 and res["runtime"] > 0, rule
        assert "gpu" not in res and "gres" not in res, f"{rule}: GPUs come from the train rule (config train.gpus)"


# ids avoid the word "slurm": conftest skips tests whose keywords contain the `slurm` marker name
@pytest.mark.parametrize("name", ["default", "slurm"], ids=["workstation", "cluster"])
def test_profiles_name_only_real_rules(rules, fused_rules, name):
    """Snakemake silently ignores set-resources for a rule that does not exist: a renamed rule would lose them."""
    prof = profile(name)
    named = set(prof.get("set-resources") or {}) | set(prof.get("set-threads") or {})
    assert named - (set(rules) | set(fused_rules)) == set(), f"{name} profile names rules the workflow does not have"


@pytest.mark.parametrize("name", ["default", "slurm"], ids=["workstation", "cluster"])
def test_notemp_in_the_profiles_ignores_nothing(name):
    """The profiles set notemp (it skips Snakemake's per-job temp scan of upstream outputs, seconds at 1000 shards):
    harmless only while no rule declares a temp() output, which would then silently be kept."""
    assert snakemake_args(name).notemp
    from snakemake.api import SnakemakeApi
    from snakemake.io import is_flagged
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    for config in ({}, {"shards": {"count": 4, "fuse": True}}):
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            wf = api.workflow(
                resource_settings=ResourceSettings(),
                config_settings=ConfigSettings(config=config),
                snakefile=REPO / "Snakefile",
                workdir=REPO,
            )._workflow
            temp = [f"{rule.name}: {f}" for rule in wf.rules for f in rule.output if is_flagged(f, "temp")]
        assert temp == [], f"temp() outputs would be kept by the profiles' notemp: {temp}"


def test_fused_shard_rule_replaces_crop_and_clean_and_is_sized_for_both(rules, fused_rules):
    """shards.fuse: one crop_clean job per shard runs both stages' own commands; SLURM gives it the larger memory
    and the summed runtime of the two, and nothing else in the workflow changes."""
    assert {"crop", "clean"} <= set(rules) and "crop_clean" not in rules
    assert "crop_clean" in fused_rules and not {"crop", "clean"} & set(fused_rules)
    assert set(fused_rules) - {"crop_clean"} == set(rules) - {"crop", "clean"}
    assert fused_rules["crop_clean"].modules == ["animefaces.clean", "animefaces.crop"]
    sized = profile("slurm")["set-resources"]
    assert sized["crop_clean"]["mem_mb"] >= max(sized["crop"]["mem_mb"], sized["clean"]["mem_mb"])
    assert sized["crop_clean"]["runtime"] >= sized["crop"]["runtime"] + sized["clean"]["runtime"]


def test_slurm_profile_sizes_every_submitted_rule(rules):
    """Every rule sent to SLURM gets memory and runtime: from the profile, or from the rule itself (train: config).
    Local rules (fetch_cascade: the download runs where the internet is) are never submitted: not sized."""
    sized = profile("slurm")["set-resources"]
    missing = sorted(
        name
        for name, rule in rules.items()
        if not rule.local and name not in sized and not {"mem_mb", "runtime"} <= set(rule.resources)
    )
    assert missing == [], f"rules without a SLURM memory/runtime request in workflow/profiles/slurm: {missing}"
    pointless = sorted(name for name in sized if name in rules and rules[name].local)
    assert pointless == [], f"local rules never reach SLURM, their set-resources do nothing: {pointless}"


def test_train_keeps_its_config_driven_gpu_memory_and_runtime(rules):
    """The profile must not override what train.gpus / train.mem_mb / train.runtime request (torchrun uses gpus)."""
    assert "train" not in (profile("slurm").get("set-resources") or {})
    assert {"gpu", "mem_mb", "runtime"} <= set(rules["train"].resources)


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


def sbatch(rule: str, threads: int, declared: dict, overrides: dict | None = None) -> str:
    """The sbatch call the installed plugin builds for a job of ``rule`` under the slurm profile."""
    prof = profile("slurm")
    res = {**prof["default-resources"], **declared, **prof["set-resources"].get(rule, {}), **(overrides or {})}
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


def test_plugin_requests_the_gpu_for_train_and_cpus_memory_time_for_cpu_rules(rules):
    train = rules["train"].resources  # default config: train.gpus = 1
    cmd = sbatch("train", 4, train)
    assert f" --gpus={train['gpu']}" in cmd and "--gres" not in cmd
    assert f"--mem {train['mem_mb']}" in cmd and f"-t {train['runtime']}" in cmd and "--cpus-per-task=4" in cmd
    crop = profile("slurm")["set-resources"]["crop"]
    cmd = sbatch("crop", 2, rules["crop"].resources)
    assert "--gpus" not in cmd and "--gres" not in cmd
    assert f"--mem {crop['mem_mb']}" in cmd and f"-t {crop['runtime']}" in cmd and "--cpus-per-task=2" in cmd


def test_documented_gres_and_gpu_model_alternatives(rules):
    """Profile comments / README: `gpu_model` adds the model; sites that only take --gres set gpu: 0 + gres."""
    train = rules["train"].resources
    cmd = sbatch("train", 4, train, {"gpu": 0, "gres": "gpu:1"})
    assert "--gres=gpu:1" in cmd and "--gpus" not in cmd
    cmd = sbatch("train", 4, train, {"gpu_model": "a100"})
    assert f"--gpus=a100:{train['gpu']}" in cmd


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


# ---------------------------------------------------------------- train.nodes > 1: one job over several nodes
MULTI_NODE = {"train": {"nodes": 2, "gpus": 4, "device": "auto", "threads": 8, "preset": "auto", "kimg": None}}


def test_plugin_turns_train_nodes_into_one_multi_node_job():
    """train.nodes: 2, gpus: 4 -> one sbatch job over 2 nodes, one task (the per-node torchrun launcher) per node,
    4 GPUs per node requested per node (--gres), no --gpus total and no --ntasks-per-gpu."""
    (train,) = [r for r in load_rules(REPO / "Snakefile", REPO, MULTI_NODE) if r.name == "train"]
    res = train.resources
    assert res["nodes"] == 2 and res["tasks"] == 2 and res["gres"] == "gpu:4" and "gpu" not in res
    cmd = sbatch("train", 8, res)
    assert " --nodes=2" in cmd and " --ntasks=2" in cmd and "--gres=gpu:4" in cmd and "--cpus-per-task=8" in cmd
    assert "--gpus" not in cmd and "--ntasks-per-gpu" not in cmd
    assert f"--mem {res['mem_mb']}" in cmd and f"-t {res['runtime']}" in cmd
    # the plugin's job step runs the command of an `mpi` job as it is (the command's own srun places the tasks)
    # instead of inside a one-task `srun -n1 --nodes=1`
    assert "mpi" in res


def test_slurm_dry_run_shows_the_multi_node_train_job(tmp_path):
    cfg = tmp_path / "nodes.yaml"
    cfg.write_text(yaml.safe_dump(MULTI_NODE))
    target = "results/demo/train/network-final.pt"
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", target, "-n", "--profile", str(PROFILES / "slurm"), "--configfile", cfg],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    job = out.stdout.split("rule train:")[1].split("Job stats")[0]
    resources = dict(kv.split("=", 1) for kv in job.split("resources: ")[1].splitlines()[0].split(", "))
    assert {k: resources[k] for k in ("nodes", "tasks", "gres", "mpi")} == {
        "nodes": "2",
        "tasks": "2",
        "gres": "gpu:4",
        "mpi": "srun",
    }
    assert "gpu" not in resources
    shell = job.split("Shell command: ")[1]
    assert shell.startswith("srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --cpus-per-task=8 --kill-on-bad-exit=1")
    assert "--gres=gpu:4 torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d" in shell
    assert '--rdzv_endpoint="$(hostname)"' in shell and "-m animefaces.train --data" in shell
