"""Quality metrics: Fréchet distance and KID maths, the offline proxy on real faces, image sources, the Inception
loading path (with a stand-in file made here: NOT the real Inception weights), the CLI and the training hook."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from animefaces.metrics import cli as metrics_cli
from animefaces.metrics import compute, evaluate
from animefaces.metrics.features import RAND_SEED, RandomConvFeatures
from animefaces.metrics.images import load_images, pick_subset, to_resolution
from animefaces.metrics.inception import INCEPTION_NAME, InceptionFeatures, InceptionUnavailable, locate_inception
from animefaces.metrics.stats import (
    Gaussian,
    fit_gaussian,
    frechet_distance,
    frechet_distance_features,
    kernel_distance,
    mmd2_unbiased,
    trace_sqrt_product,
)
from PIL import Image
from test_train_fixtures import TINY, blob_images, write_h5, write_zip


def random_spd(rng: np.random.RandomState, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.1 * np.eye(d)


# ------------------------------------------------------------------------------------------------ Fréchet distance
def test_fd_of_a_set_with_itself_is_zero():
    x = np.random.RandomState(0).standard_normal((400, 30)) * 3 + 1
    assert frechet_distance_features(x, x) == pytest.approx(0.0, abs=1e-8)
    # few samples, singular covariance (n < d): still ~0, finite, never negative
    y = x[:10]
    assert 0.0 <= frechet_distance_features(y, y) < 1e-8


def test_fd_matches_the_closed_form_for_commuting_covariances():
    rng = np.random.RandomState(1)
    d = 6
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    a, b = rng.uniform(0.1, 4, d), rng.uniform(0.1, 4, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    g1 = Gaussian(mu1, q @ np.diag(a) @ q.T, 0)
    g2 = Gaussian(mu2, q @ np.diag(b) @ q.T, 0)
    closed = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(g1, g2) == pytest.approx(closed, rel=1e-10)
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance(
        Gaussian(np.array([1.0]), np.array([[4.0]]), 0), Gaussian(np.array([3.0]), np.array([[9.0]]), 0)
    ) == pytest.approx(4 + 1)


def test_trace_sqrt_product_agrees_with_the_eigenvalues_of_the_product():
    """General (non-commuting) covariances: tr((S1 S2)^1/2) = sum sqrt(eig(S1 S2)), computed independently with the
    non-symmetric eigen-solver, and with a matrix square root by Denman-Beavers iteration."""
    rng = np.random.RandomState(2)
    s1, s2 = random_spd(rng, 8), random_spd(rng, 8)
    ours = trace_sqrt_product(s1, s2)
    via_eig = np.sum(np.sqrt(np.linalg.eigvals(s1 @ s2).real))
    y, z = s1 @ s2, np.eye(8)
    for _ in range(60):  # Denman-Beavers: Y -> sqrt(A)
        y, z = (y + np.linalg.inv(z)) / 2, (z + np.linalg.inv(y)) / 2
    assert ours == pytest.approx(via_eig, rel=1e-9)
    assert ours == pytest.approx(np.trace(y), rel=1e-8)
    assert frechet_distance(Gaussian(np.zeros(8), s1, 0), Gaussian(np.zeros(8), s2, 0)) == pytest.approx(
        frechet_distance(Gaussian(np.zeros(8), s2, 0), Gaussian(np.zeros(8), s1, 0)), rel=1e-9
    )


def test_fd_with_fewer_images_than_dimensions_matches_the_covariance_route():
    rng = np.random.RandomState(7)
    x, y = rng.standard_normal((30, 64)) * 2, rng.standard_normal((45, 64)) + 0.5
    low_rank = frechet_distance_features(x, y)  # n < d: the nuclear-norm route
    full = frechet_distance(fit_gaussian(x), fit_gaussian(y))  # the d x d eigen route
    assert low_rank == pytest.approx(full, rel=1e-8)


def test_fd_from_samples_converges_to_the_gaussians_distance():
    rng = np.random.RandomState(3)
    s1, s2 = random_spd(rng, 3), random_spd(rng, 3)
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    x = rng.multivariate_normal(mu1, s1, 200_000)
    y = rng.multivariate_normal(mu2, s2, 200_000)
    exact = frechet_distance(Gaussian(mu1, s1, 0), Gaussian(mu2, s2, 0))
    assert frechet_distance_features(x, y) == pytest.approx(exact, rel=0.02)
    g = fit_gaussian(x)
    assert np.allclose(g.mu, mu1, atol=0.05) and np.allclose(g.sigma, s1, atol=0.1)


# ------------------------------------------------------------------------------------------------ KID
def test_kid_unbiased_estimator_equals_a_direct_double_loop():
    rng = np.random.RandomState(4)
    x, y = rng.standard_normal((7, 5)), rng.standard_normal((7, 5)) + 0.3
    d, n = 5, 7

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(n)) / (n * n)
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    # subsets as large as the sets: every subset is the whole set, so KID = that value with zero spread
    mean, std = kernel_distance(x, y, num_subsets=5, subset_size=100)
    assert mean == pytest.approx(xx + yy - 2 * xy, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_kid_is_zero_in_expectation_for_one_distribution_and_positive_for_two():
    rng = np.random.RandomState(5)
    same = [mmd2_unbiased(rng.standard_normal((40, 8)), rng.standard_normal((40, 8))) for _ in range(300)]
    mean, se = np.mean(same), np.std(same) / np.sqrt(len(same))
    assert abs(mean) < 3 * se  # unbiased: no offset (the biased V-statistic would be clearly > 0)
    assert min(same) < 0 < max(same)  # and it can go negative, as an unbiased estimator of 0 must
    shifted = [mmd2_unbiased(rng.standard_normal((40, 8)), rng.standard_normal((40, 8)) + 0.5) for _ in range(50)]
    assert np.mean(shifted) > 10 * se + abs(mean)


def test_kid_subsets_are_reproducible():
    rng = np.random.RandomState(6)
    x, y = rng.standard_normal((300, 4)), rng.standard_normal((250, 4))
    assert kernel_distance(x, y, 20, 100, seed=3) == kernel_distance(x, y, 20, 100, seed=3)
    assert kernel_distance(x, y, 20, 100, seed=3)[1] > 0  # real subsets differ
    # the whole-kernel-matrix path and the per-subset path give the same numbers
    assert kernel_distance(x, y, 20, 100, seed=3) == pytest.approx(kernel_distance(x, y, 20, 100, 3, 0), rel=1e-10)


# ------------------------------------------------------------------------------------------------ proxy features
def test_random_features_are_fixed_by_the_seed_not_by_torch_rng():
    imgs = torch.from_numpy(blob_images(6, 32, seed=2))
    torch.manual_seed(123)
    a = RandomConvFeatures()(imgs)
    torch.manual_seed(456)
    b = RandomConvFeatures()(imgs)
    assert np.array_equal(a, b) and a.shape == (6, 480) and a.dtype == np.float64
    # the first layer's weights are numpy's legacy Mersenne Twister draws (the same on every platform)
    expected = np.random.RandomState(RAND_SEED).standard_normal((32, 3, 3, 3)) * np.sqrt(2.0 / 27)
    assert np.allclose(RandomConvFeatures().weights[0].numpy(), expected, atol=1e-7)
    with pytest.raises(ValueError, match="uint8"):
        RandomConvFeatures()(imgs.float())


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    r = int(3 * sigma + 0.5)
    k = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma * sigma))
    k = torch.tensor(k / k.sum(), dtype=torch.float32)
    t = torch.from_numpy(x).float().reshape(-1, 1, *x.shape[2:])
    t = torch.nn.functional.conv2d(torch.nn.functional.pad(t, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    t = torch.nn.functional.conv2d(torch.nn.functional.pad(t, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
    return t.reshape(x.shape).round().clamp(0, 255).to(torch.uint8).numpy()


def add_noise(x: np.ndarray, std: float) -> np.ndarray:
    return np.clip(x + np.random.RandomState(1).normal(0, std, x.shape), 0, 255).astype(np.uint8)


def test_proxy_orders_real_faces_disjoint_blurred_and_noised(shared):
    """On 2 x 250 disjoint real getchu faces (compared at 32 px, as the CPU training runs): another real set is
    closest; blur and noise move the proxy up, more corruption further."""
    torch.set_num_threads(1)
    faces = to_resolution(load_images(shared / "getchu_faces_64.tar", limit=500, seed=0), 32)
    a, b = faces[:250], faces[250:]
    fd, kid, cache = {}, {}, {}
    for name, imgs in {
        "real": b,
        "blur0.5": gaussian_blur(b, 0.5),
        "blur1": gaussian_blur(b, 1.0),
        "noise16": add_noise(b, 16),
        "noise32": add_noise(b, 32),
    }.items():
        r = compute(a, imgs, ["rand-fd", "rand-kid"], real_features=cache)
        fd[name], kid[name] = r["rand-fd"], r["rand-kid"]
    assert fd["real"] < fd["blur0.5"] < fd["blur1"], fd
    assert fd["real"] < fd["noise16"] < fd["noise32"], fd
    assert kid["real"] < kid["blur0.5"] < kid["blur1"], kid
    assert kid["noise16"] < kid["noise32"] and kid["real"] < kid["noise32"], kid
    assert abs(kid["real"]) < 0.2 * kid["blur1"]


# ------------------------------------------------------------------------------------------------ image sources
def write_png_folder(folder: Path, imgs: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(imgs):
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"img{i:04d}.png")
    return folder


def test_folder_tar_and_packs_yield_the_same_images(tmp_path):
    imgs = blob_images(12, 32, seed=3)
    folder = write_png_folder(tmp_path / "pngs", imgs)
    tar = tmp_path / "imgs.tar"
    with tarfile.open(tar, "w") as tf:
        for p in sorted(folder.iterdir()):
            tf.add(p, arcname=f"faces/{p.name}")
    h5 = write_h5(tmp_path / "p.h5", imgs)
    zp = write_zip(tmp_path / "p.zip", imgs)
    for src in (folder, tar, h5, zp):
        assert np.array_equal(load_images(src), imgs), src
        sub = load_images(src, limit=5, seed=7, resolution=16)
        assert np.array_equal(sub, to_resolution(imgs[pick_subset(12, 5, 7)], 16)), src
    # box downscale = the mean of each 2 x 2 block
    assert np.array_equal(to_resolution(imgs, 16)[0, 0, 0, 0], np.floor(imgs[0, 0, :2, :2].mean() + 0.5))
    with pytest.raises(ValueError, match="no image files"):
        load_images(_empty(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_images(tmp_path / "missing")


def _empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


# ------------------------------------------------------------------------------------------------ Inception file
class StandInDetector(torch.nn.Module):
    """NOT the Inception network: a stand-in with the detector's calling convention (uint8 [N,3,H,W],
    return_features=True -> [N, 2048]) so the loading path can be tested without the real weights."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Parameter(torch.from_numpy(np.random.RandomState(0).standard_normal((12, 2048))).float())

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = img.to(torch.float32) / 255.0
        x = torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)
        return torch.tanh(x @ self.proj)


def write_stand_in(path: Path, module: torch.nn.Module | None = None) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module or StandInDetector()), str(path))
    return path


def test_inception_file_is_located_loaded_and_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake = write_stand_in(tmp_path / "stand-in-not-inception.pt")
    sha = hashlib.sha256(fake.read_bytes()).hexdigest()
    ext = InceptionFeatures.load(str(fake), url=None)
    feats = ext(torch.from_numpy(blob_images(3, 32)))
    assert feats.shape == (3, 2048) and ext.describe()["inception_sha256"] == sha
    # pinned checksum: right one accepted, wrong one is an error naming the file and both hashes
    InceptionFeatures.load(str(fake), url=None, expected_sha256=sha)
    with pytest.raises(InceptionUnavailable, match=f"expected {'0' * 64}, got {sha}"):
        InceptionFeatures.load(str(fake), url=None, expected_sha256="0" * 64)
    # the cache is the second source
    cache = tmp_path / "resources" / INCEPTION_NAME
    cache.parent.mkdir()
    cache.write_bytes(fake.read_bytes())
    assert locate_inception(None, cache=cache, url=None) == cache
    # not TorchScript / wrong output: refused with the file's name
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(InceptionUnavailable, match="junk.pt: cannot be loaded"):
        InceptionFeatures.load(str(junk), url=None)

    class Wrong(torch.nn.Module):
        def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            return img.float().mean(dim=(2, 3))

    wrong = write_stand_in(tmp_path / "wrong.pt", Wrong())
    with pytest.raises(InceptionUnavailable, match=r"returns \(2, 3\) features, expected \[N, 2048\]"):
        InceptionFeatures.load(str(wrong), url=None)


def test_missing_inception_file_gives_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    url = (tmp_path / "no-such-server" / INCEPTION_NAME).as_uri()
    with pytest.raises(InceptionUnavailable) as err:
        locate_inception(str(tmp_path / "nowhere.pt"), cache=tmp_path / "cache.pt", url=url)
    msg = str(err.value)
    for part in (INCEPTION_NAME, "nowhere.pt: does not exist", "cache.pt: not there", url, "metrics.inception_path"):
        assert part in msg, (part, msg)
    assert "rand-fd" in msg  # points at the offline proxy
    reals = write_png_folder(tmp_path / "a", blob_images(8, 32, seed=1))
    params = json.dumps({"inception_url": None})
    rc = metrics_cli.main([str(reals), "--real", str(reals), "--metrics", "fid", "--params", params])
    assert rc == 1
    assert INCEPTION_NAME in capsys.readouterr().err


def test_cli_prints_fid_kid_and_proxy_for_two_folders(tmp_path, capsys):
    torch.set_num_threads(1)
    fake_w = write_stand_in(tmp_path / "stand-in-not-inception.pt")
    a = write_png_folder(tmp_path / "a", blob_images(40, 32, seed=1))
    b = write_png_folder(tmp_path / "b", blob_images(40, 32, seed=2))
    out = tmp_path / "m.jsonl"
    argv = [str(b), str(a), "--real", str(a), "--metrics", "fid,kid,rand-fd,rand-kid", "--inception-path", str(fake_w)]
    argv += ["--json", str(out), "--params", json.dumps({"inception_url": None, "kid_subset_size": 20})]
    assert metrics_cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "fid " in text and "kid " in text and "rand-fd " in text and "NOT FID" in text
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["fake"] for r in rows] == [str(b), str(a)]
    assert rows[0]["fid"] > 0 and rows[1]["fid"] == pytest.approx(0.0, abs=1e-6)
    assert rows[1]["rand-fd"] == pytest.approx(0.0, abs=1e-6) and rows[0]["rand-fd"] > 0
    assert rows[0]["extractors"]["inception"]["inception_sha256"] == hashlib.sha256(fake_w.read_bytes()).hexdigest()
    assert rows[0]["num_real"] == rows[0]["num_fake"] == 40 and rows[0]["resolution"] == 32
    with pytest.raises(SystemExit) as exit_:  # a config error: exit 2, one line naming the key
        metrics_cli.main([str(a), "--real", str(a), "--metrics", "fud"])
    assert exit_.value.code == 2 and "metrics.metrics" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ training + snapshots
def test_training_logs_proxy_metrics_without_changing_training(tmp_path, capsys):
    from animefaces.config import parse_params
    from animefaces.train import checkpoint as ckpt
    from animefaces.train.loop import train
    from animefaces.train.runs import run_folder

    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    pack = write_h5(tmp_path / "pack.h5", blob_images(24, 32), np.zeros(24, np.int64))
    base = {**TINY, "kimg": 0.048, "snap": 1, "keep_snapshots": 0}
    try:
        assert train(parse_params(json.dumps(base), "train"), str(pack), str(tmp_path / "plain")) == 0
        with_m = {**base, "metrics": ["rand-fd", "rand-kid"], "metrics_every": 2, "metrics_images": 16}
        assert train(parse_params(json.dumps(with_m), "train"), str(pack), str(tmp_path / "measured")) == 0
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
    rows = [json.loads(x) for x in (tmp_path / "measured" / "metrics.jsonl").read_text().splitlines()]
    assert [r["tick"] for r in rows if "rand-fd" in r] == [2, 3]  # every 2 ticks and at the last (3)
    assert all(r["rand-fd"] > 0 and "rand-kid_std" in r and r["metrics_s"] > 0 for r in rows if "rand-fd" in r)
    a = ckpt.load_file(tmp_path / "plain" / "network-final.pt")["G_ema"]
    b = ckpt.load_file(tmp_path / "measured" / "network-final.pt")["G_ema"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # metrics never touch the training RNG streams

    # the same value from the stand-alone API on the last snapshot against the pack (same seeds, same subset)
    snaps = ckpt.list_snapshots(run_folder(tmp_path / "measured") / "snapshots")
    r = evaluate(snaps[0][1], pack, ["rand-fd", "rand-kid"], num_fake=16, num_real=16)
    assert r["kimg"] == pytest.approx(0.048) and r["resolution"] == 16
    assert r["rand-fd"] == pytest.approx(rows[-1]["rand-fd"], rel=1e-9)
    assert r["rand-kid"] == pytest.approx(rows[-1]["rand-kid"], rel=1e-9)
    argv = [str(snaps[0][1]), "--real", str(pack), "--num-fake", "16", "--num-real", "16", "--json", "-"]
    assert metrics_cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["rand-fd"] == pytest.approx(r["rand-fd"], rel=1e-6)


def test_report_gives_quality_metrics_their_own_labelled_panels():
    from animefaces.report import training

    layout = dict(training.panels(["loss_G", "rand-fd", "rand-kid", "rand-kid_std", "fid", "kid", "kid_std"]))
    assert layout["rand-fd (offline proxy, not FID)"] == ["rand-fd"]
    assert layout["rand-kid (offline proxy, not KID)"] == ["rand-kid", "rand-kid_std"]
    assert layout["FID (Inception)"] == ["fid"] and layout["KID (Inception)"] == ["kid", "kid_std"]
