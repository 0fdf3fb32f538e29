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
from collections.abc import Generator, Iterator
from typing import IO, Any

import msgspec
import numpy as np

from .records import Post, RawPost

MAX_RECORD_BYTES = 64 << 20  # a single Danbooru record is a few kB; anything this large is not a record
CHUNK_BYTES = 1 << 20
LINE_BLOCK_BYTES = 1 << 20  # JSON Lines are decoded in blocks of whole lines of about this size
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


class DamagedMetadata(MetadataError):
    """A metadata file or archive that breaks off in the middle (truncated or corrupt compressed data)."""


METADATA_NAME = re.compile(r"\.(json|jsonl|ndjson)(\.(gz|xz|bz2))?$|\.(tar|tgz|txz|tbz2|tbz|tar\.(gz|xz|bz2))$", re.I)
_GLOB_CHARS = re.compile(r"[*?\[]")


def expand_metadata(entries: list[str]) -> list[str]:
    """``dataset.metadata`` as a list of files: a glob pattern becomes its matches (sorted), a directory every
    metadata file under it (``*.json``, ``*.jsonl``, ``*.ndjson``, optionally compressed, and tar archives;
    recursively, sorted); anything else is kept as written (a file, possibly one a rule will create). A pattern
    or directory that matches nothing is an error naming it."""
    import glob

    files: list[str] = []
    for entry in entries:
        entry = os.fspath(entry)
        if os.path.isdir(entry):
            found = sorted(
                os.path.join(d, f) for d, _, names in os.walk(entry) for f in names if METADATA_NAME.search(f)
            )
            if not found:
                raise MetadataError(f"dataset.metadata: directory {entry!r} holds no metadata files (*.json, *.jsonl)")
            files += found
        elif _GLOB_CHARS.search(entry) and not os.path.exists(entry):
            found = sorted(p for p in glob.glob(entry, recursive=True) if os.path.isfile(p))
            if not found:
                raise MetadataError(f"dataset.metadata: pattern {entry!r} matches no file")
            files += found
        else:
            files.append(entry)
    return files


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
        # (already buffered, with peek/read1/readline: a further buffer would read 1 MiB at a time from the
        # decompressor, so damaged data would lose the whole MiB before it, not just the piece it is in)
        yield inner  # type: ignore[misc]


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
                raise DamagedMetadata(f"metadata archive {path!r} is damaged: {exc}") from exc
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

    Same acceptance as ``json.loads(line)`` (see :func:`decode_line`)."""
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
        value = decode_line(line)
        if value is not BLANK:
            yield n, value


class HugeNumber(str):
    """A JSON integer with more digits than Python converts (4300): kept as its text, never used as a number."""

    def __repr__(self) -> str:
        return f"<integer with {len(self)} digits>"


def _parse_int(text: str) -> int | HugeNumber:
    return int(text) if len(text) <= 4000 else HugeNumber(text)


BLANK = object()  # what decode_line returns for a blank line
_scan = json.JSONDecoder().scan_once
_scan_big = json.JSONDecoder(parse_int=_parse_int).scan_once
_raw_decode_big = json.JSONDecoder(parse_int=_parse_int).raw_decode


def decode_line(line: bytes) -> Any:
    """The exact decoder of one JSON Lines line: the value (as ``json.loads`` gives it; integers of more than
    4000 digits as :class:`HugeNumber`), ``BLANK``, or a :class:`Malformed` saying why (not UTF-8, not JSON,
    extra data, nested deeper than the recursion limit). Calls the C scanner directly (the three Python frames
    of ``json.loads`` cost ~10% of a record)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Malformed(_short_error(exc))
    ws = _WS.match
    start = ws(text).end()  # type: ignore[union-attr]
    if start == len(text):
        return BLANK
    try:
        try:
            value, end = _scan(text, start)
        except ValueError as exc:  # an integer longer than Python's 4300-digit conversion limit
            if isinstance(exc, json.JSONDecodeError):
                raise
            value, end = _scan_big(text, start)
    except StopIteration as exc:  # the C scanner's "no value here"
        return Malformed(f"Expecting value (character {exc.value})")
    except json.JSONDecodeError as exc:
        return Malformed(_short_error(exc))
    except RecursionError:
        return Malformed("nested deeper than the JSON reader's recursion limit")
    end = ws(text, end).end()  # type: ignore[union-attr]
    if end != len(text):
        return Malformed(f"Extra data (character {end})")
    return value


def iter_record_batches(stream: io.BufferedReader) -> Iterator[tuple[list[int], list[Any]]]:
    """What ingest reads: ``(record numbers, values)`` batches of one (decompressed) metadata stream, the same
    records as :func:`iter_records` but a record in JSON Lines comes out as a :class:`~.records.Post` (or
    :class:`~.records.RawPost`) when the fast decoder takes it (then it normalises as ``raw_post`` of what
    :func:`decode_line` gives)."""
    skip_bom(stream)
    if sniff_format(stream) == "array":
        ns: list[int] = []
        values: list[Any] = []
        for n, value in iter_json_array(stream):
            ns.append(n)
            values.append(value)
            if len(ns) >= 4096:
                yield ns, values
                ns, values = [], []
        if ns:
            yield ns, values
    else:
        yield from iter_json_lines_fast(stream)


_fast_decoder = msgspec.json.Decoder(Post)  # typed: a block of canonical records
_tolerant_decoder = msgspec.json.Decoder(RawPost)  # a line whose values have other types


def _read_block(stream: io.BufferedReader, size: int) -> tuple[bytes, BaseException | None]:
    """Up to ``size`` bytes, in the pieces the decompressor delivers, so that damaged compressed data loses only
    the piece it is in: ``(bytes read, the read error or None)``. A plain file's read usually gives the whole
    block in one piece, which is then returned as it is (no copy: the copy cost 2-16% of reading and decoding a
    chunk in one scratch run)."""
    chunks: list[bytes] = []
    got = 0
    try:
        while got < size:
            piece = stream.read1(size - got)
            if not piece:
                break
            chunks.append(piece)
            got += len(piece)
    except READ_ERRORS as exc:
        return b"".join(chunks), exc
    return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), None


_FAST_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)


def _utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def count_newlines(data: bytes | memoryview) -> int:
    """The newlines in ``data``: numpy's vectorised compare (``bytes.count`` of one byte is a plain loop, 5x
    slower: ~1.4 µs of a 2.2 kB record's read)."""
    return int(np.count_nonzero(np.frombuffer(data, np.uint8) == 0x0A))


def iter_json_lines_fast(stream: io.BufferedReader) -> Generator[tuple[list[int], list[Any]], None, int]:
    """JSON Lines in blocks of whole lines: a block that is valid UTF-8 and decodes line for line into typed
    ``Post``s in one ``msgspec`` call is taken as it is; otherwise each line of the block is decoded alone
    (``msgspec`` into ``Post``, then into the untyped ``RawPost`` for a value of another type, then
    :func:`decode_line`, the exact path, for the lines it refuses: non-objects, bad JSON, lone surrogates, NaN,
    huge numbers, deep nesting). ``msgspec`` refuses everything ``json`` refuses except
    invalid UTF-8 in fields it skips, which the UTF-8 check catches, so both paths accept the same records.
    Returns the number of lines read (blank ones included)."""
    decode_lines = _fast_decoder.decode_lines
    decode = _fast_decoder.decode
    decode_tolerant = _tolerant_decoder.decode
    limit = MAX_RECORD_BYTES
    n = 0
    carry = b""
    skipping = False  # inside an oversized line: drop bytes up to the next newline
    damage: BaseException | None = None
    while True:
        if damage is not None:  # the lines read before the damage were yielded: now fail
            raise damage
        data, damage = _read_block(stream, LINE_BLOCK_BYTES)
        if damage is not None:  # keep the complete lines before the damage, drop the cut one
            data = data[: data.rfind(b"\n") + 1]
            if not data and not carry:
                raise damage
        eof = not data
        if skipping and not eof:
            cut = data.find(b"\n")
            if cut < 0:
                continue
            skipping = False
            data = data[cut + 1 :]
        if eof:
            block, carry = carry, b""
            if not block:
                return n
        else:
            cut = data.rfind(b"\n")  # (the carry never holds a newline)
            if cut < 0:
                buf = carry + data if carry else data
                if len(buf) >= limit:
                    n += 1
                    yield [n], [Malformed(f"line longer than {MAX_RECORD_BYTES} bytes")]
                    carry, skipping = b"", True
                else:
                    carry = buf
                continue
            # one copy of the block (not carry + data, then a slice of that)
            block = carry + memoryview(data)[: cut + 1] if carry else data[: cut + 1]
            carry = data[cut + 1 :]
        lines = count_newlines(block) + (not block.endswith(b"\n"))
        if len(block) < limit and _utf8(block):  # (so no line in it is oversized)
            try:
                values = decode_lines(block)
            except _FAST_ERRORS:
                values = None
            if values is not None and len(values) == lines:  # (blank lines would be skipped silently)
                yield list(range(n + 1, n + 1 + lines)), values
                n += lines
                continue
        ns: list[int] = []
        out: list[Any] = []
        parts = block.split(b"\n")
        last = len(parts) - 1  # the part after the last newline ("" if the block ends with one)
        for i, line in enumerate(parts):
            if i == last and not line:
                break
            n += 1
            if len(line) >= limit:
                value: Any = Malformed(f"line longer than {MAX_RECORD_BYTES} bytes")
                ns.append(n)
                out.append(value)
                continue
            if _utf8(line):
                try:
                    value = decode(line)
                except msgspec.ValidationError:  # a value of another type: the untyped struct
                    try:
                        value = decode_tolerant(line)
                    except _FAST_ERRORS:
                        value = None
                except _FAST_ERRORS:
                    value = None
                if value is not None:
                    ns.append(n)
                    out.append(value)
                    continue
            value = decode_line(line + b"\n" if i < last else line)  # (errors count the newline, as before)
            if value is BLANK:
                continue
            ns.append(n)
            out.append(value)
        if ns:
            yield ns, out


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
                try:
                    value, end = decode(buf, pos)
                except RecursionError:
                    value, end = Malformed("nested deeper than the JSON reader's recursion limit"), None
                except ValueError as exc:  # an integer longer than Python's 4300-digit conversion limit
                    if isinstance(exc, json.JSONDecodeError):
                        raise
                    value, end = _raw_decode_big(buf, pos)
                if end is None:  # step over the value that could not be decoded
                    stop = _value_end(buf, pos)
                    while stop is None and more():
                        stop = _value_end(buf, pos)
                    if stop is None:
                        yield n, value
                        return
                    end = stop
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
