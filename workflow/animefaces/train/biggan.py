"""BigGAN and BigGAN-deep generator / discriminator in plain PyTorch (class-conditional, spectrally normalised).

Written from the papers, not from any implementation:

- Brock, Donahue & Simonyan 2018, "Large Scale GAN Training for High Fidelity Natural Image Synthesis": residual
  G and D; a *shared* class embedding and a *hierarchical* latent (z split into one chunk per generator block plus
  one for the initial linear layer, each block's chunk concatenated to the class embedding) feeding conditional
  BatchNorm gains and biases through linear projections; orthogonal initialisation; the modified orthogonal
  regulariser ``beta * ||W W^T * (1 - I)||_F^2``; truncated-normal latents for sampling. BigGAN-deep: bottleneck
  blocks (1x1 reduce, two 3x3, 1x1 expand), two blocks per resolution, the full z + embedding given to every block,
  generator skips that drop channels and discriminator skips that concatenate learned channels.
- Miyato & Koyama 2018, "cGANs with Projection Discriminator": D(x, y) = psi(phi(x)) + <embed(y), phi(x)>,
  with phi ending in ReLU + global sum pooling; spectral normalisation (Miyato et al. 2018) on every weight of G
  and D (one power iteration per training forward, ``torch.nn.utils.parametrizations.spectral_norm``).
- Zhang et al. 2019, "Self-Attention GANs": a non-local block (1x1 query/key/value, key/value max-pooled 2x2,
  softmax attention, 1x1 output, learned gate ``gamma`` starting at 0) at a configurable resolution.

Conditioning vectors ``c`` are the loop's one-hot label vectors ``[N, c_dim]`` (soft vectors interpolate classes);
the class embeddings are bias-free linear maps of them (= an embedding table). ``c_dim = 0`` gives an unconditional
BigGAN (BatchNorm conditioned on z only, no projection term).

Sampling uses the generator in eval mode: BatchNorm normalises with its running statistics. Because the EMA
generator's statistics are copied from the trained G (whose weights differ), :func:`standing_stats` re-measures
them on G_ema itself (BatchNorm momentum ``None`` = cumulative average over fixed-seed batches) before every tick
grid and before the final network is written.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

INITS = ("ortho", "N02", "xavier")

# Generator width multipliers (x ch) at 4, 8, ..., R px; the discriminator uses them reversed (its width at r px is
# the generator's at 2r px; the last block keeps 4 px). 128/256/512 are the papers' tables, smaller ones ours.
G_MULTS: dict[int, list[int]] = {
    8: [4, 4],
    16: [4, 4, 4],
    32: [4, 4, 4, 4],
    64: [16, 16, 8, 4, 2],
    128: [16, 16, 8, 4, 2, 1],
    256: [16, 16, 8, 8, 4, 2, 1],
    512: [16, 16, 8, 8, 4, 2, 1, 1],
}


def init_weight(module: nn.Module, scheme: str) -> nn.Module:
    """Initialise a Linear/Conv weight (before spectral norm is attached) and zero its bias."""
    w = module.weight
    if scheme == "ortho":
        nn.init.orthogonal_(w)
    elif scheme == "N02":
        nn.init.normal_(w, 0.0, 0.02)
    elif scheme == "xavier":
        nn.init.xavier_uniform_(w)
    else:
        raise ValueError(f"train.init: unknown initialisation {scheme!r}; choose one of {list(INITS)}")
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return module


def sn(module: nn.Module, init: str, eps: float = 1e-6) -> nn.Module:
    return spectral_norm(init_weight(module, init), n_power_iterations=1, eps=eps)


def sn_conv(cin: int, cout: int, k: int, init: str) -> nn.Module:
    return sn(nn.Conv2d(cin, cout, k, padding=k // 2), init)


def sn_linear(cin: int, cout: int, init: str, bias: bool = True) -> nn.Module:
    return sn(nn.Linear(cin, cout, bias=bias), init)


def spectral_norms(module: nn.Module) -> dict[str, float]:
    """The current power-iteration estimate sigma = u^T W v of every spectrally normalised weight (unnormalised W)."""
    out = {}
    for name, sub in module.named_modules():
        plist = getattr(getattr(sub, "parametrizations", None), "weight", None)
        if plist is None:
            continue
        par = plist[0]
        if not hasattr(par, "_u"):
            continue
        w = plist.original.detach()
        w_mat = w.flatten(1) if w.ndim > 1 else w[None]
        out[name] = float(torch.dot(par._u, w_mat.float() @ par._v.float()))
    return out


def orthogonal_penalty(module: nn.Module, skip: tuple[str, ...] = ("shared",)) -> Tensor:
    """Brock et al.'s modified orthogonal regulariser sum_W ||W W^T * (1 - I)||_F^2 over the (unnormalised) weight
    matrices of ``module`` (rows = output units), skipping parameters whose name contains one of ``skip``."""
    total = None
    for name, p in module.named_parameters():
        if p.ndim < 2 or not p.requires_grad or any(s in name for s in skip):
            continue
        w = p.flatten(1)
        gram = w @ w.t()
        off = gram * (1.0 - torch.eye(gram.shape[0], device=gram.device, dtype=gram.dtype))
        term = off.square().sum()
        total = term if total is None else total + term
    return total if total is not None else torch.zeros([])


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without affine parameters, then per-sample gain ``1 + W_g y`` and bias ``W_b y`` (y = condition)."""

    def __init__(self, channels: int, cond_dim: int, init: str, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=cond_dim == 0, eps=eps, momentum=momentum)
        self.cond_dim = cond_dim
        if cond_dim:
            self.gain = sn_linear(cond_dim, channels, init)
            self.bias = sn_linear(cond_dim, channels, init)

    def forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        out = self.bn(x)
        if not self.cond_dim:
            return out
        gain = 1.0 + self.gain(y)
        bias = self.bias(y)
        return out * gain[:, :, None, None].to(out.dtype) + bias[:, :, None, None].to(out.dtype)


class SelfAttention(nn.Module):
    """SAGAN non-local block: x + gamma * o(v softmax(q^T k)), keys/values max-pooled 2x2 (needs H, W >= 2)."""

    def __init__(self, channels: int, init: str) -> None:
        super().__init__()
        self.query = sn_conv(channels, max(1, channels // 8), 1, init)
        self.key = sn_conv(channels, max(1, channels // 8), 1, init)
        self.value = sn_conv(channels, max(1, channels // 2), 1, init)
        self.out = sn_conv(max(1, channels // 2), channels, 1, init)
        self.gamma = nn.Parameter(torch.zeros([]))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2)  # [N, C/8, HW]
        k = F.max_pool2d(self.key(x), 2).flatten(2)  # [N, C/8, HW/4]
        v = F.max_pool2d(self.value(x), 2).flatten(2)  # [N, C/2, HW/4]
        attn = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)  # [N, HW, HW/4]
        o = torch.bmm(v, attn.transpose(1, 2)).reshape(n, -1, h, w)
        return x + self.gamma * self.out(o)


def _up(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class GBlock(nn.Module):
    """BigGAN residual up-block: cBN-ReLU-up-conv3-cBN-ReLU-conv3, skip up-conv1."""

    def __init__(self, cin: int, cout: int, cond_dim: int, init: str, bn_eps: float, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.bn1 = ConditionalBatchNorm(cin, cond_dim, init, bn_eps)
        self.conv1 = sn_conv(cin, cout, 3, init)
        self.bn2 = ConditionalBatchNorm(cout, cond_dim, init, bn_eps)
        self.conv2 = sn_conv(cout, cout, 3, init)
        self.skip = sn_conv(cin, cout, 1, init) if (cin != cout or upsample) else None

    def forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        h = F.relu(self.bn1(x, y))
        if self.upsample:
            h, x = _up(h), _up(x)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + (self.skip(x) if self.skip is not None else x)


class GBlockDeep(nn.Module):
    """BigGAN-deep bottleneck block: 1x1 reduce, (up), two 3x3, 1x1 expand, each after cBN-ReLU; the skip keeps the
    first ``cout`` channels (cout <= cin) and is upsampled."""

    def __init__(self, cin: int, cout: int, cond_dim: int, init: str, bn_eps: float, upsample: bool) -> None:
        super().__init__()
        if cout > cin:
            raise ValueError(f"BigGAN-deep generator blocks cannot widen ({cin} -> {cout} channels)")
        mid = max(1, cin // 4)
        self.upsample, self.cout = upsample, cout
        self.bn1 = ConditionalBatchNorm(cin, cond_dim, init, bn_eps)
        self.conv1 = sn_conv(cin, mid, 1, init)
        self.bn2 = ConditionalBatchNorm(mid, cond_dim, init, bn_eps)
        self.conv2 = sn_conv(mid, mid, 3, init)
        self.bn3 = ConditionalBatchNorm(mid, cond_dim, init, bn_eps)
        self.conv3 = sn_conv(mid, mid, 3, init)
        self.bn4 = ConditionalBatchNorm(mid, cond_dim, init, bn_eps)
        self.conv4 = sn_conv(mid, cout, 1, init)

    def forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        h = self.conv1(F.relu(self.bn1(x, y)))
        h = F.relu(self.bn2(h, y))
        skip = x[:, : self.cout]
        if self.upsample:
            h, skip = _up(h), _up(skip)
        h = self.conv3(F.relu(self.bn3(self.conv2(h), y)))
        h = self.conv4(F.relu(self.bn4(h, y)))
        return h + skip


class DBlock(nn.Module):
    """Residual down-block: (ReLU)-conv3-ReLU-conv3-(avgpool); skip conv1 + avgpool. The first block of the
    non-deep D has no pre-activation and pools before its skip convolution (its input is the image)."""

    def __init__(self, cin: int, cout: int, init: str, downsample: bool, preact: bool) -> None:
        super().__init__()
        self.downsample, self.preact = downsample, preact
        self.conv1 = sn_conv(cin, cout, 3, init)
        self.conv2 = sn_conv(cout, cout, 3, init)
        self.skip = sn_conv(cin, cout, 1, init) if (cin != cout or downsample) else None

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(x) if self.preact else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.preact:
            s = self.skip(s) if self.skip is not None else s
            s = F.avg_pool2d(s, 2) if self.downsample else s
        else:
            s = F.avg_pool2d(s, 2) if self.downsample else s
            s = self.skip(s) if self.skip is not None else s
        return h + s


class DBlockDeep(nn.Module):
    """BigGAN-deep D block: ReLU-1x1 reduce, two ReLU-3x3, ReLU-(avgpool)-1x1 expand; the skip is pooled and gets
    ``cout - cin`` learned channels (1x1 conv) concatenated."""

    def __init__(self, cin: int, cout: int, init: str, downsample: bool) -> None:
        super().__init__()
        if cout < cin:
            raise ValueError(f"BigGAN-deep discriminator blocks cannot narrow ({cin} -> {cout} channels)")
        mid = max(1, cout // 4)
        self.downsample = downsample
        self.conv1 = sn_conv(cin, mid, 1, init)
        self.conv2 = sn_conv(mid, mid, 3, init)
        self.conv3 = sn_conv(mid, mid, 3, init)
        self.conv4 = sn_conv(mid, cout, 1, init)
        self.extra = sn_conv(cin, cout - cin, 1, init) if cout > cin else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.relu(x))
        h = self.conv3(F.relu(self.conv2(F.relu(h))))
        h = F.relu(h)
        if self.downsample:
            h = F.avg_pool2d(h, 2)
            x = F.avg_pool2d(x, 2)
        h = self.conv4(h)
        if self.extra is not None:
            x = torch.cat([x, self.extra(x)], dim=1)
        return h + x


def _mults(resolution: int) -> list[int]:
    if resolution not in G_MULTS:
        raise ValueError(f"train.resolution: BigGAN supports {sorted(G_MULTS)} px, got {resolution}")
    return G_MULTS[resolution]


def _attn_set(value: int | list[int] | None) -> set[int]:
    if not value:
        return set()
    return {int(v) for v in (value if isinstance(value, list | tuple) else [value])}


class BigGANGenerator(nn.Module):
    """G(z, c) -> image [N, 3, R, R] in [-1, 1]. ``z_dim`` must split into equal chunks when ``hier``."""

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        resolution: int,
        ch: int = 96,
        shared_dim: int = 128,
        shared: bool = True,
        hier: bool = True,
        attn: int | list[int] | None = 64,
        deep: bool = False,
        init: str = "ortho",
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.init_kwargs: dict[str, Any] = dict(
            z_dim=z_dim,
            c_dim=c_dim,
            resolution=resolution,
            ch=ch,
            shared_dim=shared_dim,
            shared=shared,
            hier=hier,
            attn=attn,
            deep=deep,
            init=init,
            bn_eps=bn_eps,
        )
        self.z_dim, self.c_dim, self.resolution, self.deep = z_dim, c_dim, resolution, deep
        mults = _mults(resolution)
        n_up = len(mults) - 1
        self.hier = hier and not deep  # BigGAN-deep gives the full z to every block
        if self.hier and z_dim % (n_up + 1):
            raise ValueError(
                f"train.z_dim: {z_dim} does not split into {n_up + 1} equal chunks (one per generator block + one "
                f"for the input layer at {resolution} px); use a multiple of {n_up + 1} or set train.hier: false"
            )
        self.chunk = z_dim // (n_up + 1) if self.hier else z_dim
        emb_dim = (shared_dim if shared else c_dim) if c_dim else 0
        self.shared = sn_linear(c_dim, shared_dim, init, bias=False) if (c_dim and shared) else None
        # with shared=False the one-hot c feeds each cBN's own projections (= per-layer class embeddings)
        cond_dim = emb_dim + (self.chunk if self.hier else (z_dim if deep else 0))
        in_dim = self.chunk if self.hier else (z_dim + emb_dim if deep else z_dim)
        self.bottom = mults[0] * ch
        self.linear = sn_linear(in_dim, self.bottom * 16, init)
        attn_at = _attn_set(attn)
        blocks, attns = [], []
        res = 4
        for i in range(n_up):
            cin, cout = mults[i] * ch, mults[i + 1] * ch
            if deep:
                blocks.append(GBlockDeep(cin, cin, cond_dim, init, bn_eps, upsample=False))
                attns.append(None)
                blocks.append(GBlockDeep(cin, cout, cond_dim, init, bn_eps, upsample=True))
            else:
                blocks.append(GBlock(cin, cout, cond_dim, init, bn_eps, upsample=True))
            res *= 2
            attns.append(SelfAttention(cout, init) if res in attn_at else None)
        self.blocks = nn.ModuleList(blocks)
        self.attns = nn.ModuleList([a if a is not None else nn.Identity() for a in attns])
        self.out_bn = nn.BatchNorm2d(mults[-1] * ch, eps=bn_eps)
        self.out_conv = sn_conv(mults[-1] * ch, 3, 3, init)

    def embed(self, c: Tensor) -> Tensor | None:
        if not self.c_dim:
            return None
        return self.shared(c) if self.shared is not None else c

    def forward(self, z: Tensor, c: Tensor | None = None, **_unused: Any) -> Tensor:
        if self.c_dim and (c is None or c.shape[1] != self.c_dim):
            raise ValueError(f"this generator is conditional: pass c of shape [N, {self.c_dim}]")
        e = self.embed(c)
        n_blocks = len(self.blocks)
        if self.hier:
            zs = list(torch.split(z, self.chunk, dim=1))
            x = self.linear(zs[0])
            conds = [zs[1 + i] if e is None else torch.cat([e, zs[1 + i]], dim=1) for i in range(n_blocks)]
        elif self.deep:
            y = z if e is None else torch.cat([e, z], dim=1)
            x = self.linear(y)
            conds = [y] * n_blocks
        else:
            x = self.linear(z)
            conds = [e] * n_blocks
        x = x.reshape(z.shape[0], self.bottom, 4, 4)
        # deep: one chunk-free condition per block pair; the attention list is aligned with the blocks
        for block, attn, y in zip(self.blocks, self.attns, conds, strict=True):
            x = attn(block(x, y))
        return torch.tanh(self.out_conv(F.relu(self.out_bn(x))))


class BigGANDiscriminator(nn.Module):
    """D(x, c) -> logits [N, 1]: residual blocks, ReLU, global sum pooling, linear + projection <embed(c), h>."""

    def __init__(
        self,
        c_dim: int,
        resolution: int,
        ch: int = 96,
        attn: int | list[int] | None = 64,
        deep: bool = False,
        init: str = "ortho",
    ) -> None:
        super().__init__()
        self.init_kwargs: dict[str, Any] = dict(
            c_dim=c_dim, resolution=resolution, ch=ch, attn=attn, deep=deep, init=init
        )
        self.c_dim, self.resolution = c_dim, resolution
        mults = _mults(resolution)[::-1]
        attn_at = _attn_set(attn)
        blocks: list[nn.Module] = []
        res = resolution
        if deep:
            self.stem = sn_conv(3, mults[0] * ch, 3, init)
            cin = mults[0] * ch
        else:
            self.stem = None
            cin = 3
        for i, m in enumerate(mults):
            cout = m * ch
            down = i < len(mults) - 1
            if deep:
                blocks.append(DBlockDeep(cin, cin, init, downsample=False))
                blocks.append(DBlockDeep(cin, cout, init, downsample=down))
            else:
                blocks.append(DBlock(cin, cout, init, downsample=down, preact=i > 0))
            if down:
                res //= 2
            if res in attn_at:  # attention on the features at `res` px (SAGAN), once
                blocks.append(SelfAttention(cout, init))
                attn_at.discard(res)
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.out = sn_linear(cin, 1, init)
        self.embed = sn_linear(c_dim, cin, init, bias=False) if c_dim else None

    def features(self, x: Tensor) -> Tensor:
        h = self.stem(x) if self.stem is not None else x
        for block in self.blocks:
            h = block(h)
        return F.relu(h).sum(dim=(2, 3))

    def forward(self, img: Tensor, c: Tensor | None = None) -> Tensor:
        h = self.features(img)
        out = self.out(h)
        if self.embed is not None:
            if c is None or c.shape[1] != self.c_dim:
                raise ValueError(f"this discriminator is conditional: pass c of shape [N, {self.c_dim}]")
            out = out + (self.embed(c) * h).sum(dim=1, keepdim=True)
        return out


def build_biggan(arch: dict[str, Any]) -> tuple[BigGANGenerator, BigGANDiscriminator]:
    """G and D from resolved ``train`` settings (see ``presets_biggan.ARCH_KEYS``)."""
    G = BigGANGenerator(
        z_dim=int(arch["z_dim"]),
        c_dim=int(arch["c_dim"]),
        resolution=int(arch["resolution"]),
        ch=int(arch["g_ch"]),
        shared_dim=int(arch["shared_dim"]),
        shared=bool(arch["g_shared"]),
        hier=bool(arch["hier"]),
        attn=arch["g_attn"],
        deep=bool(arch["deep"]),
        init=arch["init"],
        bn_eps=float(arch["bn_eps"]),
    )
    D = BigGANDiscriminator(
        c_dim=int(arch["c_dim"]),
        resolution=int(arch["resolution"]),
        ch=int(arch["d_ch"]),
        attn=arch["d_attn"],
        deep=bool(arch["deep"]),
        init=arch["init"],
    )
    return G, D


def generator_from_kwargs(kwargs: dict[str, Any]) -> BigGANGenerator:
    return BigGANGenerator(**kwargs)


# ------------------------------------------------------------------------------------------------ sampling
def truncated_latent(seed: int, z_dim: int, threshold: float | None) -> np.ndarray:
    """z for a seed (numpy's legacy Mersenne Twister, like ``sample.seed_latent``): N(0, I), with every component
    whose magnitude exceeds ``threshold`` redrawn from the same stream until none does (Brock et al.'s truncation
    trick); ``None`` or ``<= 0`` = no truncation."""
    rng = np.random.RandomState(seed)
    z = rng.randn(z_dim)
    if threshold is not None and threshold > 0:
        bad = np.abs(z) > threshold
        while bad.any():
            z[bad] = rng.randn(int(bad.sum()))
            bad = np.abs(z) > threshold
    return z.astype(np.float32)


def _bn_modules(G: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]


@torch.no_grad()
def standing_stats(
    G: BigGANGenerator, c_choices: Tensor, batches: int = 8, batch: int = 16, seed: int = 0
) -> BigGANGenerator:
    """Re-measure every BatchNorm's running mean/var on G itself: cumulative averages over ``batches`` forward
    passes of N(0, I) latents with labels drawn from the rows of ``c_choices`` (a fixed-seed generator, never the
    training RNG), then leave G in eval mode. Spectral-norm vectors are not touched (the rest of G stays in eval)."""
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(int(seed) + 7_000_003)
    G.eval()
    bns = _bn_modules(G)
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
        m.train()
    try:
        for _ in range(batches):
            z = torch.randn(batch, G.z_dim, generator=gen).to(device)
            if G.c_dim:
                pick = torch.randint(len(c_choices), (batch,), generator=gen)
                c = c_choices[pick].to(device)
            else:
                c = None
            G(z, c)
    finally:
        for m, mom in zip(bns, saved, strict=True):
            m.momentum = mom
            m.eval()
    return G


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def hinge_d(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """Hinge loss for D: (E[relu(1 - D(x))], E[relu(1 + D(G(z)))]) (Lim & Ye 2017; used by SAGAN and BigGAN)."""
    return F.relu(1.0 - real_logits).mean(), F.relu(1.0 + fake_logits).mean()


def hinge_g(fake_logits: Tensor) -> Tensor:
    """Hinge generator loss: -E[D(G(z))]."""
    return -fake_logits.mean()
