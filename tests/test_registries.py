"""Extension points: a detector and a pack format registered from this test module run through the real stage
code (crop, pack, the trainer's reader, the rule wiring), and the rule-file helpers compute what the rules use."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from animefaces import crop, wiring
from animefaces.config import defaults, fill_defaults
from animefaces.detect import DETECTORS, Face, register_detector
from animefaces.ledger import STAGES, ledger_manifests
from animefaces.manifest import StageRows
from animefaces.pack import pack
from animefaces.pack.formats import PACK_FORMATS, PackImages, PackJob, PackWritten, register_pack_format
from animefaces.pack.source import first_size, iter_arrays, iter_sources
from animefaces.parallel import ordered_map
from animefaces.train import data as train_data
from test_pack import make_dataset, pack_params

# ------------------------------------------------------------------------------------------- a dummy detector


class CornerDetector:
    """Finds one 'face': the square of side ``min_face`` at the image's top-left corner, offset by ``shift``."""

    name = "corner"

    def __init__(self, side: int, shift: int) -> None:
        self.side, self.shift = side, shift

    def detect(self, bgr: np.ndarray) -> list[Face]:
        return [Face(self.shift, self.shift, self.side, self.side, 1.0)]

    def describe(self) -> dict:
        return {"detector": self.name, "side": self.side}


def build_corner(params: dict, cascade_path: str | None) -> CornerDetector:
    return CornerDetector(params["min_face"], 10)


@pytest.fixture()
def corner_detector():
    yield register_detector("corner", build_corner, "threads")
    DETECTORS.pop("corner")


def _posts(tmp_path, n: int = 5):
    rows = StageRows("ingest", "000")
    for i in range(n):
        path = tmp_path / f"{100 + i}.png"
        cv2.imwrite(str(path), np.full((120 + 10 * i, 150, 3), 40 * i, np.uint8))
        rows.kept(100 + i, str(100 + i), f"meta:{i}", path=str(path), file_ext="png", label=0, character="")
    return rows.frame()


@pytest.mark.parametrize("parallelism", ["threads", "processes"])
def test_registered_detector_runs_through_the_crop_stage(tmp_path, corner_detector, parallelism):
    register_detector("corner", build_corner, parallelism)
    params = fill_defaults({"detector": "corner", "geometry": "box", "min_face": 70, "min_crop": 64}, "crop")
    frame = crop.run_crop(_posts(tmp_path), "000", tmp_path / "crops", params, None, threads=2, progress=False)
    kept = frame[frame["status"] == "kept"]
    assert len(kept) == 5 and set(kept["detector"]) == {"corner"}
    assert kept[["box_x", "box_y", "box_w", "box_h"]].drop_duplicates().values.tolist() == [[10, 10, 70, 70]]
    for path in kept["path"]:
        assert cv2.imread(path).shape == (70, 70, 3)
    assert json.loads(kept["details"].iloc[0])["side"] == 70


def test_unknown_detector_names_the_key():
    with pytest.raises(ValueError, match="crop.detector.*'yolo'"):
        crop.run_crop(StageRows("ingest", "000").frame(), "000", "unused", {"detector": "yolo"}, progress=False)


# ------------------------------------------------------------------------------------------ a dummy pack format


def write_pack(job: PackJob) -> PackWritten:
    """An .npz of the N x 3 x S x S images and the labels (this module is the format's code)."""
    images = np.stack([a.transpose(2, 0, 1) for a in iter_arrays(iter_sources(job.items, threads=job.threads))])
    with open(job.out, "wb") as fh:
        np.savez(fh, images=images, labels=job.labels, scale=job.options["scale"])
    return PackWritten(first_size(job.items), [job.out], True, "dataset table order")


def load_for_training(path: str, resolution: int | None = None, max_memory_gb: float = 8.0) -> PackImages:
    with np.load(path) as z:
        images, labels = z["images"], z["labels"]
    return PackImages(len(images), images.shape[2], images.shape[2], labels, images=images)


def probe(path: str) -> tuple[int, int, int]:
    with np.load(path) as z:
        return len(z["images"]), int(z["images"].shape[2]), int(z["labels"].max()) + 1


@pytest.fixture()
def npz_format():
    yield register_pack_format("npz", __name__, "file", ".npz", trainable=True)
    PACK_FORMATS.pop("npz")


def test_registered_pack_format_runs_through_pack_and_training(tmp_path, npz_format):
    dataset, classes, decoded = make_dataset(tmp_path, n=6)
    out = tmp_path / "pack" / "npz" / "mini.npz"
    out.parent.mkdir(parents=True)
    params = {**pack_params(), "npz": {"scale": 1}}
    card = pack("npz", dataset, out, tmp_path / "cards" / "npz.json", params, classes=classes, threads=2)
    assert card["format"] == "npz" and card["count"] == 6 and card["config"]["pack"] == {"npz": {"scale": 1}}
    assert json.loads((tmp_path / "cards" / "npz.json").read_text())["resolution"] == 32
    # the trainer picks the reader by the registered suffix
    data = train_data.open_dataset(str(out))
    assert len(data) == 6 and data.num_classes == 4
    assert np.array_equal(data.images.numpy().transpose(0, 2, 3, 1), np.stack(decoded))
    assert train_data.probe(str(out)) == (6, 32, 4)
    # the rule wiring: one pack rule per registered format, the trainer reads the listed trainable pack
    config = defaults()
    config["dataset"]["name"] = "mini"
    config["pack"]["formats"] = ["tfrecord", "npz"]
    assert "npz" in wiring.pack_formats()
    assert wiring.train_data(config, "R") == "R/pack/npz/mini.npz"
    assert wiring.pack_targets(config, "R") == [
        "R/pack/tfrecord/mini",
        "R/pack/cards/tfrecord.json",
        "R/pack/npz/mini.npz",
        "R/pack/cards/npz.json",
    ]
    assert wiring.pack_params(config, "tfrecord") == '{"tfrecord":{"labels":"auto","seed":123}}'


def test_unknown_pack_format_is_an_error(tmp_path):
    dataset, classes, _ = make_dataset(tmp_path, n=2)
    with pytest.raises(Exception, match="unknown pack format 'npz'"):
        pack("npz", dataset, tmp_path / "x.npz", None, pack_params())
    with pytest.raises(ValueError, match="unsupported training data format"):
        (tmp_path / "x.tar").write_bytes(b"x")
        train_data.open_dataset(str(tmp_path / "x.tar"))


# ------------------------------------------------------------------------------------------------ rule wiring


def test_train_pack_choice_gpus_and_launcher():
    config = defaults()
    config["pack"]["formats"] = ["zip"]
    assert wiring.train_data(config, "R") == "R/pack/zip/demo.zip"
    config["pack"]["formats"] = ["zip", "hdf5"]
    assert wiring.train_data(config, "R") == "R/pack/hdf5/demo.hdf5"
    config["pack"]["formats"] = ["tfrecord"]
    assert wiring.train_data(config, "R") == "R/pack/hdf5/demo.hdf5"  # built for training though not listed
    train = config["train"]
    for device, gpus, want in [("cpu", 2, 0), ("cuda", 0, 1), ("auto", 0, 0), ("auto", 4, 4)]:
        train.update(device=device, gpus=gpus)
        assert wiring.train_gpus(config) == want
        assert ("gpu" in wiring.train_resources(config)) == (want > 0)
        launch = wiring.train_launch(config)
        assert launch.startswith("torchrun") == (want > 1) and f"nproc_per_node={want}" in launch or want < 2
    assert "mem_mb" not in json.loads(wiring.train_params(config))
    assert wiring.train_resources(config)["mem_mb"] == train["mem_mb"]


def test_ledger_manifests_are_exactly_the_runs_files_in_stage_order():
    files = [str(p) for p in ledger_manifests("R", 2)]
    assert files[:3] == [
        "R/ingest/manifests/000.parquet",
        "R/ingest/manifests/001.parquet",
        "R/ingest/manifests/unsharded.parquet",
    ]
    assert files[-1] == "R/select/manifests/all.parquet"
    assert [f.split("/")[1] for f in files] == ["ingest"] * 3 + [s for s in STAGES[1:-1] for _ in range(2)] + ["select"]
    assert str(ledger_manifests("R", 2, until="dedup")[-1]) == "R/dedup/manifests/001.parquet"
    assert len(ledger_manifests("R", 1000)) == 1001 + 4 * 1000 + 1


def test_dag_time_checks_name_the_key(capsys):
    config = defaults()
    config["filter"]["ratings"] = ["s"]
    config["filter"]["rating_scheme"] = None
    with pytest.raises(SystemExit) as exc:
        wiring.check_config(config, wiring.config_source(["my.yaml"]))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "my.yaml" in err and "filter.ratings" in err, err
    assert "Traceback" not in err


def test_ordered_map_keeps_order_and_bounds_the_window():
    import threading
    import time

    in_flight, peak, lock = [0], [0], threading.Lock()

    def slow(i: int) -> int:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.002 * (i % 3))
        with lock:
            in_flight[0] -= 1
        return i * i

    assert list(ordered_map(slow, range(40), 3)) == [i * i for i in range(40)]
    assert peak[0] <= 3
    assert list(ordered_map(slow, range(5), 1)) == [0, 1, 4, 9, 16]
