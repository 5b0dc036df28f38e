"""Figure helpers draw what they are given (the chapters' figures are checked in the book)."""

from __future__ import annotations

import numpy as np

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
