"""Kill -9 harness (slow; RELIABILITY.md): one demo run from scratch is SIGKILLed, as a whole process group, at
>= 20 seeded points spread over every stage, each time recovered the way README tells a user to (`animefaces
runlock status` says no run is alive -> `snakemake --unlock` -> the same command again, whose profile sets
`--rerun-incomplete`), and when it finally completes every output is compared with the uninterrupted demo run
(the shared `demo_run` fixture), timing fields excluded by name. Also: no temporary is left, the ledger reconciles,
and deleting normalised images is noticed by `snakemake -n`.

A kill point is (stage, fraction): wait until a job of that stage is running in the current attempt (a process
`python -m animefaces.<module>` in the run's process group), then wait `fraction` of that stage's median job time
in the reference run (its Snakemake benchmark files) and kill the group. What was running at that moment is read
from the process group too and recorded, so the test knows which stages a kill really hit."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SEED = 16
# kill points per stage, in the order the stages first run: 2 each, 22 in all
STAGES = ["demo", "ingest", "crop", "clean", "dedup", "normalise", "select", "pack", "train", "sample", "report"]
KILLS = dict.fromkeys(STAGES, 2)
FRACTION = (0.1, 0.75)  # of the stage's reference job time: late enough to be inside it, early enough to not miss
REPORT_SECONDS = 2.0  # report rules have no benchmark file: their typical job time
PACE_CLAMP = (0.25, 2.0)  # bounds of the run's pace against the reference (`Pace`)
# `python -m animefaces.<module>` -> the stage it belongs to (runlock: every job's lock check, not a stage)
MODULE_STAGE = {"sample_classes": "sample", "rank": "rank", "resources": "fetch_cascade", "runlock": None}
BUDGET_S = 3600  # the whole harness; it fails rather than hang
# Fields that measure the machine, not the data, excluded from comparisons by name (JSON keys and table columns):
# durations and rates, clock times (`created` of a run card), file mtimes (`stamp` of the pack-identity cache),
# the memory a process happened to use (`cpu_mem_gb`, `gpu_mem_gb` of the training metrics).
TIMING = re.compile(
    r"(^|_)(sec|secs|seconds|time|timings|elapsed|duration|timestamp|started|finished|created|stamp|wall)($|_)|"
    r"per_s$|^img_per_s$|(^|_)(cpu|gpu)_mem"
)
# The atomic writer's temporaries (animefaces.atomic): `.<target name>.<8 random chars><suffix>`, files or folders
TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}(\.[^.]+)*$")


def _env() -> dict[str, str]:
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k != "ANIMEFACES_RUN_TOKEN"}
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    return env


def _snakemake(*extra: str) -> list[str]:
    return [str(Path(sys.executable).parent / "snakemake"), *extra]


# what `./dev demo` runs (README: after a crash, check no run is alive, `--unlock`, then the same command again)
USER_RUN = ("--profile", "workflow/profiles/default", "--cores", "2")


def group_jobs(pgid: int) -> dict[int, str]:
    """The animefaces processes in process group ``pgid`` now, pid -> stage (from /proc: `python -m
    animefaces.<module>`; a job's worker processes carry the same command line)."""
    jobs: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            if int(text[text.rindex(")") + 2 :].split()[2]) != pgid:
                continue
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):  # the process ended meanwhile
            continue
        for flag, module in zip(argv, argv[1:], strict=False):
            if flag == b"-m" and module.startswith(b"animefaces."):
                name = module.decode().split(".")[1]
                stage = MODULE_STAGE.get(name, name)
                if stage:
                    jobs[int(stat.parent.name)] = stage
    return jobs


def group_stages(pgid: int) -> set[str]:
    """The stages whose jobs run in process group ``pgid`` now."""
    return set(group_jobs(pgid).values())


def processes_in(work: Path) -> list[int]:
    """Processes whose working directory is inside ``work`` (after a kill: none may survive)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cwd == str(work) or cwd.startswith(f"{work}/"):
            pids.append(int(proc.name))
    return pids


def reference_seconds(bench: Path) -> dict[str, float]:
    """Median job wall time per stage in the reference run (Snakemake's benchmark files, column ``s``; report
    rules have none: `REPORT_SECONDS` stands in for them where a delay is computed)."""
    times: dict[str, list[float]] = {}
    for tsv in bench.rglob("*.tsv"):
        stage = tsv.relative_to(bench).parts[0].removesuffix(".tsv")
        times.setdefault(stage, []).append(float(pd.read_csv(tsv, sep="\t")["s"].iloc[0]))
    return {stage: statistics.median(v) for stage, v in times.items()}


def kill_plan(seed: int = SEED) -> list[tuple[str, float]]:
    rng = random.Random(seed)
    return [(stage, round(rng.uniform(*FRACTION), 3)) for stage, n in KILLS.items() for _ in range(n)]


class Pace:
    """How fast this run's jobs go against the reference run: the median, over the animefaces processes seen to
    start and end in this run, of (lifetime / the reference's median job time for its stage), clamped to
    `PACE_CLAMP`; 1.0 until one has ended. A kill's delay is scaled by it, so that a machine quieter than it
    was during the reference run does not finish a short one-job stage (select: ~1.4 s) before its kill point.
    Processes ended by a kill are forgotten, not measured."""

    def __init__(self, reference: dict[str, float]):
        self.reference = reference
        self.alive: dict[int, tuple[str, float]] = {}
        self.ratios: list[float] = []

    def observe(self, jobs: dict[int, str], now: float) -> None:
        for pid, stage in jobs.items():
            self.alive.setdefault(pid, (stage, now))
        for pid in self.alive.keys() - jobs.keys():
            stage, seen = self.alive.pop(pid)
            if stage in self.reference:
                self.ratios.append((now - seen) / self.reference[stage])

    def forget(self) -> None:
        self.alive.clear()

    def factor(self) -> float:
        if not self.ratios:
            return 1.0
        return min(max(statistics.median(self.ratios), PACE_CLAMP[0]), PACE_CLAMP[1])


@dataclass
class KillPoint:
    stage: str
    fraction: float
    escapes: int = 0  # times a job of its stage ended before the fire time (each halves the fraction)


class Aimer:
    """When to fire the next kill point. The first point of the plan is aimed at when a job of its stage runs:
    fire after ``fraction`` of the stage's reference job time (scaled by `Pace`). The kill is fired only while a
    job of that stage still runs; one that ended first is an *escape*, not a kill: the point is kept with its
    fraction halved and aimed at the next job of its stage. A stage with no job left in this run (a one-job
    stage that finished) would block every later point, so after an escape in an attempt the first point of
    any stage that runs is aimed at; points whose stage never runs again are left, and reported as skipped."""

    def __init__(self, plan: list[tuple[str, float]], reference: dict[str, float]):
        self.plan = [KillPoint(stage, fraction) for stage, fraction in plan]
        self.reference = reference
        self.pace = Pace(reference)
        self.escapes: list[dict] = []
        self.new_attempt()

    def new_attempt(self) -> None:
        self.aim: KillPoint | None = None
        self.aim_delay = self.fire_at = 0.0
        self.escaped = False
        self.pace.forget()

    def delay(self, point: KillPoint) -> float:
        ref = self.reference.get(point.stage, REPORT_SECONDS)
        return point.fraction * 0.5**point.escapes * ref * self.pace.factor()

    def step(self, jobs: dict[int, str], now: float) -> KillPoint | None:
        """Called every poll with the group's jobs: the point to fire now (the caller kills and calls `fired`)."""
        self.pace.observe(jobs, now)
        running = set(jobs.values())
        if self.aim is not None and self.aim.stage not in running:
            self.aim.escapes += 1
            self.escapes.append({"stage": self.aim.stage, "fraction": self.aim.fraction, "delay_s": self.aim_delay})
            self.aim, self.escaped = None, True
        if self.aim is None:
            for k, point in enumerate(self.plan):
                if point.stage in running and (k == 0 or self.escaped):
                    self.aim, self.aim_delay = point, round(self.delay(point), 3)
                    self.fire_at = now + self.aim_delay
                    break
        if self.aim is not None and now >= self.fire_at:
            return self.aim
        return None

    def fired(self, point: KillPoint) -> None:
        self.plan.remove(point)
        self.aim = None


# ------------------------------------------------------------------------------------------------- comparison


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not TIMING.search(str(k))}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _same(a, b) -> bool:
    """Deep equality of loaded objects (tensors and arrays exactly; dict keys that are timing fields ignored)."""
    import torch

    if isinstance(a, dict) and isinstance(b, dict):
        ka = {k for k in a if not TIMING.search(str(k))}
        kb = {k for k in b if not TIMING.search(str(k))}
        return ka == kb and all(_same(a[k], b[k]) for k in ka)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def _compare_file(a: Path, b: Path) -> str | None:
    """None when equal (timing fields excluded by name), else a short description."""
    if a.read_bytes() == b.read_bytes():  # also the demo mirror's planted corrupt images, which cannot be decoded
        return None
    suffix = a.suffix
    if suffix == ".parquet":
        fa, fb = pd.read_parquet(a), pd.read_parquet(b)
        fa = fa[[c for c in fa.columns if not TIMING.search(c)]]
        fb = fb[[c for c in fb.columns if not TIMING.search(c)]]
        try:
            pd.testing.assert_frame_equal(fa.reset_index(drop=True), fb.reset_index(drop=True))
        except AssertionError as exc:
            return " ".join(str(exc).split())[:200]
        return None
    if suffix in (".json", ".jsonl"):
        text_a, text_b = a.read_text(), b.read_text()
        if suffix == ".jsonl":
            la = [_strip(json.loads(x)) for x in text_a.splitlines() if x.strip()]
            lb = [_strip(json.loads(x)) for x in text_b.splitlines() if x.strip()]
        else:
            la, lb = _strip(json.loads(text_a)), _strip(json.loads(text_b))
        return None if la == lb else "JSON differs"
    if suffix in (".hdf5", ".h5"):
        import h5py

        def walk(f):
            out = {}
            f.visititems(lambda name, obj: out.__setitem__(name, obj))
            return out

        with h5py.File(a) as ha, h5py.File(b) as hb:
            oa, ob = walk(ha), walk(hb)
            if set(oa) != set(ob):
                return "HDF5 objects differ"
            for name in [None, *oa]:
                x, y = (ha, hb) if name is None else (oa[name], ob[name])
                if dict(x.attrs).keys() != dict(y.attrs).keys() or not all(
                    np.array_equal(np.asarray(x.attrs[k]), np.asarray(y.attrs[k])) for k in x.attrs
                ):
                    return f"HDF5 attributes of {name or '/'} differ"
                if isinstance(x, h5py.Dataset) and not np.array_equal(x[()], y[()]):
                    return f"HDF5 {name} differs"
        return None
    if suffix == ".zip":
        with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
            if za.namelist() != zb.namelist():
                return "zip members differ"
            for n in za.namelist():
                if za.read(n) != zb.read(n):
                    return f"zip member {n} differs"
        return None
    if suffix == ".pt":
        import torch

        sa = torch.load(a, map_location="cpu", weights_only=False)
        sb = torch.load(b, map_location="cpu", weights_only=False)
        return None if _same(sa, sb) else "network/snapshot state differs"
    if suffix in (".png", ".jpg", ".webp"):
        from PIL import Image

        try:
            with Image.open(a) as ia, Image.open(b) as ib:
                return None if np.array_equal(np.asarray(ia), np.asarray(ib)) else "pixels differ"
        except OSError as exc:  # bytes differ and one cannot be decoded
            return f"bytes differ ({exc})"
    if suffix == ".mp4":
        import imageio_ffmpeg

        fa, fb = imageio_ffmpeg.read_frames(str(a)), imageio_ffmpeg.read_frames(str(b))
        next(fa), next(fb)  # metadata
        return None if list(fa) == list(fb) else "video frames differ"
    return "bytes differ"


# not outputs: Snakemake's job logs and benchmark timings, its per-directory marker
NOT_OUTPUTS = {"logs", "benchmarks"}
# Figures that plot the timing fields above (the report's training curves draw every numeric metric of
# train/metrics.jsonl, sec_per_kimg and img_per_s included): excluded by name like the fields themselves; the
# metrics file they are drawn from is compared with those fields excluded.
PLOTS_OF_TIMING = {"report/training_curves.png"}


def compare_results(ref: Path, new: Path) -> list[str]:
    """Differences between two results folders (files and symlinks; logs and benchmarks are not outputs)."""

    def files(root: Path) -> dict[str, Path]:
        return {
            str(p.relative_to(root)): p
            for p in root.rglob("*")
            if (p.is_file() or p.is_symlink())
            and not (set(p.relative_to(root).parts) & NOT_OUTPUTS)
            and p.name != ".snakemake_timestamp"
            and str(p.relative_to(root)) not in PLOTS_OF_TIMING
        }

    fa, fb = files(ref), files(new)
    problems = [f"only in the reference: {x}" for x in sorted(fa.keys() - fb.keys())[:10]]
    problems += [f"only in the killed run: {x}" for x in sorted(fb.keys() - fa.keys())[:10]]
    for rel in sorted(fa.keys() & fb.keys()):
        a, b = fa[rel], fb[rel]
        if a.is_symlink() or b.is_symlink():
            if not (a.is_symlink() and b.is_symlink() and os.readlink(a) == os.readlink(b)):
                problems.append(f"{rel}: symlinks differ")
            continue
        diff = _compare_file(a, b)
        if diff:
            problems.append(f"{rel}: {diff}")
    return problems


def temp_leftovers(root: Path) -> list[str]:
    """Entries (files or folders) named like the atomic writer's temporaries."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*") if TEMP_NAME.match(p.name))


# ------------------------------------------------------------------------------------------------- the harness


@pytest.mark.slow
@pytest.mark.timeout(BUDGET_S + 900)  # its own budget guard fails first, naming the kills so far
def test_kill9_at_seeded_points_across_every_stage_reruns_to_identical_outputs(demo_run, tmp_path):
    from animefaces.ledger import load_ledger, reconcile

    t_start = time.monotonic()
    work = tmp_path / "wf"
    shutil.copytree(
        demo_run["work"],
        work,
        symlinks=True,
        ignore=lambda d, names: {"results", ".snakemake", "report.zip"} & set(names),
    )
    res = work / "results" / demo_run["config"]["dataset"]["name"]
    reference = reference_seconds(demo_run["results"] / "benchmarks")
    plan = kill_plan()
    assert len(plan) >= 20 and {stage for stage, _ in plan} == set(KILLS)
    aimer = Aimer(plan, reference)
    env = _env()
    kills: list[dict] = []
    attempts = 0
    while True:
        attempts += 1
        assert time.monotonic() - t_start < BUDGET_S, f"over {BUDGET_S} s; kills so far: {kills}"
        proc = subprocess.Popen(
            _snakemake(*USER_RUN),
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        aimer.new_attempt()
        killed = False
        while proc.poll() is None:
            if time.monotonic() - t_start > BUDGET_S:
                os.killpg(proc.pid, signal.SIGKILL)
                pytest.fail(f"over {BUDGET_S} s; kills so far: {kills}")
            jobs = group_jobs(proc.pid)
            point = aimer.step(jobs, time.monotonic())
            if point is not None:  # a job of its stage is running (read just now): kill the whole group
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=120)
                aimer.fired(point)
                kills.append(
                    {
                        "stage": point.stage,
                        "fraction": point.fraction,
                        "escapes": point.escapes,
                        "attempt": attempts,
                        "running": sorted(set(jobs.values())),
                        "at_s": round(time.monotonic() - t_start, 1),
                    }
                )
                killed = True
                break
            time.sleep(0.1)
        if not killed:
            # the run ended: the harness is done when it succeeded; the kill points left found no job to kill
            assert proc.returncode == 0, f"attempt {attempts} failed with {proc.returncode} (kills: {kills})"
            break
        deadline = time.monotonic() + 30
        while processes_in(work) and time.monotonic() < deadline:  # the group's processes are reaped
            time.sleep(0.2)
        assert processes_in(work) == [], "a process of the killed run survived SIGKILL of its group"
        # README's recovery: no run alive -> Snakemake's --unlock -> the same command again (the next loop)
        status = subprocess.run(
            [sys.executable, "-m", "animefaces.runlock", "status", str(res)],
            env={**env, "PYTHONPATH": str(work / "workflow")},
            capture_output=True,
            text=True,
        )
        assert status.returncode == 0, status.stdout + status.stderr  # the killed run is not alive
        unlock = subprocess.run(_snakemake("--unlock"), cwd=work, env=env, capture_output=True, timeout=600)
        assert unlock.returncode == 0, unlock.stderr[-2000:]
    record = {
        "kills": kills,
        "escapes": aimer.escapes,
        "skipped": [point.stage for point in aimer.plan],
        "attempts": attempts,
        "seconds": round(time.monotonic() - t_start),
        "pace": round(aimer.pace.factor(), 3),
        "reference_job_seconds": reference,
    }
    print(json.dumps(record, indent=1))
    (tmp_path / "kills.json").write_text(json.dumps(record, indent=1))
    assert len(kills) >= 20, record
    hit = {k["stage"] for k in kills}
    assert hit == set(KILLS), f"stages no kill landed in: {set(KILLS) - hit}; {record}"

    problems = compare_results(demo_run["results"], res)
    # the demo mirror (dataset.root, also redrawn by the killed run): its images, metadata and ground truth
    mirror = demo_run["config"]["dataset"]["root"]
    problems += [f"mirror: {p}" for p in compare_results(demo_run["work"] / mirror, work / mirror)]
    assert problems == [], problems[:20]
    assert temp_leftovers(work / "results") == []
    assert reconcile(load_ledger(res)) == []
    assert not (res / ".runlock.json").exists(), "the finished run did not release its run lock"
    dry = subprocess.run(_snakemake("-n"), cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-3000:]


@pytest.mark.slow
def test_deleting_normalised_images_is_noticed_by_a_dry_run(demo_run, tmp_path):
    work = tmp_path / "wf"
    shutil.copytree(demo_run["work"], work, symlinks=True)
    res = work / "results" / demo_run["config"]["dataset"]["name"]
    env = _env()
    clean = subprocess.run(_snakemake("-n"), cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0 and "Nothing to be done" in clean.stdout + clean.stderr
    shutil.rmtree(res / "normalise" / "images" / "000")
    dry = subprocess.run(_snakemake("-n"), cwd=work, env=env, capture_output=True, text=True, timeout=600)
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-3000:]
    stats = out[out.index("Job stats") :]
    for rule in ("normalise", "pack_hdf5", "pack_zip"):
        assert re.search(rf"^{rule}\s+\d+", stats, re.M), (rule, stats[:1500])


# ------------------------------------------------------------------------------------------------- fast checks


def test_timing_fields_are_excluded_by_name():
    assert _strip({"seconds": 1, "sec_per_kimg": 2, "img_per_s": 3, "kimg": 4, "tick": {"train_time": 5}}) == {
        "kimg": 4,
        "tick": {},
    }
    names = ("seconds", "elapsed", "sec_per_tick", "width", "sha256", "timestamp", "time_s", "cpu_mem_gb", "kimg")
    assert [c for c in names if TIMING.search(c)] == [
        "seconds",
        "elapsed",
        "sec_per_tick",
        "timestamp",
        "time_s",
        "cpu_mem_gb",
    ]
    assert [c for c in ("created", "stamp", "identity", "loss_G", "tick", "step") if TIMING.search(c)] == [
        "created",
        "stamp",
    ]


def test_kill_plan_is_seeded_and_covers_every_stage():
    plan = kill_plan()
    assert plan == kill_plan() and plan != kill_plan(SEED + 1)
    assert len(plan) >= 20 and [s for s, _ in plan] == [s for s, n in KILLS.items() for _ in range(n)]
    assert all(FRACTION[0] <= f <= FRACTION[1] for _, f in plan)


def test_temp_leftovers_match_the_atomic_writers_names(tmp_path):
    from animefaces.atomic import atomic_path, make_temp_dir

    (tmp_path / "pack").mkdir()
    for look_alike in (".snakemake_timestamp", "pack/.runlock.json", "pack/.demo.hdf5-notes", "pack/demo.hdf5"):
        (tmp_path / look_alike).write_text("")
    assert temp_leftovers(tmp_path) == []
    with atomic_path(tmp_path / "pack" / "demo.zip") as tmp:  # a write in progress, as a kill leaves it
        tmp.write_bytes(b"x")
        assert temp_leftovers(tmp_path) == [f"pack/{tmp.name}"]
    folder = make_temp_dir(tmp_path / "pack" / "demo.tfrecords")
    (folder / "000.tfrecords").write_bytes(b"x")
    assert temp_leftovers(tmp_path) == [f"pack/{folder.name}"]


def test_processes_of_a_group_are_mapped_to_stages():
    def group(*argv: str) -> subprocess.Popen:
        return subprocess.Popen(["sh", "-c", "sleep 60", *argv], start_new_session=True)

    procs = [group("-m", "animefaces.sample_classes"), group("-m", "animefaces.runlock"), group("animefaces.crop")]
    try:
        time.sleep(0.3)
        assert [group_stages(p.pid) for p in procs] == [{"sample"}, set(), set()]
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_aimer_fires_inside_a_job_of_its_stage_after_its_fraction():
    aimer = Aimer([("crop", 0.5), ("clean", 0.25)], {"crop": 4.0, "clean": 2.0})
    assert aimer.step({1: "ingest"}, 0.0) is None  # not its stage: nothing aimed
    assert aimer.step({2: "clean"}, 0.1) is None  # a later point's stage: order is kept without an escape
    assert aimer.aim is None
    assert aimer.step({3: "crop", 2: "clean"}, 1.0) is None and aimer.fire_at == pytest.approx(3.0)
    assert aimer.step({3: "crop"}, 2.9) is None
    point = aimer.step({4: "crop"}, 3.0)  # another job of the stage by now: still inside a crop job
    assert point is not None and (point.stage, point.fraction, point.escapes) == ("crop", 0.5, 0)
    aimer.fired(point)
    assert [p.stage for p in aimer.plan] == ["clean"] and aimer.escapes == []


def test_aimer_never_fires_after_the_job_ended_and_retries_with_half_the_fraction():
    aimer = Aimer([("crop", 0.5)], {"crop": 4.0})
    assert aimer.step({3: "crop"}, 0.0) is None  # fire at 2.0
    assert aimer.step({}, 1.5) is None  # the job ended first: an escape, no kill
    assert aimer.escapes == [{"stage": "crop", "fraction": 0.5, "delay_s": 2.0}]
    # the ended process measured the pace: 1.5 s against the reference 4 s
    assert aimer.pace.factor() == pytest.approx(0.375)
    assert aimer.step({5: "crop"}, 2.0) is None
    assert aimer.fire_at == pytest.approx(2.0 + 0.5 * 0.5 * 4.0 * 0.375)
    point = aimer.step({5: "crop"}, 2.4)
    assert point is not None and point.escapes == 1


def test_aimer_moves_past_a_one_job_stage_that_escaped():
    aimer = Aimer([("select", 0.6), ("select", 0.3), ("pack", 0.5)], {"select": 1.4, "pack": 1.0})
    assert aimer.step({7: "select"}, 0.0) is None
    assert aimer.step({}, 0.5) is None  # select ended before 0.84 s: it will not run again in this run
    assert aimer.step({8: "pack"}, 0.6) is None  # after an escape a later point's stage may be aimed at
    assert aimer.aim is not None and aimer.aim.stage == "pack"
    point = aimer.step({8: "pack"}, 5.0)
    assert point is not None and point.stage == "pack"
    aimer.fired(point)
    aimer.new_attempt()  # the next attempt: the order holds again until the next escape
    assert aimer.step({9: "pack"}, 0.0) is None and aimer.aim is None
    assert [p.stage for p in aimer.plan] == ["select", "select"]


def test_pace_is_the_median_lifetime_ratio_clamped_and_forgets_killed_processes():
    pace = Pace({"crop": 2.0, "train": 100.0})
    pace.observe({1: "crop", 2: "report", 3: "train"}, 0.0)
    pace.observe({3: "train"}, 1.0)  # crop ended after 1 s: 0.5; report has no reference: not measured
    assert pace.ratios == [0.5] and pace.factor() == 0.5
    pace.forget()  # the group was killed: train's lifetime is not a job time
    pace.observe({}, 50.0)
    assert pace.ratios == [0.5]
    pace.observe({4: "crop", 5: "crop"}, 60.0)
    pace.observe({}, 60.1)  # two more at 0.05: the median 0.05, clamped
    assert pace.factor() == PACE_CLAMP[0] == 0.25
