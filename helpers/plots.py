"""The book's figures, one function per kind (seaborn on matplotlib)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .data import ImageSet

sns.set_theme(context="notebook", style="whitegrid")


def image_grid(data: ImageSet, n: int = 32, per_row: int = 16, title: str | None = None, seed: int = 0):
    """A grid of ``n`` random images with their class names (Chapter 1 shows the domains).

    One image of tiles on one axis (one artist, not one axis per image: 10x faster to draw).
    """
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(data), size=min(n, len(data)), replace=False))
    rows = int(np.ceil(len(idx) / per_row))
    images = data.images[idx].permute(0, 2, 3, 1).numpy()  # (n, H, W, C)
    _, h, w, c = images.shape
    pad = max(1, h // 8)
    tile_h, tile_w = h + 2 * pad, w + pad
    canvas = np.ones((rows * tile_h, per_row * tile_w, c), dtype=images.dtype) * images.max()
    fig, ax = plt.subplots(figsize=(per_row * 0.7, rows * 0.85))
    for k, i in enumerate(idx):
        top, left = (k // per_row) * tile_h + 2 * pad, (k % per_row) * tile_w
        canvas[top:top + h, left:left + w] = images[k]
        ax.text(left + w / 2, top - pad / 2, str(data.classes[data.labels[i]])[:10],
                ha="center", va="bottom", fontsize=6)
    ax.imshow(canvas.squeeze(-1) if c == 1 else canvas, cmap="gray")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def layer_curves(table: pd.DataFrame, y: str = "value", hue: str = "model", col: str = "metric",
                 row: str | None = None, x: str = "depth", style: str | None = None,
                 sharey: bool = False, height: float = 2.6):
    """Per-layer curves: one panel per ``col`` (and ``row``), one line per ``hue``.

    ``x="depth"`` puts layers of models of different depth on one 0..1 axis.
    """
    g = sns.relplot(data=table, x=x, y=y, hue=hue, col=col, row=row, style=style, kind="line",
                    marker="o", height=height, aspect=1.2,
                    facet_kws={"sharey": sharey, "margin_titles": True})
    g.set_axis_labels("relative depth (first layer = 0, last = 1)" if x == "depth" else x, y)
    return g


def add_depth(table: pd.DataFrame, by=("model",)) -> pd.DataFrame:
    """Add ``depth`` = layer index / (layers - 1) within each model, from the ``layer_index`` column."""
    table = table.copy()
    n = table.groupby(list(by))["layer_index"].transform("max").clip(lower=1)
    table["depth"] = table["layer_index"] / n
    return table
