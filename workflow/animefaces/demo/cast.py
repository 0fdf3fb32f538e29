"""The demo's invented cast, artists and tag vocabulary (with stable Danbooru-style tag ids and categories).

Character frequencies are skewed on purpose so that a top-K class table is meaningful, and ``saber_alter`` is an
alias of ``saber`` (the config merges it with ``classes.aliases: {saber_alter: saber}``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .draw import RGB, Look

GENERAL, ARTIST, COPYRIGHT, CHARACTER, META = 0, 1, 3, 4, 5


@dataclass(frozen=True)
class Character:
    name: str  # character tag (category 4)
    copyright: str  # copyright tag (category 3)
    weight: float  # relative frequency in the corpus
    sex: str  # "girl" | "boy"
    hair: RGB
    hair_tag: str
    eyes: RGB
    eye_tag: str
    hair_style: str  # long | short | twintails | ponytail
    ahoge: bool
    clothes: RGB


# name, copyright, weight, sex, hair colour + tag, eye colour + tag, hair style, ahoge, clothes colour
_TABLE = """
saber           eternal_grail_war  22 girl ecd060 blonde_hair  3ca05a green_eyes  ponytail  1 3c50aa
hoshino_mirai   starlight_academy  18 girl f696be pink_hair    4678dc blue_eyes   twintails 0 e6e6f0
aozora_rin      starlight_academy  13 girl 5082dc blue_hair    e6be32 yellow_eyes short     0 f0c85a
kurogane_yui    steel_maiden       10 girl 282634 black_hair   c82832 red_eyes    long      0 961e28
midori_nanami   forest_tales        8 girl 5aaa5a green_hair   965f32 brown_eyes  long      1 f0dcaa
saber_alter     eternal_grail_war   6 girl e2deb0 blonde_hair  e1c83c yellow_eyes ponytail  1 2d2832
shiroyuki_hime  forest_tales        6 girl eceef6 white_hair   9650c8 purple_eyes long      0 7896d2
akagi_kaito     steel_maiden        5 boy  be4628 red_hair     4678dc blue_eyes   short     1 323c46
kitsune_sora    original            4 girl f0963c orange_hair  3ca05a green_eyes  twintails 1 c83c50
"""


def _rgb(hexstr: str) -> RGB:
    return int(hexstr[0:2], 16), int(hexstr[2:4], 16), int(hexstr[4:6], 16)


def _parse(table: str) -> tuple[Character, ...]:
    out = []
    for line in table.strip().splitlines():
        name, copy, weight, sex, hair, hair_tag, eyes, eye_tag, style, ahoge, clothes = line.split()
        out.append(
            Character(
                name,
                copy,
                float(weight),
                sex,
                _rgb(hair),
                hair_tag,
                _rgb(eyes),
                eye_tag,
                style,
                ahoge == "1",
                _rgb(clothes),
            )
        )
    return tuple(out)


CAST: tuple[Character, ...] = _parse(_TABLE)
BY_NAME = {c.name: c for c in CAST}
ALIASES = {"saber_alter": "saber"}  # what config/demo.yaml classes.aliases says

ARTISTS = (
    "kumo_no_ue",
    "aoi_pencil",
    "tsukimi_dango",
    "sakura_ame",
    "hoshizora_studio",
    "mikan_box",
    "neko_no_te",
    "yuki_usagi",
    "ame_to_kasa",
    "hanabi_ya",
)
HAIR_STYLE_TAGS = {
    "long": ["long_hair"],
    "short": ["short_hair"],
    "twintails": ["long_hair", "twintails"],
    "ponytail": ["ponytail", "sidelocks"],
}
SKINS: tuple[RGB, ...] = ((255, 228, 212), (252, 222, 200), (250, 215, 190), (255, 233, 222), (240, 200, 170))
EXTRA_GENERAL = ("looking_at_viewer", "upper_body", "portrait", "bangs", "closed_mouth", "school_uniform", "shirt")
META_TAGS = ("commentary", "highres", "commentary_request", "translated")


YAW = 25.0  # max head turn (degrees)


def tag_id(name: str) -> int:
    """A stable Danbooru-style tag id for a tag name (same name -> same id in every file and run)."""
    return 1000 + zlib.crc32(name.encode()) % 2_000_000


def pick_characters(rng: np.random.Generator, n: int) -> list[Character]:
    """``n`` distinct characters drawn by cast weight (so frequencies stay skewed in multi-character posts)."""
    weights = np.array([c.weight for c in CAST], dtype=float)
    idx = rng.choice(len(CAST), size=n, replace=False, p=weights / weights.sum())
    return [CAST[int(i)] for i in idx]


def look_for(c: Character, rng: np.random.Generator) -> tuple[Look, dict]:
    """A post-specific look of character ``c`` (fixed colours and style, jittered shape and expression)."""
    mouth = str(rng.choice(["smile", "open", "shout", "line"], p=[0.4, 0.2, 0.15, 0.25]))
    blush = bool(rng.random() < 0.35)
    if rng.random() < 0.5:  # the character's usual outfit, or something else
        clothes = tuple(int(np.clip(x + rng.integers(-25, 26), 0, 255)) for x in c.clothes)
    else:
        clothes = tuple(int(x) for x in rng.integers(20, 250, 3))
    tone = float(rng.uniform(0.8, 1.15))  # artists shade the same character differently
    hair = tuple(int(np.clip(x * tone + rng.integers(-12, 13), 0, 255)) for x in c.hair)
    accessory = str(rng.choice(["none", "bow", "clip"], p=[0.5, 0.3, 0.2]))
    look = Look(
        hair=hair,  # type: ignore[arg-type]
        eyes=c.eyes,
        skin=SKINS[int(rng.integers(len(SKINS)))],
        clothes=clothes,  # type: ignore[arg-type]
        hair_style=c.hair_style,
        ahoge=c.ahoge,
        bang_count=int(rng.integers(4, 8)),
        eye_scale=float(rng.uniform(0.82, 1.2)),
        eye_height=float(rng.uniform(0.85, 1.15)),
        face_width=float(rng.uniform(0.9, 1.08)),
        chin=float(rng.uniform(0.7, 1.3)),
        mouth=mouth,
        blush=blush,
        lock_length=float(rng.uniform(0.7, 1.3)),
        bang_jitter=tuple(float(x) for x in rng.uniform(-1, 1, 7)),
        shine=float(rng.uniform(0.2, 0.5)),
        yaw=float(rng.uniform(-YAW, YAW)),
        bang_style=str(rng.choice(["pointed", "parted", "swept"], p=[0.5, 0.25, 0.25])),
        bang_length=float(rng.uniform(-0.1, 0.1)),
        eye_shift=(float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.06, 0.06))),
        shadow=float(rng.choice([0.0, 1.0, -1.0], p=[0.4, 0.3, 0.3]) * rng.uniform(0.4, 1.0)),
        accessory=accessory,
        accessory_colour=tuple(int(x) for x in rng.integers(40, 250, 3)),  # type: ignore[arg-type]
        light=(float(rng.uniform(0, 360)), float(rng.uniform(0.0, 0.45))),
        collar=str(rng.choice(["v", "sailor", "ribbon", "high"], p=[0.35, 0.25, 0.2, 0.2])),
    )
    tags = {
        "smile": mouth == "smile",
        "open_mouth": mouth in ("open", "shout"),
        "closed_mouth": mouth in ("smile", "line"),
    }
    tags["blush"] = blush
    tags["hair_bow"] = accessory == "bow"
    tags["sailor_collar"] = look.collar == "sailor"
    tags["turtleneck"] = look.collar == "high"
    tags["neck_ribbon"] = look.collar == "ribbon"
    tags["hairclip"] = accessory == "clip"
    tags["parted_bangs"] = look.bang_style == "parted"
    tags["swept_bangs"] = look.bang_style == "swept"
    return look, tags
