"""helpers.metrics against independent computations (sklearn, scipy, explicit numpy loops)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.optimize
import scipy.stats
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import normalized_mutual_info_score
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler
from test_metrics_recent import SCORES as RECENT
from test_metrics_recent import gaussian_classes

from bench.metrics import ref_probe_adamw
from helpers import metrics as M
from helpers.device import one_thread
from helpers.metrics.separability import fit_softmax_regression, nmi_score


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small ops on a shared 2-core runner are fastest single-threaded; restored afterwards."""
    with one_thread():
        yield


@pytest.fixture(scope="module")
def data():
    return gaussian_classes()


# ---------------------------------------------------------------- independent references


def ref_log_evidence(f, t, alpha, beta):
    """log N(t; 0, I/beta + F F^T/alpha) / N, straight from the marginal likelihood."""
    n = len(t)
    cov = np.eye(n) / beta + f @ f.T / alpha
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (n * np.log(2 * np.pi) + logdet + t @ np.linalg.solve(cov, t)) / n


def ref_logme_optimised(x, y):
    best = []
    for c in np.unique(y):
        t = (y == c).astype(float)
        res = scipy.optimize.minimize(
            lambda p, t=t: -ref_log_evidence(x, t, *np.exp(p)),
            x0=np.zeros(2),
            method="Nelder-Mead",
            options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 4000},
        )
        best.append(-res.fun)
    return float(np.mean(best))


def ref_logme_per_class_svd(x, y):
    """The methods page's fixed point (book/methods.md, section 2), one SVD per class, explicit m
    and residual."""
    n, d = x.shape
    out = []
    for c in np.unique(y):
        t = (y == c).astype(float)
        u, s, vt = np.linalg.svd(x, full_matrices=False)
        sigma = s**2
        alpha, beta = 1.0, 1.0
        for _ in range(11):
            gamma = np.sum(beta * sigma / (alpha + beta * sigma))
            m = vt.T @ (beta * s / (alpha + beta * sigma) * (u.T @ t))
            new_alpha = gamma / (m @ m)
            new_beta = (n - gamma) / np.sum((x @ m - t) ** 2)
            done = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 1e-3
            alpha, beta = new_alpha, new_beta
            if done:
                break
        m = vt.T @ (beta * s / (alpha + beta * sigma) * (u.T @ t))
        logdet = np.sum(np.log(alpha + beta * sigma)) + (d - len(s)) * np.log(alpha)
        ev = (
            n / 2 * np.log(beta)
            + d / 2 * np.log(alpha)
            - n / 2 * np.log(2 * np.pi)
            - beta / 2 * np.sum((x @ m - t) ** 2)
            - alpha / 2 * m @ m
            - logdet / 2
        )
        out.append(ev / n)
    return float(np.mean(out))


def ref_nc1(x, y):
    classes = np.unique(y)
    mu_g = x.mean(0)
    sw = np.zeros((x.shape[1],) * 2)
    sb = np.zeros_like(sw)
    for c in classes:
        xc = x[y == c]
        sw += np.cov(xc.T, bias=True) / len(classes)
        diff = xc.mean(0) - mu_g
        sb += np.outer(diff, diff) / len(classes)
    return float(np.trace(sw @ np.linalg.pinv(sb, rcond=1e-10)) / len(classes))


def ref_h_score(x, y):
    def cov(a):
        a = a - a.mean(0)
        return a.T @ a / (len(a) - 1)

    g = np.zeros_like(x)
    for c in np.unique(y):
        g[y == c] = x[y == c].mean(0)
    return float(np.trace(np.linalg.pinv(cov(x), rcond=1e-15) @ cov(g)))


def ref_bhattacharyya(x, y, pca_dim):
    z = PCA(n_components=pca_dim).fit_transform(x)
    classes = np.unique(y)
    stats = [(z[y == c].mean(0), np.maximum(z[y == c].var(0), 1e-4)) for c in classes]
    bc = np.zeros((len(classes),) * 2)
    for i, (m1, v1) in enumerate(stats):
        for j, (m2, v2) in enumerate(stats):
            if i != j:
                v = (v1 + v2) / 2
                db = np.sum((m1 - m2) ** 2 / v) / 8 + 0.5 * (
                    np.sum(np.log(v)) - 0.5 * np.sum(np.log(v1)) - 0.5 * np.sum(np.log(v2))
                )
                bc[i, j] = np.exp(-db)
    return bc


def ref_knn(x, y, k):
    idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)
    hits = []
    for i, row in enumerate(idx):
        row = [j for j in row if j != i][:k]
        hits.append(np.mean(y[row] == y[i]))
    return float(np.mean(hits))


def ref_leep(probs, y):
    joint = np.zeros((y.max() + 1, probs.shape[1]))
    for i in range(len(y)):
        joint[y[i]] += probs[i] / len(y)
    cond = joint / joint.sum(0, keepdims=True)
    return float(np.mean([np.log(probs[i] @ cond[y[i]]) for i in range(len(y))]))


def ref_nce(z, y):
    total = 0.0
    for a in np.unique(y):
        for b in np.unique(z):
            p_ab = np.mean((y == a) & (z == b))
            if p_ab > 0:
                total += p_ab * np.log(p_ab / np.mean(z == b))
    return total


# ---------------------------------------------------------------- against references


@pytest.mark.parametrize("n,d", [(90, 6), (24, 40)])
def test_logme_matches_per_class_svd_fixed_point(n, d):
    x, y = gaussian_classes(n=n, d=d, c=3, seed=1)
    assert M.logme(x, y) == pytest.approx(ref_logme_per_class_svd(x, y), abs=1e-9)


@pytest.mark.parametrize("n,d", [(90, 6), (24, 40)])
def test_logme_is_close_to_the_maximised_evidence(n, d):
    x, y = gaussian_classes(n=n, d=d, c=3, seed=2)
    ours, best = M.logme(x, y), ref_logme_optimised(x, y)
    assert ours <= best + 1e-9
    assert ours == pytest.approx(best, abs=2e-3)


def test_nc1_matches_class_loop(data):
    assert M.nc1(*data) == pytest.approx(ref_nc1(*data), rel=1e-8)


def test_nc1_unbalanced_classes():
    x, y = gaussian_classes(n=300, d=8, c=5, seed=3)
    keep = np.r_[np.arange(60), np.arange(60, 300, 3)]
    assert M.nc1(x[keep], y[keep]) == pytest.approx(ref_nc1(x[keep], y[keep]), rel=1e-8)


def test_h_score_matches_original_loop(data):
    assert M.h_score(*data) == pytest.approx(ref_h_score(*data), rel=1e-8)


def test_knn_purity_and_1nn_match_sklearn():
    x, y = gaussian_classes(n=300, d=10, c=5, sep=0.6, seed=4)
    for k in (1, 7, 30):
        assert M.knn_purity(x, y, k) == pytest.approx(ref_knn(x, y, k), abs=1e-12)
    assert M.loo_1nn(x, y) == pytest.approx(ref_knn(x, y, 1), abs=1e-12)


def test_knn_purity_blockwise_search_matches_one_block(monkeypatch):
    from helpers.metrics import _stats

    x, y = gaussian_classes(n=200, d=5, c=4, sep=0.5, seed=5)
    whole = M.knn_purity(x, y, 9)
    monkeypatch.setattr(_stats, "_BLOCK_ELEMENTS", 7 * 200)
    assert M.knn_purity(x, y, 9) == whole


def test_nmi_equals_sklearn_kmeans_on_separated_blobs():
    x, y = make_blobs(n_samples=400, centers=5, n_features=8, cluster_std=1.0, random_state=0)
    pred = KMeans(n_clusters=5, n_init=10, random_state=0).fit_predict(x)
    assert M.nmi_kmeans(x, y) == pytest.approx(normalized_mutual_info_score(y, pred), abs=1e-12)


def test_nmi_close_to_sklearn_kmeans_on_overlapping_classes():
    x, y = gaussian_classes(n=600, d=10, c=4, sep=0.8, seed=6)
    pred = KMeans(n_clusters=4, n_init=10, random_state=0).fit_predict(x)
    ours = M.nmi_kmeans(x, y)
    assert 0.05 < ours < 0.95
    assert ours == pytest.approx(normalized_mutual_info_score(y, pred), abs=0.03)


def test_nmi_arithmetic_matches_sklearn_formula():
    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 5, 500), rng.integers(0, 7, 500)
    b[:200] = a[:200]
    ours = nmi_score(torch.as_tensor(a), torch.as_tensor(b))
    assert ours == pytest.approx(normalized_mutual_info_score(a, b), abs=1e-12)


def test_nmi_is_deterministic_for_a_random_state():
    x, y = gaussian_classes(n=300, d=6, c=3, sep=0.7, seed=8)
    assert M.nmi_kmeans(x, y, random_state=3) == M.nmi_kmeans(x, y, random_state=3)


def test_weighted_tau_matches_scipy():
    rng = np.random.default_rng(9)
    s, a = rng.normal(size=12), rng.normal(size=12)
    assert M.weighted_tau(s, a) == scipy.stats.weightedtau(s, a).statistic


def test_gbc_and_face_fairness_match_pair_loop():
    x, y = gaussian_classes(n=400, d=20, c=5, sep=0.4, seed=10)
    bc = ref_bhattacharyya(x, y, pca_dim=8)
    assert M.gbc(x, y, pca_dim=8) == pytest.approx(-bc.sum(), rel=1e-8)
    overlap = bc.sum(1) / (len(bc) - 1)
    scores = M.face(x, y, pca_dim=8)
    assert scores["class_fairness"] == pytest.approx(-overlap.std() / overlap.mean(), rel=1e-8)
    assert scores["variance_collapse"] == pytest.approx(-M.nc1(x, y), rel=1e-12)
    assert scores["face"] == pytest.approx(scores["variance_collapse"] + scores["class_fairness"])


def test_face_zoo_standardises_each_term():
    zoo = [
        {"variance_collapse": v, "class_fairness": f}
        for v, f in [(-1, -0.1), (-2, -0.3), (-4, -0.2)]
    ]
    v, f = np.array([-1.0, -2, -4]), np.array([-0.1, -0.3, -0.2])
    expected = (v - v.mean()) / v.std() + (f - f.mean()) / f.std()
    np.testing.assert_allclose(M.face_zoo(zoo), expected)
    np.testing.assert_allclose(M.face_zoo(pd.DataFrame(zoo)), expected)


def test_leep_and_nce_match_loops():
    rng = np.random.default_rng(11)
    y = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 6)) + np.eye(6)[y] * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert M.leep(probs, y) == pytest.approx(ref_leep(probs, y), rel=1e-10)
    z = probs.argmax(1)
    assert M.nce(z, y) == pytest.approx(ref_nce(z, y), rel=1e-10)


def test_numerical_rank_matches_matrix_rank():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(500, 7)) @ rng.normal(size=(7, 30)) + 1e-4 * rng.normal(size=(500, 30))
    cov = np.cov(x.T)
    expected = np.linalg.matrix_rank(cov, tol=1e-3 * np.linalg.svd(cov, compute_uv=False)[0])
    assert expected == 7
    assert M.numerical_rank(x) == expected
    assert M.numerical_rank(x, max_samples=100) == expected  # subsampled


def test_numerical_rank_wide_matrix_uses_gram_path():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(40, 5)) @ rng.normal(size=(5, 300))
    assert M.numerical_rank(x) == 5


@pytest.mark.parametrize("d", [257, 300, 512])
def test_block_gram_matches_numpy_product(d):
    from helpers.metrics._stats import gram

    x = np.random.default_rng(d).normal(size=(600, d))
    g = gram(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(g, x.T @ x, rtol=0, atol=1e-12 * np.abs(x.T @ x).max())
    upper = np.triu_indices(d, 128)  # entries outside the diagonal blocks are exact mirrors
    np.testing.assert_array_equal(g[upper], g.T[upper])


def test_spectral_metrics_match_numpy_beyond_the_block_width():
    x = np.random.default_rng(14).normal(size=(700, 300)) * np.linspace(0.1, 3, 300)
    s = np.linalg.svd(x, compute_uv=False)
    p = s / s.sum() + 1e-7
    assert M.rankme(x) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-10)
    y = np.arange(700) % 5
    assert M.h_score(x, y) == pytest.approx(ref_h_score(x, y), rel=1e-8)


def test_rankme_matches_numpy_svd(data):
    s = np.linalg.svd(data[0], compute_uv=False)
    p = s / s.sum() + 1e-7
    assert M.rankme(data[0]) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-10)


@pytest.mark.parametrize("n", [200, 15])  # feature-space form and Gram form
def test_linear_cka_matches_direct_formula(n):
    rng = np.random.default_rng(14)
    x = rng.normal(size=(n, 20))
    y = x @ rng.normal(size=(20, 30)) + rng.normal(size=(n, 30))
    xc, yc = x - x.mean(0), y - y.mean(0)
    direct = np.linalg.norm(yc.T @ xc) ** 2 / (
        np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    )
    assert M.linear_cka(x, y) == pytest.approx(direct, rel=1e-10)
    assert M.linear_cka(x, x) == pytest.approx(1.0)


def test_linear_probe_close_to_sklearn_logistic_regression():
    x, y = gaussian_classes(n=1200, d=32, c=6, sep=0.35, seed=15)
    perm = np.random.default_rng(0).permutation(len(y))
    x, y = x[perm], y[perm]
    tr, te = slice(0, 800), slice(800, None)
    scaler = StandardScaler().fit(x[tr])
    ref = LogisticRegression(max_iter=2000).fit(scaler.transform(x[tr]), y[tr])
    ref_acc = ref.score(scaler.transform(x[te]), y[te])
    acc = M.linear_probe(x[tr], y[tr], x[te], y[te])
    assert 0.3 < ref_acc < 0.98
    assert acc == pytest.approx(ref_acc, abs=0.04)


def test_linear_probe_matches_torch_optim_adamw_training():
    x, y = gaussian_classes(n=600, d=16, c=4, sep=0.3, seed=18)
    perm = np.random.default_rng(1).permutation(len(y))
    x, y = x[perm], y[perm]
    pred, weight = ref_probe_adamw(x[:400], y[:400], x[400:], epochs=20, batch_size=64)
    xs = torch.as_tensor(x[:400], dtype=torch.float32)
    xs = (xs - xs.mean(0)) / xs.std(0, correction=0)
    ours, _ = fit_softmax_regression(xs, torch.as_tensor(y[:400]), 4, epochs=20, batch_size=64)
    np.testing.assert_allclose(ours.numpy(), weight, atol=1e-5)
    acc = M.linear_probe(x[:400], y[:400], x[400:], y[400:], epochs=20, batch_size=64)
    assert acc == pytest.approx(np.mean(pred == y[400:]), abs=1 / 200)


def test_linear_probe_counts_unseen_test_classes_as_errors(data):
    x, y = data
    acc_all = M.linear_probe(x, y, x, y, epochs=60)
    acc_shifted = M.linear_probe(x, y, x, y + 100, epochs=60)
    assert acc_all > 0.9 and acc_shifted == 0.0


# ---------------------------------------------------------------- properties


LABELLED = {
    "nmi": lambda x, y: M.nmi_kmeans(x, y),
    "knn": lambda x, y: M.knn_purity(x, y, 5),
    "1nn": M.loo_1nn,
    "logme": M.logme,
    "nc1": M.nc1,
    "h_score": M.h_score,
    "gbc": lambda x, y: M.gbc(x, y, pca_dim=6),
    "face": lambda x, y: M.face(x, y, pca_dim=6)["face"],
    "probe": lambda x, y: M.linear_probe(x, y, x, y, epochs=3),
}
#: The labelled scores here and the later transferability baselines (tests/test_metrics_recent.py).
EVERY = {**LABELLED, **RECENT}
ROTATION_INVARIANT = ["nmi", "knn", "1nn", "logme", "nc1", "h_score", "gbc", "face"]
SCALE_INVARIANT = ["nmi", "knn", "1nn", "nc1", "h_score", "probe"]


@pytest.mark.parametrize("name", list(LABELLED))
def test_label_permutation_and_arbitrary_ids_do_not_change_the_score(name, data):
    x, y = data
    renamed = np.array([17, -3, 250, 4])[y]
    assert LABELLED[name](x, renamed) == pytest.approx(LABELLED[name](x, y), rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("name", ROTATION_INVARIANT)
def test_rotation_invariance(name, data):
    x, y = data
    q, _ = np.linalg.qr(np.random.default_rng(16).normal(size=(x.shape[1],) * 2))
    assert LABELLED[name](x @ q, y) == pytest.approx(LABELLED[name](x, y), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", SCALE_INVARIANT)
def test_scale_invariance(name, data):
    x, y = data
    assert LABELLED[name](7.5 * x, y) == pytest.approx(LABELLED[name](x, y), rel=1e-6)


def test_unlabelled_geometry_is_rotation_and_scale_invariant(data):
    x = data[0]
    q, _ = np.linalg.qr(np.random.default_rng(17).normal(size=(x.shape[1],) * 2))
    for f in (M.rankme, M.numerical_rank):
        assert f(3 * x @ q) == pytest.approx(f(x), rel=1e-8)
    assert M.linear_cka(3 * x @ q, x) == pytest.approx(1.0)


def test_perfectly_separated_classes_reach_the_extremes():
    x, y = make_blobs(
        n_samples=200,
        centers=4,
        n_features=5,
        cluster_std=0.05,
        center_box=(-20, 20),
        random_state=1,
    )
    assert M.nmi_kmeans(x, y) == 1.0
    assert M.knn_purity(x, y, 49) == 1.0
    assert M.loo_1nn(x, y) == 1.0


@pytest.mark.parametrize("name", list(LABELLED))
def test_float32_and_float64_inputs_agree(name, data):
    x, y = data
    assert LABELLED[name](x.astype(np.float32), y) == pytest.approx(
        LABELLED[name](x, y), rel=1e-4, abs=1e-6
    )


@pytest.mark.parametrize("name", list(LABELLED))
def test_cpu_tensor_and_numpy_inputs_agree(name, data):
    x, y = data
    assert LABELLED[name](torch.as_tensor(x), torch.as_tensor(y)) == LABELLED[name](x, y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", list(EVERY))
def test_cuda_matches_cpu(name, data):
    x, y = data
    on_gpu = EVERY[name](torch.as_tensor(x, device="cuda"), torch.as_tensor(y, device="cuda"))
    # The probe is a float32 AdamW fit: its first steps are sign-like, so a gradient component
    # that is ~0 can take opposite signs under another summation order, and a test point on the
    # boundary flips (seen on an H200: 210 vs 209 of 240). Allow two flipped points.
    tolerance = dict(rel=0, abs=2 / len(y)) if name == "probe" else dict(rel=1e-5, abs=1e-6)
    assert on_gpu == pytest.approx(EVERY[name](x, y), **tolerance)


def test_inputs_are_not_mutated(data):
    x, y = data
    xs, ys = x.copy(), y.copy()
    xt, yt = torch.as_tensor(x.copy()), torch.as_tensor(y.copy())
    xt0, yt0 = xt.clone(), yt.clone()
    for f in EVERY.values():
        f(x, y)
        f(xt, yt)
    M.layerwise({"a": x, "b": xt}, y, metrics=list(M.METRICS), k=5, pca_dim=6, epochs=2)
    np.testing.assert_array_equal(x, xs)
    np.testing.assert_array_equal(y, ys)
    assert torch.equal(xt, xt0) and torch.equal(yt, yt0)


# ---------------------------------------------------------------- layerwise


def test_layerwise_rows_match_standalone_metrics(data):
    x, y = data
    layers = {"stem": x[:, :4], "mid": x, "head": x[:, ::2]}
    table = M.layerwise(
        layers,
        y,
        metrics=["knn", "1nn", "nmi", "logme", "face", "numerical_rank"],
        k=5,
        pca_dim=4,
        progress=True,
    )
    assert list(table.columns) == ["layer", "metric", "value"]
    assert list(table["layer"].unique()) == ["stem", "mid", "head"]
    value = table.set_index(["layer", "metric"])["value"]
    for layer, feats in layers.items():
        assert value[layer, "knn"] == M.knn_purity(feats, y, 5)
        assert value[layer, "1nn"] == M.loo_1nn(feats, y)
        assert value[layer, "nmi"] == M.nmi_kmeans(feats, y)
        assert value[layer, "logme"] == pytest.approx(M.logme(feats, y), rel=1e-12)
        assert value[layer, "face.class_fairness"] == pytest.approx(
            M.face(feats, y, 4)["class_fairness"]
        )
        assert value[layer, "numerical_rank"] == M.numerical_rank(feats)
    assert len(table) == 3 * 8


def test_layerwise_probe_uses_a_stratified_split(data):
    table = M.layerwise({"a": data[0]}, data[1], metrics=["probe"], test_fraction=0.25, epochs=40)
    assert 0.5 < table["value"].iloc[0] <= 1.0


def test_layerwise_default_k_is_smallest_class_minus_one(data):
    x, y = data
    table = M.layerwise({"a": x}, y, metrics=["knn"])
    assert table["value"].iloc[0] == M.knn_purity(x, y, np.bincount(y).min() - 1)


def test_layerwise_unknown_metric_suggests_the_closest_name(data):
    with pytest.raises(ValueError, match=r"metrics.*'h-score'.*(did you mean 'h_score').*allowed: "):
        M.layerwise({"a": data[0]}, data[1], metrics=["h-score"])


def test_layerwise_unknown_option_is_named(data):
    with pytest.raises(ValueError, match="pca_dims"):
        M.layerwise({"a": data[0]}, data[1], metrics=["gbc"], pca_dims=3)


# ---------------------------------------------------------------- validation


def test_length_mismatch_names_both_arguments(data):
    with pytest.raises(ValueError, match="features and labels must have the same length"):
        M.nc1(data[0], data[1][:-1])
    with pytest.raises(ValueError, match="train_x and train_y"):
        M.linear_probe(data[0], data[1][:-1], data[0], data[1])
    with pytest.raises(ValueError, match="source_probs and labels"):
        M.leep(np.full((5, 2), 0.5), np.array([0, 1, 0, 1]))


@pytest.mark.parametrize("f", [M.nmi_kmeans, M.loo_1nn, M.logme, M.nc1, M.h_score, M.gbc, M.face])
def test_single_class_is_rejected(f, data):
    with pytest.raises(ValueError, match="labels must contain at least 2 classes"):
        f(data[0], np.zeros(len(data[0]), dtype=int))


def test_k_must_be_smaller_than_the_smallest_class(data):
    x, y = data
    smallest = np.bincount(y).min()
    with pytest.raises(
        ValueError, match=r"k must be .* smaller than the smallest class size \(60\)"
    ):
        M.knn_purity(x, y, smallest)
    with pytest.raises(TypeError, match="k must be an integer"):
        M.knn_purity(x, y, 2.5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_rejected(bad, data):
    x = data[0].copy()
    x[3, 2] = bad
    with pytest.raises(ValueError, match="features contain NaN or Inf"):
        M.knn_purity(x, data[1], 3)
    with pytest.raises(ValueError, match="train_x contain NaN or Inf"):
        M.linear_probe(x, data[1], data[0], data[1])


def test_one_dimensional_features_are_rejected(data):
    with pytest.raises(ValueError, match=r"features must be a 2-D \(N, D\) array"):
        M.logme(data[0][:, 0], data[1])
    with pytest.raises(ValueError, match="x must be a 2-D"):
        M.linear_cka(data[0][:, 0], data[0])


def test_non_integer_labels_are_rejected(data):
    with pytest.raises(TypeError, match="labels must hold integer class ids"):
        M.nc1(data[0], data[1].astype(float))
    with pytest.raises(TypeError, match="labels must hold integer class ids"):
        M.nmi_kmeans(torch.as_tensor(data[0]), torch.as_tensor(data[1], dtype=torch.float32))


def test_weighted_tau_length_mismatch_is_named():
    with pytest.raises(ValueError, match="scores and accuracies"):
        M.weighted_tau([1.0, 2.0, 3.0], [1.0, 2.0])


# ---------------------------------------------------------------- OOD curves


@pytest.mark.parametrize(
    "ood,retained,pivot,strength",
    [
        ([0.2, 0.5, 0.6, 0.7], 100.0, 3, "negligible"),  # best at the end: no tunnel
        ([0.2, 0.8, 0.7, 0.78], 97.5, 1, "negligible"),
        ([0.2, 0.8, 0.7, 0.76], 95.0, 1, "negligible"),  # 95 belongs to negligible
        ([0.3, 0.8, 0.6, 0.74], 92.5, 1, "weak"),
        ([0.5, 0.8, 0.6, 0.72], 90.0, 1, "weak"),  # 90 belongs to weak
        ([0.5, 0.8, 0.6, 0.68], 85.0, 1, "medium"),
        ([0.9, 0.8, 0.6, 0.63], 70.0, 0, "strong"),
        ([0.6, 0.6, 0.5, 0.6], 100.0, 3, "negligible"),  # a tie with the last layer is no tunnel
    ],
)
def test_ood_retained_bins(ood, retained, pivot, strength):
    out = M.ood_retained([0.5, 0.7, 0.9, 0.95], ood)
    assert out["retained"] == pytest.approx(retained)
    assert out["pivot"] == pivot and out["strength"] == strength


def test_ood_retained_rejects_mismatched_curves():
    with pytest.raises(ValueError, match="id_acc and ood_acc"):
        M.ood_retained([0.1, 0.2], [0.1, 0.2, 0.3])


def test_id_ood_pearson_and_alignment():
    id_acc, ood_acc = np.array([0.3, 0.5, 0.8, 0.9]), np.array([0.2, 0.4, 0.35, 0.3])
    assert M.id_ood_pearson(id_acc, ood_acc) == pytest.approx(np.corrcoef(id_acc, ood_acc)[0, 1])
    expected = np.mean([(a - 0.1) * (b - 0.25) for a, b in zip(id_acc, ood_acc, strict=True)])
    assert M.id_ood_alignment(id_acc, ood_acc, 0.1, 0.25) == pytest.approx(expected)
    with pytest.raises(ValueError, match="id_acc must lie in"):
        M.id_ood_alignment(100 * id_acc, ood_acc, 0.1, 0.25)
