"""The book's figures, one function per kind (seaborn on matplotlib), in one style: sized for
the page (:data:`PAGE_WIDTH`, ``book.mplstyle``), colour-blind-safe colours, and the same colour
for a model in every chapter (:func:`palette`)."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

if TYPE_CHECKING:
    from .data import ImageSet

#: The book's figure style (a matplotlib style sheet).
BOOK_STYLE = Path(__file__).with_name("book.mplstyle")
#: The widest figure (inches) whose fonts read at their size at the width of the page's text.
PAGE_WIDTH = 7.0
#: seaborn's colour-blind-safe palette: the colours of every figure.
COLOURS = sns.color_palette("colorblind")
#: Each zoo member's colour (an index into :data:`COLOURS`) in every chapter's figures; the
#: second blue is convnext_atto's, a member only the runs of the whole zoo draw.
MEMBER_COLOURS = {"resnet10t": 0, "resnet18": 1, "smallcnn": 2, "vit_tiny": 3,
                  "resnet10t_noaug": 4, "resnet10t_digits": 5, "convnext_atto": 9}
#: The indices of :data:`COLOURS`, the most visible on white first (pale pink and yellow last).
_BY_VISIBILITY = (0, 1, 2, 3, 4, 5, 9, 7, 6, 8)


def use_book_style() -> None:
    """Apply the book's figure style (``helpers/book.mplstyle``) to the figures made from now."""
    plt.style.use(BOOK_STYLE)


def fit_width(width: float, height: float) -> tuple[float, float]:
    """A figure size ``(width, height)`` scaled down to at most :data:`PAGE_WIDTH` wide."""
    scale = min(1.0, PAGE_WIDTH / width)
    return width * scale, height * scale


def _colour_index(name) -> int:
    """A zoo member's own colour; any other name's by a hash of it (among the visible ones)."""
    if name in MEMBER_COLOURS:
        return MEMBER_COLOURS[name]
    return _BY_VISIBILITY[zlib.crc32(str(name).encode()) % 8]


def palette(names) -> dict:
    """A colour of :data:`COLOURS` per name, the same for a name in every figure: a zoo
    member's own, any other name's by a hash of it. A name whose colour another name of
    ``names`` took gets the most visible free one (names taken in sorted order, so the colours
    do not depend on the order given); distinct for up to 10 names."""
    free, chosen = list(_BY_VISIBILITY), {}
    for name in sorted(dict.fromkeys(names), key=lambda n: (n not in MEMBER_COLOURS, str(n))):
        index = _colour_index(name)
        if index not in free and free:
            index = free[0]
        if index in free:
            free.remove(index)
        chosen[name] = COLOURS[index]
    return {name: chosen[name] for name in names}


def spread(positions, gap: float) -> np.ndarray:
    """``positions`` moved apart to at least ``gap`` from each other, each as little as it
    takes (labels beside the ends of curves that end close together), in the given order."""
    y = np.asarray(positions, dtype=float)
    order = np.argsort(y, kind="stable")
    out = y[order].copy()
    for _ in range(len(out)):  # push up, then centre each cluster on its original mean
        for i in range(1, len(out)):
            out[i] = max(out[i], out[i - 1] + gap)
        start = 0
        for i in range(1, len(out) + 1):
            if i == len(out) or out[i] - out[i - 1] > gap + 1e-12:
                out[start:i] += y[order][start:i].mean() - out[start:i].mean()
                start = i
        if np.all(np.diff(out) >= gap - 1e-9):
            break
    result = np.empty_like(out)
    result[order] = out
    return result


def image_grid(data: ImageSet, n: int = 32, per_row: int = 8, title: str | None = None, seed: int = 0):
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
                ha="center", va="bottom", fontsize=7)
    ax.imshow(canvas.squeeze(-1) if c == 1 else canvas, cmap="gray")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _order(table: pd.DataFrame, column: str | None, order) -> list:
    return [None] if column is None else list(order or dict.fromkeys(table[column]))


def layer_curves(table: pd.DataFrame, y: str = "value", hue: str = "model", col: str = "metric",
                 row: str | None = None, x: str = "depth", *, hue_order=None, row_order=None,
                 col_order=None, linestyles: dict | None = None, colours: dict | None = None,
                 sharey: bool | str = False, height: float = 2.6, aspect: float = 1.2,
                 xlabel: str | None = None, ylabel: str | None = None):
    """Per-layer curves: one panel per ``row`` x ``col``, one line per ``hue`` (the mean over
    repeated rows, e.g. trials, with a band of +- one standard deviation).

    ``x="depth"`` puts layers of models of different depth on one 0..1 axis. ``linestyles`` maps
    hue values to matplotlib line styles, ``colours`` to colours (default: :func:`palette`, a
    model keeps its colour); ``sharey``: False, True, "row" or "col". Panels scaled to the page
    (:func:`fit_width`), the legend below them. Drawn with matplotlib directly: seaborn's
    relplot lays the figure out four times, this once (3x faster).
    """
    rows, cols = _order(table, row, row_order), _order(table, col, col_order)
    hues = _order(table, hue, hue_order)
    keys = [k for k in (row, col, hue) if k is not None]
    stats = table.groupby([*keys, x], sort=False)[y].agg(["mean", "std"]).reset_index()
    colours = colours or palette(hues)
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False, sharex=True, sharey=sharey,
                             figsize=fit_width(aspect * height * len(cols), height * len(rows)))
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
        ax.set_title("\n".join(str(t) for t in (r, c) if t is not None), fontsize=10)
        if i == len(rows) - 1:
            ax.set_xlabel(xlabel or ("relative depth" if x == "depth" else x))
        if j == 0:
            ax.set_ylabel(ylabel or y)
    legend = {}
    for ax in axes.flat:
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
    fig.tight_layout()
    fig.legend(legend.values(), legend.keys(), title=hue, loc="upper center",
               bbox_to_anchor=(0.5, 0), ncol=min(len(legend), 4), frameon=False)
    return fig


def add_depth(table: pd.DataFrame, by=("model",)) -> pd.DataFrame:
    """Add ``depth`` = layer index / (layers - 1) within each model, from the ``layer_index`` column."""
    table = table.copy()
    n = table.groupby(list(by))["layer_index"].transform("max").clip(lower=1)
    table["depth"] = table["layer_index"] / n
    return table
