"""Atomic file output: write to a temporary file in the target directory, then ``os.replace``.

A killed job therefore never leaves a half-written file under its final name, and a rerun starts clean: every
writer removes the temporaries a killed earlier write of the same target left next to it
(:func:`remove_stale_temps`, called by :func:`atomic_path`), so a kill never costs disk space for good.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

_UMASK_LOCK = threading.Lock()

# tempfile's random part: 8 characters of this alphabet (tempfile._RandomNameSequence)
_RANDOM = "[a-z0-9_]{8}"


def temp_prefix(target: str | os.PathLike[str]) -> str:
    """The name prefix of every temporary of ``target`` (``.<name>.``): hidden, next to the target."""
    return f".{Path(target).name}."


def remove_stale_temps(target: str | os.PathLike[str], suffix: str | None = None) -> list[Path]:
    """Delete the temporaries (files or folders) that killed writes of ``target`` left next to it, i.e. names
    ``.<name>.<8 random chars><suffix>`` exactly as :func:`atomic_path` and :func:`atomic_dir` make them; nothing
    else is touched. ``suffix`` defaults to the target's own suffix. Returns what was removed.

    Call it at the start of a writer only: one run writes each target from one job (the run lock), so a
    temporary of the same target can only be a leftover."""
    target = Path(target)
    return _remove_matching(target.parent, [_temp_pattern(target, suffix)])


def remove_stale_temps_of(targets: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """:func:`remove_stale_temps` for many targets (each with its own suffix), listing each folder once: a writer
    of a thousand manifests in one folder calls this first and then writes each with ``clean_stale=False``
    (one listing per file would be quadratic in the folder's size)."""
    by_folder: dict[Path, list[str]] = {}
    for target in map(Path, targets):
        by_folder.setdefault(target.parent, []).append(_temp_pattern(target))
    return [entry for folder, patterns in by_folder.items() for entry in _remove_matching(folder, patterns)]


def _temp_pattern(target: Path, suffix: str | None = None) -> str:
    return re.escape(temp_prefix(target)) + _RANDOM + re.escape(target.suffix if suffix is None else suffix)


def _remove_matching(folder: Path, patterns: list[str]) -> list[Path]:
    """Delete the entries of ``folder`` whose names match one of ``patterns`` (one listing); return them."""
    if not folder.is_dir():
        return []
    pattern = re.compile("|".join(f"(?:{p})" for p in patterns))
    with os.scandir(folder) as entries:
        stale = [Path(e.path) for e in entries if pattern.fullmatch(e.name)]
    for entry in stale:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
    return stale


def make_temp_dir(target: str | os.PathLike[str]) -> Path:
    """A fresh temporary folder next to the folder ``target`` (stale ones of earlier killed writes removed first);
    the caller fills it and renames it onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target, suffix="")
    return Path(tempfile.mkdtemp(prefix=temp_prefix(target), dir=target.parent))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None, clean_stale: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``, on error delete it.

    ``suffix`` defaults to the target's own suffix so writers that infer the format from the name work.
    ``clean_stale`` first removes temporaries of ``path`` left by a killed earlier write
    (:func:`remove_stale_temps`); writers of many files into one folder pass False and clear the folder once
    themselves (listing the folder per file would be quadratic).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if clean_stale:
        remove_stale_temps(target, suffix)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix, dir=target.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp creates 0600 files: give the result the usual umask-based mode
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    """The process umask. Reading it means setting it, so two threads reading it at once could leave it 0 for
    the rest of the process (and their files world-writable): it is read under a lock."""
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike[str], data: bytes, clean_stale: bool = True) -> None:
    with atomic_path(path, clean_stale=clean_stale) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n")
