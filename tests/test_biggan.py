"""BigGAN (train.model: biggan): networks, losses, spectral norm, the shared loop with exact and restart-proof
resume, the mode-collapse watch, and class-conditional sampling (CPU, tiny model)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from animefaces.config import parse_params
from animefaces.train import checkpoint as ckpt
from animefaces.train import presets
from animefaces.train.biggan import (
    BigGANDiscriminator,
    BigGANGenerator,
    hinge_d,
    hinge_g,
    orthogonal_penalty,
    spectral_norms,
    standing_stats,
    truncated_latent,
)
from animefaces.train.data import BatchSampler
from animefaces.train.loop import EXIT_INTERRUPTED, Trainer, train
from animefaces.train.models import MODELS, get_model, is_conditional
from animefaces.train.recipe_biggan import COLLAPSE_DIVERSITY, pairwise_l1_within_rows
from PIL import Image
from test_train_fixtures import blob_images, write_h5

# 16 px, 3 generator slots (z 48 = 3 x 16), attention at 8 px in G and D, 2 D steps x 2 accumulations x 4 images
# = 16 real images per iteration, 1 iteration per tick, EMA a copy for the first 2 iterations.
BG_TINY = {
    "model": "biggan",
    "preset": "biggan-tiny",
    "device": "cpu",
    "gpus": 0,
    "resolution": 16,
    "z_dim": 48,
    "g_ch": 4,
    "d_ch": 4,
    "shared_dim": 8,
    "g_attn": 8,
    "d_attn": 8,
    "batch": 4,
    "d_steps": 2,
    "d_accum": 2,
    "g_accum": 2,
    "ortho_reg": 1e-3,
    "kimg": 0.096,
    "kimg_per_tick": 0.016,
    "snap": 1,
    "keep_snapshots": 3,
    "ema_kimg": 0.05,
    "ema_start_kimg": 0.032,
    "augment": "diffaugment",
    "grid_rows": 3,
    "grid_cols": 4,
    "deterministic": True,
    "threads": 1,
}


def params(**over) -> dict:
    return parse_params(json.dumps({**BG_TINY, **over}), "train")


def gd(c_dim: int = 5, res: int = 16, deep: bool = False, **kw) -> tuple[BigGANGenerator, BigGANDiscriminator]:
    torch.manual_seed(0)
    G = BigGANGenerator(48, c_dim, res, ch=4, shared_dim=8, attn=8, deep=deep, **kw)
    D = BigGANDiscriminator(c_dim, res, ch=4, attn=8, deep=deep)
    return G, D


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bgpack")
    return write_h5(d / "tiny.hdf5", blob_images(24, 32), np.arange(24) % 3)


@pytest.fixture(scope="module")
def reference_run(pack, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bgref") / "train"
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        assert train(params(), str(pack), str(out)) == 0
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
    return out


def newest_state(outdir: Path) -> dict:
    return ckpt.load_file(ckpt.list_snapshots(outdir / "snapshots")[0][1])


def assert_same_nets(a: dict, b: dict) -> None:
    for net in ("G", "D", "G_ema"):
        assert a[net].keys() == b[net].keys()
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k} differs"
    for opt in ("opt_G", "opt_D"):
        for pid, st in a[opt]["state"].items():
            for k, v in st.items():
                assert torch.equal(v, b[opt]["state"][pid][k]), f"{opt} state {pid}.{k} differs"


# ------------------------------------------------------------------------------------------------ networks
@pytest.mark.parametrize("deep", [False, True])
@pytest.mark.parametrize("res", [16, 32])
def test_shapes_and_parameter_layout(deep, res):
    G, D = gd(res=res, deep=deep)
    z, c = torch.randn(4, 48), torch.eye(5)[[0, 1, 2, 3]]
    img = G(z, c)
    assert img.shape == (4, 3, res, res) and img.abs().max() <= 1
    assert D(img, c).shape == (4, 1)
    # every conv/linear weight is spectrally normalised; attention present at 8 px in both
    assert all(isinstance(m, torch.nn.BatchNorm2d) or not hasattr(m, "weight") or hasattr(m, "parametrizations")
               for m in G.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear))  # fmt: skip
    assert any(type(m).__name__ == "SelfAttention" for m in G.modules())
    assert any(type(m).__name__ == "SelfAttention" for m in D.modules())
    if not deep:  # hierarchical z: one chunk for the input layer + one per block (16 px: 3 x 16, 32 px: 4 x 12)
        assert G.chunk == 48 // (len(G.blocks) + 1) == {16: 16, 32: 12}[res]
        assert G.linear.parametrizations.weight.original.shape[1] == G.chunk


def test_hierarchical_z_must_split_and_names_the_key():
    with pytest.raises(ValueError, match=r"train.z_dim: 50 does not split into 3"):
        BigGANGenerator(50, 3, 16, ch=4, shared_dim=8, attn=0)


def test_conditioning_changes_the_output():
    G, D = gd()
    G.eval()
    z = torch.randn(2, 48).repeat_interleave(5, 0)  # each z with all 5 classes
    c = torch.eye(5).repeat(2, 1)
    with torch.no_grad():
        img = G(z, c)
        logits = D(img, c)
        logits_other = D(img, c.roll(1, dims=1))
    per_z = img.reshape(2, 5, -1)
    for i in range(2):
        diffs = torch.cdist(per_z[i], per_z[i])
        assert (diffs + torch.eye(5) * 1e9).min() > 1e-3  # every class gives a different image for the same z
    assert not torch.allclose(logits, logits_other)  # the projection term reads the class
    # z matters too, and the unconditional variant needs no labels
    assert not torch.allclose(per_z[0], per_z[1])
    G0, D0 = gd(c_dim=0)
    assert D0(G0(torch.randn(3, 48)), None).shape == (3, 1)
    with pytest.raises(ValueError, match="conditional"):
        G(torch.randn(2, 48), None)


def test_spectral_norm_bounds():
    G, D = gd()
    D.train()
    x, c = torch.randn(8, 3, 16, 16), torch.eye(5)[torch.arange(8) % 5]
    for _ in range(30):  # power iterations run in training forwards
        D(x, c)
    checked = 0
    for name, m in D.named_modules():
        if not hasattr(m, "parametrizations"):
            continue
        w_eff = m.weight.detach().flatten(1)  # W / sigma_estimate
        w_raw = m.parametrizations.weight.original.detach().flatten(1)
        sigma_eff = torch.linalg.matrix_norm(w_eff, ord=2)
        sigma_raw = torch.linalg.matrix_norm(w_raw, ord=2)
        est = spectral_norms(D)[name]
        assert est <= sigma_raw * (1 + 1e-4), name  # the power estimate never exceeds the true norm
        assert 0.999 <= sigma_eff <= 1.02, (name, float(sigma_eff))
        checked += 1
    assert checked >= 10
    # scaling a raw weight does not change the normalised one (after an iteration)
    with torch.no_grad():
        D.out.parametrizations.weight.original.mul_(50)
    D(x, c)
    assert torch.linalg.matrix_norm(D.out.weight.detach(), ord=2) <= 1.02


def test_hinge_losses_by_hand():
    real = torch.tensor([2.0, 0.5, -1.0], requires_grad=True)
    fake = torch.tensor([-2.0, 0.0, 1.0], requires_grad=True)
    lr, lf = hinge_d(real, fake)
    assert lr.item() == pytest.approx((0 + 0.5 + 2.0) / 3) and lf.item() == pytest.approx((0 + 1 + 2) / 3)
    (lr + lf).backward()
    # no gradient where the margin is met (real > 1, fake < -1)
    assert real.grad.tolist() == pytest.approx([0, -1 / 3, -1 / 3]) and fake.grad.tolist() == pytest.approx(
        [0, 1 / 3, 1 / 3]
    )
    assert hinge_g(torch.tensor([1.0, -3.0])).item() == pytest.approx(1.0)


def test_orthogonal_init_and_regulariser():
    G, _ = gd()
    w = G.blocks[0].conv1.parametrizations.weight.original.detach().flatten(1)  # 16 x 144: orthonormal rows
    assert torch.allclose(w @ w.t(), torch.eye(16), atol=1e-4)
    lin = torch.nn.Linear(8, 4, bias=False)
    torch.nn.init.orthogonal_(lin.weight)
    assert orthogonal_penalty(lin).item() == pytest.approx(0, abs=1e-8)
    with torch.no_grad():
        lin.weight[1] = lin.weight[0]  # two identical rows: off-diagonal = |w0|^2 = 1, twice
    assert orthogonal_penalty(lin).item() == pytest.approx(2.0, abs=1e-5)


def test_truncated_latents_and_standing_stats():
    z = truncated_latent(3, 512, 0.5)
    assert np.abs(z).max() <= 0.5 and np.array_equal(z, truncated_latent(3, 512, 0.5))
    assert np.abs(truncated_latent(3, 512, None)).max() > 1.5
    G, _ = gd()
    G.train()
    G(torch.randn(8, 48), torch.eye(5)[torch.arange(8) % 5])
    before = G.out_bn.running_mean.clone()
    standing_stats(G, torch.eye(5), batches=3, batch=4, seed=1)
    assert not G.training and not G.out_bn.training
    a = G.out_bn.running_mean.clone()
    assert not torch.equal(a, before)
    standing_stats(G, torch.eye(5), batches=3, batch=4, seed=1)
    assert torch.equal(G.out_bn.running_mean, a)  # fixed seed: deterministic


# ------------------------------------------------------------------------------------------------ registry / config
def test_model_registry_and_presets():
    assert set(MODELS) == {"stylegan2", "biggan"} and get_model(None).name == "stylegan2"
    with pytest.raises(ValueError, match="train.model: unknown model 'vqgan'"):
        get_model("vqgan")
    cfg = presets.resolve(
        parse_params(json.dumps({"model": "biggan", "preset": "biggan-128"}), "train"), 128, 11, "cpu"
    )
    seed = dict(z_dim=120, shared_dim=128, g_ch=96, d_ch=96, g_attn=64, d_attn=64, lr_g=1e-4, lr_d=4e-4)
    seed |= dict(betas_g=[0.0, 0.999], betas_d=[0.0, 0.999], init="ortho", g_accum=8, d_accum=8, batch=32)
    seed |= dict(g_shared=True, hier=True, d_steps=2, ema_start_kimg=10240.0, cond=True, c_dim=11)
    assert {k: cfg[k] for k in seed} == seed
    assert cfg["ema_kimg"] == pytest.approx(3548.7, abs=0.1) and cfg["ema_rampup"] is None
    auto = presets.resolve(parse_params(json.dumps({"model": "biggan"}), "train"), 256, 3, "cpu")
    assert auto["preset"] == "biggan-deep-256" and auto["deep"]
    with pytest.raises(ValueError, match="'tiny' is not a biggan preset"):
        presets.resolve(parse_params(json.dumps({"model": "biggan", "preset": "tiny"}), "train"), 32, 3, "cpu")
    assert not presets.resolve(parse_params("{}", "train"), 32, 3, "cpu")["cond"]  # stylegan2 unchanged
    assert is_conditional({"model": "biggan"}) and not is_conditional({"model": "biggan", "cond": False})
    assert not is_conditional({})


# ------------------------------------------------------------------------------------------------ training
def test_training_outputs_and_collapse_watch(reference_run):
    out = reference_run
    net = ckpt.load_file(out / "network-final.pt", ckpt.NETWORK_FORMAT)
    assert net["model"] == "biggan" and net["class_counts"] == [8, 8, 8] and net["kimg"] == pytest.approx(0.096)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["tick"] for r in rows] == [1, 2, 3, 4, 5, 6] and [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for key in ["loss_G", "loss_D", "D_real", "D_fake", "D_gap", "sn_G_max", "sn_D_max", "diversity_ratio"]:
        assert all(np.isfinite(r[key]) for r in rows), key
    assert all(r["ortho_penalty"] > 0 for r in rows)
    with Image.open(out / "grids" / "tick-000006.png") as im:
        assert im.size == (4 * 16, 3 * 16)
    G, meta = ckpt.load_generator(out / "network-final.pt")
    assert type(G).__name__ == "BigGANGenerator" and not G.training


def test_injected_stop_then_resume_is_exact(reference_run, pack, tmp_path):
    out = tmp_path / "train"
    assert train(params(), str(pack), str(out), stop_after_steps=3) == EXIT_INTERRUPTED
    # one iteration per tick: snapshots after iterations 1 and 2; iteration 3 is lost
    assert [round(k, 3) for k, _ in ckpt.list_snapshots(out / "snapshots")] == [0.032, 0.016]
    assert train(params(), str(pack), str(out)) == 0
    a, b = newest_state(out), newest_state(reference_run)
    assert {k: a["counters"][k] for k in ("nimg", "step", "tick")} == {
        k: b["counters"][k] for k in ("nimg", "step", "tick")
    }
    assert_same_nets(a, b)
    assert a["rng"][0]["sampler"]["pos"] == b["rng"][0]["sampler"]["pos"]
    rows_a = (out / "metrics.jsonl").read_text().splitlines()
    rows_b = (reference_run / "metrics.jsonl").read_text().splitlines()
    strip = ("sec_per_kimg", "sec_per_tick", "img_per_s", "time_s", "cpu_mem_gb")
    assert [{k: v for k, v in json.loads(r).items() if k not in strip} for r in rows_a] == [
        {k: v for k, v in json.loads(r).items() if k not in strip} for r in rows_b
    ]


def _recording(tr: Trainer, log: list) -> None:
    orig = tr.sampler.next

    def nxt(batch):
        idx, flips = orig(batch)
        log.append((idx.clone(), flips.clone()))
        return idx, flips

    tr.sampler.next = nxt


@pytest.mark.parametrize(("batch", "d_accum", "d_steps"), [(2, 4, 2), (8, 1, 1), (3, 1, 2)])
def test_resume_after_changing_batch_or_accumulation_neither_repeats_nor_skips(pack, tmp_path, batch, d_accum, d_steps):
    out = tmp_path / "train"
    seen: list = []
    first = Trainer(params(), str(pack), str(out))
    _recording(first, seen)
    assert first.run(stop_after_steps=3) == EXIT_INTERRUPTED  # snapshots at 16, 32, 48 images
    snap = newest_state(out)
    consumed = snap["counters"]["nimg"]
    seen = seen[: consumed // 4]  # batches drawn up to the snapshot (4 images each)
    changed = params(batch=batch, d_accum=d_accum, d_steps=d_steps)
    second = Trainer(changed, str(pack), str(out))
    assert second.try_resume()  # batch / accumulation / D steps may change
    assert_same_nets(second.state_dict(), snap)  # the state is restored exactly
    _recording(second, seen)
    assert second.run() == 0
    total = second.counters.nimg
    per_iteration = batch * d_accum * d_steps
    assert total >= 96 and (total - consumed) == (second.counters.step - 2) * per_iteration
    idx = torch.cat([i for i, _ in seen])
    flips = torch.cat([f for _, f in seen])
    ref = BatchSampler(24, 0)
    want_idx = torch.cat([ref.next(1)[0] for _ in range(len(idx))])
    assert len(idx) == total  # every image counted once
    assert torch.equal(idx, want_idx)  # the same stream as an uninterrupted sampler: nothing repeated or skipped
    assert len(flips) == total


def test_stylegan2_still_refuses_a_batch_change_biggan_does_not(reference_run, pack, tmp_path):
    out = tmp_path / "train"
    shutil.copytree(reference_run / "snapshots", out / "snapshots")
    with pytest.raises(ValueError, match=r"g_ch: 4 -> 8"):
        train(params(g_ch=8), str(pack), str(out))
    with pytest.raises(ValueError, match=r"model: 'biggan' -> 'stylegan2'"):
        train(params(model="stylegan2", preset="tiny"), str(pack), str(out))
    assert train(params(kimg=0.128, batch=8, d_accum=1), str(pack), str(out)) == 0
    assert ckpt.load_file(out / "network-final.pt")["kimg"] == pytest.approx(0.128)


def test_collapse_warning_when_samples_stop_varying(pack, tmp_path, capsys):
    tr = Trainer(params(), str(pack), str(tmp_path))
    ok = tr.recipe.tick_metrics({"D_real": 1.0, "D_fake": -1.0})
    assert ok["warning"] is None and ok["D_gap"] == 2.0 and ok["diversity_ratio"] > COLLAPSE_DIVERSITY
    # a collapsed generator: every grid image the same
    tr._grid_cache = (tr.counters.nimg, torch.full((12, 3, 16, 16), 0.3))
    bad = tr.recipe.tick_metrics({"D_real": 1.0, "D_fake": -1.0})
    assert bad["diversity_ratio"] == pytest.approx(0, abs=1e-6) and "mode collapse" in bad["warning"]
    assert pairwise_l1_within_rows(torch.ones(6, 3, 4, 4), 2, 3) == 0


def test_ddp_style_copy_of_g_keeps_spectral_norm_state():
    G, _ = gd()
    H = copy.deepcopy(G)
    assert [n for n, _ in G.named_buffers()] == [n for n, _ in H.named_buffers()]
    assert len(list(G.parameters())) == len(list(H.parameters()))


@pytest.mark.slow
def test_biggan_128_matches_the_papers_parameter_count():
    """The seed's D1K preset at ImageNet's 1000 classes has BigGAN's published size (G 70.4M, D 88.0M)."""
    cfg = parse_params(json.dumps({"model": "biggan", "preset": "biggan-128", "init": "N02"}), "train")
    from animefaces.train.biggan import build_biggan, param_count

    G, D = build_biggan(presets.arch_of(presets.resolve(cfg, 128, 1000, "cpu")))
    assert round(param_count(G) / 1e6, 1) == 70.4 and round(param_count(D) / 1e6, 1) == 88.0


# ------------------------------------------------------------------------------------------------ class sampling
def test_class_sampling_products(reference_run, tmp_path, capsys):
    from animefaces import sample_classes as sc
    from test_sample import ffmpeg_info, read_frames, read_png

    net = str(reference_run / "network-final.pt")
    tsv = tmp_path / "classes.tsv"
    tsv.write_text("class_id\tname\tcount\n1\tsaber\t8\n2\thatsune miku\t8\n")
    cfg = {"sheet_seeds": [0, 1], "class_images": 2, "truncation_seeds": [1, 2, 3], "class_truncations": [2.0, 0.3]}
    cfg |= {"class_video_seconds": 0.4, "video_fps": 5, "video_grid": 2}
    args = ["--network", net, "--classes", str(tsv), "--params", json.dumps(cfg)]
    assert sc.main(["sheets", "--outdir", str(tmp_path / "sheets"), *args]) == 0
    index = json.loads((tmp_path / "sheets" / "sheets.json").read_text())
    rows = index["sheets"][0]["rows"]
    assert [r["name"] for r in rows] == ["(unlabelled)", "saber", "hatsune miku"]  # named from the class table
    sheet = read_png(tmp_path / "sheets" / "sheet-000.png")
    assert sheet.shape[0] == 3 * 18 - 2 and sheet.shape[1] > 2 * 18
    assert read_png(tmp_path / "sheets" / "truncation.png").shape[0] == 3 * 18 - 2

    assert sc.main(["images", "--outdir", str(tmp_path / "images"), *args]) == 0
    files = sorted(p.name for p in (tmp_path / "images").glob("*.png"))
    assert files == [f"c{k:03d}_{n}_seed{s:07d}.png" for k, n in enumerate(["unlabelled", "saber", "hatsune_miku"])
                     for s in (0, 1)]  # fmt: skip
    # any image is regenerated from its class and seed; the sheet's column s is the same latent in every row
    G, _meta = ckpt.load_generator(net)
    again = sc.render(G, "biggan", [1], sc.onehot([2], G.c_dim), None, "cpu")[0]
    assert np.array_equal(again, read_png(tmp_path / "images" / "c002_hatsune_miku_seed0000001.png"))
    assert np.array_equal(sheet[2 * 18 : 2 * 18 + 16, -16:], again)
    t_lo = sc.render(G, "biggan", [1], sc.onehot([2], G.c_dim), 0.3, "cpu")[0]
    assert not np.array_equal(t_lo, again)  # truncation changes the latent

    # the report's samples page: one figure per class sheet + the truncation figure, a gallery of the class images
    from animefaces.report import samples

    report = samples.sample_assets([tmp_path / "sheets" / "sheets.json", tmp_path / "images" / "index.json"],
                                   tmp_path / "report", n=4)  # fmt: skip
    assert sorted(p.name for p in report) == [
        "figure-class-sheet-000.png", "figure-class-truncation.png", "gallery-class-images.png"
    ]  # fmt: skip
    assert np.array_equal(read_png(tmp_path / "report" / "figure-class-sheet-000.png"), sheet)  # not rescaled
    assert read_png(tmp_path / "report" / "gallery-class-images.png").shape[1] > 4 * 16  # 4 captioned tiles

    out = tmp_path / "classes.mp4"
    assert sc.main(["video", "--out", str(out), *args]) == 0
    assert "h264" in ffmpeg_info(out) and len(read_frames(out)) == 3 * 2  # 3 classes x 2 frames each

    assert sc.main(["images", "--outdir", str(tmp_path / "x"), *args[:-1], json.dumps({"classes": ["nobody"]})]) == 1
    assert "sample.classes: 'nobody' is not a class" in capsys.readouterr().err
    vec, where = sc.class_path([1, 2], 3, 4)
    assert np.allclose(vec.sum(1), 1) and where[0] == (1, 2, 0.0) and vec[2].tolist() == [0, 0.5, 0.5]
