"""The book's figures, one function per kind (seaborn on matplotlib)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .data import ImageSet

sns.set_theme(context="notebook", style="whitegrid")


def image_grid(data: ImageSet, n: int = 32, per_row: int = 16, title: str | None = None, seed: int = 0):
    """A grid of ``n`` random images with their class names (Chapter 1 shows the domains)."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(data), size=min(n, len(data)), replace=False))
    rows = int(np.ceil(len(idx) / per_row))
    fig, axes = plt.subplots(rows, per_row, figsize=(per_row * 0.7, rows * 0.85))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, i in zip(np.ravel(axes), idx):
        img = data.images[i].permute(1, 2, 0).numpy()
        ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray")
        ax.set_title(str(data.classes[data.labels[i]])[:10], fontsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
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
