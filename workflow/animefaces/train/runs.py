"""Dataset-aware training runs: ``RES/train/runs/<n>-<hash8>/`` per dataset, ``RES/train/latest`` -> the current one.

A run is bound to the exact pack it trains on (sha256 of the pack file, image count, resolution, classes). When
``train`` starts, it resumes the newest run whose pack is byte-identical to the one it is given (exact resume, as
before); any other pack -- the user cleaned the data, excluded ids, changed the size -- starts a new run beside
the old ones, which are kept. A run also belongs to one ``train.model``: switching the model (e.g. the demo's
StyleGAN2 to BigGAN on the same pack) starts a new run instead of failing to resume the other model's snapshots,
and switching back resumes the old one. Weights carry over between runs only when asked (``train.init_from: previous``
transfers from the run that ``latest`` pointed at). The log says which happened and why.

The rule's declared outputs (``RES/train/network-final.pt``, ``metrics.jsonl``, ``losses.png``, ``grids/``) are
copies of the finished run's files, published when it ends; snapshots stay in the run folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_path, write_json

RUNS = "runs"
LATEST = "latest"
RUN_CARD = "run.json"
PUBLISHED = ("network-final.pt", "metrics.jsonl", "losses.png")


def pack_identity(
    pack: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None, write_cache: bool = True
) -> dict[str, Any]:
    """``{"sha256", "bytes", "path"}`` of a pack file (a folder pack: of its files in name order).

    Hashing a multi-GB pack takes seconds; the digest is cached in ``cache_dir`` keyed by path, size and mtime so a
    resumed job does not hash again.
    """
    p = Path(pack)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    stamp = [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    cache = Path(cache_dir) / "pack-identity.json" if cache_dir is not None else None
    if cache is not None and cache.exists():
        try:
            saved = json.loads(cache.read_text())
            if saved.get("stamp") == stamp:
                return saved["identity"]
        except (ValueError, KeyError):
            pass
    h = hashlib.sha256()
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    identity = {"sha256": h.hexdigest(), "bytes": int(sum(s[1] for s in stamp)), "path": str(p)}
    if cache is not None and write_cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_json(cache, {"stamp": stamp, "identity": identity})
    return identity


@dataclass
class Run:
    number: int
    path: Path
    card: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def sha256(self) -> str | None:
        return self.card.get("dataset", {}).get("sha256")

    @property
    def model(self) -> str:
        """The run's ``train.model`` (cards written before the key existed: StyleGAN2)."""
        from .models import model_of

        return model_of(self.card)


def list_runs(train_dir: str | os.PathLike[str]) -> list[Run]:
    """Every run folder with a readable ``run.json``, oldest first."""
    root = Path(train_dir) / RUNS
    found = []
    if root.is_dir():
        for d in root.iterdir():
            number, _, _ = d.name.partition("-")
            card = d / RUN_CARD
            if d.is_dir() and number.isdigit() and card.exists():
                try:
                    found.append(Run(int(number), d, json.loads(card.read_text())))
                except ValueError:
                    continue
    return sorted(found, key=lambda r: r.number)


def latest_run(train_dir: str | os.PathLike[str]) -> Path | None:
    """The folder ``RES/train/latest`` points at (None when there is no run yet)."""
    link = Path(train_dir) / LATEST
    if link.is_symlink() or link.is_dir():
        target = link.resolve()
        return target if target.is_dir() else None
    return None


def run_folder(train_dir: str | os.PathLike[str]) -> Path:
    """Where the snapshots of the current run are: ``latest`` when runs exist, else ``train_dir`` itself."""
    return latest_run(train_dir) or Path(train_dir)


def _point_latest(train_dir: Path, run: Path) -> None:
    """Atomically re-point ``latest`` (a relative symlink, so the results folder can be moved)."""
    link = train_dir / LATEST
    tmp = train_dir / f".{LATEST}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(run, train_dir), tmp)
    os.replace(tmp, link)


@dataclass
class Choice:
    run: Path
    resumed: bool  # an existing run on the same pack was chosen
    previous: Path | None  # the run ``latest`` pointed at before (for init_from: previous)
    message: str


def choose_run(
    train_dir: str | os.PathLike[str],
    dataset: dict[str, Any],
    resume: bool,
    create: bool = True,
    model: str | None = None,
) -> Choice:
    """The run folder for this pack and model: the newest run of ``model`` on a byte-identical pack, else a new
    one (never a mix).

    ``dataset`` = pack identity plus ``count``/``resolution``/``classes``; ``model`` = ``train.model`` (None:
    the default, StyleGAN2). ``create`` False (non-zero DDP ranks):
    compute the same answer without writing; the folder name is derived from the runs present and the pack hash,
    so every rank arrives at the same one.
    """
    from .models import model_of

    model = model_of({"model": model})
    train = Path(train_dir)
    runs = list_runs(train)
    prev = latest_run(train)
    short = dataset["sha256"][:8]
    if resume:
        for run in reversed(runs):
            if run.sha256 == dataset["sha256"] and run.model == model:
                why = (
                    f"run {run.name}: resuming (same pack: sha256 {short}, {dataset['count']} images)"
                    if not (prev and prev == run.path.resolve())
                    else f"run {run.name}: same pack as the latest run (sha256 {short}, {dataset['count']} images)"
                )
                if create:
                    _point_latest(train, run.path)
                return Choice(run.path, True, prev, why)
    number = (runs[-1].number if runs else 0) + 1
    path = train / RUNS / f"{number:03d}-{short}"
    if not resume:
        why = "train.resume is false"
    elif prev is not None:
        old = next((r for r in runs if r.path.resolve() == prev), None)
        old_ds = old.card.get("dataset", {}) if old else {}
        why = (
            f"train.model is {model!r}, run {prev.name} trained {old.model!r} on the same pack; the old run is kept"
            if old is not None and old.model != model and old_ds.get("sha256") == dataset["sha256"]
            else f"the pack changed since run {prev.name} (sha256 {str(old_ds.get('sha256'))[:8]}, "
            f"{old_ds.get('count')} images -> sha256 {short}, {dataset['count']} images); the old run is kept"
        )
    else:
        why = "first run"
    message = f"run {path.name}: new run ({why})"
    if create:
        path.mkdir(parents=True, exist_ok=True)
        card = {
            "run": path.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "dataset": dataset,
            "model": model,
            "previous": prev.name if prev else None,
            "reason": why,
        }
        write_json(path / RUN_CARD, card)
        _point_latest(train, path)
    return Choice(path, False, prev, message)


def previous_weights(previous: Path | None) -> str:
    """The file ``init_from: previous`` transfers from: the previous run's newest snapshot or final network."""
    from .checkpoint import list_snapshots

    if previous is None:
        raise ValueError("train.init_from is 'previous' but there is no previous run to start from")
    snaps = list_snapshots(previous / "snapshots")
    if snaps:
        return str(snaps[0][1])
    final = previous / "network-final.pt"
    if final.exists():
        return str(final)
    raise ValueError(f"train.init_from is 'previous' but the previous run {previous} has no snapshot")


def publish(run: Path, train_dir: str | os.PathLike[str]) -> None:
    """Copy a finished run's final files to the rule's outputs in ``train_dir`` (atomically, file by file)."""
    train = Path(train_dir)
    for name in PUBLISHED:
        src = run / name
        if src.exists():
            with atomic_path(train / name, suffix=".tmp") as tmp:
                shutil.copyfile(src, tmp)
    grids_src, grids_dst = run / "grids", train / "grids"
    if grids_src.is_dir():
        grids_dst.mkdir(parents=True, exist_ok=True)
        keep = {p.name for p in grids_src.iterdir() if p.is_file()}
        for old in grids_dst.iterdir():
            if old.is_file() and old.name not in keep:
                old.unlink()
        for name in sorted(keep - {"index.json"}) + ["index.json"]:  # the index (the declared output) last
            if (grids_src / name).exists():
                with atomic_path(grids_dst / name, suffix=".tmp") as tmp:
                    shutil.copyfile(grids_src / name, tmp)


def train_in_runs(
    params: dict[str, Any],
    data_path: str,
    train_dir: str,
    threads: int | None = None,
    stop_after_steps: int | None = None,
    log: Callable[[str], None] | None = None,
) -> int:
    """Choose (or create) the run for this pack, train in it, publish the final files to ``train_dir``."""
    from .data import probe
    from .loop import train

    rank = int(os.environ.get("RANK", "0"))
    say = log or (lambda msg: print(msg, flush=True) if rank == 0 else None)
    count, resolution, classes = probe(data_path)
    dataset = {
        **pack_identity(data_path, train_dir, write_cache=rank == 0),
        "count": int(count),
        "resolution": int(resolution),
        "classes": int(classes),
    }
    if params["init_from"] == "previous" and latest_run(train_dir) is None:
        raise ValueError(f"train.init_from is 'previous' but {train_dir} has no previous run to start from")
    choice = choose_run(train_dir, dataset, bool(params["resume"]), create=rank == 0, model=params["model"])
    if rank != 0:
        _wait_for(choice.run / RUN_CARD)
    say(choice.message)
    run_params = dict(params)
    if params["init_from"] == "previous":
        run_params["init_from"] = previous_weights(choice.previous) if not choice.resumed else None
        if run_params["init_from"]:
            say(f"init_from: previous -> transfer learning from {run_params['init_from']}")
    rc = train(run_params, data_path, str(choice.run), threads, stop_after_steps)
    if rc == 0 and rank == 0:
        publish(choice.run, train_dir)
    return rc


def _wait_for(path: Path, timeout: float = 300.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"rank 0 did not create {path} within {timeout:.0f} s")
        time.sleep(0.2)
