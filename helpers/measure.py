"""The forward path measured: every layer of a model extracted once and scored by the metrics
(the step after ``features`` in the flow of the package; used by the tour and Chapters 1-3)."""

from __future__ import annotations

from .data import ImageSet
from .features import extract
from .metrics import layerwise


def layer_table(model, data: ImageSet, metrics=("nmi", "knn"), name: str = "model",
                pooling: str = "auto", progress: bool = False, **metric_options):
    """Extract every layer of ``model`` on ``data`` and measure it: a tidy table with columns
    model, layer, layer_index, depth (0 = first layer, 1 = last), metric, value (Chapters 1-3)."""
    feats = extract(model, data, pooling=pooling, progress=progress)
    layers = {k: v for k, v in feats.items() if k != "logits"}
    table = layerwise(layers, data.labels.numpy(), metrics=metrics, **metric_options)
    order = {layer: i for i, layer in enumerate(layers)}
    table.insert(0, "model", name)
    table.insert(2, "layer_index", table["layer"].map(order))
    table.insert(3, "depth", table["layer_index"] / max(1, len(layers) - 1))
    return table
