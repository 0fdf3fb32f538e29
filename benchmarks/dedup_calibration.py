"""Near-duplicate verification calibration: planted edits of real faces, distinct faces, and the demo's faces.

    .venv/bin/python benchmarks/dedup_calibration.py [--shared ../shared/data] [--demo results/demo] [--step 1]

For every face under ``../shared/data/faces`` (getchu 64 px, character crops, selfie2anime 256 px) the script
plants edited copies (brightness +-10%, contrast +-20%, gamma 0.8/1.25, hue shift +-15 degrees, JPEG q=90/50,
resize 0.5x/2x, crops of 2% and 3% per side, and a mirror, which must *not* merge) and asks whether dedup would
merge each copy with its original:

- before: the previous rule (pHash <= 8 and 4x4 colour thumbnails within 6 levels mean absolute difference);
- after: the current defaults (pHash <= ``dedup.max_distance`` and
  :func:`animefaces.dedup.hashing.same_picture` with ``dedup.max_colour_residual``).

Distinct pairs: every pair of different real faces within the hash limit, and every pair of demo faces from
different posts outside one planted duplicate group (``--demo``: a finished demo run's crop stage and its
``ground_truth.json``), each judged by both rules. Prints Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

from animefaces.config import defaults  # noqa: E402
from animefaces.decode import load_rgb  # noqa: E402
from animefaces.dedup.hashing import (  # noqa: E402
    as_uint64,
    colour_residual,
    colour_thumb,
    perceptual_hash,
    same_picture,
)

OLD_T, OLD_COLOUR = 8, 6.0


def old_thumb(rgb: np.ndarray) -> np.ndarray:
    """The previous colour signature: 4x4 RGB block means."""
    return np.asarray(Image.fromarray(rgb).resize((4, 4), Image.Resampling.BOX), dtype=np.int16).ravel()


def _hue(im: Image.Image, degrees: float) -> Image.Image:
    h, s, v = im.convert("HSV").split()
    shift = round(degrees * 256 / 360)
    return Image.merge("HSV", (h.point(lambda x: (x + shift) % 256), s, v)).convert("RGB")


def edits(rgb: np.ndarray) -> dict[str, np.ndarray]:
    im = Image.fromarray(rgb)
    w, h = im.size

    def jpeg(q: int) -> np.ndarray:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)
        return np.asarray(Image.open(buf).convert("RGB"))

    def crop(frac: float) -> np.ndarray:
        c = max(1, round(frac * w))
        return np.asarray(im.crop((c, c, w - c, h - c)))

    def gamma(g: float) -> np.ndarray:
        return np.asarray(im.point(lambda x: round(255 * (x / 255) ** g)))

    return {
        "brightness +10%": np.asarray(ImageEnhance.Brightness(im).enhance(1.1)),
        "brightness -10%": np.asarray(ImageEnhance.Brightness(im).enhance(0.9)),
        "contrast +20%": np.asarray(ImageEnhance.Contrast(im).enhance(1.2)),
        "contrast -20%": np.asarray(ImageEnhance.Contrast(im).enhance(0.8)),
        "gamma 0.8": gamma(0.8),
        "gamma 1.25": gamma(1.25),
        "hue +15°": np.asarray(_hue(im, 15)),
        "hue -15°": np.asarray(_hue(im, -15)),
        "jpeg q=90": jpeg(90),
        "jpeg q=50": jpeg(50),
        "resize 0.5x": np.asarray(im.resize((w // 2, h // 2), Image.Resampling.LANCZOS)),
        "resize 2x": np.asarray(im.resize((w * 2, h * 2), Image.Resampling.LANCZOS)),
        "crop 2%": crop(0.02),
        "crop 3%": crop(0.03),
        "mirror (must not merge)": np.ascontiguousarray(rgb[:, ::-1]),
    }


def face_files(shared: Path) -> list[Path]:
    files: list[Path] = []
    for sub in ("getchu", "characters", "selfie2anime"):
        files += sorted(p for p in (shared / "faces" / sub).rglob("*") if p.is_file())
    return files


class Sig:
    """Everything both rules need about one picture."""

    def __init__(self, rgb: np.ndarray):
        self.hash = int(as_uint64([perceptual_hash(rgb)])[0])
        self.old = old_thumb(rgb)
        self.thumb = colour_thumb(rgb)


def judge(a: Sig, b: Sig, t: int, limit: float) -> tuple[bool, bool, float, int]:
    """(merged before, merged after, residual, hash distance) for one pair."""
    d = (a.hash ^ b.hash).bit_count()
    before = d <= OLD_T and float(np.abs(a.old - b.old).mean()) <= OLD_COLOUR
    res, mir, chroma = (x[0] for x in colour_residual([a.thumb], [b.thumb]))
    after = d <= t and bool(same_picture([res], [mir], [chroma], limit)[0])
    return before, after, float(res), d


def distinct_pairs(sigs: list[Sig], groups: list[str], t: int, limit: float) -> dict:
    """Judge every pair of different groups within max(t, OLD_T) hash bits."""
    h = np.array([s.hash for s in sigs], dtype=np.uint64)
    d = np.bitwise_count(h[:, None] ^ h[None, :])
    iu = np.triu_indices(len(sigs), 1)
    g = np.asarray(groups)
    near = [(a, b) for a, b in zip(*iu, strict=True) if d[a, b] <= max(t, OLD_T) and g[a] != g[b]]
    out = {"pairs": len(iu[0]), "near": len(near), "before": 0, "after": 0, "after_pairs": [], "min_res": np.inf}
    for a, b in near:
        before, after, res, dist = judge(sigs[a], sigs[b], t, limit)
        out["before"] += before
        out["after"] += after
        if dist <= t:
            out["min_res"] = min(out["min_res"], res)
        if after:
            out["after_pairs"].append((a, b, dist, round(res, 2)))
    return out


def demo_faces(res: Path) -> tuple[list[np.ndarray], list[str]]:
    """The demo's kept crops and, per crop, its duplicate group (the source post of planted copies)."""
    frames = [pd.read_parquet(p) for p in sorted((res / "crop" / "manifests").glob("*.parquet"))]
    crops = pd.concat(frames)
    crops = crops[crops["status"] == "kept"]
    cfg_root = None
    for cand in (res.parent / "demo_mirror", Path("results/demo_mirror")):
        if (cand / "ground_truth.json").exists():
            cfg_root = cand
            break
    source = {}
    if cfg_root is not None:
        truth = json.loads((cfg_root / "ground_truth.json").read_text())
        source = {int(p["id"]): int(p["source_id"]) for p in truth["posts"] if p.get("source_id") is not None}
    rgbs, groups = [], []
    for rec in crops.itertuples():
        rgbs.append(load_rgb(rec.path).rgb)
        post = int(rec.post_id)
        groups.append(str(source.get(post, post)))
    return rgbs, groups


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.environ.get("ANIMEFACES_SHARED", "../shared/data"))
    ap.add_argument("--demo", default="", help="a finished demo run's results folder (results/demo)")
    ap.add_argument("--step", type=int, default=1, help="use every step-th face (quick runs)")
    ap.add_argument("--max-distance", type=int, help="override dedup.max_distance")
    ap.add_argument("--max-colour-residual", type=float, help="override dedup.max_colour_residual")
    args = ap.parse_args(argv)
    cfg = defaults()["dedup"]
    t = int(cfg["max_distance"] if args.max_distance is None else args.max_distance)
    limit = float(cfg["max_colour_residual"] if args.max_colour_residual is None else args.max_colour_residual)
    t0 = time.perf_counter()
    files = face_files(Path(args.shared))[:: args.step]
    rgbs = [load_rgb(p).rgb for p in files]
    sigs = [Sig(x) for x in rgbs]
    held = ["selfie2anime" in str(p) for p in files]
    rows: dict[str, list[tuple[bool, bool, float, int, bool]]] = {}
    dists: dict[str, list[int]] = {}
    for rgb, sig, ho in zip(rgbs, sigs, held, strict=True):
        for name, arr in edits(rgb).items():
            rows.setdefault(name, []).append((*judge(sig, Sig(arr), t, limit), ho))
            dists.setdefault(name, []).append(rows[name][-1][3])
    print(
        f"{len(files)} real faces ({sum(held)} selfie2anime, {len(files) - sum(held)} getchu + character crops); "
        f"after = max_distance {t}, max_colour_residual {limit:g}. Cells: copies merged with their "
        "original.\n"
    )
    print(
        "| edit | before (pHash<=8 + 4x4 colour<=6) | after (all) | after (selfie2anime only) | residual median / max |"
    )
    print("|---|---|---|---|---|")
    planted_before = planted_after = planted = 0
    for name, v in rows.items():
        arr = np.array([r[:2] for r in v], dtype=bool)
        res = np.array([r[2] for r in v])
        ho = np.array([r[4] for r in v], dtype=bool)
        n = len(v)
        print(
            f"| {name} | {arr[:, 0].sum()}/{n} | {arr[:, 1].sum()}/{n} | {arr[ho, 1].sum()}/{ho.sum()} | "
            f"{np.median(res):.1f} / {res.max():.1f} |"
        )
        if not name.startswith("mirror"):
            planted += n
            planted_before += int(arr[:, 0].sum())
            planted_after += int(arr[:, 1].sum())
    print(
        f"| **all planted copies (mirror excluded)** | {planted_before}/{planted} ({planted_before / planted:.1%}) | "
        f"{planted_after}/{planted} ({planted_after / planted:.1%}) | | |"
    )
    print(
        "\npHash distance to the original, 95th percentile / max: "
        + ", ".join(f"{k} {np.percentile(v, 95):.0f}/{max(v)}" for k, v in dists.items())
    )
    sets = [("real faces", sigs, [f"{p.parent.name}/{p.name}" for p in files])]
    if args.demo:
        drgb, dgroups = demo_faces(Path(args.demo))
        sets.append(("demo faces (different posts, not a planted copy)", [Sig(x) for x in drgb], dgroups))
    print()
    print("| distinct pairs | all pairs | within the hash limit | merged before | merged after | smallest residual |")
    print("|---|---|---|---|---|---|")
    for label, ss, groups in sets:
        r = distinct_pairs(ss, groups, t, limit)
        print(
            f"| {label} ({len(ss)} faces) | {r['pairs']} | {r['near']} | {r['before']} | {r['after']} | "
            f"{r['min_res']:.1f} |"
        )
        for a, b, dist, res in r["after_pairs"][:10]:
            print(f"  merged after: {groups[a]} ~ {groups[b]} ({dist} bits, residual {res})")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
