"""The learned 2x upscaler and user weights (issue 11, part 2).

- the net starts as bicubic; model files round-trip; split by item; the trainer refuses too few crops;
- a tiny CPU training run on real faces (../shared/data/faces/selfie2anime) beats lanczos on *other* real faces
  (../shared/data/faces/characters), halved and upscaled back;
- the ``learned`` backend runs through normalise; ``weights`` loads a real ESRGAN-layout state dict (made here with
  spandrel's own RRDBNet) through our loader and upscales with it; a missing spandrel/torchvision is named;
- the workflow trains the model only when normalise.upscale.backend asks for it.
"""

from __future__ import annotations

import enum
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from animefaces import normalise, upscale, upscale_train, wiring
from animefaces.config import defaults, fill_defaults
from animefaces.manifest import StageRows, write_manifest
from animefaces.upscale_eval import halve, psnr, ssim
from animefaces.upscale_net import SRNet, load_model, save_model
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_partial_rerun import copy_workflow, planned_jobs, snakemake, write_config  # noqa: E402


def faces_of(folder: Path, n: int) -> list[np.ndarray]:
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg"))[:n]
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def test_untrained_net_is_bicubic_and_the_model_file_round_trips(tmp_path):
    torch.manual_seed(0)
    net = SRNet(channels=8, blocks=1).eval()
    x = torch.rand(1, 3, 10, 12)
    bicubic = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.equal(net(x), bicubic)  # the zero-initialised last conv adds nothing yet
    with torch.no_grad():
        net.tail.weight.normal_(0, 0.1)
    save_model(tmp_path / "m.pt", net, validation={"x": 1.0})
    loaded, meta = load_model(tmp_path / "m.pt")
    assert torch.equal(loaded(x), net(x)) and meta["validation"] == {"x": 1.0} and meta["arch"]["channels"] == 8
    torch.save({"D": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="backend: weights"):
        load_model(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="upscale_train"):
        load_model(tmp_path / "missing.pt")


def test_split_is_by_item_seeded_and_disjoint():
    ids = [f"{i}_0" for i in range(50)]
    train, val = upscale_train.split_items(ids, 0.1, seed=3)
    assert len(val) == 5 and not set(train) & set(val) and sorted(train + val) == sorted(ids)
    assert upscale_train.split_items(list(reversed(ids)), 0.1, seed=3) == (train, val)  # order does not matter
    assert upscale_train.split_items(ids, 0.1, seed=4)[1] != val
    frame = pd.DataFrame({"item_id": ["b", "a", "c"], "width": [300, 256, 100], "height": [300, 400, 300]})
    assert upscale_train.training_items(frame, 256, 0, 0)["item_id"].tolist() == ["a", "b"]


def test_metrics_and_halving():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert psnr(img, img) == float("inf") and ssim(img, img) == pytest.approx(1.0)
    noisy = np.clip(img.astype(int) + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
    mse = np.mean((img[2:-2, 2:-2].astype(float) - noisy[2:-2, 2:-2]) ** 2)  # the 2-pixel border is shaved
    assert psnr(img, noisy) == pytest.approx(10 * np.log10(255**2 / mse))
    flat_a, flat_b = np.full((30, 30, 3), 100, np.uint8), np.full((30, 30, 3), 110, np.uint8)
    c1 = (0.01 * 255) ** 2  # flat images: no variance, SSIM is the luminance term alone
    assert ssim(flat_a, flat_b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1))
    grey_noise = np.clip(128 + rng.integers(-30, 31, (30, 30, 3)), 0, 255).astype(np.uint8)
    assert ssim(np.full((30, 30, 3), 128, np.uint8), grey_noise) < 0.5  # ~c2 / (noise variance + c2)
    assert halve(img).shape == (20, 20, 3) and halve(img, 80).shape == (20, 20, 3)
    with pytest.raises(ValueError, match="even"):
        halve(img[:39])


def test_tiny_cpu_training_beats_lanczos_on_held_out_real_faces(shared):
    """Train on one set of real anime faces, measure on another: the net must beat lanczos (and bicubic)."""
    train = faces_of(shared / "faces" / "selfie2anime", 40)
    held_out = faces_of(shared / "faces" / "characters", 12)
    learned = {
        **fill_defaults({}, "normalise")["upscale"]["learned"],
        **{"channels": 16, "blocks": 2, "patch": 32, "batch": 8, "steps": 300, "lr": 0.003},
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = upscale_train.train_net(train, learned, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    val = upscale_train.validate(net, held_out, torch.device("cpu"))
    assert val["learned"]["psnr"] > val["lanczos"]["psnr"] > val["bicubic"]["psnr"], val
    assert val["learned"]["ssim"] > val["lanczos"]["ssim"], val


def crops_manifest(tmp_path: Path, sizes: list[int]) -> pd.DataFrame:
    rows = StageRows("dedup", "000")
    for i, side in enumerate(sizes):
        im = Image.new("RGB", (side, side), (200, 120, 90))
        im.paste((30, 40, 160), (side // 4, side // 4, side // 2, side // 2))
        path = tmp_path / "crops" / f"{i}_0.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path)
        rows.kept(i, f"{i}_0", f"{i}_0", path=str(path), width=side, height=side)
    write_manifest(rows.frame(), tmp_path / "dedup.parquet")
    return rows.frame()


def test_trainer_cli_writes_a_model_that_normalise_uses(tmp_path):
    crops_manifest(tmp_path, [64] * 6 + [16])
    learned = {"steps": 3, "batch": 2, "patch": 16, "channels": 4, "blocks": 1, "min_images": 3, "val_fraction": 0.2}
    params = f'{{"size": 32, "upscale": {{"device": "cpu", "learned": {str(learned).replace(chr(39), chr(34))}}}}}'
    out, report = tmp_path / "up" / "model.pt", tmp_path / "up" / "validation.json"
    argv = ["--manifests", str(tmp_path / "dedup.parquet"), "--out", str(out), "--report", str(report)]
    assert upscale_train.main([*argv, "--params", params]) == 0
    _, meta = load_model(out)
    assert meta["training"]["crops"] == 5 and len(meta["validation_items"]) == 1  # six 64-px crops >= size 32
    assert set(meta["validation"]) >= {"learned", "lanczos", "bicubic", "gain_over_lanczos_db"}
    # too few large crops: an error naming the key
    too_strict = params.replace('"min_images": 3', '"min_images": 30')
    with pytest.raises(SystemExit, match="min_side"):
        upscale_train.main([*argv, "--params", too_strict])
    # normalise with backend learned reads the model (--upscale-model) and upscales the 16-px crop 2x
    norm = fill_defaults({"size": 32, "upscale": {"backend": "learned", "device": "cpu", "max_factor": 2}}, "normalise")
    frame = normalise.normalise_frame(
        pd.read_parquet(tmp_path / "dedup.parquet"), "000", norm, tmp_path / "norm", upscale_model=out
    )
    small = frame.set_index("item_id").loc["6_0"]
    assert small["status"] == "kept" and small["upscale_factor"] == 2 and small["width"] == 32
    with pytest.raises(ValueError, match="upscale_train"):
        upscale.make_upscaler("learned", device="cpu")


# ------------------------------------------------------------------------------------------------ user weights
def _torchvision_importable() -> bool:
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401
    except Exception:
        return False
    return True


@pytest.fixture
def spandrel_importable(monkeypatch):
    """spandrel imports torchvision at import time (two of its ~45 architectures, LaMa and RestoreFormer, use
    ``torchvision.transforms.functional``). This machine's CPU torch 2.13 has no importable torchvision (PyPI's
    wheel is CUDA-built: 'operator torchvision::nms does not exist'), so when the real one cannot be imported
    this TEST-ONLY shim stands in for the three names spandrel imports; calling them raises. Nothing ESRGAN
    uses comes from torchvision, so the load and the upscale below are spandrel's real code. The product code
    never shims: without torchvision, backend weights fails with an error naming the missing package."""
    if importlib.util.find_spec("spandrel") is None:
        pytest.skip("spandrel (the upscale extra) is not installed")
    if not _torchvision_importable():

        class InterpolationMode(enum.Enum):
            NEAREST = "nearest"
            BILINEAR = "bilinear"
            BICUBIC = "bicubic"

        def absent(*_a, **_k):
            raise NotImplementedError("test shim of torchvision: not available")

        tv = types.ModuleType("torchvision")
        tr = types.ModuleType("torchvision.transforms")
        fn = types.ModuleType("torchvision.transforms.functional")
        fn.InterpolationMode, fn.rotate, fn.normalize = InterpolationMode, absent, absent
        tv.transforms, tr.functional = tr, fn
        for name, mod in (
            ("torchvision", tv),
            ("torchvision.transforms", tr),
            ("torchvision.transforms.functional", fn),
        ):
            monkeypatch.setitem(sys.modules, name, mod)
        for name in [m for m in sys.modules if m == "spandrel" or m.startswith("spandrel.")]:
            monkeypatch.delitem(sys.modules, name)  # a spandrel imported before must import again with the shim
    yield
    for name in [m for m in sys.modules if m == "spandrel" or m.startswith("spandrel.")]:
        sys.modules.pop(name, None)


def test_user_esrgan_weights_load_through_spandrel_and_upscale(tmp_path, spandrel_importable):
    from spandrel.architectures.ESRGAN import ESRGAN  # spandrel's own RRDBNet (old-arch ESRGAN layout)

    torch.manual_seed(0)
    net2 = ESRGAN(num_filters=8, num_blocks=1, scale=2).eval()
    torch.save({"params_ema": net2.state_dict()}, tmp_path / "esrgan_x2.pth")  # Real-ESRGAN release wrapping
    torch.save(ESRGAN(num_filters=8, num_blocks=1, scale=4).state_dict(), tmp_path / "esrgan_x4.pth")
    img = np.asarray(Image.new("RGB", (20, 16), (180, 60, 90)), dtype=np.uint8).copy()
    img[4:10, 5:12] = (20, 200, 40)

    up2 = upscale.make_upscaler("weights", device="cpu", weights=str(tmp_path / "esrgan_x2.pth"))
    assert (up2.architecture, up2.scale) == ("ESRGAN", 2)
    out = up2.upscale(img, 2)
    with torch.no_grad():
        direct = net2(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255).clamp(0, 1)
    expect = (direct[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    assert out.shape == (32, 40, 3) and np.abs(out.astype(int) - expect.astype(int)).max() <= 1  # that net ran
    assert up2.upscale(img, 4).shape == (64, 80, 3)  # two 2x passes

    up4 = upscale.make_upscaler("weights", device="cpu", weights=str(tmp_path / "esrgan_x4.pth"))
    assert up4.scale == 4 and up4.upscale(img, 2).shape == (32, 40, 3)  # 4x, then resampled to 2x

    torch.save({"not": torch.zeros(3)}, tmp_path / "junk.pth")
    with pytest.raises(ValueError, match="spandrel cannot load"):
        upscale.make_upscaler("weights", device="cpu", weights=str(tmp_path / "junk.pth"))
    with pytest.raises(FileNotFoundError, match="normalise.upscale.weights"):
        upscale.make_upscaler("weights", device="cpu", weights=str(tmp_path / "missing.pth"))


def test_missing_spandrel_or_torchvision_is_named(monkeypatch, tmp_path):
    (tmp_path / "w.pth").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "spandrel", None)  # import spandrel -> ImportError
    with pytest.raises(RuntimeError, match="spandrel.*torchvision"):
        upscale.make_upscaler("weights", device="cpu", weights=str(tmp_path / "w.pth"))


# ------------------------------------------------------------------------------------------------ workflow
def test_wiring_depends_on_the_model_only_when_the_backend_asks():
    cfg = defaults()
    assert wiring.upscale_inputs(cfg, "results/x") == [] and wiring.upscale_model_flag(cfg, "results/x") == ""
    assert wiring.normalise_env(cfg) == "../../envs/vision.yaml"
    cfg["normalise"]["upscale"]["backend"] = "learned"
    assert wiring.upscale_inputs(cfg, "results/x") == ["results/x/upscale/model.pt"]
    assert wiring.upscale_model_flag(cfg, "results/x") == "--upscale-model results/x/upscale/model.pt"
    assert wiring.normalise_env(cfg) == "../../envs/upscale.yaml"
    cfg["normalise"]["upscale"].update(backend="weights", weights="models/x.pth")
    assert wiring.upscale_inputs(cfg, "r") == ["models/x.pth"] and wiring.upscale_model_flag(cfg, "r") == ""
    # only the learned block (and size, background) retrains the model
    before = wiring.upscale_train_params(cfg)
    cfg["normalise"]["fit"] = "crop_top"
    assert wiring.upscale_train_params(cfg) == before
    cfg["normalise"]["upscale"]["learned"]["steps"] = 7
    assert wiring.upscale_train_params(cfg) != before


MINI_SNAKEFILE = """
configfile: "config/demo.yaml"

include: "workflow/rules/common.smk"
include: "workflow/rules/upscale.smk"
include: "workflow/rules/normalise.smk"

rule all:
    input: TARGETS
"""


def mini_workflow(tmp_path: Path) -> Path:
    wd = copy_workflow(tmp_path / "wf")
    (wd / "Snakefile").write_text(MINI_SNAKEFILE)
    write_config(wd, {"dataset": {"name": "mini"}, "shards": {"count": 1}, "normalise": {"size": 32}})
    res = wd / "results" / "mini"
    (res / "crop" / "images" / "000").mkdir(parents=True)
    crops_manifest(res / "crop", [64] * 6 + [16])
    (res / "dedup" / "manifests").mkdir(parents=True)
    (res / "crop" / "dedup.parquet").rename(res / "dedup" / "manifests" / "000.parquet")
    return wd


TINY = {"steps": 2, "batch": 2, "patch": 16, "channels": 4, "blocks": 1, "min_images": 3, "val_fraction": 0.2}


def test_dry_run_trains_the_upscaler_only_for_backend_learned(tmp_path):
    wd = mini_workflow(tmp_path)
    assert planned_jobs(wd) == {"normalise": 1, "all": 1}
    write_config(wd, {"normalise": {"size": 32, "upscale": {"backend": "learned", "learned": TINY}}})
    assert planned_jobs(wd) == {"upscale_train": 1, "normalise": 1, "all": 1}


@pytest.mark.slow
def test_workflow_trains_once_and_normalise_uses_the_model(tmp_path):
    wd = mini_workflow(tmp_path)
    write_config(wd, {"normalise": {"size": 32, "upscale": {"backend": "learned", "device": "cpu", "learned": TINY}}})
    snakemake(wd)
    res = wd / "results" / "mini"
    assert (res / "upscale" / "model.pt").is_file() and (res / "upscale" / "validation.json").is_file()
    frame = pd.read_parquet(res / "normalise" / "manifests" / "000.parquet").set_index("item_id")
    assert frame.loc["6_0", "upscale_factor"] == 2 and frame.loc["6_0", "status"] == "kept"
    assert planned_jobs(wd) == {}  # cached: nothing reruns
    # a normalise-only key reruns normalise, never the training
    write_config(wd, {"normalise": {"size": 32, "fit": "crop_top", "upscale": {"backend": "learned", "learned": TINY}}})
    assert planned_jobs(wd) == {"normalise": 1, "all": 1}
