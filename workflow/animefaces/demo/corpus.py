"""The demo mirror: a seeded Danbooru-format mini mirror with planted problem cases and their expected outcomes.

Layout written under ``root`` (the real Danbooru20xx layout):
- ``original/{id % 1000:04d}/{id}.{file_ext}``: the images (written first, each atomically);
- ``metadata/danbooru2019-nested.tar.xz``: Danbooru2017-2020 records (nested ``tags``, numbers as strings) in
  JSON Lines members; ``metadata/danbooru2021-flat.jsonl.gz`` and ``metadata/api-posts.json``: flat
  Danbooru2021/API records (``tag_string_*``, ints and nulls), gzip JSON Lines and a JSON array;
- ``ground_truth.json`` (written last): every post and record with its expected ledger outcome, the drawn face
  boxes, and the config the expectations assume (see ``ASSUMED_CONFIG``).

Ordinary posts depend on ``demo.seed``; the planted cases are drawn from a fixed seed so that their outcomes
(a face is found, which copy survives dedup) were checked once and hold for every ``demo.seed``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import tarfile
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from ..atomic import write_bytes, write_json
from ..config import DEMO_CONFIG, fill_defaults, load_config
from ..crop import crop_box
from ..dedup.hashing import perceptual_hash
from ..detect import Face
from . import cast as C
from .draw import BACKGROUND_TAGS, BACKGROUNDS, Scene, plan_scene, render
from .layout import API, FLAT, GROUND_TRUTH, MARKER, METADATA_FILES, NESTED, NESTED_MEMBERS, check_root

PLANTED_SEED = 20240611  # planted images do not depend on demo.seed
# Which variant of a planted picture to draw (default 0). Chosen once with the seed's cascade so that every
# planted face is found, and the near-duplicate source's face box is at least as large as in its copies (so it
# survives dedup by crop resolution); tests/test_demo.py checks both.
PLANTED_VARIANTS: dict[str, int] = {"near": 8, "rgba_png": 1}
# Ordinary faces are re-drawn until no two faces (across or within posts) could pass for near-duplicates on the
# crop stage's crop (its defaults): dedup's default perceptual hash within DISTINCT_BITS and 4x4 colour thumbnails
# within DISTINCT_COLOUR levels. Same-template drawings of one character are structurally alike, and the box the
# cascade really finds is a few percent off the drawn one (which alone moves a 64-bit pHash by ~8 bits); dedup's
# own thresholds (dedup.max_distance, dedup.max_colour_residual) are in the schema.
DISTINCT_BITS = 12
DISTINCT_COLOUR = 10.0
GROUND_TRUTH_VERSION = 1
# The crop and the hash a face's signature is taken with: the pipeline's own, under the schema's defaults.
_CROP_DEFAULTS = fill_defaults({}, "crop")
DEDUP_HASH = fill_defaults({}, "dedup")["hash"]
_U64 = (1 << 64) - 1

# The config the expected outcomes assume: config/demo.yaml's sections (schema defaults filled) for the stages
# the planted cases test (what ingest filters, which classes, how crop detects, what clean and dedup drop).
ASSUMED_CONFIG = {
    k: v for k, v in load_config(DEMO_CONFIG).items() if k in ("filter", "classes", "crop", "clean", "dedup")
}

KEPT_TO_END = {"stage": "select", "status": "kept", "reason": ""}


def _drop(stage: str, reason: str, **extra) -> dict:
    return {"stage": stage, "status": "dropped", "reason": reason, **extra}


@dataclass
class Post:
    """One planned metadata record (and usually its image file)."""

    id: int | str  # a str only for the planted non-numeric id
    case: str  # "ordinary" or a planted case name
    form: str  # how the file is written, see ``_encode``
    scene: Scene | None = None
    file_ext: str = "jpg"
    rating: str = "s"
    score: int = 5
    flags: dict = field(default_factory=dict)  # is_deleted / is_banned / is_flagged
    extra_tags: list[str] = field(default_factory=list)
    metadata: str = NESTED
    expected: dict = field(default_factory=lambda: {"stage": "ingest", "status": "kept", "reason": ""})
    source_id: int | None = None  # derived copies: the post whose picture they copy
    index: int = -1  # ordinary posts: position in the seeded stream
    variant: int = 0  # ordinary posts: how often the picture was re-drawn (see ``generate``)
    quality: int = 90
    artist: str = ""
    look_tags: dict = field(default_factory=dict)
    # filled when written
    width: int = 0
    height: int = 0
    boxes: list = field(default_factory=list)
    md5: str = ""
    file_size: int = 0
    container: str = ""
    note: str = ""

    @property
    def path(self) -> str | None:
        if not isinstance(self.id, int) or "/" in self.file_ext:
            return None
        return f"original/{self.id % 1000:04d}/{self.id}.{self.file_ext}"


# --------------------------------------------------------------------------------------------- planning


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(key)))


def _ids(rng: np.random.Generator, n: int) -> list[int]:
    """``n`` distinct Danbooru-like post ids (spread over all id % 1000 buckets), in random order."""
    ids: set[int] = set()
    while len(ids) < n:
        ids.update(int(x) for x in rng.integers(100_000, 5_000_000, n * 2))
    out = sorted(ids)[: n * 2]
    rng.shuffle(out)
    return out[:n]


def _ordinary_scene(rng: np.random.Generator) -> tuple[Scene, dict]:
    n = int(rng.choice([1, 2, 3], p=[0.6, 0.28, 0.12]))
    chars = C.pick_characters(rng, n)
    if n == 1:
        sizes = [float(np.exp(rng.uniform(np.log(70), np.log(400))))]
    else:
        sizes = [float(np.exp(rng.uniform(np.log(40), np.log(260)))) for _ in range(n)]
    looks, look_tags = [], {}
    for c in chars:
        look, tags = C.look_for(c, rng)
        looks.append((c.name, look))
        for k, v in tags.items():
            look_tags[k] = look_tags.get(k, False) or v
    bg = str(rng.choice(BACKGROUNDS))
    return plan_scene(rng, looks, sizes, bg), look_tags


def _portrait(rng: np.random.Generator, name: str, face: float, bg: str = "simple") -> tuple[Scene, dict]:
    """A single large, nearly frontal and upright character: planted pictures whose face must be found."""
    look, tags = C.look_for(C.BY_NAME[name], rng)
    look = replace(look, yaw=look.yaw * 0.3, light=(look.light[0], min(look.light[1], 0.2)))
    scene = plan_scene(rng, [(name, look)], [face], bg, max_angle=4.0)
    return scene, tags


# Planted cases: (case, form, file_ext, character or None, metadata file, expected outcome, extra Post fields).
_INGEST_DROPS = [
    ("rating_q", "jpeg", "jpg", "kurogane_yui", API, _drop("ingest", "rating"), {"rating": "q"}),
    ("rating_e", "jpeg", "jpg", "midori_nanami", FLAT, _drop("ingest", "rating"), {"rating": "e"}),
    ("excluded_tag", "jpeg", "jpg", "aozora_rin", NESTED, _drop("ingest", "excluded_tag"), {"extra_tags": ["comic"]}),
    ("deleted", "jpeg", "jpg", "saber", NESTED, _drop("ingest", "deleted"), {"flags": {"is_deleted": True}}),
    ("banned", "png", "png", "hoshino_mirai", FLAT, _drop("ingest", "banned"), {"flags": {"is_banned": True}}),
    ("flagged", "jpeg", "jpg", "kurogane_yui", API, _drop("ingest", "flagged"), {"flags": {"is_flagged": True}}),
    ("low_score", "jpeg", "jpg", "saber", FLAT, _drop("ingest", "low_score"), {"score": -3}),
    ("missing_file", "none", "jpg", "aozora_rin", API, _drop("ingest", "missing_file"), {}),
    ("invalid_file_ext", "none", "../../x", "saber", FLAT, _drop("ingest", "invalid_file_ext"), {}),
    ("image_too_small", "tiny_png", "png", "hoshino_mirai", NESTED, _drop("ingest", "image_too_small"), {}),
    ("extension_not_allowed", "gif", "gif", "midori_nanami", NESTED, _drop("ingest", "extension_not_allowed"), {}),
]
_CROP_DROPS = [
    ("undecodable", "corrupt", "jpg", "saber", NESTED, _drop("crop", "undecodable"), {}),
    ("truncated", "truncated_jpeg", "jpg", "hoshino_mirai", FLAT, _drop("crop", "truncated"), {}),
    ("empty_file", "empty", "png", "aozora_rin", API, _drop("crop", "empty_file"), {}),
    ("no_face", "jpeg", "jpg", None, NESTED, _drop("crop", "no_face"), {"extra_tags": ["no_humans", "scenery"]}),
]
_CLEAN_DROPS = [
    ("greyscale_png", "grey_png", "png", "kurogane_yui", NESTED, _drop("clean", "greyscale"), {}),
    ("greyscale_jpeg", "grey_rgb_jpeg", "jpg", "midori_nanami", FLAT, _drop("clean", "greyscale"), {}),
    ("low_colour", "posterised_png", "png", "aozora_rin", API, _drop("clean", "low_colour"), {}),
]
_SPECIALS = [
    ("cmyk_jpeg", "cmyk_jpeg", "jpg", "kurogane_yui", NESTED, KEPT_TO_END, {}),
    ("rgba_png", "rgba_png", "png", "midori_nanami", FLAT, KEPT_TO_END, {"extra_tags": ["transparent_background"]}),
    ("png_named_jpg", "png_as_jpg", "jpg", "aozora_rin", API, KEPT_TO_END, {}),
]
# Duplicate groups: the source (lowest id, expected survivor) and its copies.
_DUP_GROUPS = [
    ("exact", "hoshino_mirai", "jpeg", "jpg", [("exact_copy", "copy", "jpg", "exact_duplicate")]),
    ("reencode", "saber", "png", "png", [("reencoded_png", "reencoded_png", "png", "exact_duplicate")]),
    (
        "near",
        "hoshino_mirai",
        "png",
        "png",
        [
            ("near_resized80", "resized80_jpeg", "jpg", "near_duplicate"),
            ("near_jpeg70", "jpeg70", "jpg", "near_duplicate"),
            ("near_crop2", "crop2_jpeg", "jpg", "near_duplicate"),
        ],
    ),
]
PLANTED_CASES = (
    [c[0] for c in _INGEST_DROPS + _CROP_DROPS + _CLEAN_DROPS + _SPECIALS]
    + ["malformed_record", "invalid_id", "duplicate_id"]
    + [f"{g[0]}_source" for g in _DUP_GROUPS]
    + [c[0] for g in _DUP_GROUPS for c in g[4]]
)


@dataclass
class Plan:
    posts: list[Post]  # every record with a usable layout, incl. the planted ones, in id order
    extra_records: list[dict]  # malformed / invalid-id / duplicate-id records: {case, metadata, post, expected}


def _case_key(case: str) -> int:
    return zlib.crc32(case.encode())


def plan_ordinary(post: Post, seed: int, index: int) -> None:
    """(Re)draw an ordinary post's picture, format and score from its own rng: ``(seed, index, variant)``.

    Each post has its own stream, so re-rolling one post (see ``generate``) changes nothing else."""
    rng = _rng(seed, 2, index, post.variant)
    post.scene, post.look_tags = _ordinary_scene(rng)
    post.form = str(rng.choice(["jpeg", "png", "webp"], p=[0.65, 0.3, 0.05]))
    post.file_ext = {"jpeg": "jpg", "png": "png", "webp": "webp"}[post.form]
    post.score = int(min(150, rng.geometric(0.08) - 1))
    post.quality = int(rng.integers(85, 96))
    post.artist = str(rng.choice(C.ARTISTS))


def plan_corpus(seed: int, n_posts: int) -> Plan:
    """Plan every post (ids, scenes, tags, planted cases) without drawing anything."""
    rng = _rng(seed, 1)
    n_dup = sum(1 + len(g[4]) for g in _DUP_GROUPS)
    n_planted = len(_INGEST_DROPS) + len(_CROP_DROPS) + len(_CLEAN_DROPS) + len(_SPECIALS) + n_dup
    ids = _ids(rng, n_posts + n_planted)
    order = sorted(ids)
    rank = {pid: i / len(order) for i, pid in enumerate(order)}

    def file_for(pid: int) -> str:
        r = rank[pid]
        return NESTED if r < 0.5 else (FLAT if r < 0.85 else API)

    posts: list[Post] = []
    for index, pid in enumerate(ids[:n_posts]):
        post = Post(pid, "ordinary", "jpeg", metadata=file_for(pid), index=index)
        plan_ordinary(post, seed, index)
        posts.append(post)
    free = ids[n_posts:]
    for case, form, ext, name, meta, expected, extra in _INGEST_DROPS + _CROP_DROPS + _CLEAN_DROPS + _SPECIALS:
        prng = _rng(PLANTED_SEED, _case_key(case), PLANTED_VARIANTS.get(case, 0))
        if name is None:
            scene = Scene(1024, 640, "landscape", (), int(prng.integers(2**31 - 1)))
            look_tags: dict = {}
        else:
            scene, look_tags = _portrait(prng, name, float(prng.uniform(150, 230)))
        fields = {"score": int(prng.integers(3, 40)), **extra}
        artist = str(prng.choice(C.ARTISTS))
        posts.append(
            Post(
                free.pop(),
                case,
                form,
                scene,
                ext,
                metadata=meta,
                expected=expected,
                artist=artist,
                look_tags=look_tags,
                **fields,
            )
        )
    for group, name, form, ext, copies in _DUP_GROUPS:
        prng = _rng(PLANTED_SEED, _case_key(group), PLANTED_VARIANTS.get(group, 0))
        group_ids = sorted(free.pop() for _ in range(1 + len(copies)))
        scene, look_tags = _portrait(prng, name, float(prng.uniform(190, 240)), "gradient")
        src = Post(
            group_ids[0],
            f"{group}_source",
            form,
            scene,
            ext,
            metadata=file_for(group_ids[0]),
            expected=KEPT_TO_END,
            artist=str(prng.choice(C.ARTISTS)),
            look_tags=look_tags,
            score=int(prng.integers(3, 40)),
        )
        posts.append(src)
        for pid, (case, cform, cext, reason) in zip(group_ids[1:], copies, strict=True):
            expected = _drop("dedup", reason, duplicate_of=src.id)
            posts.append(
                replace(
                    src,
                    id=pid,
                    case=case,
                    form=cform,
                    file_ext=cext,
                    metadata=file_for(pid),
                    expected=expected,
                    source_id=src.id,
                    score=int(prng.integers(0, 20)),
                    look_tags=dict(look_tags),
                )
            )
    # a post whose record appears twice: first in the nested dump (kept), again in the flat one (dropped)
    first = next(p for p in posts if p.case == "ordinary" and p.metadata == NESTED)
    first.case = "duplicate_id_first"
    extra_records = [
        {"case": "duplicate_id", "metadata": FLAT, "post": first, "expected": _drop("ingest", "duplicate_id")},
        {"case": "malformed_record", "metadata": FLAT, "post": None, "expected": _drop("ingest", "malformed_record")},
        {"case": "invalid_id", "metadata": NESTED, "post": None, "expected": _drop("ingest", "invalid_id")},
    ]
    posts.sort(key=lambda p: int(p.id))
    return Plan(posts, extra_records)


# --------------------------------------------------------------------------------------------- images


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _render_rgba(scene: Scene) -> Image.Image:
    """The scene's characters on a transparent background (transparent pixels stored as black, as most
    exporters do)."""
    from .draw import BOX, composite, draw_character

    canvas = np.zeros((scene.height, scene.width, 4), np.float32)
    for fig in scene.figures:
        visible = (scene.height - fig.y) / (fig.face_px / BOX[2]) + 0.3
        patch, (ox, oy) = draw_character(fig.look, fig.face_px, fig.angle, bottom_u=visible)
        rgb = canvas[:, :, :3].copy()
        a = canvas[:, :, 3:].copy()
        composite(rgb, patch, round(fig.x - ox), round(fig.y - oy))
        left, top = round(fig.x - ox), round(fig.y - oy)
        pa = np.zeros_like(a)
        y0, x0 = max(0, top), max(0, left)
        y1, x1 = min(scene.height, top + patch.shape[0]), min(scene.width, left + patch.shape[1])
        pa[y0:y1, x0:x1] = patch[y0 - top : y1 - top, x0 - left : x1 - left, 3:]
        canvas[:, :, :3] = rgb
        canvas[:, :, 3:] = pa + a * (1 - pa / 255.0)
    alpha = np.clip(canvas[:, :, 3:], 0, 255)
    rgb = np.where(alpha > 0, canvas[:, :, :3] * 255.0 / np.maximum(alpha, 1e-6), 0)
    out = np.concatenate([rgb, alpha], axis=2)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def _encode(post: Post, im: Image.Image) -> tuple[bytes, Image.Image | None]:
    """The file bytes for ``post`` drawn as ``im`` (RGB), and the picture as stored (None: not an image)."""
    form, q = post.form, post.quality
    if form == "jpeg":
        return _save(im, "JPEG", quality=q), im
    if form == "png":
        return _save(im, "PNG", compress_level=3), im
    if form == "webp":
        return _save(im, "WEBP", quality=q, method=4), im
    if form == "gif":
        pal = im.quantize(colors=128, dither=Image.Dither.NONE)
        return _save(pal, "GIF"), pal.convert("RGB")
    if form == "tiny_png":
        small = im.resize((48, 48), Image.LANCZOS)
        return _save(small, "PNG"), small
    if form == "cmyk_jpeg":
        return _save(im.convert("CMYK"), "JPEG", quality=92), im
    if form == "rgba_png":
        rgba = _render_rgba(post.scene)  # type: ignore[arg-type]
        return _save(rgba, "PNG"), rgba
    if form == "png_as_jpg":
        return _save(im, "PNG"), im
    if form == "grey_png":
        grey = im.convert("L")
        return _save(grey, "PNG"), grey
    if form == "grey_rgb_jpeg":
        grey = im.convert("L").convert("RGB")
        return _save(grey, "JPEG", quality=90), grey
    if form == "posterised_png":
        poster = im.quantize(colors=24, dither=Image.Dither.NONE).convert("RGB")
        return _save(poster, "PNG"), poster
    if form == "corrupt":
        rng = _rng(PLANTED_SEED, 7)
        return rng.integers(0, 256, 48_000, dtype=np.uint8).tobytes(), None
    if form == "truncated_jpeg":
        data = _save(im, "JPEG", quality=90)
        return data[: int(len(data) * 0.6)], None
    if form == "empty":
        return b"", None
    if form == "none":  # the record describes a real JPEG that the mirror lacks: truthful md5 and size
        return _save(im, "JPEG", quality=q), im
    raise ValueError(f"unknown form {form!r} for post {post.id}")


def _derive(post: Post, src_bytes: bytes, src_im: Image.Image) -> tuple[bytes, Image.Image, tuple]:
    """A planted copy of a source picture: bytes, stored picture, and (scale, dx, dy) for the face boxes."""
    w, h = src_im.size
    if post.form == "copy":
        return src_bytes, src_im, (1.0, 0, 0)
    if post.form == "reencoded_png":
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "re-saved by the animefaces demo")
        return _save(src_im, "PNG", compress_level=9, pnginfo=info), src_im, (1.0, 0, 0)
    if post.form == "resized80_jpeg":
        small = src_im.resize((round(w * 0.8), round(h * 0.8)), Image.LANCZOS)
        return _save(small, "JPEG", quality=90), small, (0.8, 0, 0)
    if post.form == "jpeg70":
        return _save(src_im, "JPEG", quality=70), src_im, (1.0, 0, 0)
    if post.form == "crop2_jpeg":
        dx, dy = round(w * 0.02), round(h * 0.02)
        cropped = src_im.crop((dx, dy, w - dx, h - dy))
        return _save(cropped, "JPEG", quality=92), cropped, (1.0, -dx, -dy)
    raise ValueError(f"unknown derived form {post.form!r} for post {post.id}")


@dataclass
class Written:
    id: int
    data: bytes
    width: int
    height: int
    container: str
    boxes: list
    sigs: list  # per face: (perceptual hash, colour thumbnail) of the crop stage's crop, see face_signatures


def cascade_like_box(box: list | tuple, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where the cascade's box for a recorded face box lands (measured: 1.18x wider, centre 0.13 w lower),
    clipped to the image; as (left, top, right, bottom)."""
    x, y, w, h = box[:4]
    cx, cy, half = x + w / 2, y + h / 2 + 0.13 * w, 1.18 * w / 2
    return (
        max(0, round(cx - half)),
        max(0, round(cy - half)),
        min(size[0], round(cx + half)),
        min(size[1], round(cy + half)),
    )


def portrait_box(box: list | tuple, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The crop stage's crop (:func:`animefaces.crop.crop_box` under the schema's ``crop`` defaults: a square
    portrait) around the cascade-like box, as (left, top, right, bottom) inside the image."""
    x0, y0, x1, y1 = cascade_like_box(box, size)
    c = crop_box(Face(x0, y0, x1 - x0, y1 - y0), size[0], size[1], _CROP_DEFAULTS)
    return max(0, c.x), max(0, c.y), min(size[0], c.x + c.w), min(size[1], c.y + c.h)


def face_signatures(im: Image.Image, boxes: list) -> list[tuple[int, bytes]]:
    """Per face: the 64-bit perceptual hash dedup compares by default (:func:`animefaces.dedup.hashing.perceptual_hash`,
    unsigned) and a 4x4 colour thumbnail (48 bytes) of the crop stage's crop (perceptual hashes see luminance only,
    the thumbnail tells colour variants apart)."""
    out = []
    for box in boxes:
        crop = im.crop(portrait_box(box, im.size))
        thumb = crop.resize((4, 4), Image.Resampling.BOX).tobytes()
        out.append((perceptual_hash(crop, DEDUP_HASH) & _U64, thumb))
    return out


def _render_group(group: list[Post]) -> list[Written]:
    """Draw and encode a source post and its derived copies (one task: copies need the source picture)."""
    out: list[Written] = []
    src = group[0]
    scene = src.scene
    assert scene is not None
    im = render(scene)
    boxes = [[*b, f.character] for b, f in zip(scene.boxes(), scene.figures, strict=True)]
    data, stored = _encode(src, im)
    out.append(_written(src, data, stored, boxes, scene))
    for post in group[1:]:
        assert stored is not None
        ddata, dim, (s, dx, dy) = _derive(post, data, stored)
        dboxes = [[round(x * s + dx), round(y * s + dy), round(bw * s), round(bh * s), c] for x, y, bw, bh, c in boxes]
        out.append(_written(post, ddata, dim, dboxes, scene))
    return out


def _written(post: Post, data: bytes, stored: Image.Image | None, boxes: list, scene: Scene) -> Written:
    if stored is None:  # not decodable: the metadata still tells the original size
        return Written(int(post.id), data, scene.width, scene.height, "", [], [])
    if post.form == "tiny_png":
        boxes = []  # the picture was shrunk to 48x48: no usable face
    container = Image.open(io.BytesIO(data)).format or ""
    if stored.mode == "RGBA":  # as animefaces.decode.load_rgb sees it: flattened onto white
        rgb = Image.new("RGB", stored.size, (255, 255, 255))
        rgb.paste(stored, mask=stored.getchannel("A"))
    else:
        rgb = stored.convert("RGB")
    return Written(int(post.id), data, stored.width, stored.height, container, boxes, face_signatures(rgb, boxes))


def _conflicts(sigs: list[tuple[int, bytes]], others: list[tuple[int, bytes]]) -> np.ndarray:
    """Which pairs (face in ``sigs`` x face in ``others``) could pass for near-duplicates: pHash within
    ``DISTINCT_BITS`` and colour thumbnails within ``DISTINCT_COLOUR`` levels (mean absolute difference)."""
    if not sigs or not others:
        return np.zeros((len(sigs), len(others)), dtype=bool)
    ha = np.array([s[0] for s in sigs], dtype=np.uint64)
    hb = np.array([s[0] for s in others], dtype=np.uint64)
    ta = np.array([np.frombuffer(s[1], np.uint8) for s in sigs], dtype=np.int16)
    tb = np.array([np.frombuffer(s[1], np.uint8) for s in others], dtype=np.int16)
    bits = np.bitwise_count(ha[:, None] ^ hb[None, :])
    colour = np.abs(ta[:, None, :] - tb[None, :, :]).mean(axis=2)
    return (bits <= DISTINCT_BITS) & (colour <= DISTINCT_COLOUR)


def _is_distinct(sigs: list[tuple[int, bytes]], accepted: list[tuple[int, bytes]]) -> bool:
    """No face could pass for a near-duplicate of an accepted face or of another face in the same picture."""
    if len(sigs) > 1 and _conflicts(sigs, sigs)[~np.eye(len(sigs), dtype=bool)].any():
        return False
    return not _conflicts(sigs, accepted).any()


# --------------------------------------------------------------------------------------------- metadata


_EPOCH = datetime(2005, 5, 24, tzinfo=UTC)


def _created(pid: int) -> datetime:
    """Creation time grows with the id, like Danbooru's (2005 -> 2021 over ids 100k -> 5M)."""
    return _EPOCH + timedelta(seconds=int(pid) * 101.3)


def _tags(post: Post, scene: Scene | None) -> dict[int, list[str]]:
    """Tag names per Danbooru category for a post (general, artist, copyright, character, meta)."""
    general: list[str] = []
    chars: list[str] = []
    copyrights: list[str] = []
    if scene is not None and scene.figures:
        figs = [C.BY_NAME[f.character] for f in scene.figures]
        girls = sum(c.sex == "girl" for c in figs)
        boys = len(figs) - girls
        if girls:
            general.append(f"{girls}girl" if girls == 1 else f"{girls}girls")
        if boys:
            general.append(f"{boys}boy" if boys == 1 else f"{boys}boys")
        if girls > 1:
            general.append("multiple_girls")
        if boys > 1:
            general.append("multiple_boys")
        if len(figs) == 1:
            general.append("solo")
        for c in figs:
            general += [c.hair_tag, c.eye_tag, *C.HAIR_STYLE_TAGS[c.hair_style]]
            if c.ahoge:
                general.append("ahoge")
            chars.append(c.name)
            copyrights.append(c.copyright)
        general += [k for k, v in post.look_tags.items() if v]
        general += ["looking_at_viewer", "upper_body", "bangs"]
        general += BACKGROUND_TAGS.get(scene.background, [])
    elif scene is not None:
        general += ["landscape", "mountain", "tree", "lake", "sky", "outdoors"]
    general += post.extra_tags
    if post.form in ("grey_png", "grey_rgb_jpeg"):
        general += ["greyscale", "monochrome"]
    meta = ["commentary"] if int(post.id) % 3 == 0 else []
    if max(post.width, post.height) >= 1600:
        meta.append("highres")
    return {
        C.GENERAL: sorted(set(general)),
        C.ARTIST: [post.artist] if post.artist else [],
        C.COPYRIGHT: sorted(set(copyrights)),
        C.CHARACTER: sorted(set(chars)),
        C.META: meta,
    }


def _md5(post: Post) -> str:
    return post.md5 or hashlib.md5(f"demo-missing-{post.id}".encode()).hexdigest()


def nested_record(post: Post) -> dict:
    """A Danbooru2017-2020 record: every number a JSON string, "0" for none, nested ``tags``."""
    pid = int(post.id)
    created = _created(pid)
    tags = _tags(post, post.scene)
    tag_list = [
        {"id": str(C.tag_id(name)), "name": name, "category": str(cat)} for cat, names in tags.items() for name in names
    ]
    tag_list.sort(key=lambda t: t["name"])
    up = max(post.score, 0) + 2
    stamp = created.strftime("%Y-%m-%d %H:%M:%S.") + f"{created.microsecond // 10:05d} UTC"
    never = "1970-01-01 00:00:00 UTC"
    return {
        "id": str(pid),
        "created_at": stamp,
        "uploader_id": str(10_000 + pid % 7919),
        "score": str(post.score),
        "source": "",
        "md5": _md5(post),
        "last_commented_at": never,
        "rating": post.rating,
        "image_width": str(post.width),
        "image_height": str(post.height),
        "is_note_locked": False,
        "file_ext": post.file_ext,
        "last_noted_at": never,
        "is_rating_locked": False,
        "parent_id": "0",
        "has_children": False,
        "approver_id": "0" if pid % 2 else str(500 + pid % 97),
        "file_size": str(post.file_size),
        "is_status_locked": False,
        "up_score": str(up),
        "down_score": str(post.score - up),
        "is_pending": False,
        "is_flagged": bool(post.flags.get("is_flagged", False)),
        "is_deleted": bool(post.flags.get("is_deleted", False)),
        "updated_at": stamp,
        "is_banned": bool(post.flags.get("is_banned", False)),
        "pixiv_id": "0" if pid % 3 else str(40_000_000 + pid),
        "tags": tag_list,
        "pools": [],
        "favs": [str(1000 + (pid * 7 + i) % 90_000) for i in range(max(0, min(post.score, 5)))],
    }


def flat_record(post: Post) -> dict:
    """A Danbooru2021 / API record: ints and nulls, space-separated ``tag_string_*``."""
    pid = int(post.id)
    created = _created(pid).astimezone(UTC)
    stamp = created.isoformat(timespec="milliseconds").replace("+00:00", "-00:00")
    tags = _tags(post, post.scene)
    names = {cat: " ".join(v) for cat, v in tags.items()}
    up = max(post.score, 0) + 2
    md5 = _md5(post)
    return {
        "id": pid,
        "created_at": stamp,
        "uploader_id": 10_000 + pid % 7919,
        "score": post.score,
        "source": "",
        "md5": md5,
        "last_comment_bumped_at": None,
        "rating": post.rating,
        "image_width": post.width,
        "image_height": post.height,
        "tag_string": " ".join(sorted(n for v in tags.values() for n in v)),
        "is_note_locked": False,
        "fav_count": max(0, post.score),
        "file_ext": post.file_ext,
        "last_noted_at": None,
        "is_rating_locked": False,
        "parent_id": None,
        "has_children": False,
        "approver_id": None if pid % 2 else 500 + pid % 97,
        "tag_count_general": len(tags[C.GENERAL]),
        "tag_count_artist": len(tags[C.ARTIST]),
        "tag_count_character": len(tags[C.CHARACTER]),
        "tag_count_copyright": len(tags[C.COPYRIGHT]),
        "file_size": post.file_size,
        "is_status_locked": False,
        "pool_string": "",
        "up_score": up,
        "down_score": post.score - up,
        "is_pending": False,
        "is_flagged": bool(post.flags.get("is_flagged", False)),
        "is_deleted": bool(post.flags.get("is_deleted", False)),
        "tag_count": sum(len(v) for v in tags.values()),
        "updated_at": stamp,
        "is_banned": bool(post.flags.get("is_banned", False)),
        "pixiv_id": None if pid % 3 else 40_000_000 + pid,
        "last_commented_at": None,
        "has_active_children": False,
        "bit_flags": 0,
        "tag_count_meta": len(tags[C.META]),
        "has_large": max(post.width, post.height) > 850,
        "has_visible_children": False,
        "tag_string_general": names[C.GENERAL],
        "tag_string_character": names[C.CHARACTER],
        "tag_string_copyright": names[C.COPYRIGHT],
        "tag_string_artist": names[C.ARTIST],
        "tag_string_meta": names[C.META],
        "file_url": f"https://danbooru.donmai.us/data/{md5}.{post.file_ext}",
    }


def _dumps(rec: dict) -> str:
    return json.dumps(rec, separators=(",", ":"), ensure_ascii=False)


def build_metadata(plan: Plan) -> tuple[dict[str, bytes], dict]:
    """The three metadata files (path -> bytes) and where each record went (key -> source locator)."""
    nested_lines: list[list[str]] = [[] for _ in NESTED_MEMBERS]
    flat_lines: list[str] = []
    api_records: list[dict] = []
    nested_posts = [p for p in plan.posts if p.metadata == NESTED]
    half = (len(nested_posts) + 1) // 2
    for i, post in enumerate(nested_posts):
        nested_lines[0 if i < half else 1].append(_dumps(nested_record(post)))
    for post in plan.posts:
        if post.metadata == FLAT:
            flat_lines.append(_dumps(flat_record(post)))
        elif post.metadata == API:
            api_records.append(flat_record(post))
    for extra in plan.extra_records:
        case = extra["case"]
        if case == "duplicate_id":  # the same post again, as the 2021 dump would carry it
            flat_lines.insert(len(flat_lines) // 2, _dumps(flat_record(extra["post"])))
        elif case == "malformed_record":  # a record cut off mid-line (a damaged download)
            text = _dumps(flat_record(plan.posts[len(plan.posts) // 3]))
            flat_lines.insert(len(flat_lines) // 3, text[: len(text) // 2])
        elif case == "invalid_id":  # an id with a letter O for a zero
            rec = nested_record(plan.posts[len(plan.posts) // 4])
            rec["id"] = rec["id"][:-2] + "O" + rec["id"][-1]
            nested_lines[1].insert(3, _dumps(rec))
    where = _locate(nested_lines, flat_lines, api_records, plan)
    files = {
        NESTED: _tar_xz({m: "".join(x + "\n" for x in ls) for m, ls in zip(NESTED_MEMBERS, nested_lines, strict=True)}),
        FLAT: _gzip("".join(x + "\n" for x in flat_lines).encode()),
        API: json.dumps(api_records, separators=(",", ":")).encode(),
    }
    return files, where


def _locate(nested_lines: list[list[str]], flat_lines: list[str], api_records: list[dict], plan: Plan) -> dict:
    """Source locators: post id (or case name for records without a usable id) -> where the record sits."""
    where: dict = {}
    cut = {e["case"]: e for e in plan.extra_records}
    dup_id = cut["duplicate_id"]["post"].id
    for member, lines in zip(NESTED_MEMBERS, nested_lines, strict=True):
        for n, line in enumerate(lines, 1):
            rid = json.loads(line)["id"]
            key = int(rid) if rid.isdigit() else "invalid_id"
            where[key] = {"file": NESTED, "member": member, "line": n}
    for n, line in enumerate(flat_lines, 1):
        try:
            rid = json.loads(line)["id"]
        except json.JSONDecodeError:
            where["malformed_record"] = {"file": FLAT, "line": n}
            continue
        key = "duplicate_id" if rid == dup_id and rid in where else rid
        where[key] = {"file": FLAT, "line": n}
    for i, rec in enumerate(api_records):
        where[rec["id"]] = {"file": API, "index": i}
    return where


def _tar_xz(members: dict[str, str]) -> bytes:
    """A reproducible tar.xz (fixed mtime, owner and order)."""
    buf = io.BytesIO()
    with lzma.open(buf, "wb", format=lzma.FORMAT_XZ, preset=6) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        for name in sorted(members):
            data = members[name].encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- driver


def _render_all(groups: list[list[Post]], threads: int) -> list[Written]:
    if threads <= 1:
        return [w for g in groups for w in _render_group(g)]
    with ProcessPoolExecutor(max_workers=threads) as ex:
        return [w for ws in ex.map(_render_group, groups, chunksize=4) for w in ws]


def _groups(posts: list[Post]) -> list[list[Post]]:
    """Render tasks: each source post with its derived copies."""
    groups = {p.id: [p] for p in posts if p.source_id is None and p.scene is not None}
    for p in posts:
        if p.source_id is not None:
            groups[p.source_id].append(p)
    return list(groups.values())


def _make_distinct(plan: Plan, written: dict[int, Written], seed: int, max_variants: int = 60) -> int:
    """Re-draw ordinary posts whose faces are near-duplicates of earlier ones; returns how many re-draws."""
    accepted: list[tuple[int, bytes]] = []
    for p in plan.posts:
        if p.index < 0 and p.id in written:  # planted pictures are fixed; ordinary ones must differ from them
            accepted.extend(written[p.id].sigs)
    redraws = 0
    for post in (p for p in plan.posts if p.index >= 0):
        while not _is_distinct(written[post.id].sigs, accepted):
            if post.variant >= max_variants:
                raise RuntimeError(f"post {post.id}: no distinct picture after {max_variants} re-draws")
            post.variant += 1
            redraws += 1
            plan_ordinary(post, seed, post.index)
            written[post.id] = _render_group([post])[0]
        accepted.extend(written[post.id].sigs)
    return redraws


def generate(root: str | os.PathLike[str], seed: int, posts: int, threads: int = 1) -> dict:
    """Write the demo mirror under ``root`` (images first, then metadata, then ``ground_truth.json``).

    Returns the ground truth. Same (seed, posts) -> byte-identical files, whatever ``threads``."""
    root = Path(root)
    check_root(root)
    plan = plan_corpus(seed, posts)
    by_id = {p.id: p for p in plan.posts}
    written = {w.id: w for w in _render_all(_groups(plan.posts), threads)}
    redraws = _make_distinct(plan, written, seed)
    if (root / "original").exists():
        shutil.rmtree(root / "original")  # a previous demo mirror: start clean so no stale files remain
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("written by animefaces.demo; safe to delete\n")
    for w in written.values():
        post = by_id[w.id]
        post.width, post.height, post.boxes, post.container = w.width, w.height, w.boxes, w.container
        post.file_size = len(w.data)
        post.md5 = hashlib.md5(w.data).hexdigest()
        if post.path is not None and post.form != "none":
            write_bytes(root / post.path, w.data, clean_stale=False)  # original/ was removed above
    files, where = build_metadata(plan)
    for rel, data in files.items():
        write_bytes(root / rel, data)
    truth = ground_truth(plan, where, seed, posts)
    truth["distinctness"] = {
        "rule": "no two faces (across or within posts, planted copies excepted) have perceptual hashes (dedup's"
        " default) of the crop stage's crop within phash_bits and 4x4 colour thumbnails within colour_levels (mean"
        " absolute difference)",
        "phash_bits": DISTINCT_BITS,
        "colour_levels": DISTINCT_COLOUR,
        "redrawn_posts": redraws,
    }
    write_json(root / GROUND_TRUTH, truth, indent=1)
    return truth


def ground_truth(plan: Plan, where: dict, seed: int, n_posts: int) -> dict:
    """Every post/record with its expected ledger outcome, the face boxes, and the expected funnel."""
    posts = []
    for p in plan.posts:
        entry = {
            "id": p.id,
            "case": p.case,
            "file": p.path,
            "file_ext": p.file_ext,
            "format": p.container or None,
            "metadata": where[p.id],
            "rating": p.rating,
            "width": p.width,
            "height": p.height,
            "md5": p.md5 if p.path else None,
            "characters": [f.character for f in p.scene.figures] if p.scene else [],
            "faces": [{"box": b[:4], "character": b[4]} for b in p.boxes],
            "expected": p.expected,
        }
        if p.source_id is not None:
            entry["source_id"] = p.source_id
        posts.append(entry)
    records = []
    for extra in plan.extra_records:
        post = extra["post"]
        records.append(
            {
                "case": extra["case"],
                "id": post.id if post is not None else None,
                "metadata": where[extra["case"]],
                "expected": extra["expected"],
            }
        )
    funnel = expected_funnel(posts, records)
    cast_counts = Counter(c for p in posts if p["case"] == "ordinary" for c in p["characters"])
    return {
        "version": GROUND_TRUTH_VERSION,
        "seed": seed,
        "posts_requested": n_posts,
        "metadata_files": list(METADATA_FILES),
        "nested_members": list(NESTED_MEMBERS),
        "assumed_config": ASSUMED_CONFIG,
        "face_box": "x, y, w, h in pixels: cheek to cheek, mid-forehead to chin (the cascade's box is ~1.24x larger"
        " and lower; IoU ~0.65)",
        "cast": {
            c.name: {
                "copyright": c.copyright,
                "hair": c.hair_tag,
                "eyes": c.eye_tag,
                "ordinary_posts": cast_counts.get(c.name, 0),
            }
            for c in C.CAST
        },
        "planted_cases": sorted(PLANTED_CASES),
        "expected_funnel": funnel,
        "posts": posts,
        "records": records,
    }


def expected_funnel(posts: list[dict], records: list[dict]) -> dict:
    """Counts the planted cases imply. ``exact``: the whole stage count; ``at_least``: ordinary posts may add
    to it (an undetected face gives ``no_face``, a face under the size limit ``face_too_small``)."""
    drops: dict[str, Counter] = {}
    for item in posts + records:
        e = item["expected"]
        if e["status"] == "dropped":
            drops.setdefault(e["stage"], Counter())[e["reason"]] += 1
    n_records = len(posts) + len(records)
    ingest_dropped = sum(drops.get("ingest", Counter()).values())
    out = {
        "ingest": {
            "records": n_records,
            "kept": n_records - ingest_dropped,
            "dropped": dict(sorted(drops.get("ingest", Counter()).items())),
            "exact": True,
        }
    }
    for stage in ("crop", "clean", "dedup"):
        out[stage] = {"dropped": dict(sorted(drops.get(stage, Counter()).items())), "exact": False}
    out["crop"]["exact_reasons"] = ["undecodable", "truncated", "empty_file"]
    out["clean"]["exact_reasons"] = ["greyscale", "low_colour"]
    out["dedup"]["exact_reasons"] = ["exact_duplicate", "near_duplicate"]
    out["kept_to_end"] = sorted(p["id"] for p in posts if p["expected"] == KEPT_TO_END)
    return out
