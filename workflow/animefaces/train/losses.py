"""StyleGAN2 losses: non-saturating logistic G/D losses, lazy R1 on reals, optional path-length regularisation.

The regularisers are "lazy" (Karras et al. 2020, sec. 3.1): evaluated every ``interval`` minibatches and
multiplied by the interval, with the optimiser's Adam hyper-parameters rescaled accordingly (see ``loop``).
Style-mixing regularisation (switch ``train.style_mixing`` = probability) swaps in a second latent's w from a
random layer onwards. All functions return float32 loss tensors; network forwards may run under autocast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class StyleGAN2Loss:
    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        augment: Callable[[Tensor], Tensor] | None,
        r1_gamma: float,
        pl_weight: float,
        style_mixing: float,
        pl_decay: float = 0.01,
        pl_batch_shrink: int = 2,
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        G_run: Any = None,
        D_run: nn.Module | None = None,
    ) -> None:
        """``G_run``/``D_run``: optionally compiled versions used for the main (single-backward) passes."""
        self.G, self.D = G, D
        self.G_run = G if G_run is None else G_run
        self.D_run = D if D_run is None else D_run
        self.augment = augment
        self.r1_gamma, self.pl_weight, self.style_mixing = r1_gamma, pl_weight, style_mixing
        self.pl_decay, self.pl_batch_shrink = pl_decay, pl_batch_shrink
        self.autocast = autocast
        self.pl_mean = torch.zeros([], device=next(G.parameters()).device)

    def run_G(
        self, z: Tensor, c: Tensor, update_emas: bool = False, G: nn.Module | None = None
    ) -> tuple[Tensor, Tensor]:
        G = self.G_run if G is None else G
        with self.autocast():
            ws = G.mapping(z, c, update_emas=update_emas)
            if self.style_mixing > 0:
                num_ws = ws.shape[1]
                cutoff = int(torch.randint(1, num_ws, ()))
                if float(torch.rand(())) >= self.style_mixing:
                    cutoff = num_ws
                if cutoff < num_ws:
                    ws2 = G.mapping(torch.randn_like(z), c, update_emas=False)
                    ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
            img = G.synthesis(ws)
        return img.float(), ws

    def run_D(self, img: Tensor, c: Tensor, D: nn.Module | None = None) -> Tensor:
        D = self.D_run if D is None else D
        if self.augment is not None:
            img = self.augment(img)
        with self.autocast():
            return D(img, c).float()

    def g_main(self, z: Tensor, c: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        img, _ = self.run_G(z, c)
        logits = self.run_D(img, c)
        loss = F.softplus(-logits).mean()
        return loss, {"loss_G": loss.detach(), "D_fake_G": logits.detach().mean()}

    def g_pl(self, z: Tensor, c: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Path-length penalty E[(|J_w^T y| - a)^2] on a shrunk batch; ``a`` is a running mean of the lengths."""
        n = max(1, z.shape[0] // self.pl_batch_shrink)
        img, ws = self.run_G(z[:n], c[:n], G=self.G)  # img [n, C, H, W], ws [n, num_ws, w_dim]
        # y ~ N(0, I) / sqrt(H * W): the 1/sqrt(pixels) scaling makes |J_w^T y| independent of the resolution
        # (sum over H*W pixels of unit-variance terms grows like H*W; its square root is divided out), so the
        # target length ``a`` and pl_weight mean the same at 64 px as at 1024 px.
        noise = torch.randn_like(img) / (img.shape[2] * img.shape[3]) ** 0.5
        (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)  # J_w^T y: [n, num_ws, w_dim]
        # |J_w^T y| per sample: squared norm over w_dim, averaged over the num_ws copies of w, then the root
        lengths = grads.float().square().sum(dim=2).mean(dim=1).sqrt()  # [n]
        self.pl_mean.copy_(self.pl_mean.lerp(lengths.mean().detach(), self.pl_decay))
        penalty = (lengths - self.pl_mean).square()
        return penalty.mean() * self.pl_weight, {
            "pl_penalty": penalty.detach().mean(),
            "pl_length": lengths.detach().mean(),
        }

    def d_main(
        self, real: Tensor, c_real: Tensor, z: Tensor, c_gen: Tensor
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Returns (loss, real logits, stats)."""
        with torch.no_grad():
            fake, _ = self.run_G(z, c_gen, update_emas=True)
        fake_logits = self.run_D(fake, c_gen)
        real_logits = self.run_D(real, c_real)
        loss_fake = F.softplus(fake_logits).mean()
        loss_real = F.softplus(-real_logits).mean()
        loss = loss_fake + loss_real
        stats = {
            "loss_D": loss.detach(),
            "loss_D_real": loss_real.detach(),
            "loss_D_fake": loss_fake.detach(),
            "D_real": real_logits.detach().mean(),
            "D_fake": fake_logits.detach().mean(),
        }
        return loss, real_logits.detach(), stats

    def d_r1(
        self, real: Tensor, c_real: Tensor, scale: Callable[[Tensor], Tensor] | None = None, inv_scale: float = 1.0
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """R1 = gamma/2 * E|grad_x D(x)|^2 on reals (through the augmentation). ``scale``: AMP loss scaling."""
        real = real.detach().requires_grad_(True)
        logits = self.run_D(real, c_real, D=self.D)
        out = logits.sum() if scale is None else scale(logits.sum())
        (grads,) = torch.autograd.grad(out, real, create_graph=True)
        grads = grads.float() * inv_scale
        penalty = grads.square().sum(dim=[1, 2, 3])
        loss = penalty.mean() * (self.r1_gamma / 2)
        return loss, {"r1_penalty": penalty.detach().mean()}
