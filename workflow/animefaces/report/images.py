"""Contact sheets: small labelled thumbnails in a grid, built with Pillow only (the report env has no OpenCV).

A tile whose file is missing or cannot be decoded becomes a grey placeholder that says why, so one bad file never
breaks a report figure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_path
from ..decode import ImageRejected, load_rgb

BACKGROUND = (255, 255, 255)
PLACEHOLDER = (200, 200, 200)
TEXT = (20, 20, 20)
FONT_SIZE = 11
LINE_HEIGHT = 14


@dataclass
class Tile:
    """One thumbnail: an image file (or an already loaded image) and up to a few caption lines under it."""

    path: str | os.PathLike[str] | None = None
    lines: list[str] = field(default_factory=list)
    image: Image.Image | None = None


def font(size: int = FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError):  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def text_width(text: str, fnt=None) -> int:
    fnt = fnt or font()
    box = fnt.getbbox(text)
    return int(box[2] - box[0])


def fit_text(text: str, width: int, fnt=None) -> str:
    """Shorten ``text`` with an ellipsis so it is at most ``width`` pixels wide."""
    fnt = fnt or font()
    if text_width(text, fnt) <= width:
        return text
    while text and text_width(text + "…", fnt) > width:
        text = text[:-1]
    return text + "…"


def wrap(text: str, width: int, max_lines: int, sep: str = " ", fnt=None) -> list[str]:
    """Greedy word wrap of ``text`` into at most ``max_lines`` lines of ``width`` px (the last one shortened)."""
    fnt = fnt or font()
    lines: list[str] = []
    line = ""
    for word in text.split(sep):
        trial = f"{line}{sep}{word}" if line else word
        if line and text_width(trial, fnt) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [fit_text(sep.join(lines[max_lines - 1 :]) + " ", width, fnt)]
    return [fit_text(x.strip(), width, fnt) for x in lines]


def placeholder(size: int, message: str) -> Image.Image:
    im = Image.new("RGB", (size, size), PLACEHOLDER)
    draw = ImageDraw.Draw(im)
    fnt = font()
    lines = wrap(message, size - 8, max(1, (size - 8) // LINE_HEIGHT), fnt=fnt)
    y = max(4, (size - LINE_HEIGHT * len(lines)) // 2)
    for text in lines:
        draw.text((4, y), text, fill=TEXT, font=fnt)
        y += LINE_HEIGHT
    return im


def load_image(path: str | os.PathLike[str] | None) -> tuple[Image.Image | None, str]:
    """Decode an image for display (sRGB, EXIF-upright); returns (image, "") or (None, why not)."""
    if path is None or (isinstance(path, float)) or str(path) in {"", "nan", "None", "<NA>"}:
        return None, "no image recorded"
    p = Path(path)
    if not p.is_file():
        return None, "file not found"
    try:
        return Image.fromarray(load_rgb(p).rgb), ""
    except ImageRejected as exc:
        return None, exc.reason
    except Exception as exc:  # noqa: BLE001 - a display helper must not fail the report on one odd file
        return None, type(exc).__name__


def thumbnail(im: Image.Image, size: int) -> Image.Image:
    """Scale ``im`` (down or up) to fit ``size`` x ``size`` keeping its aspect ratio, centred on a white square."""
    scale = size / max(im.width, im.height)
    new = (max(1, min(size, round(im.width * scale))), max(1, min(size, round(im.height * scale))))
    if new != im.size:
        im = im.resize(new, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    out = Image.new("RGB", (size, size), BACKGROUND)
    out.paste(im, ((size - im.width) // 2, (size - im.height) // 2))
    return out


def tile_image(tile: Tile, size: int) -> Image.Image:
    im = tile.image
    if im is None:
        im, why = load_image(tile.path)
        if im is None:
            return placeholder(size, f"({why})")
    return thumbnail(im.convert("RGB"), size)


def sheet_size(n: int, cols: int, tile: int, lines: int, pad: int, title: bool) -> tuple[int, int]:
    """Pixel size of a contact sheet with ``n`` tiles (``cols`` per row, ``lines`` caption lines per tile)."""
    cols = max(1, min(cols, n)) if n else 1
    rows = max(1, -(-n // cols))
    cell_h = tile + lines * LINE_HEIGHT
    width = cols * tile + (cols + 1) * pad
    height = rows * cell_h + (rows + 1) * pad + (LINE_HEIGHT + pad if title else 0)
    return width, height


def contact_sheet(
    tiles: Sequence[Tile],
    cols: int = 8,
    tile: int = 128,
    title: str | None = None,
    lines: int | None = None,
    pad: int = 4,
    empty_message: str = "nothing to show",
) -> Image.Image:
    """A grid of thumbnails with caption lines under each; ``lines`` defaults to the longest caption."""
    if lines is None:
        lines = max((len(t.lines) for t in tiles), default=0)
    if not tiles:
        tiles = [Tile(image=placeholder(tile, empty_message))]
    n = len(tiles)
    cols = max(1, min(cols, n))
    width, height = sheet_size(n, cols, tile, lines, pad, bool(title))
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    fnt = font()
    y0 = pad
    if title:
        draw.text((pad, pad), fit_text(title, width - 2 * pad, fnt), fill=TEXT, font=fnt)
        y0 += LINE_HEIGHT + pad
    cell_h = tile + lines * LINE_HEIGHT
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        x = pad + c * (tile + pad)
        y = y0 + r * (cell_h + pad)
        sheet.paste(tile_image(t, tile), (x, y))
        for k, text in enumerate(t.lines[:lines]):
            draw.text((x, y + tile + k * LINE_HEIGHT), fit_text(text, tile, fnt), fill=TEXT, font=fnt)
    return sheet


def hstack(images: Sequence[Image.Image], pad: int = 4) -> Image.Image:
    """Images side by side, top-aligned, on white."""
    width = sum(im.width for im in images) + pad * (len(images) + 1)
    height = max(im.height for im in images) + 2 * pad
    out = Image.new("RGB", (width, height), BACKGROUND)
    x = pad
    for im in images:
        out.paste(im, (x, pad))
        x += im.width + pad
    return out


def vstack(images: Sequence[Image.Image], pad: int = 4) -> Image.Image:
    """Images one under the other, left-aligned, on white."""
    width = max(im.width for im in images) + 2 * pad
    height = sum(im.height for im in images) + pad * (len(images) + 1)
    out = Image.new("RGB", (width, height), BACKGROUND)
    y = pad
    for im in images:
        out.paste(im, (pad, y))
        y += im.height + pad
    return out


def with_title(im: Image.Image, title: str, pad: int = 4) -> Image.Image:
    """``im`` with a one-line title above it (the canvas widens if the title needs it)."""
    fnt = font()
    width = max(im.width, min(text_width(title, fnt) + 2 * pad, 4 * im.width))
    out = Image.new("RGB", (width, im.height + LINE_HEIGHT + 2 * pad), BACKGROUND)
    ImageDraw.Draw(out).text((pad, pad), fit_text(title, width - 2 * pad, fnt), fill=TEXT, font=fnt)
    out.paste(im, (0, LINE_HEIGHT + 2 * pad))
    return out


def save_png(im: Image.Image, path: str | os.PathLike[str]) -> None:
    """Write a PNG atomically."""
    with atomic_path(path, suffix=".png") as tmp:
        im.save(tmp, format="PNG", optimize=True)
