"""The atlas chapter (helpers.studies.atlas): its analysis on constructed tables, its values
against the metric functions called directly, and its cache (a new data set adds only its own
entries)."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers import cache, features, metrics, models
from helpers.metrics.intervals import mean_interval
from helpers.studies import atlas


def _values(curves: dict, seeds=(0, 1, 2), noise=0.01, measure="probe") -> pd.DataFrame:
    """A values table (as atlas.run makes it) from mean curves plus seed-wise noise."""
    rng = np.random.default_rng(0)
    rows = []
    for name, curve in curves.items():
        for seed in seeds:
            for i, v in enumerate(curve):
                rows.append({"seed": seed, "layer": f"l{i}", "layer_index": i,
                             "measure": measure, "dataset": name, "role":
                             "ID" if name == "id" else "other",
                             "value": v + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_recommend_takes_a_clear_inner_layer_and_says_when_layers_tie():
    clear = atlas.summarize(_values({"id": [0.2, 0.5, 0.9, 0.6]}, measure="nmi"))
    r = atlas.recommend(clear).iloc[0]
    assert (r.purpose, r.layer, r.clear, r.last_layer) == ("clustering", "l2", True, False)
    flat = atlas.summarize(_values({"id": [0.2, 0.5, 0.9, 0.9]}, noise=0.05, measure="nmi"))
    r = atlas.recommend(flat).iloc[0]
    assert not r.clear and r.layer in ("l2", "l3") and set(r.tied.split(", ")) & {"l2", "l3"}
    nc1 = atlas.summarize(_values({"id": [5.0, 3.0, 1.0, 2.0]}, measure="nc1"))
    assert atlas.recommend(nc1, {"collapse": "nc1"}).iloc[0].layer == "l2"  # lower is better


def test_layers_chosen_for_several_purposes_get_one_label_and_the_answer_says_how_sure():
    import matplotlib.pyplot as plt

    values = pd.concat([_values({"id": [0.2, 0.5, 0.9, 0.6]}, measure=m)
                        for m in ("nmi", "probe", "logme")])
    summary = atlas.summarize(values)
    rec = atlas.recommend(summary)
    assert set(rec.layer) == {"l2"}  # three purposes, one layer
    fig = atlas.plot_measures(summary, rec)
    labels = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert labels.count("CPT") == len({"separability", "transfer"}) and "C" not in labels
    plt.close(fig)
    answer = atlas.answer_markdown(rec)
    assert answer.count("| clear |") == 3 and "**l2**" in answer


def test_ood_table_finds_the_tunnel_and_its_interval():
    values = _values({"id": [0.3, 0.6, 0.8, 0.95], "shifted": [0.3, 0.6, 0.5, 0.3],
                      "near": [0.2, 0.4, 0.6, 0.7]}, noise=0.0)
    t = atlas.ood_table(values, "id").set_index("dataset")
    assert t.loc["shifted", "retained"] == pytest.approx(50.0)
    assert t.loc["shifted", "pivot_layer"] == "l1" and t.loc["shifted", "strength"] == "strong"
    assert t.loc["near", "retained"] == 100.0 and t.loc["near", "pivot_layer"] == "l3"
    assert t.loc["shifted", "low"] == pytest.approx(50.0)  # no noise: a zero-width interval


def test_ood_table_keeps_the_retained_interval_within_0_and_100():
    per_seed = {0: [0.9, 0.1], 1: [0.5, 0.5], 2: [0.9, 0.05]}  # retained 11, 100, 6 %
    rows = [{"seed": seed, "layer": f"l{i}", "layer_index": i, "measure": "probe",
             "dataset": name, "role": "other", "value": v}
            for seed, curve in per_seed.items()
            for name, values in (("id", [0.5, 0.9]), ("shifted", curve))
            for i, v in enumerate(values)]
    t = atlas.ood_table(pd.DataFrame(rows), "id").set_index("dataset")
    _, low, high = mean_interval([100 * 0.1 / 0.9, 100.0, 100 * 0.05 / 0.9])
    assert low < 0 and high > 100  # the unclipped t interval
    assert (t.loc["shifted", "low"], t.loc["shifted", "high"]) == (0.0, 100.0)


def test_summarize_gives_each_measure_its_interval_and_depth():
    values = _values({"id": [0.1, 0.2, 0.3]}, measure="logme", noise=0.05)
    s = atlas.summarize(values)
    g = values[values.layer == "l1"].value
    row = s[s.layer == "l1"].iloc[0]
    assert (row["mean"], row["low"], row["high"]) == pytest.approx(mean_interval(g))
    assert list(s.depth) == [0.0, 0.5, 1.0] and set(s.family) == {"transfer"}
    scaled = atlas.normalised(s)
    assert scaled.score.min() == 0 and scaled.score.max() == 1


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """A timm checkpoint file and two ImageFolder trees, as a reader would bring them."""
    root = tmp_path_factory.mktemp("atlas-user")
    torch.manual_seed(0)
    net = models.create("resnet10t", 4, img_size=32)
    torch.save(net.state_dict(), root / "my_resnet.pth")
    rng = np.random.default_rng(0)
    for folder, shift in (("mine", 0), ("shifted", 90)):
        for c in range(3):
            (root / folder / f"class{c}").mkdir(parents=True)
            for i in range(10):
                img = np.full((24, 24, 3), 40 + 60 * c + shift, np.uint8)
                img[rng.integers(0, 24, 30), rng.integers(0, 24, 30)] = 255 - shift
                img[:, : 4 + 3 * c + (i % 3)] = rng.integers(0, 255)
                Image.fromarray(img).save(root / folder / f"class{c}" / f"{i}.png")
    return root


MEASURED = ["nmi", "knn", "logme", "nc1", "rankme", "sfda", "probe"]


def test_the_atlas_of_a_checkpoint_on_image_folders_equals_the_metrics_called_directly(
        user_files, monkeypatch, tmp_path):
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))
    mine, shifted = str(user_files / "mine"), str(user_files / "shifted")
    result = atlas.run("resnet10t", mine, [shifted], weights=str(user_files / "my_resnet.pth"),
                       per_class=10, seeds=[0, 1], fraction=0.8, metrics=MEASURED,
                       probe_epochs=5, progress=False)
    net, _ = atlas.load_model("resnet10t", str(user_files / "my_resnet.pth"))
    assert net.num_classes == 4  # the checkpoint's head, not a fresh one
    for name, folder in (("mine", mine), ("shifted", shifted)):
        ds = atlas.load_set(folder, {}, 32, 10, 0)
        feats = features.extract(net, ds, progress=False)
        y = ds.labels.numpy()
        for seed in (0, 1):
            idx = atlas.subsample(y, 0.8, seed)
            got = result.values[(result.values.dataset == folder) & (result.values.seed == seed)]
            for layer in models.layer_names(net):
                x = np.asarray(feats[layer])[idx]
                v = got[got.layer == layer].set_index("measure").value
                assert v["nmi"] == pytest.approx(metrics.nmi_kmeans(x, y[idx], random_state=seed))
                k = int(np.bincount(y[idx]).min()) - 1
                assert v["knn"] == pytest.approx(metrics.knn_purity(x, y[idx], k=k))
                assert v["logme"] == pytest.approx(metrics.logme(x, y[idx]))
                assert v["nc1"] == pytest.approx(metrics.nc1(x, y[idx]))
                assert v["rankme"] == pytest.approx(metrics.rankme(x))
                assert v["sfda"] == pytest.approx(metrics.sfda(x, y[idx]))
                assert 0 <= v["probe"] <= 1
        logits = np.asarray(feats["logits"])
        head = result.head.set_index("dataset").loc[folder]
        probs = torch.from_numpy(logits.copy()).softmax(1).numpy()
        assert head.leep == pytest.approx(metrics.leep(probs, y))
        assert head.nce == pytest.approx(metrics.nce(logits.argmax(1), y))
    assert set(result.recommendations.purpose) == {"clustering", "probing", "transfer"}
    assert len(result.cka) == len(models.layer_names(net)) ** 2
    layers = models.layer_names(net)
    a = np.asarray(features.extract(net, atlas.load_set(mine, {}, 32, 10, 0),
                                    progress=False)[layers[1]])
    b = np.asarray(features.extract(net, atlas.load_set(mine, {}, 32, 10, 0),
                                    progress=False)[layers[3]])
    cka = result.cka.set_index(["layer_a", "layer_b"]).cka
    assert cka[(layers[1], layers[3])] == pytest.approx(metrics.linear_cka(a, b))
    assert atlas.csv_link(result.summary).startswith('<a download="atlas.csv"')


def test_adding_a_data_set_computes_only_its_own_entries(user_files, monkeypatch, tmp_path):
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))
    mine, shifted = str(user_files / "mine"), str(user_files / "shifted")
    kw = dict(weights=str(user_files / "my_resnet.pth"), per_class=10, seeds=[0, 1],
              metrics=["nmi", "logme", "probe"], probe_epochs=3, progress=False)
    atlas.run("resnet10t", mine, [], **kw)
    entries = lambda: {p.name for p in (tmp_path / "atlas").glob("*.pt")}
    feature_entries = lambda: {p.name for p in (tmp_path / "features").iterdir() if p.is_dir()}
    before, feats_before = entries(), feature_entries()
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "atlas").glob("*.pt")}
    again = atlas.run("resnet10t", mine, [shifted], **kw)
    new = entries() - before
    assert len(new) == 3 and {n.split("-")[0] for n in new} == {"_measure_features"}
    assert before <= entries() and all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert len(feature_entries() - feats_before) == 1  # the new set's features, once
    assert set(again.values.dataset) == {mine, shifted}


def test_bad_atlas_inputs_are_named(user_files, tmp_path):
    with pytest.raises(ValueError, match="weights: no checkpoint file"):
        atlas.load_model("resnet10t", str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="id_data: 'source'"):
        atlas.load_set("source", {"member": "resnet50@x.pth", "source_classes": None})
    with pytest.raises(ValueError, match="layers: unknown layer 'layer9'"):
        atlas.run("resnet10t", str(user_files / "mine"), weights=str(user_files / "my_resnet.pth"),
                  layers=["layer9"], progress=False)
    assert cache.code_hash(atlas.measure) != cache.code_hash(atlas.cka_map)
