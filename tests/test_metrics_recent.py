"""SFDA, NLEEP, PARC, NCTI and kNN accuracy against straightforward numpy/scipy/sklearn versions."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from helpers import metrics as M
from helpers.device import one_thread


def gaussian_classes(n=240, d=12, c=4, sep=1.0, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, sep, (c, d))
    y = np.repeat(np.arange(c), n // c)
    x = means[y] + rng.normal(size=(len(y), d)) * rng.uniform(0.5, 1.5, d)
    return x, y


@pytest.fixture(scope="module", autouse=True)
def one_thread_everywhere():
    """Torch, BLAS and OpenMP on one thread (the references' sklearn too): tiny problems."""
    with one_thread(), threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def data():
    return gaussian_classes()


def rotation(d, seed):
    return np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))[0]


# ---------------------------------------------------------------- independent references


def ref_sfda(x, y):
    """TencentARC/SFDA's SFDA_Score, written out: generalised eigenproblem, coef = M V V^T."""
    x = np.array(x, dtype=float)
    classes = np.unique(y)
    n, d = x.shape
    priors = np.array([np.mean(y == k) for k in classes])

    def within(x):
        return sum(p * np.cov(x[y == k].T, bias=True) for p, k in zip(priors, classes))

    def shrunk(cov, lam):
        return (1 - lam) * cov + lam * np.trace(cov) / d * np.eye(d)

    def posteriors(x, lam):
        means = np.array([x[y == k].mean(0) for k in classes])
        sw = shrunk(within(x), lam)
        sb = shrunk(np.cov(x.T, bias=True), lam) - sw
        _, v = scipy.linalg.eigh(sb, sw)
        coef = means @ v @ v.T
        logits = x @ coef.T - 0.5 * np.diag(means @ coef.T) + np.log(priors)
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    a = within(x)
    v = a.sum(1)
    for _ in range(3):  # the reference's power iteration
        w = a @ v
        w /= np.linalg.norm(w)
        v = a @ w
        v /= np.linalg.norm(v)
    lam = max(np.exp(-5 * (v @ a @ w)), 1e-10)
    prob = posteriors(x, lam)
    prob = np.exp(prob) / np.exp(prob).sum(1, keepdims=True)
    means = np.array([x[y == k].mean(0) for k in classes])
    mixed = x.copy()
    for i, k in enumerate(classes):
        other = np.delete(means, i, axis=0).mean(0)
        p = prob[y == k, i][:, None]
        mixed[y == k] = p * x[y == k] + (1 - p) * other
    prob = posteriors(mixed, lam)
    return float(np.mean([prob[i, np.searchsorted(classes, y[i])] for i in range(n)]))


def ref_nleep(x, y, ratio=5, seed=0):
    z = PCA(n_components=0.8, svd_solver="full").fit_transform(x)
    classes = np.unique(y)
    gmm = GaussianMixture(n_components=ratio * len(classes), random_state=seed).fit(z)
    post = gmm.predict_proba(z)
    joint = np.zeros((len(classes), post.shape[1]))
    for p, label in zip(post, y):
        joint[np.searchsorted(classes, label)] += p / len(y)
    cond = joint / joint.sum(0)
    return float(np.mean([np.log(p @ cond[np.searchsorted(classes, label)])
                          for p, label in zip(post, y)]))


def ref_parc(x, y, dims=32):
    """dbolya/parc's PARC with an exact PCA signed by its scores and an exactly two-valued label
    dissimilarity (np.corrcoef leaves 2e-16 on some same-class pairs, breaking ties at random)."""
    u, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
    u = u[:, : min(dims, x.shape[1])] * s[: min(dims, x.shape[1])]
    u *= np.sign(u[np.abs(u).argmax(0), np.arange(u.shape[1])])  # sklearn < 1.5's svd_flip
    z = StandardScaler().fit_transform(u)
    onehot = np.eye(len(np.unique(y)))[np.unique(y, return_inverse=True)[1]]
    upper = np.triu_indices(len(y), 1)
    rdm_f = (1 - np.corrcoef(z))[upper]
    rdm_y = np.round(1 - np.corrcoef(onehot), 12)[upper]
    return 100 * scipy.stats.spearmanr(rdm_f, rdm_y)[0]


def ref_ncti(x, y, dims=64):
    """BUserName/NCTI's NCTI_Score with sklearn's PCA and LDA."""
    y = np.unique(y, return_inverse=True)[1]
    pca = PCA(n_components=min(dims, x.shape[1]), svd_solver="full")
    x = pca.fit_transform(x)
    lam = max(np.exp(-pca.explained_variance_[:32].sum()), 1e-10)
    if lam == 1e-10:
        clf = LinearDiscriminantAnalysis(solver="svd")
    else:
        clf = LinearDiscriminantAnalysis(solver="eigen", shrinkage=float(lam))
    low = clf.fit_transform(x, y)
    low = low - low.mean(0)
    prob = clf.predict_proba(x)
    vc = sum(np.linalg.norm(prob[y == k], ord="nuc") for k in np.unique(y))
    return {
        "seli": np.linalg.norm(low, ord="nuc"),
        "ncc": prob[np.arange(len(y)), y].mean(),
        "vc": np.log(vc),
    }


def ref_knn_accuracy(x, y, k):
    """Leave-one-out majority vote, ties to the tied class whose member comes first."""
    hits = 0
    for i in range(len(y)):
        dist = np.linalg.norm(x - x[i], axis=1)
        dist[i] = np.inf
        near = y[np.argsort(dist, kind="stable")[:k]]
        votes = Counter(near)
        top = max(votes.values())
        pred = next(label for label in near if votes[label] == top)
        hits += pred == y[i]
    return hits / len(y)


# ---------------------------------------------------------------- against the references


def test_sfda_matches_the_reference_with_light_and_strong_shrinkage(data):
    x, y = data
    for scale in (1.0, 0.1):  # lambda at the 1e-10 floor, and lambda = exp(-5 sigma) ~ 0.4
        assert M.sfda(scale * x, y) == pytest.approx(ref_sfda(scale * x, y), rel=1e-9)


def test_sfda_posteriors_do_not_depend_on_the_fisher_eigenproblem(data):
    """The reference's M V V^T over all eigenvectors is M S_W^-1 (what we compute)."""
    x, y = gaussian_classes(n=120, d=30, c=3, seed=3)  # D close to N: conditioning matters
    assert M.sfda(x, y) == pytest.approx(ref_sfda(x, y), rel=1e-7)


def test_nleep_matches_pca_gmm_and_leep_loop():
    x, y = gaussian_classes(n=150, d=10, c=3, seed=1)
    assert M.nleep(x, y) == pytest.approx(ref_nleep(x, y), rel=1e-7)
    assert M.nleep(x, y, component_ratio=2, random_state=3) == pytest.approx(
        ref_nleep(x, y, ratio=2, seed=3), rel=1e-7
    )


@pytest.mark.parametrize("d, dims", [(12, 32), (40, 32), (40, 5)])
def test_parc_matches_corrcoef_and_scipy_spearman(d, dims):
    x, y = gaussian_classes(n=180, d=d, c=3, seed=d)
    assert M.parc(x, y, pca_dim=dims) == pytest.approx(ref_parc(x, y, dims), rel=1e-9)


@pytest.mark.parametrize("scale", [1.0, 0.15, 4.0])  # eigen solver (lambda 1e-6, ~0.5), svd solver
def test_ncti_terms_match_sklearn_lda_as_in_the_reference(scale, data):
    x, y = data
    ours, ref = M.ncti(scale * x, y), ref_ncti(scale * x, y)
    assert ours == pytest.approx(ref, rel=1e-8)


def test_ncti_zoo_is_the_reference_min_max_combination():
    zoo = [{"seli": 3.0, "ncc": 0.5, "vc": 2.0}, {"seli": 5.0, "ncc": 0.9, "vc": 1.0},
           {"seli": 4.0, "ncc": 0.7, "vc": 1.5}]
    expected = [0 + 0 - 1, 1 + 1 - 0, 0.5 + 0.5 - 0.5]
    np.testing.assert_allclose(M.ncti_zoo(zoo), expected)
    flat = [{"seli": 1.0, "ncc": 0.5, "vc": v} for v in (1.0, 2.0)]
    np.testing.assert_allclose(M.ncti_zoo(flat), [0.0, -1.0])  # an equal term scales to 0


@pytest.mark.parametrize("k", [1, 4, 7])
def test_knn_accuracy_matches_the_vote_loop(k, data):
    x, y = data
    assert M.knn_accuracy(x, y, k) == pytest.approx(ref_knn_accuracy(x, y, k), abs=1e-12)


def test_knn_accuracy_breaks_ties_towards_the_nearest_class():
    x = np.array([[0.0], [1.0], [-2.0], [5.0], [6.0], [-7.0]])
    y = np.array([0, 1, 2, 1, 2, 0])  # sample 0: neighbours 1 (class 1) then 2 (class 2), k = 2
    assert M.knn_accuracy(x, y, 2) == ref_knn_accuracy(x, y, 2)
    assert M.knn_accuracy(x, y[[0, 2, 1, 4, 3, 5]], 2) == ref_knn_accuracy(x, y[[0, 2, 1, 4, 3, 5]], 2)


def test_knn_accuracy_with_k_1_is_loo_1nn(data):
    x, y = data
    assert M.knn_accuracy(x, y, 1) == M.loo_1nn(x, y)


# ---------------------------------------------------------------- properties

SCORES = {
    "sfda": M.sfda,
    "nleep": lambda x, y: M.nleep(x, y, component_ratio=2),
    "parc": lambda x, y: M.parc(x, y, pca_dim=8),
    "ncti.seli": lambda x, y: M.ncti(x, y)["seli"],
    "ncti.ncc": lambda x, y: M.ncti(x, y)["ncc"],
    "ncti.vc": lambda x, y: M.ncti(x, y)["vc"],
    "knn_acc": lambda x, y: M.knn_accuracy(x, y, 5),
}


@pytest.mark.parametrize("name", list(SCORES))
def test_label_ids_do_not_change_the_score(name, data):
    x, y = data
    renamed = np.array([17, -3, 250, 4])[y]
    assert SCORES[name](x, renamed) == pytest.approx(SCORES[name](x, y), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", list(SCORES))
def test_rotation_invariance(name, data):
    x, y = data
    x = 3 * x  # SFDA's power-iteration start depends on the basis; at the lambda floor it is moot
    q = rotation(x.shape[1], 16)
    assert SCORES[name](x @ q, y) == pytest.approx(SCORES[name](x, y), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", ["parc", "knn_acc", "ncti.seli", "ncti.ncc", "ncti.vc"])
def test_scale_invariance(name, data):
    x, y = data
    x = 3 * x  # NCTI: at the shrinkage floor (sklearn's svd solver) the terms are scale-free
    assert SCORES[name](7.5 * x, y) == pytest.approx(SCORES[name](x, y), rel=1e-7)


@pytest.mark.parametrize("name", ["sfda", "nleep", "parc", "ncti.ncc", "ncti.seli", "knn_acc"])
def test_better_separated_classes_score_higher(name):
    scores = [SCORES[name](*gaussian_classes(sep=sep, seed=5)) for sep in (0.3, 1.0, 3.0)]
    assert scores[0] < scores[1] < scores[2]


def test_ncti_zoo_ranks_better_separated_classes_first():
    zoo = [M.ncti(*gaussian_classes(sep=sep, seed=5)) for sep in (0.3, 1.0, 3.0, 0.6)]
    assert list(np.argsort(M.ncti_zoo(zoo))) == [0, 3, 1, 2]


def test_collapsed_classes_reach_the_extremes():
    x, y = gaussian_classes(sep=30.0, seed=2)
    x = x + 1e-3 * np.random.default_rng(0).normal(size=x.shape)
    assert M.sfda(x, y) == pytest.approx(1.0, abs=1e-6)
    assert M.knn_accuracy(x, y, 3) == 1.0
    assert M.ncti(x, y)["ncc"] == pytest.approx(1.0, abs=1e-6)
    # PARC's ceiling: every same-class pair correlates more than every other pair (C - 1 dims,
    # so that the standardised noise directions do not blur the correlations)
    same = np.sort((y[:, None] == y[None, :])[np.triu_indices(len(y), 1)]).astype(float)
    ceiling = 100 * np.corrcoef(np.arange(len(same)), same)[0, 1]
    assert M.parc(x, y, pca_dim=3) == pytest.approx(ceiling, rel=1e-9)


@pytest.mark.parametrize("name", list(SCORES))
def test_float32_float64_and_tensor_inputs_agree(name, data):
    x, y = data
    ref = SCORES[name](x, y)
    assert SCORES[name](torch.as_tensor(x), torch.as_tensor(y)) == ref
    assert SCORES[name](x.astype(np.float32), y) == pytest.approx(ref, rel=1e-4, abs=1e-6)


def test_layerwise_rows_match_the_standalone_functions(data):
    x, y = data
    table = M.layerwise({"a": x, "b": x[:, ::2]}, y,
                        metrics=["sfda", "nleep", "parc", "ncti", "knn_acc"], k=5, pca_dim=6)
    value = table.set_index(["layer", "metric"])["value"]
    for layer, feats in (("a", x), ("b", x[:, ::2])):
        assert value[layer, "sfda"] == M.sfda(feats, y)
        assert value[layer, "nleep"] == M.nleep(feats, y)
        assert value[layer, "parc"] == M.parc(feats, y, pca_dim=6)
        assert value[layer, "knn_acc"] == M.knn_accuracy(feats, y, 5)
        for term, v in M.ncti(feats, y, pca_dim=6).items():
            assert value[layer, f"ncti.{term}"] == v
    assert {"sfda", "nleep", "parc", "ncti", "knn_acc"} <= set(M.available())


# ---------------------------------------------------------------- validation


def test_options_are_validated_by_name(data):
    x, y = data
    with pytest.raises(ValueError, match="component_ratio"):
        M.nleep(x, y, component_ratio=100)
    with pytest.raises(ValueError, match="component_ratio"):
        M.nleep(x, y, component_ratio=0)
    with pytest.raises(ValueError, match="pca_variance"):
        M.nleep(x, y, pca_variance=1.0)
    with pytest.raises(ValueError, match="pca_dim"):
        M.parc(x, y, pca_dim=0)
    with pytest.raises(ValueError, match="pca_dim"):
        M.ncti(x, y, pca_dim=2.5)
    with pytest.raises(ValueError, match="k must be"):
        M.knn_accuracy(x, y, len(y))
    with pytest.raises(TypeError, match="k must be an integer"):
        M.knn_accuracy(x, y, 2.0)
    with pytest.raises(ValueError, match="NCTI terms"):
        M.ncti_zoo([{"seli": 1.0, "ncc": 0.5}])


@pytest.mark.parametrize("f", list(SCORES.values()))
def test_bad_inputs_name_the_argument(f, data):
    x, y = data
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="features contain NaN"):
        f(bad, y)
    with pytest.raises(ValueError, match="features and labels must have the same length"):
        f(x, y[:-1])
    with pytest.raises(TypeError, match="labels must hold integer"):
        f(x, y.astype(float))
    with pytest.raises(ValueError, match="labels must contain at least 2 classes"):
        f(x, np.zeros_like(y))


def test_parc_needs_a_repeated_class_and_two_directions():
    with pytest.raises(ValueError, match="labels must put at least two samples"):
        M.parc(np.random.default_rng(0).normal(size=(5, 3)), np.arange(5))
    with pytest.raises(ValueError, match="2 directions"):
        M.parc(np.arange(10.0)[:, None] * [1.0, 2.0], np.arange(10) % 2)


def test_sfda_rejects_features_without_within_class_variance():
    x = np.repeat(np.eye(3), 4, axis=0)
    with pytest.raises(ValueError, match="vary within the classes"):
        M.sfda(x, np.repeat(np.arange(3), 4))


def test_layerwise_each_gives_every_metric_its_own_options_in_few_calls(monkeypatch):
    import importlib

    L = importlib.import_module("helpers.metrics.layerwise")  # the package exports the function

    x, y = gaussian_classes(n=120, d=40, c=4, seed=3)
    calls = []
    real = L.layerwise
    monkeypatch.setattr(L, "layerwise", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    table = L.layerwise_each({"f": x}, y, {"gbc": {"pca_dim": 8}, "parc": {"pca_dim": 32},
                                           "knn_acc": {"k": 3}, "sfda": {}})
    value = table.set_index("metric")["value"]
    assert value["gbc"] == pytest.approx(M.gbc(x, y, pca_dim=8), rel=1e-12)
    assert value["parc"] == pytest.approx(M.parc(x, y, pca_dim=32), rel=1e-12)
    assert value["knn_acc"] == pytest.approx(M.knn_accuracy(x, y, k=3), rel=1e-12)
    assert value["sfda"] == pytest.approx(M.sfda(x, y), rel=1e-12)
    assert calls == [["gbc", "knn_acc", "sfda"], ["parc"]]  # pca_dim 8 vs 32: two calls
