"""Which errors are facts about an input (a ledger drop) and which are faults of the machine (the job fails).

The rule every stage follows: an image that cannot be decoded, is truncated, a bomb, not a regular file, or
unreadable *to us by its own permissions* is a property of the input and becomes a dropped row with a reason. A
full disk, an I/O error, a read-only file system, a quota, running out of memory or file descriptors, a file
the previous stage listed that has vanished, or a permission error on our *own* outputs is a fault of the
environment: recording it as a drop would lose the item for good (a rerun finds the manifest complete and does
nothing), so the job must fail and Snakemake reruns it once the machine is fixed.

Use :func:`raise_if_fault` first thing in every ``except OSError`` / ``except Exception`` that would otherwise
turn an error into a drop.
"""

from __future__ import annotations

import errno

# errno values that say something about the machine (or the run), never about the content of an input file.
MACHINE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENOSPC",  # disk full
        "EDQUOT",  # quota exceeded
        "EIO",  # I/O error
        "EROFS",  # read-only file system
        "ENOMEM",  # out of memory (mmap, kernel buffers)
        "EMFILE",  # too many open files (process)
        "ENFILE",  # too many open files (system)
        "ESTALE",  # stale NFS handle
        "ENOTCONN",  # network file system gone
        "ETIMEDOUT",
        "EHOSTDOWN",
        "ENOLINK",
        "ENOENT",  # a file the previous stage listed (or we wrote) has vanished
        "ENOTDIR",  # a folder on the path was replaced or removed under us
        "EFBIG",  # file too large for the file system (while writing)
        "EBUSY",
        "EAGAIN",
        "EINTR",
    )
    if hasattr(errno, name)
)
# Permission errors: a fault on our own files (outputs, intermediates); a property of a user's source image.
PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


# Out-of-memory errors that are not MemoryError: torch's (CUDA/CPU) OutOfMemoryError, OpenCV's allocator.
_OOM_NAMES = frozenset({"OutOfMemoryError"})
_OOM_MESSAGES = ("insufficient memory", "failed to allocate", "out of memory")


def is_fault(exc: BaseException, own_file: bool = True) -> bool:
    """Whether ``exc`` is a fault of the machine (the job must fail) rather than a fact about the input.

    ``own_file``: the error concerns a file this workflow wrote (a crop, a manifest, an output); ``False`` for a
    user's source image, whose own permissions are a property of that input."""
    if isinstance(exc, MemoryError) or type(exc).__name__ in _OOM_NAMES:
        return True
    if not isinstance(exc, OSError) and any(m in str(exc).lower() for m in _OOM_MESSAGES):
        return True
    if isinstance(exc, OSError) and isinstance(exc.errno, int):
        if exc.errno in PERMISSION_ERRNOS:
            return own_file
        return exc.errno in MACHINE_ERRNOS
    return False


def raise_if_fault(exc: BaseException, own_file: bool = True) -> None:
    """Re-raise ``exc`` when :func:`is_fault` says it is the machine's fault; return otherwise."""
    if is_fault(exc, own_file):
        raise exc
