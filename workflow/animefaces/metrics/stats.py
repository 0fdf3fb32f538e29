"""The statistics behind FID/KID (and the offline proxy): Fréchet distance between Gaussians and the KID estimator.

Both take feature matrices (rows = images) as numpy arrays; the linear algebra runs in float64 torch, so it uses
``torch.set_num_threads`` threads (``--threads``, ``train.threads``). numpy's OpenBLAS picks its own thread count,
and on a busy machine its spinning threads made one 480-d Fréchet distance take 44 s instead of 2 s.

Fréchet distance (Heusel et al. 2017) between N(mu1, S1) and N(mu2, S2), the squared 2-Wasserstein distance of two
Gaussians::

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

KID (Bińkowski et al. 2018, "Demystifying MMD GANs"): the unbiased estimator of the squared maximum mean
discrepancy with the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3`` (d = feature dimension), averaged over
random subsets of equal size from both sets (mean and standard deviation over the subsets are reported).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Gaussian:
    """Mean and covariance of a feature set (what FID compares); ``count`` = the number of rows it came from."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def fit_gaussian(features: np.ndarray) -> Gaussian:
    """Mean and unbiased covariance (divide by n-1) of ``features`` [n, d], n >= 2."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need a [n, d] feature matrix with n >= 2, got shape {x.shape}")
    t = _t(x)
    centred = t - t.mean(dim=0)
    return Gaussian(t.mean(dim=0).numpy(), (centred.T @ centred / (x.shape[0] - 1)).numpy(), x.shape[0])


def _sqrt_psd(a: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues < 0 from round-off -> 0)."""
    w, v = torch.linalg.eigh((a + a.T) / 2)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((S1 S2)^(1/2)) for symmetric PSD S1, S2, computed stably with symmetric eigen-decompositions only.

    S1 S2 is not symmetric, so a general matrix square root (``scipy.linalg.sqrtm``, Schur based) is the usual
    route and can return complex values or fail on the singular covariances of few samples. Instead: with
    R = S1^(1/2) (symmetric, from ``eigh``), S1 S2 = R (R S2 R) R^-1 is similar to M = R S2 R, which is symmetric
    PSD. Similar matrices have the same eigenvalues, so the eigenvalues of S1 S2 are those of M (real, >= 0) and
    tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i(M)). Only ``eigh`` of two symmetric matrices is needed, negative
    round-off eigenvalues are clipped to 0, and the result is real by construction. (The similarity argument
    needs R invertible; for singular S1 the identity still holds by continuity, S1 + eps I -> S1.)
    """
    r = _sqrt_psd(_t(sigma1))
    m = r @ _t(sigma2) @ r
    w = torch.linalg.eigvalsh((m + m.T) / 2)
    return float(w.clamp(min=0).sqrt().sum())


def frechet_distance(a: Gaussian, b: Gaussian) -> float:
    """d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)) (the 'FID' when the features are Inception's)."""
    if a.mu.shape != b.mu.shape:
        raise ValueError(f"feature dimensions differ: {a.mu.shape[0]} vs {b.mu.shape[0]}")
    diff = a.mu - b.mu
    value = diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * trace_sqrt_product(a.sigma, b.sigma)
    return float(max(value, 0.0))  # >= 0 mathematically; tiny negatives are round-off


def frechet_distance_features(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets [n1, d], [n2, d].

    With fewer images than dimensions (e.g. a few hundred images, 2048 Inception features) the d x d route costs
    two d^3 eigen-decompositions for matrices of rank < n. Then the same value comes from the data matrices:
    with A = (X - mean)^T / sqrt(n1 - 1) and B likewise (so S1 = A A^T, S2 = B B^T), S1 S2 = P Q with P = A,
    Q = A^T B B^T; PQ and QP have the same non-zero eigenvalues, and QP = (A^T B)(A^T B)^T, whose eigenvalues are
    the squared singular values of the n1 x n2 matrix A^T B; hence tr((S1 S2)^(1/2)) = the sum of the singular
    values of A^T B (its nuclear norm), and tr(S1) = |A|_F^2, tr(S2) = |B|_F^2. Used when max(n1, n2) < d;
    both routes are tested to agree.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or min(x.shape[0], y.shape[0]) < 2:
        raise ValueError(f"need [n, d] feature matrices with n >= 2, got shapes {x.shape} and {y.shape}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    if max(x.shape[0], y.shape[0]) >= x.shape[1]:
        return frechet_distance(fit_gaussian(x), fit_gaussian(y))
    tx, ty = _t(x), _t(y)
    a = (tx - tx.mean(dim=0)) / np.sqrt(x.shape[0] - 1)
    b = (ty - ty.mean(dim=0)) / np.sqrt(y.shape[0] - 1)
    diff = tx.mean(dim=0) - ty.mean(dim=0)
    nuclear = torch.linalg.svdvals(a @ b.T).sum()
    value = float(diff @ diff + (a * a).sum() + (b * b).sum() - 2 * nuclear)
    return max(value, 0.0)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3 for all pairs of rows: [n, d] x [m, d] -> [n, m]."""
    d = x.shape[1]
    return ((_t(x) @ _t(y).T / d + 1.0) ** 3).numpy()


def _mmd2_from_blocks(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    n = kxx.shape[0]
    off = n * (n - 1)
    return float((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean())


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel between two equal-size sets of rows (n >= 2)::

    1/(n(n-1)) sum_{i!=j} k(x_i,x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i,y_j) - 2/n^2 sum_{i,j} k(x_i,y_j)
    """
    n = x.shape[0]
    if y.shape[0] != n or n < 2:
        raise ValueError(f"need two sets of the same size >= 2, got {x.shape[0]} and {y.shape[0]}")
    return _mmd2_from_blocks(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y))


GRAM_BYTES = 2**30  # kernel matrices of 2 x 5000 images take 0.6 GB


def kernel_distance(
    x: np.ndarray,
    y: np.ndarray,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    max_gram_bytes: int = GRAM_BYTES,
) -> tuple[float, float]:
    """KID: (mean, std) of ``mmd2_unbiased`` over ``num_subsets`` random subsets of ``min(subset_size, n_x, n_y)``
    rows drawn without replacement from each set (numpy ``RandomState(seed)``: reproducible).

    Cost: when the kernel matrices of all rows fit in ``max_gram_bytes`` they are computed once and every
    subset's block sums are quadratic forms u'Ku with 0/1 indicator columns (three matrix products for all
    subsets; (n_x + n_y)^2 (d + num_subsets) work instead of 3 num_subsets m^2 d); the values are
    the same. When the subsets are the whole sets, one evaluation.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    nx, ny = x.shape[0], y.shape[0]
    m = min(subset_size, nx, ny)
    if m < 2:
        raise ValueError(f"KID needs at least 2 images in each set, got {nx} and {ny}")
    if m == nx == ny:  # every subset is the whole set (in some order): one value, no spread
        return mmd2_unbiased(x, y), 0.0
    rng = np.random.RandomState(seed)
    draws = [(rng.choice(nx, m, replace=False), rng.choice(ny, m, replace=False)) for _ in range(num_subsets)]
    if (nx * nx + ny * ny + nx * ny) * 8 <= max_gram_bytes:
        # subset sums as quadratic forms with 0/1 indicator columns: u' K u = sum of K over the subset's block
        tx, ty = _t(x), _t(y)
        kxx, kyy, kxy = ((a @ b.T / x.shape[1] + 1.0) ** 3 for a, b in ((tx, tx), (ty, ty), (tx, ty)))
        u, v = torch.zeros(nx, num_subsets, dtype=torch.float64), torch.zeros(ny, num_subsets, dtype=torch.float64)
        for s, (ix, iy) in enumerate(draws):
            u[ix, s], v[iy, s] = 1.0, 1.0
        sxx = ((kxx @ u) * u).sum(0) - kxx.diagonal() @ u
        syy = ((kyy @ v) * v).sum(0) - kyy.diagonal() @ v
        sxy = ((kxy @ v) * u).sum(0)
        off = m * (m - 1)
        values = (sxx / off + syy / off - 2 * sxy / (m * m)).tolist()
    else:
        values = [mmd2_unbiased(x[ix], y[iy]) for ix, iy in draws]
    return float(np.mean(values)), float(np.std(values))
