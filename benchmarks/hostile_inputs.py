"""Hostile inputs -> outcome table (RELIABILITY.md): every kind of bad file or metadata line must end as a ledger
row with a sensible reason, never a crash, a hang, or an input without a row.

Each kind is generated here (no third-party data), put in its own dataset (folder mode, or a Danbooru mirror with
a one-line metadata file), and run through ingest -> crop -> clean in a fresh subprocess with a timeout, so a
crash or hang of one kind cannot hide the others. The outcome is the last ledger row of the hostile item
("crop/not_regular_file", "clean/kept", ...), "NO ROW" (an input the ledger lost), "CRASH <stage>: ...",
"HANG" (timeout) or "FAULT" (the job failed as it must for an environment error).

    python benchmarks/hostile_inputs.py [--kinds a,b] [--timeout 90] [--jobs 2] [--markdown]

Rerun it after changes to ingest/crop/clean; the table goes into RELIABILITY.md with the command.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workflow"))

from PIL import Image  # noqa: E402

ID = 4242  # the post id of the hostile item (Danbooru kinds; folder kinds use the file name)


def _rgb(h: int = 96, w: int = 128) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], axis=2).astype(np.uint8)


def _encode(fmt: str, arr: np.ndarray | None = None, mode: str = "RGB", **kw) -> bytes:
    im = Image.fromarray(_rgb() if arr is None else arr)
    if mode != "RGB":
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + tag + data + zlib.crc32(tag + data).to_bytes(4, "big")


def _png_header_only(w: int, h: int) -> bytes:
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))


# ----------------------------------------------------------------------------------------------- folder kinds
# each writes into the dataset root and returns the relative path of the hostile item


def _write(root: Path, name: str, data: bytes) -> str:
    (root / name).write_bytes(data)
    return name


FOLDER_KINDS: dict[str, Callable[[Path], str]] = {
    "control_png": lambda r: _write(r, "1.png", _encode("PNG")),
    "control_jpeg": lambda r: _write(r, "1.jpg", _encode("JPEG")),
    "empty_file": lambda r: _write(r, "1.jpg", b""),
    "random_bytes_jpg": lambda r: _write(r, "1.jpg", np.random.default_rng(1).bytes(5000)),
    "text_named_jpg": lambda r: _write(r, "1.jpg", b"<html><body>403 Forbidden</body></html>\n"),
    "truncated_jpeg": lambda r: _write(r, "1.jpg", _encode("JPEG")[:-900]),
    "truncated_png": lambda r: _write(r, "1.png", _encode("PNG")[:-300]),
    "png_bad_crc": lambda r: _write(r, "1.png", _encode("PNG")[:40] + b"\x00\x00" + _encode("PNG")[42:]),
    "bomb_png_header": lambda r: _write(r, "1.png", _png_header_only(100_000, 100_000)),
    "zero_size_png_header": lambda r: _write(r, "1.png", _png_header_only(0, 0)),
    "jpeg_named_png": lambda r: _write(r, "1.png", _encode("JPEG")),
    "one_pixel_png": lambda r: _write(r, "1.png", _encode("PNG", _rgb(1, 1))),
    "extreme_aspect_png": lambda r: _write(r, "1.png", _encode("PNG", _rgb(1, 4000))),
    "grey_16bit_png": lambda r: _write(r, "1.png", _encode("PNG", (_rgb()[..., 0].astype(np.uint16) * 257))),
    "cmyk_jpeg": lambda r: _write(r, "1.jpg", _encode("JPEG", mode="CMYK")),
    "palette_alpha_png": lambda r: _write(r, "1.png", _encode("PNG", mode="P", transparency=0)),
    "rgba_png": lambda r: _write(r, "1.png", _encode("PNG", mode="RGBA")),
    "animated_gif": lambda r: _write(
        r, "1.gif", _encode("GIF", save_all=True, append_images=[Image.new("RGB", (128, 96))])
    ),
    "webp_lossless": lambda r: _write(r, "1.webp", _encode("WEBP", lossless=True)),
    "webp_truncated": lambda r: _write(r, "1.webp", _encode("WEBP")[:-200]),
    "bmp": lambda r: _write(r, "1.bmp", _encode("BMP")),
    "tiff_ext_tif": lambda r: _write(r, "1.tif", _encode("TIFF")),
    "tiff_ext_tiff": lambda r: _write(r, "1.tiff", _encode("TIFF")),
    "avif_ext_garbage": lambda r: _write(r, "1.avif", b"\x00\x00\x00\x1cftypavif" + b"\x00" * 100),
    "heic_ext_garbage": lambda r: _write(r, "1.heic", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 100),
    "no_extension_png": lambda r: _write(r, "1", _encode("PNG")),
    "uppercase_ext": lambda r: _write(r, "1.JPG", _encode("JPEG")),
    "bad_exif_orientation": lambda r: _write(r, "1.jpg", _encode("JPEG", exif=b"Exif\x00\x00II*\x00garbage")),
    "invalid_icc_profile": lambda r: _write(r, "1.jpg", _encode("JPEG", icc_profile=b"not a profile" * 10)),
    "png_text_bomb": lambda r: _write(
        r,
        "1.png",
        _encode("PNG")[:-12]
        + _png_chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"a" * 80_000_000))
        + _encode("PNG")[-12:],
    ),
    "fifo_named_jpg": lambda r: (os.mkfifo(r / "1.jpg"), "1.jpg")[1],
    "socket_named_png": lambda r: _socket(r / "1.png"),
    "symlink_to_dev_zero": lambda r: ((r / "1.jpg").symlink_to("/dev/zero"), "1.jpg")[1],
    "broken_symlink": lambda r: ((r / "1.jpg").symlink_to(r / "missing.jpg"), "1.jpg")[1],
    "symlink_loop": lambda r: ((r / "1.jpg").symlink_to(r / "1.jpg"), "1.jpg")[1],
    "symlink_outside_root": lambda r: _outside(r),
    # a folder is not an input (an empty one holds none, so it has no row): what is in it must still be found
    "directory_named_jpg": lambda r: ((r / "1.jpg").mkdir(), _write(r, "1.jpg/2.png", _encode("PNG")))[1],
    "empty_directory_named_jpg": lambda r: ((r / "1.jpg").mkdir(), "1.jpg")[1],
    "unreadable_mode_000": lambda r: _chmod(r / "1.jpg", _encode("JPEG"), 0),
    "unreadable_subdirectory": lambda r: _unreadable_dir(r),
    "non_utf8_file_name": lambda r: _bytes_name(r, b"caf\xe9.jpg"),
    "non_utf8_dir_name": lambda r: _bytes_name(r, b"d\xff/1.jpg"),
    "newline_in_name": lambda r: _write(r, "a\nb.jpg", _encode("JPEG")),
    "unicode_name": lambda r: _write(r, "顔 画像 ✓.jpg", _encode("JPEG")),
    "name_255_bytes": lambda r: _write(r, "a" * 251 + ".jpg", _encode("JPEG")),
    "hidden_file": lambda r: _write(r, ".1.jpg", _encode("JPEG")),
    "leading_zero_digits_name": lambda r: _write(r, "0001.jpg", _encode("JPEG")),
    "huge_digit_name": lambda r: _write(r, "9" * 40 + ".jpg", _encode("JPEG")),
}


# kinds that hold no input at all: no ledger row is the right outcome
NOT_AN_INPUT = {"empty_directory_named_jpg"}


def _socket(path: Path) -> str:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))  # the socket file stays after close
    s.close()
    return path.name


def _outside(root: Path) -> str:
    target = root.parent / "outside.jpg"
    target.write_bytes(_encode("JPEG"))
    (root / "1.jpg").symlink_to(target)
    return "1.jpg"


def _chmod(path: Path, data: bytes, mode: int) -> str:
    path.write_bytes(data)
    path.chmod(mode)
    return path.name


def _unreadable_dir(root: Path) -> str:
    (root / "sub").mkdir()
    (root / "sub" / "1.jpg").write_bytes(_encode("JPEG"))
    (root / "sub").chmod(0)
    return "sub/1.jpg"


def _bytes_name(root: Path, rel: bytes) -> str:
    path = os.path.join(os.fsencode(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(_encode("JPEG"))
    return os.fsdecode(rel)


# ----------------------------------------------------------------------------------------------- Danbooru kinds
# each returns the metadata line (bytes) of the hostile record; an image for post ID is written next to it


def _record(**over) -> dict:
    rec = {"id": ID, "file_ext": "jpg", "rating": "s", "score": 5, "image_width": 128, "image_height": 96}
    rec.update(tag_string="1girl solo", tag_string_character="", is_deleted=False, is_banned=False)
    rec.update(over)
    return rec


def _line(**over) -> bytes:
    return json.dumps(_record(**over)).encode()


DANBOORU_KINDS: dict[str, Callable[[], bytes]] = {
    "db_control": lambda: _line(),
    "db_number_5000_digits": lambda: _line()[:-1] + b', "score_big": ' + b"9" * 5000 + b"}",
    "db_id_5000_digit_string": lambda: _line(id="9" * 5000),
    "db_nested_brackets_100000": lambda: _line()[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "db_lone_surrogate_tag": lambda: _line()[:-1].replace(b'"1girl solo"', b'"1girl \\ud800"') + b"}",
    "db_truncated_line": lambda: _line()[:40],
    "db_non_utf8_bytes": lambda: _line().replace(b"1girl", b"1g\xffirl"),
    "db_id_negative": lambda: _line(id=-5),
    "db_id_float": lambda: _line(id=4242.5),
    "db_id_bool": lambda: _line(id=True),
    "db_nulls_everywhere": lambda: json.dumps({k: None for k in _record()} | {"id": ID}).encode(),
    "db_ext_path_traversal": lambda: _line(file_ext="../../etc/passwd"),
    "db_huge_dimensions": lambda: _line(image_width=10**12, image_height=10**12),
    "db_not_an_object": lambda: b"[1, 2, 3]",
}


# ----------------------------------------------------------------------------------------------- running one kind


def run_kind(kind: str, work: Path, cascade: str) -> dict:
    """Build the dataset of ``kind`` under ``work`` and run ingest -> crop -> clean in this process."""
    from animefaces import clean, crop
    from animefaces.config import defaults
    from animefaces.ingest.core import ingest
    from animefaces.ingest.mirror import image_path
    from animefaces.manifest import read_kept, read_manifest

    cfg = defaults()
    root = work / "root"
    root.mkdir(parents=True)
    if kind in FOLDER_KINDS:
        rel = FOLDER_KINDS[kind](root)
        dataset = {**cfg["dataset"], "source": "folder", "root": str(root), "metadata": []}
    else:
        line = DANBOORU_KINDS[kind]()
        meta = work / "meta.jsonl"
        meta.write_bytes(line + b"\n")
        img = Path(image_path(str(root), ID, "jpg"))
        img.parent.mkdir(parents=True, exist_ok=True)
        img.write_bytes(_encode("JPEG"))
        rel = str(ID)
        dataset = {**cfg["dataset"], "source": "danbooru", "root": str(root), "metadata": [str(meta)]}
    filt = {**cfg["filter"], "min_width": 1, "min_height": 1}  # header sizes are read (folder mode)
    out = work / "res" / "ingest"
    stage = "ingest"
    try:
        ingest(out, dataset, filt, cfg["classes"], 1)
        stage = "crop"
        posts = read_kept(out / "manifests" / "000.parquet")
        crop_frame = crop.run_crop(posts, "000", work / "res" / "crop" / "000", cfg["crop"], cascade, progress=False)
        stage = "clean"
        kept = crop_frame[crop_frame["status"] == "kept"]
        clean_frame = clean.clean_frame(kept.reset_index(drop=True), "000", {**cfg["clean"], "min_size": 1})
    except BaseException as exc:  # noqa: BLE001 - the table records crashes
        return {"kind": kind, "outcome": f"CRASH {stage}: {type(exc).__name__}: {str(exc)[:120]}"}
    ingest_rows = [read_manifest(p) for p in sorted((out / "manifests").glob("*.parquet"))]
    import pandas as pd

    rows = pd.concat([*ingest_rows, crop_frame, clean_frame], ignore_index=True)
    if not len(rows[rows["stage"] == "ingest"]):
        return {"kind": kind, "outcome": "no row (not an input)" if kind in NOT_AN_INPUT else "NO ROW"}
    last = rows.iloc[-1]
    outcome = f"{last['stage']}/{last['reason'] or 'kept'}"
    if last["status"] == "kept" and last["stage"] != "clean":
        outcome = f"{last['stage']}/kept"
    return {"kind": kind, "outcome": outcome, "item": rel}


def _one_subprocess(kind: str, timeout: float, cascade: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"hostile-{kind}-") as tmp:
        cmd = [sys.executable, __file__, "--one", kind, "--work", tmp, "--cascade", cascade]
        t0 = time.perf_counter()
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"kind": kind, "outcome": f"HANG (> {timeout:.0f} s)"}
        finally:
            for p in Path(tmp).rglob("*"):  # give unreadable folders back their mode so they can be removed
                if p.is_dir() and not p.is_symlink():
                    p.chmod(0o755)
        if run.returncode != 0:
            tail = (run.stderr.strip().splitlines() or ["?"])[-1]
            return {"kind": kind, "outcome": f"CRASH (exit {run.returncode}): {tail[:120]}"}
        result = json.loads(run.stdout.strip().splitlines()[-1])
        result["seconds"] = round(time.perf_counter() - t0, 1)
        return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", help="comma-separated kinds (default: all)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per kind before it counts as a hang")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cascade", default=str(REPO / "resources" / "lbpcascade_animeface.xml"))
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_kind(args.one, Path(args.work), args.cascade)))
        return 0
    if not Path(args.cascade).is_file():
        print(f"error: the face cascade {args.cascade} is missing (give --cascade)", file=sys.stderr)
        return 2
    kinds = args.kinds.split(",") if args.kinds else [*FOLDER_KINDS, *DANBOORU_KINDS]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda k: _one_subprocess(k, args.timeout, args.cascade), kinds))
    bad = [r for r in results if r["outcome"].startswith(("CRASH", "HANG", "NO ROW"))]
    if args.markdown:
        print("| kind | outcome |\n|---|---|")
        for r in results:
            print(f"| {r['kind']} | {r['outcome']} |")
    else:
        for r in results:
            print(f"{r['kind']:28s} {r['outcome']}")
    inputs = [r for r in results if r["kind"] not in NOT_AN_INPUT]
    print(
        f"\n{len(inputs) - len(bad)} of {len(inputs)} kinds that hold an input end as a ledger row; {len(bad)} do not"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
