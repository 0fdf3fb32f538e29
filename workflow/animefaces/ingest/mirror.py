"""Where a post's image lives in a Danbooru mirror, and a cheap "is it there" check for millions of posts.

Path: ``<root>/original/{id % 1000:04d}/{id}.{file_ext}`` (the Danbooru20xx layout), or with ``dataset.layout:
512px`` ``<root>/512px/{id % 1000:04d}/{id}.jpg`` (the Danbooru2021 512px subset re-encodes every image as JPEG and
names it ``.jpg`` whatever the original format, so the post's ``file_ext`` is not used for the path).

A bucket with fewer than ``LIST_AFTER`` posts to check so far (the batch at hand included) gets one ``lstat`` per
post; from that many on it is listed once (``os.scandir``: no inode reads, one pass over the directory; a batch of
16k posts lists every bucket it touches more than 8 times, so a big ingest never stats post by post) and remembered
as a sorted array of integer keys ``id * 1024 + extension code`` (8 bytes per file), looked up vectorised
(``np.searchsorted``) per batch. So a few thousand posts against a full mirror cost a few thousand ``lstat``s, and
millions of posts cost one listing of each directory instead of millions of ``stat`` calls (which on a cold disk or
a network file system each read an inode or make a round trip).

Safety: the path is built only from an integer id and an extension matching ``^[a-z0-9]{1,5}$``, so metadata
cannot point outside the mirror; a bucket directory or image that is a symlink resolving outside
``<root>/original`` is treated as absent (and reported), and nothing is ever opened here, only listed.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Iterable
from itertools import repeat

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

N_BUCKETS = 1000
EXT_BITS = 10
MAX_KEYED_ID = (1 << (63 - EXT_BITS)) - 1
LIST_AFTER = 8  # checks of one bucket (this batch's included) from which the whole bucket directory is listed
# "\0<id>.<ext>" followed by NUL: a canonical post id (no leading zero, < 2**53) and a valid extension
_NAME = re.compile(r"\0([1-9][0-9]{0,15})\.([a-z0-9]{1,5})(?=\0|$)")


# dataset.layout -> (image directory under the root, the extension every file has there or None = the post's).
# Danbooru2021's own description (gwern.net/danbooru2021, "Format"): images are bucketed into 1000 directories
# 0000-0999 (the post id modulo 1000, zero-padded to 4 digits) and a file is at {original,512px}/$BUCKET/$ID.$EXT;
# the 512px subset is the SFW ('s' rating) posts downscaled to 512x512 JPGs, so there $EXT is always jpg.
LAYOUTS: dict[str, tuple[str, str | None]] = {"original": ("original", None), "512px": ("512px", "jpg")}
# dataset.layout -> the (legacy s/q/e) ratings its folder holds; a layout not listed holds every rating
LAYOUT_RATINGS: dict[str, frozenset[str]] = {"512px": frozenset({"s"})}


def check_layout(layout: str) -> tuple[str, str | None]:
    if layout not in LAYOUTS:
        raise ValueError(f"dataset.layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
    return LAYOUTS[layout]


def image_path(root: str, post_id: int, file_ext: str, layout: str = "original") -> str:
    """Where a Danbooru mirror keeps a post's image: ``<root>/original/<id % 1000 as 4 digits>/<id>.<ext>`` (or
    ``<root>/512px/.../<id>.jpg`` with the 512px layout)."""
    folder, forced_ext = check_layout(layout)
    return f"{root}/{folder}/{post_id % N_BUCKETS:04d}/{post_id}.{forced_ext or file_ext}"


def image_paths(root: str, post_ids: np.ndarray, file_exts: pa.Array, layout: str = "original") -> pa.Array:
    """:func:`image_path` of many posts at once (Arrow string kernels, no per-post Python)."""
    folder, forced_ext = check_layout(layout)
    ids = np.asarray(post_ids, dtype=np.int64)
    bucket = pc.utf8_lpad(pc.cast(pa.array(ids % N_BUCKETS), pa.string()), 4, "0")
    ext = pa.scalar(forced_ext, pa.string()) if forced_ext else file_exts
    return pc.binary_join_element_wise(
        f"{root}/{folder}/", bucket, "/", pc.cast(pa.array(ids), pa.string()), ".", ext, ""
    )


def _inside(path: str, base: str) -> bool:
    real = os.path.realpath(path)
    return real == base or real.startswith(base + os.sep)


class MirrorIndex:
    """Lazily built index of the image files under ``<root>/original``."""

    def __init__(self, root: str | os.PathLike[str], layout: str = "original") -> None:
        self.root = os.fspath(root)
        folder, self.forced_ext = check_layout(layout)
        self.original = os.path.join(self.root, folder)
        self.base = os.path.realpath(self.original)
        self.ext_code: dict[str, int] = {}
        self.listed: set[int] = set()
        self.keys = np.zeros(0, dtype=np.int64)
        self.rejected: dict[tuple[int, str], str] = {}  # (id, ext) -> why an existing entry is not usable
        self.files_indexed = 0
        self.direct_checks = 0
        self.seconds = 0.0
        self._checks = np.zeros(N_BUCKETS, dtype=np.int64)  # checks per bucket so far
        self._bucket_ok: dict[int, bool] = {}  # bucket directory is not a symlink leaving the mirror

    def _code(self, ext: str) -> int | None:
        code = self.ext_code.get(ext)
        if code is None:
            if len(self.ext_code) >= (1 << EXT_BITS):
                return None
            code = self.ext_code[ext] = len(self.ext_code)
        return code

    def _list_bucket(self, bucket: int) -> np.ndarray:
        """Keys of the image files of one bucket directory. Regular files are matched by name in one regex pass
        over all names (~2 us per file instead of ~5 for a per-entry loop); symlinks are followed only when they
        resolve inside the mirror."""
        directory = os.path.join(self.original, f"{bucket:04d}")
        regular: list[str] = []
        links: list[os.DirEntry] = []
        try:
            if not self._bucket_safe(bucket):
                return np.zeros(0, dtype=np.int64)
            with os.scandir(directory) as it:
                entries = list(it)
            regular = [e.name for e in entries if e.is_file(follow_symlinks=False)]
            if len(regular) < len(entries):
                links = [e for e in entries if e.is_symlink()]
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return np.zeros(0, dtype=np.int64)
        for link in links:
            m = _NAME.fullmatch("\0" + link.name)
            if m is None:
                continue
            if not _inside(link.path, self.base):
                self.rejected[(int(m.group(1)), m.group(2))] = "symlink pointing outside the mirror"
            elif os.path.isfile(link.path):
                regular.append(link.name)
        # file names cannot contain NUL, so NUL-separated names are parsed unambiguously in one findall
        found = _NAME.findall("\0" + "\0".join(regular) + "\0")
        if not found:
            return np.zeros(0, dtype=np.int64)
        for ext in {ext for _, ext in found}:
            self._code(ext)
        id_texts, ext_texts = zip(*found, strict=True)
        ids = np.fromiter(map(int, id_texts), dtype=np.int64, count=len(found))
        exts = np.fromiter(map(self.ext_code.get, ext_texts, repeat(-1)), dtype=np.int64, count=len(found))
        ok = (ids <= MAX_KEYED_ID) & (ids % N_BUCKETS == bucket) & (exts >= 0)
        return (ids[ok] << EXT_BITS) | exts[ok]

    def ensure(self, buckets: Iterable[int]) -> None:
        """List the given buckets if not done yet (one scandir each)."""
        new = sorted(set(int(b) for b in buckets) - self.listed)
        if not new:
            return
        t0 = time.perf_counter()
        added = []
        for bucket in new:
            added.append(self._list_bucket(bucket))
            self.listed.add(bucket)
        # two sorted runs: the stable sort (timsort) merges them in linear time; keys never repeat across buckets
        self.keys = np.sort(np.concatenate([self.keys, np.sort(np.concatenate(added))]), kind="stable")
        self.files_indexed = len(self.keys)
        self.seconds += time.perf_counter() - t0

    def _bucket_safe(self, bucket: int) -> bool:
        ok = self._bucket_ok.get(bucket)
        if ok is None:
            directory = os.path.join(self.original, f"{bucket:04d}")
            ok = self._bucket_ok[bucket] = not os.path.islink(directory) or _inside(directory, self.base)
        return ok

    def _direct(self, post_id: int, ext: str) -> bool:
        """One post checked with lstat: the same rules as the listing (a regular file, or a symlink resolving
        to a regular file inside the mirror)."""
        bucket = post_id % N_BUCKETS
        if post_id > MAX_KEYED_ID or not self._bucket_safe(bucket):
            return False
        path = os.path.join(self.original, f"{bucket:04d}", f"{post_id}.{ext}")
        try:
            mode = os.lstat(path).st_mode
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return False
        if stat.S_ISREG(mode):
            return True
        if stat.S_ISLNK(mode):
            if not _inside(path, self.base):
                self.rejected[(post_id, ext)] = "symlink pointing outside the mirror"
                return False
            return os.path.isfile(path)
        return False

    def present(self, post_ids: np.ndarray, exts: list[str]) -> np.ndarray:
        """Boolean mask: is ``original/{bucket}/{id}.{ext}`` an image file inside the mirror?"""
        post_ids = np.asarray(post_ids, dtype=np.int64)
        if self.forced_ext:
            exts = [self.forced_ext] * len(post_ids)
        buckets = post_ids % N_BUCKETS
        self._checks += np.bincount(buckets, minlength=N_BUCKETS)
        busy = np.flatnonzero(self._checks >= LIST_AFTER)
        self.ensure(b for b in busy.tolist() if b not in self.listed)
        t0 = time.perf_counter()
        listed = np.isin(buckets, np.fromiter(self.listed, dtype=np.int64, count=len(self.listed)))
        found = np.zeros(len(post_ids), dtype=bool)
        for i in np.flatnonzero(~listed).tolist():
            found[i] = self._direct(int(post_ids[i]), exts[i])
            self.direct_checks += 1
        idx = np.flatnonzero(listed)
        if len(idx) and len(self.keys):
            wanted = [exts[i] for i in idx.tolist()]
            codes = np.fromiter(map(self.ext_code.get, wanted, repeat(-1)), dtype=np.int64, count=len(idx))
            ids = post_ids[idx]
            keys = (ids << EXT_BITS) | np.where(codes >= 0, codes, 0)
            pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            found[idx] = (codes >= 0) & (ids <= MAX_KEYED_ID) & (self.keys[pos] == keys)
        self.seconds += time.perf_counter() - t0
        return found
