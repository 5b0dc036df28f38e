"""Collapse and geometry of a layer: NC1, numerical rank, RankMe, linear CKA.

Used by Chapter 2 (transferability / FaCe) and Chapter 3 (tunnel effect).
"""

from __future__ import annotations

import torch

from ._stats import LayerStats, gram, rank_cut, squared_singular_values
from ._validate import ArrayLike, as_features, check_positive_int

_RANKME_EPS = 1e-7  # Garrido et al. 2023


def nc1(features: ArrayLike, labels: ArrayLike) -> float:
    """Within-class variability collapse NC1 = (1/C) Tr(Sigma_W Sigma_B^+) (Papyan et al. 2020).

    Class covariances are biased (1/n_c); lower = more collapsed. Chapter 2 (transferability / FaCe)
    and Chapter 3 (tunnel effect).
    """
    return _nc1(LayerStats(features, labels))


def numerical_rank(
    features: ArrayLike, rtol: float = 1e-3, max_samples: int = 8000, random_state: int = 0
) -> int:
    """Number of covariance eigenvalues above `rtol` * the largest, on <= `max_samples` random rows.

    The tunnel effect's representation-compression measure; Chapter 3 (tunnel effect).
    """
    return _numerical_rank(
        LayerStats(features), rtol=rtol, max_samples=max_samples, random_state=random_state
    )


def rankme(features: ArrayLike) -> float:
    """RankMe (Garrido et al. 2023): exp(entropy of the normalised singular values of F), eps 1e-7.

    Chapter 3 (tunnel effect).
    """
    return _rankme(LayerStats(features))


def linear_cka(x: ArrayLike, y: ArrayLike) -> float:
    """Linear CKA (Kornblith et al. 2019) of centred features.

    CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F).

    Uses the N x N Gram form when it is cheaper; Chapter 3 (tunnel effect).
    """
    a, b = as_features(x, "x"), as_features(y, "y")
    if len(a) != len(b):
        raise ValueError(f"x and y must have the same number of rows; got {len(a)} and {len(b)}")
    a = a.to(torch.float64)
    b = b.to(device=a.device, dtype=torch.float64)
    a, b = a - a.mean(0), b - b.mean(0)
    n, da, db = len(a), a.shape[1], b.shape[1]
    if n * (da + db) < da * db + da * da + db * db:
        a, b = a @ a.T, b @ b.T  # same Frobenius products in Gram form
        cross = (a * b).sum()
    else:
        cross = ((b.T @ a) ** 2).sum()
        a, b = gram(a), gram(b)
    denom = torch.linalg.matrix_norm(a) * torch.linalg.matrix_norm(b)
    if denom == 0:
        raise ValueError("x and y must both vary across rows (a constant layer has no CKA)")
    return float(cross / denom)


def _nc1(stats: LayerStats) -> float:
    """Sigma_B^+ lives in the span of the centred class means, so Sigma_W is only needed there."""
    between = stats.class_means - stats.mean
    _, s, vh = torch.linalg.svd(between, full_matrices=False)
    keep = rank_cut(s**2, tuple(between.shape))
    v, s = vh[keep].T, s[keep]
    within = stats.x64 @ v - (stats.class_means @ v)[stats.codes]  # (N, r), no N x D temporary
    sw = (stats.class_sum(within**2) / stats.counts[:, None]).mean(0)  # v_j^T Sigma_W v_j
    return float((sw / s**2).sum())  # Sigma_B^+ = C V diag(1/s^2) V^T, times 1/C


def _numerical_rank(
    stats: LayerStats, rtol: float = 1e-3, max_samples: int = 8000, random_state: int = 0
) -> int:
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must be in (0, 1); got {rtol}")
    max_samples = check_positive_int(max_samples, "max_samples")
    if stats.n <= max_samples:
        lam = stats.cov_eigenvalues
    else:
        gen = torch.Generator().manual_seed(random_state)
        rows = torch.randperm(stats.n, generator=gen)[:max_samples].to(stats.device)
        sample = stats.x[rows].to(torch.float64)  # the sampled rows only
        lam = squared_singular_values(sample - sample.mean(0))
    return int((lam > rtol * lam.max()).sum())


def _rankme(stats: LayerStats) -> float:
    s = stats.raw_s2.sqrt()
    p = s / s.sum() + _RANKME_EPS
    return float(torch.exp(-(p * p.log()).sum()))
