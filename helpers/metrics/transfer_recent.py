"""Transferability baselines of the papers since FaCe: SFDA, NLEEP, PARC, NCTI, kNN accuracy.

Each follows its authors' reference code (TencentARC/SFDA, dbolya/parc, BUserName/NCTI); where that
code departs from its paper's formulas the docstring says so and which one is followed.
Used by Chapter 2 (transferability / FaCe).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ._stats import _BLOCK_ELEMENTS, LayerStats, gram, rank_cut
from ._validate import ArrayLike, as_curve, check_positive_int
from .separability import knn_k
from .transfer import leep

_SFDA_A = 5.0  # lambda = exp(-a * sigma_max(S_W)), a = 5 (paper and code)
_SFDA_POWER_ITERATIONS = 3  # reference: utils.iterative_A(S_W, max_iterations=3)
_SHRINKAGE_FLOOR = 1e-10  # SFDA and NCTI code: max(exp(...), 1e-10)
_NCTI_SHRINKAGE_DIMS = 32  # NCTI code: exp(-sum of the 32 largest PCA variances)
_NCTI_TERMS = ("seli", "ncc", "vc")


def sfda(features: ArrayLike, labels: ArrayLike) -> float:
    """SFDA (Shao et al., ECCV 2022): mean posterior of the true class after ConfMix.

    1. Regularised FDA: S_W (class covariances with 1/n_c, weighted by class priors) shrunk as
       (1 - lam) S_W + lam (tr S_W / D) I, lam = max(exp(-5 sigma), 1e-10), sigma the largest
       eigenvalue of S_W from 3 rounds of power iteration started at S_W 1 (reference code).
       Gaussian posteriors p(y | x) with that shared covariance and the class priors.
    2. ConfMix: p = softmax over classes of those posteriors (the code's "softening"), then
       x <- p_y x + (1 - p_y) m_y, m_y the mean of the *other* classes' means.
    3. Step 1 again on the mixed features with the same lam; the score is the mean p(y | x).

    Follows the reference code (TencentARC/SFDA, metrics.py) where it departs from the paper:
    the score has no log (code: "log ... ignored in case of instability"; paper: mean log
    posterior); shrinkage targets (tr S_W / D) I, not I; sigma comes from power iteration; the
    extra softmax in step 2. The code classifies with coef = M V V^T over *all* D generalised
    eigenvectors V of (S_B, S_W,lam), which equals M S_W,lam^-1: shrinkage LDA, independent of
    S_B, so it is computed here from the eigenbasis of S_W without the eigenproblem. Not scale
    invariant (lam depends on the scale of S_W). Chapter 2 (transferability / FaCe).
    """
    return _sfda(LayerStats(features, labels))


def nleep(
    features: ArrayLike,
    labels: ArrayLike,
    component_ratio: int = 5,
    pca_variance: float = 0.8,
    random_state: int = 0,
) -> float:
    """NLEEP (Li et al., CVPR 2021): LEEP on the posteriors of a Gaussian mixture over the features.

    PCA keeping the fewest components whose variance exceeds `pca_variance` of the total
    (sklearn's PCA(n_components=0.8) rule); sklearn GaussianMixture (full covariances, k-means
    init, seeded by `random_state`, on as many threads as torch) with `component_ratio` x #classes
    components (5 in the SFDA/NCTI code; the NCTI code uses 1 for Food and Pets); `leep` of its
    posteriors. The paper's LEEP is a mean *log*; the SFDA/NCTI repositories' NLEEP drops the
    log (mean posterior) - we keep the paper's. Chapter 2 (transferability / FaCe).
    """
    return _nleep(
        LayerStats(features, labels),
        component_ratio=component_ratio,
        pca_variance=pca_variance,
        random_state=random_state,
    )


def parc(features: ArrayLike, labels: ArrayLike, pca_dim: int = 32) -> float:
    """PARC (Bolya et al., NeurIPS 2021), in percent (x 100, as the reference code returns it).

    Spearman correlation between the upper triangles of 1 - Pearson correlation of the samples'
    standardised PCA coordinates (`pca_dim` = 32, the reference's "PARC f=32") and of their one-hot
    labels. Differences from the reference code (dbolya/parc, methods.PARC): exact PCA where it
    uses sklearn's randomized PCA (iterated_power=1, random_state=1919); the label dissimilarities
    take exactly two values here, while np.corrcoef of one-hot rows leaves some same-class pairs
    at 2e-16 instead of 0, which breaks their ties at random (a few % of the score). A sample's
    Pearson correlation centres it over its PCA coordinates, so PARC depends on the components'
    signs: each is signed so that its largest-magnitude score is positive (sklearn's rule when
    the reference was written; sklearn >= 1.5 signs by the loadings, which ties PARC to the
    feature basis), which keeps PARC rotation and scale invariant. Zero-variance components are
    dropped. Builds the N x N correlation matrix, as the reference does.
    Chapter 2 (transferability / FaCe).
    """
    return _parc(LayerStats(features, labels), pca_dim=pca_dim)


def ncti(features: ArrayLike, labels: ArrayLike, pca_dim: int = 64) -> dict[str, float]:
    """Raw NCTI terms of one model (Wang et al., ICCV 2023); compare models with `ncti_zoo`.

    As the reference code (BUserName/NCTI, metrics.NCTI_Score): PCA to `pca_dim` = 64 dims, then
    LDA with shrinkage lam = max(exp(-sum of the 32 largest PCA variances), 1e-10) (sklearn's
    'eigen' solver; at the floor its 'svd' solver: no shrinkage, within-class null directions
    dropped). Within-class covariance with 1/N, as the sklearn pinned here (1.9) in both solvers; the
    sklearn of the reference divided by N - C in 'svd', which scales ``seli`` by sqrt((N - C) / N) (cancelled
    by `ncti_zoo` for models on one data set) and sharpens the posteriors slightly. Terms:

    - ``seli``: nuclear norm of the centred LDA projection (C - 1 dims) - the SELI geometry term
      (the paper's ||H||_*, taken on the Fisher projection);
    - ``ncc``: mean LDA posterior of the true class (the nearest-centre classifier term);
    - ``vc``: log sum_c ||P_c||_*, P_c the posteriors of class c's samples - within-class
      variability (the paper's -sum_c ||Z_c||_*; the code takes the log, and the zoo subtracts it).

    Chapter 2 (transferability / FaCe).
    """
    return _ncti(LayerStats(features, labels), pca_dim=pca_dim)


def ncti_zoo(scores: Sequence[Mapping[str, float]] | pd.DataFrame) -> np.ndarray:
    """NCTI of each model in a zoo: min-max scale each term across models, seli + ncc - vc.

    The reference's combination (evaluate_metric_group1_cpu.py); a term equal for all models
    scales to 0 (the reference divides by zero). `scores` are `ncti` results.
    Chapter 2 (transferability / FaCe).
    """
    table = pd.DataFrame(scores)
    missing = set(_NCTI_TERMS) - set(table.columns)
    if missing:
        raise ValueError(f"scores lack the NCTI terms {sorted(missing)}; pass results of ncti()")
    seli, ncc, vc = (_minmax(as_curve(table[c].to_numpy(), f"scores['{c}']")) for c in _NCTI_TERMS)
    return seli + ncc - vc


def knn_accuracy(features: ArrayLike, labels: ArrayLike, k: int) -> float:
    """Leave-one-out kNN classification accuracy (Euclidean, self excluded), a fraction in [0, 1].

    Majority vote of the k nearest neighbours; a tie goes to the tied class with the nearest
    member (sklearn and the PARC code's scipy.stats.mode pick the smallest label id, which depends
    on the label ids). k = 1 is `loo_1nn`; PARC's repository reports 1-NN in percent.
    Chapter 2 (transferability / FaCe).
    """
    stats = LayerStats(features, labels)
    return _knn_accuracy(stats, k=_check_neighbours(k, stats.n))


# ---------------------------------------------------------------- per-layer implementations


def _sfda(stats: LayerStats) -> float:
    codes, c = stats.codes, stats.n_classes
    log_priors = (stats.counts / stats.n).log()
    x = stats.centred  # LDA posteriors and ConfMix commute with a shift of the features
    means = stats.class_means - stats.mean
    sw = _within_scatter(x, means, codes)
    lam = max(math.exp(-_SFDA_A * _power_sigma(sw)), _SHRINKAGE_FLOOR)
    post = _lda_posteriors(x, means, _whitener(sw, lam), log_priors)
    confidence = post.softmax(1).gather(1, codes[:, None])
    others = (means.sum(0) - means) / (c - 1)  # mean of the other classes' means
    mixed = confidence * x + (1 - confidence) * others[codes]
    means = stats.class_sum(mixed) / stats.counts[:, None]
    sw = _within_scatter(mixed, means, codes)
    post = _lda_posteriors(mixed, means, _whitener(sw, lam), log_priors)
    return float(post.gather(1, codes[:, None]).mean())


def _nleep(
    stats: LayerStats, component_ratio: int = 5, pca_variance: float = 0.8, random_state: int = 0
) -> float:
    from sklearn.mixture import GaussianMixture  # imported on use: sklearn costs ~1 s
    from threadpoolctl import threadpool_limits

    n_components = check_positive_int(component_ratio, "component_ratio") * stats.n_classes
    if isinstance(pca_variance, bool) or not 0 < pca_variance < 1:
        raise ValueError(f"pca_variance must be a fraction in (0, 1); got {pca_variance!r}")
    if n_components > stats.n:
        raise ValueError(
            f"component_ratio x classes ({n_components} mixture components) must not exceed the "
            f"number of samples ({stats.n}); lower component_ratio"
        )
    lam, v = stats.cov_spectrum
    if not bool(lam[0] > 0):
        raise ValueError("features must vary across samples (NLEEP's PCA has nothing to keep)")
    cumulative = lam.cumsum(0) / lam.sum()
    target = torch.tensor([float(pca_variance)], dtype=lam.dtype, device=lam.device)
    k = min(int(torch.searchsorted(cumulative, target, right=True)) + 1, len(lam))
    z = (stats.centred @ v[:, :k]).cpu().numpy()
    # BLAS/OpenMP threads as many as torch's, so helpers.device.one_thread covers the mixture too
    # (a small fit on sklearn's default threads ran ~50x slower on 2 busy cores here).
    with threadpool_limits(torch.get_num_threads()):
        gmm = GaussianMixture(n_components=n_components, random_state=random_state).fit(z)
        posteriors = torch.from_numpy(gmm.predict_proba(z)).to(stats.device)
    return leep(posteriors, stats.codes)


def _parc(stats: LayerStats, pca_dim: int = 32) -> float:
    z = _pca_scores(stats, check_positive_int(pca_dim, "pca_dim"))
    if z.shape[1] < 2:
        raise ValueError(
            "features need at least 2 directions with variance for PARC's sample correlations"
        )
    # Signs matter: each sample's correlation centres it over its PCA coordinates.
    z = z * z.gather(0, z.abs().argmax(0, keepdim=True)).sign()  # largest |score| positive
    z = z / z.std(0)  # StandardScaler (its 1/N or 1/(N-1) cancels in the correlations)
    z = z - z.mean(1, keepdim=True)
    z = z / z.norm(dim=1, keepdim=True).clamp_min(torch.finfo(z.dtype).tiny)
    upper = torch.ones(stats.n, stats.n, dtype=torch.bool, device=stats.device).triu_(1)
    corr = (z @ z.T)[upper]
    same = (stats.codes[:, None] == stats.codes[None, :])[upper].to(torch.float64)
    if bool(same.min() == same.max()):
        raise ValueError("labels must put at least two samples in one class for PARC")
    # rdm = 1 - corr for both; the label rdm takes two values, so Spearman(rdm_f, rdm_y) is the
    # Pearson correlation of the ranks of the feature correlations with "same class".
    return 100 * _pearson(_average_ranks(corr), same)


def _ncti(stats: LayerStats, pca_dim: int = 64) -> dict[str, float]:
    z = _pca_scores(stats, check_positive_int(pca_dim, "pca_dim"))
    n, d = z.shape
    c, codes = stats.n_classes, stats.codes
    log_priors = (stats.counts / n).log()
    lam_pca = stats.cov_spectrum[0][: min(d, _NCTI_SHRINKAGE_DIMS)]
    lam = max(math.exp(-float(lam_pca.sum())), _SHRINKAGE_FLOOR)
    means = stats.class_sum(z) / stats.counts[:, None]  # z is centred: the global mean is 0
    between = (means.T * (stats.counts / n)) @ means  # sum_c pi_c m_c m_c^T
    if lam > _SHRINKAGE_FLOOR:  # sklearn solver='eigen', shrinkage=lam
        w = _whitener(_within_scatter(z, means, codes), lam)
        between = _shrink(between, lam)
    else:  # sklearn solver='svd': no shrinkage, directions without within-class variance dropped
        w = _whitener(_within_scatter(z, means, codes), None)
    post = _lda_posteriors(z, means, w, log_priors)
    _, q = torch.linalg.eigh(w.T @ between @ w)
    low = z @ w @ q.flip(1)[:, : min(c - 1, q.shape[1])]
    seli = torch.linalg.svdvals(low - low.mean(0)).sum()
    ncc = post.gather(1, codes[:, None]).mean()
    order = torch.argsort(codes, stable=True)
    blocks = post[order].split(stats.counts.to(torch.int64).tolist())
    vc = torch.stack([torch.linalg.svdvals(b).sum() for b in blocks]).sum().log()
    return {"seli": float(seli), "ncc": float(ncc), "vc": float(vc)}


def _knn_accuracy(stats: LayerStats, k: int | None = None) -> float:
    k = knn_k(stats, None) if k is None else _check_neighbours(k, stats.n)
    x, codes, c = stats.x - stats.x.mean(0), stats.codes, stats.n_classes
    correct = 0
    for rows, idx in _nearest(x, k):
        votes = codes[idx]  # (B, k), nearest first
        counts = torch.zeros(len(rows), c, device=x.device).scatter_add_(
            1, votes, torch.ones(votes.shape, device=x.device)
        )
        position = torch.arange(k, device=x.device).expand_as(votes).to(torch.float32)
        first = torch.full((len(rows), c), float(k), device=x.device).scatter_reduce_(
            1, votes, position, reduce="amin"
        )
        pred = (counts * (k + 1) - first).argmax(1)  # most votes, then the nearest member
        correct += int((pred == codes[rows]).sum())
    return correct / stats.n


# ---------------------------------------------------------------- helpers


def _check_neighbours(k: int, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer; got {type(k).__name__}")
    if not 1 <= k < n:
        raise ValueError(f"k must be >= 1 and smaller than the number of samples ({n}); got k={k}")
    return int(k)


def _nearest(x: torch.Tensor, k: int):
    """(rows, indices of their k nearest other samples, nearest first), block by block."""
    n = x.shape[0]
    sq = (x * x).sum(1)
    block = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, n, block):
        rows = torch.arange(start, min(start + block, n), device=x.device)
        scores = torch.addmm(sq, x[rows], x.T, alpha=-2.0)  # ||x_j||^2 - 2 x_i.x_j
        scores[torch.arange(len(rows), device=x.device), rows] = float("inf")
        yield rows, scores.topk(k, dim=1, largest=False, sorted=True).indices


def _pca_scores(stats: LayerStats, pca_dim: int) -> torch.Tensor:
    """Centred features on their first `pca_dim` principal axes (zero-variance axes dropped)."""
    lam, v = stats.cov_spectrum
    keep = int(rank_cut(lam, (stats.n, stats.d)).sum())
    return stats.centred @ v[:, : min(pca_dim, keep)]


def _within_scatter(x: torch.Tensor, means: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """sum_c pi_c Cov_c (class covariances with 1/n_c): the within-class scatter / N."""
    return gram(x - means[codes]) / x.shape[0]


def _shrink(cov: torch.Tensor, lam: float) -> torch.Tensor:
    """(1 - lam) cov + lam (tr cov / D) I, sklearn's shrunk_covariance."""
    out = (1 - lam) * cov
    out.diagonal().add_(lam * float(cov.diagonal().mean()))
    return out


def _whitener(cov: torch.Tensor, lam: float | None) -> torch.Tensor:
    """W (D, r) with W^T cov_lam W = I: cov shrunk by lam, or (lam None) its pseudo-inverse root.

    Shrinkage keeps the eigenvectors, so it is applied to the eigenvalues of cov: the
    regularised floor lam tr(cov) / D stays exact even where cov is singular.
    """
    s, u = torch.linalg.eigh(cov)
    s = s.clamp_min(0)
    if lam is None:
        keep = rank_cut(s, tuple(cov.shape))
        s, u = s[keep], u[:, keep]
    else:
        s = (1 - lam) * s + lam * float(cov.diagonal().mean())
    if not bool((s > 0).any()):
        raise ValueError("features must vary within the classes (the within-class covariance is 0)")
    return u / s.sqrt()


def _lda_posteriors(
    x: torch.Tensor, means: torch.Tensor, w: torch.Tensor, log_priors: torch.Tensor
) -> torch.Tensor:
    """softmax_c(x S^-1 m_c - m_c S^-1 m_c / 2 + log pi_c), S^-1 = W W^T."""
    z, m = x @ w, means @ w
    return (z @ m.T - 0.5 * (m * m).sum(1) + log_priors).softmax(1)


def _power_sigma(a: torch.Tensor) -> float:
    """Largest eigenvalue of the PSD `a` as the SFDA code estimates it (3 rounds, from a 1)."""
    x = a.sum(1)
    for _ in range(_SFDA_POWER_ITERATIONS):
        t = a @ x
        if not bool(t.norm() > 0):  # a start in the null space: the code would give NaN
            return float(torch.linalg.eigvalsh(a)[-1])
        y = t / t.norm()
        t = a @ y
        x = t / t.norm()
    return float(x @ a @ y)


def _average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..M of `v`, ties sharing their mean rank (scipy.stats.rankdata 'average')."""
    order = torch.argsort(v)
    _, inverse, counts = torch.unique_consecutive(v[order], return_inverse=True, return_counts=True)
    last = counts.cumsum(0).to(torch.float64)
    ranks = torch.empty(len(v), dtype=torch.float64, device=v.device)
    ranks[order] = (last - (counts - 1) / 2)[inverse]
    return ranks


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def _minmax(t: np.ndarray) -> np.ndarray:
    span = t.max() - t.min()
    return np.zeros_like(t) if span == 0 else (t - t.min()) / span
