"""Intervals of a mean over repeated measurements (seeds, subsamples), and a clear-winner test.

Used by Chapter 6 (atlas) and by every chapter that reports a number with its interval.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.stats

from ._validate import ArrayLike


def _finite(values: ArrayLike, name: str, confidence: float) -> np.ndarray:
    """``values`` as a flat float array without NaNs; ``confidence`` checked."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    v = np.asarray(values, dtype=float).ravel()
    v = v[~np.isnan(v)]
    if len(v) == 0:
        raise ValueError(f"{name}: need at least one number that is not NaN")
    return v


def mean_interval(values: ArrayLike, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the mean of ``values`` (NaNs dropped).

    With one value the interval is that value (no spread can be estimated; say so where shown).
    """
    v = _finite(values, "values", confidence)
    mean = float(v.mean())
    if len(v) == 1:
        return mean, mean, mean
    half = float(scipy.stats.t.ppf((1 + confidence) / 2, len(v) - 1) * v.std(ddof=1)
                 / math.sqrt(len(v)))
    return mean, mean - half, mean + half


def clear_best(means: ArrayLike, lows: ArrayLike, highs: ArrayLike,
               higher_is_better: bool = True) -> dict:
    """The best entry and whether it is clear: its interval lies wholly beyond every other
    entry's interval. ``tied``: the entries whose intervals overlap the best one's."""
    m, lo, hi = (np.asarray(a, dtype=float) for a in (means, lows, highs))
    if not (m.shape == lo.shape == hi.shape) or m.ndim != 1 or len(m) == 0:
        raise ValueError("means, lows and highs must be 1-d and of one non-zero length")
    if not higher_is_better:
        m, lo, hi = -m, -hi, -lo
    best = int(np.nanargmax(m))
    others = [i for i in range(len(m)) if i != best]
    tied = [i for i in others if hi[i] >= lo[best]]
    runner_up = max(others, key=lambda i: m[i]) if others else None
    return {"best": best, "clear": not tied, "tied": tied, "runner_up": runner_up}


def percentile_interval(draws: ArrayLike, confidence: float = 0.95) -> tuple[float, float]:
    """(low, high): the central ``confidence`` share of bootstrap ``draws`` (NaNs dropped)."""
    v = _finite(draws, "draws", confidence)
    low, high = np.quantile(v, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def detectable_effect(se: float, confidence: float = 0.95, power: float = 0.8) -> float:
    """The smallest true effect a two-sided test at ``confidence`` detects with ``power``, given
    the standard error ``se`` of its estimate: (z_(1+confidence)/2 + z_power) se (2.8 se at
    95 % and 80 %). Methods page, section "intervals" (book/methods.md)."""
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    z = scipy.stats.norm.ppf
    return float((z((1 + confidence) / 2) + z(power)) * se)


def paired_effect(effect: float, draws: ArrayLike, confidence: float = 0.95) -> dict:
    """An effect (a - b) with its bootstrap interval from paired ``draws`` of a - b:
    effect, low, high, se, detectable (:func:`detectable_effect`) and direction: "higher" or
    "lower" when the interval excludes 0, else "no difference detected"."""
    low, high = percentile_interval(draws, confidence)
    v = np.asarray(draws, dtype=float)
    se = float(np.nanstd(v, ddof=1)) if np.sum(~np.isnan(v)) > 1 else 0.0
    direction = "higher" if low > 0 else "lower" if high < 0 else "no difference detected"
    return {"effect": float(effect), "low": low, "high": high, "se": se,
            "detectable": detectable_effect(se, confidence), "direction": direction}


def welch_effect(a: ArrayLike, b: ArrayLike, confidence: float = 0.95) -> dict:
    """mean(a) - mean(b) with Welch's t interval (unequal variances; NaNs dropped), its se, the
    detectable difference (:func:`detectable_effect`) and the direction, as
    :func:`paired_effect`. Needs at least 2 values on each side."""
    x, y = (np.asarray(v, dtype=float).ravel() for v in (a, b))
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"a and b need at least 2 values each (got {len(x)} and {len(y)})")
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    effect = float(x.mean() - y.mean())
    if se == 0:
        low = high = effect
    else:
        dof = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
        half = float(scipy.stats.t.ppf((1 + confidence) / 2, dof) * se)
        low, high = effect - half, effect + half
    direction = "higher" if low > 0 else "lower" if high < 0 else "no difference detected"
    return {"effect": effect, "low": low, "high": high, "se": se,
            "detectable": detectable_effect(se, confidence), "direction": direction}
