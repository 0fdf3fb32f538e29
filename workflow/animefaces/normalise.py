"""Normalise stage (per shard): upscale small crops, bring every crop to exactly S x S 8-bit sRGB, strict gate.

For each kept dedup row:
1. decode with :func:`animefaces.decode.load_rgb` (EXIF orientation, ICC -> sRGB, CMYK -> RGB, 16 -> 8 bit, alpha
   flattened onto ``normalise.background``);
2. upscale 2x while both sides are below S, up to ``normalise.upscale.max_factor``
   (:mod:`animefaces.upscale`, backend ``normalise.upscale.backend``);
3. resize keeping the aspect ratio (Lanczos) and ``normalise.fit``: ``pad`` (whole face, centred on
   ``normalise.pad_colour``, black by default like the seed's ``mogrify -extent -gravity center -background
   black``), ``crop_center`` or ``crop_top`` (fill the square, cut the excess centred / keeping the top);
4. write ``RES/normalise/images/<shard>/<item_id>.png`` (or ``.jpg`` with ``normalise.quality``) atomically;
5. strict gate (:func:`gate`): re-open the written file and check it is exactly S x S, 3-channel 8-bit RGB,
   of the configured format and fully decodable (the seed's ``identify | grep -v " JPEG 512x512 ..."``).

A failed gate is a ``gate_failed`` row (the file is removed), an exception in steps 1-4 a ``normalise_failed`` row
with the error in the details: nothing unchecked is passed downstream. A fault of the machine (disk full, I/O
error, a crop that vanished, out of memory: :mod:`animefaces.faults`) is never a row: it fails the job.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .atomic import write_bytes
from .cliflags import add_section_flags, section_or_exit, shard_runs_or_exit
from .decode import ImageRejected, load_rgb
from .faults import raise_if_fault
from .manifest import read_kept, write_manifest
from .stage import carried_columns, item_manifest, print_summary
from .upscale import Upscaler, make_upscaler, upscale_factor

STAGE = "normalise"
NORMALISE_FAILED = "normalise_failed"
GATE_FAILED = "gate_failed"
FORMATS = {"png": ("PNG", ".png"), "jpeg": ("JPEG", ".jpg")}
KEPT_COLUMNS = [
    "path",
    "sha256",
    "width",
    "height",
    "format",
    "upscale_factor",
    "crop_path",
    "crop_width",
    "crop_height",
    "label",
    "character",
]

KEPT_DTYPES = {
    "path": "string",
    "sha256": "string",
    "width": "Int64",
    "height": "Int64",
    "format": "string",
    "upscale_factor": "Int64",
    "crop_path": "string",
    "crop_width": "Int64",
    "crop_height": "Int64",
    "label": "Int64",
    "character": "string",
}


def fit_image(rgb: np.ndarray, size: int, fit: str, pad_colour: tuple[int, int, int]) -> np.ndarray:
    """Resize keeping the aspect ratio, then pad or crop to exactly ``size`` x ``size``."""
    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return rgb
    im = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    if fit == "pad":
        scale = size / max(w, h)
        nw, nh = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (size, size), tuple(int(c) for c in pad_colour))
        canvas.paste(im, ((size - nw) // 2, (size - nh) // 2))
        return np.asarray(canvas, dtype=np.uint8)
    if fit not in ("crop_center", "crop_top"):
        raise ValueError(f"normalise.fit must be pad, crop_center or crop_top, got {fit!r}")
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.Resampling.LANCZOS)
    left = (nw - size) // 2
    top = 0 if fit == "crop_top" else (nh - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def encode(rgb: np.ndarray, fmt: str, quality: int) -> bytes:
    """PNG (lossless) or baseline JPEG at ``quality``; no metadata (pixels are sRGB)."""
    buf = io.BytesIO()
    im = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    if fmt == "png":
        im.save(buf, format="PNG", compress_level=6)
    elif fmt == "jpeg":
        im.save(buf, format="JPEG", quality=int(quality))
    else:
        raise ValueError(f"normalise.format must be png or jpeg, got {fmt!r}")
    return buf.getvalue()


def _png_depth(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR (Pillow reports 16-bit RGB PNGs as mode RGB)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return data[24], data[25]


def gate(path: str | os.PathLike[str], size: int, fmt: str = "png") -> str | None:
    """Re-open a written image; return what is wrong with it, or None if it is exactly what downstream expects."""
    want = FORMATS[fmt][0]
    try:
        data = Path(path).read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            problems = []
            if im.format != want:
                problems.append(f"format {im.format} != {want}")
            if im.size != (size, size):
                problems.append(f"size {im.size[0]}x{im.size[1]} != {size}x{size}")
            if im.mode != "RGB":
                problems.append(f"mode {im.mode} != RGB")
            if want == "PNG":
                depth = _png_depth(data)
                if depth != (8, 2):
                    problems.append(f"PNG bit depth/colour type {depth} != (8, 2) (8-bit RGB)")
            elif want == "JPEG" and getattr(im, "bits", 8) != 8:
                problems.append(f"JPEG precision {im.bits} != 8 bits")
            if getattr(im, "n_frames", 1) != 1:
                problems.append(f"{im.n_frames} frames")
            im.load()
            arr = np.asarray(im)
            if arr.dtype != np.uint8 or arr.shape != (size, size, 3):
                problems.append(f"decodes to {arr.shape} {arr.dtype}")
    except Exception as exc:
        raise_if_fault(exc)  # our own file just written: vanished / I/O error / no space is the machine's fault
        return f"cannot re-open: {type(exc).__name__}: {exc}"
    return "; ".join(problems) or None


@dataclass
class Outcome:
    reason: str = ""
    details: dict = field(default_factory=dict)
    cols: dict = field(default_factory=dict)


def normalise_one(src: str | os.PathLike[str], dest: Path, params: dict, upscaler: Upscaler | None = None) -> Outcome:
    """Steps 1-5 of the module docstring for one crop; never raises for a bad image."""
    size = int(params["size"])
    fmt = params["format"]
    try:
        img = load_rgb(src, background=tuple(params["background"]))
        h, w = img.rgb.shape[:2]
        up = params["upscale"]
        factor = upscale_factor(w, h, size, int(up["max_factor"]))
        rgb = img.rgb
        if factor > 1:
            upscaler = upscaler or build_upscaler(params)
            rgb = upscaler.upscale(rgb, factor)
        out = fit_image(rgb, size, params["fit"], params["pad_colour"])
        data = encode(out, fmt, int(params["quality"]))
        write_bytes(dest, data, clean_stale=False)  # a directory output: emptied by Snakemake per job
    except ImageRejected as exc:
        return Outcome(NORMALISE_FAILED, {"error": exc.detail, "decoder_reason": exc.reason, "path": str(src)})
    except Exception as exc:
        raise_if_fault(exc)  # disk full, I/O error, a listed crop vanished, out of memory: fail the job
        return Outcome(NORMALISE_FAILED, {"error": f"{type(exc).__name__}: {exc}", "path": str(src)})
    problem = gate(dest, size, fmt)
    if problem:
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        return Outcome(GATE_FAILED, {"problem": problem, "path": str(dest)})
    details = {"exif_orientation": img.info["exif_orientation"]} if img.info.get("exif_transposed") else {}
    return Outcome(
        "",
        details,
        {
            "path": str(dest),
            "sha256": hashlib.sha256(data).hexdigest(),
            "width": size,
            "height": size,
            "format": fmt,
            "upscale_factor": factor,
            "crop_path": str(src),
            "crop_width": int(w),
            "crop_height": int(h),
        },
    )


def output_name(item_id: str, fmt: str) -> str:
    """``<item_id>.png|.jpg``; item ids are ``<post>_<n>`` but anything path-like is refused."""
    if not item_id or "/" in item_id or "\\" in item_id or item_id.startswith("."):
        raise ValueError(f"item id {item_id!r} cannot be used as a file name")
    return item_id + FORMATS[fmt][1]


def build_upscaler(params: dict, model: str | os.PathLike[str] | None = None) -> Upscaler:
    """The configured backend; ``model`` (the learned upscaler's file, --upscale-model) overrides
    ``upscale.weights``."""
    up = params["upscale"]
    return make_upscaler(up["backend"], device=up["device"], weights=str(model or up["weights"]))


def normalise_frame(
    items: pd.DataFrame,
    shard: str,
    params: dict,
    images_dir: str | os.PathLike[str],
    threads: int = 1,
    upscale_model: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """The normalise manifest for the kept rows of a dedup manifest (one output row per input row)."""
    images_dir = Path(images_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    records = items.to_dict(orient="records")
    up = params["upscale"]
    # one backend instance per job (a torch model is loaded once), built only if some crop needs upscaling
    needs = any(
        upscale_factor(int(r.get("width") or 0), int(r.get("height") or 0), int(params["size"]), int(up["max_factor"]))
        > 1
        for r in records
        if r.get("width") and r.get("height")
    )
    upscaler = build_upscaler(params, upscale_model) if needs else None

    def run(rec: dict) -> Outcome:
        try:
            dest = images_dir / output_name(str(rec["item_id"]), params["format"])
        except ValueError as exc:
            return Outcome(NORMALISE_FAILED, {"error": str(exc)})
        return normalise_one(rec["path"], dest, params, upscaler)

    carry = carried_columns(items, replaced=("path", "width", "height"))
    defaults = {"label": None, "character": ""}
    return item_manifest(
        STAGE,
        shard,
        items,
        run,
        threads,
        carry,
        KEPT_COLUMNS,
        KEPT_DTYPES,
        kept_defaults=defaults,
        unit="faces",
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="animefaces normalise",
        description="Upscale, resize/pad to S x S 8-bit sRGB, write PNG/JPEG and gate every output (one shard, or "
        "several in turn: each flag one value per shard).",
    )
    ap.add_argument(
        "--input", nargs="+", required=True, help="dedup manifest of each shard (RES/dedup/manifests/<shard>.parquet)"
    )
    ap.add_argument("--output", nargs="+", required=True, help="normalise manifest to write for each shard")
    ap.add_argument("--images", nargs="+", required=True, help="directory for each shard's normalised images")
    ap.add_argument("--shard", nargs="+", help="shard names (default: the input files' stems)")
    ap.add_argument("--threads", type=int, default=1, help="worker threads (default: %(default)s)")
    ap.add_argument(
        "--upscale-model",
        default="",
        help="model file of normalise.upscale.backend learned (RES/upscale/model.pt, from animefaces upscale_train)",
    )
    add_section_flags(ap, STAGE)
    args = ap.parse_args(argv)
    params = section_or_exit(ap, args, STAGE)
    runs = shard_runs_or_exit(ap, args.shard, input=args.input, output=args.output, images=args.images)
    for shard, paths in runs:
        t0 = time.perf_counter()
        items = read_kept(paths["input"])
        frame = normalise_frame(items, shard, params, paths["images"], args.threads, args.upscale_model or None)
        write_manifest(frame, paths["output"])
        print_summary(frame, items, shard, t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
