"""Chapter 6 (``atlas``): every measure of the book at every layer of one model, on several
data sets, with intervals, and the layer to take for each purpose.

Jobs (cached, so that adding a data set or a measure computes only what is new): each data
set's features (one forward pass for all layers, :func:`helpers.features.extract`), each
measure over subsample replicates, the CKA map between layers. Analysis (tables in, tables
out): intervals, % OOD performance retained, recommended layers. Figures: every measure
against depth, the CKA map. The methods page gives the formulas.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import cache, data, features, models
from ..data import ImageSet
from ..metrics import layerwise, leep, linear_cka, nce, ood_retained
from ..metrics.intervals import clear_best, mean_interval
from ..metrics.layerwise import options_of
from . import tunnel

CHAPTER = "atlas"
#: measure -> (family, higher is better; None: neither, a description)
MEASURES: dict[str, tuple[str, bool | None]] = {
    "nmi": ("separability", True), "knn": ("separability", True),
    "1nn": ("separability", True), "probe": ("separability", True),
    "logme": ("transfer", True), "h_score": ("transfer", True), "gbc": ("transfer", True),
    "sfda": ("transfer", True), "nleep": ("transfer", True), "parc": ("transfer", True),
    "knn_acc": ("transfer", True),
    "face.variance_collapse": ("transfer", True), "face.class_fairness": ("transfer", True),
    "face.face": ("transfer", True),
    "ncti.seli": ("transfer", True), "ncti.ncc": ("transfer", True), "ncti.vc": ("transfer", False),
    "nc1": ("geometry", False), "numerical_rank": ("geometry", None),
    "rankme": ("geometry", None),
}
#: purpose -> the measure that decides it
PURPOSES = {"clustering": "nmi", "probing": "probe", "transfer": "logme"}
#: the measures layerwise computes for the atlas (face and ncti give several rows each)
METRICS = ("nmi", "knn", "1nn", "probe", "logme", "h_score", "gbc", "sfda", "nleep", "parc",
           "knn_acc", "face", "ncti", "nc1", "numerical_rank", "rankme")
#: rows per data set used for the CKA map (linear CKA is O(N^2) in the Gram form)
CKA_ROWS = 2000


@dataclass
class Atlas:
    """Everything one atlas run measured (plain tables; see :func:`run`)."""

    model: dict
    sets: pd.DataFrame
    values: pd.DataFrame
    summary: pd.DataFrame
    head: pd.DataFrame
    ood: pd.DataFrame
    cka: pd.DataFrame
    recommendations: pd.DataFrame


# --------------------------------------------------------------------------------------------
# Loading: the model (zoo member, hub name or checkpoint file) and the data sets
# --------------------------------------------------------------------------------------------

def load_model(model: str, weights: str = "", scale: str = "default"):
    """(network, info): a zoo member (pre-trained here, cached), a timm name with hub weights,
    or, with ``weights``, the timm architecture ``model`` loaded from that local checkpoint."""
    if not weights:
        net, info = tunnel.load_member(model, scale=scale)
        return net, {**info, "weights": "zoo" if info["source_classes"] else "hub"}
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ValueError(f"weights: no checkpoint file at {weights!r} (leave it empty for the "
                         "zoo member's or the hub's weights)")
    net = models.create(model, models.checkpoint_classes(model, path), weights=path).eval()
    return net, {"member": f"{model}@{path.name}", "model": model, "source_classes": None,
                 "source": f"checkpoint {path.name}", "weights": str(path),
                 "layers": len(models.layer_names(net)), "is_vit": models.is_token_model(net),
                 "params_M": sum(p.numel() for p in net.parameters()) / 1e6}


def load_set(name: str, info: dict, resolution: int = 32, per_class: int = 30, seed: int = 0,
             root=None, download: bool = False) -> ImageSet:
    """A data set by name, at most ``per_class`` images per class: ``source`` (fresh renders of
    a zoo member's own source task), an ImageFolder directory, or a set the tunnel chapter
    knows (embedded domains, their variations, torchvision classes)."""
    if name == "source":
        if not info.get("source_classes"):
            raise ValueError(f"id_data: 'source' is the source task of a zoo member; "
                             f"{info['member']} has none here: name a data set")
        return tunnel.id_set(info, per_class=per_class, resolution=resolution, seed=seed)
    if Path(name).expanduser().is_dir():
        folder = data.image_folder(str(Path(name).expanduser()), resolution)
        smallest = int(folder.counts().min())
        return folder if folder.counts().max() <= per_class else data.per_class(
            folder, min(per_class, smallest), seed=seed)
    return tunnel.load_set(name, resolution=resolution, per_class=per_class, seed=seed,
                           root=root, download=download)


# --------------------------------------------------------------------------------------------
# Jobs: each measure of each data set over subsample replicates, cached per (features, measure)
# --------------------------------------------------------------------------------------------

def subsample(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of ``fraction`` of every class (at least 2 per class), drawn with ``seed``."""
    if not 0 < fraction <= 1:
        raise ValueError(f"subsample must be in (0, 1], got {fraction!r}")
    rng = np.random.default_rng(seed)
    out = [rng.choice(np.flatnonzero(labels == c), max(2, round(fraction * np.sum(labels == c))),
                      replace=False) for c in np.unique(labels)]
    return np.sort(np.concatenate(out))


def measure(feats: dict[str, np.ndarray], labels: np.ndarray, metric: str, seeds: Sequence[int],
            fraction: float, options: dict) -> pd.DataFrame:
    """``metric`` at every layer on each seed's subsample: columns seed, layer, measure, value.
    Randomised metrics (k-means, probe, mixture) take the seed as their ``random_state``."""
    accepted = options_of(metric)
    rows = []
    for seed in seeds:
        idx = subsample(labels, fraction, seed)
        opts = {k: v for k, v in {**options, "random_state": seed}.items() if k in accepted}
        table = layerwise({k: np.asarray(v)[idx] for k, v in feats.items()}, labels[idx],
                          metrics=[metric], **opts)
        rows.append(table.assign(seed=seed))
    out = pd.concat(rows, ignore_index=True).rename(columns={"metric": "measure"})
    return out[["seed", "layer", "measure", "value"]]


def measure_set(net, dataset: ImageSet, metrics: Sequence[str], *, seeds: Sequence[int],
                fraction: float, options: dict, layers="all", pooling: str = "auto",
                weights: str | None = None) -> pd.DataFrame:
    """Every metric at every layer on one data set; its features extracted once (cached) and
    each metric cached on its own, keyed on the features' cache key."""
    feats = features.lazy(net, dataset, layers=layers, pooling=pooling, weights=weights)
    labels = dataset.labels.numpy()
    tables = [cache.memo(_measure_features, feats, labels, m, list(seeds), fraction,
                         {k: v for k, v in options.items() if k in options_of(m)},
                         folder=CHAPTER) for m in metrics]
    return pd.concat(tables, ignore_index=True)


def _measure_features(feats: cache.Lazy, labels: np.ndarray, metric: str, seeds: list,
                      fraction: float, options: dict) -> pd.DataFrame:
    return measure(feats.value, labels, metric, seeds, fraction, options)


def head_scores(net, dataset: ImageSet, layers="all", pooling: str = "auto"
                ) -> dict[str, float]:
    """LEEP and NCE of the model's own head on ``dataset`` (its logits, from the cached
    extraction of the layers: one value per set)."""
    logits = torch.as_tensor(np.array(features.extract(
        net, dataset, layers=layers, pooling=pooling, progress=False)["logits"]))
    labels = dataset.labels.numpy()
    return {"leep": leep(logits.softmax(1).numpy(), labels),
            "nce": nce(logits.argmax(1).numpy(), labels)}


def cka_map(net, dataset: ImageSet, layers="all", pooling: str = "auto",
            weights: str | None = None) -> pd.DataFrame:
    """Linear CKA between every pair of layers on (at most :data:`CKA_ROWS` of) ``dataset``."""
    return cache.memo(_cka_table, features.lazy(net, dataset, layers=layers, pooling=pooling,
                                                weights=weights), folder=CHAPTER)


def _cka_table(feats: cache.Lazy) -> pd.DataFrame:
    names = list(feats.value)
    rows = np.random.default_rng(0).permutation(len(feats.value[names[0]]))[:CKA_ROWS]
    x = {k: np.asarray(feats.value[k])[np.sort(rows)] for k in names}
    return pd.DataFrame([{"layer_a": a, "layer_b": b, "cka": linear_cka(x[a], x[b])}
                         for a in names for b in names])


# --------------------------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------------------------

def run(model: str, id_data: str = "source", other_data: Sequence[str] = (), *,
        weights: str = "", scale: str = "default", layers: Sequence[str] = (),
        resolution: int = 32, per_class: int = 30, seeds: Sequence[int] = (0, 1, 2),
        fraction: float = 0.8, metrics: Sequence[str] = METRICS, pooling: str = "auto",
        knn_k: int | None = None, probe_epochs: int = 30, data_root=None,
        download: bool = False, seed: int = 0, progress: bool = True) -> Atlas:
    """Every measure at every layer of ``model`` on ``id_data`` and each of ``other_data``.

    ``layers``: names of :func:`helpers.models.layer_names` (empty: all). ``seeds``: one
    subsample of ``fraction`` of every class per seed (and the seed of randomised measures);
    the intervals are over them. ``probe_epochs``: the linear probe's epochs.
    """
    from tqdm import tqdm

    names = [id_data, *[d for d in other_data if d != id_data]]
    net, info = load_model(model, weights, scale)
    chosen = list(layers) or "all"
    features._layer_indices(net, chosen)  # unknown layer names fail here, naming the layer
    weights_id = cache.weights_hash(net)
    options = {"epochs": probe_epochs, **({"k": knn_k} if knn_k else {})}
    sets = {n: load_set(n, info, resolution, per_class, seed, data_root, download) for n in names}
    values, heads = [], []
    bar = tqdm(total=len(sets) * len(metrics), desc="atlas", disable=not progress, unit="measure")
    for name, ds in sets.items():
        for m in metrics:
            t = measure_set(net, ds, [m], seeds=seeds, fraction=fraction, options=options,
                            layers=chosen, pooling=pooling, weights=weights_id)
            values.append(t.assign(dataset=name))
            bar.update(1)
        if getattr(net, "num_classes", 1):  # a model with a head: LEEP and NCE of its logits
            heads.append({"dataset": name, **head_scores(net, ds, chosen, pooling)})
    bar.close()
    order = {n: i for i, n in enumerate(models.layer_names(net))}
    values = pd.concat(values, ignore_index=True)
    values["role"] = np.where(values.dataset == id_data, "ID", "other")
    values["layer_index"] = values.layer.map(order)
    summary = summarize(values)
    sets_table = pd.DataFrame([{"dataset": n, "role": "ID" if n == id_data else "other",
                                "images": len(d), "classes": len(d.classes)}
                               for n, d in sets.items()])
    cka = cka_map(net, sets[id_data], chosen, pooling, weights_id)
    return Atlas(model={**info, "weights_sha": weights_id}, sets=sets_table, values=values,
                 summary=summary, head=pd.DataFrame(heads),
                 ood=ood_table(values, id_data), cka=cka,
                 recommendations=recommend(summary))


# --------------------------------------------------------------------------------------------
# Analysis: intervals, % retained, recommendations
# --------------------------------------------------------------------------------------------

def summarize(values: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per (dataset, layer, measure): mean, low, high (t interval over seeds), n,
    family, higher_is_better and depth (0 = first layer measured, 1 = last)."""
    rows = []
    keys = ["dataset", "role", "layer", "layer_index", "measure"]
    for key, g in values.groupby(keys, sort=False):
        mean, low, high = mean_interval(g.value, confidence)
        rows.append({**dict(zip(keys, key, strict=True)), "mean": mean, "low": low,
                     "high": high, "n": int(g.value.notna().sum())})
    out = pd.DataFrame(rows)
    ranks = out.groupby("dataset").layer_index.rank(method="dense") - 1
    out["depth"] = ranks / (out.groupby("dataset").layer_index.transform("nunique") - 1).clip(
        lower=1)
    out["family"] = out.measure.map(lambda m: MEASURES.get(m, ("other", None))[0])
    out["higher_is_better"] = out.measure.map(lambda m: MEASURES.get(m, ("", None))[1])
    return out.sort_values(["dataset", "measure", "layer_index"], kind="stable",
                           ignore_index=True)


def ood_table(values: pd.DataFrame, id_name: str, confidence: float = 0.95) -> pd.DataFrame:
    """For each other data set, the tunnel measures of its probe curve against the ID one:
    % retained of the seed-mean curves with the t interval over seeds (clipped to 0-100, the
    range of % retained), pivot layer, strength."""
    probe = values[values.measure == "probe"].sort_values("layer_index", kind="stable")
    if probe.empty:
        return pd.DataFrame(columns=["dataset", "retained", "low", "high", "pivot_layer",
                                     "strength", "best_ood", "last_ood"])
    mean = probe.groupby(["dataset", "layer_index", "layer"], as_index=False).value.mean()
    id_curve = mean[mean.dataset == id_name].value.to_numpy()
    rows = []
    for name in [d for d in dict.fromkeys(probe.dataset) if d != id_name]:
        curve = mean[mean.dataset == name]
        r = ood_retained(id_curve, curve.value.to_numpy())
        per_seed = [ood_retained(id_curve, g.value.to_numpy())["retained"]
                    for _, g in probe[probe.dataset == name].groupby("seed")]
        _, low, high = np.clip(mean_interval(per_seed, confidence), 0.0, 100.0)
        rows.append({"dataset": name, "retained": r["retained"], "low": low, "high": high,
                     "pivot_layer": curve.layer.iloc[r["pivot"]], "strength": r["strength"],
                     "best_ood": float(curve.value.max()),
                     "last_ood": float(curve.value.iloc[-1])})
    return pd.DataFrame(rows)


def recommend(summary: pd.DataFrame, purposes: dict[str, str] = PURPOSES) -> pd.DataFrame:
    """The layer to take per (data set, purpose): the best layer of the purpose's measure;
    ``clear`` when its interval lies beyond every other layer's, else ``tied`` lists the layers
    whose interval overlaps its own."""
    rows = []
    for name in dict.fromkeys(summary.dataset):
        for purpose, m in purposes.items():
            s = summary[(summary.dataset == name) & (summary.measure == m)]
            if s.empty:
                continue
            s = s.sort_values("layer_index", kind="stable")
            pick = clear_best(s["mean"], s["low"], s["high"],
                              higher_is_better=MEASURES[m][1] is not False)
            best = s.iloc[pick["best"]]
            tied = [s.layer.iloc[i] for i in pick["tied"]]
            rows.append({"dataset": name, "purpose": purpose, "measure": m,
                         "layer": best.layer, "depth": best.depth, "mean": best["mean"],
                         "low": best["low"], "high": best["high"], "clear": pick["clear"],
                         "tied": ", ".join(tied), "last_layer": best.layer == s.layer.iloc[-1],
                         "n": int(best.n)})
    return pd.DataFrame(rows)


def answer_markdown(recommendations: pd.DataFrame) -> str:
    """The page's answer: one line per (data set, purpose): layer, value, interval, how sure
    ("clear": its interval lies beyond every other layer's; else the layers within it)."""
    lines = ["| data set | purpose (measure) | take the layer | value [95 % interval] | how sure |",
             "| --- | --- | --- | --- | --- |"]
    for r in recommendations.itertuples():
        sure = "clear" if r.clear else f"tied with {r.tied}"
        last = " (last)" if r.last_layer else ""
        lines.append(f"| {r.dataset} | {r.purpose} ({r.measure}) | **{r.layer}**{last} | "
                     f"{r.mean:.3f} [{r.low:.3f}, {r.high:.3f}] | {sure} |")
    return "\n".join(lines)


def record(result: Atlas) -> dict[str, str]:
    """The numbers the chapter's text quotes, as strings (for ``glue``)."""
    rec = result.recommendations
    out = {"atlas_model": result.model["member"], "atlas_layers": str(result.model["layers"]),
           "atlas_sets": str(len(result.sets)), "atlas_measures": str(result.summary.measure.nunique()),
           "atlas_seeds": str(int(result.values.seed.nunique())),
           "atlas_clear": str(int(rec.clear.sum())), "atlas_choices": str(len(rec)),
           "atlas_inner": str(int((~rec.last_layer).sum()))}
    for r in result.ood.itertuples():
        out[f"atlas_retained_{_slug(r.dataset)}"] = f"{r.retained:.1f}"
    return out


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in Path(name).name)


def normalised(summary: pd.DataFrame) -> pd.DataFrame:
    """``summary`` with ``score``: each (data set, measure) min-max scaled over layers to
    [0, 1], 1 = best where the measure has a direction."""
    out = summary.copy()
    g = out.groupby(["dataset", "measure"])["mean"]
    span = (g.transform("max") - g.transform("min")).replace(0, np.nan)
    out["score"] = ((out["mean"] - g.transform("min")) / span).fillna(0.5)
    flip = out.higher_is_better.eq(False)
    out.loc[flip, "score"] = 1 - out.loc[flip, "score"]
    return out


# --------------------------------------------------------------------------------------------
# Figures and the table download
# --------------------------------------------------------------------------------------------

def plot_measures(summary: pd.DataFrame, recommendations: pd.DataFrame):
    """Every measure against depth, scaled per measure (1 = best): a column per family (its
    legend below it), a row per data set; the recommended layers marked (C clustering, P
    probing, T transfer)."""
    import matplotlib.pyplot as plt

    from .. import plots

    table = normalised(summary)
    sets = list(dict.fromkeys(table.dataset))
    families = [f for f in ("separability", "transfer", "geometry") if f in set(table.family)]
    fig, axes = plt.subplots(len(sets), len(families), sharex=True, sharey=True, squeeze=False,
                             figsize=plots.fit_width(2.4 * len(families), 2.0 * len(sets)))
    for j, family in enumerate(families):
        part = table[table.family == family]
        colours = plots.palette(list(dict.fromkeys(part.measure)))
        for i, name in enumerate(sets):
            ax = axes[i][j]
            for m, c in part[part.dataset == name].groupby("measure", sort=False):
                ax.plot(c.depth, c.score, marker="o", ms=3, lw=1.2, color=colours[m], label=m)
            marks = recommendations[recommendations.dataset == name]
            for depth, letters in marks.groupby("depth").purpose:  # one label per layer
                ax.axvline(depth, color="0.6", lw=0.8, ls=":")
                ax.text(depth, 1.04, "".join(sorted(p[0].upper() for p in letters)),
                        ha="center", fontsize=8)
            ax.set_ylim(-0.05, 1.12)
            if i == 0:
                ax.set_title(family, pad=12)
            if j == 0:
                ax.set_ylabel(f"{Path(name).name}\n(scaled, 1 = best)")
            if i == len(sets) - 1:
                ax.set_xlabel("depth (0 = first,\n1 = last layer)")
    fig.tight_layout()
    for ax in axes[-1]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45), frameon=False)
    return fig


def plot_cka(cka: pd.DataFrame):
    """The layer-by-layer linear CKA map on the ID data."""
    import matplotlib.pyplot as plt

    from .. import plots

    names = list(dict.fromkeys(cka.layer_a))
    grid = cka.pivot(index="layer_a", columns="layer_b", values="cka").loc[names, names]
    size = 1.2 + 0.42 * len(names)
    fig, ax = plt.subplots(figsize=plots.fit_width(size + 1.2, size))
    im = ax.imshow(grid.to_numpy(), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    fig.colorbar(im, ax=ax, label="linear CKA", shrink=0.8)
    fig.tight_layout()
    return fig


def csv_link(table: pd.DataFrame, filename: str = "atlas.csv") -> str:
    """An HTML link that downloads ``table`` as CSV (a data URI: works offline, in the book
    and in JupyterLab)."""
    payload = base64.b64encode(table.to_csv(index=False).encode()).decode()
    return (f'<a download="{html.escape(filename)}" href="data:text/csv;base64,{payload}">'
            f"Download the whole table as CSV ({len(table)} rows)</a>")
