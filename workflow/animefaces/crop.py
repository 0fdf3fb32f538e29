"""Face cropping stage (one job per shard): decode each kept ingest post, detect faces, write lossless crops.

Input: ``RES/ingest/manifests/{shard}.parquet`` (kept rows: ``path``, ``file_ext``, ``label``, ``character``).
Output: ``RES/crop/images/{shard}/{post_id}_{n}.png`` (native resolution, PNG) and
``RES/crop/manifests/{shard}.parquet`` with one kept row per crop (``parent_id`` = the post's item id) and one
dropped row per post without a crop (``no_face``, ``face_too_small``, or the decoder's reason code).

Faces are numbered ``n = 0, 1, ...`` in detection order: score descending, then top-to-bottom, left-to-right
(:func:`animefaces.detect.order_faces`). Crops below ``min_crop`` px are not written and not numbered.

Crop geometry (:func:`crop_box`): the face box as detected (``geometry: box``, the seed's) or a portrait crop
(box grown by ``margin_side``/``margin_top``/``margin_bottom``), optionally made square (``square``; ``align``
center or top), then fitted to the image (``edge: shift`` moves it inside, ``edge: pad`` keeps it where it is and
pads). A crop is never shrunk: a crop larger than the image is padded even in shift mode, and the ledger details
say so.

Work inside a job runs on ``--threads`` workers, threads or processes as the detector's registry entry says
(:data:`animefaces.detect.DETECTORS`: the cascade releases the GIL in OpenCV, libnvxs does not). The manifest is
built by the per-item stage skeleton (:func:`animefaces.stage.item_manifest`: results in input order, so the output
does not depend on the worker count; a post's result lists its crops as ``kept_items``).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import write_bytes
from .cliflags import add_section_flags, section_or_exit, shard_runs_or_exit
from .columns import int_or_none, str_or_empty
from .config import fill_defaults
from .decode import ImageRejected, load_rgb, read_bgr, read_file
from .detect import Detector, Face, detector_kind, make_detector
from .faults import raise_if_fault
from .manifest import read_kept, write_manifest
from .stage import KeptItem, item_manifest

log = logging.getLogger("animefaces.crop")

STAGE = "crop"
NO_FACE = "no_face"
FACE_TOO_SMALL = "face_too_small"
UNDECODABLE = "undecodable"
UNREADABLE = "unreadable"
KEPT_COLUMNS = [
    "path",
    "source_path",
    "source_ext",
    "width",
    "height",
    "source_width",
    "source_height",
    "face_index",
    "box_x",
    "box_y",
    "box_w",
    "box_h",
    "crop_x",
    "crop_y",
    "crop_w",
    "crop_h",
    "padded",
    "detector",
    "score",
    "label",
    "character",
]

_INTS = ["width", "height", "source_width", "source_height", "face_index", "label"]
_INTS += ["box_x", "box_y", "box_w", "box_h", "crop_x", "crop_y", "crop_w", "crop_h"]
KEPT_DTYPES = {
    **dict.fromkeys(_INTS, "Int64"),
    "score": "Float64",
    "padded": "boolean",
    **dict.fromkeys(["path", "source_path", "source_ext", "detector", "character"], "string"),
}

# ----------------------------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class CropBox:
    """A crop in source-image coordinates (may extend past the image) and the padding it needs there.

    ``pad`` = (left, top, right, bottom) pixels outside the image; ``shifted`` = (dx, dy) the crop was moved by
    to fit inside (edge mode shift)."""

    x: int
    y: int
    w: int
    h: int
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)
    shifted: tuple[int, int] = (0, 0)

    @property
    def padded(self) -> bool:
        return any(self.pad)


def _fit_axis(start: int, size: int, limit: int, edge: str) -> tuple[int, int, int]:
    """Fit a 1-D interval [start, start+size) to [0, limit): returns (new start, pad before, pad after)."""
    if edge == "shift" and size <= limit:
        start = min(max(start, 0), limit - size)
    elif edge == "shift":  # larger than the image: cover all of it, as close to the wanted position as possible
        start = min(max(start, limit - size), 0)
    return start, max(0, -start), max(0, start + size - limit)


def crop_box(face: Face, image_w: int, image_h: int, params: dict) -> CropBox:
    """Where to crop ``face`` from an ``image_w`` x ``image_h`` image under the crop config ``params``."""
    x, y, w, h = face.x, face.y, face.w, face.h
    if params["geometry"] == "portrait":
        side = round(params["margin_side"] * w)
        top = round(params["margin_top"] * h)
        bottom = round(params["margin_bottom"] * h)
        x, w = x - side, w + 2 * side
        y, h = y - top, h + top + bottom
    if params["square"] and w != h:
        if w < h:
            x -= (h - w) // 2
            w = h
        else:
            if params["align"] == "center":
                y -= (w - h) // 2
            h = w
    edge = params["edge"]
    if edge not in ("shift", "pad"):
        raise ValueError(f"config key crop.edge must be 'shift' or 'pad', got {edge!r}")
    nx, pad_l, pad_r = _fit_axis(x, w, image_w, edge)
    ny, pad_t, pad_b = _fit_axis(y, h, image_h, edge)
    return CropBox(nx, ny, w, h, (pad_l, pad_t, pad_r, pad_b), (nx - x, ny - y))


def apply_crop(bgr: np.ndarray, box: CropBox, pad_mode: str, pad_value: int) -> np.ndarray:
    """Cut ``box`` out of ``bgr``, padding the part outside the image (the result is exactly box.w x box.h)."""
    import cv2

    ih, iw = bgr.shape[:2]
    x0, y0 = max(box.x, 0), max(box.y, 0)
    x1, y1 = min(box.x + box.w, iw), min(box.y + box.h, ih)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"crop {box} does not overlap the {iw}x{ih} image")
    out = bgr[y0:y1, x0:x1]
    if box.padded:
        left, top, right, bottom = box.pad
        border = {"replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101, "constant": cv2.BORDER_CONSTANT}
        if pad_mode not in border:
            raise ValueError(f"config key crop.pad_mode must be one of {list(border)}, got {pad_mode!r}")
        if pad_mode == "reflect" and (max(left, right) >= out.shape[1] or max(top, bottom) >= out.shape[0]):
            pad_mode = "replicate"  # reflection needs a pad smaller than the visible part
        out = cv2.copyMakeBorder(out, top, bottom, left, right, border[pad_mode], value=(pad_value,) * 3)
    return np.ascontiguousarray(out)


# ----------------------------------------------------------------------------------------------- decoding


def has_transparency(head: bytes) -> bool:
    """Whether a file may carry transparency (PNG alpha/tRNS, WebP alpha, GIF), judged from its first bytes.

    OpenCV's IMREAD_COLOR drops alpha and shows whatever colour transparent pixels store (often black); such
    files are decoded with :func:`animefaces.decode.load_rgb`, which flattens them onto white like the later
    stages do."""
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        if len(head) > 25 and head[25] in (4, 6):  # IHDR colour type: grey+alpha, RGBA
            return True
        idat = head.find(b"IDAT")
        return b"tRNS" in head[: idat if idat > 0 else len(head)]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        if head[12:16] == b"VP8X":
            return len(head) > 20 and bool(head[20] & 0x10)
        if head[12:16] == b"VP8L" and len(head) >= 25:
            return bool((int.from_bytes(head[21:25], "little") >> 28) & 1)
        return False
    return head[:4] == b"GIF8"


def decode_for_crop(path: str | os.PathLike[str]) -> np.ndarray:
    """BGR pixels for detection and cropping; raises ImageRejected with a ledger reason code.

    A source that is not a regular file (FIFO, socket, device) is never opened (``not_regular_file``); one we may
    not read (its own permissions, a symlink loop, ...) is ``unreadable``. A fault of the machine (I/O error, a
    file ingest listed that has vanished, out of memory) is raised: the job fails and a rerun redoes it."""
    try:
        head = read_file(path, 1 << 16)
        if head and has_transparency(head):
            return np.ascontiguousarray(load_rgb(path).rgb[:, :, ::-1])
        return read_bgr(path)
    except OSError as exc:
        raise_if_fault(exc, own_file=False)
        raise ImageRejected(UNREADABLE, f"cannot read file: {exc}", path) from exc


# ----------------------------------------------------------------------------------------------- one post


@dataclass
class PostResult:
    """What happened to one post: written crops or a drop reason; ``kept_items`` = the crops' manifest rows
    (:func:`crop_record`), as the stage skeleton (:func:`animefaces.stage.item_manifest`) reads them."""

    crops: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    cols: dict[str, Any] = field(default_factory=dict)
    kept_items: list[KeptItem] | None = None


def _box_list(face: Face) -> list[int]:
    return [face.x, face.y, face.w, face.h]


def crop_post(
    post_id: int, source_path: str, detector: Detector, params: dict, images_dir: Path, detector_info: dict
) -> PostResult:
    """Decode, detect and crop one post, writing its PNGs; never raises for a bad image."""
    import cv2

    try:
        bgr = decode_for_crop(source_path)
    except ImageRejected as exc:
        return PostResult(reason=exc.reason, details={"error": exc.detail, "source_path": source_path})
    except cv2.error as exc:
        raise_if_fault(exc)  # OpenCV's allocator failing is the machine's fault, not the image's
        return PostResult(reason=UNDECODABLE, details={"error": str(exc).strip(), "source_path": source_path})
    ih, iw = bgr.shape[:2]
    faces = detector.detect(bgr)
    base = {**detector_info, "source_size": [iw, ih], "faces_detected": len(faces)}
    if not faces:
        return PostResult(reason=NO_FACE, details={**base, "faces": []})
    min_crop = int(params["min_crop"])
    boxes = [(f, crop_box(f, iw, ih, params)) for f in faces]
    small = [(f, b) for f, b in boxes if min(b.w, b.h) < min_crop]
    good = [(f, b) for f, b in boxes if min(b.w, b.h) >= min_crop]
    if not good:
        return PostResult(
            reason=FACE_TOO_SMALL,
            details={
                **base,
                "min_crop": min_crop,
                "faces": [{"box": _box_list(f), "score": f.score, "crop_size": [b.w, b.h]} for f, b in small],
            },
        )
    level = int(params["png_compression"])
    result = PostResult()
    for n, (face, box) in enumerate(good):
        pixels = apply_crop(bgr, box, params["pad_mode"], int(params["pad_value"]))
        ok, buf = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, level])
        if not ok:
            raise RuntimeError(f"OpenCV could not encode crop {n} of post {post_id} as PNG")
        out = images_dir / f"{post_id}_{n}.png"
        write_bytes(out, buf.tobytes(), clean_stale=False)  # the folder is cleared once per job
        details = {
            **base,
            "box": _box_list(face),
            "score": face.score,
            "crop": [box.x, box.y, box.w, box.h],
            "faces_too_small": [{"box": _box_list(f), "score": f.score, "crop_size": [b.w, b.h]} for f, b in small],
        }
        if box.padded:
            details["pad"] = list(box.pad)
            details["edge"] = "pad" if params["edge"] == "pad" else "shift+pad (crop larger than the image)"
        if any(box.shifted):
            details["shifted"] = list(box.shifted)
        result.crops.append(
            {
                "n": n,
                "path": str(out),
                "width": int(pixels.shape[1]),
                "height": int(pixels.shape[0]),
                "source_width": iw,
                "source_height": ih,
                "box": face.box(),
                "crop": (box.x, box.y, box.w, box.h),
                "padded": box.padded,
                "score": face.score,
                "details": details,
            }
        )
    return result


def crop_record(rec: dict, detector: Detector, params: dict, images_dir: Path, detector_info: dict) -> PostResult:
    """:func:`crop_post` for one ingest manifest row; a kept post's crops become its ``kept_items`` (one manifest
    row each, columns in ``KEPT_COLUMNS`` order)."""
    post_id, source = int(rec["post_id"]), str(rec["path"])
    result = crop_post(post_id, source, detector, params, images_dir, detector_info)
    if result.reason:
        return result
    result.kept_items = []
    for c in result.crops:
        (bx, by, bw, bh), (cx, cy, cw, ch) = c["box"], c["crop"]
        cols = {
            "path": c["path"],
            "source_path": source,
            "source_ext": str_or_empty(rec.get("file_ext", "")),
            "width": c["width"],
            "height": c["height"],
            "source_width": c["source_width"],
            "source_height": c["source_height"],
            "face_index": c["n"],
            "box_x": bx,
            "box_y": by,
            "box_w": bw,
            "box_h": bh,
            "crop_x": cx,
            "crop_y": cy,
            "crop_w": cw,
            "crop_h": ch,
            "padded": c["padded"],
            "detector": detector_info["detector"],
            "score": c["score"],
            "label": int_or_none(rec.get("label")),
            "character": str_or_empty(rec.get("character")),
        }
        result.kept_items.append(KeptItem(f"{post_id}_{c['n']}", c["details"], cols))
    return result


# ----------------------------------------------------------------------------------------------- the shard job


# Worker processes (for detectors registered with parallelism "processes"): state set once per process.
_PROC: dict[str, Any] = {}


def _init_process(
    build: Callable[[dict, str | None], Detector],
    params: dict,
    cascade_path: str | None,
    images_dir: str,
    detector_info: dict,
) -> None:
    # ``build`` travels by reference (module + name): a detector registered outside this package works too.
    _PROC.update(detector=build(params, cascade_path), params=params, images_dir=Path(images_dir), info=detector_info)


def _work_in_process(rec: dict) -> PostResult:
    return crop_record(rec, _PROC["detector"], _PROC["params"], _PROC["images_dir"], _PROC["info"])


def _clear_stale(images_dir: Path) -> None:
    """Remove crops of an earlier run so the folder holds exactly this run's output."""
    if images_dir.is_dir():
        for p in images_dir.glob("*.png"):
            p.unlink()


def run_crop(
    posts: pd.DataFrame,
    shard: str,
    images_dir: str | os.PathLike[str],
    params: dict,
    cascade_path: str | os.PathLike[str] | None = None,
    threads: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Crop every post in ``posts`` (kept ingest rows) and return the crop manifest frame (not written)."""
    import cv2

    params = fill_defaults(params, STAGE)
    for col in ("post_id", "item_id", "path"):
        if col not in posts.columns and len(posts):  # an empty shard may come without stage columns
            raise ValueError(f"ingest manifest has no column {col!r} (is it an ingest manifest?)")
    if not len(posts):
        posts = pd.DataFrame(columns=["post_id", "item_id", "path"])
    # only what a worker reads travels to it (a process pool pickles every row)
    posts = posts[[c for c in ("post_id", "item_id", "path", "file_ext", "label", "character") if c in posts]]
    images_dir = Path(images_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    _clear_stale(images_dir)
    threads = max(1, int(threads))
    local = threading.local()
    local.detector = make_detector(params, cascade_path)  # fail early (missing cascade, bad key); reused if threads=1
    detector_info = local.detector.describe()
    cv_threads = cv2.getNumThreads()
    if threads > 1:
        # Parallelism comes from our workers (whole images); OpenCV's own pool would oversubscribe the cores.
        cv2.setNumThreads(1)

    def work(rec: dict) -> PostResult:
        det = getattr(local, "detector", None)
        if det is None:
            det = local.detector = make_detector(params, cascade_path)
        return crop_record(rec, det, params, images_dir, detector_info)

    pool: Executor | None = None
    fn: Callable[[dict], PostResult] = work
    kind = detector_kind(params)
    if threads > 1 and kind.parallelism == "processes":
        # The detector keeps the GIL: threads would run one at a time. Fresh (spawned) processes, one detector each.
        pool = ProcessPoolExecutor(
            threads,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_process,
            initargs=(
                kind.build,
                params,
                None if cascade_path is None else str(cascade_path),
                str(images_dir),
                detector_info,
            ),
        )
        fn = _work_in_process
    # Otherwise threads: OpenCV releases the GIL in decode, detection and PNG encoding (ordered_map's own pool).
    t0 = time.perf_counter()
    try:
        frame = item_manifest(
            STAGE,
            shard,
            posts,
            fn,
            threads,
            carry=[],
            kept_columns=KEPT_COLUMNS,
            kept_dtypes=KEPT_DTYPES,
            unit="images",
            pool=pool,
            progress=progress,
        )
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        cv2.setNumThreads(cv_threads)
    elapsed = time.perf_counter() - t0
    n_crops = int((frame["status"] == "kept").sum())
    log.info(
        "shard %s: %d posts -> %d crops, %d posts dropped in %.1f s (%.1f img/s, %d threads)",
        shard,
        len(posts),
        n_crops,
        len(frame) - n_crops,
        elapsed,
        len(posts) / elapsed if elapsed > 0 else 0.0,
        threads,
    )
    return frame


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="animefaces crop",
        description="Detect and crop faces for one shard, or several in turn (each flag: one value per shard).",
    )
    ap.add_argument("--shard", nargs="+", help="shard names, e.g. 000 (default: the --manifest file stems)")
    ap.add_argument("--manifest", nargs="+", required=True, help="input: the ingest manifest of each shard (.parquet)")
    ap.add_argument("--out-manifest", nargs="+", required=True, help="output: the crop manifest of each shard")
    ap.add_argument("--images", nargs="+", required=True, help="each shard's crop folder ({post_id}_{n}.png)")
    ap.add_argument("--cascade", help="lbpcascade_animeface.xml (needed for detector lbpcascade)")
    ap.add_argument("--threads", type=int, default=1, help="worker threads inside this job (default: %(default)s)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_section_flags(ap, "crop")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    params = section_or_exit(ap, args, "crop")
    runs = shard_runs_or_exit(
        ap, args.shard, manifest=args.manifest, out_manifest=args.out_manifest, images=args.images
    )
    for shard, paths in runs:
        try:
            posts = read_kept(paths["manifest"])
            df = run_crop(posts, shard, paths["images"], params, args.cascade, args.threads, not args.no_progress)
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: shard {shard}: {exc}", file=sys.stderr)
            return 1
        write_manifest(df, paths["out_manifest"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
