"""Streaming readers for Danbooru metadata files.

A metadata file is a JSON array or JSON Lines, optionally compressed (gzip, xz, bzip2: detected from the magic
bytes, not the name), or a tar archive (``.tar``, ``.tar.gz``/``.tgz``, ``.tar.xz``/``.txz``, ``.tar.bz2``) whose
``*.json``/``*.jsonl``/``*.ndjson`` members (each optionally compressed) are read in archive order. Nothing is
ever extracted to disk and no file is read whole into memory: JSON Lines are read line by line, JSON arrays with
an incremental parser (``json.JSONDecoder.raw_decode`` over a buffered text stream).

Every record comes out as ``(n, value)``: ``n`` is the 1-based line number (JSON Lines; blank lines are skipped)
or the 1-based element index (JSON arrays); ``value`` is the decoded JSON value or a :class:`Malformed` saying why
the record could not be decoded. A bad record never stops the file, except where the file's structure is lost
(an unclosed array, a record larger than ``MAX_RECORD_BYTES``), which is reported as one last Malformed record.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import gzip
import io
import json
import lzma
import os
import re
import tarfile
import zlib
from collections.abc import Iterator
from typing import IO, Any

MAX_RECORD_BYTES = 64 << 20  # a single Danbooru record is a few kB; anything this large is not a record
CHUNK_BYTES = 1 << 20
BUFFER_BYTES = 1 << 20
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tbz")
MEMBER_RE = re.compile(r"\.(json|jsonl|ndjson)(\.(gz|xz|bz2))?$", re.IGNORECASE)
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2"))
# what a damaged compressed file or archive raises while it is being read
READ_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error, tarfile.TarError)


class Malformed:
    """A record that is not valid JSON (or not valid UTF-8); ``error`` says what is wrong."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"Malformed({self.error!r})"


class MetadataError(ValueError):
    """A metadata file that cannot be read at all (missing, unreadable archive); names the file."""


def is_tar_name(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(TAR_SUFFIXES)


def compression_of(head: bytes) -> str | None:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


@contextlib.contextmanager
def decompressed(raw: IO[bytes]) -> Iterator[io.BufferedReader]:
    """A buffered binary stream of ``raw``'s content, decompressed if its magic bytes say gzip/xz/bzip2."""
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, BUFFER_BYTES)  # type: ignore[arg-type]
    kind = compression_of(buffered.peek(6)[:6])
    if kind is None:
        yield buffered
        return
    if kind == "gzip":
        inner: IO[bytes] = gzip.GzipFile(fileobj=buffered)  # noqa: SIM115 - closed by the with below
    elif kind == "xz":
        inner = lzma.LZMAFile(buffered)  # noqa: SIM115
    else:
        inner = bz2.BZ2File(buffered)  # noqa: SIM115
    with inner:
        yield io.BufferedReader(inner, BUFFER_BYTES)  # type: ignore[arg-type]


def iter_sources(path: str | os.PathLike[str]) -> Iterator[tuple[str, io.BufferedReader]]:
    """Yield ``(source name, binary stream)`` for a metadata file: the file itself, or each metadata member of a
    tar archive (``archive.tar.xz/member/path.json``). A stream is valid until the next item is requested."""
    path = os.fspath(path)
    base = os.path.basename(path)
    if not os.path.isfile(path):
        raise MetadataError(f"metadata file {path!r} does not exist (listed in dataset.metadata)")
    if is_tar_name(path):
        try:
            tf = tarfile.open(path, mode="r|*")  # noqa: SIM115 - closed by the with below
        except (tarfile.TarError, OSError, EOFError, lzma.LZMAError) as exc:
            raise MetadataError(f"metadata archive {path!r} cannot be opened: {exc}") from exc
        with tf:
            try:
                for member in tf:
                    if not member.isfile() or not MEMBER_RE.search(member.name):
                        continue  # directories, links, READMEs: nothing to read (links could point anywhere)
                    fh = tf.extractfile(member)
                    if fh is None:
                        continue
                    with decompressed(fh) as stream:
                        yield f"{base}/{member.name}", stream
            except READ_ERRORS as exc:
                raise MetadataError(f"metadata archive {path!r} is damaged: {exc}") from exc
        return
    with open(path, "rb", buffering=BUFFER_BYTES) as raw, decompressed(raw) as stream:
        yield base, stream


def sniff_format(stream: io.BufferedReader) -> str:
    """``"array"`` if the first non-blank byte is ``[`` (after an optional UTF-8 BOM), else ``"lines"``."""
    head = stream.peek(BUFFER_BYTES)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    stripped = head.lstrip(b" \t\r\n")
    return "array" if stripped[:1] == b"[" else "lines"


def skip_bom(stream: io.BufferedReader) -> None:
    """Consume a UTF-8 byte order mark at the start of the stream, if there is one."""
    if stream.peek(3)[:3] == b"\xef\xbb\xbf":
        stream.read(3)


def iter_records(stream: io.BufferedReader) -> Iterator[tuple[int, Any]]:
    """``(n, value or Malformed)`` for every record of one (decompressed) metadata stream."""
    skip_bom(stream)
    if sniff_format(stream) == "array":
        yield from iter_json_array(stream)
    else:
        yield from iter_json_lines(stream)


def iter_json_lines(stream: io.BufferedReader) -> Iterator[tuple[int, Any]]:
    """JSON Lines: one value per line (UTF-8); blank lines are skipped (and keep their line numbers).

    Same acceptance as ``json.loads(line)``, calling the decoder's C scanner directly (the three Python frames
    of ``json.loads`` cost ~10% of a record)."""
    decode_value = json.JSONDecoder().scan_once
    ws = _WS.match
    readline = stream.readline
    limit = MAX_RECORD_BYTES
    n = 0
    while True:
        line = readline(limit)
        if not line:
            return
        n += 1
        if len(line) == limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):  # skip the rest of the oversized line
                line = readline(limit)
            yield n, Malformed(f"line longer than {MAX_RECORD_BYTES} bytes")
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield n, Malformed(_short_error(exc))
            continue
        start = ws(text).end()  # type: ignore[union-attr]
        if start == len(text):
            continue  # blank line
        try:
            value, end = decode_value(text, start)
        except StopIteration as exc:  # the C scanner's "no value here"
            yield n, Malformed(f"Expecting value (character {exc.value})")
            continue
        except json.JSONDecodeError as exc:
            yield n, Malformed(_short_error(exc))
            continue
        end = ws(text, end).end()  # type: ignore[union-attr]
        if end != len(text):
            yield n, Malformed(f"Extra data (character {end})")
            continue
        yield n, value


_WS = re.compile(r"[ \t\n\r]*")
_STRUCT = re.compile(r'["{}\[\],]')
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SURROGATE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (decoded with surrogateescape)


def _value_end(buf: str, pos: int) -> int | None:
    """Index of the ``,`` or ``]`` ending the array element that starts at ``pos`` (brackets and strings are
    skipped), or None if the buffer ends first. Used only to step over a malformed element."""
    depth = 0
    i = pos
    while True:
        m = _STRUCT.search(buf, i)
        if m is None:
            return None
        j = m.start()
        c = buf[j]
        if c == '"':
            s = _STRING.match(buf, j)
            if s is None:
                return None
            i = s.end()
            continue
        if c in "{[":
            depth += 1
        elif c in "}]":
            if depth == 0:
                return j
            depth -= 1
        elif depth == 0:  # a comma outside any bracket
            return j
        i = j + 1


def iter_json_array(stream: io.BufferedReader) -> Iterator[tuple[int, Any]]:
    """An incremental parser for one top-level JSON array: holds only the current element plus one chunk."""
    # an incremental decoder rather than io.TextIOWrapper: tar members streamed from a compressed archive are not
    # seekable, which TextIOWrapper insists on asking; bytes that are not UTF-8 become lone surrogates
    utf8 = codecs.getincrementaldecoder("utf-8-sig")(errors="surrogateescape")
    decode = json.JSONDecoder().raw_decode
    buf = ""
    pos = 0
    eof = False

    def more() -> bool:
        nonlocal buf, pos, eof
        while not eof:
            data = stream.read(CHUNK_BYTES)
            eof = not data
            chunk = utf8.decode(data, final=eof)
            if chunk:
                buf = buf[pos:] + chunk
                pos = 0
                return True
        return False

    def skip_ws() -> bool:
        """Advance over whitespace; False at end of input."""
        nonlocal pos
        while True:
            pos = _WS.match(buf, pos).end()  # type: ignore[union-attr]
            if pos < len(buf):
                return True
            if not more():
                return False

    if not skip_ws() or buf[pos] != "[":
        yield 1, Malformed("not a JSON array")
        return
    pos += 1
    n = 0
    while True:
        if not skip_ws():
            yield n + 1, Malformed("file ends inside the JSON array (no closing ']')")
            return
        if buf[pos] == "]":
            pos += 1
            break
        n += 1
        while True:
            try:
                value, end = decode(buf, pos)
            except json.JSONDecodeError as exc:
                stop = _value_end(buf, pos)
                if stop is None:  # the element runs past the buffer: read on unless it is absurdly large
                    if len(buf) - pos > MAX_RECORD_BYTES:
                        yield n, Malformed(f"record larger than {MAX_RECORD_BYTES} characters; rest of file skipped")
                        return
                    if more():
                        continue
                    yield n, Malformed(f"file ends inside a record: {exc.msg}")
                    return
                if stop == pos:  # a separator where a value should be, e.g. "[1,,2]"
                    value, end = Malformed("empty array element"), pos
                else:
                    value, end = Malformed(f"{exc.msg} (character {exc.pos - pos} of the record)"), stop
            else:
                if end == len(buf) and not eof and more():  # a number may continue in the next chunk
                    continue
                if _SURROGATE.search(buf, pos, end):
                    value = Malformed("record is not valid UTF-8")
            break
        yield n, value
        pos = end
        if not skip_ws():
            yield n + 1, Malformed("file ends inside the JSON array (no closing ']')")
            return
        c = buf[pos]
        if c == ",":
            pos += 1
        elif c != "]":
            stop = _value_end(buf, pos)
            while stop is None and more():
                stop = _value_end(buf, pos)
            n += 1
            yield n, Malformed("unexpected text after a record (missing ',')")
            if stop is None:
                return
            pos = stop + 1 if buf[stop] == "," else stop
    if skip_ws():
        yield n + 1, Malformed("unexpected text after the closing ']' of the JSON array")


def _short_error(exc: Exception, limit: int = 200) -> str:
    msg = exc.msg if isinstance(exc, json.JSONDecodeError) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, json.JSONDecodeError):
        msg = f"{msg} (character {exc.pos})"
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."
