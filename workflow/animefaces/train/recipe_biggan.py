"""BigGAN's part of training (``train.model: biggan``), on the shared loop.

One iteration (Brock et al. 2018, sec. 3 and appendix C):

- ``d_steps`` times: D step = ``d_accum`` micro-batches of ``batch`` real images (from the loop's sampler, which
  counts images) and as many fakes from G (train mode, no grad: BatchNorm batch statistics), hinge loss
  ``E[relu(1 - D(x, y))] + E[relu(1 + D(G(z, y'), y'))]``, gradients averaged over the micro-batches, one Adam
  step (``lr_d``, ``betas_d``);
- one G step = ``g_accum`` micro-batches of ``batch`` fakes, loss ``-E[D(G(z, y'), y')]`` (+ the orthogonal
  regulariser ``ortho_reg``), one Adam step (``lr_g``, ``betas_g``).

Fake labels y' are drawn from the training labels (class frequencies as in the data). DiffAugment/ADA apply to
reals and fakes alike when ``train.augment`` asks for them. The loop then updates G_ema (a copy until
``ema_start_kimg``) and counts the real images shown (``d_steps * d_accum * batch``), so changing batch size or
accumulation between runs resumes at the same place in the data.

Tick metrics (mode-collapse watch, as the seed wished): the largest spectral norms (power-iteration estimates of
the unnormalised weights) of G and D and G's first layer, the D logit gap ``D_real - D_fake``, and the sample
diversity of the tick grid (mean pairwise L1 distance between the fixed-latent images of each class row) relative
to the same measure on real images of those classes. A warning is logged when the diversity ratio falls below
:data:`COLLAPSE_DIVERSITY` or G's largest spectral norm jumps above :data:`COLLAPSE_SN_JUMP` times its median so far.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch
from torch import Tensor, nn

from . import presets
from .biggan import build_biggan, hinge_d, hinge_g, orthogonal_penalty, spectral_norms, standing_stats
from .data import to_float
from .models import Recipe

COLLAPSE_DIVERSITY = 0.25  # grid diversity / real diversity below this: likely (class-wise) mode collapse
COLLAPSE_SN_JUMP = 3.0  # G's top spectral norm this many times its median over earlier ticks: likely collapse
STANDING_BATCHES = 8


def pairwise_l1_within_rows(images: Tensor, rows: int, cols: int) -> float:
    """Mean L1 distance between every pair of images in the same grid row (images [rows*cols, 3, H, W])."""
    x = images[: rows * cols].float().reshape(rows, cols, -1)
    if cols < 2:
        return float("nan")
    d = torch.cdist(x, x, p=1) / x.shape[-1]  # [rows, cols, cols]
    return float(d.sum() / (rows * cols * (cols - 1)))


class BigGANRecipe(Recipe):
    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        return build_biggan(presets.arch_of(self.t.cfg))

    def make_optimizers(self) -> tuple[torch.optim.Adam, torch.optim.Adam]:
        t, cfg = self.t, self.t.cfg
        opt_G = torch.optim.Adam(t.G.parameters(), lr=cfg["lr_g"], betas=tuple(cfg["betas_g"]), eps=1e-8)
        opt_D = torch.optim.Adam(t.D.parameters(), lr=cfg["lr_d"], betas=tuple(cfg["betas_d"]), eps=1e-8)
        return opt_G, opt_D

    def apply_config_to_optimizers(self) -> None:
        t, cfg = self.t, self.t.cfg
        for opt, lr, betas in ((t.opt_G, cfg["lr_g"], cfg["betas_g"]), (t.opt_D, cfg["lr_d"], cfg["betas_d"])):
            for group in opt.param_groups:
                group["lr"] = lr
                group["betas"] = tuple(betas)

    def setup(self) -> None:
        t = self.t
        self.augment = t.aug if t.cfg["augment"] != "none" else None
        if t.cfg["compile"]:
            t.log("train.compile: not used by train.model biggan (it trains eagerly)")
        self.sn_history: list[float] = []
        # grid labels: row r shows class classes[r % n] (the classes present in the data), so rows = classes
        counts = t.data.class_counts()
        if t.cfg["c_dim"] and counts:
            present = [k for k, n in enumerate(counts) if n > 0]
            rows, cols = t.cfg["grid_rows"], t.cfg["grid_cols"]
            ids = torch.tensor([present[r % len(present)] for r in range(rows) for _ in range(cols)])
            t.grid_c = torch.nn.functional.one_hot(ids, t.cfg["c_dim"]).float().to(t.device)
            # reals.png and the diversity yardstick: per row, `cols` real images of that row's class
            gen = torch.Generator().manual_seed(t.cfg["seed"] + 5_000_011)
            labels = torch.from_numpy(t.data.raw_labels.astype("int64"))
            picks = []
            for k in ids[::cols].tolist():
                pool = (labels == k).nonzero()[:, 0]
                picks.append(pool[torch.randint(len(pool), (cols,), generator=gen)])
            t.grid_idx = torch.cat(picks)
        self._real_diversity: float | None = None

    # ------------------------------------------------------------------------------------------ iteration
    def _D(self, img: Tensor, c: Tensor) -> Tensor:
        if self.augment is not None:
            img = self.augment(img)
        with self.t._autocast():
            return self.t.D(img, c).float()

    def _G(self, z: Tensor, c: Tensor) -> Tensor:
        with self.t._autocast():
            return self.t.G(z, c).float()

    def _accumulate(self, losses, n: int, opt, module, scaler) -> None:
        """Backward each micro-batch loss / n; the last one goes through the loop's _step (DDP average + step)."""
        for i in range(n):
            loss = losses(i) / n
            if i < n - 1:
                (scaler.scale(loss) if scaler is not None else loss).backward()
            else:
                self.t._step(loss, opt, module, scaler)

    def train_step(self, stats: dict[str, list[Tensor]]) -> int:
        t, cfg = self.t, self.t.cfg
        acc: dict[str, list[Tensor]] = stats
        # ---- D steps
        t.G.requires_grad_(False)
        t.D.requires_grad_(True)
        for _ in range(cfg["d_steps"]):
            t.opt_D.zero_grad(set_to_none=True)

            def d_loss(_i: int) -> Tensor:
                real, real_c = t._next_batch()
                z, gen_c = t._gen_inputs()
                with torch.no_grad():
                    fake = self._G(z, gen_c)
                logits = self._D(torch.cat([real, fake]), torch.cat([real_c, gen_c]))
                real_logits, fake_logits = logits[: len(real)], logits[len(real) :]
                loss_real, loss_fake = hinge_d(real_logits, fake_logits)
                if t.ada is not None:
                    t.ada.accumulate(real_logits.detach())
                for k, v in (
                    ("loss_D_real", loss_real),
                    ("loss_D_fake", loss_fake),
                    ("loss_D", loss_real + loss_fake),
                    ("D_real", real_logits.mean()),
                    ("D_fake", fake_logits.mean()),
                ):
                    acc.setdefault(k, []).append(v.detach().float())
                return loss_real + loss_fake

            self._accumulate(d_loss, cfg["d_accum"], t.opt_D, t.D, t.scaler_D)
        t.D.requires_grad_(False)

        # ---- G step
        t.G.requires_grad_(True)
        t.opt_G.zero_grad(set_to_none=True)

        def g_loss(i: int) -> Tensor:
            z, gen_c = t._gen_inputs()
            fake_logits = self._D(self._G(z, gen_c), gen_c)
            loss = hinge_g(fake_logits)
            acc.setdefault("loss_G", []).append(loss.detach().float())
            acc.setdefault("D_fake_G", []).append(fake_logits.detach().mean())
            if cfg["ortho_reg"] > 0 and i == 0:
                # added once per G step; scaled by g_accum because _accumulate divides every term by it
                penalty = orthogonal_penalty(t.G)
                acc.setdefault("ortho_penalty", []).append(penalty.detach().float())
                loss = loss + cfg["ortho_reg"] * cfg["g_accum"] * penalty
            return loss

        self._accumulate(g_loss, cfg["g_accum"], t.opt_G, t.G, t.scaler_G)
        t.G.requires_grad_(False)
        return int(cfg["d_steps"] * cfg["d_accum"] * cfg["batch"])

    # ------------------------------------------------------------------------------------------ sampling
    def render(self, G: nn.Module, z: Tensor, c: Tensor) -> Tensor:
        return G(z, c if G.c_dim else None)

    def prepare_for_sampling(self, G_ema: nn.Module) -> None:
        """Standing statistics: BatchNorm running stats re-measured on G_ema (fixed seed), then eval mode."""
        t = self.t
        c_choices = t.data.label_vectors if t.cfg["c_dim"] else torch.zeros(1, 0)  # the training labels
        standing_stats(G_ema, c_choices, STANDING_BATCHES, min(16, max(2, t.batch_gpu)), t.cfg["seed"])

    # ------------------------------------------------------------------------------------------ monitoring
    def _real_grid_diversity(self) -> float:
        """The grid diversity measure on the real grid images (per row: reals of that row's class)."""
        if self._real_diversity is None:
            t = self.t
            idx = t.grid_idx
            imgs = to_float(t.data.get(idx), torch.zeros(len(idx), dtype=torch.bool))
            self._real_diversity = pairwise_l1_within_rows(imgs, t.cfg["grid_rows"], t.cfg["grid_cols"])
        return self._real_diversity

    def tick_metrics(self, stats: dict[str, float]) -> dict[str, Any]:
        t = self.t
        sn_g, sn_d = spectral_norms(t.G), spectral_norms(t.D)
        row: dict[str, Any] = {
            "sn_G_max": max(sn_g.values()),
            "sn_G_first": sn_g.get("linear"),
            "sn_D_max": max(sn_d.values()),
            "D_gap": stats["D_real"] - stats["D_fake"] if "D_real" in stats and "D_fake" in stats else None,
        }
        rows, cols = t.cfg["grid_rows"], t.cfg["grid_cols"]
        fake_div = pairwise_l1_within_rows(t.grid_images(), rows, cols)
        real_div = self._real_grid_diversity()
        row["diversity"] = fake_div
        row["diversity_ratio"] = fake_div / real_div if real_div > 0 else None
        warnings = []
        if row["diversity_ratio"] is not None and row["diversity_ratio"] < COLLAPSE_DIVERSITY:
            warnings.append(
                f"sample diversity is {row['diversity_ratio']:.2f} x the reals' (< {COLLAPSE_DIVERSITY}): "
                "possible mode collapse; check the tick grid and consider resuming from an earlier snapshot"
            )
        if len(self.sn_history) >= 3:
            med = statistics.median(self.sn_history)
            if row["sn_G_max"] > COLLAPSE_SN_JUMP * med:
                warnings.append(
                    f"G's largest spectral norm jumped to {row['sn_G_max']:.3g} ({row['sn_G_max'] / med:.1f} x its "
                    "median so far): BigGAN's collapse signature (Brock et al. sec. 4.1)"
                )
        self.sn_history.append(row["sn_G_max"])
        row["warning"] = "; ".join(warnings) or None
        return row

    def state(self) -> dict[str, Any]:
        return {"sn_history": list(self.sn_history)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.sn_history = [float(v) for v in state.get("sn_history", [])]
