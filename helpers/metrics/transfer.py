"""Transferability scores from frozen features: LogME, LEEP, NCE, H-score, GBC, FaCe, weighted tau.

Used by Chapter 2 (transferability / FaCe).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.stats
import torch

from ._stats import LayerStats, rank_cut
from ._validate import (
    ArrayLike,
    as_curve,
    as_features,
    check_positive_int,
    check_same_length,
    encode_labels,
)
from .geometry import _nc1

_LOGME_ITERATIONS = 11
_LOGME_TOL = 1e-3
_GBC_MIN_VARIANCE = 1e-4  # variance floor of Pandy et al.'s reference code


def logme(features: ArrayLike, labels: ArrayLike) -> float:
    """LogME (You et al. 2021): mean over classes of the maximised log evidence per sample.

    Fixed-point updates of (alpha, beta) per class (methods page, section 2: book/methods.md),
    the evidence taken at the final (alpha, beta); one spectral factorisation of F serves all
    classes.
    Chapter 2 (transferability / FaCe).
    """
    return _logme(LayerStats(features, labels))


def leep(source_probs: ArrayLike, labels: ArrayLike) -> float:
    """LEEP (Nguyen et al. 2020): mean log of the expected empirical prediction for the true label.

    `source_probs` (N, Cs) are the source head's softmax posteriors.
    Chapter 2 (transferability / FaCe).
    """
    probs = as_features(source_probs, "source_probs").to(torch.float64)
    if bool((probs < 0).any()):
        raise ValueError("source_probs must be non-negative softmax posteriors")
    codes, classes = encode_labels(labels, len(probs), probs.device, features_name="source_probs")
    joint = probs.new_zeros(len(classes), probs.shape[1]).index_add_(0, codes, probs)  # N P(y, z)
    cond = joint / joint.sum(0).clamp_min(torch.finfo(torch.float64).tiny)  # P(y | z)
    expected = probs @ cond.T  # (N, C): sum_z theta(z)_i P(y | z) for every target class y
    return float(expected.gather(1, codes[:, None]).log().mean())


def nce(source_labels: ArrayLike, labels: ArrayLike) -> float:
    """NCE (Tran et al. 2019): -H(Y | Z), Z = argmax source predictions.

    Chapter 2 (transferability / FaCe).
    """
    z, _ = encode_labels(source_labels, None, torch.device("cpu"), "source_labels", min_classes=1)
    y, classes = encode_labels(labels, len(z), z.device, features_name="source_labels")
    nz = int(z.max()) + 1
    joint = (
        torch.bincount(y * nz + z, minlength=len(classes) * nz).reshape(-1, nz).to(torch.float64)
    )
    joint = joint / len(y)
    cond = joint / joint.sum(0, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    mask = joint > 0
    return float((joint[mask] * cond[mask].log()).sum())


def h_score(features: ArrayLike, labels: ArrayLike) -> float:
    """H-score (Bao et al. 2019): tr(cov(f)^+ cov(E[f | y])); Chapter 2 (transferability / FaCe)."""
    return _h_score(LayerStats(features, labels))


def gbc(features: ArrayLike, labels: ArrayLike, pca_dim: int = 64) -> float:
    """GBC (Pandy et al. 2022): -sum over ordered class pairs of the Bhattacharyya coefficient.

    Diagonal Gaussians per class after PCA to `pca_dim` dims; Chapter 2 (transferability / FaCe).
    """
    return _gbc(LayerStats(features, labels), pca_dim=pca_dim)


def face(features: ArrayLike, labels: ArrayLike, pca_dim: int = 64) -> dict[str, float]:
    """FaCe terms of one model: variance collapse (-NC1), class fairness, and their raw sum.

    Class fairness = -std_c(o_c) / mean_c(o_c), o_c the mean Bhattacharyya coefficient of class c to
    the others (diagonal Gaussians after PCA; form *unconfirmed*, see the methods page, section 2:
    book/methods.md). Compare models with `face_zoo`; Chapter 2 (transferability / FaCe).
    """
    return _face(LayerStats(features, labels), pca_dim=pca_dim)


def face_zoo(scores: Sequence[Mapping[str, float]] | pd.DataFrame) -> np.ndarray:
    """FaCe of each model in a zoo: z-score each term across models, then add them.

    `scores` are `face` results (a list of dicts or a DataFrame).
    Chapter 2 (transferability / FaCe).
    """
    table = pd.DataFrame(scores)
    missing = {"variance_collapse", "class_fairness"} - set(table.columns)
    if missing:
        raise ValueError(f"scores lack the FaCe terms {sorted(missing)}; pass results of face()")
    terms = [
        as_curve(table[c].to_numpy(), f"scores['{c}']")
        for c in ("variance_collapse", "class_fairness")
    ]
    return sum(_zscore(t) for t in terms)


def weighted_tau(scores: ArrayLike, accuracies: ArrayLike) -> float:
    """Weighted Kendall tau between transferability scores and fine-tuned accuracies (scipy).

    Higher is better; Chapter 2 (transferability / FaCe).
    """
    s = as_curve(scores, "scores", min_len=2)
    a = as_curve(accuracies, "accuracies", min_len=2)
    check_same_length(s, a, "scores", "accuracies")
    return float(scipy.stats.weightedtau(s, a).statistic)


def _logme(stats: LayerStats) -> float:
    s2, v = stats.raw_spectrum
    keep = rank_cut(s2, (stats.n, stats.d))
    s2, v = s2[keep], v[:, keep]
    u = (v.T @ stats.class_sums.T) / s2.sqrt()[:, None]  # (r, C): U^T t for every one-hot column t
    rest = (stats.counts - (u * u).sum(0)).clamp_min(0)  # ||t||^2 outside the span of F
    c = stats.n_classes
    alpha = torch.ones(c, dtype=torch.float64, device=stats.device)
    beta = torch.ones_like(alpha)
    active = torch.ones(c, dtype=torch.bool, device=stats.device)
    for _ in range(_LOGME_ITERATIONS):
        gamma, mm, res = _logme_posterior(alpha, beta, s2, u, rest)
        new_alpha, new_beta = gamma / mm, (stats.n - gamma) / res
        done = ((new_alpha / new_beta) - alpha / beta).abs() < _LOGME_TOL * (alpha / beta)
        alpha = torch.where(active, new_alpha, alpha)
        beta = torch.where(active, new_beta, beta)
        active = active & ~done
        if not bool(active.any()):
            break
    _, mm, res = _logme_posterior(alpha, beta, s2, u, rest)
    n, d, r = stats.n, stats.d, len(s2)
    logdet = (alpha + beta * s2[:, None]).log().sum(0) + (d - r) * alpha.log()
    evidence = (
        n * beta.log()
        + d * alpha.log()
        - n * math.log(2 * math.pi)
        - beta * res
        - alpha * mm
        - logdet
    ) / (2 * n)
    return float(evidence.mean())


def _logme_posterior(alpha, beta, s2, u, rest):
    """gamma, ||m||^2 and ||F m - t||^2 at (alpha, beta), all in the singular basis."""
    denom = alpha + beta * s2[:, None]
    gamma = (beta * s2[:, None] / denom).sum(0)
    mm = ((beta * s2.sqrt()[:, None] * u / denom) ** 2).sum(0)
    res = ((alpha * u / denom) ** 2).sum(0) + rest
    return gamma, mm, res


def _h_score(stats: LayerStats) -> float:
    lam, v = stats.cov_spectrum
    keep = rank_cut(lam, (stats.d, stats.d))
    proj = (stats.class_means - stats.mean) @ v[:, keep]  # (C, r)
    between = (stats.counts[:, None] * proj**2).sum(0) / max(stats.n - 1, 1)
    return float((between / lam[keep]).sum())


def _class_log_bc(stats: LayerStats, pca_dim: int) -> torch.Tensor:
    """(C, C) log Bhattacharyya coefficients of diagonal Gaussians fitted per class after PCA."""
    pca_dim = check_positive_int(pca_dim, "pca_dim")
    _, v = stats.cov_spectrum
    z = stats.centred @ v[:, :pca_dim]
    means = stats.class_sum(z) / stats.counts[:, None]
    var = (stats.class_sum((z - means[stats.codes]) ** 2) / stats.counts[:, None]).clamp_min(
        _GBC_MIN_VARIANCE
    )
    avg = (var[:, None, :] + var[None, :, :]) / 2
    log_var = var.log().sum(1)
    dist = ((means[:, None, :] - means[None, :, :]) ** 2 / avg).sum(2) / 8 + 0.5 * (
        avg.log().sum(2) - 0.5 * (log_var[:, None] + log_var[None, :])
    )
    return -dist


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    return m[~torch.eye(len(m), dtype=torch.bool, device=m.device)].reshape(len(m), -1)


def _gbc(stats: LayerStats, pca_dim: int = 64) -> float:
    return float(-_off_diagonal(_class_log_bc(stats, pca_dim)).exp().sum())


def _face(stats: LayerStats, pca_dim: int = 64) -> dict[str, float]:
    log_bc = _off_diagonal(_class_log_bc(stats, pca_dim))
    overlap = (
        (log_bc - log_bc.max()).exp().mean(1)
    )  # o_c up to a common factor (the ratio ignores it)
    fairness = -float(overlap.std(correction=0) / overlap.mean())
    collapse = -_nc1(stats)
    return {"variance_collapse": collapse, "class_fairness": fairness, "face": collapse + fairness}


def _zscore(t: np.ndarray) -> np.ndarray:
    std = t.std()
    return np.zeros_like(t) if std == 0 else (t - t.mean()) / std
