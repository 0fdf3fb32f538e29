"""Presets against the reference's published configurations, the R1 heuristic, and non-finite gradient hygiene."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from animefaces.config import parse_params
from animefaces.train.loop import Trainer
from animefaces.train.presets import auto_r1_gamma, resolve
from test_train_fixtures import TINY, blob_images, write_h5

# stylegan2-ada's paper256 / paper512 / paper1024: batch, mbstd group, fmaps (base 32768 * fmaps), lr, gamma, ema
REFERENCE = {
    256: (64, 8, 16384, 0.0025, 1.0, 20.0),
    512: (64, 8, 32768, 0.0025, 0.5, 20.0),
    1024: (32, 4, 32768, 0.002, 2.0, 10.0),
}


@pytest.mark.parametrize("res", sorted(REFERENCE))
def test_stylegan2_presets_are_the_reference_paper_configs(res):
    cfg = resolve(parse_params(json.dumps({"preset": f"stylegan2-{res}"}), "train"), res, 0, "cuda")
    batch, mbstd, base, lr, gamma, ema = REFERENCE[res]
    got = (cfg["batch"], cfg["mbstd_group"], cfg["channel_base"], cfg["lr_g"], cfg["r1_gamma"], cfg["ema_kimg"])
    assert got == (batch, mbstd, base, lr, gamma, ema)
    assert cfg["lr_d"] == lr and cfg["map_layers"] == 8 and cfg["z_dim"] == cfg["w_dim"] == 512


def test_auto_r1_gamma_is_the_reference_heuristic_and_follows_batch():
    assert auto_r1_gamma(256, 64) == pytest.approx(0.2048)
    tiny = resolve(parse_params(json.dumps({"preset": "tiny"}), "train"), 64, 0, "cpu")
    assert tiny["r1_gamma"] == pytest.approx(0.0002 * 32**2 / 16)
    bigger = resolve(parse_params(json.dumps({"preset": "tiny", "batch": 32}), "train"), 64, 0, "cpu")
    assert bigger["r1_gamma"] == pytest.approx(0.0002 * 32**2 / 32)
    explicit = resolve(parse_params(json.dumps({"preset": "tiny", "r1_gamma": 3}), "train"), 64, 0, "cpu")
    assert explicit["r1_gamma"] == 3
    via_config = resolve(
        parse_params(json.dumps({"preset": "stylegan2-256", "r1_gamma": "auto"}), "train"), 256, 0, "cuda"
    )
    assert via_config["r1_gamma"] == pytest.approx(0.0002 * 256**2 / 64)


def test_a_non_finite_gradient_does_not_poison_the_weights(tmp_path):
    """A NaN/inf in one phase's gradients (as bf16 overflow can make) is zeroed/clipped before the optimiser step."""
    pack = write_h5(tmp_path / "p.hdf5", blob_images(16, 32), np.zeros(16))
    params = parse_params(json.dumps({**TINY, "kimg": 0.032}), "train")
    tr = Trainer(params, str(pack), str(tmp_path / "out"))
    weight = tr.D.blocks["b16"].conv1.weight
    poison = weight.register_hook(
        lambda g: torch.full_like(g, float("nan")).index_fill_(0, torch.tensor([0]), float("inf"))
    )
    tr.train_step({})
    poison.remove()
    for module in (tr.G, tr.D):
        for name, p in module.named_parameters():
            assert torch.isfinite(p).all(), name
    state = tr.opt_D.state[weight]
    assert torch.isfinite(state["exp_avg"]).all() and torch.isfinite(state["exp_avg_sq"]).all()
    tr.train_step({})  # training goes on
    assert all(torch.isfinite(p).all() for p in tr.D.parameters())
