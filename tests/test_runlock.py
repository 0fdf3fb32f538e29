"""The run lock (issue 16, item 2): `snakemake --unlock` during a live run, or a second checkout sharing
results/ through a symlink, must not start a second run on the same results; a dead run's lock is taken over;
a job whose run lost the lock stops. Real Snakemake processes running the workflow's own hooks (common.smk)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from animefaces import runlock

REPO = Path(__file__).resolve().parent.parent

SNAKEFILE = """
configfile: "{repo}/config/config.yaml"


include: "{repo}/workflow/rules/common.smk"


rule all:
    input:
        f"{{RES}}/after.txt",


rule slow:
    output:
        f"{{RES}}/slow.txt",
    shell:
        "echo started > {{RES}}/started; while [ ! -e {{RES}}/go ]; do sleep 0.1; done; echo done > {{output}}"


rule after:
    input:
        f"{{RES}}/slow.txt",
    output:
        f"{{RES}}/after.txt",
    shell:
        "echo after > {{output}}"
"""


def _wait(cond, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture()
def checkout(tmp_path):
    """A checkout whose Snakefile includes the real common.smk (hooks + job check) with two tiny rules."""

    def make(name: str) -> Path:
        wf = tmp_path / name
        wf.mkdir()
        (wf / "workflow").symlink_to(REPO / "workflow")  # common.smk puts <basedir>/workflow on the path
        (wf / "Snakefile").write_text(SNAKEFILE.format(repo=REPO))
        return wf

    return make


def _snakemake(wf: Path, *extra: str, wait: bool = True):
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k != runlock.TOKEN_ENV}
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO / "workflow")
    cmd = [str(venv_bin / "snakemake"), "--cores", "1", "--config", "dataset={name: lockdemo}", *extra]
    if wait:
        return subprocess.run(cmd, cwd=wf, env=env, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(cmd, cwd=wf, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_unlock_during_a_live_run_and_a_second_checkout_cannot_start_a_second_run(checkout):
    wf = checkout("wf")
    res = wf / "results" / "lockdemo"
    first = _snakemake(wf, wait=False)
    try:
        _wait(lambda: (res / "started").exists(), "the first run's job to start")
        state, sentence = runlock.status(res)
        assert state == runlock.ALIVE and f"pid {first.pid}" in sentence
        status = subprocess.run(
            [sys.executable, "-m", "animefaces.runlock", "status", str(res)], capture_output=True, text=True
        )
        assert status.returncode == 1 and "a run is alive" in status.stdout

        # the user follows Snakemake's advice while the run is alive, then starts again
        assert _snakemake(wf, "--unlock").returncode == 0
        second = _snakemake(wf, "--rerun-incomplete")
        assert second.returncode != 0
        assert "another animefaces run is alive on results/lockdemo" in second.stderr
        assert f"pid {first.pid}" in second.stderr and "--unlock` only removes Snakemake's own lock" in second.stderr

        # a second checkout sharing results/ through a symlink has no Snakemake lock in common: ours holds
        other = checkout("other")
        (other / "results").symlink_to(wf / "results")
        third = _snakemake(other)
        assert third.returncode != 0 and "another animefaces run is alive" in third.stderr
        assert (res / "started").exists() and not (res / "slow.txt").exists()  # the live job was not touched

        (res / "go").touch()
        out, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, out[-3000:]
    assert (res / "after.txt").read_text() == "after\n"
    assert not runlock.lock_path(res).exists()  # released on success
    assert runlock.status(res)[0] == "none"


@pytest.mark.slow
def test_a_job_whose_run_lost_the_lock_stops_and_a_dead_runs_lock_is_taken_over(checkout):
    wf = checkout("wf")
    res = wf / "results" / "lockdemo"
    first = _snakemake(wf, wait=False)
    try:
        _wait(lambda: (res / "started").exists(), "the first run's job to start")
        # another run took the lock over (as after a mistaken `runlock break`): the first run's next job stops
        lock = json.loads(runlock.lock_path(res).read_text())
        stolen = {**lock, "token": "f" * 32}
        runlock.lock_path(res).write_text(json.dumps(stolen))
        (res / "go").touch()
        out, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode != 0
    assert not (res / "after.txt").exists(), "the job of the run that lost its lock ran anyway"
    assert "this job's run lost it" in out
    assert json.loads(runlock.lock_path(res).read_text())["token"] == "f" * 32  # not released by the loser

    # its holder (the first run's pid) is dead now: the next run takes the stale lock over and completes
    assert runlock.status(res)[0] == runlock.DEAD
    rerun = _snakemake(wf, "--rerun-incomplete")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "taking over the stale run lock" in rerun.stderr
    assert (res / "after.txt").exists() and not runlock.lock_path(res).exists()


def test_lock_functions(tmp_path):
    res = tmp_path / "res"
    token = runlock.acquire(res)
    with pytest.raises(runlock.RunLockError, match="another animefaces run is alive"):
        runlock.acquire(res)  # this process is alive
    runlock.check(res, token)
    runlock.check(res, None)  # a stage run by hand: nothing to check
    with pytest.raises(runlock.RunLockError, match="lost it"):
        runlock.check(res, "0" * 32)
    assert not runlock.release(res, "0" * 32) and runlock.lock_path(res).exists()
    assert runlock.release(res, token) and not runlock.lock_path(res).exists()
    with pytest.raises(runlock.RunLockError, match="disappeared"):
        runlock.check(res, token)
    # held on another host: cannot be checked, refused; `break --force` removes it
    runlock.acquire(res)
    lock = json.loads(runlock.lock_path(res).read_text())
    runlock.lock_path(res).write_text(json.dumps({**lock, "host": "elsewhere"}))
    with pytest.raises(runlock.RunLockError, match="another host"):
        runlock.acquire(res)
    assert runlock.main(["break", str(res)]) == 1
    assert runlock.main(["break", str(res), "--force"]) == 0 and runlock.status(res)[0] == "none"
    # a pid reused by another process is not the holder
    runlock.acquire(res)
    lock = json.loads(runlock.lock_path(res).read_text())
    runlock.lock_path(res).write_text(json.dumps({**lock, "pid_start": "1"}))
    assert runlock.status(res)[0] == runlock.DEAD
    assert runlock.acquire(res)
