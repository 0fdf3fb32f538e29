"""The ``folder`` source (``dataset.source: folder``): any directory tree of images instead of a Danbooru mirror.

Every file whose extension is one of ``IMAGE_EXTENSIONS`` (case-insensitive) is a post, in sorted relative-path
order. Its id is the file stem when that is a canonical decimal number (``123.png`` -> 123); otherwise a stable id
derived from the SHA-256 of the relative path (``HASH_ID_BASE`` + 48 bits of the hash, far above any Danbooru id),
which the kept row's ``details`` says. Two files with the same id: the first in path order wins, the other is a
``duplicate_id``. Directory symlinks are not followed; a file symlink resolving outside the folder is dropped as
``missing_file`` and never opened.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp")
HASH_ID_BASE = 1_000_000_000_000_000  # 10**15: hashed ids never collide with real Danbooru ids (< 10**9)
HASH_ID_BITS = 48


@dataclass(frozen=True)
class FolderItem:
    relpath: str  # posix, relative to the folder
    path: str  # root-joined path that downstream stages open
    post_id: int
    id_from_hash: bool
    file_ext: str  # lower-case
    outside: bool  # a symlink resolving outside the folder (never opened)


def hashed_id(relpath: str) -> int:
    digest = hashlib.sha256(relpath.encode("utf-8", "surrogateescape")).digest()
    return HASH_ID_BASE + int.from_bytes(digest[: HASH_ID_BITS // 8], "big")


def id_for(relpath: str) -> tuple[int, bool]:
    """``(post id, derived from the path hash?)`` for a file's relative path."""
    stem = os.path.splitext(os.path.basename(relpath))[0]
    if stem.isascii() and stem.isdigit() and not stem.startswith("0") and int(stem) < HASH_ID_BASE:
        return int(stem), False
    return hashed_id(relpath), True


def iter_folder(root: str | os.PathLike[str]) -> Iterator[FolderItem]:
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset.root {root!r} is not a directory (dataset.source: folder)")
    base = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            ext = name.rpartition(".")[2].lower() if "." in name else ""
            if ext not in IMAGE_EXTENSIONS:
                continue
            path = os.path.join(dirpath, name)
            relpath = os.path.relpath(path, root).replace(os.sep, "/")
            outside = False
            if os.path.islink(path):
                real = os.path.realpath(path)
                outside = not (real == base or real.startswith(base + os.sep)) or not os.path.isfile(real)
            post_id, from_hash = id_for(relpath)
            yield FolderItem(relpath, path, post_id, from_hash, ext, outside)


def image_size(path: str) -> tuple[int | None, int | None]:
    """Width and height from the image header (no full decode); (None, None) if unreadable."""
    from PIL import Image

    from ..faults import raise_if_fault

    try:
        # never open a FIFO, socket or device (a FIFO would block forever): crop records them (not_regular_file)
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None, None
        with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return None, None
            with Image.open(fh) as im:
                return im.size
    except Exception as exc:  # unreadable files are judged by the decoding stages, not here
        raise_if_fault(exc, own_file=False)
        return None, None
