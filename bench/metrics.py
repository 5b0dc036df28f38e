"""Benchmark helpers.metrics against straightforward reference implementations.

Synthetic Gaussian classes (N=10,000, D=512, 10 classes, fixed seed, float32). Each metric is timed
(median of `--repeats` runs, time.perf_counter) next to a reference: sklearn NearestNeighbors /
KMeans, the probe's AdamW protocol with nn.Linear and torch.optim.AdamW (and, for information,
sklearn's L-BFGS LogisticRegression: another protocol), the per-class-SVD LogME loop of You et
al., python loops for NC1, H-score, GBC, FaCe, LEEP and NCE, numpy SVDs for the ranks, Kornblith
et al.'s Gram-matrix CKA.

    python bench/metrics.py [results.json] [--repeats 3] [--k 100] [--threads 1] [--only knn logme]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import threadpoolctl
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import normalized_mutual_info_score
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from helpers import metrics as M

TARGET = 3.0


def make_data(n: int, d: int, c: int, seed: int = 0) -> dict:
    """Gaussian classes (per-dimension scales), a second 'layer', source posteriors, a split."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(c), n // c))
    means = rng.normal(0, 0.2, (c, d))
    x = (means[y] + rng.normal(size=(n, d)) * rng.uniform(0.5, 1.5, d)).astype(np.float32)
    other = np.tanh(x @ rng.normal(0, d**-0.5, (d, d))).astype(np.float32)
    logits = rng.normal(size=(n, 100)) + 2.0 * np.eye(100)[y * 7 % 100]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    test = np.zeros(n, bool)
    test[rng.permutation(n)[: n // 2]] = True
    return {"x": x, "y": y, "other": other, "probs": probs, "test": test}


# ---------------------------------------------------------------- references


def ref_knn(x, y, k):
    idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)
    is_self = idx == np.arange(len(x))[:, None]
    self_pos = np.where(
        is_self.any(1), is_self.argmax(1), k
    )  # a duplicate may push self out: drop the last
    idx = idx[np.arange(k + 1)[None, :] != self_pos[:, None]].reshape(len(x), k)
    return float((y[idx] == y[:, None]).mean())


def ref_nmi(x, y):
    pred = KMeans(n_clusters=len(np.unique(y)), n_init=10, random_state=0).fit_predict(x)
    return normalized_mutual_info_score(y, pred)


def ref_probe(x, y, test):
    scaler = StandardScaler().fit(x[~test])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs at sklearn's default max_iter=100 may not converge
        clf = LogisticRegression().fit(scaler.transform(x[~test]), y[~test])
    return clf.score(scaler.transform(x[test]), y[test])


def ref_probe_adamw(xtr, ytr, xte, epochs=30, lr=1e-3, weight_decay=1e-4, batch_size=256):
    """The tunnel paper's probe protocol the usual way: nn.Linear, autograd, torch.optim.AdamW.

    Returns the test predictions and the weight (tests/test_metrics.py checks ours against it).
    """
    xtr, xte = torch.as_tensor(xtr, dtype=torch.float32), torch.as_tensor(xte, dtype=torch.float32)
    mean, std = xtr.mean(0), xtr.std(0, correction=0)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    ytr = torch.as_tensor(ytr)
    lin = torch.nn.Linear(xtr.shape[1], int(ytr.max()) + 1)
    torch.nn.init.zeros_(lin.weight), torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.AdamW(lin.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(xtr), generator=gen).split(batch_size):
            loss = torch.nn.functional.cross_entropy(lin(xtr[idx]), ytr[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return lin(xte).argmax(1).numpy(), lin.weight.detach().numpy()


def ref_logme(x, y):
    """You et al. 2021 LogME loop: one SVD and one fixed-point iteration per class."""
    x = x.astype(np.float64)
    n, d = x.shape
    evidences = []
    for c in np.unique(y):
        t = (y == c).astype(np.float64)
        u, s, vt = np.linalg.svd(x, full_matrices=False)
        sigma = s**2
        alpha, beta = 1.0, 1.0
        for _ in range(11):
            gamma = (beta * sigma / (alpha + beta * sigma)).sum()
            m = vt.T @ (beta * s / (alpha + beta * sigma) * (u.T @ t))
            mm, res = m @ m, ((x @ m - t) ** 2).sum()
            new_alpha, new_beta = gamma / mm, (n - gamma) / res
            done = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 1e-3
            alpha, beta = new_alpha, new_beta
            if done:
                break
        evidence = (
            n / 2 * np.log(beta)
            + d / 2 * np.log(alpha)
            - n / 2 * np.log(2 * np.pi)
            - beta / 2 * res
            - alpha / 2 * mm
            - 0.5 * np.log(alpha + beta * sigma).sum()
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def ref_nc1(x, y):
    x = x.astype(np.float64)
    classes = np.unique(y)
    sw = np.zeros((x.shape[1],) * 2)
    sb = np.zeros_like(sw)
    mu = x.mean(0)
    for c in classes:
        xc = x[y == c]
        sw += np.cov(xc.T, bias=True) / len(classes)
        sb += np.outer(xc.mean(0) - mu, xc.mean(0) - mu) / len(classes)
    return float(np.trace(sw @ np.linalg.pinv(sb, rcond=1e-10)) / len(classes))


def ref_h_score(x, y):
    x = x.astype(np.float64)

    def cov(a):
        a = a - a.mean(0)
        return a.T @ a / (len(a) - 1)

    g = np.zeros_like(x)
    for c in np.unique(y):
        g[y == c] = x[y == c].mean(0)
    return float(np.trace(np.linalg.pinv(cov(x), rcond=1e-15) @ cov(g)))


def ref_bc(x, y, dim=64):
    z = PCA(n_components=dim).fit_transform(x.astype(np.float64))
    classes = np.unique(y)
    stats = [(z[y == c].mean(0), np.maximum(z[y == c].var(0), 1e-4)) for c in classes]
    bc = np.zeros((len(classes),) * 2)
    for i, (m1, v1) in enumerate(stats):
        for j, (m2, v2) in enumerate(stats):
            if i != j:
                v = (v1 + v2) / 2
                db = ((m1 - m2) ** 2 / v).sum() / 8 + 0.5 * (
                    np.log(v).sum() - 0.5 * np.log(v1).sum() - 0.5 * np.log(v2).sum()
                )
                bc[i, j] = np.exp(-db)
    return bc


def ref_gbc(x, y):
    return float(-ref_bc(x, y).sum())


def ref_face(x, y):
    bc = ref_bc(x, y)
    overlap = bc.sum(1) / (len(bc) - 1)
    return -ref_nc1(x, y) - overlap.std() / overlap.mean()


def ref_leep(probs, y):
    joint = np.zeros((y.max() + 1, probs.shape[1]))
    for c in range(y.max() + 1):
        joint[c] = probs[y == c].sum(0) / len(y)
    cond = joint / joint.sum(0)
    return float(np.mean([np.log(probs[i] @ cond[y[i]]) for i in range(len(y))]))


def ref_nce(z, y):
    joint = np.zeros((y.max() + 1, z.max() + 1))
    for a, b in zip(y, z, strict=True):
        joint[a, b] += 1 / len(y)
    pz = joint.sum(0)
    nz = joint > 0
    return float((joint[nz] * np.log((joint / pz)[nz])).sum())


def ref_numerical_rank(x, max_samples=8000):
    cov = np.cov(x[:max_samples].astype(np.float64).T)
    return float(np.linalg.matrix_rank(cov, tol=1e-3 * np.linalg.svd(cov, compute_uv=False)[0]))


def ref_rankme(x):
    s = np.linalg.svd(x.astype(np.float64), compute_uv=False)
    p = s / s.sum() + 1e-7
    return float(np.exp(-(p * np.log(p)).sum()))


def ref_cka(x, y):
    """Kornblith et al. 2019 colab: centred Gram matrices, HSIC ratio."""

    def centred_gram(a):
        g = a @ a.T
        return g - g.mean(0) - g.mean(1)[:, None] + g.mean()

    gx, gy = centred_gram(x.astype(np.float64)), centred_gram(y.astype(np.float64))
    return float((gx * gy).sum() / (np.linalg.norm(gx) * np.linalg.norm(gy)))


# ---------------------------------------------------------------- timing


def cases(data: dict, device: str, k: int) -> dict:
    x, y, test = data["x"], data["y"], data["test"]
    xt, yt = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    ot, pt = (
        torch.as_tensor(data["other"], device=device),
        torch.as_tensor(data["probs"], device=device),
    )
    z = data["probs"].argmax(1)
    mask = torch.as_tensor(test, device=device)
    return {
        f"knn_purity (k={k})": (lambda: M.knn_purity(xt, yt, k), lambda: ref_knn(x, y, k)),
        "loo_1nn": (lambda: M.loo_1nn(xt, yt), lambda: ref_knn(x, y, 1)),
        "nmi_kmeans (n_init=10)": (lambda: M.nmi_kmeans(xt, yt), lambda: ref_nmi(x, y)),
        "linear_probe (AdamW protocol)": (
            lambda: M.linear_probe(xt[~mask], yt[~mask], xt[mask], yt[mask]),
            lambda: float((ref_probe_adamw(x[~test], y[~test], x[test])[0] == y[test]).mean()),
        ),
        "linear_probe vs sklearn L-BFGS": (
            lambda: M.linear_probe(xt[~mask], yt[~mask], xt[mask], yt[mask]),
            lambda: ref_probe(x, y, test),
        ),
        "logme": (lambda: M.logme(xt, yt), lambda: ref_logme(x, y)),
        "nc1": (lambda: M.nc1(xt, yt), lambda: ref_nc1(x, y)),
        "h_score": (lambda: M.h_score(xt, yt), lambda: ref_h_score(x, y)),
        "gbc": (lambda: M.gbc(xt, yt), lambda: ref_gbc(x, y)),
        "face": (lambda: M.face(xt, yt)["face"], lambda: ref_face(x, y)),
        "leep": (lambda: M.leep(pt, yt), lambda: ref_leep(data["probs"], y)),
        "nce": (lambda: M.nce(z, y), lambda: ref_nce(z, y)),
        "numerical_rank": (lambda: M.numerical_rank(xt), lambda: ref_numerical_rank(x)),
        "rankme": (lambda: M.rankme(xt), lambda: ref_rankme(x)),
        "linear_cka": (lambda: M.linear_cka(xt, ot), lambda: ref_cka(x, data["other"])),
    }


# layerwise metric name -> the standalone row whose reference it replaces
LAYERWISE_ROWS = {
    "knn": "knn_purity",
    "1nn": "loo_1nn",
    "nmi": "nmi_kmeans",
    "logme": "logme",
    "h_score": "h_score",
    "gbc": "gbc",
    "face.face": "face",
    "nc1": "nc1",
    "numerical_rank": "numerical_rank",
    "rankme": "rankme",
}


def timed(fn, repeats: int) -> tuple[float, float]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def make_row(
    name: str, t_ours: float, t_ref: float, v_ours, v_ref, diff: float | None = None
) -> dict:
    ratio = t_ref / t_ours
    row = {
        "metric": name,
        "ours_s": t_ours,
        "reference_s": t_ref,
        "ratio": ratio,
        "met": ratio >= TARGET,
        "ours_value": v_ours,
        "reference_value": v_ref,
        "abs_diff": abs(v_ours - v_ref) if diff is None else diff,
    }
    print(
        f"{name:<26}{t_ours:>9.3f}{t_ref:>9.3f}{ratio:>8.1f}{TARGET:>7.0f}x"
        f"{'yes' if row['met'] else 'no':>5}{row['abs_diff']:>12.2e}",
        flush=True,
    )
    return row


def layerwise_row(rows: list[dict], x: torch.Tensor, y: torch.Tensor, k: int, repeats: int) -> dict:
    """The shared-work metrics on one layer in one `layerwise` call vs the sum of references."""
    refs = {
        m: next(r for r in rows if r["metric"].startswith(n)) for m, n in LAYERWISE_ROWS.items()
    }
    metrics = [m.split(".")[0] for m in LAYERWISE_ROWS]
    t_ours, table = timed(lambda: M.layerwise({"layer": x}, y, metrics=metrics, k=k), repeats)
    values = dict(zip(table["metric"], table["value"], strict=True))
    diff = max(abs(values[m] - r["reference_value"]) for m, r in refs.items())
    t_ref = sum(r["reference_s"] for r in refs.values())
    return make_row(f"layerwise ({len(refs)} metrics)", t_ours, t_ref, None, None, diff)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        threadpoolctl.threadpool_limits(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    data = make_data(args.n, args.d, args.classes)
    print(
        f"device={device} torch_threads={torch.get_num_threads()} "
        f"N={args.n} D={args.d} C={args.classes}"
    )
    print(
        f"{'metric':<26}{'ours (s)':>9}{'ref (s)':>9}{'ratio':>8}{'target':>8}{'met':>5}"
        f"{'max |diff|':>12}"
    )
    rows = []
    for name, (ours, ref) in cases(data, device, args.k).items():
        if args.only and not any(s in name for s in args.only):
            continue
        ours()  # warm-up (allocator, lazy imports); not timed
        t_ours, v_ours = timed(ours, args.repeats)
        t_ref, v_ref = timed(ref, args.repeats)
        rows.append(make_row(name, t_ours, t_ref, float(v_ours), float(v_ref)))
    if not args.only:
        x, y = (torch.as_tensor(data[key], device=device) for key in ("x", "y"))
        rows.append(layerwise_row(rows, x, y, args.k, args.repeats))
    print(f"max abs difference over all metrics: {max(r['abs_diff'] for r in rows):.3e}")
    result = {
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "sizes": {"n": args.n, "d": args.d, "classes": args.classes, "k": args.k},
        "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", nargs="?", default="bench/results_metrics.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--k", type=int, default=100, help="kNN purity k")
    parser.add_argument("--only", nargs="*", help="substrings of metric names to run")
    parser.add_argument(
        "--threads", type=int, help="limit torch and BLAS/OpenMP threads on both sides"
    )
    return parser.parse_args()


if __name__ == "__main__":
    main()
