"""The ``folder`` source (``dataset.source: folder``): any directory tree of images instead of a Danbooru mirror.

EVERY file under the folder gets a ledger row, in sorted relative-path order:

- a file whose extension is one of ``IMAGE_EXTENSIONS`` (case-insensitive) is a post;
- any other regular file (``.heic``, no extension, ``.txt`` ...) is opened with Pillow (header only): if Pillow
  identifies it, it is a post too (its ``file_ext`` named after the format, e.g. ``jpg`` for an extension-less
  JPEG); otherwise it is dropped as ``unsupported_format`` with the reason in ``details``;
- something that is not a regular file (FIFO, socket, device) is ``unsupported_format`` and never opened;
- a file whose name is not valid UTF-8 cannot be written to the ledger as a path: ``invalid_file_name`` (an
  unsharded row whose id shows the bad bytes as ``\\xNN``);
- a subdirectory that cannot be listed: one unsharded ``unreadable_directory`` row naming it.

Ids: the file stem when it is a canonical decimal number below ``HASH_ID_BASE`` (``123.png`` -> 123); otherwise a
short stable id, ``HASH_ID_BASE`` + the SHA-256 of the relative path modulo ``HASH_ID_SPACE`` (11 digits, e.g.
``10482915530``), moved to the next free id when two paths of the folder collide (so ids depend only on the
folder's file names). The kept row's ``details`` says so and ``parent_id`` holds the relative path. Two files with
the same numeric id: the first in path order wins, the other is a ``duplicate_id``. Directory symlinks are not
followed; a file symlink resolving outside the folder is dropped as ``missing_file`` and never opened.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "avif")
HASH_ID_BASE = 10_000_000_000  # 10**10: numeric stems below this are ids; Danbooru ids are < 10**8
HASH_ID_SPACE = 90_000_000_000  # hashed ids lie in [10**10, 10**11): 11 digits
# Pillow format -> the extension a file of that format gets when its own name has none (or an unknown one)
FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif", "AVIF": "avif"}


@dataclass(frozen=True)
class FolderItem:
    relpath: str  # posix, relative to the folder
    path: str  # root-joined path that downstream stages open
    post_id: int
    id_from_hash: bool
    file_ext: str  # lower-case
    outside: bool  # a symlink resolving outside the folder (never opened)
    unsupported: str = ""  # why it is not an image Pillow can read ("" = it is one)


@dataclass(frozen=True)
class FolderProblem:
    """A file or directory that cannot be a post at all (an unsharded ledger row)."""

    locator: str  # relative path, bytes that are not UTF-8 shown as \xNN
    reason: str  # invalid_file_name | unreadable_directory
    details: dict


def hashed_id(relpath: str) -> int:
    digest = hashlib.sha256(relpath.encode("utf-8", "surrogateescape")).digest()
    return HASH_ID_BASE + int.from_bytes(digest[:8], "big") % HASH_ID_SPACE


def numeric_id(relpath: str) -> int | None:
    """The post id a file name gives directly (``123.png`` -> 123), or None."""
    stem = os.path.splitext(os.path.basename(relpath))[0]
    if stem.isascii() and stem.isdigit() and not stem.startswith("0") and len(stem) <= 11 and int(stem) < HASH_ID_BASE:
        return int(stem)
    return None


def id_for(relpath: str) -> tuple[int, bool]:
    """``(post id, derived from the path hash?)`` for a file's relative path (before collision moves)."""
    pid = numeric_id(relpath)
    if pid is not None:
        return pid, False
    return hashed_id(relpath), True


class HashedIds:
    """Hands out hashed ids, moving a path whose hash id is taken to the next free one."""

    def __init__(self) -> None:
        self.taken: set[int] = set()

    def __call__(self, relpath: str) -> int:
        pid = hashed_id(relpath)
        while pid in self.taken:
            pid = HASH_ID_BASE + (pid - HASH_ID_BASE + 1) % HASH_ID_SPACE
        self.taken.add(pid)
        return pid


def shown(text: str) -> str:
    """A path for the ledger: bytes that are not UTF-8 (surrogate-escaped by the OS layer) as ``\\xNN``."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def _valid_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _sniff(path: str) -> tuple[str, str]:
    """``(file_ext, "")`` for a file Pillow identifies from its header, else ``("", why)``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            fmt = im.format or ""
    except UnidentifiedImageError:
        return "", "Pillow cannot identify it as an image (or has no decoder for its format, e.g. HEIC)"
    except OSError as exc:
        return "", f"Pillow cannot read it: {exc}"
    except Exception as exc:  # a broken header of an identified format: the decoding stages judge it
        return "", f"Pillow cannot read it: {type(exc).__name__}: {exc}"
    return FORMAT_EXT.get(fmt, fmt.lower()[:5] or "img"), ""


def iter_folder(root: str | os.PathLike[str]) -> Iterator[FolderItem | FolderProblem]:
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset.root {root!r} is not a directory (dataset.source: folder)")
    base = os.path.realpath(root)
    errors: list[OSError] = []
    hashed = HashedIds()
    items: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=errors.append):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            items.append((os.path.relpath(path, root).replace(os.sep, "/"), path))
    for exc in errors:
        rel = os.path.relpath(os.fspath(exc.filename or root), root).replace(os.sep, "/")
        yield FolderProblem(shown(rel), "unreadable_directory", {"error": exc.strerror or str(exc)})
    for relpath, path in items:
        if not _valid_utf8(relpath):
            yield FolderProblem(
                shown(relpath), "invalid_file_name", {"why": "the path is not valid UTF-8; rename the file"}
            )
            continue
        name = relpath.rpartition("/")[2]
        ext = name.rpartition(".")[2].lower() if "." in name else ""
        outside = False
        mode = os.lstat(path).st_mode  # (a file vanishing while we list is the machine's fault: it raises)
        if stat.S_ISLNK(mode):
            real = os.path.realpath(path)
            outside = not (real == base or real.startswith(base + os.sep)) or not os.path.isfile(real)
            if not outside:
                mode = os.stat(path).st_mode
        unsupported = ""
        if not outside and not stat.S_ISREG(mode):
            unsupported = "not a regular file (a FIFO, socket or device is never opened)"
        elif not outside and ext not in IMAGE_EXTENSIONS:
            ext, unsupported = _sniff(path)
        pid = numeric_id(relpath)
        from_hash = pid is None
        if pid is None:
            pid = hashed(relpath)
        yield FolderItem(relpath, path, pid, from_hash, ext or "none", outside, unsupported)


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
