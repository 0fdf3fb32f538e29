"""Procedural anime-style characters, backgrounds and scenes for the demo corpus (Pillow + numpy, no assets).

The face design is what nagadomi's lbpcascade_animeface responds to: pointed bangs and side locks with dark
outlines, large eyes with a thick dark upper lid, a dark upper iris and a white highlight, and a V-shaped chin
(a plain cartoon face - oval head, cap of hair, dot eyes - is never found).

Two measured facts shape the renderer:
- The cascade shrinks the image with plain bilinear sampling, which aliases away thin outlines of big faces
  (faces > 200 px were found only about half the time). A slight blur proportional to the face size (sigma =
  ``BLUR`` x face width, like the soft line art of real illustrations) makes detection size-independent.
- Histogram equalisation amplifies pixel noise on flat areas, so colour variety comes from smooth gradients,
  never from noise.

Each character is drawn supersampled (2-4x, box-downsampled, i.e. anti-aliased) in its own patch and
alpha-composited, so the cost grows with the face size, not the canvas size. Geometry is in units of
``u`` = half the face width; the origin is the centre of the eye line area, see ``BOX``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

RGB = tuple[int, int, int]

# The recorded face box in units of u (x, y, w, h): cheek to cheek, mid-forehead to the chin tip. The cascade's
# own boxes are about 1.24x wider and centred 0.2 face widths lower (they include the chin and neck); the IoU
# between the two is about 0.65.
BOX = (-1.0, -0.85, 2.0, 2.0)
# Patch extent in u (left, right, top, bottom): hair top, twintails, shoulders; the torso runs off the bottom.
EXTENT = (-2.9, 2.9, -2.5, 6.0)
OUTLINE: RGB = (38, 26, 34)
EYE_X, EYE_Y, EYE_W, EYE_H = 0.45, 0.2, 0.3, 0.34
LID = 0.11  # upper lid thickness (u)
BANG_TIP = -0.12  # where the bang points end (u), just above the eyes
LW = 0.07  # outline width (u)
BLUR = 0.008  # Gaussian sigma as a fraction of the face width (see the module docstring)


@dataclass(frozen=True)
class Look:
    """Everything that fixes how one character is drawn: colours and style from the cast, jitter per post."""

    hair: RGB
    eyes: RGB
    skin: RGB = (255, 228, 212)
    clothes: RGB = (70, 90, 160)
    hair_style: str = "long"  # long | short | twintails | ponytail
    ahoge: bool = False
    bang_count: int = 5
    eye_scale: float = 1.0
    eye_height: float = 1.0
    face_width: float = 1.0
    chin: float = 1.0
    mouth: str = "smile"  # smile | open | shout | line
    blush: bool = False
    lock_length: float = 1.0
    bang_jitter: tuple[float, ...] = field(default_factory=tuple)
    shine: float = 0.35
    yaw: float = 0.0  # head turn in degrees (features slide over a cylinder: a three-quarter view)
    bang_style: str = "pointed"  # pointed | parted | swept
    bang_length: float = 0.0  # shifts the bang tips down (+) or up (-), in u
    eye_shift: tuple[float, float] = (0.0, 0.0)  # eye spacing and height offsets, in u
    shadow: float = 0.0  # cel shadow on one cheek: -1 left ... +1 right, 0 none
    accessory: str = "none"  # none | bow | clip
    accessory_colour: RGB = (220, 60, 80)
    light: tuple[float, float] = (0.0, 0.0)  # direction (degrees) and strength of a soft side light
    collar: str = "v"  # v | sailor | ribbon | high


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def darker(c: RGB, f: float) -> RGB:
    return tuple(int(x * f) for x in c)  # type: ignore[return-value]


def _bezier(p0, p1, p2, n: int = 12) -> list[tuple[float, float]]:
    out = []
    for i in range(n + 1):
        t = i / n
        a, b, c = (1 - t) ** 2, 2 * (1 - t) * t, t * t
        out.append((a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1]))
    return out


class _Pen:
    """Draws in face units onto a supersampled RGBA patch: ``k`` pixels per u, origin at pixel ``(ox, oy)``,
    the geometry tilted by ``angle`` degrees (counter-clockwise on screen) about the origin."""

    def __init__(self, size: tuple[int, int], ox: float, oy: float, k: float, angle: float = 0.0) -> None:
        self.im = Image.new("RGBA", size, (0, 0, 0, 0))
        self.d = ImageDraw.Draw(self.im)
        t = math.radians(angle)
        self.ox, self.oy, self.k = ox, oy, k
        self.c, self.s = math.cos(t) * k, math.sin(t) * k
        self.yaw = 0.0  # radians; set per layer (the face turns more than the shoulders)

    def turn(self, x: float) -> float:
        """Horizontal position of a point on a vertical cylinder (radius ``_R``) turned by ``self.yaw``."""
        if not self.yaw:
            return x
        if abs(x) <= _R:
            return _R * math.sin(math.asin(x / _R) + self.yaw)
        edge = math.copysign(_R, x)
        return x - edge + _R * math.sin(math.copysign(math.pi / 2, x) + self.yaw)

    def p(self, pts) -> list[tuple[float, float]]:
        c, s, ox, oy = self.c, self.s, self.ox, self.oy
        out = []
        for x, y in pts:
            x = self.turn(x)
            out.append((ox + x * c + y * s, oy - x * s + y * c))
        return out

    def w(self, width_u: float) -> int:
        return max(1, int(round(width_u * self.k)))

    def poly(self, pts, fill, outline=None, width: float = 0.0) -> None:
        pp = self.p(pts)
        self.d.polygon(pp, fill=fill)
        if outline is not None and width > 0:
            self.d.line(pp + pp[:2], fill=outline, width=self.w(width), joint="curve")

    def ellipse(self, cx, cy, rx, ry, fill, outline=None, width: float = 0.0) -> None:
        n = 28
        pts = [(cx + rx * _COS[i], cy + ry * _SIN[i]) for i in range(n)]
        self.poly(pts, fill, outline, width)

    def line(self, pts, fill, width: float) -> None:
        self.d.line(self.p(pts), fill=fill, width=self.w(width), joint="curve")


_R = 1.15
_COS = [math.cos(2 * math.pi * i / 28) for i in range(28)]
_SIN = [math.sin(2 * math.pi * i / 28) for i in range(28)]


def _draw_back(pen: _Pen, look: Look, hair_dark: RGB, hair_line: RGB) -> None:
    lw = LW
    if look.hair_style in ("long", "ponytail"):
        length = 2.2 * look.lock_length if look.hair_style == "long" else 1.3
        back = [(-1.35, -0.4), (-1.5, 0.8), (-1.45, 1.2 + length * 0.5), (-1.1, 1.0 + length), (0, 1.1 + length * 0.9)]
        back += [(1.1, 1.0 + length), (1.45, 1.2 + length * 0.5), (1.5, 0.8), (1.35, -0.4)]
        pen.poly(back, hair_dark, hair_line, lw)
    if look.hair_style == "twintails":
        for s in (-1, 1):
            tail = [(s * 1.0, -0.9), (s * 1.9, -0.7), (s * 2.25, 0.6), (s * 2.0, 2.2), (s * 1.55, 2.9)]
            tail += [(s * 1.45, 1.6), (s * 1.2, 0.2)]
            pen.poly(tail, hair_dark, hair_line, lw)
            pen.ellipse(s * 1.05, -0.85, 0.16, 0.14, look.clothes, OUTLINE, 0.03)
    if look.hair_style == "ponytail":
        pen.poly([(0.8, -1.2), (1.7, -1.0), (2.0, 0.3), (1.6, 1.9), (1.3, 0.6)], hair_dark, hair_line, lw)
    # shoulders, collar, neck
    body = [(-2.3, 6.0), (-2.3, 2.6), (-2.1, 2.3), (-1.0, 1.75), (1.0, 1.75), (2.1, 2.3), (2.3, 2.6), (2.3, 6.0)]
    pen.poly(body, look.clothes, OUTLINE, lw)
    neck = mix(look.skin, (200, 120, 130), 0.25)
    if look.collar == "high":  # turtleneck: the clothes reach the jaw
        pen.poly([(-0.45, 0.95), (-0.5, 1.9), (0.5, 1.9), (0.45, 0.95)], darker(look.clothes, 0.85), OUTLINE, lw)
        return
    if look.collar == "sailor":
        trim = (250, 250, 250) if sum(look.clothes) < 360 else (40, 50, 90)
        pen.poly([(-1.7, 1.95), (-0.55, 1.75), (0, 2.7), (0.55, 1.75), (1.7, 1.95), (1.2, 2.5), (0, 3.0)], trim)
        pen.poly(
            [(-1.2, 2.5), (-1.7, 1.95), (-0.55, 1.75), (0, 2.7), (0.55, 1.75), (1.7, 1.95), (1.2, 2.5)],
            trim,
            OUTLINE,
            lw,
        )
        pen.poly([(-0.25, 2.45), (0.25, 2.45), (0.0, 2.85)], (210, 40, 50), OUTLINE, 0.04)  # neckerchief
    elif look.collar == "ribbon":
        pen.poly([(-0.62, 1.75), (0, 2.3), (0.62, 1.75)], (250, 250, 250), OUTLINE, lw)
        rc = look.accessory_colour
        for d in (-1, 1):
            pen.poly([(0, 2.2), (d * 0.45, 1.95), (d * 0.5, 2.45)], rc, OUTLINE, 0.04)
    else:
        pen.poly([(-0.62, 1.75), (0, 2.3), (0.62, 1.75)], (250, 250, 250), OUTLINE, lw)
    pen.poly([(-0.3, 0.8), (-0.32, 1.8), (0, 2.05), (0.32, 1.8), (0.3, 0.8)], neck)
    pen.line([(-0.3, 0.8), (-0.32, 1.8)], OUTLINE, lw)
    pen.line([(0.3, 0.8), (0.32, 1.8)], OUTLINE, lw)


def _draw_face(pen: _Pen, look: Look, hair_line: RGB) -> None:
    fw, skin = look.face_width, look.skin
    chin_y = 1.15 + 0.15 * (look.chin - 1)
    face = _bezier((-fw, -0.3), (-1.08 * fw, -1.25), (0, -1.3))[:-1]
    face += _bezier((0, -1.3), (1.08 * fw, -1.25), (fw, -0.3))[:-1]
    face += _bezier((fw, -0.3), (0.98 * fw, 0.5), (0.5 * fw, 0.92))[:-1]
    face += [(0.5 * fw, 0.92), (0, chin_y)]
    face += _bezier((-0.5 * fw, 0.92), (-0.98 * fw, 0.5), (-fw, -0.3))
    pen.poly(face, skin, OUTLINE, LW)
    if look.blush:
        for s in (-1, 1):
            pen.ellipse(s * 0.55, 0.62, 0.2, 0.07, mix(skin, (240, 110, 120), 0.45))

    if look.shadow:  # cel shadow down one cheek
        sd = math.copysign(1.0, look.shadow)
        w0 = 1.0 - 0.45 * abs(look.shadow)
        shade = [(sd * w0, -0.6), (sd * 1.05, -0.6), (sd * 1.0, 0.3), (sd * 0.5, 0.92), (0.0, chin_y)]
        shade += [(sd * 0.25, 0.9), (sd * w0 * 0.85, 0.45)]
        pen.poly(shade, mix(skin, (190, 120, 140), 0.3))
    es, eh = EYE_W * look.eye_scale, EYE_H * look.eye_scale * look.eye_height
    ey = EYE_Y + look.eye_shift[1]
    iris_dark = mix(darker(look.eyes, 0.25), OUTLINE, 0.5)
    for s in (-1, 1):
        ex = s * (EYE_X + look.eye_shift[0])
        pen.ellipse(ex, ey, es, eh, (252, 252, 250))
        ir_x, ir_y = es * 0.8, eh * 0.92  # iris: dark top, coloured bottom
        pen.ellipse(ex, ey + eh * 0.05, ir_x, ir_y, darker(look.eyes, 0.75))
        pen.ellipse(ex, ey + eh * 0.3, ir_x * 0.8, ir_y * 0.6, look.eyes)
        top = [(ex - ir_x, ey - eh * 0.2), (ex - ir_x * 0.7, ey - eh * 0.8), (ex + ir_x * 0.7, ey - eh * 0.8)]
        top += [(ex + ir_x, ey - eh * 0.2), (ex + ir_x * 0.6, ey + eh * 0.1), (ex - ir_x * 0.6, ey + eh * 0.1)]
        pen.poly(top, iris_dark)
        pen.ellipse(ex, ey + eh * 0.1, ir_x * 0.38, ir_y * 0.4, (20, 14, 22))  # pupil
        pen.ellipse(ex - s * ir_x * 0.3, ey - eh * 0.3, ir_x * 0.32, ir_y * 0.25, (255, 255, 255))  # highlight
        pen.ellipse(ex + s * ir_x * 0.35, ey + eh * 0.45, ir_x * 0.14, ir_y * 0.1, (255, 255, 255))
        # thick dark upper lid with a flick at the outer corner, thin lower lid, eyebrow
        lid = _bezier((ex - s * es * 1.15, ey - eh * 0.2), (ex, ey - eh * 1.4), (ex + s * es * 1.2, ey - eh * 0.5))
        pen.line(lid, OUTLINE, LID * look.eye_scale)
        pen.line([(ex + s * es * 1.15, ey - eh * 0.5), (ex + s * es * 1.5, ey - eh * 0.8)], OUTLINE, 0.06)
        pen.line([(ex - es * 0.5, ey + eh * 1.02), (ex + es * 0.5, ey + eh * 1.02)], darker(skin, 0.55), 0.03)
        pen.line(_bezier((ex - s * 0.2, -0.3), (ex + s * 0.05, -0.4), (ex + s * 0.3, -0.34), 6), hair_line, 0.04)

    my = 0.82
    pen.line([(0.02, 0.6), (-0.02, 0.65)], darker(skin, 0.6), 0.03)
    if look.mouth == "open":
        pen.poly([(-0.13, my - 0.02), (0.13, my - 0.02), (0.0, my + 0.11)], (150, 50, 60), OUTLINE, 0.03)
    elif look.mouth == "shout":  # wide open
        mouth = _bezier((-0.2, my - 0.05), (0, my + 0.35), (0.2, my - 0.05), 10)
        pen.poly(mouth, (120, 30, 45), OUTLINE, 0.035)
        pen.ellipse(0, my + 0.1, 0.09, 0.04, (230, 110, 120))
    elif look.mouth == "smile":
        pen.line(_bezier((-0.14, my - 0.02), (0, my + 0.07), (0.14, my - 0.02), 6), OUTLINE, 0.035)
    else:
        pen.line([(-0.09, my), (0.09, my)], OUTLINE, 0.035)


def _draw_front_hair(pen: _Pen, look: Look, hair_line: RGB) -> None:
    hair, lw = look.hair, LW
    cap = _bezier((-1.22, -0.25), (-1.3, -1.7), (0, -1.68))[:-1] + _bezier((0, -1.68), (1.3, -1.7), (1.22, -0.25))
    pen.poly(cap + [(1.0, -0.85), (-1.0, -0.85)], hair, hair_line, lw)
    n = look.bang_count
    jit = look.bang_jitter or (0.0,)
    xs = np.linspace(-1.08, 1.08, n + 1)
    swept = 0.28 * (1 if jit[0] >= 0 else -1) if look.bang_style == "swept" else 0.0
    for i in range(n):
        x0, x1 = float(xs[i]), float(xs[i + 1])
        mid = (x0 + x1) / 2
        if look.bang_style == "parted":  # strands fall away from a centre parting
            tip_x = mid + 0.14 * (1 if mid > 0 else -1) * (0.5 + abs(mid))
        else:  # pointed: tips lean slightly inwards; swept: all to one side
            tip_x = mid + 0.1 * (1 if mid < 0 else -1) + swept
        tip_x += jit[i % len(jit)] * 0.08
        tip_y = BANG_TIP + look.bang_length + 0.08 * jit[(i + 1) % len(jit)] + (0.06 if i in (0, n - 1) else 0.0)
        if look.bang_style == "parted" and abs(mid) < 0.25:
            tip_y -= 0.3
        if swept:
            tip_y += 0.12 * swept * mid
        pen.poly([(x0 - 0.03, -1.0), (tip_x, tip_y), (x1 + 0.03, -1.0)], hair, hair_line, lw)
    pen.poly([(float(xs[0]), -1.1), (float(xs[-1]), -1.1), (float(xs[-1]), -0.95), (float(xs[0]), -0.95)], hair)
    length = 1.2 * look.lock_length if look.hair_style != "short" else 0.75
    for s in (-1, 1):
        lock = [(s * 0.8, -0.95), (s * 1.3, -0.75), (s * 1.28, 0.4), (s * 1.15, 0.7 + length * 0.6)]
        lock += [(s * 1.02, 0.9 + length), (s * 0.92, 0.4 + length * 0.5), (s * 0.9, 0.0)]
        pen.poly(lock, hair, hair_line, lw)
    if look.ahoge:
        curl = _bezier((0.05, -1.65), (0.4, -2.15), (0.1, -2.1), 8)
        pen.line(curl, hair_line, 0.09)
        pen.line(curl, hair, 0.05)
    pen.line(_bezier((-0.7, -1.15), (0, -1.35), (0.7, -1.15), 10), mix(hair, (255, 255, 255), look.shine), 0.06)
    side = 1 if jit[-1] >= 0 else -1
    if look.accessory == "bow":
        bx, by = side * 0.95, -1.25
        for d in (-1, 1):
            wing = [(bx, by), (bx + d * 0.38, by - 0.22), (bx + d * 0.42, by + 0.2)]
            pen.poly(wing, look.accessory_colour, OUTLINE, 0.04)
        pen.ellipse(bx, by, 0.09, 0.09, darker(look.accessory_colour, 0.8), OUTLINE, 0.03)
    elif look.accessory == "clip":
        cx, cy = side * 0.62, -0.55
        clip = [(cx - 0.22, cy - 0.09), (cx + 0.22, cy - 0.16), (cx + 0.24, cy - 0.06), (cx - 0.2, cy + 0.02)]
        pen.poly(clip, look.accessory_colour, OUTLINE, 0.03)


def draw_character(
    look: Look, face_px: float, angle: float = 0.0, bottom_u: float | None = None
) -> tuple[Image.Image, tuple[float, float]]:
    """Draw one character (hair, head, shoulders) whose face box is ``face_px`` wide.

    Returns a premultiplied float32 RGBA patch (H x W x 4, 0..255) and the pixel position of the geometric
    origin in it (the face box is ``BOX`` x u around it, u = face_px / 2). ``angle`` tilts the whole figure
    (degrees, counter-clockwise) about the origin; ``bottom_u`` cuts the patch below that many u (the part
    under the canvas edge)."""
    u_px = face_px / BOX[2]
    xl, xr, yt, yb = EXTENT
    if bottom_u is not None:
        yb = max(1.5, min(yb, bottom_u))
    ss = 4 if face_px < 100 else (3 if face_px < 200 else 2)
    k = u_px * ss
    size = (int(math.ceil((xr - xl) * k)), int(math.ceil((yb - yt) * k)))
    pen = _Pen(size, -xl * k, -yt * k, k, angle)
    hair_dark = darker(look.hair, 0.62)
    hair_line = mix(darker(look.hair, 0.3), OUTLINE, 0.6)
    pen.yaw = math.radians(look.yaw) * 0.4
    _draw_back(pen, look, hair_dark, hair_line)
    pen.yaw = math.radians(look.yaw)
    _draw_face(pen, look, hair_line)
    _draw_front_hair(pen, look, hair_line)

    # Box-filter each channel of the hard-edged drawing (anti-aliasing). Every drawn pixel is opaque and the
    # rest is (0, 0, 0, 0), so the channel means are exactly the premultiplied colours.
    patch = np.dstack([np.asarray(band.reduce(ss)) for band in pen.im.split()]).astype(np.float32)
    # soft shading (top to bottom, plus a light from one side): colour variety without noise
    ys = (np.arange(patch.shape[0], dtype=np.float32) + 0.5) / u_px + yt
    xs = (np.arange(patch.shape[1], dtype=np.float32) + 0.5) / u_px + xl
    a, strength = math.radians(look.light[0]), look.light[1]
    light = 1.0 + strength * np.clip(xs[None, :] * math.cos(a) + ys[:, None] * math.sin(a), -2.0, 2.0) / 2.0
    light *= np.linspace(1.03, 0.88, patch.shape[0], dtype=np.float32)[:, None]
    patch[:, :, :3] *= light[:, :, None]
    if BLUR * face_px > 0.6:  # channel-wise blur of premultiplied colours is the correct alpha blur
        im = Image.fromarray(np.clip(patch + 0.5, 0, 255).astype(np.uint8))
        patch = np.asarray(soft_blur(im, BLUR * face_px), np.float32)
    return patch, (-xl * u_px, -yt * u_px)


def soft_blur(im: Image.Image, sigma: float) -> Image.Image:
    """Gaussian blur; wide ones run at half resolution (4x fewer pixels) and are scaled back bilinearly."""
    if sigma < 1.6:
        return im.filter(ImageFilter.GaussianBlur(sigma))
    small = im.reduce(2)  # a 2x2 box: variance 1/4 px^2 at full resolution
    small = small.filter(ImageFilter.GaussianBlur(math.sqrt(sigma**2 - 0.25) / 2))
    return small.resize(im.size, Image.Resampling.BILINEAR)


def composite(canvas: np.ndarray, patch: np.ndarray, left: int, top: int) -> None:
    """Alpha-composite a premultiplied float RGBA patch onto a float RGB canvas in place (clipped)."""
    h, w = canvas.shape[:2]
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(w, left + patch.shape[1]), min(h, top + patch.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    p = patch[y0 - top : y1 - top, x0 - left : x1 - left]
    region = canvas[y0:y1, x0:x1]
    region *= 1.0 - p[:, :, 3:] / 255.0
    region += p[:, :, :3]


def face_box(origin_xy: tuple[float, float], face_px: float, angle: float, yaw: float = 0.0) -> tuple[int, ...]:
    """The face box (x, y, w, h, integer pixels) of a character whose origin lands at ``origin_xy``.

    The box is axis-aligned and keeps its size; a head turn slides it sideways with the features, a tilt
    moves its centre (rotated about the origin)."""
    u = face_px / BOX[2]
    bx, by, bw, bh = BOX
    cx = (bx + bw / 2 + _R * math.sin(math.radians(yaw))) * u
    cy = (by + bh / 2) * u
    t = math.radians(angle)  # same convention as _Pen.p
    rx = cx * math.cos(t) + cy * math.sin(t)
    ry = -cx * math.sin(t) + cy * math.cos(t)
    x = origin_xy[0] + rx - bw * u / 2
    y = origin_xy[1] + ry - bh * u / 2
    return round(x), round(y), round(bw * u), round(bh * u)


# ----------------------------------------------------------------------------------------------- backgrounds

BACKGROUNDS = ("simple", "gradient", "radial", "stripes", "dots", "sky", "room", "bokeh")
BACKGROUND_TAGS = {
    "simple": ["simple_background"],
    "gradient": ["gradient_background"],
    "radial": ["gradient_background"],
    "stripes": ["striped_background"],
    "dots": ["polka_dot_background"],
    "sky": ["sky", "cloud", "blue_sky", "outdoors"],
    "room": ["indoors", "window"],
    "bokeh": ["bokeh", "blurry_background"],
}


def _ramp(h: int, w: int, top: RGB, bottom: RGB) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    col = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.broadcast_to(col, (h, w, 3)).copy()


def _blur(im: Image.Image, sigma: float) -> np.ndarray:
    return np.asarray(soft_blur(im, sigma), np.float32)


def _rand_colour(rng: np.random.Generator, lo: int = 60, hi: int = 250) -> RGB:
    return tuple(int(x) for x in rng.integers(lo, hi, 3))  # type: ignore[return-value]


def background(kind: str, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """An RGB background of the given kind (one of ``BACKGROUNDS``), always with some smooth gradient."""
    w, h = size
    if kind == "simple":
        c = _rand_colour(rng, 150, 256)
        arr = _ramp(h, w, mix(c, (255, 255, 255), 0.15), darker(c, 0.92))
    elif kind == "gradient":
        arr = _ramp(h, w, _rand_colour(rng, 120), _rand_colour(rng, 60))
    elif kind == "radial":
        c0, c1 = _rand_colour(rng, 170, 256), _rand_colour(rng, 40, 180)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.1, 0.6) * h
        r = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / max(w, h)
        t = np.clip(r / 0.9, 0, 1)[:, :, None]
        arr = np.asarray(c0, np.float32) * (1 - t) + np.asarray(c1, np.float32) * t
    elif kind == "stripes":
        c0 = _rand_colour(rng, 150, 256)
        c1 = mix(c0, _rand_colour(rng, 60, 256), 0.35)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        period = rng.uniform(0.06, 0.14) * max(w, h)
        s = (np.sin((xx + yy) * (2 * np.pi / period)) > 0)[:, :, None]
        arr = np.where(s, np.asarray(c0, np.float32), np.asarray(c1, np.float32)) * _ramp(h, w, (1, 1, 1), (0.9,) * 3)
    elif kind == "dots":
        base = _rand_colour(rng, 160, 256)
        im = Image.fromarray(_ramp(h, w, base, darker(base, 0.9)).astype(np.uint8))
        d = ImageDraw.Draw(im)
        dot = mix(base, _rand_colour(rng, 40, 256), 0.4)
        step = max(12, int(rng.uniform(0.05, 0.1) * max(w, h)))
        rad = step * rng.uniform(0.15, 0.3)
        for j, y in enumerate(range(step // 2, h + step, step)):
            for x in range(step // 2 + (step // 2 if j % 2 else 0), w + step, step):
                d.ellipse([x - rad, y - rad, x + rad, y + rad], fill=dot)
        arr = _blur(im, 1.0)
    elif kind == "sky":
        arr = _ramp(h, w, (90, 150, 230), (200, 225, 250))
        im = Image.fromarray(arr.astype(np.uint8))
        clouds = Image.new("L", size, 0)
        d = ImageDraw.Draw(clouds)
        for _ in range(int(rng.integers(3, 8))):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h * 0.6)
            for _ in range(4):
                rx, ry = rng.uniform(0.04, 0.12) * w, rng.uniform(0.02, 0.06) * h
                ox, oy = rng.normal(0, rx * 0.6), rng.normal(0, ry * 0.4)
                d.ellipse([cx + ox - rx, cy + oy - ry, cx + ox + rx, cy + oy + ry], fill=230)
        clouds = Image.fromarray(_blur(clouds, max(2.0, w / 150)).astype(np.uint8))
        im.paste(Image.new("RGB", size, (252, 252, 255)), (0, 0), clouds)
        arr = np.asarray(im, np.float32)
    elif kind == "room":
        wall, floor = _rand_colour(rng, 150, 240), _rand_colour(rng, 90, 190)
        horizon = int(h * rng.uniform(0.65, 0.8))
        arr = _ramp(h, w, wall, darker(wall, 0.85))
        arr[horizon:] = _ramp(h - horizon, w, darker(floor, 0.9), floor)
        im = Image.fromarray(arr.astype(np.uint8))
        d = ImageDraw.Draw(im)
        x0, y0 = rng.uniform(0.05, 0.6) * w, rng.uniform(0.05, 0.2) * h
        ww, wh = rng.uniform(0.2, 0.35) * w, rng.uniform(0.25, 0.4) * h
        d.rectangle([x0, y0, x0 + ww, y0 + wh], fill=(170, 205, 240), outline=(120, 100, 80), width=max(2, w // 150))
        d.line([(x0 + ww / 2, y0), (x0 + ww / 2, y0 + wh)], fill=(120, 100, 80), width=max(2, w // 200))
        arr = _blur(im, max(1.0, w / 500))
    elif kind == "bokeh":
        im = Image.fromarray(_ramp(h, w, _rand_colour(rng, 30, 120), _rand_colour(rng, 60, 160)).astype(np.uint8))
        layer = Image.new("RGB", size, (0, 0, 0))
        d = ImageDraw.Draw(layer)
        for _ in range(int(rng.integers(8, 20))):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.02, 0.07) * max(w, h)
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_rand_colour(rng, 60, 140))
        arr = np.minimum(np.asarray(im, np.float32) + _blur(layer, max(2.0, w / 200)), 255)
    else:
        raise ValueError(f"unknown background kind {kind!r}; expected one of {BACKGROUNDS}")
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def landscape(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """Scenery without any character (sky, sun, mountains, lake, trees): the planted ``no_face`` image."""
    w, h = size
    im = Image.fromarray(_ramp(h, w, (110, 160, 230), (235, 215, 190)).astype(np.uint8))
    d = ImageDraw.Draw(im)
    sx, sy, sr = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.3) * h, 0.05 * w
    d.ellipse([sx - sr, sy - sr, sx + sr, sy + sr], fill=(255, 240, 200))
    for layer, (base, top) in enumerate([((120, 130, 170), 0.35), ((80, 120, 100), 0.5)]):
        pts = [(0, h)]
        x = 0.0
        while x < w:
            pts.append((x, h * (top + rng.uniform(0, 0.15))))
            x += rng.uniform(0.08, 0.2) * w
        pts += [(w, h * (top + 0.1)), (w, h)]
        d.polygon(pts, fill=darker(base, 1.0 - 0.1 * layer))
    lake = h * 0.72
    d.rectangle([0, lake, w, h], fill=(100, 150, 200))
    for _ in range(int(rng.integers(4, 10))):
        tx, ty, th = rng.uniform(0, w), lake + rng.uniform(0.02, 0.2) * h, rng.uniform(0.08, 0.18) * h
        d.rectangle([tx - th * 0.04, ty - th * 0.2, tx + th * 0.04, ty], fill=(90, 60, 40))
        d.polygon(
            [(tx - th * 0.25, ty - th * 0.15), (tx, ty - th), (tx + th * 0.25, ty - th * 0.15)], fill=(40, 100, 60)
        )
    arr = _blur(im, max(1.0, w / 600)) * _ramp(h, w, (1.0, 1.0, 1.0), (0.92, 0.92, 0.92))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


# ----------------------------------------------------------------------------------------------- scenes


@dataclass(frozen=True)
class Figure:
    """One character placed in a scene: the origin position (pixels), face width and tilt."""

    character: str
    look: Look
    face_px: float
    x: float
    y: float
    angle: float


@dataclass(frozen=True)
class Scene:
    """A fully planned picture: rendering it needs no other randomness than ``detail_seed``."""

    width: int
    height: int
    background: str
    figures: tuple[Figure, ...]
    detail_seed: int

    def boxes(self) -> list[tuple[int, int, int, int]]:
        return [face_box((f.x, f.y), f.face_px, f.angle, f.look.yaw) for f in self.figures]


def render(scene: Scene) -> Image.Image:
    """Draw a planned scene (RGB). Deterministic: same scene -> same pixels."""
    rng = np.random.default_rng(scene.detail_seed)
    size = (scene.width, scene.height)
    im = landscape(size, rng) if scene.background == "landscape" else background(scene.background, size, rng)
    canvas = np.asarray(im, np.float32).copy()
    for fig in scene.figures:
        visible = (scene.height - fig.y) / (fig.face_px / BOX[2]) + 0.3
        patch, (ox, oy) = draw_character(fig.look, fig.face_px, fig.angle, bottom_u=visible)
        composite(canvas, patch, round(fig.x - ox), round(fig.y - oy))
    return Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))


def plan_scene(
    rng: np.random.Generator,
    cast: list[tuple[str, Look]],
    sizes: list[float],
    background_kind: str,
    max_angle: float = 14.0,
) -> Scene:
    """Lay out ``len(cast)`` characters side by side as bust shots (torsos run off the bottom edge).

    Face boxes never overlap and the whole face box of every figure is inside the canvas."""
    widths = [2.5 * s for s in sizes]  # a character is about 2.3 face widths wide with shoulders
    big = max(sizes)
    height = int(round(big * rng.uniform(2.3, 3.1)))
    width = int(round(sum(widths) * rng.uniform(1.0, 1.35) + 0.1 * big))
    width = max(width, int(height * 0.7))
    slack = width - sum(widths)
    gaps = rng.dirichlet(np.ones(len(sizes) + 1)) * slack
    x = float(gaps[0])
    figures = []
    for (name, look), s, wdt, gap in zip(cast, sizes, widths, gaps[1:], strict=True):
        cx = x + wdt / 2
        u = s / 2
        lo = max(height - 6.0 * u, 2.3 * u)  # torso reaches the bottom; hair top stays inside
        hi = max(lo, height - 1.5 * u)  # chin well above the bottom edge
        cy = float(rng.uniform(lo, hi))
        angle = float(rng.uniform(-max_angle, max_angle))
        figures.append(Figure(name, look, s, cx, cy, angle))
        x += wdt + float(gap)
    return Scene(width, height, background_kind, tuple(figures), int(rng.integers(0, 2**31 - 1)))
