"""Chapter 1 (separability): domains split classes cleanly, fine-tuning and metrics are cached,
the analysis finds the best layer, and rerunning the chapter with -p changes its output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_chapter

from helpers import cache, data, measure, models, train
from helpers.studies import separability as S

ROOT = Path(__file__).resolve().parent.parent


def test_style_domain_holds_out_whole_fonts():
    d = S.style_domain(seen_fonts=3, unseen_fonts=2, per_pair=2, chars="0AB", seed=3)
    assert not set(d.train.classes) & set(d.unseen.classes)
    assert d.train.classes == d.test.classes and len(d.train.classes) == 3
    assert set(d.unseen.attrs["font"]) == set(d.unseen.classes) and len(d.unseen.classes) == 2
    # every unseen font contributes every character per_pair times
    assert (d.unseen.counts() == 3 * 2).all()
    assert len(d.train) + len(d.test) == 3 * 3 * 2
    again = S.style_domain(seen_fonts=3, unseen_fonts=2, per_pair=2, chars="0AB", seed=3)
    assert again.unseen.fingerprint == d.unseen.fingerprint
    other = S.style_domain(seen_fonts=3, unseen_fonts=2, per_pair=2, chars="0AB", seed=4)
    assert other.unseen.classes != d.unseen.classes or other.train.classes != d.train.classes
    with pytest.raises(ValueError, match="at most the"):
        S.style_domain(seen_fonts=20, unseen_fonts=6)


def test_embedded_domains_are_built_once_then_loaded():
    kw = {"seen_fonts": 2, "unseen_fonts": 2, "per_pair": 1, "seed": 5}
    a = S.make_domain("glyph_styles", **kw)
    root = cache.cache_dir() / "separability"
    entries = set(root.glob("build_domain-*.pt"))
    b = S.make_domain("glyph_styles", **kw)
    assert entries and set(root.glob("build_domain-*.pt")) == entries
    assert a.train.fingerprint == b.train.fingerprint
    assert a.unseen.fingerprint == b.unseen.fingerprint
    S.make_domain("glyph_styles", **{**kw, "seed": 6})
    assert len(set(root.glob("build_domain-*.pt")) - entries) == 1


def test_class_split_caps_images_and_keeps_unseen_classes_apart(mnist):
    d = S.class_split_domain(mnist, "mnist5k", "digits", unseen_classes=3, train_per_class=20,
                             unseen_per_class=15, seed=1)
    assert len(d.unseen.classes) == 3 and len(d.train.classes) == 7
    assert not set(d.unseen.classes) & set(d.train.classes)
    assert (d.unseen.counts() == 15).all()
    assert ((d.train.counts() + d.test.counts()) == 20 + round(20 * 0.25 / 0.75)).all()
    seven = S.class_split_domain(mnist, "m", "m", 3, seen_classes=4, seed=1)
    assert len(seven.train.classes) == 4 and set(seven.unseen.classes) == set(d.unseen.classes)


def test_cifar_protocol_holds_out_the_flowers_and_tests_on_the_test_split():
    names = [f"class{i}" for i in range(40)] + list(S.FLOWERS)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(names)), 4)
    images = torch.from_numpy(rng.integers(0, 255, (len(labels), 3, 8, 8), dtype=np.uint8))
    train_set = data.ImageSet(images, torch.from_numpy(labels), names, "cifar100")
    test_set = train_set.subset(np.arange(0, len(labels), 2))
    d = S.class_split_domain(train_set, "CIFAR100", "CIFAR", list(S.FLOWERS), 20,
                             full_test=test_set, seed=0)
    assert d.unseen.classes == list(S.FLOWERS)
    assert len(d.train.classes) == 20 and d.test.classes == d.train.classes
    assert len(d.test) == 20 * 2 and len(d.train) == 20 * 4


def _toy_layers(values_by_trial: dict[int, list[float]], metric="nmi", model="m", domain="d"):
    rows = []
    for trial, values in values_by_trial.items():
        for i, v in enumerate(values):
            rows.append({"domain": domain, "model": model, "condition": "fine-tuned",
                         "trial": trial, "layer": f"l{i}", "layer_index": i,
                         "depth": i / (len(values) - 1), "metric": metric, "value": v})
    return pd.DataFrame(rows)


def test_best_layer_is_found_on_the_trial_mean_and_compared_with_the_last():
    layers = pd.concat([
        _toy_layers({0: [.1, .6, .4], 1: [.1, .5, .6]}, model="inner"),  # mean .55 > .5
        _toy_layers({0: [.1, .3, .9], 1: [.2, .3, .8]}, model="last"),
    ])
    tie = S.best_layers(_toy_layers({0: [.2, .9, .9]}, model="tie")).iloc[0]
    assert tie["is_last"] and tie["best_layer"] == "l2"  # a tie goes to the deeper layer
    best = S.best_layers(layers).set_index("model")
    assert best.loc["inner", "best_layer"] == "l1" and not best.loc["inner", "is_last"]
    assert best.loc["inner", "gain"] == pytest.approx(0.05)
    assert best.loc["last", "is_last"] and best.loc["last", "best_value"] == pytest.approx(.85)
    runs = pd.DataFrame([{"domain": "d", "model": m, "condition": "fine-tuned", "trial": t,
                          "seen_accuracy": acc, "finetune_seconds": 0, "cached": False}
                         for m, acc in (("inner", .99), ("last", .90)) for t in (0, 1)])
    v = S.verdict(layers, runs, "nmi")
    assert (v["not_last"], v["curves"]) == (1, 2)
    assert (v["runs_not_last"], v["runs"]) == (1, 4)  # trial 1 of "inner" peaks at the end
    dom = v["per_domain"]["d"]
    assert dom["best_acc_model"] == "inner" and dom["best_gen_model"] == "last"
    assert dom["spearman"] < 0  # the more accurate model generalizes worse here


def test_generalization_index_is_the_max_over_layers_per_run():
    layers = _toy_layers({0: [.2, .7, .5], 3: [.4, .3, .35]})
    runs = pd.DataFrame({"domain": "d", "model": "m", "condition": "fine-tuned", "trial": [0, 3],
                         "seen_accuracy": [.9, .8], "finetune_seconds": 0, "cached": False})
    gen = S.generalization(layers, runs).set_index("trial")
    assert gen.loc[0, "best_nmi"] == .7 and gen.loc[0, "best_layer"] == "l1"
    assert gen.loc[3, "best_nmi"] == .4 and gen.loc[3, "best_depth"] == 0
    assert gen.loc[3, "last_nmi"] == .35


def test_measure_caches_each_metric_and_knn_k_changes_only_knn(mnist, monkeypatch, tmp_path):
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))  # a cache of its own: entries counted
    torch.manual_seed(0)
    net = models.create("smallcnn", 3, width=8, depth=3, img_size=16)
    unseen = data.resize(data.per_class(mnist.keep_classes(["0", "1", "7"]), 10, seed=0), 16)
    first = S.measure(net, unseen, metrics=("nmi", "knn", "1nn"))
    assert len(first) == 3 * 3 and first["value"].between(0, 1).all()
    assert list(first[first.metric == "nmi"]["depth"]) == [0, .5, 1]
    root = cache.cache_dir() / "separability"
    entries = set(root.glob("_layer_values-*.pt"))
    assert len(entries) == 3
    again = S.measure(net, unseen, metrics=("nmi", "knn", "1nn"))
    pd.testing.assert_frame_equal(first, again)
    assert set(root.glob("_layer_values-*.pt")) == entries  # all three came from the cache
    small = S.measure(net, unseen, metrics=("nmi", "knn", "1nn"), knn_k=2)
    assert len(set(root.glob("_layer_values-*.pt")) - entries) == 1  # only kNN recomputed
    pd.testing.assert_frame_equal(first[first.metric != "knn"], small[small.metric != "knn"])
    assert not np.allclose(first[first.metric == "knn"]["value"],
                           small[small.metric == "knn"]["value"])


def test_finetune_learns_the_seen_classes_and_reuses_its_checkpoint(mnist, monkeypatch):
    def tiny_zoo_member(name, scale, num_classes, progress=False):  # no zoo pre-training here
        return models.create("smallcnn", num_classes, width=16, depth=3, img_size=16), {}

    monkeypatch.setattr(S.zoo, "load", tiny_zoo_member)
    d = S.class_split_domain(data.resize(mnist, 16), "mnist5k", "digits", 3,
                             train_per_class=30, unseen_per_class=10, seed=0)
    kw = {"scale": "smoke", "epochs": 3, "lr": 3e-3, "batch_size": 16, "augment": False,
          "seed": 0}
    before = S.pretrained("tiny", 7, "smoke", seed=0)
    _, err_before = train.evaluate(before, d.test)
    model, info = S.finetune("tiny", d, **kw)
    assert model.get_classifier().out_features == 7 and not info["cached"]
    assert info["seen_accuracy"] > (1 - err_before) + 0.1  # it learned the seen classes
    again, info2 = S.finetune("tiny", d, **kw)
    assert info2["cached"] and info2["seen_accuracy"] == info["seen_accuracy"]
    assert cache.weights_hash(again) == cache.weights_hash(model)
    assert cache.weights_hash(before) != cache.weights_hash(model)
    _, info3 = S.finetune("tiny", d, **{**kw, "seed": 1})
    assert not info3["cached"]  # another trial seed is another fine-tuning


def test_run_caches_every_job_and_a_rerun_builds_no_model(mnist, monkeypatch, tmp_path):
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))  # this test counts cache entries
    def tiny(num_classes, seed=0):
        torch.manual_seed(seed)
        return models.create("smallcnn", num_classes, width=16, depth=3, img_size=16)

    monkeypatch.setattr(S.zoo, "load", lambda name, scale, num_classes, progress=False:
                        (tiny(num_classes), {}))
    monkeypatch.setattr(S, "_start_identity", lambda member, scale: "tiny-v1")
    monkeypatch.setattr(S, "random_init", lambda m, n, scale, seed: tiny(n, seed + 100))
    d = S.class_split_domain(data.resize(mnist, 16), "mnist5k", "digits", 3,
                             train_per_class=15, unseen_per_class=8, seed=2)
    kw = {"scale": "smoke", "trials": [0], "epochs": 1, "lr": 3e-3, "batch_size": 16,
          "augment": False, "metrics": ["nmi", "knn"], "progress": False}
    layers, runs = S.run(["tiny"], [d], **kw)
    assert list(runs.condition) == ["fine-tuned", "pre-trained", "random init"]
    assert len(layers) == 3 * 3 * 2 and not runs.cached.iloc[0]
    def boom(*args, **kwargs):
        raise AssertionError("an analysis-only rerun must not build a model")

    # torch's, not ours: patching a helper would change the code the cache keys follow
    build = torch.nn.Module.__init__
    monkeypatch.setattr(torch.nn.Module, "__init__", boom)
    small, _ = S.run(["tiny"], [d], knn_k=3, **kw)  # new k: the cached features, no model

    def metric(t, m):
        return t[t.metric == m].reset_index(drop=True)

    pd.testing.assert_frame_equal(metric(layers, "nmi"), metric(small, "nmi"))
    assert not np.allclose(metric(layers, "knn")["value"], metric(small, "knn")["value"])
    again, runs2 = S.run(["tiny"], [d], **kw)
    pd.testing.assert_frame_equal(layers, again)
    assert runs2.cached.all() and runs2.seen_accuracy.iloc[0] == runs.seen_accuracy.iloc[0]
    evicted = [e for e in (cache.cache_dir() / "features").iterdir() if e.is_dir()]
    for entry in evicted:  # features evicted: the next rerun builds the models again
        shutil.rmtree(entry)
    monkeypatch.setattr(torch.nn.Module, "__init__", build)
    redo, _ = S.run(["tiny"], [d], knn_k=2, **kw)
    assert len(evicted) == 3 and all(e.is_dir() for e in evicted)
    pd.testing.assert_frame_equal(metric(layers, "nmi"), metric(redo, "nmi"))
    model, _ = S.finetune("tiny", d, scale="smoke", epochs=1, lr=3e-3, batch_size=16,
                          augment=False, seed=0)  # its features extracted afresh
    direct = measure.layer_table(model, d.unseen, metrics=["knn"], k=3)
    ft = small[(small.condition == "fine-tuned") & (small.metric == "knn")]
    np.testing.assert_allclose(ft["value"], direct["value"])


def test_paper_numbers_are_those_of_methods_md():
    paper = S.paper_table().set_index(["domain", "model"])
    cal = next(k for k in S.PAPER if k.startswith("calligraphy"))
    cif = next(k for k in S.PAPER if k.startswith("CIFAR"))
    assert paper.loc[(cal, "PoolFormer-S12"), "unseen NMI (best layer)"] == .78
    assert paper.loc[(cif, "Swin-T"), "unseen NMI (best layer)"] == .04
    assert paper.loc[(cif, "PVT-T"), "seen accuracy"] == .92
    assert len(paper) == 12


def _executed_output(notebook: Path, marker: str) -> str:
    """The HTML (else plain-text) output of the first code cell whose source holds ``marker``:
    the whole table, where the plain text elides columns."""
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and marker in "".join(cell["source"]):
            data = [o.get("data", {}) for o in cell.get("outputs", [])]
            return "".join("".join(d.get("text/html", d.get("text/plain", ""))) for d in data)
    raise AssertionError(f"no cell with {marker!r}")


@pytest.mark.slow
def test_rerun_with_other_knn_k_changes_the_best_layer_table(smoke_book, tmp_path):
    run_chapter("separability", tmp_path, "knn_k=2")
    marker = "S.best_layers(layers)"
    a = _executed_output(smoke_book / "book" / "chapters" / "separability.ipynb", marker)
    b = _executed_output(tmp_path / "separability.ipynb", marker)
    assert "<table" in a and "NMI" in a and a != b


def test_inner_margin_chooses_the_layer_on_the_other_trials():
    # trials 0-2 peak at l1; the margin of each held-out trial is its own l1 - l2
    layers = pd.concat([
        _toy_layers({0: [.1, .6, .4], 1: [.1, .7, .5], 2: [.2, .65, .45]}, model="inner"),
        _toy_layers({0: [.1, .5, .6], 1: [.1, .6, .5], 2: [.1, .5, .55]}, model="noisy"),
    ])
    m = S.inner_margins(layers).set_index("model")
    assert m.loc["inner", "best_layer"] == "l1" and m.loc["inner", "trials"] == 3
    assert m.loc["inner", "margin"] == pytest.approx(0.2)
    assert m.loc["inner", "low"] == pytest.approx(0.2)  # three equal margins: no spread
    # "noisy": held out, trial 0 gets l1 from the others' mean (.55 > .525) and loses .1 to its
    # last layer; trials 1 and 2 get l2 (margin 0): a chance peak does not count as a gain
    assert m.loc["noisy", "margin"] == pytest.approx(-0.1 / 3)
    assert m.loc["noisy", "low"] < 0 < m.loc["noisy", "high"]
    v = S.claim_deepest(m.reset_index())
    assert v["verdict"] == "reproduced" and v["clear"] == ["inner on d"]
    assert not m["always_last"].any()  # "noisy" chose l1 once
    assert v["detectable"] == pytest.approx(m.loc["noisy", "detectable"])  # "inner": no spread
    flat = S.inner_margins(_toy_layers({0: [.1, .2, .4], 1: [.1, .3, .5], 2: [.2, .2, .45]}))
    assert flat["always_last"].all() and flat["margin"].iloc[0] == 0
    assert np.isnan(S.claim_deepest(flat)["detectable"])
    one = S.claim_deepest(S.inner_margins(_toy_layers({0: [.1, .6, .4]})))
    assert one["verdict"].startswith("undetermined")


def test_claim_accuracy_compares_qualified_models_with_the_most_accurate():
    rows = []
    for model, acc, unseen in (("top", .97, (.30, .32, .31)), ("close", .93, (.50, .52, .49)),
                               ("weak", .40, (.90, .95, .92)), ("same", .95, (.29, .33, .31))):
        for t, u in enumerate(unseen):
            rows.append({"domain": "d", "model": model, "condition": "fine-tuned", "trial": t,
                         "seen_accuracy": acc, "best_nmi": u})
    table = S.claim_accuracy(pd.DataFrame(rows), level=0.9).set_index("model")
    assert not table.loc["weak", "qualified"] and table.loc["top", "most_accurate"]
    assert table.loc["close", "direction"] == "higher"
    assert table.loc["close", "effect"] == pytest.approx(np.mean([.50, .52, .49]) - .31)
    assert table.loc["same", "direction"] == "no difference detected"
    v = S.claim_accuracy_verdict(table.reset_index(), pd.DataFrame(rows))["d"]
    assert v["verdict"] == "reproduced" and v["better"] == ["close"] and v["qualified"] == 3
    assert v["spread_verdict"] == "reproduced" and v["spread_p"] < 0.05
    assert v["spread"] == pytest.approx(np.mean([.50, .52, .49]) - np.mean([.30, .32, .31]))
    alike = pd.DataFrame([r for r in rows if r["model"] in ("top", "same")])
    same = S.claim_accuracy_verdict(S.claim_accuracy(alike, level=0.9), alike)["d"]
    assert same["verdict"] == "not shown" and same["spread_verdict"] == "not shown"
    strict = S.claim_accuracy_verdict(S.claim_accuracy(pd.DataFrame(rows), level={"d": 0.96}))
    assert strict["d"]["verdict"] == "not testable"
    with pytest.raises(ValueError, match="level"):
        S.claim_accuracy(pd.DataFrame(rows), level=90)


def test_claim_sentences_name_the_models_and_intervals():
    layers = _toy_layers({0: [.1, .6, .4], 1: [.1, .7, .5], 2: [.2, .65, .45]}, model="inner")
    m = S.inner_margins(layers)
    text = S.deepest_sentence(m, S.claim_deepest(m))
    assert text.startswith("an inner layer beats the last one with an interval above 0 for 1 of 1")
    assert "inner on d, l1: +0.200" in text
    one = S.inner_margins(_toy_layers({0: [.1, .6, .4]}))
    assert "at least 3 trials" in S.deepest_sentence(one, S.claim_deepest(one))
    rows = [{"domain": "d", "model": mod, "condition": "fine-tuned", "trial": t,
             "seen_accuracy": acc, "best_nmi": u + 0.01 * t}
            for mod, acc, u in (("top", .97, .3), ("close", .93, .5)) for t in range(3)]
    table = S.claim_accuracy(pd.DataFrame(rows), level=0.9)
    text = S.accuracy_sentence(table, S.claim_accuracy_verdict(table))
    assert "2 of 2 models reach 0.90" in text and "close (0.93) is above it by +0.200" in text
    assert text.endswith(": reproduced")


def test_domain_levels_take_one_level_or_one_per_domain():
    a, b = (S.Domain.__new__(S.Domain) for _ in range(2))
    a.label, b.label = "A", "B"
    assert S.domain_levels(None, [a, b]) == {"A": None, "B": None}
    assert S.domain_levels([0.8], [a, b]) == {"A": 0.8, "B": 0.8}
    assert S.domain_levels([0.7, 0.9], [a, b]) == {"A": 0.7, "B": 0.9}
    with pytest.raises(ValueError, match=r"accuracy_levels .* one per domain \(2 domains"):
        S.domain_levels([0.7, 0.8, 0.9], [a, b])


def test_headline_is_nmi_when_measured_else_the_first_metric():
    assert S.headline_metric(["knn", "nmi"]) == "nmi"
    assert S.headline_metric(["probe", "knn"]) == "probe"


def test_domain_table_and_figure_describe_the_unseen_classes():
    import matplotlib.pyplot as plt

    d = S.style_domain(seen_fonts=3, unseen_fonts=2, per_pair=2, chars="0AB", seed=3)
    table = S.domain_table([d])
    assert list(table.index) == [d.label]
    assert table.loc[d.label, "unseen classes"] == 2 and table.loc[d.label, "seen classes"] == 3
    fig = S.plot_unseen(d)
    assert fig.axes[0].get_title() == f"{d.label}: images of the UNSEEN classes"
    plt.close(fig)


def _runs(rows) -> pd.DataFrame:
    """Run rows (model, domain, condition, trial, seen_accuracy, epochs, cached)."""
    keys = ("model", "domain", "condition", "trial", "seen_accuracy", "epochs", "cached")
    return pd.DataFrame([dict(zip(keys, r)) for r in rows])


def test_record_runs_quotes_the_fine_tuned_runs_only():
    runs = _runs([("a", "d", "fine-tuned", 0, .90, 5, True),
                  ("a", "d", "fine-tuned", 1, .80, 7, False),
                  ("b", "d", "fine-tuned", 0, .60, 3, True),
                  ("b", "e", "fine-tuned", 0, .70, 4, True),
                  ("a", "d", "pre-trained", 0, .10, 0, False)])
    acc = S.seen_accuracy_table(runs)
    assert acc.loc["a", "d"] == pytest.approx(.85) and np.isnan(acc.loc["a", "e"])
    assert list(acc.index) == ["a", "b"] and list(acc.columns) == ["d", "e"]
    kw = {"seconds": 41.7, "trials": [0, 1], "headline": "knn", "epochs": 7}
    rec = S.record_runs(runs, accuracy_levels=None, levels={"d": .9, "e": .9}, **kw)
    assert rec == {"sep_run_seconds": "42", "sep_cached_share": "75", "sep_n_trials": 2,
                   "sep_headline": "kNN purity", "sep_acc_min": "0.60", "sep_acc_max": "0.90",
                   "sep_epochs_range": "3-7", "sep_level": "7 epochs"}
    assert S.record_runs(runs, accuracy_levels=None, levels={}, **{**kw, "epochs": 1}
                         )["sep_level"] == "1 epoch"
    stopped = S.record_runs(runs, accuracy_levels=[.8, .95], levels={"d": .8, "e": .95}, **kw)
    assert stopped["sep_level"] == ("until its seen accuracy reached 0.80 on d, 0.95 on e "
                                    "(at most 7 epochs)")


def test_record_sources_names_the_models_that_did_not_learn_their_source_task():
    sources = pd.DataFrame({"source accuracy": [.97, .31, np.nan]},
                           index=pd.Index(["good", "poor", "hub"], name="model"))
    text = S.record_sources(sources)["sep_weak_sources"]
    assert text == ("poor reached only 0.31 source accuracy, so its 'pre-trained' start is "
                    "little better than random weights")
    assert S.record_sources(sources.iloc[[0, 2]]) == {
        "sep_weak_sources": "every zoo member learned its source task"}


def test_record_deepest_counts_inner_best_layers_and_quotes_the_held_out_verdict():
    layers = pd.concat([
        _toy_layers({0: [.1, .6, .4], 1: [.1, .7, .5], 2: [.2, .65, .45]}, model="inner"),
        _toy_layers({0: [.1, .5, .6], 1: [.1, .6, .5], 2: [.1, .5, .55]}, model="noisy"),
        _toy_layers({0: [.1, .2, .3], 1: [.1, .2, .4], 2: [.1, .3, .4]}, model="inner",
                    metric="knn"),
    ])
    runs = _runs([(m, "d", "fine-tuned", t, .9, 5, False) for m in ("inner", "noisy")
                  for t in range(3)])
    rec = S.record_deepest(layers, runs, "nmi")
    # trial means: inner peaks at l1 (.65 vs .45 at the last), noisy at the last layer;
    # run by run, inner's three trials and noisy's trial 1 peak inside
    assert {k: rec[k] for k in ("sep_not_last", "sep_curves", "sep_not_last_all",
                                "sep_curves_all", "sep_runs_not_last", "sep_runs")} == {
        "sep_not_last": 1, "sep_curves": 2, "sep_not_last_all": 1, "sep_curves_all": 3,
        "sep_runs_not_last": 4, "sep_runs": 6}
    assert rec["sep_mean_gain"] == "0.100"  # (0.2 + 0) / 2
    assert rec["sep_deepest_verdict"] == "reproduced"
    assert rec["sep_deepest_text"].startswith("an inner layer beats the last one with an "
                                              "interval above 0 for 1 of 2")


def test_record_accuracy_quotes_both_rules_per_domain():
    rows = [{"domain": "d", "model": model, "condition": "fine-tuned", "trial": t,
             "seen_accuracy": acc, "best_nmi": u}
            for model, acc, unseen in (("top", .97, (.30, .32, .31)),
                                       ("close", .93, (.50, .52, .49)),
                                       ("weak", .40, (.90, .95, .92)))
            for t, u in enumerate(unseen)]
    rec = S.record_accuracy(pd.DataFrame(rows), 0.9)
    assert rec["sep_claim1_short"] == "d: reproduced (spread rule: reproduced)"
    assert rec["sep_claim1_domains"] == "1 of 1"
    assert rec["sep_claim1_text"].startswith("on d, 2 of 3 models reach 0.90 seen accuracy")
    strict = S.record_accuracy(pd.DataFrame(rows), {"d": 0.96})
    assert strict["sep_claim1_domains"] == "0 of 1"
    assert strict["sep_claim1_short"] == "d: not testable (spread rule: not testable)"


def test_show_one_draws_the_chosen_curve_in_a_figure_of_its_own():
    import matplotlib.pyplot as plt

    plt.close("all")
    S.show_one(_toy_layers({0: [.1, .6, .4], 1: [.1, .5, .6]}), "m", "d", "nmi")
    assert plt.gcf().axes[0].get_title() == "m on d"
    plt.close("all")


def test_comparison_spread_gives_the_range_of_each_experiment_and_domain():
    summary = pd.DataFrame({"domain": ["d", "d"], "model": ["a", "b"], "seen_accuracy": [0.9, 0.7],
                            "unseen": [0.2, 0.5], "unseen_sd": [0.01, 0.02]})
    spread = S.comparison_spread(S.comparison_table(summary))
    ours = spread.loc[("this book (glyph-pre-trained zoo, 32 px)", "d")]
    assert ours[("seen accuracy", "min")] == 0.7 and ours[("seen accuracy", "max")] == 0.9
    assert ours[("unseen NMI (best layer)", "min")] == 0.2
    assert ours[("unseen NMI (best layer)", "max")] == 0.5
    assert len(spread) == len(S.PAPER) + 1  # the paper's domains and ours
