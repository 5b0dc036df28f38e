"""Intervals of the book (methods page, section "intervals"): t intervals of a mean, the
clear-winner test, bootstrap percentile intervals, paired effects and the detectable effect."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from helpers.metrics.intervals import (
    clear_best,
    detectable_effect,
    mean_interval,
    paired_effect,
    percentile_interval,
    welch_effect,
)


def test_mean_interval_is_students_t_interval_of_the_mean():
    v = np.array([0.61, 0.64, 0.58, 0.66])
    mean, low, high = mean_interval(v, 0.9)
    lo, hi = scipy.stats.t.interval(0.9, len(v) - 1, loc=v.mean(), scale=scipy.stats.sem(v))
    assert mean == pytest.approx(v.mean()) and (low, high) == pytest.approx((lo, hi))
    assert mean_interval([0.5, np.nan]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="confidence"):
        mean_interval(v, 1.0)


def test_clear_best_needs_the_best_interval_beyond_every_other():
    assert clear_best([0.2, 0.8, 0.5], [0.1, 0.7, 0.4], [0.3, 0.9, 0.6]) == {
        "best": 1, "clear": True, "tied": [], "runner_up": 2}
    tied = clear_best([0.2, 0.8, 0.75], [0.1, 0.7, 0.65], [0.3, 0.9, 0.85])
    assert tied["best"] == 1 and not tied["clear"] and tied["tied"] == [2]
    lower = clear_best([3.0, 1.0, 2.0], [2.9, 0.9, 1.9], [3.1, 1.1, 2.1], higher_is_better=False)
    assert lower["best"] == 1 and lower["clear"]


def test_detectable_effect_is_the_sum_of_the_two_normal_quantiles_times_the_se():
    assert detectable_effect(1.0) == pytest.approx(1.959964 + 0.841621, abs=1e-6)
    assert detectable_effect(0.1, confidence=0.9, power=0.5) == pytest.approx(0.1644854, abs=1e-6)
    with pytest.raises(ValueError, match="power"):
        detectable_effect(0.1, power=1.0)


def test_paired_effect_reads_the_direction_off_the_percentile_interval():
    rng = np.random.default_rng(0)
    above = rng.normal(0.3, 0.05, 4000)
    out = paired_effect(0.3, above)
    assert (out["low"], out["high"]) == pytest.approx(tuple(np.quantile(above, [0.025, 0.975])))
    assert out["direction"] == "higher" and out["se"] == pytest.approx(above.std(ddof=1))
    assert out["detectable"] == pytest.approx(detectable_effect(above.std(ddof=1)))
    assert paired_effect(-0.3, -above)["direction"] == "lower"
    assert paired_effect(0.0, rng.normal(0, 0.1, 500))["direction"] == "no difference detected"
    assert percentile_interval([1.0, np.nan, 3.0], 0.5) == pytest.approx((1.5, 2.5))
    with pytest.raises(ValueError, match="draws"):
        percentile_interval([np.nan])


def test_welch_effect_matches_scipys_welch_interval():
    a, b = np.array([0.61, 0.64, 0.58, 0.66]), np.array([0.50, 0.55, 0.47])
    out = welch_effect(a, b)
    ref = scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (out["low"], out["high"]) == pytest.approx((ref.low, ref.high))
    assert out["effect"] == pytest.approx(a.mean() - b.mean()) and out["direction"] == "higher"
    assert welch_effect(b, a)["direction"] == "lower"
    with pytest.raises(ValueError, match="at least 2"):
        welch_effect([0.5], b)
