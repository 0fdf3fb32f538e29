"""Training: networks, augmentation, loaders, and the training loop with exact resume (CPU, tiny model)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from animefaces.config import parse_params
from animefaces.pack.source import box_downscale
from animefaces.train import checkpoint as ckpt
from animefaces.train import main as train_main
from animefaces.train.augment import AdaController, AugmentPipe, diff_augment
from animefaces.train.data import BatchSampler, open_dataset
from animefaces.train.loop import EXIT_INTERRUPTED, Trainer, train
from animefaces.train.networks import Discriminator, Generator, downsample2d, fir_kernel, upsample2d
from animefaces.train.runs import run_folder
from PIL import Image
from test_train_fixtures import TINY, blob_images, write_h5, write_zip

REPO = Path(__file__).resolve().parent.parent
LOSS_KEYS = ["loss_G", "loss_D", "loss_D_real", "loss_D_fake", "r1_penalty", "pl_penalty", "aug_p", "D_real"]


def params(**over) -> dict:
    return parse_params(json.dumps({**TINY, **over}), "train")


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pack")
    return write_h5(d / "tiny.hdf5", blob_images(24, 32), np.arange(24) % 3)


@pytest.fixture(scope="module")
def reference_run(pack, tmp_path_factory) -> Path:
    """An uninterrupted run: the yardstick for every resume test."""
    out = tmp_path_factory.mktemp("ref") / "train"
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        assert train(params(), str(pack), str(out)) == 0
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
    return out


def newest_state(outdir: Path) -> dict:
    """The newest snapshot in ``outdir`` (a Trainer folder) or in its current run (a ``RES/train`` folder)."""
    return ckpt.load_file(ckpt.list_snapshots(run_folder(outdir) / "snapshots")[0][1])


def assert_same_state(a: dict, b: dict) -> None:
    assert a["counters"]["nimg"] == b["counters"]["nimg"] and a["counters"]["step"] == b["counters"]["step"]
    for net in ("G", "D", "G_ema"):
        assert a[net].keys() == b[net].keys()
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k} differs"
    for opt in ("opt_G", "opt_D"):
        for pid, st in a[opt]["state"].items():
            for k, v in st.items():
                assert torch.equal(v, b[opt]["state"][pid][k]), f"{opt} state {pid}.{k} differs"
    assert a["augment"] == b["augment"]
    assert torch.equal(a["rng"][0]["pl_mean"], b["rng"][0]["pl_mean"])
    assert a["rng"][0]["ada"] == b["rng"][0]["ada"]
    assert a["rng"][0]["sampler"]["pos"] == b["rng"][0]["sampler"]["pos"]
    assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])


def loss_rows(outdir: Path) -> list[dict]:
    rows = [json.loads(x) for x in (outdir / "metrics.jsonl").read_text().splitlines()]
    return [{k: r.get(k) for k in ["tick", "kimg", "step", *LOSS_KEYS]} for r in rows]


# ------------------------------------------------------------------------------------------------ networks
def test_generator_contract_and_modconv_forms_agree():
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=0, w_dim=8, resolution=16, channel_base=64, channel_max=8, map_layers=2).eval()
    assert G.num_ws == 6 and G.resolution == 16 and G.z_dim == 8 and G.c_dim == 0
    z = torch.randn(5, 8)
    ws = G.mapping(z, None)
    assert ws.shape == (5, G.num_ws, 8)
    img_fused = G.synthesis(ws, noise_mode="const", fused_modconv=True)
    img_plain = G.synthesis(ws, noise_mode="const", fused_modconv=False)
    assert img_fused.shape == (5, 3, 16, 16)
    assert torch.allclose(img_fused, img_plain, atol=1e-4)
    # const noise is repeatable, random noise is not, 'none' differs from both once noise has strength
    for layer in G.modules():
        if hasattr(layer, "noise_strength"):
            layer.noise_strength.data.fill_(0.5)
    a, b = G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const")
    assert torch.equal(a, b)
    assert not torch.equal(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random"))
    # truncation: psi = 0 collapses every latent onto w_avg; G(z) = synthesis(mapping(z))
    G.mapping.w_avg.copy_(torch.randn(8))
    ws0 = G.mapping(z, None, truncation_psi=0.0)
    assert torch.allclose(ws0, G.w_avg.expand_as(ws0))
    assert torch.allclose(G(z, None, 0.5, noise_mode="const"), G.synthesis(G.mapping(z, None, 0.5), "const"))


def test_conditional_networks_need_labels_and_use_them():
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=3, w_dim=8, resolution=8, channel_base=32, channel_max=8, map_layers=1).eval()
    D = Discriminator(c_dim=3, resolution=8, channel_base=32, channel_max=8)
    z = torch.randn(4, 8)
    c0, c1 = torch.eye(3)[[0, 0, 0, 0]], torch.eye(3)[[1, 1, 1, 1]]
    assert not torch.allclose(G.mapping(z, c0), G.mapping(z, c1))
    img = G(z, c0, noise_mode="const")
    assert D(img, c0).shape == (4, 1)
    assert not torch.allclose(D(img, c0), D(img, c1))
    with pytest.raises(ValueError, match="labels"):
        G.mapping(z, None)


def test_fir_upsampling_equals_zero_insertion_then_filter():
    k = fir_kernel()
    x = torch.randn(2, 3, 8, 8)
    stuffed = torch.zeros(2, 3, 16, 16)
    stuffed[..., ::2, ::2] = x  # the definition: insert zeros, pad, filter with gain 4
    ref = torch.nn.functional.conv2d(
        torch.nn.functional.pad(stuffed, [2, 1, 2, 1]), (k * 4)[None, None].repeat(3, 1, 1, 1), groups=3
    )
    assert torch.allclose(upsample2d(x, k), ref, atol=1e-5)


def test_fir_resampling_preserves_flat_images_and_shapes():
    k = fir_kernel()
    x = torch.full((1, 2, 8, 8), 3.0)
    up = upsample2d(x, k)
    assert up.shape == (1, 2, 16, 16)
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 3.0))
    down = downsample2d(torch.full((1, 2, 16, 16), 3.0), k)
    assert down.shape == (1, 2, 8, 8)
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 3.0))


def test_minibatch_std_feature_sees_batch_diversity():
    D = Discriminator(resolution=8, channel_base=32, channel_max=8, mbstd_group=4)
    same = torch.randn(1, 3, 8, 8).repeat(4, 1, 1, 1)
    feats = {}
    D.mbstd.register_forward_hook(lambda m, i, o: feats.__setitem__("x", o))
    D(same)
    assert torch.allclose(feats["x"][:, -1], torch.full_like(feats["x"][:, -1], 1e-4), atol=1e-3)
    D(torch.randn(4, 3, 8, 8))
    assert float(feats["x"][:, -1].detach().mean()) > 0.01


# ------------------------------------------------------------------------------------------------ augmentation
def test_ada_identity_at_p0_and_dihedral_blits():
    torch.manual_seed(1)
    x = torch.rand(16, 3, 8, 8) * 2 - 1
    assert torch.equal(AugmentPipe("bgc", "", use_ada=True, p=0.0)(x), x)
    pipe = AugmentPipe("b", "", use_ada=True, p=1.0)
    pipe.translate_std = 0.0  # only x-flips and 90-degree rotations: exact pixel permutations
    y = pipe(x)
    for i in range(16):
        cands = [torch.rot90(v, k, dims=(1, 2)) for v in (x[i], x[i].flip(2)) for k in range(4)]
        assert min(float((y[i] - c).abs().max()) for c in cands) < 1e-5


def test_augmentations_are_differentiable_for_r1():
    torch.manual_seed(2)
    x = (torch.rand(6, 3, 16, 16) * 2 - 1).requires_grad_(True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    pipe = AugmentPipe("bgc", "color,translation,cutout", use_ada=True, p=0.8)
    out = torch.nn.functional.conv2d(pipe(x), w).square().sum()
    (g,) = torch.autograd.grad(out, x, create_graph=True)
    g.square().sum().backward()  # double backward through grid_sample, gathers and colour matrices
    assert w.grad is not None and torch.isfinite(w.grad).all() and float(w.grad.abs().sum()) > 0
    y = diff_augment(torch.ones(4, 3, 16, 16), ["cutout"])
    assert float((y == 0).float().mean()) == pytest.approx(0.25, abs=0.1)


def test_ada_controller_moves_p_towards_target():
    pipe = AugmentPipe("bgc", "", use_ada=True, p=0.5)
    ctl = AdaController(pipe, target=0.6, ada_kimg=1.0, interval=2, batch=10)
    ctl.accumulate(torch.ones(10, 1))  # D confident on reals: r_t = 1 > 0.6 -> more augmentation
    ctl.maybe_adjust(1)
    assert float(pipe.p) == 0.5  # not an adjustment step
    ctl.accumulate(torch.ones(10, 1))
    ctl.maybe_adjust(2)
    assert float(pipe.p) == pytest.approx(0.52) and ctl.last_rt == 1.0
    ctl.accumulate(-torch.ones(20, 1))
    ctl.maybe_adjust(4)
    assert float(pipe.p) == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------------ data
def test_hdf5_and_zip_loaders_agree_and_downscale(tmp_path):
    imgs = blob_images(6, 32, seed=3)
    labels = np.array([0, 2, 1, 2, 0, 1])
    h = open_dataset(str(write_h5(tmp_path / "p.hdf5", imgs, labels)), resolution=16)
    z = open_dataset(str(write_zip(tmp_path / "p.zip", imgs, labels)), resolution=16)
    manual = np.floor(imgs.reshape(6, 3, 16, 2, 16, 2).astype(np.float64).mean(axis=(3, 5)) + 0.5).astype(np.uint8)
    assert np.array_equal(h.images.numpy(), manual) and np.array_equal(z.images.numpy(), manual)
    assert h.num_classes == z.num_classes == 3
    assert torch.equal(h.label_vectors, z.label_vectors) and h.label_vectors[1].tolist() == [0, 0, 1]
    # out-of-memory mode reads the same pixels per batch from the file
    disk = open_dataset(str(tmp_path / "p.hdf5"), resolution=16, max_memory_gb=1e-9)
    assert not disk.in_memory
    idx = torch.tensor([4, 1, 4, 0])
    assert torch.equal(disk.get(idx), h.get(idx))
    with pytest.raises(ValueError, match="imgs"):
        bad = tmp_path / "bad.h5"
        import h5py

        with h5py.File(bad, "w") as f:
            f["images"] = imgs
        open_dataset(str(bad))
    assert np.array_equal(box_downscale(imgs, 1), imgs)


def test_batch_sampler_epochs_and_state_roundtrip():
    s = BatchSampler(10, seed=5, mirror=True)
    first = torch.cat([s.next(5)[0] for _ in range(2)])
    assert sorted(first.tolist()) == list(range(10))  # one epoch = a permutation
    state = s.state_dict()
    a = [s.next(3) for _ in range(5)]
    s2 = BatchSampler(10, seed=99)
    s2.load_state_dict(state)
    b = [s2.next(3) for _ in range(5)]
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    # DDP: the ranks' shares of an epoch are disjoint and cover the data
    r0, r1 = BatchSampler(10, seed=5, rank=0, world=2), BatchSampler(10, seed=5, rank=1, world=2)
    i0, i1 = r0.next(5)[0], r1.next(5)[0]
    assert sorted(torch.cat([i0, i1]).tolist()) == list(range(10))


# ------------------------------------------------------------------------------------------------ training
def test_training_outputs_and_monitoring(reference_run):
    out = reference_run
    net = ckpt.load_file(out / "network-final.pt", ckpt.NETWORK_FORMAT)
    assert net["kimg"] == pytest.approx(0.096) and net["G_kwargs"]["resolution"] == 16
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["tick"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for key in ["loss_G", "loss_D", "r1_penalty", "pl_penalty", "aug_p", "img_per_s", "sec_per_kimg", "kimg"]:
        assert all(np.isfinite(r[key]) for r in rows), key
    assert rows[0]["aug_p"] != rows[-1]["aug_p"]  # ADA adapted p
    grids = json.loads((out / "grids" / "index.json").read_text())["grids"]
    assert grids == [f"tick-{t:06d}.png" for t in range(7)]
    with Image.open(out / "grids" / "tick-000006.png") as im:
        assert im.size == (4 * 16, 2 * 16)
    with Image.open(out / "losses.png") as im:
        assert im.format == "PNG" and im.size[0] > 100
    # keep_snapshots = 3 of the 6 written
    assert [round(k, 3) for k, _ in ckpt.list_snapshots(out / "snapshots")] == [0.096, 0.08, 0.064]


def test_injected_stop_then_resume_is_exact(reference_run, pack, tmp_path):
    out = tmp_path / "train"
    # stop after 5 steps: snapshots exist for ticks 1 and 2 (steps 2, 4); step 5 is lost
    assert train(params(), str(pack), str(out), stop_after_steps=5) == EXIT_INTERRUPTED
    assert not (out / "network-final.pt").exists()
    assert [round(k, 3) for k, _ in ckpt.list_snapshots(out / "snapshots")] == [0.032, 0.016]
    # a second copy whose newest snapshot is corrupt (a torn write): must fall back to the previous one
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    newest = ckpt.list_snapshots(broken / "snapshots")[0][1]
    newest.write_bytes(newest.read_bytes()[:1000])
    for d in (out, broken):
        with pytest.warns(UserWarning, match="unreadable") if d is broken else _nothing():
            assert train(params(), str(pack), str(d)) == 0
        assert_same_state(newest_state(d), newest_state(reference_run))
        assert loss_rows(d) == loss_rows(reference_run)
        a = ckpt.load_file(d / "network-final.pt")["G_ema"]
        b = ckpt.load_file(reference_run / "network-final.pt")["G_ema"]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_snapshot_stores_per_rank_state_once_and_old_snapshots_still_resume_exactly(reference_run, pack, tmp_path):
    """pl_mean and ADA's state live only in the per-rank entries; a snapshot in the layout that also kept
    top-level copies (and lacked the per-rank ones) resumes to the same final state."""
    out = tmp_path / "train"
    assert train(params(), str(pack), str(out), stop_after_steps=5) == EXIT_INTERRUPTED
    newest = ckpt.list_snapshots(out / "snapshots")[0][1]
    state = ckpt.load_file(newest)
    assert "pl_mean" not in state and "ada" not in state["augment"] and "pl_mean" in state["rng"][0]
    assert state["rng"][0]["ada"] is not None and float(state["rng"][0]["pl_mean"]) != 0.0  # both in use
    old = {
        **state,
        "pl_mean": state["rng"][0]["pl_mean"],
        "augment": {**state["augment"], "ada": state["rng"][0]["ada"]},
    }
    old["rng"] = [{k: v for k, v in r.items() if k not in ("pl_mean", "ada")} for r in state["rng"]]
    ckpt.save_file(newest, old)
    assert train(params(), str(pack), str(out)) == 0
    assert_same_state(newest_state(out), newest_state(reference_run))
    assert loss_rows(out) == loss_rows(reference_run)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_pack_read_per_batch_by_loader_workers_trains_and_resumes_like_in_memory(reference_run, pack, tmp_path, capsys):
    """The pack read from the file per batch by 2 read-ahead worker processes (train.loader_workers), stopped and
    resumed: the same weights, optimiser state and losses as the in-memory, uninterrupted reference."""
    out = tmp_path / "train"
    p = params(data_memory_gb=1e-9, loader_workers=2)
    assert train(p, str(pack), str(out), stop_after_steps=3) == EXIT_INTERRUPTED
    assert train(p, str(pack), str(out)) == 0
    assert "loader: read per batch, 2 worker process(es)" in capsys.readouterr().out
    assert_same_state(newest_state(out), newest_state(reference_run))
    assert loss_rows(out) == loss_rows(reference_run)


def test_sigkill_mid_run_then_restart_is_exact(reference_run, pack, tmp_path):
    out = tmp_path / "train"
    cmd = [sys.executable, "-m", "animefaces.train", "--data", str(pack), "--outdir", str(out)]
    cmd += ["--params", json.dumps(TINY)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    try:
        while len(ckpt.list_snapshots(run_folder(out) / "snapshots")) < 2:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.time() < deadline, "no snapshot appeared"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "network-final.pt").exists(), "the run finished before it could be killed"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resumed from" in done.stdout
    assert_same_state(newest_state(out), newest_state(reference_run))
    assert loss_rows(out) == loss_rows(reference_run)


def test_resume_refuses_incompatible_settings(reference_run, pack, tmp_path):
    out = tmp_path / "train"
    shutil.copytree(reference_run / "snapshots", out / "snapshots")
    with pytest.raises(ValueError, match=r"channel_max: 16 -> 8"):
        train(params(channel_max=8), str(pack), str(out))
    # a longer run from the same snapshots continues instead (kimg may change)
    assert train(params(kimg=0.112), str(pack), str(out)) == 0
    assert ckpt.load_file(out / "network-final.pt")["kimg"] == pytest.approx(0.112)
    rows = loss_rows(out)
    assert rows[:6] == loss_rows(reference_run) and len(rows) == 7


def test_transfer_learning_to_a_conditional_run(reference_run, pack, tmp_path, capsys):
    src = ckpt.load_file(reference_run / "network-final.pt")["G_ema"]
    tr = Trainer(params(cond=True, init_from=str(reference_run / "network-final.pt")), str(pack), str(tmp_path))
    assert tr.cfg["c_dim"] == 3
    report = ckpt.transfer_from(tr.cfg["init_from"], tr.G, tr.D, tr.G_ema)
    assert any("mapping.embed" in r for r in report["G"])  # new class embedding: fresh, reported
    assert any("mapping.layers.0.weight" in r for r in report["G"])  # its input width changed too
    own = tr.G.state_dict()
    synth_keys = [k for k in src if k.startswith("synthesis.")]
    assert synth_keys and all(torch.equal(own[k], src[k]) for k in synth_keys)
    assert report["D"] == ["<all: not in source>"]  # a network file has no D
    # the CLI path: init_from is applied on a fresh run and training proceeds
    assert (
        train(
            params(cond=True, kimg=0.016, init_from=str(reference_run / "network-final.pt")),
            str(pack),
            str(tmp_path / "t2"),
        )
        == 0
    )
    assert "init_from: loaded weights" in capsys.readouterr().out


def test_cli_reports_config_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:  # a config error exits 2, as argparse does for a usage error
        train_main(["--data", "x.h5", "--outdir", str(tmp_path), "--params", '{"batchsize": 3}'])
    assert exit_.value.code == 2
    assert "batchsize" in capsys.readouterr().err
    assert train_main(["--data", str(tmp_path / "missing.h5"), "--outdir", str(tmp_path)]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_train_rule_requests_a_gpu_only_when_asked(tmp_path):
    """Dry runs of the real Snakefile: resources gpu=N (and torchrun for N > 1) only for GPU configs."""
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "demo.yaml", tmp_path / "config" / "demo.yaml")
    name = "demo"
    pack_file = tmp_path / "results" / name / "pack" / "hdf5" / f"{name}.hdf5"
    pack_file.parent.mkdir(parents=True)
    pack_file.touch()  # the train job's input exists: the dry run plans only the train job
    blocks = {}
    cases = {
        "cpu": "{device: cpu, gpus: 4}",
        "auto0": "{device: auto, gpus: 0}",
        "auto1": "{device: auto, gpus: 1}",
        "ddp": "{device: cuda, gpus: 2}",
    }
    for case, train_cfg in cases.items():
        over = tmp_path / f"{case}.yaml"
        over.write_text(f"dataset: {{name: {name}}}\ntrain: {train_cfg}\n")
        res = subprocess.run(
            [
                str(Path(sys.executable).parent / "snakemake"),
                "-s",
                str(REPO / "Snakefile"),
                "-n",
                "-p",
                "--forcerun",
                "train",
                "--configfile",
                str(over),
                "--cores",
                "2",
                f"results/{name}/train/network-final.pt",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        text = res.stdout + res.stderr
        blocks[case] = text[text.index("rule train:") :]
    resources = {c: next(line for line in b.splitlines() if "resources:" in line) for c, b in blocks.items()}
    assert "gpu=" not in resources["cpu"] and "gpu=" not in resources["auto0"]
    assert "gpu=1" in resources["auto1"] and "gpu=2" in resources["ddp"]
    assert "mem_mb=32000" in resources["cpu"] and "runtime=2880" in resources["cpu"]
    assert "torchrun --standalone --nproc_per_node=2 -m animefaces.train" in blocks["ddp"]
    assert "python -m animefaces.train" in blocks["auto1"] and "torchrun" not in blocks["auto1"]
