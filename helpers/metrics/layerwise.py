"""Every requested metric at every layer, sharing per-layer work (class means, spectra, neighbours).

Used by Chapter 1 (separability), Chapter 2 (transferability / FaCe) and Chapter 3 (tunnel effect).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import pandas as pd
from tqdm.auto import tqdm

from ..names import did_you_mean
from ._stats import LayerStats
from ._validate import ArrayLike
from .geometry import _nc1, _numerical_rank, _rankme
from .separability import _knn, _loo_1nn, _nmi, _probe_split, knn_k
from .transfer import _face, _gbc, _h_score, _logme
from .transfer_recent import _knn_accuracy, _ncti, _nleep, _parc, _sfda

METRICS: dict[str, Callable[..., float | int | dict]] = {
    "nmi": _nmi,
    "knn": _knn,
    "1nn": _loo_1nn,
    "probe": _probe_split,
    "logme": _logme,
    "h_score": _h_score,
    "gbc": _gbc,
    "face": _face,
    "nc1": _nc1,
    "numerical_rank": _numerical_rank,
    "rankme": _rankme,
    "sfda": _sfda,
    "nleep": _nleep,
    "parc": _parc,
    "ncti": _ncti,
    "knn_acc": _knn_accuracy,
}
_PROBE_OPTIONS = ("epochs", "lr", "weight_decay", "label_smoothing", "batch_size")


def layerwise(
    features_by_layer: Mapping[str, ArrayLike],
    labels: ArrayLike,
    metrics: Sequence[str] = ("nmi", "knn", "1nn", "logme", "nc1", "rankme"),
    progress: bool = False,
    **options,
) -> pd.DataFrame:
    """Tidy table (layer, metric, value), one row per layer x metric, layers in the given order.

    `options` go to the metrics that take them (k, n_clusters, n_init, random_state, pca_dim, rtol,
    max_samples, test_fraction, component_ratio, pca_variance and the `linear_probe` settings);
    kNN's k (purity and accuracy) defaults to the smallest class size - 1; one pca_dim serves
    gbc, face, ncti (default 64) and parc (default 32). Dict-valued metrics (face, ncti) give one
    row per key, named "face.<key>".
    Chapter 1 (separability), Chapter 2 (transferability / FaCe), Chapter 3 (tunnel effect).
    """
    metrics = _check_metrics(metrics)
    routed = _route_options(metrics, options)
    rows = []
    for layer, features in tqdm(features_by_layer.items(), desc="layers", disable=not progress):
        stats = LayerStats(features, labels, name=f"features_by_layer[{layer!r}]")
        _prefetch_neighbours(stats, metrics, routed)
        for name in metrics:
            value = METRICS[name](stats, **routed[name])
            items = value.items() if isinstance(value, dict) else [(None, value)]
            rows += [
                (layer, name if key is None else f"{name}.{key}", float(v)) for key, v in items
            ]
    return pd.DataFrame(rows, columns=["layer", "metric", "value"])


_UNSET = object()


def layerwise_each(
    features_by_layer: Mapping[str, ArrayLike],
    labels: ArrayLike,
    options_by_metric: Mapping[str, Mapping],
) -> pd.DataFrame:
    """:func:`layerwise` with each metric's own options, in as few calls as they allow.

    Metrics share a call (and its factorizations) unless one would receive an option meant for
    another, e.g. PARC's pca_dim 32 beside GBC's 64. Same tidy table.
    """
    batches: list[tuple[list[str], dict]] = []
    for name in _check_metrics(list(options_by_metric)):
        own = dict(options_by_metric[name])
        for names, merged in batches:
            taken = set().union(*(_accepted(n) for n in names))
            shared = (_accepted(name) & merged.keys()) | (own.keys() & taken)
            if all(own.get(k, _UNSET) == merged.get(k, _UNSET) for k in shared):
                names.append(name)
                merged.update(own)
                break
        else:
            batches.append(([name], own))
    return pd.concat([layerwise(features_by_layer, labels, names, **merged)
                      for names, merged in batches], ignore_index=True)



def _check_metrics(metrics: Sequence[str]) -> list[str]:
    if isinstance(metrics, str):
        metrics = [metrics]
    for name in metrics:
        if name not in METRICS:
            raise ValueError(f"metrics: unknown metric {name!r}{did_you_mean(name, METRICS)}; "
                             f"allowed: {', '.join(METRICS)}")
    return list(dict.fromkeys(metrics))


def options_of(metric: str) -> set[str]:
    """The options ``metric`` takes (the names :func:`layerwise` routes to it)."""
    return _accepted(_check_metrics([metric])[0])


def _accepted(name: str) -> set[str]:
    params = list(inspect.signature(METRICS[name]).parameters.values())[1:]
    accepted = {p.name for p in params if p.kind is not p.VAR_KEYWORD}
    return accepted | set(_PROBE_OPTIONS) if name == "probe" else accepted


def _route_options(metrics: list[str], options: dict) -> dict[str, dict]:
    routed = {name: {k: v for k, v in options.items() if k in _accepted(name)} for name in metrics}
    unused = set(options) - {k for r in routed.values() for k in r}
    if unused:
        accepted = sorted(set().union(*(_accepted(n) for n in metrics)))
        raise ValueError(
            f"options {sorted(unused)} are taken by none of the metrics {metrics}; "
            f"accepted options: {accepted}"
        )
    return routed


def _prefetch_neighbours(stats: LayerStats, metrics: list[str], routed: dict[str, dict]) -> None:
    """One neighbour search for both kNN purity and 1-NN."""
    if "1nn" in metrics and "knn" in metrics:
        stats.neighbour_hits((1, knn_k(stats, routed["knn"].get("k"))))
