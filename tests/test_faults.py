"""Machine faults fail the job, input properties become drops (issue 16, items 1 and 7).

A full disk, an I/O error, or a listed file that vanished must never become a ledger drop (the loss would be
permanent: a rerun finds the manifest complete). Anything that is not a regular file is never opened."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from animefaces import clean, crop, normalise
from animefaces.config import defaults
from animefaces.decode import NOT_REGULAR_FILE, ImageRejected, load_rgb, read_file
from animefaces.faults import is_fault, raise_if_fault
from animefaces.manifest import StageRows, manifest_path, read_manifest, write_manifest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SAMPLES = "illustrations/jonathonyan_detection_samples"


def test_classifier_machine_versus_input():
    for code in (errno.ENOSPC, errno.EIO, errno.EROFS, errno.EDQUOT, errno.ENOENT, errno.EMFILE):
        assert is_fault(OSError(code, os.strerror(code)))
    assert is_fault(MemoryError())
    assert is_fault(FileNotFoundError(errno.ENOENT, "gone", "x.png"))
    # permissions: our own outputs = machine; a user's source image = a property of that input
    assert is_fault(PermissionError(errno.EACCES, "denied"), own_file=True)
    assert not is_fault(PermissionError(errno.EACCES, "denied"), own_file=False)
    # what decoders raise about content
    assert not is_fault(OSError("broken data stream when reading image file"))
    assert not is_fault(OSError("image file is truncated (3 bytes not processed)"))
    assert not is_fault(ValueError("not a PNG file"))
    assert not is_fault(OSError(errno.EISDIR, "is a directory"))
    assert not is_fault(RuntimeError("disk on fire"))
    with pytest.raises(OSError, match="No space"):
        raise_if_fault(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    raise_if_fault(OSError("cannot identify image file"))  # returns: a drop


def _gradient(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 120)], axis=2).astype(np.uint8)


def _dedup_manifest(tmp_path: Path, n: int) -> Path:
    rows = StageRows("dedup", "000")
    for k in range(n):
        path = tmp_path / "crops" / f"{k + 1}_0.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(_gradient(40 + k, 50)).save(path)
        rows.kept(k + 1, f"{k + 1}_0", f"{k + 1}_0", path=str(path), width=50, height=40 + k, label=1)
    out = manifest_path(tmp_path / "res", "dedup", "000")
    write_manifest(rows.frame(), out)
    return out


def test_disk_full_in_the_normalise_writer_fails_the_job_and_a_rerun_completes(tmp_path, monkeypatch):
    src = _dedup_manifest(tmp_path, 6)
    out = tmp_path / "res" / "normalise" / "manifests" / "000.parquet"
    images = tmp_path / "res" / "normalise" / "images" / "000"
    argv = ["--input", str(src), "--output", str(out), "--images", str(images), "--params", '{"size": 32}']
    real_write = normalise.write_bytes
    calls = {"n": 0}

    def disk_fills_up(path, data, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:  # the third image finds the disk full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data, **kwargs)

    monkeypatch.setattr(normalise, "write_bytes", disk_fills_up)
    with pytest.raises(OSError) as info:
        normalise.main(argv)
    assert info.value.errno == errno.ENOSPC
    assert not out.exists()  # no manifest: Snakemake sees a failed job, never a shard of drops
    monkeypatch.setattr(normalise, "write_bytes", real_write)  # space freed
    assert normalise.main(argv) == 0
    frame = read_manifest(out)
    assert list(frame["status"]) == ["kept"] * 6
    assert sorted(p.name for p in images.iterdir()) == [f"{k}_0.png" for k in range(1, 7)]


def test_disk_full_in_the_crop_writer_fails_the_job(tmp_path, shared, monkeypatch):
    rows = StageRows("ingest", "000")
    rows.kept(7, "7", "meta:0", path=str(shared / SAMPLES / "detect_03.jpg"), file_ext="jpg", label=0, character="")
    ingest = manifest_path(tmp_path / "res", "ingest", "000")
    write_manifest(rows.frame(), ingest)

    def full(path, data, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(crop, "write_bytes", full)
    out = tmp_path / "res" / "crop" / "manifests" / "000.parquet"
    argv = ["--shard", "000", "--manifest", str(ingest), "--out-manifest", str(out), "--no-progress"]
    argv += ["--images", str(tmp_path / "res" / "crop" / "images" / "000")]
    argv += ["--cascade", str(shared / "cascade" / "lbpcascade_animeface.xml"), "--params", '{"min_crop": 40}']
    with pytest.raises(OSError, match="No space"):
        crop.main(argv)
    assert not out.exists()


def test_a_listed_file_that_vanished_fails_crop_clean_and_normalise(tmp_path, shared):
    gone = tmp_path / "deleted-under-the-job.jpg"
    cascade = shared / "cascade" / "lbpcascade_animeface.xml"
    posts = pd.DataFrame({"post_id": [1], "item_id": ["1"], "path": [str(gone)], "file_ext": ["jpg"]})
    with pytest.raises(FileNotFoundError):
        crop.run_crop(posts, "000", tmp_path / "crops", defaults()["crop"], cascade, progress=False)
    items = StageRows("crop", "000")
    items.kept(1, "1_0", "1", path=str(gone), source_path=str(gone), source_ext="jpg")
    with pytest.raises(FileNotFoundError):
        clean.clean_frame(items.frame(), "000", defaults()["clean"])
    dedup = StageRows("dedup", "000")
    dedup.kept(1, "1_0", "1_0", path=str(gone), width=50, height=50, label=1)
    with pytest.raises(FileNotFoundError):
        normalise.normalise_frame(dedup.frame(), "000", defaults()["normalise"], tmp_path / "norm")


def test_unreadable_own_crop_fails_clean_but_unreadable_source_is_a_drop(tmp_path, shared, monkeypatch):
    img = tmp_path / "locked.png"
    Image.fromarray(_gradient(80, 80)).save(img)

    def denied(path, max_bytes=None):  # what open() raises on a chmod 000 file (injected: tests may run as root)
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(clean, "read_file", denied)
    monkeypatch.setattr(crop, "read_file", denied)
    items = StageRows("crop", "000")
    items.kept(1, "1_0", "1", path=str(img), source_path="", source_ext="png")
    with pytest.raises(PermissionError):
        clean.clean_frame(items.frame(), "000", defaults()["clean"])
    posts = pd.DataFrame({"post_id": [1], "item_id": ["1"], "path": [str(img)], "file_ext": ["png"]})
    cascade = shared / "cascade" / "lbpcascade_animeface.xml"
    frame = crop.run_crop(posts, "000", tmp_path / "crops", defaults()["crop"], cascade, progress=False)
    assert frame.loc[0, "reason"] == "unreadable"
    assert "Permission denied" in json.loads(frame.loc[0, "details"])["error"]


def test_read_file_refuses_fifo_socket_device_without_opening(tmp_path):
    fifo = tmp_path / "a.jpg"
    os.mkfifo(fifo)
    sock_path = tmp_path / "s.png"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(sock_path))
    try:
        for path, kind in ((fifo, "FIFO"), (sock_path, "socket"), (Path("/dev/zero"), "character device")):
            with pytest.raises(ImageRejected) as info:
                read_file(path)
            assert info.value.reason == NOT_REGULAR_FILE and kind in info.value.detail
            with pytest.raises(ImageRejected):
                load_rgb(path)
        with pytest.raises(ImageRejected) as info:
            read_file(tmp_path)
        assert "directory" in info.value.detail
    finally:
        sock.close()


def test_crop_never_hangs_on_a_fifo_socket_or_device(tmp_path, shared):
    """`mkfifo 2.jpg` used to block crop forever; run the real CLI with a timeout so a regression fails."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    os.mkfifo(mirror / "2.jpg")
    (mirror / "4.jpg").symlink_to("/dev/zero")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(mirror / "3.png"))
    rows = StageRows("ingest", "000")
    for pid, path in ((1, shared / SAMPLES / "detect_03.jpg"), (2, mirror / "2.jpg"), (3, mirror / "3.png")):
        rows.kept(pid, str(pid), f"meta:{pid}", path=str(path), file_ext=path.suffix[1:], label=0, character="")
    rows.kept(4, "4", "meta:4", path=str(mirror / "4.jpg"), file_ext="jpg", label=0, character="")
    res = tmp_path / "res"
    write_manifest(rows.frame(), manifest_path(res, "ingest", "000"))
    out = manifest_path(res, "crop", "000")
    cmd = [sys.executable, "-m", "animefaces.crop", "--shard", "000", "--no-progress"]
    cmd += ["--manifest", str(manifest_path(res, "ingest", "000")), "--out-manifest", str(out)]
    cmd += ["--images", str(res / "crop" / "images" / "000"), "--params", '{"min_crop": 40}']
    cmd += ["--cascade", str(shared / "cascade" / "lbpcascade_animeface.xml")]
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    finally:
        sock.close()
    assert run.returncode == 0, run.stderr[-3000:]
    frame = read_manifest(out).set_index("item_id")
    assert frame.loc["1_0", "status"] == "kept"
    for item, kind in (("2", "FIFO"), ("3", "socket"), ("4", "character device")):
        assert frame.loc[item, "reason"] == NOT_REGULAR_FILE
        assert kind in json.loads(frame.loc[item, "details"])["error"]
