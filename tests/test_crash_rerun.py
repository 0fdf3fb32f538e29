"""A killed run reruns cleanly: SIGKILL the whole Snakemake process group in the middle of the sharded stages,
rerun, and get exactly the outputs of the uninterrupted demo run, with no temporary files left behind (slow)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

STAGES = ["crop", "clean", "dedup", "normalise"]


def _manifests(res: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for stage in STAGES:
        for path in sorted((res / stage / "manifests").glob("*.parquet")):
            df = pd.read_parquet(path).drop(columns=["path"], errors="ignore")
            out[f"{stage}/{path.name}"] = df.reset_index(drop=True)
    return out


def test_killed_run_reruns_to_identical_outputs(demo_run, tmp_path):
    work = tmp_path / "wf"
    shutil.copytree(demo_run["work"], work, symlinks=True)
    res = work / "results" / demo_run["config"]["dataset"]["name"]
    reference = _manifests(demo_run["results"])
    assert reference

    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(venv_bin / "snakemake"), "--configfile", "test-config.yaml", "--cores", "2", "--until", "normalise"]
    proc = subprocess.Popen(
        [*cmd, "--forcerun", "crop"],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # wait until crop jobs are really writing (a crop log has grown), then kill everything at once
    deadline = time.monotonic() + 300
    logs = res / "logs" / "crop"
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.stat().st_size > 0 for p in logs.glob("*.log")) and (res / "crop" / "images").exists():
            time.sleep(2)
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the forced rerun finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)

    # a killed Snakemake leaves its directory lock behind: the documented recovery is --unlock, then rerun
    unlock = subprocess.run([*cmd, "--unlock"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    rerun = subprocess.run(
        [*cmd, "--rerun-incomplete"], cwd=work, env=env, capture_output=True, text=True, timeout=1800
    )
    assert rerun.returncode == 0, rerun.stdout[-4000:] + rerun.stderr[-4000:]
    again = _manifests(res)
    assert again.keys() == reference.keys()
    for name, df in reference.items():
        pd.testing.assert_frame_equal(again[name], df, check_like=False, obj=name)
    # our atomic writers use hidden temp names (".<name>.<random><suffix>"); Snakemake's own directory markers
    # (.snakemake_timestamp) are expected
    leftovers = [p for p in res.rglob(".*") if p.is_file() and p.name != ".snakemake_timestamp"]
    assert leftovers == [], leftovers[:5]
