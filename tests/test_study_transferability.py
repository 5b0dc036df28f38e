"""Chapter 2 (transferability / FaCe): targets, fine-tuning cache, scores, tau and its noise,
the per-layer alignment, the published tables, the full profile's names, and a rerun."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import yaml
from conftest import run_chapter

from helpers import cache, data, models
from helpers import metrics as M
from helpers.metrics import face_zoo
from helpers.studies import transferability as study

ROOT = Path(__file__).resolve().parent.parent


def _scores(values: dict[str, list[float]], members=("a", "b", "c", "d"), target="t"):
    """Raw score rows (member, target, metric, value) from metric -> values per member."""
    return pd.DataFrame([{"member": m, "target": target, "metric": k, "value": v}
                         for k, vals in values.items() for m, v in zip(members, vals)])


def _accuracy(values, members=("a", "b", "c", "d"), target="t"):
    return pd.DataFrame({"member": list(members), "target": target, "accuracy": values})


def test_targets_have_the_asked_sizes_and_disjoint_splits():
    train, test = study.make_target("digits8x8", 5, 3, seed=1)
    assert train.counts().tolist() == [5] * 10 and test.counts().tolist() == [3] * 10
    pixels = {bytes(x.numpy()) for x in train.images}
    assert not any(bytes(x.numpy()) in pixels for x in test.images)
    assert train.domain == test.domain == "digits8x8"


def test_font_styles_are_labelled_by_font_on_lowercase_glyphs():
    train, _ = study.make_target("font_styles", 4, 2, n_fonts=3, seed=0)
    assert len(train.classes) == 3 and set(train.attrs["font"]) == set(train.classes)
    assert set(train.attrs["char"]) <= set("abcdefghijklmnopqrstuvwxyz")
    other, _ = study.make_target("font_styles", 4, 2, n_fonts=3, seed=5)
    assert other.fingerprint != train.fingerprint


def test_unknown_target_is_refused_with_a_suggestion():
    with pytest.raises(ValueError, match="did you mean 'mnist'"):
        study.check_targets(["mnsit"])


def test_tau_is_one_for_a_perfect_score_and_nc1_is_oriented():
    acc = _accuracy([0.9, 0.8, 0.7, 0.6])
    scores = _scores({"logme": [4, 3, 2, 1], "gbc": [1, 2, 3, 4], "nc1": [0.1, 0.2, 0.3, 0.4]})
    tau = study.tau_table(scores, acc, ["logme", "gbc", "nc1"]).set_index("metric")["tau"]
    assert tau["logme"] == pytest.approx(1.0)
    assert tau["gbc"] == pytest.approx(-1.0)
    assert tau["nc1"] == pytest.approx(1.0)  # lower NC1 = more collapsed = predicted better
    expected = scipy.stats.weightedtau([4, 3, 2, 1], [0.9, 0.8, 0.7, 0.6]).statistic
    assert tau["logme"] == pytest.approx(expected)


def test_tau_matrix_is_laid_out_like_the_published_table():
    acc = pd.concat([_accuracy([0.9, 0.8, 0.7, 0.6], target=t) for t in ("t1", "t2")])
    scores = pd.concat([_scores({"logme": [4, 3, 2, 1], "leep": v}, target=t)
                        for t, v in (("t1", [1, 2, 3, 4]), ("t2", [4, 3, 2, 1]))])
    m = study.tau_matrix(study.tau_table(scores, acc, ["logme", "leep"]), ["logme", "leep"])
    assert list(m.index) == ["LogME", "LEEP"] and list(m.columns) == ["t1", "t2", "mean"]
    assert m.loc["LogME", "mean"] == pytest.approx(1.0)
    assert m.loc["LEEP", "mean"] == pytest.approx(0.0)


def test_face_is_the_zscored_sum_over_exactly_the_ranked_members():
    vc, cf = [-5.0, -1.0, -30.0, -2.0], [-0.1, -0.5, -0.2, -0.3]
    scores = _scores({"variance_collapse": vc, "class_fairness": cf})
    out = study.with_face(scores)
    face = out[out.metric == "face"].set_index("member")["value"]
    expected = face_zoo(pd.DataFrame({"variance_collapse": vc, "class_fairness": cf}))
    np.testing.assert_allclose(face.loc[["a", "b", "c", "d"]], expected)
    raw = out[out.metric == "face_raw"].set_index("member")["value"]
    np.testing.assert_allclose(raw.loc[["a", "b", "c", "d"]], np.add(vc, cf))
    # without member c the z-scores (and so FaCe's ranking) are recomputed
    sub = study.with_face(scores[scores.member != "c"])
    face_sub = sub[sub.metric == "face"].set_index("member")["value"]
    assert not np.allclose(face_sub.loc[["a", "b", "d"]], face.loc[["a", "b", "d"]])


def test_leave_one_out_gives_one_tau_per_member_and_metric():
    acc = _accuracy([0.9, 0.8, 0.7, 0.6])
    scores = _scores({"logme": [4, 3, 1, 2], "variance_collapse": [1, 2, 3, 4],
                      "class_fairness": [4, 1, 2, 3]})
    loo = study.leave_one_out(scores, acc, ["logme", "face"])
    assert len(loo) == 4 * 2 and set(loo.left_out) == set("abcd")
    assert (loo.n_models == 3).all()
    # leaving out one of the swapped pair (c, d) makes LogME perfect
    assert loo[(loo.metric == "logme") & (loo.left_out == "c")].tau.item() == pytest.approx(1.0)
    s = study.spread(loo)
    assert (s["min"] <= s["max"]).all()


def test_chance_level_is_exact_for_small_zoos_and_shrinks_with_targets():
    acc = np.arange(4.0)
    taus = [scipy.stats.weightedtau(np.array(p, float), acc).statistic
            for p in itertools.permutations(range(4))]
    assert study.null_tau(4, q=0.95) == pytest.approx(np.quantile(taus, 0.95))
    one, mean4 = study.null_tau(7), study.null_tau(7, n_targets=4)
    assert 0 < mean4 < one < 1


def test_ncti_is_formed_across_the_ranked_members_from_its_terms():
    terms = {"ncti.seli": [3.0, 1.0, 2.0, 5.0], "ncti.ncc": [0.9, 0.5, 0.7, 0.2],
             "ncti.vc": [1.0, 2.0, 0.5, 1.5]}
    out = study.with_face(_scores(terms)).query("metric == 'ncti'").set_index("member")["value"]
    expected = M.ncti_zoo([{"seli": s, "ncc": n, "vc": v} for s, n, v in zip(*terms.values())])
    np.testing.assert_allclose(out.loc[list("abcd")], expected)


def _runs(accuracies: dict[int, list[float]], targets=("t1", "t2"), members=("a", "b", "c", "d")):
    return pd.DataFrame([{"member": m, "target": t, "seed": s, "accuracy": a}
                         for t in targets for s, accs in accuracies.items()
                         for m, a in zip(members, accs)])


def test_bootstrap_of_a_stable_ranking_is_exact_and_its_difference_certain():
    # every seed orders the members alike: a perfect and a reversed score keep tau 1 and -1
    runs = _runs({0: [0.9, 0.8, 0.7, 0.6], 1: [0.95, 0.7, 0.65, 0.5], 2: [0.8, 0.75, 0.6, 0.55]})
    scores = pd.concat([_scores({"logme": [4, 3, 2, 1], "gbc": [1, 2, 3, 4]}, target=t)
                        for t in ("t1", "t2")])
    draws = study.tau_bootstrap(scores, runs, ["logme", "gbc"], n_boot=50)
    np.testing.assert_allclose(draws["logme"], 1.0)
    np.testing.assert_allclose(draws["gbc"], -1.0)
    iv = study.tau_intervals(scores, runs, ["logme", "gbc"], draws=draws)
    assert iv.loc["logme"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    cmp = study.compare_to("logme", iv, draws).loc["gbc"]
    assert cmp["effect"] == pytest.approx(2.0) and cmp["direction"] == "higher"
    assert cmp["detectable"] == pytest.approx(0.0)


def test_bootstrap_resamples_seeds_within_targets():
    # seed 0 ranks a > b > c > d, seed 1 the reverse: a draw's tau is the tau of the drawn
    # seeds' mean accuracy, so every draw is one of the few values those means give
    runs = _runs({0: [0.9, 0.8, 0.7, 0.6], 1: [0.5, 0.6, 0.7, 0.8]}, targets=("t",))
    scores = _scores({"logme": [4, 3, 2, 1]})
    draws = study.tau_bootstrap(scores, runs, ["logme"], n_boot=400, random_state=1)
    possible = {round(scipy.stats.weightedtau(
        [4, 3, 2, 1], runs.query("seed in @s").groupby("member")["accuracy"].mean()
        .loc[list("abcd")].to_numpy()).statistic, 9) for s in ([0], [1])}
    # mixing seeds 0 and 1 ties every member (tau NaN, left out of the mean)
    got = set(np.round(draws["logme"].dropna(), 9))
    assert got == possible and draws["logme"].isna().any()
    with pytest.raises(ValueError, match="n_boot"):
        study.tau_bootstrap(scores, runs, ["logme"], n_boot=1)


@pytest.mark.parametrize("directions,verdict,detectable", [
    (["higher", "higher"], "reproduced", 0.3),
    (["higher", "no difference detected"], "partly reproduced", 0.4),
    (["no difference detected"] * 2, "not shown", 0.3),
    (["higher", "lower"], "contradicted", 0.3),
])
def test_face_verdict_follows_the_paired_intervals(directions, verdict, detectable):
    cmp = pd.DataFrame({"direction": directions, "detectable": [0.2, 0.4], "effect": [0.1, -0.1],
                        "low": [0.05, -0.2], "high": [0.15, 0.0]},
                       index=pd.Index(["logme", "sfda"], name="metric"))
    out = study.face_verdict(cmp)
    assert out["verdict"] == verdict and out["detectable"] == pytest.approx(detectable)
    text = study.verdict_sentence(out, cmp)
    assert text.startswith(verdict.capitalize())
    assert ("FaCe is below SFDA (-0.10 [-0.20, +0.00])" in text) == (directions[1] == "lower")
    assert ("would detect a difference of about" in text) == ("no difference detected" in directions)


def test_align_depths_picks_first_middle_and_last_layer_of_each_model():
    rows = [{"member": m, "target": "t", "layer": f"l{i}", "layer_index": i, "metric": "logme",
             "value": float(i)} for m, n in (("five", 5), ("six", 6)) for i in range(n)]
    aligned = study.align_depths(pd.DataFrame(rows), grid=3)
    got = aligned.groupby("member")["layer_index"].apply(list).to_dict()
    assert got["five"] == [0, 2, 4]
    assert got["six"][0] == 0 and got["six"][-1] == 5
    assert sorted(aligned.rel_depth.unique()) == [0.0, 0.5, 1.0]


@pytest.fixture
def tiny_zoo(monkeypatch):
    """A fresh 8-wide SmallCNN stands in for every zoo member (no pre-training)."""
    def load(name, scale="default", num_classes=None, progress=True):
        import torch

        torch.manual_seed(0)
        model = models.create("smallcnn", 10, width=8, depth=3, img_size=16,
                              mean=(0.5,) * 3, std=(0.5,) * 3)
        if num_classes is not None:
            model.reset_classifier(num_classes)
        return model.eval(), {"name": name}

    monkeypatch.setattr(study.zoo, "load", load)
    return load


def test_finetune_learns_is_cached_and_drops_its_training_checkpoint(tiny_zoo):
    train, test = study.make_target("digits8x8", 15, 10, resolution=16)
    kw = {"epochs": 8, "lr": 1e-2, "batch_size": 16}
    first = study.finetune("tiny", train, test, seed=3, **kw)
    assert first["accuracy"] > 0.3 and not first["cached"]  # chance is 0.1
    again = study.finetune("tiny", train, test, seed=3, **kw)
    assert again["cached"] and again["accuracy"] == first["accuracy"]
    root = cache.cache_dir() / "transferability"
    assert list(root.glob("finetune_run-*.pt")) and not list(root.glob("*.ckpt"))
    other = study.finetune("tiny", train, test, seed=4, **{**kw, "epochs": 1})
    assert not other["cached"]


def test_scores_cover_every_metric_and_layer_and_are_cached(tiny_zoo, monkeypatch, tmp_path):
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))  # a cache of its own: entries counted
    train, _ = study.make_target("digits8x8", 8, 1, resolution=16)
    model, _ = tiny_zoo("tiny")
    final, per_layer = study.score_member(model, train, probe_epochs=3)
    assert set(final.metric) == {"logme", "h_score", "gbc", "variance_collapse",
                                 "class_fairness", "nc1", "knn", "probe", "leep", "nce",
                                 "sfda", "nleep", "parc", "ncti.seli", "ncti.ncc", "ncti.vc",
                                 "knn_acc", "params"}
    value = final.set_index("metric")["value"]
    x, y = study.pre_logits(model, train)["pre_logits"], train.labels.numpy()
    assert value["sfda"] == pytest.approx(M.sfda(x, y), rel=1e-9)
    assert value["parc"] == pytest.approx(M.parc(x, y, pca_dim=32), rel=1e-9)  # PARC's own 32
    assert value["ncti.seli"] == pytest.approx(M.ncti(x, y, pca_dim=64)["seli"], rel=1e-9)
    assert value["knn_acc"] == pytest.approx(M.knn_accuracy(x, y, k=7), rel=1e-12)  # 8/class - 1
    assert value["nleep"] == pytest.approx(M.nleep(x, y, component_ratio=5), rel=1e-6)
    assert value["params"] == sum(p.numel() for p in model.parameters())
    assert not {"sfda", "nleep", "parc", "knn_acc", "params"} & set(per_layer.metric)
    assert sorted(per_layer.layer_index.unique()) == [0, 1, 2]
    assert per_layer.depth.max() == 1.0 and "leep" not in set(per_layer.metric)
    assert (final.set_index("metric")["value"]["nce"] <= 0)
    root = cache.cache_dir() / "transferability"
    before = set(root.glob("_scores-*.pt"))
    assert len(before) == 12  # one entry per scored metric (NCTI's three terms in one)
    again, _ = study.score_member(model, train, probe_epochs=3)
    pd.testing.assert_frame_equal(final, again)
    assert set(root.glob("_scores-*.pt")) == before  # all read from the cache
    other_k, _ = study.score_member(model, train, probe_epochs=3, knn_k=2)
    assert len(set(root.glob("_scores-*.pt")) - before) == 2  # k: only kNN and kNN accuracy
    same = other_k.set_index("metric")["value"].drop(["knn", "knn_acc"])
    pd.testing.assert_series_equal(same, final.set_index("metric")["value"].drop(["knn",
                                                                                  "knn_acc"]))


def test_score_table_loads_a_member_only_when_a_score_is_missing(tiny_zoo, monkeypatch, tmp_path):
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))
    loads = []
    monkeypatch.setattr(study.zoo, "load", lambda *a, **k: loads.append(a[0]) or tiny_zoo(*a, **k))
    targets = {"digits": study.make_target("digits8x8", 8, 1, resolution=16)}
    scores, per_layer = study.score_table(["tiny"], targets, probe_epochs=3)
    direct, _ = study.score_member(tiny_zoo("tiny")[0], targets["digits"][0], probe_epochs=3)
    pd.testing.assert_frame_equal(scores.drop(columns=["member", "target"]), direct)
    again, again_layers = study.score_table(["tiny"], targets, probe_epochs=3)
    assert loads == ["tiny"]  # the rerun read every score without loading the member
    pd.testing.assert_frame_equal(scores, again)
    pd.testing.assert_frame_equal(per_layer, again_layers)
    study.score_table(["tiny"], targets, probe_epochs=3, knn_k=2)
    assert loads == ["tiny", "tiny"]  # a new k: loaded again, for the features


def test_published_tables_are_complete():
    tau = study.published_tau()
    assert list(tau.index) == ["LEEP", "LogME", "NLEEP", "PARC", "SFDA"]
    assert tau.shape == (5, 12) and tau.loc["SFDA", "cifar10"] == pytest.approx(0.949)
    acc = study.published_accuracy_for(list(study.FULL_ZOO), list(study.FULL_TARGETS))
    assert len(acc) == 100 and acc.accuracy.between(0.5, 1).all()
    assert (study.published_accuracy().model == "googlenet").any()


def test_full_profile_names_resolve_in_timm_and_torchvision():
    import timm
    import torchvision.datasets as tvd

    block = yaml.safe_load((ROOT / "notebooks/params/full.yml").read_text())["transferability"]
    for name in block["members"]:
        assert timm.is_model(name) and name in timm.list_pretrained(name), name
        assert name in study.FULL_ZOO
    for name in block["targets"]:
        assert isinstance(getattr(tvd, name, None), type), name
    assert not timm.is_model("googlenet")





@pytest.mark.slow
def test_rerunning_the_chapter_with_a_parameter_changes_its_output(smoke_glued, tmp_path):
    base = smoke_glued["transferability"]
    changed = run_chapter("transferability", tmp_path, "train_per_class=5")
    assert base["tr_train_per_class"] == "6" and changed["tr_train_per_class"] == "5"
    assert (base["tr_face_mean"], base["tr_acc_range"]) != (changed["tr_face_mean"],
                                                           changed["tr_acc_range"])


def test_torchvision_targets_decode_only_the_chosen_images(monkeypatch):
    """The full profile's loader: split keyword, per-class cap, labels without decoding."""
    import torchvision.datasets as tvd
    from PIL import Image

    opened = []

    class FakeCIFAR:
        def __init__(self, root, train, download):
            assert train is True
            self.targets = [i % 3 for i in range(30)]
            self.classes = ["x", "y", "z"]

        def __getitem__(self, i):
            opened.append(i)
            return Image.new("RGB", (8, 8), color=(i, i, i)), self.targets[i]

    monkeypatch.setattr(tvd, "CIFAR10", FakeCIFAR)
    train, test = study.make_target("CIFAR10", 4, 1, resolution=16, seed=0)
    assert test is None and train.classes == ["x", "y", "z"]
    assert train.counts().tolist() == [4, 4, 4] and len(opened) == 12
    assert tuple(train.images.shape[1:]) == (3, 16, 16)


def test_a_target_torchvision_cannot_download_gets_a_clear_message(monkeypatch, tmp_path):
    """StanfordCars: torchvision raises on a download request even when the files are there,
    so it is never asked to download (offline: a stand-in class records the request)."""
    import torchvision.datasets as tvd

    asked = []

    class Missing:
        def __init__(self, root, split, download):
            asked.append(download)
            raise RuntimeError("Dataset not found.")

    monkeypatch.setattr(tvd, "StanfordCars", Missing)
    with pytest.raises(FileNotFoundError, match=r"targets: .*'StanfordCars' .*by hand .*vision/issues/7545"):
        study.torchvision_target("StanfordCars", 5, root=tmp_path, download=True)  # offline-ok: a stand-in class, no request
    assert asked == [False]
    with pytest.raises(FileNotFoundError, match=r"targets: .*'CIFAR10' is not under .*download=true.*leave CIFAR10 out of targets"):
        study.torchvision_target("CIFAR10", 5, root=tmp_path, download=False)


def test_ground_truth_notes_measure_the_seed_noise_against_the_top_of_the_ranking():
    runs = _runs({0: [0.90, 0.80, 0.70, 0.60], 1: [0.86, 0.82, 0.70, 0.60]}, targets=("t",))
    notes = study.ground_truth_notes(runs, list("abcd"), ["t"])
    assert notes["wide"].loc["a", "t"] == pytest.approx(88.0)
    assert notes["spread"] == pytest.approx(88.0 - 60.0)
    assert notes["seed_gap"] == pytest.approx(100 * (0.04 + 0.02) / 4)
    # top 3 members: 88, 81, 70 -> 18 points apart, seeds differ by 1.5
    assert notes["top_sentence"].startswith("The top 3 members of a target are on average only "
                                            "18.0 points apart, while two seeds")
    one = study.ground_truth_notes(runs[runs.seed == 0], list("abcd"), ["t"], finetuned=False)
    assert one["runs_sentence"].startswith("One seed per fine-tune") and "published" in \
        one["runs_sentence"]


def test_the_spread_sentence_follows_its_numbers():
    pub = pd.DataFrame({"target": ["x", "x", "y", "y"], "finetune_top1": [90, 80, 70, 50]})
    assert "span 40.0 points per target on average, the benchmark's 15.0 (median 15.0): a " \
           "wide spread" in study.spread_sentence(40.0, pub)
    assert "close accuracies" in study.spread_sentence(5.0, pub)


def test_a_score_tied_on_every_target_gets_no_interval_and_no_comparison():
    runs = _runs({0: [0.9, 0.8, 0.7, 0.6], 1: [0.85, 0.8, 0.75, 0.6]})
    scores = pd.concat([_scores({"logme": [4, 3, 2, 1], "gbc": [1, 1, 1, 1]}, target=t)
                        for t in ("t1", "t2")])
    draws = study.tau_bootstrap(scores, runs, ["logme", "gbc"], n_boot=20)
    iv = study.tau_intervals(scores, runs, ["logme", "gbc"], draws=draws)
    assert iv.loc["gbc", ["low", "high"]].isna().all()
    assert iv.loc["logme", "low"] == pytest.approx(1.0)
    assert list(study.compare_to("logme", iv, draws).index) == []


def test_check_parameters_refuses_a_scatter_target_or_score_the_run_lacks():
    assert study.check_parameters(["mnist", "digits8x8"], "mnist", "face") == ["mnist",
                                                                               "digits8x8"]
    with pytest.raises(ValueError, match="scatter_target 'lowercase' must be one of the targets"):
        study.check_parameters(["mnist"], "lowercase", "face")
    with pytest.raises(ValueError, match="scatter_metric must be one of"):
        study.check_parameters(["mnist"], "mnist", "accuracy")
    with pytest.raises(ValueError, match="did you mean 'mnist'"):
        study.check_parameters(["mnsit"], "mnsit", "face")


def test_record_setup_and_zoo_quote_the_settings_and_the_members_that_did_not_learn():
    assert study.record_setup(list("abc"), ["t1", "t2"], 16, 4, 1e-3, [0, 1, 2]) == {
        "tr_n_members": 3, "tr_n_targets": 2, "tr_train_per_class": 16, "tr_ft_epochs": 4,
        "tr_ft_lr": "0.001", "tr_ft_seeds": "0, 1, 2", "tr_n_seeds": 3}
    zoo_table = pd.DataFrame({"source_accuracy": [0.95, 0.12, None]},
                             index=pd.Index(["good", "poor", "hub"], name="member"))
    assert study.record_zoo(zoo_table)["tr_zoo_note"] == (
        "`poor` reached only 12 % source accuracy: it did not learn the source task and is in "
        "effect a randomly initialized network. That makes it a sanity check: every score "
        "should rank it low.")
    fonts = len(data.find_fonts(chars=data.CHARACTERS))
    assert study.record_zoo(zoo_table.drop("poor")) == {"tr_zoo_note": "", "tr_source_fonts": fonts}


def test_targets_are_tabled_and_drawn_one_row_each():
    import matplotlib.pyplot as plt

    data_sets = study.make_targets(["digits8x8", "font_styles"], 5, 3, n_fonts=3, seed=1)
    assert list(data_sets) == ["digits8x8", "font_styles"]
    table = study.target_table({**data_sets, "CIFAR10": (data_sets["digits8x8"][0], None)})
    assert table.loc["digits8x8"].tolist() == [study.EMBEDDED_TARGETS["digits8x8"], 10, 50, 30]
    assert table.loc["font_styles", "classes"] == 3
    assert table.loc["CIFAR10", "what"] == "torchvision CIFAR10"
    assert table.loc["CIFAR10", "test images"] == 0
    fig = study.plot_targets(data_sets, seed=1)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["digits8x8", "font_styles"]
    plt.close(fig)


def test_accuracy_runs_fine_tune_or_read_the_published_accuracies(monkeypatch):
    members, targets = list(study.FULL_ZOO)[:2], list(study.FULL_TARGETS)[:2]
    runs = study.accuracy_runs("published", members, dict.fromkeys(targets))
    pd.testing.assert_frame_equal(runs[["member", "target", "accuracy"]],
                                  study.published_accuracy_for(members, targets))
    assert (runs.seed == 0).all() and runs.cached.all() and runs.train_seconds.isna().all()
    calls = []
    monkeypatch.setattr(study, "finetune_table", lambda *a, **k: calls.append((a, k)) or "runs")
    assert study.accuracy_runs("finetune", ["m"], {"t": None}, seeds=[0, 1], epochs=2) == "runs"
    assert calls == [((["m"], {"t": None}), {"seeds": [0, 1], "scale": "default", "workers": 1,
                                             "epochs": 2})]
    with pytest.raises(ValueError, match="accuracy_source"):
        study.accuracy_runs("guess", ["m"], {"t": None})


def test_record_ground_truth_quotes_the_notes():
    runs = _runs({0: [0.90, 0.80, 0.70, 0.60], 1: [0.86, 0.82, 0.70, 0.60]}, targets=("t",))
    notes = study.ground_truth_notes(runs, list("abcd"), ["t"])
    rec = study.record_ground_truth(notes)
    assert rec["tr_acc_range"] == "28.0" and rec["tr_seed_gap"] == "1.5"  # 88 - 60; 6 / 4
    assert rec["tr_ft_sentence"] == notes["runs_sentence"]
    assert rec["tr_top_sentence"] == notes["top_sentence"]


def test_face_terms_are_the_zscored_terms_and_their_sum():
    scores = _scores({"variance_collapse": [-5.0, -1.0, -30.0, -2.0],
                      "class_fairness": [-0.1, -0.5, -0.2, -0.3], "logme": [1, 2, 3, 4]})
    terms = study.face_terms(scores)
    assert list(terms.columns) == ["C term (-NC1)", "F term", "FaCe"]
    face = study.with_face(scores).query("metric == 'face'").set_index("member")["value"]
    np.testing.assert_allclose(terms.loc["t"]["FaCe"].loc[list("abcd")],
                               face.loc[list("abcd")].round(3))
    assert terms.loc[("t", "b"), "C term (-NC1)"] == -1.0


def _ranked_zoo():
    """Two targets, three seeds that all order the members a > b > c > d: LogME ranks them
    exactly, LEEP in reverse, FaCe with the top two swapped."""
    runs = _runs({0: [0.9, 0.8, 0.7, 0.6], 1: [0.95, 0.7, 0.65, 0.5], 2: [0.8, 0.75, 0.6, 0.55]})
    scores = pd.concat([_scores({"logme": [4, 3, 2, 1], "leep": [1, 2, 3, 4],
                                 "variance_collapse": [3, 4, 2, 1],
                                 "class_fairness": [3, 4, 2, 1]}, target=t)
                        for t in ("t1", "t2")])
    return scores, runs, study.mean_accuracy(runs)


def test_record_tau_names_the_best_score_and_judges_face_against_the_others():
    scores, runs, accuracy = _ranked_zoo()
    metrics = ["face", "logme", "leep"]
    matrix = study.tau_matrix(study.tau_table(scores, accuracy, metrics), metrics)
    draws = study.tau_bootstrap(scores, runs, metrics, n_boot=30)
    intervals = study.tau_intervals(scores, runs, metrics, draws=draws)
    rec = study.record_tau(matrix, intervals, draws, 4, 0.5)
    face = scipy.stats.weightedtau([3, 4, 2, 1], [0.9, 0.8, 0.7, 0.6]).statistic
    assert rec["tr_face_mean"] == f"{face:.2f}" and -1 < face < 1
    assert (rec["tr_best_metric"], rec["tr_best_mean"]) == ("LogME", "1.00")
    assert (rec["tr_logme_mean"], rec["tr_leep_mean"]) == ("1.00", "-1.00")
    assert (rec["tr_face_rank"], rec["tr_n_metrics"], rec["tr_n_boot"]) == (2, 3, 30)
    assert rec["tr_band"] == f"{study.null_tau(4):.2f}" and rec["tr_band_mean"] == "0.50"
    assert rec["tr_face_interval"] == f"{face:.2f} [{face:.2f}, {face:.2f}]"  # a stable ranking
    assert rec["tr_verdict_word"] == "contradicted"  # LogME is above FaCe
    assert rec["tr_verdict"].startswith("Contradicted") and rec["tr_detectable"] == "0.00"


def test_noise_table_spreads_tau_over_left_out_members_and_seeds():
    scores, runs, accuracy = _ranked_zoo()
    metrics = ["face", "logme"]
    loo = study.leave_one_out(scores, accuracy, metrics)
    means = study.tau_matrix(study.tau_table(scores, accuracy, metrics), metrics)["mean"]
    noise = study.noise_table(loo, scores, runs, means, metrics)
    assert list(noise.columns) == ["tau (mean over targets)", "tau, leave-one-model-out min",
                                   "max", "tau, seed 0 only", "tau, seed 1 only",
                                   "tau, seed 2 only"]
    face = loo[loo.metric == "face"].groupby("target")["tau"]
    assert noise.loc["FaCe", "max"] == pytest.approx(face.max().mean())
    assert study.record_noise(noise) == {"tr_face_loo_min": f"{face.min().mean():.2f}",
                                         "tr_face_loo_max": f"{face.max().mean():.2f}"}
    one_seed = study.noise_table(loo, scores, runs[runs.seed == 0], means, metrics)
    assert list(one_seed.columns) == ["tau (mean over targets)", "tau, leave-one-model-out min",
                                      "max"]


def test_record_ablation_quotes_each_term_and_the_fairest_member():
    acc = _accuracy([0.9, 0.8, 0.7, 0.6])
    scores = _scores({"variance_collapse": [4, 3, 2, 1], "class_fairness": [1, 2, 5, 4]})
    ablation = study.tau_table(scores, acc, study.ABLATION)
    runs = _runs({0: [0.9, 0.8, 0.7, 0.6], 1: [0.9, 0.8, 0.7, 0.6]}, targets=("t",))
    rec = study.record_ablation(ablation, scores, acc, runs, n_boot=50)
    fairness = scipy.stats.weightedtau([1, 2, 5, 4], [0.9, 0.8, 0.7, 0.6]).statistic
    assert (rec["tr_abl_c"], rec["tr_abl_f"]) == ("1.00", f"{fairness:.2f}")
    assert (rec["tr_fairest"], rec["tr_fairest_rank"]) == ("c", 3)  # c: 3rd by accuracy
    assert set(rec) == {"tr_abl_c", "tr_abl_f", "tr_abl_raw", "tr_abl_face", "tr_abl_verdict",
                        "tr_abl_verdict_word", "tr_fairest", "tr_fairest_rank"}
    # one target, seeds alike: every draw equals the point tau, so the C term (tau 1) is
    # certainly above FaCe
    assert rec["tr_abl_verdict_word"] == "contradicted"


def test_the_ablation_verdict_is_faces_rule_against_each_term_alone():
    intervals = pd.DataFrame({"tau": [0.5, 0.2, 0.45]},
                             index=["face", "variance_collapse", "class_fairness"])
    rng = np.random.default_rng(0)
    draws = pd.DataFrame({"face": 0.5 + rng.normal(0, 0.05, 500),
                          "variance_collapse": 0.2 + rng.normal(0, 0.05, 500),
                          "class_fairness": 0.45 + rng.normal(0, 0.05, 500)})
    verdict, comparison = study.ablation_verdict(intervals, draws)
    sentence = study.ablation_sentence(comparison)
    # FaCe 0.30 above the C term (interval clear of 0), 0.05 above the F term (interval about
    # +-0.14: no difference detected): partly reproduced, as FaCe's own rule says
    diff = draws["face"] - draws["class_fairness"]
    low, high = np.quantile(diff, [0.025, 0.975])
    assert verdict["verdict"] == "partly reproduced"
    assert sentence == (
        "FaCe minus the C term (-NC1) alone: +0.30 "
        f"[{np.quantile(draws.face - draws.variance_collapse, 0.025):+.2f}, "
        f"{np.quantile(draws.face - draws.variance_collapse, 0.975):+.2f}] (FaCe above); "
        f"FaCe minus the F term alone: +0.05 [{low:+.2f}, {high:+.2f}] (no difference detected)")
    clear = draws.assign(class_fairness=draws.class_fairness - 0.3)
    assert study.ablation_verdict(intervals.assign(tau=[0.5, 0.2, 0.15]), clear)[0]["verdict"] \
        == "reproduced"


def test_record_depth_finds_the_depth_that_ranks_best():
    rows = [{"target": t, "rel_depth": d, "metric": m, "tau": v}
            for t in ("t1", "t2") for m, taus in (("logme", (0.2, 0.8, 0.2)),
                                                   ("face", (0.1, 0.3, 0.5)))
            for d, v in zip((0.0, 0.5, 1.0), taus)]
    by_depth = study.depth_means(pd.DataFrame(rows))
    assert by_depth.loc["logme"].tolist() == pytest.approx([0.2, 0.8, 0.2])
    assert study.record_depth(by_depth, 3) == {
        "tr_depth_grid": 3, "tr_best_depth": "0.5", "tr_best_depth_tau": "0.55",
        "tr_last_depth_tau": "0.35",
        "tr_depth_sentence": "FaCe 0.50 at depth 1 (0.50 at the last layer); "
                             "LogME 0.80 at depth 0.5 (0.20 at the last layer)"}


def test_record_published_and_side_by_side_set_the_benchmark_beside_ours():
    published = pd.DataFrame({"mean": [0.3, 0.5, 0.7]}, index=["LEEP", "LogME", "SFDA"])
    rec = study.record_published(published, 40.0)
    assert rec == {"tr_pub_logme": "0.50", "tr_pub_leep": "0.30", "tr_pub_best": "SFDA",
                   "tr_pub_best_mean": "0.70",
                   "tr_spread_sentence": study.spread_sentence(40.0, study.published_accuracy())}
    tau = pd.DataFrame({"target": ["t1", "t2"] * 2, "metric": ["logme"] * 2 + ["face"] * 2,
                        "tau": [0.2, 0.4, 0.6, 1.0]})
    table = study.side_by_side(tau, published, 4, 2)
    assert list(table.index) == ["LEEP", "LogME", "SFDA", "FaCe"]
    assert table.iloc[:, 1].tolist()[1:] == pytest.approx([0.3, np.nan, 0.8], nan_ok=True)
    assert np.isnan(table.loc["FaCe"].iloc[0]) and table.loc["LogME"].iloc[0] == 0.5


def test_full_zoo_table_lists_every_checkpoint_and_the_one_left_out():
    table = study.full_zoo_table()
    assert len(table) == len(study.FULL_ZOO) + 1
    assert table.iloc[-1].tolist() == ["(none)", "googlenet", "not in timm: left out"]
    assert (table.set_index("benchmark model").loc["mobilenet_v2", "note"]
            == "timm's own weights, not torchvision's")


def test_explorer_offers_every_target_and_score():
    import matplotlib.pyplot as plt

    scores, _, accuracy = _ranked_zoo()
    w = study.explorer(scores, accuracy, ["t1", "t2"], "t2", "logme")
    target, metric = w.children[:2]
    assert target.options == ("t1", "t2") and target.value == "t2" and metric.value == "logme"
    assert [label for label, _ in metric.options] == [
        study.SCORE_LABELS[m] for m in study.MAIN_METRICS + study.ABLATION[:3]]
    plt.close("all")
