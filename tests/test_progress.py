"""Progress lines (done/total, rate, ETA) in every long stage's log, and `animefaces progress` to watch a run."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from animefaces.progress import (
    Progress,
    finished,
    format_progress,
    format_seconds,
    latest_line,
    main,
    progress_table,
    track,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_progress_writes_start_cadence_and_end_lines_with_rate_and_eta():
    clock, out = FakeClock(), io.StringIO()
    bar = Progress("crop 000", 100, "images", every=10, stream=out, clock=clock)
    for _ in range(20):  # 20 images in 4 s: no line before the cadence
        clock.t += 0.2
        bar.update()
    clock.t += 6.0
    bar.update(5)  # 25 images after 10 s: a line
    clock.t += 1.0
    bar.update(5)  # within the cadence: no line
    bar.close()
    bar.close()  # once
    lines = out.getvalue().splitlines()
    assert lines[0] == "progress crop 000: 0/100 images (0.0%), 0 images/s, elapsed 0:00, ETA ?"
    assert lines[1] == "progress crop 000: 25/100 images (25.0%), 2.5 images/s, elapsed 0:10, ETA 0:30"
    assert lines[2].startswith("progress crop 000: 30/100 images (30.0%), 2.73 images/s, elapsed 0:11, ETA 0:26")
    assert len(lines) == 3 and finished(lines[2].removeprefix("progress ")) is False


def test_the_end_line_is_not_repeated_when_the_cadence_just_wrote_it():
    clock, out = FakeClock(), io.StringIO()
    with Progress("clean 001", 3, "crops", every=10, stream=out, clock=clock) as bar:
        bar.update(2)
        clock.t += 11
        bar.update()  # the cadence writes 3/3 ...
    lines = out.getvalue().splitlines()  # ... and close() does not write it again
    assert [line.split(",")[0] for line in lines] == [
        "progress clean 001: 0/3 crops (0.0%)",
        "progress clean 001: 3/3 crops (100.0%)",
    ]


def test_open_ended_counts_end_as_finished():
    out = io.StringIO()
    with Progress("ingest", None, "records", every=3600, stream=out) as bar:
        bar.update(1000)
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("progress ingest: 1000/1000 records (100.0%)") and "ETA 0:00" in last
    assert finished(last.removeprefix("progress "))
    assert format_seconds(3725) == "1:02:05" and format_seconds(59.6) == "1:00"
    assert ", 3142 items/s," in format_progress("dedup", 3142, 3142, "items", 1.0, 3142.4)
    # training overshoots its target by up to one batch: still finished; short of it or open-ended: not
    assert finished("train: 3.008/3 kimg (100.3%), 0.05 kimg/s, elapsed 1:00, ETA 0:00")
    assert not finished("train: 2.992/3 kimg (99.7%), 0.05 kimg/s, elapsed 1:00, ETA 0:00")
    assert not finished("ingest: 10/? records, 5 records/s, elapsed 0:02") and not finished("no counts here")


def test_track_counts_every_item(capsys):
    assert list(track(range(7), "x", unit="things")) == list(range(7))
    assert capsys.readouterr().err.splitlines()[-1].startswith("progress x: 7/7 things (100.0%)")


def test_progress_command_shows_running_jobs_only(tmp_path, capsys):
    logs = tmp_path / "res" / "logs"
    (logs / "crop").mkdir(parents=True)
    (logs / "crop" / "000.log").write_text("x\nprogress crop 000: 5/10 images (50.0%), 1 images/s, ETA 0:05\nINFO y\n")
    (logs / "crop" / "001.log").write_text("progress crop 001: 10/10 images (100.0%), 1 images/s, ETA 0:00\n")
    (logs / "select.log").write_text("no progress here\n")
    assert latest_line(logs / "crop" / "000.log").startswith("crop 000: 5/10")
    assert [r[0] for r in progress_table(tmp_path / "res")] == ["crop/000.log"]
    assert [r[0] for r in progress_table(tmp_path / "res", include_finished=True)] == ["crop/000.log", "crop/001.log"]
    assert main([str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    assert "crop/000.log" in out and "5/10 images" in out and "001" not in out
    assert main([str(tmp_path / "nothing")]) == 1
    assert "does not exist" in capsys.readouterr().err


LONG_STAGE_LOGS = [
    "ingest.log",
    "crop/*.log",
    "clean/*.log",
    "dedup.log",
    "normalise/*.log",
    "pack/*.log",
    "train.log",
    "sample/images.log",
    "sample/video.log",
    "sample/montage.log",
]


# Both tests below read the one finished demo of the session-scoped `demo_run` fixture (tests/conftest.py), which
# the other slow end-to-end tests share too: CI runs the demo once.
@pytest.mark.slow
def test_every_long_stage_logs_progress_on_the_demo(demo_run, capsys):
    logs = demo_run["results"] / "logs"
    for pattern in LONG_STAGE_LOGS:
        files = sorted(logs.glob(pattern))
        assert files, pattern
        for f in files:
            lines = [line for line in f.read_text().splitlines() if line.startswith("progress ")]
            assert lines, f"{f}: no progress line"
            assert finished(lines[-1].removeprefix("progress ")), lines[-1]
            assert "/s, elapsed" in lines[-1] and "ETA" in lines[-1]
    tick_lines = [line for line in (logs / "train.log").read_text().splitlines() if line.startswith("tick ")]
    assert tick_lines and all(" eta " in line for line in tick_lines)
    assert main([str(demo_run["results"]), "--all"]) == 0
    assert "train.log" in capsys.readouterr().out


@pytest.mark.slow
def test_runtime_keys_do_not_rerun_the_finished_demo(demo_run, tmp_path):
    """On the finished demo: devices, threads and the cascade's location change nothing (`snakemake -n`)."""
    work = demo_run["work"]
    change = tmp_path / "runtime.yaml"
    cascade = tmp_path / "lbpcascade_animeface.xml"
    cascade.write_bytes((work / "resources" / "lbpcascade_animeface.xml").read_bytes())
    change.write_text(
        yaml.safe_dump(
            {
                "crop": {"cascade_path": str(cascade)},
                "normalise": {"upscale": {"device": "cpu"}},
                "train": {"device": "cpu", "threads": 2, "mem_mb": 1000, "runtime": 5},
                "sample": {"device": "cpu"},
            }
        )
    )
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}

    def plan(config: Path) -> str:
        cmd = [str(bindir / "snakemake"), "-n", "--cores", "1", "--configfile", "config/demo.yaml", str(config)]
        run = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env, timeout=600)
        assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
        return run.stdout + run.stderr

    out = plan(change)
    assert "Nothing to be done" in out, out[-3000:]
    # the contrast: a key that changes the crops reruns crop and what follows (so the check above can fail)
    results_key = tmp_path / "results_key.yaml"
    results_key.write_text(yaml.safe_dump({"crop": {"cascade_path": str(cascade), "min_face": 40}}))
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", plan(results_key), re.M))
    assert jobs.get("crop") and jobs.get("normalise") and jobs.get("train") == "1", jobs
