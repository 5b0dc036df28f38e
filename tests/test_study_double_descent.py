"""Chapter 4 (double_descent): the study functions pin down what the chapter relies on:
parameter counts per k, nested noisy subsets, exact tail-only training, run caching, and the
two double-descent tests on curves of known shape."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import run_chapter
from scipy import stats

from helpers import cache, data, models
from helpers.device import one_thread
from helpers.studies import double_descent as dd

ROOT = Path(__file__).resolve().parents[1]


def _source(width=8, depth=4, seed=0):
    torch.manual_seed(seed)
    return models.create("smallcnn", 10, width=width, depth=depth, img_size=8,
                         mean=(0.5,) * 3, std=(0.5,) * 3)


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny networks train faster on one thread (and do not fight a busy CPU)."""
    with one_thread():
        yield


@pytest.fixture(scope="module")
def digits8():
    full = data.sklearn_digits(8)
    return data.train_test(full, test=10, seed=0)  # pool, test (100 images)


def test_parameter_counts_fall_by_one_equal_block_per_frozen_layer():
    counts = dd.parameter_counts(_source(width=8, depth=4))
    p = counts["trainable"].to_numpy()
    assert list(counts["k"]) == [0, 1, 2, 3, 4]
    assert (np.diff(p) < 0).all()
    block = 9 * 8 * 8 + 2 * 8  # 3x3 conv without bias + batch norm
    assert (-np.diff(p)[1:]).tolist() == [block, block, block]
    assert p[-1] == 8 * 10 + 10  # only the fresh head is left


def test_ks_crossing_interpolates_log_counts():
    counts = pd.DataFrame({"k": [0, 1, 2], "trainable": [10_000, 1_000, 10]})
    cross = dd.ks_crossing(counts, [1_000, 100, 5])
    assert cross[1_000] == pytest.approx(1.0)
    assert cross[100] == pytest.approx(1.5)
    assert np.isnan(cross[5])


def test_noisy_subsets_are_balanced_and_nested_across_noise_rates(digits8):
    pool, _ = digits8
    clean0, _, c0 = dd.noisy_subset(pool, 100, 0.0, seed=3)
    noisy, flipped, c1 = dd.noisy_subset(pool, 100, 0.4, seed=3)
    assert torch.equal(c0.images, c1.images) and torch.equal(c0.labels, c1.labels)
    assert torch.equal(clean0.labels, c0.labels)
    assert (c1.counts() == 10).all()
    assert torch.equal(torch.as_tensor(flipped), noisy.labels != c1.labels)
    assert 0.25 < flipped.mean() < 0.55
    with pytest.raises(ValueError, match="multiple"):
        dd.noisy_subset(pool, 105, 0.2)


def _reference_run(source, k, train_set, test_set, epochs, lr, batch_size, seed):
    """The straightforward way: the whole model, frozen prefix, every batch through it."""
    torch.manual_seed(seed)
    model = copy.deepcopy(source)
    model.reset_classifier(len(train_set.classes))
    models.freeze_first(model, k)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    spec = models.input_spec(model)
    from helpers.models import preprocess

    errs = []
    for epoch in range(epochs):
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        perm = torch.randperm(len(train_set), generator=g)
        model.train()
        model.blocks[:k].eval()
        for s in range(0, len(perm), batch_size):
            idx = perm[s:s + batch_size]
            out = model(preprocess(train_set.images[idx], spec))
            loss = F.cross_entropy(out, train_set.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(preprocess(test_set.images, spec)).argmax(1)
        errs.append((pred != test_set.labels).float().mean().item())
    return errs, model


@pytest.mark.parametrize("k", [0, 2])
def test_tail_training_on_cached_prefix_equals_training_the_whole_model(digits8, k):
    pool, test = digits8
    train_set, _, clean = dd.noisy_subset(pool, 80, 0.2, seed=1)
    source = _source()
    kw = dict(epochs=3, lr=3e-3, batch_size=16, seed=5)
    hist = dd.transfer_run(source, k, train_set, test, clean.labels, **kw)
    ref, _ = _reference_run(source, k, train_set, test, **kw)
    np.testing.assert_allclose(hist["test_err"], ref, atol=1e-9)
    assert hist["trainable"].iloc[0] == dd.parameter_counts(source)["trainable"][k]


def test_a_cached_run_is_loaded_not_retrained(digits8, monkeypatch):
    pool, test = digits8
    train_set, _, clean = dd.noisy_subset(pool, 50, 0.2, seed=0)
    first = dd.transfer_run(_source(), 1, train_set, test, clean.labels, epochs=2, seed=3)
    f = cache.entry(dd.train_tail, dd.CHAPTER, (_source(), 1, train_set, test, clean.labels, 3),
                    {"epochs": 2})
    assert f.exists()
    with monkeypatch.context() as m:
        m.setattr(torch.optim.Adam, "step", None)  # any training would fail now
        again = dd.transfer_run(_source(), 1, train_set, test, clean.labels, epochs=2, seed=3)
    pd.testing.assert_frame_equal(first, again)
    f.write_bytes(f.read_bytes()[:200])  # truncated: trained again, not a crash
    with pytest.warns(UserWarning, match="corrupted"):
        third = dd.transfer_run(_source(), 1, train_set, test, clean.labels, epochs=2, seed=3)
    pd.testing.assert_frame_equal(first.drop(columns="seconds"), third.drop(columns="seconds"))


def test_an_unfrozen_network_memorizes_flipped_labels_and_the_head_alone_does_not(digits8):
    pool, test = digits8
    train_set, _, clean = dd.noisy_subset(pool, 50, 0.4, seed=2)
    source = _source(width=16, depth=4)
    kw = dict(epochs=60, lr=3e-3, batch_size=10, seed=0)
    full = dd.transfer_run(source, 0, train_set, test, clean.labels, **kw)
    head = dd.transfer_run(source, 4, train_set, test, clean.labels, **kw)
    assert full["memorized"].iloc[-1] > 0.8 and full["train_err"].iloc[-1] < 0.1
    assert head["memorized"].iloc[-1] < 0.3
    no_noise = dd.transfer_run(source, 4, clean, test, clean.labels, epochs=1)
    assert no_noise["memorized"].isna().all()


def test_parallel_workers_give_the_same_histories_as_one_process(digits8, tmp_path, monkeypatch):
    pool, test = digits8
    sources = {"a": (_source(), {"name": "a", "recipe": {"seed": 0}})}
    runs = dd.plan(["a"], [20], [0.3], [0, 1], [0, 3])
    out = {}
    for workers in (1, 2):
        monkeypatch.setenv("HELPERS_CACHE", str(tmp_path / f"w{workers}"))
        h = dd.run_plan(runs, sources, pool, test, epochs=2, batch_size=8, workers=workers,
                        progress=False)
        out[workers] = h.drop(columns="seconds")
        assert len(list((tmp_path / f"w{workers}" / dd.CHAPTER).glob("*.pt"))) == len(runs)
    pd.testing.assert_frame_equal(out[1], out[2])
    assert set(out[1]["ratio"]) == {p / 20 for p in dd.parameter_counts(_source())
                                    .set_index("k").loc[[0, 3], "trainable"]}


def _finals(curve, seeds=(0, 1, 2), noise_sd=0.002):
    rng = np.random.default_rng(0)
    rows = [{"source": "s", "size": 100, "noise": 0.2, "seed": s, "k": k,
             "trainable": 1000 - 100 * k, "ratio": (1000 - 100 * k) / 100,
             "test_err": e + rng.normal(0, noise_sd), "train_err": 0.0 if k < 2 else 0.2,
             "memorized": 1.0 if k < 2 else 0.0}
            for s in seeds for k, e in enumerate(curve)]
    return pd.DataFrame(rows)


def test_freezing_wise_test_finds_an_interior_peak_but_not_a_u_shape():
    dd_curve = dd.freezing_wise(_finals([0.10, 0.25, 0.12, 0.05, 0.30])).iloc[0]
    assert dd_curve.shown and dd_curve.k_peak == 1 and dd_curve.sustained
    partial = dd.freezing_wise(_finals([0.25, 0.20, 0.25, 0.05, 0.30])).iloc[0]
    assert partial.shown and partial.k_peak == 2 and not partial.sustained
    assert dd_curve.bump == pytest.approx(0.15, abs=0.01)  # min(.25 - .10, .25 - .05)
    u_curve = dd.freezing_wise(_finals([0.30, 0.20, 0.10, 0.05, 0.30])).iloc[0]
    assert not u_curve.shown and u_curve.k_best == 3


def test_interpolation_threshold_is_the_largest_k_that_fits_the_labels():
    t = dd.interpolation_threshold(_finals([0.1] * 5)).iloc[0]
    assert t.k_interp == 1 and t.trainable_interp == 900 and t.ratio_interp == 9


def _history(curve, seeds=(0, 1, 2)):
    rng = np.random.default_rng(1)
    return pd.DataFrame([{"source": "s", "size": 100, "noise": 0.2, "seed": s, "k": 0,
                          "epoch": e + 1, "test_err": v + rng.normal(0, 0.003)}
                         for s in seeds for e, v in enumerate(curve)])


def test_epoch_wise_test_needs_a_rise_and_a_second_descent():
    down_up_down = [0.5, 0.2, 0.1, 0.2, 0.3, 0.25, 0.2, 0.15, 0.15, 0.15, 0.15, 0.15]
    r = dd.epoch_wise(_history(down_up_down)).iloc[0]
    assert r.shown and r.epoch_early == 3 and r.epoch_peak == 5
    assert r.early == pytest.approx(0.1, abs=0.01) and r.descent == pytest.approx(0.15, abs=0.01)
    overfit = [0.5, 0.2, 0.1, 0.15, 0.2, 0.25, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]
    assert not dd.epoch_wise(_history(overfit)).iloc[0].shown
    monotone = [0.5, 0.3, 0.2, 0.15, 0.12, 0.1, 0.09, 0.08, 0.07, 0.06, 0.05, 0.04]
    r = dd.epoch_wise(_history(monotone, seeds=(0,))).iloc[0]
    assert not r.shown and r.rise == 0 and r.epoch_peak == r.epoch_early


def test_plan_runs_every_setting_for_the_main_source_and_fewer_for_the_others():
    p = dd.plan(["near", "far"], [100, 400], [0.0, 0.2], [0, 1], [0, 1, 2], compare_sizes=[400])
    assert len(p[p.source == "near"]) == 2 * 2 * 2 * 3
    far = p[p.source == "far"]
    assert set(far["size"]) == {400} and set(far["noise"]) == {0.2} and len(far) == 2 * 3
    assert len(p) == len(p.drop_duplicates())





@pytest.mark.slow
def test_rerunning_the_chapter_with_another_noise_rate_changes_its_numbers(smoke_glued, tmp_path):
    a = smoke_glued["double_descent"]
    b = run_chapter("double_descent", tmp_path, "noises=[0.0,0.4]")
    assert a["dd_ew_noise"] == "20" and b["dd_ew_noise"] == "40"
    assert a["dd_p_full"] == b["dd_p_full"]  # same network: only the noise changed
    assert a["dd_mem_by_k"] != b["dd_mem_by_k"]


def test_a_timm_resnet_source_goes_through_fit_and_reports_memorization_every_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))
    full = data.sklearn_digits(16)
    pool, test = data.train_test(full, test=5, seed=0)
    kw = dd.arch_kwargs("resnet18", width=4)
    assert kw == {"channels": (4, 8, 16, 32), "stem_width": 4}
    source, report = dd.pretrain_source("resnet18", data.per_class(pool, 5), test, kw,
                                        resolution=16, epochs=1)
    assert report["sha256"] and 0 <= report["source_accuracy"] <= 1
    again, _ = dd.pretrain_source("resnet18", data.per_class(pool, 5), test, kw, resolution=16,
                                  epochs=1)  # loaded from the cache: same weights
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(),
                                                 again.state_dict().values()))
    train_set, _, clean = dd.noisy_subset(pool, 40, 0.3, seed=0)
    h = dd.transfer_run(source, 3, train_set, test, clean.labels, epochs=2, batch_size=8)
    counts = dd.parameter_counts(source)
    assert list(h.epoch) == [1, 2] and h.trainable.iloc[0] == counts.trainable[3]
    assert h.memorized.between(0, 1).all() and h.train_err.between(0, 1).all()


def _grid(ew_curves: dict, fw_curves: dict, far_curve=None):
    """Synthetic epoch histories (k = 0 per size) and final errors per (source, size) for the
    chapter's claims: ``ew_curves`` {size: curve}, ``fw_curves`` {size: errors over k}."""
    history = pd.concat([_history(c).assign(size=n) for n, c in ew_curves.items()])
    finals = pd.concat([_finals(c).assign(size=n) for n, c in fw_curves.items()])
    if far_curve is not None:
        finals = pd.concat([finals, _finals(far_curve).assign(source="far",
                                                               size=max(fw_curves))])
    return history, finals


def test_source_gap_marks_a_source_better_where_the_bonferroni_welch_interval_excludes_0():
    _, finals = _grid({100: [0.5] * 6}, {100: [0.10, 0.25, 0.12, 0.05, 0.30]},
                      far_curve=[0.10, 0.15, 0.12, 0.15, 0.30])
    gap = dd.source_gap(finals, "s", "far", 100).loc[0.2]
    assert gap.loc[1, "better"] == "far" and gap.loc[3, "better"] == "near"
    assert gap.loc[0, "better"] == "" and gap.loc[4, "better"] == ""
    near = finals[(finals.source == "s") & (finals.k == 1)].test_err
    far = finals[(finals.source == "far") & (finals.k == 1)].test_err
    assert gap.loc[1, "far - near"] == pytest.approx(far.mean() - near.mean())
    ci = stats.ttest_ind(far, near, equal_var=False).confidence_interval(1 - 0.05 / 5)
    assert (gap.loc[1, "low"], gap.loc[1, "high"]) == pytest.approx((ci.low, ci.high))


def test_claims_follow_their_stated_rules():
    down_up_down = [0.5, 0.2, 0.1, 0.2, 0.3, 0.25, 0.2, 0.15, 0.15, 0.15, 0.15, 0.15]
    weak = [0.5, 0.2, 0.1, 0.12, 0.14, 0.14, 0.14, 0.14, 0.14, 0.14, 0.14, 0.14]
    history, finals = _grid({400: down_up_down, 100: weak},
                            {400: [0.10, 0.25, 0.12, 0.05, 0.30], 100: [0.3] * 5},
                            far_curve=[0.10, 0.15, 0.12, 0.15, 0.30])
    ew, fw = dd.epoch_wise(history), dd.freezing_wise(finals[finals.source == "s"])
    gap = dd.source_gap(finals, "s", "far", 400)
    fair = _fair()
    table = dd.claims(fair, fw, finals, "s", 0.2, gap=gap, window=3)
    table = table.set_index("claim (Dar et al.)")
    v = table["verdict"]
    assert v["epoch-wise double descent with label noise"] == "reproduced"
    assert v["larger target set, stronger epoch-wise double descent"] == "reproduced"
    # _finals memorizes everything below k = 2 and nothing above
    assert v["frozen layers decide under- vs overparameterized"] == "reproduced"
    assert v["freezing-wise double descent"] == "reproduced"
    assert v["a less related source can transfer better"] == "reproduced"
    assert "k=1" in table.loc["a less related source can transfer better", "ours"]
    assert table.loc["larger target set, stronger epoch-wise double descent", "ours"].startswith(
        "second descent at n=400 minus n=100: +15.")
    without = dd.claims(fair, fw, finals, "s", 0.2, window=3)
    assert len(without) == 4
    one_size = dd.claims(fair[fair["size"] == 400], fw, finals, "s", 0.2, window=3)
    assert one_size.verdict[1] == "not run (one size)"
    s = dd.epochwise_sentences(ew, "s", 0.2, k0=0)
    assert s["second"].startswith("comes down again after the peak, by 15.")
    thr = dd.interpolation_threshold(finals[finals.source == "s"])
    assert dd.freezing_sentence(fw, thr, "s", 0.2).startswith("a peak at k = 1 for n = 400, "
                                                              "exactly at the empirical")


def test_record_protocol_quotes_the_settings_and_the_test_size():
    params = {"width": 16, "depth": 5, "resolution": 8, "lr": 0.001, "batch_size": 32,
              "epochs": 3, "last": 2, "seeds": [0, 1], "z": 2.0, "sizes": [50, 100]}
    assert dd.record_protocol(params, range(120)) == {
        "dd_width": 16, "dd_depth": 5, "dd_res": 8, "dd_lr": "0.001", "dd_bs": 32,
        "dd_epochs": 3, "dd_last": 2, "dd_n_seeds": 2, "dd_z": "2", "dd_test_n": 120}


def test_record_thresholds_says_where_p_crosses_n_or_on_which_side_it_stays():
    counts = pd.DataFrame({"k": [0, 1, 2], "frozen_through": ["(none)", "a", "b"],
                           "trainable": [10_000, 1_000, 10]})
    rec = dd.record_thresholds(counts, [1_000, 100, 5, 20_000])
    assert rec == {"dd_p_full": "10,000", "dd_p_head": "10", "dd_L": 2,
                   "dd_cross": "crossed at k = 1.0 for n = 1000, crossed at k = 1.5 for n = 100, "
                               "never crossed for n = 5 (p > n at every k), "
                               "never crossed for n = 20000 (p < n at every k)"}
    assert type(rec["dd_L"]) is int  # glued as 2, not np.int64(2)
    table = dd.ratio_table(counts, [100, 400])
    assert table["p/n, n=100"].tolist() == [100.0, 10.0, 0.1]
    assert table["p/n, n=400"].tolist() == [25.0, 2.5, 0.025]
    runs = dd.plan(["s"], [10], [0.2], [0], [0, 1, 2])
    assert dd.record_grid(runs, seconds=12.6) == {"dd_n_runs": 3, "dd_grid_seconds": "13"}


def test_source_table_counts_the_glyph_classes_of_each_source():
    models_ = {"digits": (None, {"recipe": {"chars": "0123456789"}, "source_accuracy": 0.98765}),
               "hub": (None, {"recipe": {}, "source_accuracy": 0.5})}
    table = dd.source_table(models_)
    assert table.source.tolist() == ["digits", "hub"]
    assert table.classes.iloc[0] == 10 and np.isnan(table.classes.iloc[1])
    assert table["source test accuracy"].tolist() == [0.988, 0.5]


def _epoch_grid(curves: dict) -> pd.DataFrame:
    """Epoch histories of source "s" at k = 0 per (size, noise): ``curves`` {(size, noise):
    test-error curve}; the share of flipped labels memorized is epoch / 12, the train error
    0.1."""
    return pd.concat([_history(c).assign(size=n, noise=nz) for (n, nz), c in curves.items()]
                     ).assign(memorized=lambda h: h.epoch / 12, train_err=0.1)


DOWN_UP_DOWN = [0.5, 0.2, 0.1, 0.2, 0.3, 0.25, 0.2, 0.15, 0.15, 0.15, 0.15, 0.15]
WEAK = [0.5, 0.2, 0.1, 0.12, 0.14, 0.14, 0.14, 0.14, 0.14, 0.14, 0.14, 0.14]
MONOTONE = [0.5, 0.3, 0.2, 0.15, 0.12, 0.1, 0.09, 0.08, 0.07, 0.06, 0.05, 0.04]


def test_record_epochwise_reads_the_curve_of_the_largest_set_and_falls_back_without_noise_0():
    history = _epoch_grid({(400, 0.2): DOWN_UP_DOWN, (100, 0.2): WEAK, (400, 0.0): MONOTONE})
    ew = dd.epoch_wise(history)
    rec = dd.record_epochwise(ew, history, "s", 0.2, 0, last=2)
    number = {k: float(v) for k, v in rec.items() if k.startswith("dd_ew_") and
              k not in ("dd_ew_shown_list", "dd_ew_noise", "dd_ew_early_epoch",
                        "dd_ew_peak_epoch")}
    # the curves in points (seed noise 0.3 point): early 10 at epoch 3, peak 30 at epoch 5,
    # final (last 5 epochs) 15; the weak curve rises by 4 and stays; no noise: no rise
    expected = {"dd_ew_early": 10, "dd_ew_peak": 30, "dd_ew_final": 15, "dd_ew_descent": 15,
                "dd_ew_big_rise": 20, "dd_ew_small_rise": 4, "dd_ew_small_descent": 0,
                "dd_ew_clean_rise": 0}
    assert set(number) == set(expected) | {"dd_ew_descent_se"}
    for key, value in expected.items():
        assert number[key] == pytest.approx(value, abs=0.5), key
    assert (rec["dd_ew_early_epoch"], rec["dd_ew_peak_epoch"]) == (3, 5)
    assert (rec["dd_n_big"], rec["dd_n_small"], rec["dd_k0"]) == (400, 100, 0)
    assert type(rec["dd_n_big"]) is int and rec["dd_ew_noise"] == "20"
    assert rec["dd_ew_shown_list"] == "n = 400, k = 0"  # the weak curve does not pass
    assert rec["dd_mem_final"] == "96"  # mean of 11/12 and 12/12
    noisy_only = history[history.noise > 0]
    rec = dd.record_epochwise(dd.epoch_wise(noisy_only), noisy_only, "s", 0.2, 0)
    assert rec["dd_ew_clean_rise"] == "n/a" and rec["dd_mem_final"] == "83"  # epochs 8-12
    flat = _epoch_grid({(400, 0.2): WEAK, (100, 0.2): WEAK})
    assert dd.record_epochwise(dd.epoch_wise(flat), flat, "s", 0.2, 0)["dd_ew_shown_list"] == "none"
    assert list(dd.epochwise_table(ew, "s").index.names) == ["size", "noise", "k"]


def test_record_freezing_reads_the_largest_set_and_falls_back_where_nothing_was_run():
    finals = pd.concat([_finals([0.10, 0.25, 0.12, 0.05, 0.30]).assign(size=400),
                        _finals([0.3] * 5),  # n = 100: flat, no bump
                        _finals([0.20, 0.10, 0.15, 0.30, 0.40]).assign(size=400, noise=0.0)])
    fw, thr = dd.freezing_wise(finals), dd.interpolation_threshold(finals)
    rec = dd.record_freezing(fw, thr, finals, "s", 0.2)
    assert (rec["dd_fw_best_k"], rec["dd_fw_worst_k"], rec["dd_fw_kpeak"]) == (3, 4, 1)
    assert type(rec["dd_fw_kpeak"]) is int
    for key, points in (("dd_fw_best", 5), ("dd_fw_worst", 30), ("dd_fw_bump", 15),
                        ("dd_fw_clean_best", 10), ("dd_fw_clean_worst", 40)):
        assert float(rec[key]) == pytest.approx(points, abs=0.5), key
    assert float(rec["dd_fw_bump_se"]) < 1
    # _finals fits the labels (train error 0) up to k = 1: p = 900 for n = 100 -> ratio 9
    # (the ratio column of _finals is per 100 samples whatever the size)
    assert (rec["dd_fw_kinterp"], rec["dd_fw_ratio_interp"]) == (1, "9")
    assert rec["dd_fw_shown_list"] == "n = 400, noise 20 %"
    assert rec["dd_mem_by_k"] == "k = 0: 100 %, k = 1: 100 %, k = 2: 0 %, k = 3: 0 %, k = 4: 0 %"
    assert rec["dd_fw_clean_best_k"] == 1
    table = dd.freezing_table(fw, thr, "s")
    assert len(table) == 3 and {"k_peak", "k_interp"} <= set(table.columns)

    two_k = _finals([0.1, 0.2]).assign(train_err=0.2)  # no interior k, nothing interpolates
    fw, thr = dd.freezing_wise(two_k), dd.interpolation_threshold(two_k)
    rec = dd.record_freezing(fw, thr, two_k, "s", 0.2)
    assert (rec["dd_fw_kpeak"], rec["dd_fw_kinterp"], rec["dd_fw_ratio_interp"]) == (
        "none", "none", "n/a")
    assert rec["dd_fw_shown_list"] == "none"
    assert [rec[f"dd_fw_clean_{k}"] for k in ("best_k", "best", "worst")] == ["n/a"] * 3


def test_record_sources_names_the_better_source_and_falls_back_with_one_source():
    import matplotlib.pyplot as plt

    _, finals = _grid({100: [0.5] * 6}, {100: [0.10, 0.25, 0.12, 0.05, 0.30]},
                      far_curve=[0.10, 0.15, 0.12, 0.15, 0.30])
    size, gap = dd.near_far(finals, ["s", "far"], [50, 100])
    assert size == 100 and gap.columns[:2].tolist() == ["s", "far"]
    rec = dd.record_sources(finals, gap, size, 0.2)
    assert rec["dd_n_cmp"] == 100
    assert rec["dd_far_better"] == "noise 20 %, k = 1"
    assert rec["dd_near_better"] == "noise 20 %, k = 3"
    best = finals.groupby(["source", "k"]).test_err.mean().groupby("source").min()
    assert rec["dd_best_near"] == f"{100 * best['s']:.1f}"
    assert rec["dd_best_far"] == f"{100 * best['far']:.1f}"
    not_run = dd.record_sources(finals, gap, size, 0.4)
    assert not_run["dd_best_near"] == not_run["dd_best_far"] == "n/a"
    fig = dd.plot_sources(finals, size)
    assert sorted(fig.axes[0].get_legend_handles_labels()[1]) == ["source: far", "source: s"]
    plt.close(fig)

    one = pd.concat([finals[finals.source == "s"], finals[finals.source == "s"].assign(size=400)])
    size, gap = dd.near_far(one, ["s"], [100])
    assert (size, gap) == (400, None)
    assert dd.record_sources(one, gap, size, 0.2) == {
        "dd_n_cmp": 400, "dd_far_better": "n/a (one source)",
        "dd_near_better": "n/a (one source)", "dd_best_near": "n/a (one source)",
        "dd_best_far": "n/a (one source)"}
    fig = dd.plot_sources(one, size)
    assert fig.axes[0].get_legend_handles_labels()[1] == ["source: s"]
    plt.close(fig)


def test_record_claims_glues_each_verdict_and_marks_the_source_claim_not_run():
    history, finals = _grid({400: DOWN_UP_DOWN, 100: WEAK},
                            {400: [0.10, 0.25, 0.12, 0.05, 0.30], 100: [0.3] * 5},
                            far_curve=[0.10, 0.15, 0.12, 0.15, 0.30])
    near = finals[finals.source == "s"]
    ew, fw, thr = dd.epoch_wise(history), dd.freezing_wise(near), dd.interpolation_threshold(near)
    table = dd.claims(_fair(), fw, finals, "s", 0.2, gap=dd.source_gap(finals, "s", "far", 400),
                      window=3)
    rec = dd.record_claims(table, ew, fw, thr, "s", 0.2, 0)
    assert [rec[f"dd_verdict_{i}"] for i in range(5)] == table.verdict.tolist()
    assert [rec[k] for k in ("dd_ew_summary", "dd_size_summary", "dd_fw_summary",
                             "dd_src_summary")] == table.ours[[0, 1, 3, 4]].tolist()
    assert rec["dd_regime_sentence"] == dd.regime_sentence(table.verdict[2])
    assert rec["dd_second_sentence"].startswith("comes down again after the peak")
    assert rec["dd_ew_weak_sentence"].startswith("At k = 0 the seed-mean curve does come down")
    assert rec["dd_fw_sentence"].startswith("a peak at k = 1 for n = 400")
    four = dd.claims(_fair(), fw, finals, "s", 0.2, window=3)
    rec = dd.record_claims(four, ew, fw, thr, "s", 0.2, 0)
    assert rec["dd_verdict_4"] == rec["dd_src_summary"] == "not run (one source)"
    assert [rec[f"dd_verdict_{i}"] for i in range(4)] == four.verdict.tolist()


def test_the_regime_sentence_claims_the_switch_only_when_its_verdict_reproduces_it():
    assert dd.regime_sentence("reproduced").startswith("The number of frozen layers does switch")
    sentence = dd.regime_sentence("not reproduced")
    assert " did not switch " in sentence and " does switch " not in sentence
    assert "more than 80% of the flipped labels" in sentence and "less than 20%" in sentence


def test_explore_draws_the_chosen_runs_and_the_explorer_offers_the_main_sources_settings(capsys):
    import matplotlib.pyplot as plt

    history = pd.concat([_epoch_grid({(400, 0.2): DOWN_UP_DOWN, (100, 0.0): WEAK}).assign(k=k)
                         for k in (0, 2)])
    history = pd.concat([history, history[history["size"] == 400].assign(source="far")])
    dd.explore(history, 400, 0.2, average=False, frozen=(2,), source="far")
    test_ax = plt.gcf().axes[0]
    assert len(test_ax.lines) == 3 and test_ax.get_title() == "far, n=400, noise 20 %"
    plt.close("all")
    dd.explore(history, 100, 0.2)
    assert "no runs for this choice" in capsys.readouterr().out and plt.get_fignums() == []
    w = dd.explorer(history, "s")
    size, noise, average, frozen, source = w.children[:5]
    assert (size.options, size.value) == ((100, 400), 400)
    assert (noise.options, noise.value) == ((0.0, 0.2), 0.2)
    assert frozen.value == (0, 2) and source.options == ("s", "far") and average.value
    plt.close("all")


def _runs(curve, seeds=(0, 1, 2), size=100, fit_epoch=4, noise_sd=0.003):
    rng = np.random.default_rng(size)
    return pd.DataFrame([{"source": "s", "size": size, "noise": 0.2, "seed": s, "k": 0,
                          "epoch": e + 1, "test_err": v + rng.normal(0, noise_sd),
                          "train_err": 0.0 if e + 1 >= fit_epoch else 0.2}
                         for s in seeds for e, v in enumerate(curve)])


FAIR_DOWN_UP_DOWN = [0.5, 0.2, 0.1, 0.1, 0.2, 0.3, 0.3, 0.3, 0.2, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15]
FAIR_OVERFIT = [0.5, 0.2, 0.1, 0.1, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]


def test_second_descent_measures_rise_and_descent_on_held_out_seeds():
    r = dd.second_descent(_runs(FAIR_DOWN_UP_DOWN), window=3).iloc[0]
    # smoothed (3 epochs): early min 0.133 at epochs 4, peak 0.30 at epoch 8; final 0.15
    assert r.rise == pytest.approx(0.3 - 0.4 / 3, abs=0.01) and r.epoch_peak == 8
    assert r.descent == pytest.approx(0.15, abs=0.01) and r.descent_low > 0
    assert r.epoch_fit == 4 and dd.epochwise_verdict(r, window=3) == "reproduced"
    assert len(r.descents) == 3 and r.descent_detectable > 0
    over = dd.second_descent(_runs(FAIR_OVERFIT), window=3).iloc[0]
    assert over.rise_low > 0 and over.descent_low < 0 < over.descent_high
    assert dd.epochwise_verdict(over, window=3) == "partly"
    late = dd.second_descent(_runs(FAIR_DOWN_UP_DOWN, fit_epoch=14), window=3).iloc[0]
    assert dd.epochwise_verdict(late, window=3).startswith("not tested")
    with pytest.raises(ValueError, match="window"):
        dd.second_descent(_runs(FAIR_DOWN_UP_DOWN), window=8)


def _fair():
    """The fair test's table: a clear second descent at n = 400, none at n = 100."""
    return pd.concat([dd.second_descent(_runs(FAIR_DOWN_UP_DOWN, size=400), window=3),
                      dd.second_descent(_runs(FAIR_OVERFIT, size=100), window=3)])


def test_a_noisy_flat_curve_shows_no_second_descent_though_its_highest_epoch_is_above_the_end():
    flat = [0.5, 0.2] + [0.2] * 28
    r = dd.second_descent(_runs(flat, seeds=range(6), noise_sd=0.03), window=5).iloc[0]
    assert r.descent_low < 0 < r.descent_high  # held-out seeds: no selection bias
    assert dd.epochwise_verdict(r) != "reproduced"


def test_size_effect_compares_the_second_descents_of_two_sizes():
    table = pd.concat([dd.second_descent(_runs(FAIR_DOWN_UP_DOWN, size=400), window=3),
                       dd.second_descent(_runs(FAIR_OVERFIT, size=100), window=3)])
    e = dd.size_effect(table, small=100, big=400)
    assert e["verdict"] == "reproduced" and e["effect"] == pytest.approx(0.15, abs=0.01)
    same = pd.concat([dd.second_descent(_runs(FAIR_OVERFIT, size=s), window=3) for s in (100, 400)])
    assert dd.size_effect(same, 100, 400)["verdict"] == "no difference detected"
    assert dd.size_effect(table, small=400, big=100)["verdict"] == "opposite"


def test_record_fair_quotes_the_largest_set_and_the_table_is_in_points():
    import matplotlib.pyplot as plt

    history = pd.concat([_runs(FAIR_DOWN_UP_DOWN, size=400), _runs(FAIR_OVERFIT, size=100)])
    history = history.assign(arch="resnet10t", resolution=16)
    fair = dd.second_descent(history, window=3)
    rec = dd.record_fair(fair, history, window=3)
    assert (rec["dd_fair_arch"], rec["dd_fair_res"], rec["dd_fair_sizes"]) == (
        "resnet10t", 16, "100 and 400")
    assert (rec["dd_fair_epochs"], rec["dd_fair_seeds"], rec["dd_fair_fit"]) == (15, 3, 4)
    assert rec["dd_fair_descent"].startswith("+15.") and rec["dd_fair_verdict"] == "reproduced"
    table = dd.second_descent_table(fair)
    assert table.loc[400, "descent"] == pytest.approx(15, abs=0.5)
    assert table.loc[100, "descent_low"] < 0 < table.loc[100, "descent_high"]
    fig = dd.plot_fair(history, fair)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 4  # 2 sizes + 2 peak markers
    assert rec["dd_fair_n_runs"] == 6
    plt.close(fig)


def test_source_gap_without_a_common_setting_is_empty_and_said_so():
    _, finals = _grid({100: [0.5] * 6}, {100: [0.10, 0.25, 0.12, 0.05, 0.30]},
                      far_curve=[0.10, 0.15, 0.12, 0.15, 0.30])
    finals.loc[finals.source == "far", "noise"] = 0.4
    gap = dd.source_gap(finals, "s", "far", 100)
    assert gap.empty and gap.columns[:2].tolist() == ["s", "far"]
    assert dd.ours_sources(gap) == "no (noise, k) run from both sources"
    assert dd.record_sources(finals, gap, 100, 0.2)["dd_far_better"] == "none"


def test_sentences_give_one_rise_once_and_the_side_of_a_difference_in_words():
    assert dd._span(pd.Series([14.1, 14.1]), "a rise", "rises") == "a rise of 14.1"
    assert dd._span(pd.Series([14.1, 9.0]), "a rise", "rises") == "rises of 9.0 to 14.1"
    assert dd._below(1.04) == "1.0 points below"
    assert dd._below(-2.5) == "2.5 points above"
