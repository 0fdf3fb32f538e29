"""The multi-process (torchrun DDP) code path on CPU with the gloo backend: trains, and resumes exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
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
