"""Figure helpers draw what they are given (the chapters' figures are checked in the book)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import plots


def test_image_grid_tiles_the_chosen_images_with_their_class_names(small_set):
    fig = plots.image_grid(small_set, n=5, per_row=3, seed=1)
    (ax,) = fig.axes
    (shown,) = ax.get_images()
    canvas = np.asarray(shown.get_array())
    idx = np.sort(np.random.default_rng(1).choice(len(small_set), 5, replace=False))
    first = small_set.images[idx[0]].permute(1, 2, 0).numpy().squeeze(-1)
    h, w = first.shape
    pad = max(1, h // 8)
    np.testing.assert_array_equal(canvas[2 * pad:2 * pad + h, :w], first)
    assert canvas.shape == (2 * (h + 2 * pad), 3 * (w + pad))
    names = [t.get_text() for t in ax.texts]
    assert names == [str(small_set.classes[small_set.labels[i]])[:10] for i in idx]


def test_layer_curves_draw_the_mean_over_trials_with_an_sd_band_per_panel_and_hue():
    rng = np.random.default_rng(0)
    rows = [{"domain": d, "metric": m, "model": h, "trial": t, "depth": x, "value": rng.random()}
            for d in ("A", "B") for m in ("nmi", "knn") for h in ("r10", "vit")
            for t in range(3) for x in (0.0, 0.5, 1.0)]
    table = pd.DataFrame(rows)
    fig = plots.layer_curves(table, hue="model", row="domain", col="metric",
                             hue_order=["vit", "r10"], linestyles={"r10": "--"})
    assert len(fig.axes) == 4
    ax = fig.axes[1]  # row A, column knn
    assert ax.get_title() == "A\nknn"
    panel = table[(table.domain == "A") & (table.metric == "knn")]
    for line, model in zip(ax.get_lines(), ["vit", "r10"]):
        expect = panel[panel.model == model].groupby("depth")["value"]
        np.testing.assert_allclose(line.get_ydata(), expect.mean().to_numpy())
        assert line.get_linestyle() == ("--" if model == "r10" else "-")
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    sd = panel[panel.model == "vit"].groupby("depth")["value"].std().to_numpy()
    mean = panel[panel.model == "vit"].groupby("depth")["value"].mean().to_numpy()
    np.testing.assert_allclose(np.sort(np.unique(band.round(12))),
                               np.sort(np.unique(np.r_[mean - sd, mean + sd].round(12))))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["vit", "r10"]


def test_a_zoo_member_has_the_same_colour_in_every_figure_whatever_else_is_drawn():
    from helpers.names import ZOO

    assert set(plots.MEMBER_COLOURS) == set(ZOO)
    everyone = plots.palette(list(ZOO) + ["fine-tuned", "resnet50"])
    assert plots.palette(list(reversed(ZOO))) == {m: everyone[m] for m in reversed(ZOO)}
    assert all(plots.palette([m, "x"])[m] == everyone[m] for m in ZOO)
    assert len(set(everyone.values())) == len(everyone)  # distinct within a figure


def test_any_other_name_keeps_its_colour_whatever_the_order():
    names = ["fine-tuned", "pre-trained", "random init", 50, 100]
    assert plots.palette(names) == plots.palette(list(reversed(names)))
    assert plots.palette(["nmi"]) == {"nmi": plots.palette(["knn", "nmi"])["nmi"]}


def test_the_colours_and_the_book_style_are_seaborns_colour_blind_palette():
    import matplotlib as mpl
    import seaborn as sns

    colorblind = sns.color_palette("colorblind")
    assert plots.COLOURS == colorblind
    assert set(plots.palette(["a", "b", "resnet18"]).values()) <= set(colorblind)
    with mpl.rc_context():
        plots.use_book_style()
        cycle = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
        assert [mpl.colors.to_rgb(c) for c in cycle] == list(colorblind)
        assert mpl.rcParams["font.size"] >= 10 and mpl.rcParams["figure.dpi"] == 100


def test_layer_curves_colour_each_model_with_its_palette_colour_and_fit_the_page():
    table = pd.DataFrame([{"metric": m, "model": h, "depth": x, "value": x}
                          for m in ("nmi", "knn", "probe", "1nn", "logme")
                          for h in ("smallcnn", "vit_tiny") for x in (0.0, 1.0)])
    fig = plots.layer_curves(table, hue="model", col="metric")
    colours = plots.palette(["smallcnn", "vit_tiny"])
    for ax in fig.axes:
        assert [line.get_color() for line in ax.get_lines()] == list(colours.values())
    assert fig.get_figwidth() <= plots.PAGE_WIDTH


def test_setup_styles_the_figures_without_loading_matplotlib(tmp_path):
    import os
    import subprocess
    import sys

    from helpers import chapters

    assert chapters.BOOK_STYLE == plots.BOOK_STYLE
    code = ("import sys, helpers.chapters as c; c._use_book_style(); "
            "print('matplotlib' in sys.modules); "
            "import matplotlib; print(matplotlib.rcParams['figure.dpi'])")
    env = {k: v for k, v in os.environ.items() if k != "MATPLOTLIBRC"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=True, env={**env, "PYTHONPATH": str(chapters.ROOT)})
    assert done.stdout.split() == ["False", "100.0"]


@pytest.mark.parametrize("positions", [[0.5, 0.51, 0.9], [0.51, 0.5, 0.52, 0.55], [0.3, 0.3, 0.3],
                                       [0.1, 0.5], [0.9, 0.2, 0.21, 0.88, 0.5]])
def test_spread_keeps_labels_a_gap_apart_in_their_order_moving_only_those_too_close(positions):
    gap = 0.05
    y = np.asarray(positions)
    out = plots.spread(positions, gap)
    order = np.argsort(y, kind="stable")
    assert np.all(np.diff(out[order]) >= gap - 1e-9)  # apart, and still in the same order
    alone = [i for i in range(len(y))
             if all(abs(y[i] - y[j]) >= 3 * gap * len(y) for j in range(len(y)) if j != i)]
    assert np.allclose(out[alone], y[alone])  # far from every other: not moved
    close = np.abs(y[:, None] - y[None, :]) < gap
    if close.sum() > len(y):  # a crowded group stays centred where it was
        assert abs(out.mean() - y.mean()) < gap * len(y)


def test_tunnel_panels_label_curves_that_end_together_apart():
    import matplotlib.pyplot as plt

    from helpers.studies import tunnel

    fig, ax = plt.subplots()
    ax.set_ylim(0, 1)
    tunnel.label_ends(ax, [(1.0, 0.50, "40%"), None, (1.0, 0.51, "42%")], ["C0", "C1", "C2"])
    ys = sorted(t.get_position()[1] for t in ax.texts)
    assert [t.get_text() for t in ax.texts] == ["40%", "42%"]
    assert ys[1] - ys[0] >= 0.07 - 1e-9
    plt.close(fig)
