"""One large JSON Lines file read by several processes: byte ranges that end at line ends, each decoded and
normalised in a reader process (:func:`parse_chunk`), the results taken in file order by the one deciding process.

Only a plain JSON Lines file is split (not compressed, not a tar archive, not a JSON array: those are streams that
cannot be entered in the middle) and only when it is at least two chunks long. A chunk is decoded exactly as the
serial reader decodes the whole file (:func:`~.readers.iter_json_lines_fast`); record numbers come back relative
to the chunk and the caller adds the lines of the chunks before it, so the ledger does not depend on the number of
reader processes.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

from .readers import (
    BUFFER_BYTES,
    MetadataError,
    compression_of,
    is_tar_name,
    iter_json_lines_fast,
    skip_bom,
    sniff_format,
)

CHUNK_BYTES = 32 << 20  # ~15k Danbooru records: about one deciding batch per chunk
_SEARCH_BYTES = 1 << 16


def line_chunks(path: str | os.PathLike[str], size: int | None = None) -> list[tuple[int, int]] | None:
    """Byte ranges ``[start, end)`` covering a plain JSON Lines file, each about ``size`` (default
    ``CHUNK_BYTES``) bytes and ending just after a newline (the last one at the end of the file); ``None`` for a
    file that is not plain JSON Lines, is missing, or is shorter than two chunks (read it serially)."""
    path = os.fspath(path)
    size = size or CHUNK_BYTES
    if is_tar_name(path) or not os.path.isfile(path):
        return None
    total = os.path.getsize(path)
    if total < 2 * size:
        return None
    with open(path, "rb", buffering=BUFFER_BYTES) as fh:
        if compression_of(fh.peek(6)[:6]) is not None or sniff_format(fh) != "lines":
            return None
        bounds = [0]
        pos = size
        while pos < total:
            fh.seek(pos)
            while True:  # the first newline at or after pos: the chunk ends just after it
                piece = fh.read(_SEARCH_BYTES)
                if not piece:
                    pos = total
                    break
                cut = piece.find(b"\n")
                if cut >= 0:
                    pos += cut + 1
                    break
                pos += len(piece)
            if pos < total:
                bounds.append(pos)
            pos += size
        bounds.append(total)
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def parse_chunk(path: str, source: str, start: int, end: int, batch: int) -> tuple[list[Any], int, float, int]:
    """Decode and normalise the records of one chunk: ``(parsed batches of about ``batch`` records, lines in the
    chunk, CPU seconds spent, this reader process's peak RSS in MB so far)``. Runs in a reader process."""
    from .core import parse_batch, peak_rss_mb  # (core imports this module)

    cpu = time.process_time()
    out = []
    ns: list[int] = []
    values: list[Any] = []
    with io.BufferedReader(_FileRange(path, start, end), BUFFER_BYTES) as stream:
        if start == 0:
            skip_bom(stream)
        blocks = iter_json_lines_fast(stream)
        while True:
            try:
                batch_ns, batch_values = next(blocks)
            except StopIteration as end_of_chunk:
                lines = end_of_chunk.value
                break
            ns += batch_ns
            values += batch_values
            if len(ns) >= batch:
                out.append(parse_batch(source, ns, values))
                ns, values = [], []
    if ns:
        out.append(parse_batch(source, ns, values))
    return out, lines, time.process_time() - cpu, peak_rss_mb()


class ReaderDied(RuntimeError):
    """A reader process ended abruptly (killed: out of memory, or by a signal). A fault of the machine, not of the
    metadata: the job fails, writes no manifest, and a rerun redoes it."""

    def __init__(self, path: str):
        super().__init__(
            f"a reader process died while {path!r} was being read (killed: out of memory, or by a signal); no "
            "manifest was written: rerun the job, and if memory is short give it one reader "
            "(--set-threads ingest=1: one process, ~630 MB at 5M posts)"
        )


def _changed(path: str, start: int, end: int) -> MetadataError:
    return MetadataError(
        f"metadata file {path!r} changed while it was being read (bytes {start}-{end} are no longer there); "
        "rerun when nothing writes to it"
    )


class _FileRange(io.RawIOBase):
    """Bytes ``[start, end)`` of a file as a raw stream (``pread``s; a buffered reader on top reads it in blocks
    that are reused, where reading the whole chunk at once faulted in 32 MiB of fresh memory per chunk: 11-38% of
    reading and decoding a chunk in one scratch run, BENCHMARKS.md "session 7")."""

    def __init__(self, path: str, start: int, end: int):
        super().__init__()
        self.fd = os.open(path, os.O_RDONLY)
        self.path, self.start, self.pos, self.end = path, start, start, end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.end - self.pos)
        if want <= 0:
            return 0
        got = os.preadv(self.fd, [memoryview(buffer)[:want]], self.pos)
        if not got:  # the file is shorter than when it was split
            raise _changed(self.path, self.start, self.end)
        self.pos += got
        return got

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


def reader_pool(workers: int) -> Executor:
    """Reader processes: forked from a server that has imported the ingest package once (``forkserver``; a fresh
    interpreter each where the platform has no fork)."""
    try:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["animefaces.ingest.core"])
    except ValueError:
        ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
