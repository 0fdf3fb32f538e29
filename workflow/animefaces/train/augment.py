"""Differentiable augmentations for training D on small datasets, applied to reals and fakes alike.

- DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"): ``color``
  (random brightness, saturation, contrast), ``translation`` (shift by up to 1/8 of the image, zero fill) and
  ``cutout`` (zero a random square of half the image size), every image, every time.
- ADA (Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data"): each transform is
  applied to each image with probability ``p``; ``p`` is adapted from the overfitting heuristic
  r_t = E[sign(D(real))] towards a target (0.6). Geometric transforms (x-flip, 90-degree rotations, integer
  translation, isotropic scaling, rotation, anisotropic scaling, fractional translation) are composed into one
  affine matrix per image and applied with a single bilinear ``grid_sample`` (reflection padding); colour
  transforms (brightness, contrast, luma flip, hue rotation, saturation) are one 4x4 matrix per image.
  Parameter distributions follow the paper's appendix.

Everything is differentiable with respect to the image (R1 needs the gradient through the augmentation) and uses
the global torch RNG, so checkpointing the RNG state makes runs resumable exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DIFFAUG_OPS = ("color", "translation", "cutout")
ADA_GROUPS = {"b": "blit", "g": "geom", "c": "color"}


# ------------------------------------------------------------------------------------------------ DiffAugment
def _rand(n: int, x: Tensor) -> Tensor:
    return torch.rand(n, 1, 1, 1, device=x.device, dtype=torch.float32).to(x.dtype)


def diff_color(x: Tensor) -> Tensor:
    n = x.shape[0]
    x = x + (_rand(n, x) - 0.5)
    mean_c = x.mean(dim=1, keepdim=True)
    x = (x - mean_c) * (_rand(n, x) * 2) + mean_c
    mean_all = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean_all) * (_rand(n, x) + 0.5) + mean_all


def diff_translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by an integer offset in [-ratio*size, ratio*size], filling with zeros (gather-based)."""
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    gy = torch.arange(h, device=x.device).reshape(1, h, 1) + ty + 1  # +1: index into the zero-padded image
    gx = torch.arange(w, device=x.device).reshape(1, 1, w) + tx + 1
    gy = gy.clamp(0, h + 1).expand(n, h, w)
    gx = gx.clamp(0, w + 1).expand(n, h, w)
    padded = F.pad(x, [1, 1, 1, 1])
    bi = torch.arange(n, device=x.device).reshape(n, 1, 1).expand(n, h, w)
    return padded.permute(0, 2, 3, 1)[bi, gy, gx].permute(0, 3, 1, 2)


def diff_cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).reshape(1, h, 1)
    xs = torch.arange(w, device=x.device).reshape(1, 1, w)
    inside = ((ys - oy + ch // 2) >= 0) & ((ys - oy + ch // 2) < ch) & ((xs - ox + cw // 2) >= 0)
    inside = inside & ((xs - ox + cw // 2) < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def parse_policy(policy: str) -> list[str]:
    ops = [p.strip() for p in policy.split(",") if p.strip()]
    bad = [p for p in ops if p not in DIFFAUG_OPS]
    if bad:
        raise ValueError(f"train.diffaugment: unknown op(s) {bad}; allowed: {list(DIFFAUG_OPS)}")
    return ops


def diff_augment(x: Tensor, ops: list[str]) -> Tensor:
    for op in ops:
        x = {"color": diff_color, "translation": diff_translation, "cutout": diff_cutout}[op](x)
    return x


# ------------------------------------------------------------------------------------------------ ADA matrices
def _eye(n: int, size: int, device: torch.device) -> Tensor:
    return torch.eye(size, device=device).unsqueeze(0).repeat(n, 1, 1)


def _translate2d(tx: Tensor, ty: Tensor) -> Tensor:
    m = _eye(tx.shape[0], 3, tx.device)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _scale2d(sx: Tensor, sy: Tensor) -> Tensor:
    m = _eye(sx.shape[0], 3, sx.device)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rotate2d(theta: Tensor) -> Tensor:
    m = _eye(theta.shape[0], 3, theta.device)
    c, s = torch.cos(theta), torch.sin(theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def _translate3d(t: Tensor) -> Tensor:
    m = _eye(t.shape[0], 4, t.device)
    m[:, :3, 3] = t.unsqueeze(1).expand(-1, 3)
    return m


def _scale3d(s: Tensor) -> Tensor:
    m = _eye(s.shape[0], 4, s.device)
    for i in range(3):
        m[:, i, i] = s
    return m


def _rotate3d(axis: Tensor, theta: Tensor) -> Tensor:
    """Rodrigues rotation about a unit ``axis`` [3] by ``theta`` [N], as 4x4 matrices."""
    x, y, z = axis
    c, s = torch.cos(theta), torch.sin(theta)
    cc = 1 - c
    m = _eye(theta.shape[0], 4, theta.device)
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = c + x * x * cc, x * y * cc - z * s, x * z * cc + y * s
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = y * x * cc + z * s, c + y * y * cc, y * z * cc - x * s
    m[:, 2, 0], m[:, 2, 1], m[:, 2, 2] = z * x * cc - y * s, z * y * cc + x * s, c + z * z * cc
    return m


class AugmentPipe(nn.Module):
    """ADA pipeline with adaptive probability ``p`` (a buffer, saved in snapshots) plus optional DiffAugment."""

    def __init__(self, ada_groups: str = "bgc", diffaugment: str = "", use_ada: bool = True, p: float = 0.0):
        super().__init__()
        bad = set(ada_groups) - set(ADA_GROUPS)
        if bad:
            raise ValueError(
                f"train.ada_pipe: unknown group letter(s) {sorted(bad)}; use b (blit), g (geom), c (color)"
            )
        self.groups = ada_groups
        self.use_ada = use_ada
        self.diff_ops = parse_policy(diffaugment) if diffaugment else []
        self.register_buffer("p", torch.tensor(float(p)))
        self.translate_std = 0.125
        self.scale_std = 0.2 * math.log(2)
        self.aniso_std = 0.2 * math.log(2)
        self.brightness_std = 0.2
        self.contrast_std = 0.5 * math.log(2)
        self.saturation_std = 1.0 * math.log(2)

    @property
    def active(self) -> bool:
        return bool(self.diff_ops) or self.use_ada

    def forward(self, x: Tensor) -> Tensor:
        if self.use_ada and float(self.p) > 0:
            x = self.ada(x, float(self.p))
        if self.diff_ops:
            x = diff_augment(x, self.diff_ops)
        return x

    def _gate(self, n: int, p: float, device: torch.device) -> Tensor:
        return (torch.rand(n, device=device) < p).float()

    def ada(self, x: Tensor, p: float) -> Tensor:
        n, c, h, w = x.shape
        dev = x.device
        m = _eye(n, 3, dev)  # forward transform of pixel coordinates, normalised to [-1, 1]
        if "b" in self.groups:
            flip = torch.randint(0, 2, (n,), device=dev).float() * self._gate(n, p, dev)
            m = m @ _scale2d(1 - 2 * flip, torch.ones_like(flip))
            rot = torch.randint(0, 4, (n,), device=dev).float() * self._gate(n, p, dev)
            m = m @ _rotate2d(rot * (math.pi / 2))
            t = (torch.rand(n, 2, device=dev) * 2 - 1) * self.translate_std * self._gate(n, p, dev).unsqueeze(1)
            m = m @ _translate2d(torch.round(t[:, 0] * w) * 2 / w, torch.round(t[:, 1] * h) * 2 / h)
        if "g" in self.groups:
            s = torch.exp(torch.randn(n, device=dev) * self.scale_std * self._gate(n, p, dev))
            m = m @ _scale2d(s, s)
            p_rot = 1 - math.sqrt(max(0.0, 1 - p))  # two rotations: keep the total probability at p
            th = (torch.rand(n, device=dev) * 2 - 1) * math.pi * self._gate(n, p_rot, dev)
            m = m @ _rotate2d(-th)
            a = torch.exp(torch.randn(n, device=dev) * self.aniso_std * self._gate(n, p, dev))
            m = m @ _scale2d(a, 1 / a)
            th = (torch.rand(n, device=dev) * 2 - 1) * math.pi * self._gate(n, p_rot, dev)
            m = m @ _rotate2d(-th)
            t = torch.randn(n, 2, device=dev) * self.translate_std * self._gate(n, p, dev).unsqueeze(1)
            m = m @ _translate2d(t[:, 0] * 2, t[:, 1] * 2)
        if not torch.equal(m, _eye(n, 3, dev)):
            theta = torch.linalg.inv(m)[:, :2, :].to(x.dtype)  # affine_grid maps output -> input coordinates
            grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if "c" in self.groups and c == 3:
            v = torch.tensor([1.0, 1.0, 1.0], device=dev) / math.sqrt(3)  # luma axis
            v4 = torch.cat([v, torch.zeros(1, device=dev)])
            cm = _eye(n, 4, dev)
            cm = _translate3d(torch.randn(n, device=dev) * self.brightness_std * self._gate(n, p, dev)) @ cm
            cm = _scale3d(torch.exp(torch.randn(n, device=dev) * self.contrast_std * self._gate(n, p, dev))) @ cm
            flip = torch.randint(0, 2, (n,), device=dev).float() * self._gate(n, p, dev)
            cm = (_eye(n, 4, dev) - 2 * torch.outer(v4, v4).unsqueeze(0) * flip.reshape(n, 1, 1)) @ cm
            hue = (torch.rand(n, device=dev) * 2 - 1) * math.pi * self._gate(n, p, dev)
            cm = _rotate3d(v, hue) @ cm
            sat = torch.exp(torch.randn(n, device=dev) * self.saturation_std * self._gate(n, p, dev))
            vv = torch.outer(v, v).unsqueeze(0)
            sm = _eye(n, 4, dev)
            sm[:, :3, :3] = vv + (_eye(n, 3, dev) - vv) * sat.reshape(n, 1, 1)
            cm = sm @ cm
            if not torch.equal(cm, _eye(n, 4, dev)):
                cm = cm.to(x.dtype)
                x = (cm[:, :3, :3] @ x.reshape(n, c, h * w) + cm[:, :3, 3:]).reshape(n, c, h, w)
        return x


class AdaController:
    """Accumulates sign(D(real)) and nudges ``p`` every ``interval`` steps so that r_t tracks ``target``.

    The step size lets p move from 0 to 1 in ``ada_kimg`` thousand images (paper: 500k). The sum stays on the
    device between adjustments (no per-step host sync).
    """

    def __init__(self, pipe: AugmentPipe, target: float, ada_kimg: float, interval: int, batch: int) -> None:
        self.pipe, self.target, self.ada_kimg, self.interval, self.batch = pipe, target, ada_kimg, interval, batch
        self.sign_sum: Tensor | float = 0.0
        self.count = 0
        self.last_rt = float("nan")

    def accumulate(self, real_logits: Tensor) -> None:
        self.sign_sum = self.sign_sum + torch.sign(real_logits.detach().float()).sum()
        self.count += real_logits.numel()

    def maybe_adjust(self, step: int, reduce=None) -> None:
        """Call after each D step with the 1-based step count; ``reduce`` all-reduces (sum, count) under DDP."""
        if step % self.interval or self.count == 0:
            return
        s, cnt = float(self.sign_sum), float(self.count)
        if reduce is not None:
            s, cnt = reduce(s, cnt)
        rt = s / cnt
        self.last_rt = rt
        sign = (rt > self.target) - (rt < self.target)
        adjust = sign * (self.batch * self.interval) / (self.ada_kimg * 1000)
        self.pipe.p.copy_((self.pipe.p + adjust).clamp(0.0, 1.0))
        self.sign_sum = 0.0
        self.count = 0

    def state_dict(self) -> dict:
        return {"sign_sum": float(self.sign_sum), "count": int(self.count), "last_rt": self.last_rt}

    def load_state_dict(self, state: dict) -> None:
        self.sign_sum = float(state["sign_sum"])
        self.count = int(state["count"])
        self.last_rt = float(state["last_rt"])
