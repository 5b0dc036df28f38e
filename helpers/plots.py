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


def palette(names) -> dict:
    """A colour per name from the colour-blind-safe palette, in the order given (a name keeps
    its colour wherever the same list is drawn)."""
    colours = sns.color_palette("colorblind", max(10, len(names)))
    return {n: colours[i % len(colours)] for i, n in enumerate(names)}


def _order(table: pd.DataFrame, column: str | None, order) -> list:
    return [None] if column is None else list(order or dict.fromkeys(table[column]))


def layer_curves(table: pd.DataFrame, y: str = "value", hue: str = "model", col: str = "metric",
                 row: str | None = None, x: str = "depth", *, hue_order=None, col_order=None,
                 linestyles: dict | None = None, sharey: bool | str = False,
                 height: float = 2.6, aspect: float = 1.2, xlabel: str | None = None,
                 ylabel: str | None = None):
    """Per-layer curves: one panel per ``row`` x ``col``, one line per ``hue`` (the mean over
    repeated rows, e.g. trials, with a band of +- one standard deviation).

    ``x="depth"`` puts layers of models of different depth on one 0..1 axis. ``linestyles`` maps
    hue values to matplotlib line styles; ``sharey``: False, True or "row". Drawn with matplotlib
    directly: seaborn's relplot lays the figure out four times, this once (3x faster).
    """
    rows, cols = _order(table, row, None), _order(table, col, col_order)
    hues = _order(table, hue, hue_order)
    keys = [k for k in (row, col, hue) if k is not None]
    stats = table.groupby([*keys, x], sort=False)[y].agg(["mean", "std"]).reset_index()
    colours = dict(zip(hues, sns.color_palette(n_colors=max(len(hues), 10))))
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False, sharex=True, sharey=sharey,
                             figsize=(aspect * height * len(cols), height * len(rows)))
    for (i, r), (j, c) in ((a, b) for a in enumerate(rows) for b in enumerate(cols)):
        ax = axes[i, j]
        mask = pd.Series(True, index=stats.index)
        for column, value in ((row, r), (col, c)):
            if column is not None:
                mask &= stats[column] == value
        panel = stats[mask]
        for h in hues:
            line = panel[panel[hue] == h].sort_values(x)
            if line.empty:
                continue
            ax.plot(line[x], line["mean"], marker="o", ms=5, color=colours[h], label=str(h),
                    ls=(linestyles or {}).get(h, "-"))
            ax.fill_between(line[x], line["mean"] - line["std"], line["mean"] + line["std"],
                            color=colours[h], alpha=0.2, lw=0)
        ax.set_title("\n".join(str(t) for t in (r, c) if t is not None), fontsize=9)
        if i == len(rows) - 1:
            ax.set_xlabel(xlabel or ("relative depth" if x == "depth" else x))
        if j == 0:
            ax.set_ylabel(ylabel or y)
    legend = {}
    for ax in axes.flat:
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
    fig.legend(legend.values(), legend.keys(), title=hue, loc="center left", bbox_to_anchor=(1, 0.5),
               frameon=False, fontsize=9)
    fig.tight_layout()
    return fig


def add_depth(table: pd.DataFrame, by=("model",)) -> pd.DataFrame:
    """Add ``depth`` = layer index / (layers - 1) within each model, from the ``layer_index`` column."""
    table = table.copy()
    n = table.groupby(list(by))["layer_index"].transform("max").clip(lower=1)
    table["depth"] = table["layer_index"] / n
    return table
