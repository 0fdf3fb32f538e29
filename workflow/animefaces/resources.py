"""External files the workflow needs, fetched from a list of sources and verified by sha256.

The one resource today is nagadomi's LBP anime-face cascade (``lbpcascade_animeface.xml``, MIT). Sources are
tried in order until one yields bytes with the expected checksum:

1. a local path (config ``crop.cascade_path``) -- for offline sites; a wrong checksum here is an error at once,
   because the user pointed at the wrong file;
2. the upstream file on GitHub;
3. the PyPI wheel ``danbooru-utility==0.1.20``, which ships a byte-identical copy: ``pip download`` (never
   installed), opened as a zip, the member extracted.

Network failures and checksum mismatches of downloaded files fall through to the next source with a logged
reason; when every source fails the error lists each one and why.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_bytes
from .config import parse_params

log = logging.getLogger("animefaces.resources")

CASCADE_NAME = "lbpcascade_animeface.xml"
CASCADE_SHA256 = "9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30"
CASCADE_URL = "https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/master/lbpcascade_animeface.xml"
CASCADE_WHEEL = "danbooru-utility==0.1.20"
DEFAULT_DEST = Path("resources") / CASCADE_NAME
SOURCE_KINDS = ("config", "upstream", "pypi")


class ResourceError(RuntimeError):
    """A resource that could not be put in place; the message says what was tried and what to do."""


class ChecksumMismatch(ResourceError):
    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(f"{what}: sha256 mismatch: expected {expected}, got {actual}")
        self.what, self.expected, self.actual = what, expected, actual


class SourceUnavailable(ResourceError):
    """A source that could not deliver (no network, missing file, pip failure); the next source is tried."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: str | os.PathLike[str], expected: str = CASCADE_SHA256) -> None:
    """Raise ChecksumMismatch (naming the file, expected and actual hash) unless ``path`` has ``expected``."""
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumMismatch(str(path), expected, actual)


@dataclass(frozen=True)
class Source:
    """One place a resource can come from. ``fetch()`` returns the file's bytes or raises SourceUnavailable.

    ``trusted``: a checksum mismatch is a hard error (the user named this file) rather than a fall-through."""

    name: str
    fetch: Callable[[], bytes]
    trusted: bool = False


def local_source(path: str | os.PathLike[str]) -> Source:
    def fetch() -> bytes:
        p = Path(path)
        if not p.is_file():
            raise SourceUnavailable(f"{p} does not exist (check config key crop.cascade_path)")
        return p.read_bytes()

    return Source(f"config crop.cascade_path={path}", fetch, trusted=True)


def url_source(url: str, timeout: float = 30.0) -> Source:
    def fetch() -> bytes:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SourceUnavailable(f"download failed: {exc}") from exc

    return Source(f"upstream {url}", fetch)


def wheel_member_source(
    requirement: str, member: str, expected: str, timeout: float = 300.0, python: str = sys.executable
) -> Source:
    """Download ``requirement``'s wheel with pip (not installed) and return the member whose name ends with
    ``member`` and whose checksum matches (the wheel may hold several copies), else the first such member."""

    def fetch() -> bytes:
        with tempfile.TemporaryDirectory(prefix="animefaces-wheel-") as tmp:
            cmd = [python, "-m", "pip", "download", "--no-deps", "--no-binary", ":none:", requirement, "-d", tmp]
            cmd += ["--disable-pip-version-check", "--quiet"]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SourceUnavailable(f"pip download {requirement} failed: {exc}") from exc
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise SourceUnavailable(f"pip download {requirement} exited {proc.returncode}: {' | '.join(tail)}")
            wheels = sorted(Path(tmp).glob("*.whl"))
            if not wheels:
                raise SourceUnavailable(f"pip download {requirement} produced no wheel")
            try:
                with zipfile.ZipFile(wheels[0]) as zf:
                    names = [n for n in zf.namelist() if n.endswith("/" + member) or n == member]
                    if not names:
                        raise SourceUnavailable(f"{wheels[0].name} holds no {member}")
                    blobs = [zf.read(n) for n in names]
            except zipfile.BadZipFile as exc:
                raise SourceUnavailable(f"{wheels[0].name} is not a valid wheel: {exc}") from exc
            for blob in blobs:
                if sha256_bytes(blob) == expected:
                    return blob
            return blobs[0]

    return Source(f"PyPI wheel {requirement} (pip download, not installed)", fetch)


def cascade_sources(cascade_path: str | None = None, kinds: Sequence[str] = SOURCE_KINDS) -> list[Source]:
    """The cascade's sources in order; ``kinds`` picks among config/upstream/pypi (config only if a path is set)."""
    unknown = set(kinds) - set(SOURCE_KINDS)
    if unknown:
        raise ValueError(f"unknown cascade source kinds {sorted(unknown)}; choose from {list(SOURCE_KINDS)}")
    sources = []
    for kind in kinds:
        if kind == "config" and cascade_path:
            sources.append(local_source(cascade_path))
        elif kind == "upstream":
            sources.append(url_source(CASCADE_URL))
        elif kind == "pypi":
            sources.append(wheel_member_source(CASCADE_WHEEL, CASCADE_NAME, CASCADE_SHA256))
    return sources


def fetch_resource(dest: str | os.PathLike[str], expected: str, sources: Sequence[Source]) -> Path:
    """Put a file with sha256 ``expected`` at ``dest`` from the first source that delivers it.

    An existing ``dest`` with the right checksum is kept as is (no network)."""
    dest = Path(dest)
    if dest.is_file():
        actual = sha256_file(dest)
        if actual == expected:
            log.info("%s already in place (sha256 ok)", dest)
            return dest
        log.warning("%s exists but has sha256 %s, expected %s: fetching it again", dest, actual, expected)
    tried: list[str] = []
    for source in sources:
        try:
            data = source.fetch()
        except SourceUnavailable as exc:
            log.warning("source %s unavailable: %s", source.name, exc)
            tried.append(f"{source.name}: {exc}")
            continue
        actual = sha256_bytes(data)
        if actual != expected:
            err = ChecksumMismatch(f"{dest.name} from {source.name}", expected, actual)
            if source.trusted:
                raise err
            log.warning("%s", err)
            tried.append(str(err))
            continue
        write_bytes(dest, data)
        log.info("%s written from %s (%d bytes, sha256 ok)", dest, source.name, len(data))
        return dest
    if not tried:
        tried.append("(no sources configured)")
    raise ResourceError(
        f"could not obtain {dest.name} (sha256 {expected}); sources tried:\n  "
        + "\n  ".join(tried)
        + f"\nDownload it yourself and set config key crop.cascade_path to its location, or place it at {dest}."
    )


def fetch_cascade(
    dest: str | os.PathLike[str] = DEFAULT_DEST,
    cascade_path: str | None = None,
    kinds: Sequence[str] = SOURCE_KINDS,
) -> Path:
    return fetch_resource(dest, CASCADE_SHA256, cascade_sources(cascade_path, kinds))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="animefaces fetch-cascade",
        description=f"Put {CASCADE_NAME} in place and verify its sha256 ({CASCADE_SHA256[:12]}...).",
    )
    ap.add_argument("--dest", default=str(DEFAULT_DEST), help="where the cascade goes (default: %(default)s)")
    ap.add_argument("--params", help="the crop config section as JSON (its cascade_path is the first source)")
    ap.add_argument("--cascade-path", help="a local copy to use (overrides crop.cascade_path)")
    ap.add_argument(
        "--sources",
        default=",".join(SOURCE_KINDS),
        help="comma-separated source kinds to try, in order (default: %(default)s)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    params = parse_params(args.params, "crop")
    cascade_path = args.cascade_path or params.get("cascade_path")
    kinds = [k.strip() for k in args.sources.split(",") if k.strip()]
    try:
        fetch_cascade(args.dest, cascade_path, kinds)
    except ResourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
