"""The StyleGAN2 building blocks against independently written references (numpy loops, closed forms).

Each reference is written from the paper's definition of the operation, not from our implementation: direct
sums over pixels and taps, so a change of padding, phase, gain or order in ``networks.py`` shows up here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from animefaces.train.networks import (
    Conv2dLayer,
    Discriminator,
    DiscriminatorBlock,
    FullyConnected,
    MinibatchStd,
    fir_kernel,
    modulated_conv2d,
    upsample2d,
)

torch.manual_seed(0)
FIR = np.outer([1, 3, 3, 1], [1, 3, 3, 1]).astype(np.float64) / 64.0


def np_conv2d(x: np.ndarray, w: np.ndarray, stride: int = 1, pad: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Cross-correlation of x [C, H, W] with w [O, C, k, k]: out[o, i, j] = sum x[c, s*i+u, s*j+v] w[o, c, u, v]."""
    x = np.pad(x, ((0, 0), pad, pad))
    o_c, _, k, _ = w.shape
    h = (x.shape[1] - k) // stride + 1
    wd = (x.shape[2] - k) // stride + 1
    out = np.zeros((o_c, h, wd))
    for i in range(h):
        for j in range(wd):
            patch = x[:, stride * i : stride * i + k, stride * j : stride * j + k]
            out[:, i, j] = np.tensordot(w, patch, axes=([1, 2, 3], [0, 1, 2]))
    return out


def np_blur(x: np.ndarray, pad: tuple[int, int]) -> np.ndarray:
    """The [1,3,3,1] low-pass on every channel (symmetric, so correlation = convolution)."""
    c = x.shape[0]
    w = np.zeros((c, c, 4, 4))
    for i in range(c):
        w[i, i] = FIR
    return np_conv2d(x, w, pad=pad)


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).float()


def test_discriminator_downsampling_conv_is_blur_then_dense_stride2_conv():
    """StyleGAN2's D: FIR at the high resolution (pad 2/2 for a 3x3 conv), then the 3x3 conv with stride 2."""
    layer = Conv2dLayer(3, 5, 3, down=True)
    with torch.no_grad():
        layer.bias.normal_()
    x = np.random.default_rng(0).normal(size=(3, 8, 8))
    w = layer.weight.detach().double().numpy() * layer.weight_gain
    blurred = np_blur(x, (2, 2))  # 9 x 9 at the high resolution
    assert blurred.shape == (3, 9, 9)
    ref = np_conv2d(blurred, w, stride=2) + layer.bias.detach().double().numpy()[:, None, None]
    out = layer(t(x)[None])[0].detach().double().numpy()
    assert out.shape == (5, 4, 4)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_downsampling_conv_equals_one_composite_kernel_with_stride2():
    """Blur then a k x k conv is one (4+k-1)-tap kernel (the full convolution of the two) applied with stride 2."""
    layer = Conv2dLayer(2, 2, 3, bias=False, down=True)
    w = layer.weight.detach().double().numpy() * layer.weight_gain
    composite = np.zeros((2, 2, 6, 6))
    for u in range(4):
        for v in range(4):
            composite[:, :, u : u + 3, v : v + 3] += FIR[u, v] * w
    x = np.random.default_rng(1).normal(size=(2, 16, 16))
    ref = np_conv2d(x, composite, stride=2, pad=(2, 2))
    out = layer(t(x)[None])[0].detach().double().numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_downsampling_differs_from_the_low_resolution_conv_it_replaced():
    """The old form (blur + subsample, then the 3x3 conv at the low resolution) is a different operator."""
    layer = Conv2dLayer(4, 4, 3, bias=False, down=True)
    x = np.random.default_rng(2).normal(size=(4, 16, 16))
    w = layer.weight.detach().double().numpy() * layer.weight_gain
    low = np_blur(x, (1, 1))[:, ::2, ::2]
    old = np_conv2d(low, w, pad=(1, 1))
    new = layer(t(x)[None])[0].detach().double().numpy()
    assert np.abs(new - old).mean() / np.abs(new).mean() > 0.3


def test_skip_1x1_downsampling_is_blur_subsample_then_1x1():
    layer = Conv2dLayer(3, 4, 1, bias=False, down=True)
    x = np.random.default_rng(3).normal(size=(3, 8, 8))
    w = layer.weight.detach().double().numpy() * layer.weight_gain
    ref = np_conv2d(np_blur(x, (1, 1)), w, stride=2)  # 1x1 conv on every second sample of the 7x7 blurred map
    out = layer(t(x)[None])[0].detach().double().numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_discriminator_block_is_the_residual_sum_over_sqrt2():
    block = DiscriminatorBlock(0, 4, 6, 3)
    img = torch.randn(2, 3, 16, 16)
    out = block(None, img)
    assert out.shape == (2, 6, 8, 8)
    x = block.fromrgb(img)
    lrelu = lambda v: torch.nn.functional.leaky_relu(v, 0.2) * math.sqrt(2)  # noqa: E731
    c0 = block.conv0
    h = lrelu(torch.nn.functional.conv2d(x, c0.weight * c0.weight_gain, c0.bias, padding=1))
    c1 = block.conv1
    h = torch.nn.functional.pad(h, [2, 2, 2, 2])
    k = fir_kernel()[None, None].repeat(4, 1, 1, 1)
    h = torch.nn.functional.conv2d(
        torch.nn.functional.conv2d(h, k, groups=4), c1.weight * c1.weight_gain, c1.bias, stride=2
    )
    main = lrelu(h) * math.sqrt(0.5)
    s = block.skip
    skip = torch.nn.functional.conv2d(torch.nn.functional.pad(x, [1, 1, 1, 1]), k, groups=4, stride=2)
    skip = torch.nn.functional.conv2d(skip, s.weight * s.weight_gain) * math.sqrt(0.5)
    assert torch.allclose(out, main + skip, atol=1e-5)


def test_discriminator_halves_resolution_per_block_down_to_4x4():
    D = Discriminator(resolution=32, channel_base=256, channel_max=16, mbstd_group=2)
    sizes = []
    for block in D.blocks.values():
        block.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-2:])))
    assert D(torch.randn(2, 3, 32, 32)).shape == (2, 1)
    assert sizes == [(16, 16), (8, 8), (4, 4)]


def test_modulated_conv_matches_per_sample_definition():
    """y_n = conv(x_n, w * s_n[in]) scaled per output channel by 1/sqrt(sum (w s_n)^2 + 1e-8); fused = unfused."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 6, 6))
    w = rng.normal(size=(4, 3, 3, 3))
    s = rng.normal(size=(2, 3)) + 1.0
    ref = []
    for n in range(2):
        wn = w * s[n][None, :, None, None]
        d = 1.0 / np.sqrt((wn**2).sum(axis=(1, 2, 3)) + 1e-8)
        ref.append(np_conv2d(x[n], wn * d[:, None, None, None], pad=(1, 1)))
    ref = np.stack(ref)
    for fused in (True, False):
        out = modulated_conv2d(t(x), t(w), t(s), demodulate=True, fused=fused, padding=1).double().numpy()
        np.testing.assert_allclose(out, ref, atol=1e-4)


def test_demodulated_outputs_have_unit_variance_for_unit_inputs():
    """The point of demodulation: i.i.d. unit-variance inputs give unit-variance outputs whatever the styles."""
    x = torch.randn(4, 64, 32, 32)
    w = torch.randn(32, 64, 3, 3)
    styles = torch.rand(4, 64) * 10 + 0.1
    y = modulated_conv2d(x, w, styles, demodulate=True)[..., 1:-1, 1:-1]
    assert abs(float(y.var()) - 1.0) < 0.05


def test_upsampling_then_conv_equals_composite_kernel_on_zero_stuffed_input_inside():
    """G's 2x up layer = insert zeros, then one (FIR*4 conv 3x3) kernel; equal away from the 1-pixel border."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 6, 6))
    w = rng.normal(size=(3, 2, 3, 3))
    up = upsample2d(t(x)[None], fir_kernel())[0].double().numpy()
    ours = np_conv2d(up, w, pad=(1, 1))
    stuffed = np.zeros((2, 12, 12))
    stuffed[:, ::2, ::2] = x
    composite = np.zeros((3, 2, 6, 6))
    for u in range(4):
        for v in range(4):
            composite[:, :, u : u + 3, v : v + 3] += 4 * FIR[u, v] * w
    ref = np_conv2d(stuffed, composite, pad=(3, 2))
    np.testing.assert_allclose(ours[:, 1:-1, 1:-1], ref[:, 1:-1, 1:-1], atol=1e-5)


def test_equalised_lr_fully_connected():
    fc = FullyConnected(5, 3, bias_init=0.5, lr_mul=0.01)
    x = torch.randn(4, 5)
    ref = x @ (fc.weight * 0.01 / math.sqrt(5)).t() + fc.bias * 0.01
    assert torch.allclose(fc(x), ref, atol=1e-6)


@pytest.mark.parametrize("group", [2, 4])
def test_minibatch_std_against_numpy(group):
    x = np.random.default_rng(6).normal(size=(8, 4, 3, 3))
    out = MinibatchStd(group_size=group)(t(x)).double().numpy()
    # sample n belongs to group position n // (N / G); std over the G members sharing n % (N / G)
    m = 8 // group
    ref = np.zeros(8)
    for j in range(m):
        members = x[[j + g * m for g in range(group)]]
        sd = np.sqrt(members.var(axis=0) + 1e-8).mean()
        ref[[j + g * m for g in range(group)]] = sd
    np.testing.assert_allclose(out[:, -1, 0, 0], ref, atol=1e-5)
    np.testing.assert_allclose(out[:, :4], x, atol=1e-6)
