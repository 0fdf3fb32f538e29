"""One reader for the user's one-entry-per-line files: ``filter.id_list`` (post ids), ``clean.blocklist`` (ids and
digests) and ``select.exclude_file`` (item or post ids). Each caller checks its own entry syntax; this module owns
the file conventions: UTF-8, one entry per line, ``#`` starts a comment, blank lines ignored, and a missing file
is an error naming the config key."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator


def list_entries(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """``(line number, entry)`` for every line with something left after stripping its comment and blanks."""
    for number, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].strip()
        if text:
            yield number, text


def read_list_file(
    path: str | os.PathLike[str], key: str, error: type[Exception] = FileNotFoundError
) -> list[tuple[int, str]]:
    """The entries of the list file at ``path`` (config key ``key``); an unreadable file raises ``error``."""
    try:
        with open(path, encoding="utf-8") as fh:
            return list(list_entries(fh))
    except OSError as exc:
        raise error(
            f"{key}: cannot read {os.fspath(path)!r}: {exc.strerror} (fix the path, or set {key} to '' for none)"
        ) from exc
