"""Layer-wise metrics: separability, transferability, collapse/geometry, OOD curves.

Every metric is pure: ``f(features, labels, **options)`` with numpy or torch input on any device,
computed in torch, returning a Python number (or a small dict). The book's methods page
(book/methods.md) gives the formulas.
"""

from .geometry import linear_cka, nc1, numerical_rank, rankme
from .layerwise import METRICS, layerwise
from .ood import id_ood_alignment, id_ood_pearson, ood_retained
from .separability import knn_purity, linear_probe, loo_1nn, nmi_kmeans
from .transfer import face, face_zoo, gbc, h_score, leep, logme, nce, weighted_tau
from .transfer_recent import knn_accuracy, ncti, ncti_zoo, nleep, parc, sfda


def available() -> list[str]:
    """Metric names that :func:`layerwise` and the chapters' ``metric`` parameters accept."""
    return list(METRICS)


__all__ = [
    "METRICS",
    "available",
    "face",
    "face_zoo",
    "gbc",
    "h_score",
    "id_ood_alignment",
    "id_ood_pearson",
    "knn_accuracy",
    "knn_purity",
    "layerwise",
    "leep",
    "linear_cka",
    "linear_probe",
    "logme",
    "loo_1nn",
    "nc1",
    "nce",
    "ncti",
    "ncti_zoo",
    "nleep",
    "nmi_kmeans",
    "numerical_rank",
    "ood_retained",
    "parc",
    "rankme",
    "sfda",
    "weighted_tau",
]
