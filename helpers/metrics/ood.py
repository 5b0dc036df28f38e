"""Summaries of per-layer ID / OOD probe-accuracy curves (methods page, section 3: book/methods.md).

Used by Chapter 3 (tunnel effect).
"""

from __future__ import annotations

import numpy as np
import scipy.stats

from ._validate import ArrayLike, as_curve, check_same_length

_BINS = ((95.0, "negligible"), (90.0, "weak"), (80.0, "medium"), (0.0, "strong"))


def strength(retained: float) -> str:
    """The tunnel-strength bin of a % retained: negligible [95, 100], weak [90, 95),
    medium [80, 90), strong below 80 (and for nan)."""
    return next((name for low, name in _BINS if retained >= low), "strong")


def ood_retained(id_acc: ArrayLike, ood_acc: ArrayLike) -> dict[str, float | int | str]:
    """% OOD performance retained at the penultimate layer (the last entry of each curve).

    a_m = best OOD accuracy (first layer l_m reaching it), a_p = last entry. If l_m is earlier and
    a_m > a_p: retained = 100 a_p / a_m and pivot = l_m (the tunnel starts there); else 100 and
    pivot = the last index. Strength bins: negligible [95, 100], weak [90, 95), medium [80, 90),
    strong [0, 80). Chapter 3 (tunnel effect).
    """
    ood = _curves(id_acc, ood_acc)[1]
    if (ood < 0).any():
        raise ValueError("ood_acc must be non-negative accuracies")
    last = len(ood) - 1
    best = int(np.argmax(ood))
    tunnel = best < last and ood[best] > ood[last]
    retained = 100.0 * ood[last] / ood[best] if tunnel else 100.0
    return {"retained": float(retained), "pivot": best if tunnel else last,
            "strength": strength(retained)}


def id_ood_pearson(id_acc: ArrayLike, ood_acc: ArrayLike) -> float:
    """Pearson correlation between the ID and OOD accuracy curves (layer 1 to penultimate).

    Chapter 3 (tunnel effect).
    """
    id_curve, ood_curve = _curves(id_acc, ood_acc, min_len=2)
    for name, curve in (("id_acc", id_curve), ("ood_acc", ood_curve)):
        if np.ptp(curve) == 0:
            raise ValueError(f"{name} is constant, so its Pearson correlation is undefined")
    return float(scipy.stats.pearsonr(id_curve, ood_curve).statistic)


def id_ood_alignment(
    id_acc: ArrayLike, ood_acc: ArrayLike, id_chance: float, ood_chance: float
) -> float:
    """ID/OOD alignment: mean over layers of (acc_id - chance_id)(acc_ood - chance_ood).

    Accuracies and chance levels are fractions in [0, 1].

    Chapter 3 (tunnel effect).
    """
    id_curve, ood_curve = _curves(id_acc, ood_acc)
    for name, values in (
        ("id_acc", id_curve),
        ("ood_acc", ood_curve),
        ("id_chance", np.array([id_chance])),
        ("ood_chance", np.array([ood_chance])),
    ):
        if not ((values >= 0) & (values <= 1)).all():
            raise ValueError(f"{name} must lie in [0, 1] (fractions, not percentages)")
    return float(np.mean((id_curve - id_chance) * (ood_curve - ood_chance)))


def _curves(
    id_acc: ArrayLike, ood_acc: ArrayLike, min_len: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    id_curve = as_curve(id_acc, "id_acc", min_len)
    ood_curve = as_curve(ood_acc, "ood_acc", min_len)
    check_same_length(id_curve, ood_curve, "id_acc", "ood_acc")
    return id_curve, ood_curve
