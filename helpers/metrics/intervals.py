"""Intervals of a mean over repeated measurements (seeds, subsamples), and a clear-winner test.

Used by Chapter 6 (atlas) and by every chapter that reports a number with its interval.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.stats

from ._validate import ArrayLike


def mean_interval(values: ArrayLike, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the mean of ``values`` (NaNs dropped).

    With one value the interval is that value (no spread can be estimated; say so where shown).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    v = np.asarray(values, dtype=float).ravel()
    v = v[~np.isnan(v)]
    if len(v) == 0:
        raise ValueError("values: need at least one number that is not NaN")
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
