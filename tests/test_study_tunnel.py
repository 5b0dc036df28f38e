"""Chapter 3 (tunnel effect): the study functions of helpers/studies/tunnel.py.

Fast tests on synthetic curves and tiny data; slow ones run the backbones' jobs at the smoke
scale and rerun the chapter in the smoke profile with another parameter.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_chapter

from helpers import data, models
from helpers.metrics import ood_retained
from helpers.studies import tunnel

ROOT = Path(__file__).resolve().parents[1]


def _curves(member: str, ood: dict[str, list[float]], id_curve=(0.5, 0.7, 0.8, 0.9, 0.95),
            seeds=(0, 1, 2), jitter: float = 0.01, chance: float = 0.1) -> pd.DataFrame:
    """A probe-curve table like probe_curves' for one backbone, with small seed noise."""
    rng = np.random.default_rng(0)
    rows = []
    for name, curve in {"ID": list(id_curve), **ood}.items():
        for seed in seeds:
            noisy = np.clip(np.asarray(curve) + rng.normal(0, jitter, len(curve)), 0, 1)
            for i, acc in enumerate(noisy):
                rows.append({"member": member, "dataset": name, "layer": f"l{i}",
                             "layer_index": i, "depth": i / (len(curve) - 1), "seed": seed,
                             "accuracy": float(acc), "chance": chance})
    return pd.DataFrame(rows)


def test_variants_list_each_setting_once_and_name_the_default_resolution_plainly():
    plan = tunnel.variants(["resolution", "depth"], "resnet10t", [16, 32], [], [],
                           ["resnet10t", "resnet18"], [])
    assert plan.member.tolist() == ["resnet10t@16", "resnet10t", "resnet10t", "resnet18"]
    assert plan.groupby("variable").order.max().to_dict() == {"depth": 1, "resolution": 1}
    hub = tunnel.variants(["resolution"], "resnet50.tv_in1k", [32, 224], [], [], [], [])
    assert hub.member.tolist() == ["resnet50.tv_in1k@32", "resnet50.tv_in1k@224"]
    with pytest.raises(ValueError, match="unknown"):
        tunnel.variants(["colour"], "resnet10t", [16, 32], [], [], [], [])
    with pytest.raises(ValueError, match="at least 2"):
        tunnel.variants(["depth"], "resnet10t", [16, 32], [], [], ["resnet18"], [])


def test_probe_split_is_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(4), [12, 15, 20, 11])
    train, test = tunnel.probe_split(labels, 5, 3, seed=1)
    assert not set(train) & set(test)
    assert np.bincount(labels[train]).tolist() == [5, 5, 5, 5]
    assert np.bincount(labels[test]).tolist() == [3, 3, 3, 3]
    again, _ = tunnel.probe_split(labels, 5, 3, seed=1)
    other, _ = tunnel.probe_split(labels, 5, 3, seed=2)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    with pytest.raises(ValueError, match="need more than"):
        tunnel.probe_split(labels, 11, 3, seed=0)


def test_summarize_finds_a_planted_tunnel_and_none_where_ood_follows_id():
    curves = _curves("net", {"styles": [0.40, 0.60, 0.50, 0.40, 0.30],
                             "digits": [0.30, 0.50, 0.60, 0.80, 0.90]})
    s = tunnel.summarize(curves).set_index("dataset")
    assert s.loc["styles", "pivot_layer"] == "l1"
    assert s.loc["styles", "retained"] == pytest.approx(50, abs=3)
    assert s.loc["styles", "strength"] == "strong"
    assert s.loc["digits", "retained"] == 100 and s.loc["digits", "strength"] == "negligible"
    assert s.loc["digits", "pearson"] > 0.9 > s.loc["styles", "pearson"]
    assert 0 < s.loc["styles", "retained_sd"] < 5
    assert s.loc["digits", "alignment"] > s.loc["styles", "alignment"]


def _augmentation_backbones() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(infos, plan) of two backbones, "weak" without and "strong" with augmentation."""
    infos = pd.DataFrame([
        {"member": m, "augment": aug, "source_classes": list("0123456789"), "id_classes": 10,
         "layers": 5, "params_M": 1.0} for m, aug in (("weak", False), ("strong", True))])
    plan = pd.DataFrame([{"variable": "augmentation", "order": i, "member": m, "model": m,
                          "resolution": None} for i, m in enumerate(("weak", "strong"))])
    return infos, plan


def test_verdicts_follow_the_papers_direction_and_its_noise():
    infos, plan = _augmentation_backbones()

    def verdict(weak, strong, plan=plan, seeds=(0, 1, 2)):
        curves = pd.concat([_curves("weak", {"a": weak}, seeds=seeds),
                            _curves("strong", {"a": strong}, seeds=seeds)])
        draws = tunnel.bootstrap(curves, n_boot=300)
        table = tunnel.variable_table(plan, tunnel.summarize(curves), infos, draws=draws)
        return table, tunnel.verdicts(table, draws).iloc[0]

    tunnel_curve, flat = [0.5, 0.8, 0.6, 0.5, 0.4], [0.5, 0.8, 0.8, 0.75, 0.72]
    table, v = verdict(tunnel_curve, flat)
    assert table.setting.tolist() == ["no augmentation", "augmentation"]
    assert (table.retained_se > 0).all() and (table.retained_se < 3).all()
    assert v.verdict == "agrees" and v.paper_low == 64.3 and v.paper_high == 78.4
    assert v.difference == pytest.approx(40, abs=5)
    assert v.difference_low < v.difference < v.difference_high and 0 < v.detectable < 10
    assert (table.retained_low < table.retained_high).all()
    assert (table.pearson_low <= table.pearson_high).all()
    assert verdict(tunnel_curve, flat, plan=plan.assign(order=[1, 0]))[1].verdict == "opposite"
    # no difference, tightly measured: the paper's +14.1 points lie outside the interval
    assert verdict(tunnel_curve, tunnel_curve)[1].verdict.startswith("not reproduced")
    depth = plan.assign(variable="depth")  # the paper gives no number: nothing to exclude
    assert verdict(tunnel_curve, tunnel_curve, plan=depth)[1].verdict == "no difference detected"
    assert verdict(tunnel_curve, flat, seeds=(0,))[1].verdict.startswith("undetermined")


def test_verdicts_over_backbone_seeds_are_welch_intervals_of_their_retained():
    import scipy.stats

    infos, plan = _augmentation_backbones()
    replicates = pd.concat([plan.assign(backbone_seed=0)] + [
        plan.assign(member=plan.member + f"/s{s}", backbone_seed=s) for s in (1, 2)])
    ends = {"weak": [0.5, 0.8, 0.6, 0.5, 0.4], "strong": [0.5, 0.8, 0.7, 0.62, 0.55]}
    curves = pd.concat([_curves(m, {"a": np.add(ends[m.split("/")[0]], 0.02 * i),
                                    "b": [0.3, 0.35, 0.3, 0.3, 0.28]})
                        for i, m in enumerate(replicates.member)])
    summary = tunnel.summarize(curves)
    draws = tunnel.bootstrap(curves, n_boot=200)
    table = tunnel.variable_table(plan, summary, infos, draws=draws)
    seeds = tunnel.seed_table(summary, replicates)
    v = tunnel.verdicts(table, draws, seeds=seeds).iloc[0]

    def retained(member):  # each backbone's own probe-seed-mean curves, mean over its sets
        m = curves[curves.member == member].groupby(["dataset", "layer_index"]).accuracy.mean()
        return np.mean([ood_retained(m["ID"].to_numpy(), m[d].to_numpy())["retained"]
                        for d in "ab"])

    lows, highs = ([retained(m) for m in replicates.member if m.split("/")[0] == end]
                   for end in ("weak", "strong"))
    ci = scipy.stats.ttest_ind(highs, lows, equal_var=False).confidence_interval(0.95)
    assert v.basis == "backbone seeds" and v.backbone_seeds == 3
    assert (v.ours_low, v.ours_high) == pytest.approx((np.mean(lows), np.mean(highs)))
    assert (v.difference_low, v.difference_high) == pytest.approx((ci.low, ci.high))
    assert v.verdict == "agrees" and v.sets_low <= v.difference <= v.sets_high
    # one backbone seed: the bootstrap over sets and probe seeds, as before
    alone = tunnel.verdicts(table, draws, seeds=seeds[seeds.backbone_seed == 0]).iloc[0]
    assert alone.basis == "OOD sets" and alone.difference_low == alone.sets_low


def test_backbone_seeds_retrain_zoo_backbones_only():
    plan = tunnel.variants(["depth"], "resnet10t", [16, 32], [], [], ["resnet10t", "resnet18.tv_in1k"],
                           [])
    out = tunnel.with_backbone_seeds(plan, [0, 2])
    assert out.member.tolist() == ["resnet10t", "resnet18.tv_in1k", "resnet10t/s2"]
    assert out.backbone_seed.tolist() == [0, 0, 2]
    for bad in ([], [1, 2], [0, -1], [0, 1.5]):
        with pytest.raises(ValueError, match="backbone_seeds"):
            tunnel.with_backbone_seeds(plan, bad)
    with pytest.raises(ValueError, match="one set of weights"):
        tunnel.load_member("resnet18.tv_in1k", seed=1)


def test_bootstrap_draws_are_the_measures_of_resampled_seeds_and_sets():
    curves = _curves("net", {"a": [0.4, 0.6, 0.5, 0.4, 0.3], "b": [0.3, 0.5, 0.6, 0.8, 0.9]},
                     seeds=(0, 1), jitter=0.05)
    draws = tunnel.bootstrap(curves, n_boot=400, random_state=2)

    def retained(name, seeds):
        c = curves[curves.seed.isin(seeds)].groupby(["dataset", "layer_index"]).accuracy.mean()
        return ood_retained(c["ID"].to_numpy(), c[name].to_numpy())["retained"]

    # a draw averages two (set, seed multiset) picks: every value is such a mean
    singles = {(n, s): retained(n, s) for n in "ab" for s in ((0,), (1,), (0, 1))}
    means = {round((x + y) / 2, 9) for x in singles.values() for y in singles.values()}
    assert set(np.round(draws.retained, 9)) <= means
    assert len(set(np.round(draws.retained, 9))) > 3
    with pytest.raises(ValueError, match="n_boot"):
        tunnel.bootstrap(curves, n_boot=0)


def test_strength_bins_match_methods():
    assert [tunnel.strength(r) for r in (100, 95, 94.9, 90, 85, 80, 79.9, 10)] == [
        "negligible", "negligible", "weak", "weak", "medium", "medium", "strong", "strong"]


def test_glyph_styles_are_labelled_by_font_and_cached():
    s = tunnel.load_set("glyph_styles", resolution=16, per_class=4, style_chars="AB")
    assert len(s.classes) == len(data.find_fonts(chars="AB")) and set(s.counts()) == {4}
    assert s.classes == sorted(set(s.attrs["font"]))
    assert set(s.attrs["char"]) <= {"A", "B"}
    tic = time.perf_counter()
    again = tunnel.load_set("glyph_styles", resolution=16, per_class=4, style_chars="AB")
    assert again.fingerprint == s.fingerprint and time.perf_counter() - tic < 2
    with pytest.raises(ValueError, match="did you mean 'invert'"):
        tunnel.load_set("invrt")


def test_torchvision_set_draws_per_class_from_a_set_without_splits():
    s = tunnel.load_set("FakeData", resolution=12, per_class=3, seed=0)
    assert s.images.shape[1:] == (3, 12, 12) and s.images.dtype == torch.uint8
    assert (s.counts() <= 3).all() and len(s.classes) == len(s.counts()) >= 2


def test_probe_curves_read_an_easy_task_at_every_layer_and_are_cached():
    torch.manual_seed(0)
    net = models.create("smallcnn", 2, width=8, depth=3, img_size=16).eval()
    n = 24
    images = torch.zeros(2 * n, 1, 16, 16, dtype=torch.uint8)
    images[n:, :, 4:12, 4:12] = 255  # class 1: a bright square
    easy = data.ImageSet(images, torch.tensor([0] * n + [1] * n), ["dark", "square"], "toy")
    shuffled = data.ImageSet(images, torch.tensor(np.random.default_rng(0).permutation(
        [0] * n + [1] * n)), ["a", "b"], "toy-random")
    kw = dict(seeds=(0, 1), train_per_class=8, test_per_class=10, epochs=20)
    curves = tunnel.probe_curves(net, "toy", {"ID": easy, "random": shuffled}, **kw)
    assert len(curves) == 2 * 3 * 2 and set(curves.chance) == {0.5}
    assert (curves[curves.dataset == "ID"].accuracy == 1).all()
    assert curves[curves.dataset == "random"].accuracy.mean() < 0.8
    tic = time.perf_counter()
    again = tunnel.probe_curves(net, "toy", {"ID": easy, "random": shuffled}, **kw)
    assert time.perf_counter() - tic < 2
    pd.testing.assert_frame_equal(curves, again)


def _plan(*rows) -> pd.DataFrame:
    """A plan like variants': (variable, member) per row, in order within each variable."""
    out, order = [], {}
    for variable, member in rows:
        order[variable] = order.get(variable, -1) + 1
        out.append({"variable": variable, "order": order[variable], "member": member,
                    "model": member, "resolution": None})
    return pd.DataFrame(out)


@pytest.mark.slow
def test_run_trains_and_probes_each_backbone_as_a_job_and_a_rerun_reads_the_cache(
        monkeypatch, tmp_path):
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))
    plan = tunnel.with_backbone_seeds(
        tunnel.variants(["resolution"], "smallcnn", [16, 32], [], [], [], []), [0, 1])
    kw = {"scale": "smoke", "per_class": 8, "progress": False, "seeds": [0],
          "train_per_class": 4, "test_per_class": 4, "epochs": 2}
    infos, curves, geom = tunnel.run(plan, ["rotate90"], workers=2, **kw)
    members = plan.member.tolist()
    assert infos.member.tolist() == members  # the plan's order, whichever job finished first
    assert infos.backbone_seed.tolist() == plan.backbone_seed.tolist()
    assert infos.train_resolution.tolist() == [16, 32, 16, 32]
    assert all(tunnel.zoo.trained("smallcnn", "smoke", **tunnel._zoo_overrides(r, s))
               for r, s in zip(plan.resolution, plan.backbone_seed))
    assert set(curves.groupby(["member", "dataset"]).groups) == {
        (m, d) for m in members for d in ("ID", "rotate90")}
    assert sorted(geom.member.unique()) == ["smallcnn", "smallcnn@16"]  # seed 0's backbones only
    assert geom.groupby("member").layer.nunique().tolist() == [infos.layers[0]] * 2

    def must_not_run(*args, **kwargs):
        raise AssertionError("a cached backbone was loaded again")

    monkeypatch.setattr(tunnel, "load_member", must_not_run)
    again = tunnel.run(plan, ["rotate90"], workers=2, **kw)
    for first, second in zip((infos, curves, geom), again):
        pd.testing.assert_frame_equal(first, second)


def test_record_run_quotes_the_sizes_of_the_run():
    curves = _curves("net", {"a": [0.4, 0.6, 0.5, 0.4, 0.3]}, seeds=(0, 1))
    infos = pd.DataFrame({"member": ["net", "net/s1"], "backbone_seed": [0, 1]})
    rec = tunnel.record_run(infos, curves, seconds=12.6, seeds=[0, 1], n_boot=50,
                            train_per_class=7, resolutions=[16, 32], zoo_resolution=32)
    assert rec == {"tunnel_n_fonts": len(data.find_fonts()), "tunnel_seconds": "13",
                   "tunnel_n_sets": 1, "tunnel_sets": "a", "tunnel_n_backbone_seeds": 2,
                   "tunnel_n_backbones": 2, "tunnel_n_probes": 2 * 2 * 5,
                   "tunnel_n_seeds": 2, "tunnel_n_boot": 50, "tunnel_train_per_class": 7,
                   "tunnel_px": "16-32"}
    assert tunnel.record_run(infos, curves, seconds=0, seeds=[0], n_boot=2, train_per_class=1,
                             resolutions=[224, 32], zoo_resolution=64)["tunnel_px"] == "32-64-224"


def test_record_retained_reads_the_pivot_of_the_shared_backbone():
    plan = _plan(("resolution", "a"), ("resolution", "b"), ("depth", "b"), ("depth", "c"))
    summary = pd.DataFrame([{"member": m, "dataset": d, "retained": r} for m, d, r in (
        ("c", "glyph_styles", 70.44), ("c", "mnist5k", 100.0), ("a", "glyph_styles", 50.0),
        ("a", "mnist5k", 100.0), ("b", "glyph_styles", 60.0), ("b", "mnist5k", 90.0))])
    pivot = tunnel.retained_pivot(summary, plan)
    assert list(pivot.index) == ["a", "b", "c"] and pivot.loc["c", "glyph_styles"] == 70.4
    assert tunnel.base_member(plan) == "b"
    rec = tunnel.record_retained(summary, plan)
    # column means 60.13 / 96.67 span 36.5; row means 75 / 75 / 85.2 span 10.2
    assert rec == {"tunnel_spread_sets": "37", "tunnel_spread_backbones": "10",
                   "tunnel_spread_word": "more", "tunnel_base": "b", "tunnel_base_styles": "60",
                   "tunnel_styles_col": "glyph_styles", "tunnel_min_retained": "50",
                   "tunnel_min_where": "a on glyph_styles", "tunnel_max_retained": "100"}
    no_styles = tunnel.record_retained(summary.replace("glyph_styles", "invert"), plan)
    assert no_styles["tunnel_styles_col"] == "invert" and no_styles["tunnel_base_styles"] == "60"


def test_record_rank_is_the_drop_of_the_shared_backbones_rank_from_its_peak():
    plan = _plan(("depth", "a"), ("depth", "b"), ("classes", "b"), ("classes", "c"))
    geom = pd.DataFrame([{"member": m, "metric": metric, "layer_index": i, "value": v}
                         for m, values in (("b", (10, 40, 30)), ("a", (5, 6, 7)))
                         for metric in ("nc1", "numerical_rank")
                         for i, v in reversed(list(enumerate(values)))])  # deepest row first
    assert tunnel.record_rank(geom, plan) == {"tunnel_rank_drop_base": "25",
                                              "tunnel_rank_last_base": "30",
                                              "tunnel_rank_peak_base": "40"}


def test_record_verdicts_fill_every_variable_and_mark_those_not_run():
    verdicts = pd.DataFrame([{"variable": "augmentation", "ours_low": 61.24, "ours_high": 70.05,
                              "ours_low_setting": "no augmentation",
                              "ours_high_setting": "augmentation", "verdict": "agrees",
                              "difference": 8.81, "difference_low": 2.0,
                              "difference_high": 15.66, "detectable": 6.04,
                              "basis": "backbone seeds", "sets_low": -1.04, "sets_high": 17.3,
                              "sets_detectable": 12.01}])
    table = pd.DataFrame({"variable": "augmentation", "order": [1, 0], "rank_last": [20.4, 9.6],
                          "pivot_depth": [0.75, 0.5], "layers": [5, 5]})
    rec = tunnel.record_verdicts(verdicts, table)
    per_variable = ("low", "high", "low_setting", "high_setting", "verdict", "diff", "rank_low",
                    "rank_high", "pivot_low", "pivot_high", "layers_low", "layers_high", "basis",
                    "sets")
    assert set(rec) == {f"tunnel_{s}_{k}" for s in tunnel.GLUE_KEYS.values()
                        for k in per_variable} | {"tunnel_arch_sentence"}
    assert (rec["tunnel_aug_low"], rec["tunnel_aug_high"]) == ("61.2", "70.0")
    assert rec["tunnel_aug_diff"] == "+8.8 [+2.0, +15.7], detectable 6.0"
    assert rec["tunnel_aug_sets"] == "[-1.0, +17.3], detectable 12.0"
    assert rec["tunnel_aug_basis"] == "backbone seeds" and rec["tunnel_res_basis"] == "-"
    assert (rec["tunnel_aug_rank_low"], rec["tunnel_aug_rank_high"]) == ("10", "20")
    assert (rec["tunnel_aug_pivot_low"], rec["tunnel_aug_pivot_high"]) == ("0.50", "0.75")
    assert rec["tunnel_aug_layers_low"] == rec["tunnel_aug_layers_high"] == "5"
    assert rec["tunnel_aug_verdict"] == "agrees"
    assert rec["tunnel_res_low"] == "(not run)" and rec["tunnel_res_verdict"] == "not run"
    assert rec["tunnel_res_diff"] == rec["tunnel_res_rank_low"] == "-"
    assert rec["tunnel_arch_sentence"].startswith("Not run in this profile")
    arch = tunnel.record_verdicts(verdicts.assign(variable="architecture",
                                                  ours_low_setting="resnet10t",
                                                  ours_high_setting="vit_tiny"),
                                  table.assign(variable="architecture"))
    assert arch["tunnel_arch_sentence"] == "61.2 % with resnet10t vs 70.0 % with vit_tiny"


def test_the_chapters_tables_and_explorer_show_the_chosen_settings():
    import matplotlib.pyplot as plt

    infos = pd.DataFrame([
        {"member": m, "source": "glyphs", "train_resolution": 32, "augment": aug,
         "source_classes": list("0123456789"), "id_classes": 10, "layers": 5, "params_M": 1.0,
         "source_accuracy": 0.9, "extra": 0} for m, aug in (("weak", False), ("strong", True))])
    plan = _plan(("augmentation", "weak"), ("augmentation", "strong"))
    curves = pd.concat([_curves("weak", {"a": [0.5, 0.8, 0.6, 0.5, 0.4], "b": [.3] * 5}),
                        _curves("strong", {"a": [0.5, 0.8, 0.8, 0.75, 0.72], "b": [.3] * 5})])
    summary = tunnel.summarize(curves)
    table = tunnel.variable_table(plan, summary, infos, draws=tunnel.bootstrap(curves, n_boot=20))
    assert "extra" not in tunnel.backbone_table(infos).columns
    assert list(tunnel.per_variable_table(table.assign(rank_last=1.0)).setting) == [
        "no augmentation", "augmentation"]
    rows = tunnel.explorer_rows(summary, table, "augmentation", "a")
    assert list(rows.member) == ["weak", "strong"] and rows.retained.iloc[0] < 100
    w = tunnel.explorer(curves, summary, table, ["a", "b"])
    assert [c.options for c in w.children[:2]] == [("augmentation",), ("a", "b")]
    plt.close("all")


def test_plot_set_titles_a_set_with_its_size():
    fig = tunnel.plot_set("glyph_styles", resolution=16, per_class=4, style_chars="AB")
    n_fonts = len(data.find_fonts(chars="AB"))
    assert fig.axes[0].get_title() == f"glyph_styles: {n_fonts} classes, {4 * n_fonts} images"





@pytest.mark.slow
def test_rerunning_the_chapter_with_another_pooling_changes_its_numbers(smoke_glued, tmp_path):
    a, b = smoke_glued["tunnel"], run_chapter("tunnel", tmp_path, "cnn_pooling=mean")
    assert a.keys() == b.keys() and "tunnel_res_low" in a
    assert a["tunnel_n_probes"] == b["tunnel_n_probes"]
    numbers = ("tunnel_res_low", "tunnel_res_high")
    assert [a[k] for k in numbers] != [b[k] for k in numbers]