"""StyleGAN2-style generator and residual discriminator in plain PyTorch.

Written from Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN": a mapping MLP (equalised
learning rate, lr multiplier 0.01) turns z (+ an optional class embedding) into w; the synthesis network starts
from a learned constant 4x4 tensor and applies weight-modulated/demodulated 3x3 convolutions with per-layer noise,
accumulating RGB through skip connections (upsampled with a [1,3,3,1] FIR filter). The discriminator is residual,
with a minibatch-stddev layer and optional projection conditioning (Miyato & Koyama 2018).

No custom CUDA ops: everything is ``torch.nn.functional`` so it runs on CPU (tests) and on any CUDA GPU. Under
autocast the weight arithmetic of the modulated convolutions and the mapping network stay in float32.

Contract used by sampling: ``G.mapping(z, c, truncation_psi) -> ws [N, num_ws, w_dim]``,
``G.synthesis(ws, noise_mode='const'|'random'|'none') -> img [N, 3, H, W]`` (about [-1, 1]), ``G(z, c, psi)``,
``G.w_avg``, ``G.num_ws``, ``G.z_dim``, ``G.c_dim``, ``G.w_dim``, ``G.resolution``; ``G.init_kwargs`` rebuilds it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SQRT2 = math.sqrt(2.0)
NOISE_MODES = ("const", "random", "none")


def assert_shape(x: Tensor, shape: list[int | None], name: str = "tensor") -> None:
    """Check ``x``'s shape against ``shape`` (None = any size), as the reference networks do at every block:
    a wrong wiring fails here, naming the tensor, instead of broadcasting silently."""
    if x.ndim != len(shape) or any(want is not None and got != want for got, want in zip(x.shape, shape, strict=True)):
        raise AssertionError(f"{name} has shape {list(x.shape)}, expected {['N' if s is None else s for s in shape]}")


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at a resolution: ``min(channel_base // res, channel_max)`` (StyleGAN2's width rule)."""
    return max(1, min(channel_base // res, channel_max))


def fir_kernel(taps: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)) -> Tensor:
    """Separable low-pass filter (outer product of ``taps``), normalised to unit sum."""
    t = torch.tensor(taps, dtype=torch.float32)
    k = torch.outer(t, t)
    return k / k.sum()


def _depthwise(x: Tensor, kernel: Tensor, stride: int = 1) -> Tensor:
    c = x.shape[1]
    weight = kernel.to(dtype=x.dtype, device=x.device).flip([0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, weight, stride=stride, groups=c)


def upsample2d(x: Tensor, kernel: Tensor) -> Tensor:
    """2x upsampling: zero insertion then the FIR filter with gain 4 (keeps the signal's mean).

    Done as one depthwise transposed convolution with stride 2 (the polyphase form of "insert zeros, pad, filter"),
    several times faster than materialising the zero-stuffed image; the kernel is symmetric.
    """
    c = x.shape[1]
    kh = kernel.shape[0]
    weight = (kernel * 4).to(dtype=x.dtype, device=x.device)[None, None].repeat(c, 1, 1, 1)
    return F.conv_transpose2d(x, weight, stride=2, padding=(kh - 2) // 2, groups=c)


def downsample2d(x: Tensor, kernel: Tensor) -> Tensor:
    """2x downsampling: FIR low-pass, then keep every second sample."""
    kh = kernel.shape[0]
    p0, p1 = (kh - 1) // 2, (kh - 2) // 2
    x = F.pad(x, [p0, p1, p0, p1])
    return _depthwise(x, kernel, stride=2)


def blur_for_strided_conv(x: Tensor, kernel: Tensor, conv_size: int) -> Tensor:
    """The FIR low-pass that precedes a stride-2 ``conv_size`` x ``conv_size`` convolution (StyleGAN2's D).

    StyleGAN2 downsamples in the discriminator by filtering at the high resolution and then applying the k x k
    convolution densely with stride 2 (no padding), which equals one (FIR * conv) kernel of size fir+k-1 applied
    with stride 2. The input is padded by ``p = (fir - 2) + (k - 1)`` in total, ``ceil(p/2)`` before and
    ``floor(p/2)`` after, so that the strided convolution yields exactly H/2 x W/2 samples: for the [1,3,3,1]
    filter and k = 3, p = 4 and the filtered map is (H+1) x (W+1).
    """
    p = (kernel.shape[0] - 2) + (conv_size - 1)
    x = F.pad(x, [(p + 1) // 2, p // 2, (p + 1) // 2, p // 2])
    return _depthwise(x, kernel)


def lrelu(x: Tensor, gain: float = SQRT2, clamp: float | None = None) -> Tensor:
    x = F.leaky_relu(x, 0.2) * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnected(nn.Module):
    """Linear layer with equalised learning rate: weights ~ N(0, 1/lr_mul^2), scaled at run time."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: str = "linear",
    ) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul

    def forward(self, x: Tensor) -> Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        b = None if self.bias is None else (self.bias * self.bias_gain).to(x.dtype)
        x = F.linear(x, w, b)
        return lrelu(x) if self.activation == "lrelu" else x


class Conv2dLayer(nn.Module):
    """Equalised-lr convolution; ``down``: 2x downsampling as StyleGAN2's D does it (FIR blur, then stride 2)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        down: bool = False,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.down = down
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.register_buffer("fir", fir_kernel(), persistent=False)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype)
        if self.down and w.shape[-1] > 1:
            x = blur_for_strided_conv(x, self.fir, w.shape[-1])  # [N, C, H+1, W+1] at full resolution
            x = F.conv2d(x, w, b, stride=2)  # dense kxk conv at the high resolution -> [N, out, H/2, W/2]
        elif self.down:
            # a 1x1 conv commutes with subsampling: filter + subsample first (4x cheaper), then the conv
            x = F.conv2d(downsample2d(x, self.fir), w, b)
        else:
            x = F.conv2d(x, w, b, padding=self.padding)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        if self.activation == "lrelu":
            return lrelu(x, SQRT2 * gain, clamp)
        x = x * gain if gain != 1 else x
        return x if clamp is None else x.clamp(-clamp, clamp)


def modulated_conv2d(
    x: Tensor, weight: Tensor, styles: Tensor, demodulate: bool = True, fused: bool = True, padding: int = 1
) -> Tensor:
    """Convolve each sample with ``weight`` modulated by its ``styles`` (and demodulated to unit output std).

    ``fused``: one grouped convolution with per-sample weights (good for small batches / inference); otherwise
    the equivalent "scale activations, shared conv, scale outputs" form that uses ordinary (channels-last friendly)
    convolutions. Weight arithmetic is done in float32 even under autocast.
    """
    n, in_c, h, w_ = x.shape
    out_c, _, kh, kw = weight.shape
    with torch.autocast(device_type=x.device.type, enabled=False):
        styles32 = styles.float()
        weight32 = weight.float()
        dcoefs = None
        if demodulate:
            # sum over (in, kh, kw) of (weight * style)^2 without materialising per-sample weights
            dcoefs = (styles32.square() @ weight32.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, out]
        if fused:
            wts = weight32.unsqueeze(0) * styles32.reshape(n, 1, in_c, 1, 1)
            if dcoefs is not None:
                wts = wts * dcoefs.reshape(n, out_c, 1, 1, 1)
    if fused:
        x = x.reshape(1, n * in_c, h, w_)
        x = F.conv2d(x, wts.reshape(n * out_c, in_c, kh, kw).to(x.dtype), padding=padding, groups=n)
        return x.reshape(n, out_c, x.shape[2], x.shape[3])
    x = x * styles32.to(x.dtype).reshape(n, in_c, 1, 1)
    x = F.conv2d(x, weight32.to(x.dtype), padding=padding)
    if dcoefs is not None:
        x = x * dcoefs.to(x.dtype).reshape(n, out_c, 1, 1)
    return x


class MappingNetwork(nn.Module):
    """z (+ class embedding) -> w, broadcast to ``num_ws`` layers; tracks ``w_avg`` for truncation."""

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        lr_mul: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        self.embed = FullyConnected(c_dim, w_dim) if c_dim > 0 else None
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            FullyConnected(features[i], features[i + 1], activation="lrelu", lr_mul=lr_mul) for i in range(num_layers)
        )
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: Tensor | None,
        c: Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> Tensor:
        device_type = (z if z is not None else c).device.type
        with torch.autocast(device_type=device_type, enabled=False):
            parts = []
            if self.z_dim > 0:
                parts.append(normalize_2nd_moment(z.float()))
            if self.c_dim > 0:
                if c is None or c.shape[1] != self.c_dim:
                    raise ValueError(f"this network is conditional: it needs labels c of shape [N, {self.c_dim}]")
                parts.append(normalize_2nd_moment(self.embed(c.float())))
            x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
            for layer in self.layers:
                x = layer(x)
            if update_emas and self.w_avg_beta is not None:
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
            if self.num_ws is None:
                return x
            x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
            if truncation_psi != 1:
                cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
                x = x.clone()
                x[:, :cutoff] = self.w_avg.lerp(x[:, :cutoff], truncation_psi)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally after 2x upsampling) + noise + bias + leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        up: bool = False,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.up = up
        self.resolution = resolution
        self.in_channels, self.w_dim = in_channels, w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("fir", fir_kernel(), persistent=False)

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random", fused: bool = True) -> Tensor:
        in_res = self.resolution // 2 if self.up else self.resolution
        assert_shape(x, [None, self.in_channels, in_res, in_res], "SynthesisLayer input")
        assert_shape(w, [x.shape[0], self.w_dim], "SynthesisLayer w")
        styles = self.affine(w)  # [N, in_channels]: one scale per input feature map
        if self.up:
            x = upsample2d(x, self.fir)  # [N, in, res, res]
        x = modulated_conv2d(x, self.weight, styles, demodulate=True, fused=fused, padding=1)  # [N, out, res, res]
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype)
            x = x + noise * self.noise_strength.to(x.dtype)
        elif noise_mode == "const":
            x = x + (self.noise_const * self.noise_strength).to(x.dtype)
        elif noise_mode != "none":
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        return lrelu(x + self.bias.to(x.dtype).reshape(1, -1, 1, 1), clamp=self.conv_clamp)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB (no demodulation)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor, fused: bool = True) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused, padding=0)
        x = x + self.bias.to(x.dtype).reshape(1, -1, 1, 1)
        return x if self.conv_clamp is None else x.clamp(-self.conv_clamp, self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: (const | upsampling conv) + conv + toRGB; the RGB skip is upsampled and summed."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.in_channels, self.out_channels, self.img_channels, self.w_dim = (
            in_channels,
            out_channels,
            img_channels,
            w_dim,
        )
        self.is_first = in_channels == 0
        self.register_buffer("fir", fir_kernel(), persistent=False)
        if self.is_first:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGB(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if self.is_first else 2
        self.num_torgb = 1

    def forward(
        self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str, fused: bool
    ) -> tuple[Tensor, Tensor]:
        n, half = ws.shape[0], self.resolution // 2
        assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim], f"ws of block {self.resolution}")
        w_iter = iter(ws.unbind(dim=1))  # one [N, w_dim] per conv layer, then one for toRGB
        if self.is_first:
            x = self.const.unsqueeze(0).repeat(n, 1, 1, 1)  # [N, out, 4, 4]
        else:
            assert_shape(x, [n, self.in_channels, half, half], f"features into block {self.resolution}")
            x = self.conv0(x, next(w_iter), noise_mode, fused)  # upsampling conv: [N, out, res, res]
        x = self.conv1(x, next(w_iter), noise_mode, fused)  # [N, out, res, res]
        y = self.torgb(x, next(w_iter), fused).float()  # [N, img_channels, res, res]
        if img is not None:
            assert_shape(img, [n, self.img_channels, half, half], f"skip image into block {self.resolution}")
        img = y if img is None else upsample2d(img, self.fir) + y  # skip architecture: upsampled sum of toRGBs
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(
        self,
        w_dim: int,
        resolution: int,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
        self.w_dim, self.resolution, self.img_channels = w_dim, resolution, img_channels
        self.block_resolutions = [2**i for i in range(2, int(math.log2(resolution)) + 1)]
        self.blocks = nn.ModuleDict()
        self.num_ws = 0
        for res in self.block_resolutions:
            in_c = channels_at(res // 2, channel_base, channel_max) if res > 4 else 0
            out_c = channels_at(res, channel_base, channel_max)
            block = SynthesisBlock(in_c, out_c, w_dim, res, img_channels, conv_clamp=conv_clamp)
            self.blocks[f"b{res}"] = block
            self.num_ws += block.num_conv
        self.num_ws += 1  # the last toRGB

    def forward(self, ws: Tensor, noise_mode: str = "random", fused_modconv: bool | None = None) -> Tensor:
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        fused = (not self.training) if fused_modconv is None else fused_modconv
        x = img = None
        w_idx = 0
        for block in self.blocks.values():
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, noise_mode, fused)  # consecutive blocks share one w (the toRGB's)
        return img  # [N, img_channels, resolution, resolution]


class Generator(nn.Module):
    def __init__(
        self,
        z_dim: int = 512,
        c_dim: int = 0,
        w_dim: int = 512,
        resolution: int = 256,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        map_layers: int = 8,
        mapping_lr_mul: float = 0.01,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.init_kwargs: dict[str, Any] = dict(
            z_dim=z_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            resolution=resolution,
            img_channels=img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
            map_layers=map_layers,
            mapping_lr_mul=mapping_lr_mul,
            conv_clamp=conv_clamp,
        )
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.resolution, self.img_channels = resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim, resolution, img_channels, channel_base, channel_max, conv_clamp)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, map_layers, lr_mul=mapping_lr_mul)

    @property
    def w_avg(self) -> Tensor:
        """Running mean of w (the truncation centre), a buffer of the mapping network."""
        return self.mapping.w_avg

    def forward(
        self,
        z: Tensor,
        c: Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        update_emas: bool = False,
        fused_modconv: bool | None = None,
    ) -> Tensor:
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv)


class MinibatchStd(nn.Module):
    """Append the mean (over features) std over groups of samples as extra feature maps."""

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g = max(1, min(self.group_size, n))
        while n % g:
            g -= 1
        f = self.num_channels
        y = x.float().reshape(g, -1, f, c // f, h, w)  # [G, M, F, c/F, H, W]: sample n = g * M + m
        y = y - y.mean(dim=0)  # deviation from the group mean
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [M, F, c/F, H, W]: std over each group
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)  # [M, F, 1, 1]: averaged over channels and pixels
        y = y.repeat(g, 1, h, w).to(x.dtype)  # [N, F, H, W]: every member of a group gets its group's value
        return torch.cat([x, y], dim=1)  # [N, c + F, H, W]


class DiscriminatorBlock(nn.Module):
    """Residual block: 3x3 conv, then blur + dense stride-2 3x3 conv; plus a blurred, subsampled 1x1 skip; / sqrt2."""

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        img_channels: int,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.in_channels, self.tmp_channels, self.img_channels = in_channels, tmp_channels, img_channels
        self.fromrgb = (
            Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
            if in_channels == 0
            else None
        )
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=True, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=True)

    def forward(self, x: Tensor | None, img: Tensor) -> Tensor:
        if self.fromrgb is not None:
            assert_shape(img, [None, self.img_channels, None, None], "discriminator input image")
            x = self.fromrgb(img)  # [N, tmp, res, res]
        assert x is not None
        assert_shape(x, [None, self.tmp_channels, None, None], "discriminator block input")
        y = self.skip(x, gain=math.sqrt(0.5))  # [N, out, res/2, res/2]
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))  # [N, out, res/2, res/2]
        return y + x  # residual sum, each branch scaled by sqrt(1/2) to keep unit variance


class Discriminator(nn.Module):
    def __init__(
        self,
        c_dim: int = 0,
        resolution: int = 256,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        mbstd_group: int = 4,
        mbstd_channels: int = 1,
        cmap_dim: int | None = None,
        cmap_layers: int = 2,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"discriminator resolution must be a power of two >= 8, got {resolution}")
        ch4 = channels_at(4, channel_base, channel_max)
        if c_dim > 0 and cmap_dim is None:
            cmap_dim = ch4
        self.init_kwargs: dict[str, Any] = dict(
            c_dim=c_dim,
            resolution=resolution,
            img_channels=img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
            mbstd_group=mbstd_group,
            mbstd_channels=mbstd_channels,
            cmap_dim=cmap_dim,
            cmap_layers=cmap_layers,
            conv_clamp=conv_clamp,
        )
        self.c_dim, self.resolution, self.cmap_dim = c_dim, resolution, cmap_dim if c_dim > 0 else 0
        self.blocks = nn.ModuleDict()
        res = resolution
        while res > 4:
            in_c = 0 if res == resolution else channels_at(res, channel_base, channel_max)
            tmp_c = channels_at(res, channel_base, channel_max)
            out_c = channels_at(res // 2, channel_base, channel_max)
            self.blocks[f"b{res}"] = DiscriminatorBlock(in_c, tmp_c, out_c, img_channels, conv_clamp)
            res //= 2
        self.mapping = (
            MappingNetwork(0, c_dim, self.cmap_dim, None, num_layers=cmap_layers, lr_mul=1.0, w_avg_beta=None)
            if c_dim > 0
            else None
        )
        self.mbstd = MinibatchStd(mbstd_group, mbstd_channels) if mbstd_channels > 0 else None
        self.conv = Conv2dLayer(
            ch4 + (mbstd_channels if self.mbstd else 0), ch4, 3, activation="lrelu", conv_clamp=conv_clamp
        )
        self.fc = FullyConnected(ch4 * 16, ch4, activation="lrelu")
        self.out = FullyConnected(ch4, self.cmap_dim if c_dim > 0 else 1)

    def forward(self, img: Tensor, c: Tensor | None = None) -> Tensor:
        """Logits [N, 1] (real > fake)."""
        assert_shape(img, [None, None, self.resolution, self.resolution], "discriminator input image")
        x = None
        for block in self.blocks.values():
            x = block(x, img)  # halves the resolution: ends at [N, ch4, 4, 4]
        if self.mbstd is not None:
            x = self.mbstd(x)  # [N, ch4 + mbstd_channels, 4, 4]
        x = self.conv(x)  # [N, ch4, 4, 4]
        x = self.fc(x.flatten(1))  # [N, ch4]
        x = self.out(x).float()  # [N, 1], or [N, cmap_dim] projected on the class embedding below
        if self.mapping is not None:
            if c is None or c.shape[1] != self.c_dim:
                raise ValueError(f"this discriminator is conditional: it needs labels c of shape [N, {self.c_dim}]")
            cmap = self.mapping(None, c)
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x


def build_networks(arch: dict[str, Any]) -> tuple[Generator, Discriminator]:
    """G and D from a resolved architecture dict (see ``presets.ARCH_KEYS``)."""
    G = Generator(
        z_dim=arch["z_dim"],
        c_dim=arch["c_dim"],
        w_dim=arch["w_dim"],
        resolution=arch["resolution"],
        channel_base=arch["channel_base"],
        channel_max=arch["channel_max"],
        map_layers=arch["map_layers"],
        conv_clamp=arch.get("conv_clamp"),
    )
    D = Discriminator(
        c_dim=arch["c_dim"],
        resolution=arch["resolution"],
        channel_base=arch["channel_base"],
        channel_max=arch["channel_max"],
        mbstd_group=arch["mbstd_group"],
        conv_clamp=arch.get("conv_clamp"),
    )
    return G, D


def generator_from_kwargs(kwargs: dict[str, Any]) -> Generator:
    return Generator(**kwargs)
