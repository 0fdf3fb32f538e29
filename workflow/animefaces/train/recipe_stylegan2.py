"""StyleGAN2's part of training (``train.model: stylegan2``): networks, Adam with lazy-regularisation rescaling,
and one iteration = G main step (+ lazy path-length step every ``g_reg_interval``), D main step (+ lazy R1 step
every ``d_reg_interval``). The loop does the rest (EMA, ADA adjustment, counters, snapshots)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor, nn

from . import presets
from .losses import StyleGAN2Loss
from .models import Recipe
from .networks import build_networks


def _add(stats: dict[str, list[Tensor]], new: dict[str, Tensor]) -> None:
    for k, v in new.items():
        stats.setdefault(k, []).append(v.detach().float())


class StyleGAN2Recipe(Recipe):
    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        return build_networks(presets.arch_of(self.t.cfg))

    def _adam_args(self, lr: float, reg_interval: int) -> dict[str, Any]:
        # Lazy regularisation (Karras et al. 2020, StyleGAN2 appendix B): the regulariser runs only every k-th
        # step (k = reg_interval), as an extra optimiser step with its loss multiplied by k. Every k steps the
        # optimiser then takes k + 1 steps instead of k, so the learning rate is scaled by c = k / (k + 1) and
        # beta1, beta2 are raised to the power c: the moving averages then decay over the same wall-clock span of
        # iterations as without the extra steps (beta^(c * (k + 1)) = beta^k). beta1 = 0 stays 0.
        ratio = reg_interval / (reg_interval + 1) if reg_interval else 1.0
        return {"lr": lr * ratio, "betas": (0.0, 0.99**ratio)}

    def _intervals(self) -> tuple[int, int]:
        cfg = self.t.cfg
        return (
            cfg["g_reg_interval"] if cfg["pl_weight"] > 0 else 0,
            cfg["d_reg_interval"] if cfg["r1_gamma"] > 0 else 0,
        )

    def make_optimizers(self) -> tuple[torch.optim.Adam, torch.optim.Adam]:
        t, cfg = self.t, self.t.cfg
        g_int, d_int = self._intervals()
        opt_G = torch.optim.Adam(t.G.parameters(), eps=1e-8, **self._adam_args(cfg["lr_g"], g_int))
        opt_D = torch.optim.Adam(t.D.parameters(), eps=1e-8, **self._adam_args(cfg["lr_d"], d_int))
        return opt_G, opt_D

    def apply_config_to_optimizers(self) -> None:
        t, cfg = self.t, self.t.cfg
        g_int, d_int = self._intervals()
        for opt, lr, interval in ((t.opt_G, cfg["lr_g"], g_int), (t.opt_D, cfg["lr_d"], d_int)):
            for group in opt.param_groups:
                group.update(self._adam_args(lr, interval))

    def setup(self) -> None:
        t, cfg = self.t, self.t.cfg
        G_run, D_run = t.G, t.D
        if cfg["compile"]:
            # compile the mapping/synthesis forwards used by the main passes; the regularisation passes (double
            # backward) use the eager modules. Parameters stay shared, state_dict keys unchanged.
            G_run = SimpleNamespace(mapping=torch.compile(t.G.mapping), synthesis=torch.compile(t.G.synthesis))
            D_run = torch.compile(t.D)
        self.loss = StyleGAN2Loss(
            t.G,
            t.D,
            t.aug if cfg["augment"] != "none" else None,
            r1_gamma=cfg["r1_gamma"],
            pl_weight=cfg["pl_weight"],
            style_mixing=cfg["style_mixing"],
            autocast=t._autocast,
            G_run=G_run,
            D_run=D_run,
        )

    def train_step(self, stats: dict[str, list[Tensor]]) -> int:
        t, cfg, c = self.t, self.t.cfg, self.t.counters
        real, real_c = t._next_batch()

        # G: main loss (+ lazy path-length regularisation)
        t.G.requires_grad_(True)
        t.D.requires_grad_(False)
        t.opt_G.zero_grad(set_to_none=True)
        z, gen_c = t._gen_inputs()
        loss, st = self.loss.g_main(z, gen_c)
        t._step(loss, t.opt_G, t.G, t.scaler_G)
        _add(stats, st)
        if cfg["pl_weight"] > 0 and c.step % cfg["g_reg_interval"] == 0:
            t.opt_G.zero_grad(set_to_none=True)
            z, gen_c = t._gen_inputs()
            loss, st = self.loss.g_pl(z, gen_c)
            t._step(loss * cfg["g_reg_interval"], t.opt_G, t.G, t.scaler_G)
            _add(stats, st)
        t.G.requires_grad_(False)

        # D: main loss (+ lazy R1)
        t.D.requires_grad_(True)
        t.opt_D.zero_grad(set_to_none=True)
        z, gen_c = t._gen_inputs()
        loss, real_logits, st = self.loss.d_main(real, real_c, z, gen_c)
        t._step(loss, t.opt_D, t.D, t.scaler_D)
        _add(stats, st)
        if t.ada is not None:
            t.ada.accumulate(real_logits)
        if cfg["r1_gamma"] > 0 and c.step % cfg["d_reg_interval"] == 0:
            t.opt_D.zero_grad(set_to_none=True)
            if t.scaler_D is not None:
                loss, st = self.loss.d_r1(real, real_c, t.scaler_D.scale, 1.0 / float(t.scaler_D.get_scale()))
            else:
                loss, st = self.loss.d_r1(real, real_c)
            t._step(loss * cfg["d_reg_interval"], t.opt_D, t.D, t.scaler_D)
            _add(stats, st)
        t.D.requires_grad_(False)
        return int(cfg["batch"])

    def load_state(self, state: dict[str, Any]) -> None:
        if "pl_mean" in state:  # snapshots that kept a top-level copy; the per-rank one (load_rank_state) wins
            self.loss.pl_mean.copy_(state["pl_mean"].to(self.t.device))

    def rank_state(self) -> dict[str, Any]:
        return {"pl_mean": self.loss.pl_mean.detach().cpu()}

    def load_rank_state(self, rng: dict[str, Any]) -> None:
        if rng.get("pl_mean") is not None:
            self.loss.pl_mean.copy_(rng["pl_mean"].to(self.t.device))

    def render(self, G: nn.Module, z: Tensor, c: Tensor) -> Tensor:
        return G(z, c, noise_mode="const")

    def tick_metrics(self, stats: dict[str, float]) -> dict[str, Any]:
        return {"pl_mean": float(self.loss.pl_mean) if self.t.cfg["pl_weight"] > 0 else None}
