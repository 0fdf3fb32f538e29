"""The run lock: at most one live workflow run per results folder, whatever Snakemake's own lock says.

Snakemake's lock lives in ``.snakemake/`` of one checkout: ``snakemake --unlock`` removes it even while a run is
alive, and a second checkout sharing ``results/`` (a symlink) has a ``.snakemake/`` of its own. Two runs on one
results folder rerun each other's live jobs and delete each other's files. So the workflow takes a lock of its
own in ``results/<name>/.runlock.json`` (pid, host, boot id, process start time, start time, a random run token,
the checkout), from its ``onstart`` hook, and releases it from ``onsuccess`` / ``onerror``:

* a second run refuses to start while the holder is alive, naming it;
* a lock whose holder is dead (same host, pid gone or reused by another process) is stale and taken over, so a
  run killed with ``kill -9`` never blocks the next;
* a lock held on another host cannot be checked from here: refused, with the command to break it;
* every job checks, before doing anything, that the lock still carries its run's token (``ANIMEFACES_RUN_TOKEN``,
  set by ``onstart`` and inherited by the jobs): a job of a run that lost its lock stops instead of overwriting.

``animefaces runlock status RES`` says whether a run is alive on RES (exit 0: none, 1: alive or cannot tell).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import secrets
import shlex
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

LOCK_NAME = ".runlock.json"
TOKEN_ENV = "ANIMEFACES_RUN_TOKEN"
ALIVE, DEAD, UNKNOWN = "alive", "dead", "unknown"


class RunLockError(RuntimeError):
    """Another run holds (or took) the lock of this results folder."""


def lock_path(res: str | os.PathLike[str]) -> Path:
    return Path(res) / LOCK_NAME


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22); "" where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_process(pid: int | None = None) -> dict[str, Any]:
    """What a lock records about the process holding it."""
    pid = os.getpid() if pid is None else pid
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid_start": _process_start(pid),
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "cwd": os.getcwd(),
    }


def holder_state(lock: dict[str, Any]) -> str:
    """ALIVE, DEAD (stale: same host, process gone or its pid reused) or UNKNOWN (another host)."""
    if lock.get("host") != socket.gethostname():
        return UNKNOWN
    if lock.get("boot_id") and _boot_id() and lock["boot_id"] != _boot_id():
        return DEAD  # this host rebooted since: every run on it ended
    pid = int(lock.get("pid", -1))
    if pid <= 0 or not _pid_exists(pid):
        return DEAD
    start = lock.get("pid_start") or ""
    if start and _process_start(pid) and _process_start(pid) != start:
        return DEAD  # the pid now belongs to another process
    return ALIVE


def read_lock(res: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The lock's content, None when there is none. A lock that is not valid JSON (impossible with our atomic
    writes, but hand-edited files happen) counts as a dead holder."""
    try:
        text = lock_path(res).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        return data if isinstance(data, dict) else {"corrupt": text[:200]}
    except ValueError:
        return {"corrupt": text[:200]}


def _who(lock: dict[str, Any]) -> str:
    return f"pid {lock.get('pid')} on host {lock.get('host')}, started {lock.get('started')}, from {lock.get('cwd')}"


def _refusal(res: Path, lock: dict[str, Any], state: str) -> str:
    where = lock_path(res)
    if state == UNKNOWN:
        return (
            f"another animefaces run may be alive on {res}: its run lock {where} is held by {_who(lock)}, another "
            f"host, which cannot be checked from here. If no run is alive there, remove the lock with "
            f"`python -m animefaces.runlock break {shlex.quote(str(res))}` and start again."
        )
    return (
        f"another animefaces run is alive on {res}: {_who(lock)} (run lock {where}). Two runs on one results "
        f"folder rerun each other's jobs and delete each other's files, so this run does not start. Wait for it "
        f"to finish or stop it. `snakemake --unlock` only removes Snakemake's own lock and is for when NO run is "
        f"alive: check with `python -m animefaces.runlock status {shlex.quote(str(res))}`."
    )


def _write_new(path: Path, data: dict[str, Any]) -> Path:
    """A complete lock file under a temporary name next to ``path`` (then linked or renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, sort_keys=True, indent=1)
        fh.write("\n")
    return Path(tmp)


def acquire(res: str | os.PathLike[str], pid: int | None = None, log=None) -> str:
    """Take the run lock of ``res`` for process ``pid`` (default: this one); returns the run token.

    Raises :class:`RunLockError` naming the holder when a run is alive (or on another host). A stale lock is
    taken over (reported through ``log``)."""
    res = Path(res)
    path = lock_path(res)
    token = secrets.token_hex(16)
    mine = {**describe_process(pid), "token": token}
    for _attempt in range(5):
        tmp = _write_new(path, mine)
        try:
            try:
                os.link(tmp, path)  # exclusive and atomic: fails if a lock exists; the content is complete
                return token
            except FileExistsError:
                pass
            current = read_lock(res)
            if current is None:
                continue  # released between our two calls: try again
            state = DEAD if "corrupt" in current else holder_state(current)
            if state != DEAD:
                raise RunLockError(_refusal(res, current, state))
            if log is not None:
                log(f"animefaces: taking over the stale run lock of {res} ({_who(current)}: no longer running)")
            os.replace(tmp, path)
            if (read_lock(res) or {}).get("token") == token:  # two takeovers at once: the last rename wins
                return token
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    current = read_lock(res) or {}
    raise RunLockError(_refusal(res, current, holder_state(current) if current else ALIVE))


def release(res: str | os.PathLike[str], token: str | None) -> bool:
    """Remove the lock if it carries ``token`` (never another run's lock); returns whether it was removed."""
    current = read_lock(res)
    if token and current is not None and current.get("token") == token:
        with contextlib.suppress(FileNotFoundError):
            lock_path(res).unlink()
        return True
    return False


def check(res: str | os.PathLike[str], token: str | None) -> None:
    """For a job: raise :class:`RunLockError` unless the lock of ``res`` still carries this run's ``token``.

    Without a token (a stage run by hand, outside a workflow run) there is nothing to check."""
    if not token:
        return
    current = read_lock(res)
    if current is None:
        raise RunLockError(
            f"the run lock {lock_path(res)} of this run has disappeared (removed by hand, or by a run that took "
            f"it over): stopping this job so that it cannot overwrite another run's files. Check with "
            f"`python -m animefaces.runlock status {shlex.quote(str(res))}` and start the workflow again."
        )
    if current.get("token") != token:
        raise RunLockError(
            f"another run now holds the run lock of {res} ({_who(current)}): this job's run lost it (was "
            f"`snakemake --unlock` used while a run was alive?). Stopping this job so that it cannot overwrite "
            f"that run's files."
        )


def status(res: str | os.PathLike[str]) -> tuple[str, str]:
    """(state, sentence): state "none", ALIVE, DEAD (stale lock) or UNKNOWN (held on another host)."""
    res = Path(res)
    current = read_lock(res)
    if current is None:
        return "none", f"no run is alive on {res} (no run lock)"
    if "corrupt" in current:
        return DEAD, f"the run lock {lock_path(res)} is not valid JSON: stale, the next run takes it over"
    state = holder_state(current)
    if state == ALIVE:
        return state, f"a run is alive on {res}: {_who(current)}. Do not use `snakemake --unlock` now."
    if state == DEAD:
        return state, f"no run is alive on {res}: the run lock of {_who(current)} is stale (the next run takes it over)"
    return state, f"the run lock of {res} is held by {_who(current)}, another host: cannot tell from here"


# ------------------------------------------------------------------------------------------- workflow hooks


def start_run(res: str, log=None) -> str:
    """``onstart``: take the lock for the Snakemake process and export the token to its jobs."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    token = acquire(res, log=log)  # RunLockError: Snakemake prints the message and stops before any job
    os.environ[TOKEN_ENV] = token
    return token


def end_run(res: str) -> bool:
    """``onsuccess`` / ``onerror``: release this run's lock (a lock another run took is left alone)."""
    return release(res, os.environ.get(TOKEN_ENV))


def job_check_command(res: str) -> str:
    """The shell line every job runs first (Snakemake's shell prefix): stop unless this run holds the lock."""
    return f"python -m animefaces.runlock check {shlex.quote(str(res))} || exit 1; "


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="animefaces runlock", description="Whether a workflow run is alive on a results folder (the run lock)."
    )
    ap.add_argument(
        "action",
        choices=["status", "check", "break"],
        help="status: is a run alive? check: (jobs) "
        "does this run still hold the lock? break: remove a lock whose holder is not alive here",
    )
    ap.add_argument("res", help="the results folder, results/<dataset.name>")
    ap.add_argument("--force", action="store_true", help="break: also a lock held on another host")
    args = ap.parse_args(argv)
    if args.action == "check":
        try:
            check(args.res, os.environ.get(TOKEN_ENV))
        except RunLockError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    state, sentence = status(args.res)
    if args.action == "status":
        print(sentence)
        return 0 if state in ("none", DEAD) else 1
    if state == "none":
        print(sentence)
        return 0
    if state == ALIVE or (state == UNKNOWN and not args.force):
        print(f"error: not breaking the lock: {sentence}" + (" (use --force)" if state == UNKNOWN else ""))
        return 1
    lock_path(args.res).unlink(missing_ok=True)
    print(f"removed the run lock of {args.res}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
