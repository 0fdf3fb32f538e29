"""Sampling products from a (random-weight) tiny generator: PNG sets, figures, MP4 videos (CPU)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
import pytest
import torch
from animefaces import sample
from animefaces.config import parse_params
from animefaces.train import checkpoint as ckpt
from animefaces.train.networks import Generator
from PIL import Image

RES = 16


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=0, w_dim=8, resolution=RES, channel_base=64, channel_max=8, map_layers=2)
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn(8))
        for m in G.modules():
            if hasattr(m, "noise_strength"):
                m.noise_strength.fill_(0.3)
    path = tmp_path_factory.mktemp("net") / "network-final.pt"
    ckpt.save_network(path, G, {"preset": "test"}, {"kimg": 0.0})
    return path


def cfg(**over) -> dict:
    return parse_params(json.dumps(over), "sample")


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def cell(grid: np.ndarray, r: int, c: int, pad: int = 2) -> np.ndarray:
    return grid[r * (RES + pad) : r * (RES + pad) + RES, c * (RES + pad) : c * (RES + pad) + RES]


def ffmpeg_info(path: Path) -> str:
    res = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    )
    return next(line for line in res.stderr.splitlines() if "Video:" in line)


def read_frames(path: Path) -> list[np.ndarray]:
    with imageio.get_reader(str(path), "ffmpeg") as reader:
        return [np.asarray(f) for f in reader]


def test_images_per_psi_with_seeds_in_names(network, tmp_path):
    params = json.dumps({"count": 3, "seed_start": 5, "psis": [0.7, -0.5], "batch": 2})
    assert sample.main(["images", "--network", str(network), "--outdir", str(tmp_path), "--params", params]) == 0
    for d in ("psi0.70", "psi-0.50"):
        names = sorted(p.name for p in (tmp_path / d).iterdir())
        assert names == ["seed0000005.png", "seed0000006.png", "seed0000007.png"]
        assert read_png(tmp_path / d / names[0]).shape == (RES, RES, 3)
    assert json.loads((tmp_path / "images.json").read_text())["seeds"] == [5, 6, 7]
    # an image depends on its seed only: regenerating seed 6 alone gives the same pixels as in the batch
    G, _ = ckpt.load_generator(network)
    ws = sample.seeds_to_ws(G, [6], 0.7, None, "cpu")
    alone = sample.synth(G, ws, "const", 1)[0]
    assert np.array_equal(alone, read_png(tmp_path / "psi0.70" / "seed0000006.png"))
    assert not np.array_equal(alone, read_png(tmp_path / "psi-0.50" / "seed0000006.png"))


def test_truncation_and_style_mixing_figures(network, tmp_path):
    c = cfg(truncation_seeds=[1, 2, 3], truncation_psis=[1.0, 0.0, -1.0], mix_dst_seeds=[4, 5], mix_src_seeds=[6, 7, 8])
    G, _ = ckpt.load_generator(network)
    sample.truncation_figure(G, c, tmp_path / "truncation.png", "cpu")
    grid = read_png(tmp_path / "truncation.png")
    assert grid.shape == (3 * (RES + 2) - 2, 3 * (RES + 2) - 2, 3)
    # psi = 0 is w_avg for every seed: the middle column is one image three times; psi = 1 columns differ
    assert np.array_equal(cell(grid, 0, 1), cell(grid, 2, 1))
    assert not np.array_equal(cell(grid, 0, 0), cell(grid, 2, 0))
    assert not np.array_equal(cell(grid, 0, 0), cell(grid, 0, 2))

    sample.style_mixing_figures(G, c, tmp_path, "cpu")
    ranges = sample.mixing_ranges(G.num_ws)
    assert list(ranges) == ["coarse", "middle", "fine"] and ranges["fine"][1] == G.num_ws
    ws_dst = sample.seeds_to_ws(G, [4, 5], 1.0, None, "cpu")
    ws_src = sample.seeds_to_ws(G, [6, 7, 8], 1.0, None, "cpu")
    for name, (lo, hi) in ranges.items():
        fig = read_png(tmp_path / f"style_mixing_{name}.png")
        assert fig.shape == (3 * (RES + 2) - 2, 4 * (RES + 2) - 2, 3)
        assert np.array_equal(cell(fig, 0, 2), sample.synth(G, ws_src[1:2], "const", 1)[0])  # header: sources
        assert np.array_equal(cell(fig, 2, 0), sample.synth(G, ws_dst[1:2], "const", 1)[0])  # left: destinations
        mixed = ws_dst[1:2].clone()
        mixed[:, lo:hi] = ws_src[2:3, lo:hi]
        assert np.array_equal(cell(fig, 2, 3), sample.synth(G, mixed, "const", 1)[0])


def test_interpolation_video_is_h264_yuv420p_with_the_right_frames(network, tmp_path):
    out = tmp_path / "interpolation.mp4"
    params = json.dumps({"video_seconds": 1.5, "video_fps": 8, "video_grid": 2, "video_smoothing": 0.5})
    assert sample.main(["video", "--network", str(network), "--out", str(out), "--params", params]) == 0
    info = ffmpeg_info(out)
    assert "h264" in info and "yuv420p" in info and f"{2 * RES}x{2 * RES}" in info
    frames = read_frames(out)
    assert len(frames) == 12 and frames[0].shape == (2 * RES, 2 * RES, 3)
    assert float(np.abs(frames[0].astype(int) - frames[6].astype(int)).mean()) > 1.0  # it moves


def test_training_montage_from_tick_grids(tmp_path):
    grids = tmp_path / "grids"
    grids.mkdir()
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    for t, col in enumerate(colours):
        Image.fromarray(np.full((34, 66, 3), col, np.uint8)).save(grids / f"tick-{t:06d}.png")
    (grids / "reals.png").write_bytes((grids / "tick-000000.png").read_bytes())  # not a tick: ignored
    out = tmp_path / "montage.mp4"
    assert sample.main(["montage", "--grids", str(grids), "--out", str(out), "--params", "{}"]) == 0
    assert "h264" in ffmpeg_info(out) and "66x34" in ffmpeg_info(out)
    frames = read_frames(out)
    assert len(frames) == 3
    for frame, col in zip(frames, colours, strict=True):
        assert np.abs(frame[20:, 30:].reshape(-1, 3).mean(0) - np.array(col)).max() < 12  # below the label
    empty = tmp_path / "none"
    empty.mkdir()
    assert sample.main(["montage", "--grids", str(empty), "--out", str(out)]) == 1


def test_odd_frames_are_padded_to_even_sizes(tmp_path):
    frames = [np.full((15, 17, 3), v, np.uint8) for v in (0, 128, 255)]
    n, w, h = sample.write_mp4(tmp_path / "odd.mp4", iter(frames), fps=5)
    assert (n, w, h) == (3, 18, 16)
    assert re.search(r"\b18x16\b", ffmpeg_info(tmp_path / "odd.mp4"))


def test_circular_gaussian_smoothing():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3))
    y = sample.gaussian_smooth_circular(x, 4.0)
    assert np.allclose(y.mean(0), x.mean(0))  # unit-area kernel
    assert np.allclose(sample.gaussian_smooth_circular(np.roll(x, 5, axis=0), 4.0), np.roll(y, 5, axis=0))
    assert np.abs(np.diff(y, axis=0)).mean() < 0.3 * np.abs(np.diff(x, axis=0)).mean()
    assert np.allclose(sample.gaussian_smooth_circular(np.ones((10, 2)), 3.0), 1.0)


def test_cli_errors_are_reported(network, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:  # a config error exits 2, as argparse does for a usage error
        sample.main(["images", "--network", str(network), "--outdir", str(tmp_path), "--params", '{"count": 0}'])
    assert exit_.value.code == 2
    assert "count" in capsys.readouterr().err
    assert sample.main(["figures", "--network", str(tmp_path / "nope.pt"), "--outdir", str(tmp_path)]) == 1
