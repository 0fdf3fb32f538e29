"""Robust image decoding shared by every stage that opens an image.

Two entry points:
- :func:`read_bgr` for face detection: fast OpenCV decode (EXIF orientation applied), a truncation check, and a
  Pillow retry for what OpenCV cannot read (GIF, some PNG/WebP variants).
- :func:`load_rgb` for cleaning and normalisation: full decode through Pillow with EXIF orientation, ICC -> sRGB,
  CMYK -> RGB, 16-bit -> 8-bit, first frame of animations, alpha flattened onto a background.

Failures raise :class:`ImageRejected` whose ``reason`` is a ledger reason code, so callers record a row
instead of crashing.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps

EMPTY_FILE = "empty_file"
UNDECODABLE = "undecodable"
TRUNCATED = "truncated"
DECOMPRESSION_BOMB = "decompression_bomb"

LOSSLESS_FORMATS = {"PNG", "GIF", "BMP", "TIFF", "PPM", "QOI"}
_SRGB = ImageCms.createProfile("sRGB")


class ImageRejected(Exception):
    """An image that cannot be used; ``reason`` is the ledger reason code, ``detail`` says why."""

    def __init__(self, reason: str, detail: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(f"{path}: {reason}: {detail}" if path else f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class LoadedImage:
    rgb: np.ndarray  # H x W x 3, uint8, sRGB
    format: str  # container format Pillow detected (e.g. "JPEG", "PNG"), independent of the file name
    mode: str  # original Pillow mode ("RGB", "CMYK", "RGBA", "I;16", "P", ...)
    info: dict = field(default_factory=dict)  # has_alpha, icc_converted, exif_transposed, frames, lossless

    @property
    def lossless(self) -> bool:
        return self.format in LOSSLESS_FORMATS or (self.format == "WEBP" and self.info.get("webp_lossless", False))


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    data = Path(path).read_bytes()
    if not data:
        raise ImageRejected(EMPTY_FILE, "file has 0 bytes", path)
    return data


def looks_truncated(data: bytes) -> str | None:
    """A cheap end-of-stream check for the two formats OpenCV decodes leniently (it silently pads truncated
    JPEGs with grey). Returns a description of the problem or None."""
    if data[:3] == b"\xff\xd8\xff":
        tail = data.rstrip(b"\x00")[-2:]
        if tail != b"\xff\xd9":
            return "JPEG has no end-of-image marker"
    elif data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-32:]:
        return "PNG has no IEND chunk"
    return None


def read_bgr(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode for detection: H x W x 3 uint8 BGR, EXIF orientation applied. Raises ImageRejected."""
    import cv2

    data = _read_bytes(path)
    problem = looks_truncated(data)
    if problem:
        raise ImageRejected(TRUNCATED, problem, path)
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # applies EXIF orientation
    if img is not None and img.ndim == 3 and img.shape[2] == 3:
        return img
    loaded = load_rgb(path, data=data)
    return np.ascontiguousarray(loaded.rgb[:, :, ::-1])


def _to_rgb(im: Image.Image, background: tuple[int, int, int]) -> tuple[Image.Image, dict]:
    info: dict = {}
    icc = im.info.get("icc_profile")
    if im.mode in {"I;16", "I;16B", "I;16L", "I"}:
        arr = np.asarray(im, dtype=np.uint32)
        scale = 65535 if arr.max(initial=0) > 255 else 255
        im = Image.fromarray((arr * 255 // scale).astype(np.uint8), "L")
        info["bit_depth_reduced"] = True
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in {"LA", "PA"}:
        im = im.convert("RGBA")
    has_alpha = im.mode == "RGBA"
    info["has_alpha"] = has_alpha
    if icc and im.mode in {"RGB", "RGBA", "CMYK", "L"}:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out_mode = "RGBA" if has_alpha else "RGB"
            im = ImageCms.profileToProfile(im, src, _SRGB, outputMode=out_mode)
            info["icc_converted"] = True
        except (ImageCms.PyCMSError, OSError, ValueError) as exc:
            info["icc_error"] = str(exc)
    if im.mode == "CMYK":
        # Adobe CMYK JPEGs are stored inverted; Pillow's plain convert handles the common (non-ICC) case.
        im = im.convert("RGB")
        info["cmyk"] = True
    if im.mode == "RGBA":
        flat = Image.new("RGB", im.size, background)
        flat.paste(im, mask=im.getchannel("A"))
        im = flat
    elif im.mode != "RGB":
        im = im.convert("RGB")
    return im, info


def load_rgb(
    path: str | os.PathLike[str],
    background: tuple[int, int, int] = (255, 255, 255),
    data: bytes | None = None,
) -> LoadedImage:
    """Fully decode an image to 8-bit sRGB. Raises ImageRejected (empty, undecodable, truncated, bomb)."""
    if data is None:
        data = _read_bytes(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            fmt = im.format or "UNKNOWN"
            frames = getattr(im, "n_frames", 1)
            webp_lossless = fmt == "WEBP" and b"VP8L" in data[:64]
            im.load()  # full decode: raises on truncated data (LOAD_TRUNCATED_IMAGES stays False)
            mode = im.mode
            try:
                transposed = ImageOps.exif_transpose(im)
            except Exception:  # a broken EXIF block must not lose the picture
                transposed = None
            exif_rotated = transposed is not None and transposed is not im and transposed.size != (0, 0)
            if transposed is not None:
                icc = im.info.get("icc_profile")
                im = transposed
                if icc:
                    im.info["icc_profile"] = icc
            rgb_im, info = _to_rgb(im, background)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(DECOMPRESSION_BOMB, str(exc), path) from exc
    except OSError as exc:
        msg = str(exc)
        reason = TRUNCATED if "truncated" in msg or "broken data stream" in msg else UNDECODABLE
        raise ImageRejected(reason, msg, path) from exc
    except (SyntaxError, ValueError, Image.UnidentifiedImageError, EOFError) as exc:
        raise ImageRejected(UNDECODABLE, str(exc) or type(exc).__name__, path) from exc
    info.update(frames=frames, exif_transposed=exif_rotated, webp_lossless=webp_lossless)
    arr = np.asarray(rgb_im, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape:
        raise ImageRejected(UNDECODABLE, f"decoded to unexpected shape {arr.shape}", path)
    return LoadedImage(rgb=np.ascontiguousarray(arr), format=fmt, mode=mode, info=info)
