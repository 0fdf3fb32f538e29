"""Robust image decoding shared by every stage that opens an image.

Two entry points:
- :func:`read_bgr` for face detection: fast OpenCV decode (EXIF orientation applied), with a full Pillow decode
  for anything OpenCV cannot read or that looks truncated (OpenCV silently pads truncated JPEGs with grey).
- :func:`load_rgb` for cleaning and normalisation: full decode through Pillow with EXIF orientation, ICC -> sRGB,
  CMYK -> RGB, 16-bit -> 8-bit, first frame of animations, alpha flattened onto a background.

Failures raise :class:`ImageRejected` whose ``reason`` is a ledger reason code, so callers record a row
instead of crashing. Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) is enforced by both entry
points from the image header, before any pixel is decoded.

Colour management (``load_rgb``): an embedded profile that describes itself as sRGB is not applied (converting
sRGB to sRGB only adds rounding noise, which would break exact-duplicate detection between re-encodings); a
profile whose colour space does not fit the pixels (an RGB profile on a greyscale JPEG is common) is applied to
the pixels converted to that space, or ignored when that makes no sense (a grey profile on RGB pixels); a
profile LittleCMS cannot build a transform for is ignored. ``LoadedImage.info`` says which happened.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageCms, ImageOps

from .faults import raise_if_fault

EMPTY_FILE = "empty_file"
UNDECODABLE = "undecodable"
TRUNCATED = "truncated"
DECOMPRESSION_BOMB = "decompression_bomb"
NOT_REGULAR_FILE = "not_regular_file"

LOSSLESS_FORMATS = {"PNG", "GIF", "BMP", "TIFF", "PPM", "QOI"}
_SRGB = ImageCms.createProfile("sRGB")
_ORIENTATION_TAG = 0x0112
# Pillow's modes for 16/32-bit single-channel data.
_WIDE_GREY_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


class ImageRejected(Exception):
    """An image that cannot be used; ``reason`` is the ledger reason code, ``detail`` says why."""

    def __init__(self, reason: str, detail: str, path: str | os.PathLike[str] | None = None) -> None:
        # Pillow messages embed object reprs ("<_io.BytesIO object at 0x7f...>"): strip the address so ledger
        # details are identical from run to run.
        detail = re.sub(r" at 0x[0-9a-fA-F]+>", ">", detail)
        super().__init__(f"{path}: {reason}: {detail}" if path else f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class LoadedImage:
    rgb: np.ndarray  # H x W x 3, uint8, sRGB
    format: str  # container format Pillow detected (e.g. "JPEG", "PNG"), independent of the file name
    mode: str  # original Pillow mode ("RGB", "CMYK", "RGBA", "I;16", "P", ...)
    info: dict = field(default_factory=dict)  # has_alpha, icc, exif_orientation, exif_transposed, frames, ...

    @property
    def lossless(self) -> bool:
        return is_lossless(self.format, self.info.get("webp_lossless", False))


def is_lossless(fmt: str | None, webp_lossless: bool = False) -> bool:
    """Whether a container format stores pixels losslessly (WebP only when it is VP8L)."""
    fmt = (fmt or "").upper()
    return fmt in LOSSLESS_FORMATS or (fmt == "WEBP" and webp_lossless)


def sniff_format(head: bytes) -> tuple[str | None, bool]:
    """Container format from a file's first bytes (``("JPEG", False)``, ``("WEBP", True)`` for lossless WebP...).

    Returns ``(None, False)`` for anything unknown. Reads magic numbers only, so it is cheap enough to call on the
    source file of every crop (a JPEG named ``.png`` is still a JPEG)."""
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG", False
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG", False
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF", False
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP", _webp_is_lossless(head)
    if head[:2] == b"BM":
        return "BMP", False
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF", False
    return None, False


def _webp_is_lossless(data: bytes) -> bool:
    """Walk the RIFF chunks: a lossless WebP has a VP8L image chunk (possibly after VP8X/ICCP/ANIM chunks)."""
    pos = 12
    while pos + 8 <= len(data):
        tag = data[pos : pos + 4]
        if tag == b"VP8L":
            return True
        if tag == b"VP8 ":
            return False
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        pos += 8 + size + (size & 1)
    return False


def format_of_file(path: str | os.PathLike[str], head_bytes: int = 4096) -> tuple[str | None, bool]:
    """:func:`sniff_format` on a file (``(None, False)`` if it is not a readable regular file; a fault of the
    machine, see :mod:`animefaces.faults`, is raised)."""
    try:
        return sniff_format(read_file(path, head_bytes))
    except ImageRejected:
        return None, False
    except OSError as exc:
        raise_if_fault(exc, own_file=False)
        return None, False


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def read_file(path: str | os.PathLike[str], max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file (at most ``max_bytes``). Anything else (FIFO, socket, device, directory) is
    never read, so a FIFO named like an image cannot hang a job: :class:`ImageRejected` ``not_regular_file``.

    The type is checked before opening (a device is never opened) and again on the open descriptor, which is
    opened non-blocking (a file swapped for a FIFO in between cannot block either). ``OSError`` is raised as is:
    callers decide with :mod:`animefaces.faults` whether it is the input's or the machine's fault."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ImageRejected(NOT_REGULAR_FILE, _file_kind(st.st_mode), path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ImageRejected(NOT_REGULAR_FILE, _file_kind(st.st_mode), path)
        return fh.read() if max_bytes is None else fh.read(max_bytes)


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    data = read_file(path)
    if not data:
        raise ImageRejected(EMPTY_FILE, "file has 0 bytes", path)
    return data


def looks_truncated(data: bytes) -> str | None:
    """A cheap end-of-stream check for formats decoders read leniently (OpenCV pads truncated JPEGs with grey).

    Returns a description of the suspected problem or None. A JPEG without an end marker at the very end may
    still be complete (some files carry trailing data), so callers confirm with a full Pillow decode."""
    if data[:3] == b"\xff\xd8\xff":
        tail = data.rstrip(b"\x00")[-2:]
        if tail != b"\xff\xd9":
            return "JPEG has no end-of-image marker"
    elif data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-32:]:
        return "PNG has no IEND chunk"
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        declared = int.from_bytes(data[4:8], "little") + 8
        if declared > len(data):
            return f"WebP is {len(data)} bytes but its RIFF header declares {declared}"
    return None


def _check_bomb(size: tuple[int, int], path) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and size[0] * size[1] > limit:
        raise ImageRejected(
            DECOMPRESSION_BOMB,
            f"{size[0]}x{size[1]} = {size[0] * size[1]} pixels exceeds Pillow's limit of {limit} pixels",
            path,
        )


def _header_size(data: bytes, path) -> tuple[int, int] | None:
    """Image size from the header via Pillow (lazy: no pixel decode); None if Pillow cannot identify it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                return im.size
    except Image.DecompressionBombError as exc:
        raise ImageRejected(DECOMPRESSION_BOMB, str(exc), path) from exc
    except Exception as exc:
        raise_if_fault(exc)
        return None


def read_bgr(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode for detection: H x W x 3 uint8 BGR, EXIF orientation applied. Raises ImageRejected."""
    import cv2

    data = _read_bytes(path)
    size = _header_size(data, path)
    if size is not None:
        _check_bomb(size, path)
    if size is not None and looks_truncated(data) is None:
        buf = np.frombuffer(data, dtype=np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # applies EXIF orientation
        if img is not None and img.ndim == 3 and img.shape[2] == 3:
            return img
    # Suspected truncation, or a file OpenCV cannot read: Pillow's full decode decides (and raises the reason).
    loaded = load_rgb(path, data=data)
    return np.ascontiguousarray(loaded.rgb[:, :, ::-1])


def _exif_orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception as exc:  # a broken EXIF block must not lose the picture
        raise_if_fault(exc)
        return 1
    return value if 1 <= value <= 8 else 1


def _profile_space(profile: ImageCms.ImageCmsProfile) -> str:
    return str(profile.profile.xcolor_space).strip().upper()


def _apply_icc(im: Image.Image, icc: bytes, info: dict) -> Image.Image:
    """Convert ``im`` (mode RGB/RGBA/L/LA/CMYK) from its embedded profile to sRGB; see the module docstring."""
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = _profile_space(src)
        description = (ImageCms.getProfileDescription(src) or "").strip()
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        info["icc"] = "error"
        info["icc_error"] = f"unreadable profile: {exc}"
        return im
    info["icc_description"] = description
    alpha = im.getchannel("A") if im.mode in {"RGBA", "LA"} else None
    base = im.convert("RGB" if im.mode == "RGBA" else "L") if alpha is not None else im
    if space == "RGB" and base.mode == "L":
        base = base.convert("RGB")  # greyscale pixels tagged with an RGB profile (common in the wild)
    fits = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}.get(space) == base.mode
    if not fits:
        info["icc"] = "ignored"
        info["icc_error"] = f"{space or '?'} profile on {base.mode} pixels"
        out = base
    elif space == "RGB" and description.lower().startswith("srgb"):
        info["icc"] = "srgb"
        out = base
    else:
        try:
            out = ImageCms.profileToProfile(base, src, _SRGB, outputMode="RGB")
            info["icc"] = "converted"
        except (ImageCms.PyCMSError, OSError, ValueError) as exc:
            info["icc"] = "error"
            info["icc_error"] = str(exc)
            out = base
    if alpha is not None:
        out = out.convert("RGB")
        out.putalpha(alpha)
    return out


def _to_rgb(im: Image.Image, background: tuple[int, int, int]) -> tuple[Image.Image, dict]:
    info: dict = {}
    icc = im.info.get("icc_profile")
    if im.mode in _WIDE_GREY_MODES:
        arr = np.asarray(im).astype(np.uint32)
        scale = 65535 if arr.max(initial=0) > 255 else 255
        im = Image.fromarray((arr * 255 // scale).astype(np.uint8))
        info["bit_depth_reduced"] = True
    elif im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        im = Image.fromarray(np.clip(arr / top * 255 + 0.5, 0, 255).astype(np.uint8))
        info["bit_depth_reduced"] = True
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode == "PA":
        im = im.convert("RGBA")
    elif im.mode == "1":
        im = im.convert("L")
    if icc and im.mode in {"RGB", "RGBA", "L", "LA", "CMYK"}:
        im = _apply_icc(im, icc, info)
    if im.mode == "CMYK":
        # No usable profile: Pillow's plain conversion (its JPEG reader already undoes Adobe's inverted CMYK).
        im = im.convert("RGB")
        info["cmyk"] = True
    if im.mode == "LA":
        im = im.convert("RGBA")
    has_alpha = im.mode == "RGBA"
    info["has_alpha"] = has_alpha
    if has_alpha:
        flat = Image.new("RGB", im.size, tuple(int(c) for c in background))
        flat.paste(im, mask=im.getchannel("A"))
        im = flat
    elif im.mode != "RGB":
        im = im.convert("RGB")
    return im, info


def load_rgb(
    path: str | os.PathLike[str],
    background: tuple[int, int, int] | list[int] = (255, 255, 255),
    data: bytes | None = None,
) -> LoadedImage:
    """Fully decode an image to 8-bit sRGB. Raises ImageRejected (empty, undecodable, truncated, bomb)."""
    if data is None:
        data = _read_bytes(path)
    if not data:
        raise ImageRejected(EMPTY_FILE, "file has 0 bytes", path)
    try:
        with warnings.catch_warnings():
            # The limit is enforced below from the header; the warning itself would only add noise to logs.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
        _check_bomb(im.size, path)
        fmt = im.format or "UNKNOWN"
        frames = int(getattr(im, "n_frames", 1))
        webp_lossless = fmt == "WEBP" and _webp_is_lossless(data[:4096])
        im.load()  # full decode of the first frame: raises on truncated data (LOAD_TRUNCATED_IMAGES stays False)
        if fmt == "WEBP" and looks_truncated(data):  # libwebp may decode what is there; the container says more
            raise OSError(looks_truncated(data))
        mode = im.mode
        orientation = _exif_orientation(im)
        if orientation != 1:
            icc = im.info.get("icc_profile")
            im = ImageOps.exif_transpose(im)
            if icc:
                im.info["icc_profile"] = icc
        rgb_im, info = _to_rgb(im, tuple(background))
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected(DECOMPRESSION_BOMB, str(exc), path) from exc
    except OSError as exc:
        raise_if_fault(exc)
        msg = str(exc) or type(exc).__name__
        truncated = any(s in msg for s in ("truncated", "broken data stream")) or looks_truncated(data) is not None
        if truncated and "truncated" not in msg and looks_truncated(data):
            msg = f"{looks_truncated(data)} ({msg})"
        raise ImageRejected(TRUNCATED if truncated else UNDECODABLE, msg, path) from exc
    except ValueError as exc:
        msg = str(exc) or type(exc).__name__
        if "decompressed data too large" in msg.lower():  # Pillow's limit on compressed PNG text/ICC chunks
            raise ImageRejected(DECOMPRESSION_BOMB, msg, path) from exc
        raise ImageRejected(UNDECODABLE, msg, path) from exc
    except (SyntaxError, Image.UnidentifiedImageError, EOFError, IndexError, TypeError) as exc:
        raise ImageRejected(UNDECODABLE, str(exc) or type(exc).__name__, path) from exc
    info.update(
        frames=frames, exif_orientation=orientation, exif_transposed=orientation != 1, webp_lossless=webp_lossless
    )
    arr = np.asarray(rgb_im, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape:
        raise ImageRejected(UNDECODABLE, f"decoded to unexpected shape {arr.shape}", path)
    return LoadedImage(rgb=np.ascontiguousarray(arr), format=fmt, mode=mode, info=info)
