"""Chapter 3 (``notebooks/tunnel.ipynb``): the tunnel effect and out-of-distribution generalization.

Masarczyk et al. (2023) found that the last layers of a deep network ("the tunnel") compress
its representation and lose what a linear probe needs for out-of-distribution (OOD) tasks;
Harun et al. (2024) asked which variables of training make the tunnel weaker or stronger.
Protocol (methods page, section 3: book/methods.md): backbones that differ in ONE variable at a
time (resolution, augmentation, number of in-distribution classes, depth, architecture); at
every layer a linear probe (softmax regression, AdamW, label smoothing 0.1) on the ID data and
on each OOD set; the % of OOD accuracy retained at the penultimate layer, Pearson rho and
ID/OOD alignment.

Plain data in, DataFrames out, explicit seeds. Every expensive step is cached: the backbones
(``helpers.zoo``), the features (``helpers.features.extract``), and every probe / geometry table
per (weights, data, pooling, options) under ``cache_dir()/tunnel``, so a rerun that changes only
the analysis (which variables, which OOD sets are shown) reuses everything.
"""

from __future__ import annotations

import contextlib
import math
import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.transforms import ScaledTranslation

from .. import cache, data, features, models, plots, zoo
from ..data import ImageSet
from ..device import get_device, one_thread
from ..jobs import run as jobs_run
from ..metrics import id_ood_alignment, id_ood_pearson, layerwise, linear_probe, ood_retained
from ..metrics.intervals import paired_effect, percentile_interval, welch_effect
from ..metrics.ood import strength
from ..names import did_you_mean

#: The variables of the study, in the chapter's order.
VARIABLES = ("resolution", "augmentation", "classes", "depth", "architecture")
VARIABLE_LABELS = {"resolution": "image resolution", "augmentation": "augmentation",
                   "classes": "number of ID classes", "depth": "depth",
                   "architecture": "architecture (CNN vs ViT)"}
#: Variations of glyph characters used as OOD sets (labels stay the characters).
VARIATIONS = ("rotate90", "rotate180", "invert", "noise")
#: Embedded OOD sets besides the variations and any torchvision class name.
EMBEDDED_SETS = ("glyph_styles", "mnist5k", "digits8x8")
GEOMETRY = ("numerical_rank", "nc1")

#: The papers' claims beside which each variable is judged (methods page, section 3:
#: book/methods.md).
#: ``direction``: +1 when the later setting of a variable (the higher resolution, with
#: augmentation, more classes, deeper) should RETAIN MORE OOD accuracy, -1 when less, 0 when
#: the record we have states no direction. ``low``/``high``: the paper's % retained, where it
#: gives one.
PAPER = {
    "resolution": {"low": 68.6, "high": 78.4, "direction": +1, "short": "32 → 224 px",
                   "setting": "ImageNet-100, 32 px vs 224 px (Harun et al.)",
                   "claim": "higher resolution → less compression, more OOD accuracy retained"},
    "augmentation": {"low": 64.3, "high": 78.4, "direction": +1, "short": "none → RRC + flip",
                     "setting": "no augmentation vs random-resized-crop + flip (Harun et al.)",
                     "claim": "augmentation → weaker tunnel"},
    "classes": {"low": None, "high": None, "direction": +1, "short": "fewer → more classes",
                "setting": "fewer vs more ID classes at a fixed image count (Harun et al.)",
                "claim": "more ID classes → less compression → better transfer"},
    "depth": {"low": None, "high": None, "direction": -1, "short": "shallower → deeper",
              "setting": "shallower vs deeper networks (Masarczyk et al.)",
              "claim": "deeper → longer tunnel, less OOD accuracy retained"},
    "architecture": {"low": None, "high": None, "direction": 0, "short": "CNN vs ViT",
                     "setting": "CNN vs ViT (Harun et al.)",
                     "claim": "no number or direction in the record we have: not judged"},
}


# --------------------------------------------------------------------------------------------
# The variants: which backbones differ in which variable
# --------------------------------------------------------------------------------------------

def member_id(model: str, resolution: int | None = None) -> str:
    """A unique name for a backbone: the model name, plus ``@<px>`` when trained (zoo) or
    probed (hub) at a resolution other than its own."""
    if resolution is None or (is_zoo(model) and resolution == zoo.spec(model)["resolution"]):
        return model
    return f"{model}@{resolution}"


def is_zoo(model: str) -> bool:
    """Whether ``model`` is a member of the embedded zoo (else a timm name with hub weights)."""
    return model in zoo.names()


def variants(variables, resolution_model: str, resolutions, augmentation, classes, depth,
             architecture, zoo_resolution: int | None = None) -> pd.DataFrame:
    """One row per (variable, setting): ``variable``, ``order`` (0 = the first setting),
    ``member`` (unique backbone id), ``model``, ``resolution`` (None: the model's own).

    Each variable lists its settings from "low" to "high" (fewer -> more pixels, classes,
    layers; without -> with augmentation). Zoo members are trained at ``zoo_resolution``
    (None: the zoo's 32 px) except in the resolution variable, which sets its own.
    """
    unknown = [v for v in variables if v not in VARIABLES]
    if unknown:
        raise ValueError(f"variables: unknown {unknown}; allowed: {list(VARIABLES)}")
    lists = {"augmentation": augmentation, "classes": classes, "depth": depth,
             "architecture": architecture}
    rows = []
    for variable in variables:
        if variable == "resolution":
            settings = [(resolution_model, int(r)) for r in resolutions]
        else:
            settings = [(m, zoo_resolution if is_zoo(m) else None) for m in lists[variable]]
        if len(settings) < 2:
            raise ValueError(f"{variable}: needs at least 2 settings, got {len(settings)}")
        for order, (model, res) in enumerate(settings):
            rows.append({"variable": variable, "order": order, "member": member_id(model, res),
                         "model": model, "resolution": res})
    return pd.DataFrame(rows)


def with_backbone_seeds(plan: pd.DataFrame, seeds) -> pd.DataFrame:
    """``plan`` (:func:`variants`) with one row per backbone seed (column ``backbone_seed``): a
    zoo backbone is pre-trained again with each seed of ``seeds`` (other source renders, other
    initial weights; member ``<member>/s<seed>``), a hub backbone keeps its one set of weights
    (seed 0). Seed 0 is the backbone that the figures show, so ``seeds`` must hold it."""
    seeds = list(seeds)
    if (not seeds or 0 not in seeds
            or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0
                   for s in seeds)):
        raise ValueError(f"backbone_seeds must be a list of ints >= 0 that holds 0 (the backbones "
                         f"the figures show), got {seeds!r}")
    rows = [plan.assign(backbone_seed=0)]
    for seed in dict.fromkeys(int(s) for s in seeds if s != 0):
        zoo_rows = plan[plan.model.map(is_zoo)]
        rows.append(zoo_rows.assign(member=zoo_rows.member + f"/s{seed}", backbone_seed=seed))
    return pd.concat(rows, ignore_index=True)


def load_member(model: str, resolution: int | None = None, scale: str = "default",
                progress: bool = False, seed: int = 0):
    """(network, info) for a backbone. Zoo members are pre-trained on glyph characters at
    ``resolution`` with ``seed`` (cached); any other name is a timm model with hub weights,
    probed with its input resized to ``resolution`` (a stand-in: the hub has no checkpoints
    that differ only in training resolution)."""
    if is_zoo(model):
        net, report = zoo.pretrain(model, scale, progress=progress,
                                   **_zoo_overrides(resolution, seed))
        recipe = report["recipe"]
        info = {"source_classes": list(recipe["chars"]), "source": "glyph characters",
                "augment": recipe["augment"], "train_resolution": recipe["resolution"],
                "source_accuracy": report["source_accuracy"]}
    else:
        if seed:
            raise ValueError(f"{model}: a hub backbone has one set of weights (seed 0), got "
                             f"seed={seed!r}")
        net, _ = zoo.load(model)
        if resolution is not None:
            net.pretrained_cfg = {**net.pretrained_cfg, "input_size": (3, resolution, resolution)}
        info = {"source_classes": None, "source": "ImageNet (hub weights)", "augment": None,
                "train_resolution": None, "source_accuracy": None}
    info.update({"member": member_id(model, resolution), "model": model,
                 "layers": len(models.layer_names(net)), "is_vit": models.is_token_model(net),
                 "params_M": sum(p.numel() for p in net.parameters()) / 1e6})
    return net.eval(), info


def _zoo_overrides(resolution: int | None, seed: int) -> dict:
    """The zoo recipe changes of a tunnel backbone: its training resolution and seed."""
    return ({} if resolution is None else {"resolution": int(resolution)}) | (
        {"seed": int(seed)} if seed else {})


def pooling_for(net, cnn_pooling: str = "pool2x2") -> tuple[str, bool]:
    """(pooling, final norm) of the tunnel protocol: CNN stage -> ``cnn_pooling`` (the paper:
    2x2 average pool, flatten); ViT block -> mean of the patch tokens after the final norm."""
    return ("mean", True) if models.is_token_model(net) else (cnn_pooling, False)


# --------------------------------------------------------------------------------------------
# Data: the ID set of each backbone and the OOD sets shared by all
# --------------------------------------------------------------------------------------------

def id_set(info: dict, per_class: int = 36, resolution: int = 32, seed: int = 0,
           hub_id_data: str = "Imagenette", root=None, download: bool = False) -> ImageSet:
    """The in-distribution probe set of a backbone, ``per_class`` images per class: fresh renders
    (another jitter seed) of its own source characters in every font, labelled by character;
    for a hub model, ``hub_id_data``."""
    if info["source_classes"] is not None:
        chars = "".join(info["source_classes"])
        return cache.memo(_glyph_classes, per_class, seed, folder="tunnel",
                          depends_on=data.font_inventory(), chars=chars, resolution=resolution,
                          seed_offset=10_000)
    return load_set(hub_id_data, resolution=resolution, per_class=per_class, seed=seed,
                    root=root, download=download)


def load_set(name: str, resolution: int = 32, per_class: int = 36, seed: int = 0,
             style_chars: str = data.CHARACTERS, root=None, download: bool = False) -> ImageSet:
    """An OOD set by name (at most ``per_class`` images per class, drawn with ``seed``):

    - ``glyph_styles``: glyphs of ``style_chars`` labelled by FONT (22 classes), the task the
      source ignores;
      no stroke-width jitter (it would change a font's weight, the very thing asked);
    - ``mnist5k`` / ``digits8x8``: handwritten digits;
    - ``rotate90`` / ``rotate180`` / ``invert`` / ``noise``: glyph characters so varied;
    - any torchvision data set class (its test or validation split; the full profile).

    Built sets are cached (:func:`helpers.cache.memo`).
    """
    check_sets([name])
    return cache.memo(_build_set, name, resolution, per_class, seed,
                      style_chars if name == "glyph_styles" else None, root, download,
                      folder="tunnel", depends_on=data.font_inventory())


def _glyph_classes(per_class: int, seed: int, label: str = "char", seed_offset: int = 0,
                   **kwargs) -> ImageSet:
    """Glyphs with enough (character, font) renders for ``per_class`` images per class, then
    exactly ``per_class`` of them per class (fewer only if a class has fewer)."""
    chars = kwargs.get("chars", data.CHARACTERS)
    n_fonts = len(data.find_fonts(chars=chars))
    per_label = n_fonts if label == "char" else len(chars)
    out = data.glyphs(per_pair=max(1, math.ceil(per_class / per_label)), label=label,
                      seed=seed_offset + seed, **kwargs)
    return _at_most(out, per_class, seed)


def _at_most(out: ImageSet, per_class: int, seed: int) -> ImageSet:
    if out.counts().max() <= per_class:
        return out
    return data.per_class(out, min(per_class, int(out.counts().min())), seed=seed)


def check_sets(names) -> None:
    """Fail early, naming the set, when an OOD set name is unknown."""
    known = set(EMBEDDED_SETS) | set(VARIATIONS) | set(data.torchvision_names())
    for name in names:
        if name not in known:
            raise ValueError(f"ood_sets: unknown set {name!r}{did_you_mean(name, sorted(known))}; allowed: "
                             f"{list(EMBEDDED_SETS) + list(VARIATIONS)} or a torchvision class")


def _build_set(name, resolution, per_class, seed, style_chars, root, download):
    if name == "glyph_styles":
        return _glyph_classes(per_class, seed, label="font", seed_offset=20_000, chars=style_chars,
                              resolution=resolution, jitter={"stroke": 0})
    elif name in ("mnist5k", "digits8x8"):
        out = data.load(name, resolution=resolution)
    elif name in VARIATIONS:
        glyphs = _glyph_classes(per_class, seed, seed_offset=30_000, resolution=resolution)
        out = {"rotate90": lambda: data.rotate(glyphs, 90),
               "rotate180": lambda: data.rotate(glyphs, 180),
               "invert": lambda: data.invert(glyphs),
               "noise": lambda: data.add_noise(glyphs, 0.3, seed=seed)}[name]()
    elif name in data.torchvision_names():
        return data.torchvision_set(name, root, train=False, resolution=resolution,
                                    per_class=per_class, seed=seed, download=download)
    else:
        check_sets([name])
    return _at_most(out, per_class, seed)


# --------------------------------------------------------------------------------------------
# Probes and geometry at every layer (cached)
# --------------------------------------------------------------------------------------------

def probe_split(labels: np.ndarray, train_per_class: int, test_per_class: int, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: ``train_per_class`` images of every class for the probe, up to
    ``test_per_class`` of the remaining ones to test it, drawn with ``seed``."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) <= train_per_class:
            raise ValueError(f"class {c} has {len(idx)} images: need more than "
                             f"train_per_class={train_per_class} (some are left to test)")
        train.append(idx[:train_per_class])
        test.append(idx[train_per_class:train_per_class + test_per_class])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _layers(net, dataset: ImageSet, cnn_pooling: str, weights: str | None = None) -> cache.Lazy:
    pooling, norm = pooling_for(net, cnn_pooling)
    return features.lazy(net, dataset, pooling=pooling, norm=norm, weights=weights)


def _probe_table(layers: cache.Lazy, labels: np.ndarray, seeds, train_per_class: int,
                 test_per_class: int, options: dict) -> pd.DataFrame:
    """Probe accuracy at every layer for every seed (one split per seed, shared by layers), on
    the device the features were made on."""
    device = get_device(quiet=True)
    rows = []
    with one_thread() if device.type == "cpu" else contextlib.nullcontext():
        for seed in seeds:
            train, test = probe_split(labels, train_per_class, test_per_class, seed)
            for i, (layer, x) in enumerate(layers.value.items()):
                x = torch.tensor(np.asarray(x), device=device)  # a copy: features are read-only
                acc = linear_probe(x[train], labels[train], x[test], labels[test],
                                   random_state=seed, **options)
                rows.append({"layer": layer, "layer_index": i,
                             "depth": i / max(1, len(layers.value) - 1), "seed": seed,
                             "accuracy": acc})
    return pd.DataFrame(rows)


def probe_curves(net, member: str, sets: dict[str, ImageSet], seeds=(0, 1, 2),
                 train_per_class: int = 10, test_per_class: int = 50, cnn_pooling: str = "pool2x2",
                 epochs: int = 30, lr: float = 3e-3, batch_size: int = 128,
                 weight_decay: float = 1e-4, label_smoothing: float = 0.1) -> pd.DataFrame:
    """Linear-probe accuracy at every layer of ``net`` on every set of ``sets`` (name -> set;
    the name ``"ID"`` marks the in-distribution set) and every probe seed (the seed draws the
    probe's train/test split and shuffles its batches).

    Columns: member, dataset, layer, layer_index, depth (0 = first layer, 1 = last), seed,
    accuracy, chance (1 / classes).
    """
    options = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "weight_decay": weight_decay,
               "label_smoothing": label_smoothing}
    weights = cache.weights_hash(net)
    tables = []
    for name, dataset in sets.items():
        table = cache.memo(_probe_table, _layers(net, dataset, cnn_pooling, weights),
                           dataset.labels.numpy(), list(seeds), train_per_class, test_per_class,
                           options, folder="tunnel")
        table.insert(0, "dataset", name)
        table["chance"] = 1 / len(dataset.classes)
        tables.append(table)
    out = pd.concat(tables, ignore_index=True)
    out.insert(0, "member", member)
    return out


def geometry(net, member: str, dataset: ImageSet, cnn_pooling: str = "pool2x2",
             max_samples: int = 8000) -> pd.DataFrame:
    """Representation compression at every layer on ``dataset``: numerical rank (singular
    values of the covariance above 1e-3 x the largest, <= ``max_samples`` rows) and NC1.

    Columns: member, layer, layer_index, depth, metric, value.
    """
    table = cache.memo(_geometry_table, _layers(net, dataset, cnn_pooling),
                       dataset.labels.numpy(), max_samples, folder="tunnel")
    table.insert(0, "member", member)
    return table


def _geometry_table(layers: cache.Lazy, labels: np.ndarray, max_samples: int) -> pd.DataFrame:
    with one_thread():
        table = layerwise(layers.value, labels, metrics=GEOMETRY, max_samples=max_samples)
    order = {layer: i for i, layer in enumerate(layers.value)}
    table.insert(1, "layer_index", table["layer"].map(order))
    table.insert(2, "depth", table["layer_index"] / max(1, len(order) - 1))
    return table


def run(plan: pd.DataFrame, ood_names, scale: str = "default", data_resolution: int = 32,
        per_class: int = 36, style_chars: str = data.CHARACTERS, hub_id_data: str = "Imagenette",
        data_root=None, download: bool = False, seed: int = 0, progress: bool = True,
        workers: int = 1, **probe_options):
    """Everything the chapter measures for the backbones of ``plan`` (see :func:`variants`,
    :func:`with_backbone_seeds`): returns (info, curves, geometry) DataFrames. Each backbone is
    one job (:func:`helpers.jobs.run`, ``workers`` one-thread processes): pre-trained if a zoo
    member not cached yet, then probed on its ID set and the OOD sets (built once, here);
    the longest trainings go first so the workers finish together. Geometry: the backbones of
    seed 0 only.

    The geometry of every backbone is measured on the same number of its ID images (the
    smallest ID set), so that a 10-class backbone's numerical rank is not capped lower by a
    smaller ID set than a 36-class one's.
    """
    check_sets(ood_names)
    ood = {name: load_set(name, resolution=data_resolution, per_class=per_class, seed=seed,
                          style_chars=style_chars, root=data_root, download=download)
           for name in ood_names}
    backbones = []
    for row in plan.drop_duplicates("member").itertuples():
        res = None if pd.isna(row.resolution) else int(row.resolution)
        bseed = int(getattr(row, "backbone_seed", 0))
        classes = (list(zoo.spec(row.model, scale, **_zoo_overrides(res, bseed))["chars"])
                   if is_zoo(row.model) else None)
        id_data = id_set({"source_classes": classes}, per_class=per_class,
                         resolution=data_resolution, seed=seed, hub_id_data=hub_id_data,
                         root=data_root, download=download)
        backbones.append((row.model, res, bseed, row.member, id_data))
    n_geometry = min(8000, *(len(b[4]) for b in backbones))
    jobs = [(*b, n_geometry if b[2] == 0 else None) for b in backbones]
    cost = [_training_cost(*job[:3], scale) for job in jobs]
    if any(cost):
        print(f"tunnel: pre-training {sum(map(bool, cost))} zoo backbones ({scale} scale, once)",
              file=sys.stderr, flush=True)
    order = sorted(range(len(jobs)), key=lambda i: -cost[i])
    results = jobs_run(_backbone, [jobs[i] for i in order], workers,
                       label="tunnel backbones" if progress else None, cache="tunnel",
                       scale=scale, ood=ood, probe_options=probe_options)
    infos, curves, geoms = zip(*(r for _, r in sorted(zip(order, results))))
    return (pd.DataFrame(list(infos)), pd.concat(curves, ignore_index=True),
            pd.concat([g for g in geoms if g is not None], ignore_index=True))


def _training_cost(model: str, resolution: int | None, backbone_seed: int, scale: str) -> int:
    """Pixels a backbone still has to be pre-trained on (0: a hub model, or cached)."""
    overrides = _zoo_overrides(resolution, backbone_seed)
    if not is_zoo(model) or zoo.trained(model, scale, **overrides):
        return 0
    recipe = zoo.spec(model, scale, **overrides)
    return recipe["images"] * recipe["epochs"] * recipe["resolution"] ** 2


def _backbone(model: str, resolution: int | None, backbone_seed: int, member: str,
              id_data: ImageSet, geometry_samples: int | None, scale: str, ood: dict,
              probe_options: dict):
    """One backbone's job in :func:`run`: (info, probe curves, geometry or None)."""
    net, info = load_member(model, resolution, scale=scale, seed=backbone_seed)
    info.update(member=member, backbone_seed=backbone_seed, id_classes=len(id_data.classes))
    curves = probe_curves(net, member, {"ID": id_data, **ood}, **probe_options)
    geom = None if geometry_samples is None else geometry(
        net, member, id_data, max_samples=geometry_samples,
        cnn_pooling=probe_options.get("cnn_pooling", "pool2x2"))
    return info, curves, geom


# --------------------------------------------------------------------------------------------
# Summaries: % retained, rho, alignment per backbone, per variable; the verdicts
# --------------------------------------------------------------------------------------------

def mean_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Accuracy averaged over probe seeds (``accuracy``) with its standard deviation (``sd``)."""
    keys = ["member", "dataset", "layer", "layer_index", "depth", "chance"]
    g = curves.groupby(keys, sort=False)["accuracy"]
    return g.agg(accuracy="mean", sd="std").reset_index().sort_values(
        ["member", "dataset", "layer_index"], kind="stable").reset_index(drop=True)


def seed_retained(curves: pd.DataFrame) -> pd.DataFrame:
    """% retained of every probe seed's own OOD curve: columns member, dataset, seed,
    retained (the spread over seeds is the noise the verdicts use)."""
    rows = []
    ood = curves[curves.dataset != "ID"].sort_values("layer_index", kind="stable")
    for (member, name, seed), c in ood.groupby(["member", "dataset", "seed"], sort=False):
        rows.append({"member": member, "dataset": name, "seed": seed,
                     "retained": ood_retained(c.accuracy, c.accuracy)["retained"]})
    return pd.DataFrame(rows)


def summarize(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per (backbone, OOD set): % retained (of the seed-mean curves, and its sd over
    probe seeds), pivot layer and depth, strength bin, Pearson rho and ID/OOD alignment."""
    rows = []
    for member, per_member in curves.groupby("member", sort=False):
        mean = mean_curves(per_member)
        id_curve = mean[mean.dataset == "ID"].sort_values("layer_index")
        for name in [d for d in per_member.dataset.unique() if d != "ID"]:
            ood_curve = mean[mean.dataset == name].sort_values("layer_index")
            a_id, a_ood = id_curve.accuracy.to_numpy(), ood_curve.accuracy.to_numpy()
            r = ood_retained(a_id, a_ood)
            per_seed = seed_retained(per_member[per_member.dataset == name]).retained
            try:
                rho = id_ood_pearson(a_id, a_ood)
            except ValueError:  # a constant curve
                rho = float("nan")
            rows.append({
                "member": member, "dataset": name, "retained": r["retained"],
                "retained_sd": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else np.nan,
                "strength": r["strength"], "pivot": r["pivot"],
                "pivot_layer": ood_curve.layer.iloc[r["pivot"]],
                "pivot_depth": float(ood_curve.depth.iloc[r["pivot"]]),
                "best_ood": float(a_ood.max()), "last_ood": float(a_ood[-1]),
                "last_id": float(a_id[-1]), "pearson": rho,
                "alignment": id_ood_alignment(a_id, a_ood, id_curve.chance.iloc[0],
                                              ood_curve.chance.iloc[0])})
    return pd.DataFrame(rows)


def bootstrap(curves: pd.DataFrame, n_boot: int = 1000, random_state: int = 0) -> pd.DataFrame:
    """Bootstrap draws of every backbone's mean over the OOD sets of % retained, rho and
    alignment: columns draw, member, retained, pearson, alignment.

    Each draw resamples the OOD sets with replacement (the same sets for every backbone, so two
    settings of a variable are compared on paired sets) and, per backbone and set, the probe
    seeds; the curves are the mean over the drawn seeds. Methods page, section "intervals".
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 2:
        raise ValueError(f"n_boot must be an int >= 2, got {n_boot!r}")
    curves = curves.sort_values("layer_index", kind="stable")
    sets = [d for d in dict.fromkeys(curves.dataset) if d != "ID"]
    seeds = sorted(curves.seed.unique())
    members = list(dict.fromkeys(curves.member))
    grids = {key: (g.pivot(index="seed", columns="layer_index", values="accuracy")
                   .reindex(seeds).to_numpy(), float(g.chance.iloc[0]))
             for key, g in curves.groupby(["member", "dataset"], sort=False)}
    memo: dict[tuple, tuple[float, float, float]] = {}

    def measures(member: str, name: str, drawn: tuple) -> tuple[float, float, float]:
        if (member, name, drawn) not in memo:
            (id_grid, id_chance), (ood_grid, ood_chance) = grids[member, "ID"], grids[member, name]
            a_id, a_ood = id_grid[list(drawn)].mean(0), ood_grid[list(drawn)].mean(0)
            try:
                rho = id_ood_pearson(a_id, a_ood)
            except ValueError:  # a constant curve
                rho = float("nan")
            memo[member, name, drawn] = (ood_retained(a_id, a_ood)["retained"], rho,
                                         id_ood_alignment(a_id, a_ood, id_chance, ood_chance))
        return memo[member, name, drawn]

    rng = np.random.default_rng(random_state)
    rows = []
    for b in range(n_boot):
        picks = rng.integers(len(sets), size=len(sets))
        for member in members:
            drawn = np.sort(rng.integers(len(seeds), size=(len(sets), len(seeds))), axis=1)
            values = np.array([measures(member, sets[i], tuple(d)) for i, d in zip(picks, drawn)])
            with np.errstate(invalid="ignore"):
                mean = [float(np.nanmean(v)) if np.isfinite(v).any() else np.nan
                        for v in values.T]
            rows.append((b, member, *mean))
    return pd.DataFrame(rows, columns=["draw", "member", "retained", "pearson", "alignment"])


def variable_table(plan: pd.DataFrame, summary: pd.DataFrame, infos: pd.DataFrame,
                   geom: pd.DataFrame | None = None, draws: pd.DataFrame | None = None,
                   confidence: float = 0.95) -> pd.DataFrame:
    """One row per (variable, setting): mean over OOD sets of % retained, rho and alignment,
    each with its bootstrap interval (``<name>_low``, ``<name>_high``, from ``draws`` =
    :func:`bootstrap`; NaN without it) and % retained's standard error (``retained_se``, the sd
    of the draws), its strength bin, the pivot depth, the ID accuracy at the last layer, and the
    numerical rank of the last layer on ID data (when ``geom`` is given)."""
    per = summary.groupby("member").agg(
        retained=("retained", "mean"), pearson=("pearson", "mean"),
        alignment=("alignment", "mean"), pivot_depth=("pivot_depth", "mean"),
        last_id=("last_id", "first")).reset_index()
    for name in ("retained", "pearson", "alignment"):
        bounds = pd.DataFrame(
            [(m, *(percentile_interval(g[name], confidence) if g[name].notna().any()
                   else (np.nan, np.nan)))
             for m, g in (draws.groupby("member") if draws is not None else [])],
            columns=["member", f"{name}_low", f"{name}_high"])
        per = per.merge(bounds, on="member", how="left")
    se = draws.groupby("member").retained.std(ddof=1) if draws is not None else pd.Series()
    per["retained_se"] = per.member.map(se).astype(float)
    out = plan.merge(per, on="member", how="left").merge(
        infos[["member", "id_classes", "layers", "params_M"]], on="member", how="left")
    if geom is not None:
        last = geom[geom.metric == "numerical_rank"].sort_values("layer_index").groupby(
            "member").value.last().rename("rank_last")
        out = out.merge(last, on="member", how="left")
    out.insert(2, "setting", [setting_label(r, infos) for r in out.itertuples()])
    out["strength"] = out.retained.map(strength)
    return out


def setting_label(row, infos: pd.DataFrame) -> str:
    """How a setting reads in a table: '16 px', 'no augmentation', '10 ID classes', the model."""
    info = infos.set_index("member").loc[row.member]
    if row.variable == "resolution":
        return f"{int(row.resolution)} px"
    if row.variable == "augmentation" and info["augment"] is not None:
        return "augmentation" if info["augment"] else "no augmentation"
    if row.variable == "classes" and info["source_classes"] is not None:
        return f"{len(info['source_classes'])} ID classes"
    return row.model


def seed_table(summary: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """Per (variable, setting, backbone seed) of ``plan`` (:func:`with_backbone_seeds`): the
    backbone's mean over the OOD sets of % retained (:func:`summarize`'s ``summary``)."""
    per = summary.groupby("member").retained.mean().rename("retained").reset_index()
    return plan.merge(per, on="member", how="left")[
        ["variable", "order", "backbone_seed", "member", "retained"]]


def verdicts(table: pd.DataFrame, draws: pd.DataFrame, confidence: float = 0.95,
             seeds: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per variable: the paper's numbers and claim beside ours (first vs last setting), the
    difference in mean % retained with its interval, the smallest difference this run could
    detect, and a verdict.

    With ``seeds`` (:func:`seed_table`) holding two or more backbone seeds of both settings,
    the interval is Welch's over the backbone seeds (independent pre-trainings, the OOD sets
    as given; ``basis`` "backbone seeds"); else the paired bootstrap interval of ``draws``
    (:func:`bootstrap`, ``basis`` "OOD sets"). The bootstrap interval, which also asks whether
    the difference would hold on other OOD sets like these, is always given (``sets_*``).
    Verdict: "agrees" / "opposite" when the interval excludes 0; when it does not, "not
    reproduced" if it excludes the paper's own difference (where the paper gives one), else
    "no difference detected"; "undetermined" when there is no spread (one probe seed, one OOD
    set, one backbone seed). Methods page, section 3 (book/methods.md)."""
    by_member = draws.pivot(index="draw", columns="member", values="retained")
    rows = []
    for variable, t in table.groupby("variable", sort=False):
        t = t.sort_values("order")
        low, high = t.iloc[0], t.iloc[-1]
        paper = PAPER[variable]
        if seeds is None:
            lows, highs = (pd.Series([r.retained], [r.member]) for r in (low, high))
        else:
            s = seeds[seeds.variable == variable]
            lows, highs = (s[s.order == o].set_index("member").retained
                           for o in (low.order, high.order))
        difference = highs.mean() - lows.mean()
        sets = paired_effect(difference, by_member[highs.index].mean(axis=1)
                             - by_member[lows.index].mean(axis=1), confidence)
        by_seeds = len(lows) >= 2 and len(highs) >= 2
        effect = welch_effect(highs, lows, confidence) if by_seeds else sets
        if paper["direction"] == 0:
            verdict = "not judged (no claim)"
        elif not effect["se"] > 0:
            verdict = "undetermined (no replicates: one probe seed and one OOD set)"
        elif effect["direction"] == "no difference detected":
            gap = None if paper["low"] is None else paper["high"] - paper["low"]
            verdict = ("not reproduced (the interval excludes the paper's difference)"
                       if gap is not None and not effect["low"] <= gap <= effect["high"]
                       else "no difference detected")
        else:
            sign = 1 if effect["direction"] == "higher" else -1
            verdict = "agrees" if sign == paper["direction"] else "opposite"
        rows.append({"variable": variable, "paper_setting": paper["setting"],
                     "paper_short": paper["short"],
                     "paper_low": paper["low"], "paper_high": paper["high"],
                     "claim": paper["claim"], "ours_low_setting": low.setting,
                     "ours_high_setting": high.setting, "ours_low": lows.mean(),
                     "ours_high": highs.mean(), "difference": effect["effect"],
                     "difference_low": effect["low"], "difference_high": effect["high"],
                     "detectable": effect["detectable"], "verdict": verdict,
                     "basis": "backbone seeds" if by_seeds else "OOD sets",
                     "backbone_seeds": min(len(lows), len(highs)),
                     "sets_low": sets["low"], "sets_high": sets["high"],
                     "sets_detectable": sets["detectable"], "sets_direction": sets["direction"]})
    return pd.DataFrame(rows)


def paper_table(verdicts_table: pd.DataFrame) -> pd.DataFrame:
    """The chapter's compact "paper beside ours" table: settings and % retained of both, our
    difference with its interval, the smallest detectable difference and the verdict; where
    the paper gives no number, its claim."""
    def paper_numbers(r):
        if r.paper_low is None or pd.isna(r.paper_low):
            return f"no number: {r.claim}"
        return f"{r.paper_low:.1f} → {r.paper_high:.1f}"

    return pd.DataFrame({
        "variable": verdicts_table.variable,
        "paper: settings": verdicts_table.paper_short,
        "paper: % retained": [paper_numbers(r) for r in verdicts_table.itertuples()],
        "ours: settings": (verdicts_table.ours_low_setting + " → "
                           + verdicts_table.ours_high_setting),
        "ours: % retained": [f"{r.ours_low:.1f} → {r.ours_high:.1f}"
                             for r in verdicts_table.itertuples()],
        "ours: difference (95 % interval)": [
            f"{r.difference:+.1f} [{r.difference_low:+.1f}, {r.difference_high:+.1f}]"
            for r in verdicts_table.itertuples()],
        "detectable": [f"{x:.1f}" if x > 0 else "-" for x in verdicts_table.detectable],
        "interval over": verdicts_table.basis,
        "verdict": verdicts_table.verdict,
        "across OOD sets (95 %)": [f"[{r.sets_low:+.1f}, {r.sets_high:+.1f}]"
                                   for r in verdicts_table.itertuples()]})


# --------------------------------------------------------------------------------------------
# The chapter's tables and the numbers its text quotes (``glue_record``)
# --------------------------------------------------------------------------------------------

#: The short name of each variable in the chapter's glue keys (``tunnel_res_low``, ...).
GLUE_KEYS = {"resolution": "res", "augmentation": "aug", "classes": "cls", "depth": "depth",
             "architecture": "arch"}


def backbone_table(infos: pd.DataFrame) -> pd.DataFrame:
    """The backbones as the chapter lists them, with their accuracy on their own source task."""
    return infos[["member", "source", "train_resolution", "augment", "id_classes", "layers",
                  "params_M", "source_accuracy"]]


def per_variable_table(table: pd.DataFrame) -> pd.DataFrame:
    """The columns of :func:`variable_table` that the chapter shows per (variable, setting)."""
    return table[["variable", "setting", "member", "retained", "retained_low", "retained_high",
                  "strength", "pivot_depth", "pearson", "pearson_low", "pearson_high",
                  "alignment", "alignment_low", "alignment_high", "last_id", "rank_last"]]


def base_member(plan: pd.DataFrame) -> str:
    """The backbone that most variables of ``plan`` share (the chapter's reference)."""
    return plan.member.value_counts().index[0]


def retained_pivot(summary: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """% retained (to 0.1) per backbone (rows, in the order of ``plan``) and OOD set (columns)."""
    pivot = summary.pivot_table(index="member", columns="dataset", values="retained").round(1)
    return pivot.loc[list(dict.fromkeys(plan.member))]


def record_run(infos: pd.DataFrame, curves: pd.DataFrame, *, seconds: float, seeds, n_boot: int,
               train_per_class: int, resolutions, zoo_resolution: int) -> dict:
    """The sizes of the run the chapter quotes: fonts, backbones, probes, probe seeds,
    bootstrap draws, probe images per class, the training resolutions (px), its seconds, and
    the OOD sets probed (their count and names)."""
    sets = [d for d in dict.fromkeys(curves.dataset) if d != "ID"]
    return {"tunnel_n_fonts": len(data.find_fonts()), "tunnel_seconds": f"{seconds:.0f}",
            "tunnel_n_sets": len(sets), "tunnel_sets": ", ".join(sets),
            "tunnel_n_backbone_seeds": int(infos.get("backbone_seed", pd.Series([0])).nunique()),
            "tunnel_n_backbones": len(infos), "tunnel_n_probes": len(curves),
            "tunnel_n_seeds": len(seeds), "tunnel_n_boot": n_boot,
            "tunnel_train_per_class": train_per_class,
            "tunnel_px": "-".join(str(r) for r in sorted({*resolutions, zoo_resolution}))}


def record_retained(summary: pd.DataFrame, plan: pd.DataFrame) -> dict:
    """What the text says of the % retained per backbone and OOD set: its range, the reference
    backbone's value on the font styles, and whether the OOD sets differ more than the
    backbones (the spans of the column and row means of :func:`retained_pivot`)."""
    pivot = retained_pivot(summary, plan)
    styles_col = "glyph_styles" if "glyph_styles" in pivot.columns else pivot.columns[0]
    base = base_member(plan)
    spread_sets = pivot.mean(axis=0).max() - pivot.mean(axis=0).min()
    spread_backbones = pivot.mean(axis=1).max() - pivot.mean(axis=1).min()
    return {"tunnel_spread_sets": f"{spread_sets:.0f}",
            "tunnel_spread_backbones": f"{spread_backbones:.0f}",
            "tunnel_spread_word": "more" if spread_sets > spread_backbones else "less",
            "tunnel_base": base, "tunnel_base_styles": f"{pivot.loc[base, styles_col]:.0f}",
            "tunnel_styles_col": styles_col,
            "tunnel_min_retained": f"{summary.retained.min():.0f}",
            "tunnel_min_where": "{} on {}".format(*summary.loc[summary.retained.idxmin(),
                                                               ["member", "dataset"]]),
            "tunnel_max_retained": f"{summary.retained.max():.0f}"}


def record_rank(geom: pd.DataFrame, plan: pd.DataFrame) -> dict:
    """The reference backbone's numerical rank on its ID data: its peak over layers, its value
    at the last layer and the drop between them (%)."""
    base = base_member(plan)
    ranks = geom[geom.metric == "numerical_rank"].sort_values("layer_index")
    peak = ranks.groupby("member").value.max()
    last = ranks.groupby("member").value.last()
    drop = (100 * (1 - last / peak)).round(0)
    return {"tunnel_rank_drop_base": f"{drop[base]:.0f}",
            "tunnel_rank_last_base": f"{last[base]:.0f}",
            "tunnel_rank_peak_base": f"{peak[base]:.0f}"}


def record_verdicts(verdicts_table: pd.DataFrame, table: pd.DataFrame) -> dict:
    """Per variable of :data:`GLUE_KEYS` (``tunnel_<short>_...``): our % retained and settings
    at both ends, the difference with its interval, the verdict (:func:`verdicts`) and the
    last layer's numerical rank, pivot depth and layer count; placeholders for a variable this
    run left out."""
    out = {}
    for variable, short in GLUE_KEYS.items():
        row = verdicts_table[verdicts_table.variable == variable]
        ran = len(row) == 1
        r = row.iloc[0] if ran else None
        key = f"tunnel_{short}"
        out[f"{key}_low"] = f"{r.ours_low:.1f}" if ran else "(not run)"
        out[f"{key}_high"] = f"{r.ours_high:.1f}" if ran else "(not run)"
        out[f"{key}_low_setting"] = r.ours_low_setting if ran else "-"
        out[f"{key}_high_setting"] = r.ours_high_setting if ran else "-"
        out[f"{key}_verdict"] = r.verdict if ran else "not run"
        out[f"{key}_diff"] = (f"{r.difference:+.1f} [{r.difference_low:+.1f}, "
                              f"{r.difference_high:+.1f}], detectable {r.detectable:.1f}"
                              if ran else "-")
        out[f"{key}_basis"] = r.basis if ran else "-"
        out[f"{key}_sets"] = (f"[{r.sets_low:+.1f}, {r.sets_high:+.1f}], detectable "
                              f"{r.sets_detectable:.1f}" if ran else "-")
        if short == "arch":
            out["tunnel_arch_sentence"] = (
                f"{r.ours_low:.1f} % with {r.ours_low_setting} vs {r.ours_high:.1f} % with "
                f"{r.ours_high_setting}" if ran
                else "Not run in this profile (add it with -p variables=[...,architecture])")
        t = table[table.variable == variable].sort_values("order")
        for end, i in (("low", 0), ("high", -1)):
            out[f"{key}_rank_{end}"] = f"{t.rank_last.iloc[i]:.0f}" if ran else "-"
            out[f"{key}_pivot_{end}"] = f"{t.pivot_depth.iloc[i]:.2f}" if ran else "-"
            out[f"{key}_layers_{end}"] = f"{t.layers.iloc[i]:.0f}" if ran else "-"
    return out


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def draw_curves(ax, curves: pd.DataFrame, summary: pd.DataFrame, member: str, ood: str | None,
                color=None, label: str | None = None, x: str = "depth", show_id: bool = True
                ) -> tuple | None:
    """On ``ax``: the ID (dashed) and OOD (solid; band: +-1 sd over probe seeds) probe accuracy
    of one backbone; the tunnel (pivot -> last layer) drawn as a thick band over the OOD curve,
    the pivot as a triangle. ``ood=None``: the ID curve only. Returns the % retained label to
    put at the curve's end, (x, y, text), or None (:func:`label_ends` places them)."""
    mean = mean_curves(curves[curves.member == member])
    label = label or member
    drawn = ([("ID", "--")] if show_id else []) + ([(ood, "-")] if ood is not None else [])
    for name, style in drawn:
        c = mean[mean.dataset == name]
        ax.plot(c[x], c.accuracy, style, marker="o", ms=3, color=color,
                label=f"{label}: {'ID' if name == 'ID' else 'OOD'}")
        if name != "ID":
            ax.fill_between(c[x], c.accuracy - c.sd.fillna(0), c.accuracy + c.sd.fillna(0),
                            color=color, alpha=0.15, lw=0)
    s = summary[(summary.member == member) & (summary.dataset == ood)]
    if ood is not None and len(s) and s.retained.iloc[0] < 100:
        c = mean[mean.dataset == ood]
        pivot = int(s["pivot"].iloc[0])
        ax.plot(c[x].iloc[pivot:], c.accuracy.iloc[pivot:], color=color, lw=7, alpha=0.22,
                solid_capstyle="round")
        ax.plot(c[x].iloc[pivot], c.accuracy.iloc[pivot], marker="v", ms=8, color=color,
                markeredgecolor="black", markeredgewidth=0.5, ls="none")
        return c[x].iloc[-1], c.accuracy.iloc[-1], f"{s.retained.iloc[0]:.0f}%"
    return None


def label_ends(ax, labels: list, colors: list, gap: float = 0.07) -> None:
    """The (x, y, text) ``labels`` right of their curves' ends, moved apart vertically to at
    least ``gap`` of the y range so that labels of curves ending together do not overlap."""
    kept = [(lab, c) for lab, c in zip(labels, colors) if lab is not None]
    if not kept:
        return
    low, high = ax.get_ylim()
    ys = plots.spread([lab[1] for lab, _ in kept], gap * (high - low))
    right = ax.transData + ScaledTranslation(4 / 72, 0, ax.figure.dpi_scale_trans)  # 4 pt
    for ((x, _, text), color), placed in zip(kept, ys):
        ax.text(x, placed, text, fontsize=8, color=color, va="center", transform=right)


def plot_variable(curves: pd.DataFrame, summary: pd.DataFrame, table: pd.DataFrame,
                  variable: str, oods=None, height: float = 2.4):
    """The figure the chapter shows per variable: a first panel with the ID probe curves of
    every setting of ``variable``, then one panel per OOD set with the OOD curves and each
    tunnel marked, two panels a row. Each panel has its own y range (chance = 1 / classes
    differs). A backbone has its colour of every figure (:func:`helpers.plots.palette`)."""
    t = table[table.variable == variable].sort_values("order")
    oods = list(oods or [d for d in curves.dataset.unique() if d != "ID"])
    colors = list(plots.palette(t.member.tolist()).values())
    panels = ["ID"] + oods
    ncols = min(len(panels), 2)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=plots.fit_width(height * 1.35 * ncols, height * nrows))
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels):
        ends = [draw_curves(ax, curves, summary, row.member, None if panel == "ID" else panel,
                            color=color, label=row.setting, show_id=panel == "ID")
                for color, row in zip(colors, t.itertuples())]
        label_ends(ax, ends, colors)
        if panel != "ID":  # chance, where it does not squash the curves
            chance = curves[curves.dataset == panel].chance.iloc[0]
            low, high = ax.get_ylim()
            if chance > low - 0.25 * (high - low):
                ax.axhline(chance, color="grey", ls=":", lw=1)
        ax.set_title("ID (each backbone's source task)" if panel == "ID" else f"OOD: {panel}",
                     fontsize=10)
        ax.set_xlabel("relative depth")
    for row in axes:
        row[0].set_ylabel("probe accuracy")
    handles = [plt.Line2D([], [], color=c, marker="o", ms=3, label=r.setting)
               for c, r in zip(colors, t.itertuples())]
    handles += [plt.Line2D([], [], color="grey", ls="--", label="ID"),
                plt.Line2D([], [], color="grey", label="OOD"),
                plt.Line2D([], [], color="grey", lw=7, alpha=0.3, label="tunnel"),
                plt.Line2D([], [], color="grey", marker="v", ls="none", label="pivot"),
                plt.Line2D([], [], color="grey", ls=":", label="chance")]
    fig.suptitle(VARIABLE_LABELS[variable])
    spare = list(axes.flat[len(panels):])
    fig.tight_layout()
    if spare:  # the legend in the empty panel
        spare[0].legend(handles=handles, loc="center", frameon=False)
    else:
        fig.legend(handles=handles, loc="upper center", ncol=4, bbox_to_anchor=(0.5, 0),
                   frameon=False)
    return fig


def plot_geometry(geom: pd.DataFrame, table: pd.DataFrame, height: float = 2.2):
    """Numerical rank and NC1 of the ID representation at every layer: one row per variable
    (numerical rank left, NC1 right), one line per setting (compression = falling rank / NC1
    in the tunnel)."""
    variables = list(dict.fromkeys(table.variable))
    fig, axes = plt.subplots(len(variables), len(GEOMETRY), squeeze=False,
                             figsize=(plots.PAGE_WIDTH, height * len(variables)))
    for i, variable in enumerate(variables):
        t = table[table.variable == variable].sort_values("order")
        for color, row in zip(plots.palette(t.member.tolist()).values(), t.itertuples()):
            g = geom[geom.member == row.member]
            for j, metric in enumerate(GEOMETRY):
                m = g[g.metric == metric].sort_values("layer_index")
                axes[i, j].plot(m.depth, m.value, marker="o", ms=3, color=color, label=row.setting)
        for ax, label in zip(axes[i], ("numerical rank", "NC1 (log)")):
            ax.set_title(f"{VARIABLE_LABELS[variable]}: {label}", fontsize=10)
        axes[i, 1].set_yscale("log")
        axes[i, 1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    for ax in axes[-1]:
        ax.set_xlabel("relative depth")
    fig.tight_layout()
    return fig


def plot_set(name: str, seed: int = 0, **set_options):
    """Sixteen images of one probe set (:func:`load_set` with ``set_options``), titled with its
    numbers of classes and images."""
    s = load_set(name, seed=seed, **set_options)
    return plots.image_grid(s, n=16, seed=seed,
                            title=f"{name}: {len(s.classes)} classes, {len(s)} images")


def explorer_rows(summary: pd.DataFrame, table: pd.DataFrame, variable: str, ood: str
                  ) -> pd.DataFrame:
    """The explorer's table: % retained, strength, pivot, rho and alignment of every setting of
    ``variable`` on the OOD set ``ood``."""
    rows = summary[(summary.dataset == ood)
                   & summary.member.isin(table[table.variable == variable].member)]
    return rows[["member", "retained", "strength", "pivot_layer", "pearson", "alignment"]]


def explore(curves: pd.DataFrame, summary: pd.DataFrame, table: pd.DataFrame, variable: str,
            ood: str) -> None:
    """Show the ID and OOD probe curves of every setting of one variable on one OOD set
    (:func:`plot_variable`) and their :func:`explorer_rows`."""
    from IPython.display import display

    plot_variable(curves, summary, table, variable, oods=[ood], height=3.2)
    plt.show()
    display(explorer_rows(summary, table, variable, ood).style.format(precision=3)
            .hide(axis="index"))


def explorer(curves: pd.DataFrame, summary: pd.DataFrame, table: pd.DataFrame, oods):
    """An ipywidgets explorer: choose a variable and an OOD set -> :func:`explore`. Needs a
    live kernel to react; the book shows its first state."""
    import ipywidgets as widgets

    def show(variable, ood):
        explore(curves, summary, table, variable, ood)

    return widgets.interactive(show, variable=list(dict.fromkeys(table.variable)),
                               ood=list(oods))
