"""Every writer removes the temporaries a killed earlier write of its target left behind (issue 16, item 4):
manifests, the HDF5/zip packs, the TFRecord temp folder, the MP4 writer, snapshot files."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from animefaces.atomic import remove_stale_temps, remove_stale_temps_of, write_bytes
from animefaces.ingest import ingest
from animefaces.manifest import StageRows, write_manifest
from animefaces.pack.hdf5 import write_hdf5
from animefaces.pack.source import SourceImage
from animefaces.pack.tfrecord import write_tfrecords
from animefaces.pack.zipds import write_zip
from animefaces.sample import write_mp4
from animefaces.train.checkpoint import save_file
from PIL import Image


def _leftovers(target: Path, suffix: str | None = None, folder: bool = False) -> tuple[Path, list[Path]]:
    """A stale temporary of ``target`` as a killed write leaves it, plus look-alikes that must survive."""
    suffix = target.suffix if suffix is None else suffix
    target.parent.mkdir(parents=True, exist_ok=True)
    stale = target.parent / f".{target.name}.k1ll3d_9{suffix}"
    if folder:
        stale.mkdir()
        (stale / "part-r08.tfrecords").write_bytes(b"x" * 1000)
    else:
        stale.write_bytes(b"half a file")
    keep = [
        target.parent / f".{target.name}.notmine{suffix}",  # 7 random chars: not our pattern
        target.parent / f".other{target.suffix}.abcdefgh{suffix}",  # another target's temp
        target.parent / f"{target.name}.abcdefgh{suffix}",  # not hidden
    ]
    for k in keep:
        k.write_bytes(b"keep")
    return stale, keep


def _check(stale: Path, keep: list[Path]) -> None:
    assert not stale.exists(), f"{stale.name} was left behind"
    assert all(k.exists() for k in keep)


def test_helper_removes_only_temporaries_of_that_target(tmp_path):
    target = tmp_path / "a.json"
    stale, keep = _leftovers(target)
    assert remove_stale_temps(target) == [stale]
    _check(stale, keep)
    assert remove_stale_temps(tmp_path / "missing" / "x.bin") == []


def test_write_bytes_and_manifest_writer(tmp_path):
    target = tmp_path / "a.bin"
    stale, keep = _leftovers(target)
    write_bytes(target, b"data")
    _check(stale, keep)
    manifest = tmp_path / "crop" / "manifests" / "000.parquet"
    stale, keep = _leftovers(manifest)
    rows = StageRows("crop", "000")
    rows.dropped(1, "1", "1", "no_face", {})
    write_manifest(rows.frame(), manifest)
    _check(stale, keep)
    assert manifest.exists()


def _images(n: int, size: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_hdf5_pack_writer(tmp_path):
    out = tmp_path / "pack" / "hdf5" / "demo.hdf5"
    stale, keep = _leftovers(out)
    assert write_hdf5(out, _images(3), np.zeros(3, dtype=np.int64), 8, fsync=False) == 3
    _check(stale, keep)


def test_zip_pack_writer(tmp_path):
    out = tmp_path / "pack" / "zip" / "demo.zip"
    stale, keep = _leftovers(out)
    sources = []
    for k, arr in enumerate(_images(2)):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        sources.append(SourceImage(f"{k}_0", f"{k}_0.png", buf.getvalue(), arr))
    write_zip(out, sources, np.zeros(2, dtype=np.int64), fsync=False)
    _check(stale, keep)
    assert out.exists()


def test_tfrecord_temp_folder(tmp_path):
    out = tmp_path / "pack" / "tfrecord" / "demo"
    stale, keep = _leftovers(out, suffix="", folder=True)
    assert write_tfrecords(out, "demo", _images(2), 8, fsync=False) == 2
    _check(stale, keep)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".demo.") and p.is_dir()]


def test_mp4_writer(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "samples" / "interpolation.mp4"
    stale, keep = _leftovers(out)
    write_mp4(out, iter(_images(3, 16)), fps=10)
    _check(stale, keep)
    assert out.stat().st_size > 0


def test_snapshot_writer(tmp_path):
    out = tmp_path / "train" / "network-final.pt"
    stale, keep = _leftovers(out, suffix=".tmp")
    save_file(out, {"format": "x"})
    _check(stale, keep)


def test_many_targets_in_one_folder_are_cleaned_with_one_listing(tmp_path, monkeypatch):
    """Ingest and dedup write a thousand manifests into one folder: one listing for all (not one per file, which
    made the write quadratic), removing exactly what ``remove_stale_temps`` removes for each target."""
    folder = tmp_path / "ingest" / "manifests"
    targets = [folder / f"{s:03d}.parquet" for s in range(50)] + [folder / "unsharded.parquet"]
    made = [_leftovers(t) for t in (targets[0], targets[17], targets[-1])]
    other = folder / ".other.json.abcdefgh.json"  # another writer's temporary: not ours to remove
    other.write_bytes(b"keep")
    listings = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p: listings.append(p) or real_scandir(p))
    removed = remove_stale_temps_of(targets)
    assert listings == [folder]
    assert sorted(removed) == sorted(stale for stale, _ in made)
    for stale, keep in made:
        _check(stale, keep)
    assert other.exists()


def test_ingest_removes_stale_manifest_temporaries(tmp_path):
    out = tmp_path / "results" / "t" / "ingest"
    stale, keep = _leftovers(out / "manifests" / "003.parquet")
    meta = tmp_path / "p.jsonl"
    meta.write_text('{"id": 3, "file_ext": "png"}\n')
    ingest(out, {"source": "danbooru", "root": str(tmp_path / "mirror"), "metadata": [str(meta)]}, {}, {}, 4)
    _check(stale, keep)
    assert all((out / "manifests" / f"{name}.parquet").exists() for name in ("000", "003", "unsharded"))


def test_atomic_writes_from_threads_keep_the_umask_and_file_modes(tmp_path):
    """Many threads writing at once (ingest writes its manifests on threads): the process umask is unchanged
    afterwards and every file has the umask-based mode. Reading the umask means setting it to 0 for a moment; two
    threads doing that unguarded can leave it 0 for good, and their files world-writable."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    old, interval = os.umask(0o027), sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, so an unguarded race shows
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: write_bytes(tmp_path / f"f{k}.bin", b"x", clean_stale=False), range(2000)))
        now = os.umask(0o027)
    finally:
        os.umask(old)
        sys.setswitchinterval(interval)
    assert now == 0o027
    modes = {(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()}
    assert modes == {0o640}, sorted(map(oct, modes))
