"""Separability of a layer's embedding: k-means NMI, kNN purity, 1-NN, linear probe.

Used by Chapter 1 (separability) and, for the probe, Chapter 3 (tunnel effect).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._stats import LayerStats
from ._validate import ArrayLike, as_features, check_k, check_positive_int, encode_labels


def nmi_kmeans(
    features: ArrayLike,
    labels: ArrayLike,
    n_clusters: int | None = None,
    random_state: int = 0,
    n_init: int = 10,
) -> float:
    """NMI (arithmetic, as sklearn) between k-means clusters (k = #classes by default) and `labels`.

    k-means++ with `n_init` restarts run as one batch, then Lloyd; Chapter 1 (separability).
    """
    return _nmi(
        LayerStats(features, labels),
        n_clusters=n_clusters,
        random_state=random_state,
        n_init=n_init,
    )


def knn_purity(features: ArrayLike, labels: ArrayLike, k: int) -> float:
    """Mean fraction of each sample's k nearest neighbours sharing its label.

    Euclidean, self excluded.

    The separability paper uses k = images per class; Chapter 1 (separability).
    """
    return _knn(LayerStats(features, labels), k=k)


def loo_1nn(features: ArrayLike, labels: ArrayLike) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy (Euclidean); Chapter 1 (separability)."""
    return _loo_1nn(LayerStats(features, labels))


def linear_probe(
    train_x: ArrayLike,
    train_y: ArrayLike,
    test_x: ArrayLike,
    test_y: ArrayLike,
    epochs: int = 30,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    label_smoothing: float = 0.1,
    batch_size: int = 256,
    random_state: int = 0,
) -> float:
    """Top-1 test accuracy of a softmax-regression probe (tunnel-effect protocol).

    Protocol: standardise with the training mean/std; zero-initialised weights; AdamW at a constant
    `lr` (betas 0.9/0.999, eps 1e-8); mean cross-entropy with `label_smoothing`; `epochs` passes
    of shuffled mini-batches (shuffle seeded by `random_state`); float32. Test labels unseen in
    training count as errors.
    Few samples per class mean few steps per epoch: raise `epochs` (or lower `batch_size`).
    Chapter 3 (tunnel effect) and Chapter 1 (separability).
    """
    xtr = as_features(train_x, "train_x")
    xte = as_features(test_x, "test_x")
    if xte.shape[1] != xtr.shape[1]:
        raise ValueError(
            f"test_x must have {xtr.shape[1]} columns like train_x; got {xte.shape[1]}"
        )
    ytr, classes = encode_labels(train_y, len(xtr), xtr.device, "train_y", "train_x")
    yte, test_classes = encode_labels(
        test_y, len(xte), xtr.device, "test_y", "test_x", min_classes=1
    )
    pos = torch.searchsorted(classes, test_classes).clamp_max(len(classes) - 1)
    in_train = torch.where(classes[pos] == test_classes, pos, -1)  # -1: a class the probe never saw
    return _probe(
        xtr,
        ytr,
        xte.to(xtr.device),
        in_train[yte],
        len(classes),
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        label_smoothing=label_smoothing,
        batch_size=batch_size,
        random_state=random_state,
    )


def _nmi(
    stats: LayerStats, n_clusters: int | None = None, random_state: int = 0, n_init: int = 10
) -> float:
    k = stats.n_classes if n_clusters is None else check_positive_int(n_clusters, "n_clusters")
    if k > stats.n:
        raise ValueError(f"n_clusters must not exceed the number of samples ({stats.n}); got {k}")
    pred = kmeans(
        stats.x, k, n_init=check_positive_int(n_init, "n_init"), random_state=random_state
    )
    return nmi_score(stats.codes, pred)


def knn_k(stats: LayerStats, k: int | None) -> int:
    """Validated k; None means the smallest class size - 1 (all other members of a class)."""
    smallest = int(stats.counts.min())
    if k is None and smallest < 2:
        raise ValueError("labels need at least 2 samples in every class for kNN purity")
    return smallest - 1 if k is None else check_k(k, smallest)


def _knn(stats: LayerStats, k: int | None = None) -> float:
    k = knn_k(stats, k)
    return float(stats.neighbour_hits((k,))[k].mean())


def _loo_1nn(stats: LayerStats) -> float:
    return float(stats.neighbour_hits((1,))[1].mean())


def _probe_split(
    stats: LayerStats, test_fraction: float = 0.5, random_state: int = 0, **probe_options
) -> float:
    """Linear probe on a stratified random split of one layer (used by `layerwise`)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
    test = stratified_mask(stats.codes, test_fraction, random_state)
    if int(torch.bincount(stats.codes[~test], minlength=stats.n_classes).min()) == 0:
        raise ValueError("test_fraction leaves a class without training samples; lower it")
    return _probe(
        stats.x[~test],
        stats.codes[~test],
        stats.x[test],
        stats.codes[test],
        stats.n_classes,
        random_state=random_state,
        **probe_options,
    )


def nmi_score(true: torch.Tensor, pred: torch.Tensor) -> float:
    """Normalised mutual information with arithmetic-mean normalisation (sklearn's default)."""
    a, b = int(true.max()) + 1, int(pred.max()) + 1
    joint = torch.bincount(true * b + pred, minlength=a * b).reshape(a, b).to(torch.float64)
    joint = joint / joint.sum()
    pa, pb = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mi = (joint[nz] * (joint[nz].log() - (pa[:, None] * pb[None, :])[nz].log())).sum().clamp_min(0)
    h_a = -(pa[pa > 0] * pa[pa > 0].log()).sum()
    h_b = -(pb[pb > 0] * pb[pb > 0].log()).sum()
    if h_a == 0 and h_b == 0:
        return 1.0
    return float(mi / ((h_a + h_b) / 2))


def kmeans(
    x: torch.Tensor,
    n_clusters: int,
    n_init: int = 10,
    random_state: int = 0,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> torch.Tensor:
    """Cluster ids from the lowest-inertia of `n_init` k-means++ / Lloyd restarts run as one batch.

    Random draws come from a CPU generator seeded by `random_state`, so CPU and GPU agree.
    Lloyd stops per restart when the squared centre shift is at most tol * mean feature variance
    (sklearn's rule); an empty cluster keeps its previous centre.
    """
    x = x - x.mean(0)
    gen = torch.Generator().manual_seed(random_state)
    centres = _kmeans_plus_plus(x, n_clusters, n_init, gen)
    centres = _lloyd(x, centres, max_iter, tol * float(x.var(0).mean()))
    scores = _centre_scores(x, centres)
    best = scores.min(2).values.sum(1).argmin()
    return scores[best].argmin(1)


def _centre_scores(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(R, N, k) squared distances to each restart's centres, minus the constant ||x||^2."""
    r, k, d = centres.shape
    flat = centres.reshape(r * k, d)
    scores = torch.addmm((flat * flat).sum(1), x, flat.T, alpha=-2.0)
    return scores.reshape(-1, r, k).transpose(0, 1)


def _kmeans_plus_plus(x: torch.Tensor, k: int, n_init: int, gen: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ (2 + log k candidates per step, as sklearn) for all restarts at once."""
    n, dev = x.shape[0], x.device
    trials = 2 + int(math.log(k))
    sq = (x * x).sum(1)
    rows = torch.arange(n_init, device=dev)
    chosen = torch.randint(n, (n_init,), generator=gen).to(dev)
    closest = (sq[None, :] + sq[chosen, None] - 2 * x[chosen] @ x.T).clamp_min(0)  # (R, N)
    picked = [chosen]
    for _ in range(1, k):
        cum = closest.to(torch.float64).cumsum(1)
        draws = torch.rand(n_init, trials, generator=gen, dtype=torch.float64).to(dev) * cum[:, -1:]
        cand = torch.searchsorted(cum, draws).clamp_max(n - 1)  # (R, T)
        flat = cand.reshape(-1)
        dist = (
            (sq[flat, None] + sq[None, :] - 2 * x[flat] @ x.T)
            .clamp_min(0)
            .reshape(n_init, trials, n)
        )
        dist = torch.minimum(dist, closest[:, None, :])
        best = dist.sum(2).argmin(1)
        closest = dist[rows, best]
        picked.append(cand[rows, best])
    return x[torch.stack(picked, 1)]  # (R, k, D)


def _lloyd(x: torch.Tensor, centres: torch.Tensor, max_iter: int, tol: float) -> torch.Tensor:
    """Lloyd iterations on the restarts still moving (shift > tol); converged ones drop out."""
    centres = centres.clone()
    active = torch.arange(len(centres), device=x.device)
    for _ in range(max_iter):
        current = centres[active]
        labels = _centre_scores(x, current).argmin(2)  # (A, N)
        new = _centre_means(x, labels, current)
        centres[active] = new
        active = active[((new - current) ** 2).sum((1, 2)) > tol]
        if len(active) == 0:
            break
    return centres


def _centre_means(x: torch.Tensor, labels: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Cluster means of every restart via one indicator matmul; empty clusters keep their centre."""
    r, k, _ = old.shape
    members = torch.zeros(x.shape[0], r * k, dtype=x.dtype, device=x.device)
    members.scatter_(1, (labels + torch.arange(r, device=x.device)[:, None] * k).T, 1.0)
    counts = members.sum(0).reshape(r, k, 1)
    sums = (members.T @ x).reshape(r, k, -1)
    return torch.where(counts > 0, sums / counts.clamp_min(1), old)


def stratified_mask(codes: torch.Tensor, fraction: float, random_state: int) -> torch.Tensor:
    """Boolean mask holding round(fraction * n_c) (at least 1) random samples of every class."""
    gen = torch.Generator().manual_seed(random_state)
    perm = torch.randperm(len(codes), generator=gen).to(codes.device)
    order = perm[torch.argsort(codes[perm], stable=True)]
    counts = torch.bincount(codes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(codes)
    rank[order] = torch.arange(len(codes), device=codes.device) - starts[codes[order]]
    n_test = (counts.to(torch.float64) * fraction).round().clamp_min(1).to(codes.dtype)
    return rank < n_test[codes]


def _probe(
    xtr: torch.Tensor,
    ytr: torch.Tensor,
    xte: torch.Tensor,
    yte: torch.Tensor,
    n_classes: int,
    random_state: int = 0,
    **fit_options,
) -> float:
    xtr, xte = xtr.to(torch.float32), xte.to(torch.float32)
    std, mean = torch.std_mean(xtr, 0, correction=0)
    std = std.clamp_min(1e-8)
    weight, bias = fit_softmax_regression(
        (xtr - mean).div_(std), ytr, n_classes, random_state=random_state, **fit_options
    )
    pred = torch.addmm(bias, (xte - mean).div_(std), weight.T).argmax(1)
    return float((pred == yte).to(torch.float64).mean())


def fit_softmax_regression(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    epochs: int = 30,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    label_smoothing: float = 0.1,
    batch_size: int = 256,
    random_state: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (C, D), bias) from zero init: closed-form gradients p - q (q: smoothed targets), AdamW.

    Weight and bias are one (C, D + 1) matrix against x with a column of ones (AdamW treats every
    entry alike, bias included, as torch.optim.AdamW on an nn.Linear), so a step is two matrix
    products and a few element-wise updates.
    """
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    targets = (
        F.one_hot(y, n_classes).to(x.dtype) * (1 - label_smoothing) + label_smoothing / n_classes
    )
    x = torch.cat([x, x.new_ones(len(x), 1)], 1)
    w = x.new_zeros(n_classes, x.shape[1])
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    beta1, beta2, eps = 0.9, 0.999, 1e-8  # torch.optim.AdamW's defaults
    gen = torch.Generator().manual_seed(random_state)
    x_epoch, q_epoch = torch.empty_like(x), torch.empty_like(targets)  # reused: no page faults
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen).to(x.device)
        torch.index_select(x, 0, perm, out=x_epoch)
        torch.index_select(targets, 0, perm, out=q_epoch)
        for xb, qb in zip(x_epoch.split(batch_size), q_epoch.split(batch_size), strict=True):
            step += 1
            g = (xb @ w.T).softmax(1).sub_(qb)
            grad = torch.addmm(w, g.T, xb, beta=0, alpha=1 / len(xb))  # mean gradient
            # AdamW (Loshchilov & Hutter 2019) in place, as torch.optim.AdamW
            w.mul_(1 - lr * weight_decay)
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = v.sqrt().div_(math.sqrt(1 - beta2**step)).add_(eps)
            w.addcdiv_(m, denom, value=-lr / (1 - beta1**step))
    return w[:, :-1], w[:, -1]
