"""Progress lines for long stages, and ``animefaces progress RES`` to watch a run.

A stage wraps its main loop in :class:`Progress`; it writes one plain line to its log (stderr) at the start, at a
steady cadence (every ``ANIMEFACES_PROGRESS_SECONDS``, default 10 s) and at the end::

    progress crop 002: 120/463 images (25.9%), 4.1 images/s, elapsed 0:29, ETA 1:23

Plain lines (no carriage returns) so a log file reads well with ``tail -f``; ``animefaces progress RES`` prints
the newest such line of every log under ``RES/logs`` whose job has not finished (or all of them with ``--all``).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TypeVar

PREFIX = "progress "
DEFAULT_SECONDS = 10.0
T = TypeVar("T")


def format_seconds(seconds: float) -> str:
    """0:05, 12:34, 3:02:01 (hours when needed)."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def eta_seconds(left: float, rate: float) -> float | None:
    """Seconds until ``left`` more units at ``rate`` units/s (None when nothing has been measured yet)."""
    if left <= 0:
        return 0.0
    return left / rate if rate > 0 else None


def format_progress(label: str, done: float, total: float | None, unit: str, elapsed: float, rate: float) -> str:
    """``progress <label>: done/total unit (pct%), rate unit/s, elapsed m:ss, ETA m:ss`` (the one line format)."""
    text = f"{PREFIX}{label}: {done:g}/{'?' if total is None else f'{total:g}'} {unit}"
    if total:
        text += f" ({100.0 * done / total:.1f}%)"
    text += f", {rate:.0f} " if rate >= 1000 else f", {rate:.3g} "  # 3140, not 3.14e+03
    text += f"{unit}/s, elapsed {format_seconds(elapsed)}"
    if total is not None:
        eta = eta_seconds(total - done, rate)
        text += ", ETA " + ("?" if eta is None else format_seconds(eta))
    return text


def _interval() -> float:
    try:
        return float(os.environ.get("ANIMEFACES_PROGRESS_SECONDS", DEFAULT_SECONDS))
    except ValueError:
        return DEFAULT_SECONDS


class Progress:
    """Items done / total, rate and ETA, written as one line every ``every`` seconds (thread-safe)."""

    def __init__(
        self,
        label: str,
        total: int | float | None,
        unit: str = "items",
        every: float | None = None,
        stream: IO[str] | None = None,
        clock=time.monotonic,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.every = _interval() if every is None else every
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.done = 0
        self.start = self.last = clock()
        self._lock = threading.Lock()
        self._closed = False
        self._emitted: tuple[float, float | None] | None = None
        self.emit()

    def line(self) -> str:
        elapsed = self.clock() - self.start
        return format_progress(
            self.label, self.done, self.total, self.unit, elapsed, self.done / elapsed if elapsed > 0 else 0.0
        )

    def emit(self) -> None:
        print(self.line(), file=self.stream, flush=True)
        self.last = self.clock()
        self._emitted = (self.done, self.total)

    def update(self, n: int | float = 1) -> None:
        with self._lock:
            self.done += n
            if self.clock() - self.last >= self.every:
                self.emit()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                if self.total is None:  # an open-ended count ends as n/n, so watchers see it finished
                    self.total = self.done
                if self._emitted != (self.done, self.total):  # the cadence may have just written this line
                    self.emit()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(items: Iterable[T], label: str, total: int | None = None, unit: str = "items") -> Iterator[T]:
    """Iterate ``items`` with progress lines (total from ``len`` when not given)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(label, total, unit) as bar:
        for item in items:
            yield item
            bar.update()


# ------------------------------------------------------------------------------------------------ watching a run
def latest_line(log: Path, tail_bytes: int = 65536) -> str | None:
    """The newest progress line of a log file (reads only its tail)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - tail_bytes))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in reversed(text.splitlines()):
        if line.startswith(PREFIX):
            return line[len(PREFIX) :]
    return None


def finished(line: str) -> bool:
    """A progress line that says every item is done: n/n, or more than the total (training stops at the first
    whole batch past its target, e.g. ``3.008/3 kimg`` with batch 16)."""
    counts = line.split(": ", 1)[-1].split(" ", 1)[0]
    done, _, total = counts.partition("/")
    try:
        return float(done) >= float(total)
    except ValueError:  # '?' (open-ended) or not a progress line
        return False


def progress_table(res: str | os.PathLike[str], include_finished: bool = False) -> list[tuple[str, str, float]]:
    """(log path relative to RES/logs, latest progress line, seconds since the log changed) per log."""
    logs = Path(res) / "logs"
    rows = []
    now = time.time()
    for log in sorted(logs.rglob("*.log")) if logs.is_dir() else []:
        line = latest_line(log)
        if line is None or (finished(line) and not include_finished):
            continue
        rows.append((str(log.relative_to(logs)), line, now - log.stat().st_mtime))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="animefaces progress",
        description="Show the latest progress line of every job of a run that has not finished (from RES/logs).",
    )
    ap.add_argument("results", nargs="?", help="results folder, e.g. results/demo (default: the demo's)")
    ap.add_argument("--all", action="store_true", help="also jobs whose last line says they finished")
    ap.add_argument("--watch", type=float, metavar="SECONDS", help="repeat every SECONDS until interrupted")
    args = ap.parse_args(argv)
    res = args.results
    if res is None:
        from .config import resolve_config

        res = f"results/{resolve_config()['dataset']['name']}"
    if not Path(res).is_dir():
        print(f"animefaces progress: {res} does not exist (no run has written there yet)", file=sys.stderr)
        return 1
    while True:
        rows = progress_table(res, args.all)
        if not rows:
            print(f"{res}: no job in progress (logs: {Path(res) / 'logs'})")
        for name, line, age in rows:
            print(f"{name:<28} {line}  [log updated {format_seconds(age)} ago]")
        if not args.watch:
            return 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0
        print()


if __name__ == "__main__":
    raise SystemExit(main())
