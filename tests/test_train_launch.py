"""How the train rule launches training (animefaces.train.launch): one process, torchrun on one node, or srun +
one torchrun per node with a c10d rendezvous; and the scheduler resources it asks for. The two-"node" training run
itself is in tests/test_train_ddp.py, the SLURM plugin's reading of the resources in tests/test_profiles.py."""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest
from animefaces.train.launch import job_resources, launch_command, torchrun_args


def test_single_node_launch_and_resources():
    assert launch_command(1, 0, 4) == "python -m animefaces.train"
    assert launch_command(1, 1, 4) == "python -m animefaces.train"
    assert launch_command(1, 4, 4) == "torchrun --standalone --nproc_per_node=4 -m animefaces.train"
    assert job_resources(1, 0) == {}
    assert job_resources(1, 2) == {"gpu": 2}


def test_multi_node_resources_follow_the_plugins_mpi_convention():
    assert job_resources(3, 4) == {"nodes": 3, "tasks": 3, "mpi": "srun", "gres": "gpu:4", "tasks_per_gpu": 0}
    assert job_resources(2, 0) == {"nodes": 2, "tasks": 2, "mpi": "srun"}
    with pytest.raises(ValueError, match="train.nodes"):
        job_resources(0, 1)
    with pytest.raises(ValueError, match="train.nodes"):
        launch_command(0, 1, 4)


def run_in_job_shell(command: str, tmp_path, env: dict) -> subprocess.CompletedProcess:
    """Run the launch command the way the rule's shell does (bash, strict mode) with a stand-in ``srun`` that prints
    the argv it got, one word per line."""
    fake = tmp_path / "bin" / "srun"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}", **env}
    script = f"set -euo pipefail; {command} --data 'my pack.h5' --outdir out"
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)


def test_multi_node_command_expands_in_the_job_to_srun_plus_one_torchrun_per_node(tmp_path):
    cmd = launch_command(2, 4, 8)
    out = run_in_job_shell(cmd, tmp_path, {"SLURM_JOB_ID": "123456"})
    assert out.returncode == 0, out.stderr
    argv = out.stdout.splitlines()
    host = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    split = argv.index("torchrun")
    assert argv[:split] == [
        "--nodes=2",
        "--ntasks=2",
        "--ntasks-per-node=1",
        "--cpus-per-task=8",
        "--kill-on-bad-exit=1",
        "--gres=gpu:4",
    ]
    # every node's launcher: the same rendezvous (first node's host name, a port and id from the job id)
    assert argv[split:] == [
        *torchrun_args(2, 4, f"{host}:{29500 + 456}", "animefaces-123456"),
        "--data",
        "my pack.h5",
        "--outdir",
        "out",
    ]
    assert "--nnodes=2" in argv and "--nproc_per_node=4" in argv and "--rdzv_backend=c10d" in argv
    # a CPU multi-node job: one process per node, no GPU request
    words = shlex.split(launch_command(3, 0, 2).split(" torchrun")[0])
    assert words == [
        "srun",
        "--nodes=3",
        "--ntasks=3",
        "--ntasks-per-node=1",
        "--cpus-per-task=2",
        "--kill-on-bad-exit=1",
    ]
    assert "--nproc_per_node=1" in launch_command(3, 0, 2)


def test_multi_node_command_outside_slurm_says_what_to_do(tmp_path):
    out = run_in_job_shell(launch_command(2, 1, 4), tmp_path, {})
    assert out.returncode != 0 and out.stdout == ""
    assert "train.nodes > 1 runs only inside a SLURM job" in out.stderr and "profiles/slurm" in out.stderr
