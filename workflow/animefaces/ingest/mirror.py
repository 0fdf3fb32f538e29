"""Where a post's image lives in a Danbooru mirror, and a cheap "is it there" check for millions of posts.

Path: ``<root>/original/{id % 1000:04d}/{id}.{file_ext}`` (the Danbooru20xx layout). Instead of one ``stat`` per
post, each bucket directory is listed once (``os.scandir``), the first time a post of that bucket needs checking,
and remembered as a sorted array of integer keys ``id * 1024 + extension code`` (8 bytes per file). Lookups are
vectorised (``np.searchsorted``) per batch.

Safety: the path is built only from an integer id and an extension matching ``^[a-z0-9]{1,5}$``, so metadata
cannot point outside the mirror; a bucket directory or image that is a symlink resolving outside
``<root>/original`` is treated as absent (and reported), and nothing is ever opened here, only listed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable

import numpy as np

N_BUCKETS = 1000
EXT_BITS = 10
MAX_KEYED_ID = (1 << (63 - EXT_BITS)) - 1
_EXT = re.compile(r"[a-z0-9]{1,5}")


def image_path(root: str, post_id: int, file_ext: str) -> str:
    return os.path.join(root, "original", f"{post_id % N_BUCKETS:04d}", f"{post_id}.{file_ext}")


def _inside(path: str, base: str) -> bool:
    real = os.path.realpath(path)
    return real == base or real.startswith(base + os.sep)


class MirrorIndex:
    """Lazily built index of the image files under ``<root>/original``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        self.original = os.path.join(self.root, "original")
        self.base = os.path.realpath(self.original)
        self.ext_code: dict[str, int] = {}
        self.listed: set[int] = set()
        self.keys = np.zeros(0, dtype=np.int64)
        self.rejected: dict[tuple[int, str], str] = {}  # (id, ext) -> why an existing entry is not usable
        self.files_indexed = 0
        self.seconds = 0.0

    def _code(self, ext: str) -> int | None:
        code = self.ext_code.get(ext)
        if code is None:
            if len(self.ext_code) >= (1 << EXT_BITS):
                return None
            code = self.ext_code[ext] = len(self.ext_code)
        return code

    def _list_bucket(self, bucket: int) -> list[int]:
        directory = os.path.join(self.original, f"{bucket:04d}")
        keys: list[int] = []
        try:
            if os.path.islink(directory) and not _inside(directory, self.base):
                return keys
            entries = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return keys
        with entries:
            for entry in entries:
                stem, dot, ext = entry.name.rpartition(".")
                if not dot or not stem.isascii() or not stem.isdigit() or (stem[0] == "0" and stem != "0"):
                    continue
                if not _EXT.fullmatch(ext):
                    continue
                post = int(stem)
                if post > MAX_KEYED_ID or post % N_BUCKETS != bucket:
                    continue
                try:
                    if entry.is_symlink() and not _inside(entry.path, self.base):
                        self.rejected[(post, ext)] = "symlink pointing outside the mirror"
                        continue
                    if not entry.is_file():
                        continue
                except OSError:
                    continue
                code = self._code(ext)
                if code is not None:
                    keys.append((post << EXT_BITS) | code)
        return keys

    def ensure(self, buckets: Iterable[int]) -> None:
        """List the given buckets if not done yet (one scandir each)."""
        new = sorted(set(int(b) for b in buckets) - self.listed)
        if not new:
            return
        t0 = time.perf_counter()
        added: list[int] = []
        for bucket in new:
            added.extend(self._list_bucket(bucket))
            self.listed.add(bucket)
        if added:
            self.keys = np.unique(np.concatenate([self.keys, np.asarray(added, dtype=np.int64)]))
            self.files_indexed += len(added)
        self.seconds += time.perf_counter() - t0

    def present(self, post_ids: np.ndarray, exts: list[str]) -> np.ndarray:
        """Boolean mask: is ``original/{bucket}/{id}.{ext}`` an image file inside the mirror?"""
        post_ids = np.asarray(post_ids, dtype=np.int64)
        self.ensure(np.unique(post_ids % N_BUCKETS))
        t0 = time.perf_counter()
        codes = np.fromiter((self.ext_code.get(e, -1) for e in exts), dtype=np.int64, count=len(exts))
        ok = (codes >= 0) & (post_ids <= MAX_KEYED_ID)
        keys = (post_ids << EXT_BITS) | np.where(codes >= 0, codes, 0)
        if len(self.keys) == 0:
            found = np.zeros(len(keys), dtype=bool)
        else:
            pos = np.searchsorted(self.keys, keys)
            found = self.keys[np.minimum(pos, len(self.keys) - 1)] == keys
        self.seconds += time.perf_counter() - t0
        return ok & found
