"""The multi-process (torchrun DDP) code path on CPU with the gloo backend, on one node and across two "nodes"
(c10d rendezvous): trains, and resumes exactly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from animefaces.train.launch import torchrun_args
from test_train import assert_same_state, loss_rows, newest_state
from test_train_fixtures import TINY, blob_images, write_h5

REPO = Path(__file__).resolve().parent.parent


def torchrun(pack: Path, outdir: Path, *extra: str) -> subprocess.CompletedProcess:
    bindir = Path(sys.executable).parent
    cmd = [str(bindir / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "animefaces.train"]
    cmd += ["--data", str(pack), "--outdir", str(outdir), "--params", json.dumps(TINY), *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_two_process_ddp_trains_and_resumes_exactly(tmp_path):
    pack = write_h5(tmp_path / "tiny.hdf5", blob_images(24, 32), np.arange(24) % 3)
    ref = torchrun(pack, tmp_path / "ref")
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]
    assert "2 process(es)" in ref.stdout
    state = newest_state(tmp_path / "ref")
    assert state["world"] == 2 and len(state["rng"]) == 2
    # the two ranks drew different latents/augmentations (own RNG streams) and disjoint data shares
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])

    out = tmp_path / "resumed"
    stopped = torchrun(pack, out, "--stop-after-steps", "5")
    assert stopped.returncode != 0 and not (out / "network-final.pt").exists()
    done = torchrun(pack, out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "resumed from" in done.stdout
    resumed = newest_state(out)
    assert_same_state(resumed, state)
    assert torch.equal(resumed["rng"][1]["torch"], state["rng"][1]["torch"])
    assert loss_rows(out) == loss_rows(tmp_path / "ref")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_node_run(pack: Path, outdir: Path, *extra: str) -> list[subprocess.CompletedProcess]:
    """Two torchrun launchers, each acting as one node of a 2-node job (1 process each, gloo), meeting at a c10d
    rendezvous on 127.0.0.1: the argv the SLURM launch command gives each node, built by the same helper."""
    bindir = Path(sys.executable).parent
    endpoint = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    procs = []
    for node in (0, 1):
        cmd = torchrun_args(2, 0, endpoint, f"test-{outdir.name}", node_rank=node, torchrun=str(bindir / "torchrun"))
        cmd += ["--data", str(pack), "--outdir", str(outdir), "--params", json.dumps(TINY), *extra]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    done = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def logs(runs: list[subprocess.CompletedProcess]) -> str:
    return "\n".join(r.stdout[-2000:] + r.stderr[-2000:] for r in runs)


@pytest.mark.slow
def test_two_node_c10d_rendezvous_trains_and_resumes_exactly(tmp_path):
    """train.nodes: 2 on SLURM runs one torchrun per node joined through a c10d rendezvous (launch.py); here each
    "node" is a local launcher. Ranks are handed out in arrival order, so the resumed run may pair nodes and ranks
    differently: the state is keyed by global rank, and the result must still be bit-identical."""
    pack = write_h5(tmp_path / "tiny.hdf5", blob_images(24, 32), np.arange(24) % 3)
    ref = two_node_run(pack, tmp_path / "ref")
    assert [r.returncode for r in ref] == [0, 0], logs(ref)
    assert "2 process(es)" in "".join(r.stdout for r in ref)
    state = newest_state(tmp_path / "ref")
    assert state["world"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])

    out = tmp_path / "resumed"
    stopped = two_node_run(pack, out, "--stop-after-steps", "5")
    assert all(r.returncode != 0 for r in stopped) and not (out / "network-final.pt").exists()
    done = two_node_run(pack, out)
    assert [r.returncode for r in done] == [0, 0], logs(done)
    assert "resumed from" in "".join(r.stdout for r in done)
    resumed = newest_state(out)
    assert_same_state(resumed, state)
    assert torch.equal(resumed["rng"][1]["torch"], state["rng"][1]["torch"])
    assert loss_rows(out) == loss_rows(tmp_path / "ref")
