"""Chapter 1 (``notebooks/separability.ipynb``): which layer generalizes?

Dyballa, Gerritz & Zucker (2024): fine-tune a pre-trained classifier on the *seen* classes of a
domain, then embed images of *unseen* classes at every layer and measure how separable they
are (k-means NMI, kNN purity, 1-NN, linear probe). The generalization index of a model is the
maximum over layers; the argmax is "the layer that generalizes best".

Plain data in, DataFrames out, explicit seeds. Every expensive step is cached: fine-tuning
(``helpers.train.fit`` checkpoints under ``cache_dir()/separability``), the features
(``helpers.features.extract``) and each metric per (weights, data, options), so a rerun that
changes only analysis parameters (a metric, kNN's k) reuses the models and the embeddings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.stats
import seaborn as sns
import torch

from .. import cache, data, features, models, plots, train, zoo
from ..jobs import run as jobs_run
from ..metrics import layerwise
from ..metrics.intervals import detectable_effect, mean_interval, welch_effect

#: CIFAR-100's "flowers" superclass: the paper's unseen classes for CIFAR.
FLOWERS = ("orchid", "poppy", "rose", "sunflower", "tulip")
#: The separability metrics of this chapter (names of ``helpers.metrics.METRICS``).
METRICS = ("nmi", "knn", "1nn", "probe")
METRIC_LABELS = {"nmi": "k-means NMI", "knn": "kNN purity", "1nn": "1-NN accuracy",
                 "probe": "linear probe accuracy"}
CONDITIONS = ("fine-tuned", "pre-trained", "random init")
#: Their colours in every figure: two far apart, and grey for the random weights.
CONDITION_COLOURS = dict(zip(CONDITIONS, (plots.COLOURS[0], plots.COLOURS[1], plots.COLOURS[7])))
BASELINES = {"pretrained": "pre-trained", "random": "random init"}
CHAPTER = "separability"  #: its folder in the cache

#: The paper's numbers (methods page, section 1: book/methods.md): max over layers, mean of 3
#: trials. The column order ViT, Swin, PVT, CvT, PoolFormer, ConvNeXtV2 is inferred from the
#: paper's figures.
PAPER_MODELS = ("ViT-B/16", "Swin-T", "PVT-T", "CvT-21", "PoolFormer-S12", "ConvNeXtV2-T")
PAPER = {
    "calligraphy (15 seen / 5 unseen writers)": {
        "unseen_nmi": (.68, .59, .76, .63, .78, .50),
        "seen_accuracy": (.98, .99, .98, .99, .99, .99)},
    "CIFAR-100 (20 seen / 5 unseen flower classes)": {
        "unseen_nmi": (.26, .04, .21, .15, .22, .15),
        "seen_accuracy": (.97, .95, .92, .95, .93, .95)},
}


# --------------------------------------------------------------------------------------------
# Domains: seen classes (train + held-out test) and unseen classes
# --------------------------------------------------------------------------------------------

@dataclass
class Domain:
    """One domain of the study: fine-tune on ``train`` (seen classes), report accuracy on
    ``test`` (same classes, other images), measure every layer on ``unseen`` (other classes)."""

    name: str
    label: str
    train: data.ImageSet
    test: data.ImageSet
    unseen: data.ImageSet

    def describe(self) -> dict:
        return {"domain": self.label, "seen classes": len(self.train.classes),
                "unseen classes": len(self.unseen.classes), "train images": len(self.train),
                "seen test images": len(self.test), "unseen images": len(self.unseen),
                "unseen class names": ", ".join(self.unseen.classes)}


def _cap(d: data.ImageSet, n: int | None, seed: int) -> data.ImageSet:
    """At most ``n`` images per class (all of them when ``n`` is None or large)."""
    if n is None or n >= int(d.counts().min()):
        return d
    return data.per_class(d, n, seed=seed)


#: Jitter of the style images: a little shift, scale and rotation, no stroke thickening
#: (thicker strokes would turn a regular font into its bold sibling, rotation into oblique).
STYLE_JITTER = {"shift": 0.08, "scale": 0.15, "rotation": 3.0, "stroke": 0}


def style_domain(seen_fonts: int = 16, unseen_fonts: int = 6, per_pair: int = 3,
                 resolution: int = 32, chars: str = data.CHARACTERS, test: float = 0.25,
                 jitter: dict | None = None, seed: int = 0) -> Domain:
    """Glyph styles, the analogue of the paper's calligraphers: images labelled by FONT.

    The fonts are shuffled with ``seed``; the first ``unseen_fonts`` are unseen, the next
    ``seen_fonts`` are seen (split ``1 - test`` / ``test`` for training / seen accuracy).
    Every (character, font) pair is rendered ``per_pair`` times with random ``jitter``
    (default :data:`STYLE_JITTER`).
    """
    jitter = STYLE_JITTER if jitter is None else jitter
    fonts = sorted(data.find_fonts(chars=chars))
    if unseen_fonts < 2 or seen_fonts < 2 or seen_fonts + unseen_fonts > len(fonts):
        raise ValueError(f"seen_fonts ({seen_fonts}) + unseen_fonts ({unseen_fonts}) must be "
                         f">= 2 each and at most the {len(fonts)} fonts available")
    order = np.random.default_rng(seed).permutation(fonts).tolist()
    unseen = sorted(order[:unseen_fonts])
    seen = sorted(order[unseen_fonts:unseen_fonts + seen_fonts])
    seen_set = data.glyphs(chars, fonts=seen, per_pair=per_pair, resolution=resolution,
                           label="font", jitter=jitter, seed=seed)
    unseen_set = data.glyphs(chars, fonts=unseen, per_pair=per_pair, resolution=resolution,
                             label="font", jitter=jitter, seed=seed)
    tr, te = data.train_test(seen_set, test=test, seed=seed)
    return Domain("glyph_styles", "glyph styles (fonts)", tr, te, unseen_set)


def class_split_domain(full: data.ImageSet, name: str, label: str, unseen_classes: int | list,
                       seen_classes: int | None = None, train_per_class: int | None = None,
                       unseen_per_class: int | None = None, test: float = 0.25,
                       full_test: data.ImageSet | None = None, seed: int = 0) -> Domain:
    """Seen vs unseen classes of one labelled set (digits, CIFAR, an ImageFolder).

    ``unseen_classes``: a number drawn with ``seed`` or the class names; ``seen_classes``: how
    many of the others to keep (drawn with ``seed``; None: all). The seen test images come from
    ``full_test`` when given (e.g. CIFAR's test split), else a stratified ``test`` fraction.
    """
    seen_all, unseen = data.split_classes(full, unseen_classes, seed=seed)
    names = list(seen_all.classes)
    if seen_classes is not None:
        if not 2 <= seen_classes <= len(names):
            raise ValueError(f"seen_classes must be in 2..{len(names)}, got {seen_classes}")
        names = sorted(np.random.default_rng(seed + 1).choice(names, seen_classes, replace=False)
                       .tolist(), key=names.index)
    seen = seen_all.keep_classes(names)
    unseen = _cap(unseen, unseen_per_class, seed)
    if full_test is None:
        if train_per_class is not None:
            n_test = max(1, round(train_per_class * test / (1 - test)))
            seen = _cap(seen, train_per_class + n_test, seed)
        tr, te = data.train_test(seen, test=test, seed=seed)
    else:
        tr, te = _cap(seen, train_per_class, seed), full_test.keep_classes(names)
    return Domain(name, label, tr, te, unseen)


EMBEDDED = ("glyph_styles", "glyphs", "mnist5k", "digits8x8")


def make_domain(name: str, **params) -> Domain:
    """A domain by the chapter's ``domains`` parameter (see :func:`build_domain`); the embedded
    ones are cached on disk (rendering glyphs takes seconds, loading them milliseconds)."""
    if name not in EMBEDDED:
        return build_domain(name, **params)
    fonts = data.font_inventory() if name.startswith("glyph") else None
    return cache.memo(build_domain, name, folder=CHAPTER, depends_on=fonts, **params)


def build_domain(name: str, *, seen_fonts: int = 16, unseen_fonts: int = 6, per_pair: int = 3,
                 style_chars: str = data.CHARACTERS, unseen_classes: int = 3,
                 seen_classes: int | None = None,
                 train_per_class: int | None = None, unseen_per_class: int | None = None,
                 resolution: int = 32, data_root=None, download: bool = False,
                 seed: int = 0) -> Domain:
    """A domain by the chapter's ``domains`` parameter.

    ``glyph_styles``: fonts (:func:`style_domain`, the characters ``style_chars``);
    ``glyphs``: characters, unseen characters; ``mnist5k`` / ``digits8x8``: digit classes;
    ``CIFAR100``: 20 seen fine classes (set by ``seen_classes``) against the flowers
    superclass, the paper's protocol; any other torchvision set name or an ImageFolder path
    (e.g. a calligraphy download, one folder per writer): ``unseen_classes`` drawn with
    ``seed``; torchvision sets are read from ``data_root`` (None: ``~/.cache/torchvision``).
    """
    cap = {"train_per_class": train_per_class, "unseen_per_class": unseen_per_class, "seed": seed}
    if name == "glyph_styles":
        return style_domain(seen_fonts, unseen_fonts, per_pair, resolution, style_chars,
                            seed=seed)
    if name == "glyphs":
        full = data.glyphs(per_pair=per_pair, resolution=resolution, seed=seed)
        return class_split_domain(full, name, "glyph characters", unseen_classes, seen_classes,
                                  **cap)
    if name in ("mnist5k", "digits8x8"):
        full = data.load(name, resolution=resolution)
        return class_split_domain(full, name, f"handwritten digits ({name})", unseen_classes,
                                  seen_classes, **cap)
    if name in data.torchvision_names():
        root = Path(data_root) if data_root else data.default_root()
        tr = data.torchvision_set(name, root, train=True, download=download)
        te = data.torchvision_set(name, root, train=False, download=download)
        if name == "CIFAR100":
            return class_split_domain(tr, name, "CIFAR-100 (unseen: flowers)", list(FLOWERS),
                                      seen_classes or 20, full_test=te, **cap)
        return class_split_domain(tr, name, name, unseen_classes, seen_classes, full_test=te, **cap)
    path = Path(name).expanduser()
    if path.is_dir():
        full = data.image_folder(path, resolution)
        return class_split_domain(full, f"folder:{path.name}", path.name, unseen_classes,
                                  seen_classes, **cap)
    raise ValueError(f"domains: unknown domain {name!r}; use glyph_styles, glyphs, mnist5k, "
                     "digits8x8, a torchvision data set name or an ImageFolder directory")


# --------------------------------------------------------------------------------------------
# Models: fine-tuned, pre-trained (before fine-tuning), random init
# --------------------------------------------------------------------------------------------

def pretrained(member: str, num_classes: int, scale: str = "default", seed: int = 0):
    """A zoo member (or a timm name with hub weights) with a fresh ``num_classes`` head."""
    torch.manual_seed(seed)
    model, _ = zoo.load(member, scale, num_classes=num_classes, progress=False)
    return model


def random_init(member: str, num_classes: int, scale: str = "default", seed: int = 0):
    """The same architecture with random weights (the no-learning baseline)."""
    torch.manual_seed(seed)
    if member in zoo.names():
        return zoo.build(zoo.spec(member, scale), num_classes).eval()
    return models.create(member, num_classes).eval()


def source_table(members, scale: str = "default", workers: int = 1) -> pd.DataFrame:
    """Where each model starts from: architecture, parameters, source task and its accuracy
    (zoo members: glyph characters, pre-trained here in ``workers`` processes; other names:
    timm's hub weights)."""
    zoo.pretrain_many(members, scale, workers)
    rows = []
    for m in members:
        if m in zoo.names():
            report = zoo.report(m, scale)
            recipe = report["recipe"]
            rows.append({"model": m, "architecture": recipe["arch"],
                         "params (M)": report["params"] / 1e6,
                         "source task": f"{len(recipe['chars'])} glyph characters, "
                                        f"{report['train_images']} images, "
                                        f"{recipe['epochs']} epochs",
                         "source accuracy": report["source_accuracy"]})
        else:
            rows.append({"model": m, "architecture": m.split(".")[0], "params (M)": np.nan,
                         "source task": "timm hub weights (ImageNet)", "source accuracy": np.nan})
    return pd.DataFrame(rows).set_index("model")


def finetune(member: str, domain: Domain, *, scale: str = "default", epochs: int = 3,
             lr: float = 1e-3, batch_size: int = 64, augment: bool = True, seed: int = 0,
             stop_at: float | None = None, progress: bool = False):
    """(model, info): ``member`` fine-tuned (all layers) on the seen classes of ``domain``,
    for ``epochs``, or (``stop_at``) until its seen accuracy reaches that level.

    info: seen_accuracy (on the held-out seen images), epochs (trained), seconds, cached (True
    when the checkpoint of an identical earlier run was reused), history (per epoch).
    """
    model = pretrained(member, len(domain.train.classes), scale, seed)
    key = cache.make_key(finetune, kind="separability-finetune", member=member,
                         start=cache.weights_hash(model), train=domain.train.fingerprint,
                         test=domain.test.fingerprint, epochs=epochs, lr=lr,
                         batch_size=batch_size, augment=augment, seed=seed, stop_at=stop_at)
    ckpt = cache.cache_dir() / CHAPTER / f"{member.replace('/', '_')}-{key}.ckpt"
    cached = ckpt.exists()
    tic = time.perf_counter()
    history = train.fit(model, domain.train, domain.test, epochs=epochs, lr=lr,
                        batch_size=batch_size, augment=augment, seed=seed, checkpoint=ckpt,
                        stop_at=stop_at, progress=progress)
    info = {"seen_accuracy": 1 - float(history["test_err"].iloc[-1]), "epochs": len(history),
            "seconds": time.perf_counter() - tic, "cached": cached, "history": history}
    return model.eval(), info


# --------------------------------------------------------------------------------------------
# Measuring every layer on unseen data (cached per metric)
# --------------------------------------------------------------------------------------------

def metric_options(metric: str, knn_k: int | None = None, probe_test_fraction: float = 0.5,
                   seed: int = 0) -> dict:
    """The options of one metric in this chapter (k-means restarts, kNN's k, probe split)."""
    if metric == "nmi":
        return {"random_state": seed, "n_init": 10}
    if metric == "knn":
        return {} if knn_k is None else {"k": knn_k}
    if metric == "probe":  # softmax regression, 30 epochs of mini-batches of 32 (~200 steps)
        return {"test_fraction": probe_test_fraction, "random_state": seed, "batch_size": 32}
    if metric == "1nn":
        return {}
    raise ValueError(f"metrics: {metric!r} is not one of {METRICS}")


def measure(model, unseen: data.ImageSet, metrics=METRICS, knn_k: int | None = None,
            probe_test_fraction: float = 0.5, pooling: str = "auto", seed: int = 0) -> pd.DataFrame:
    """Every layer of ``model`` on ``unseen``: columns layer, layer_index, depth, metric, value.

    Embedding (methods page, section 1: book/methods.md): CNN stage -> spatial mean; ViT
    block -> class token. k-means uses k = number of unseen classes; kNN's ``knn_k`` None means
    images per class - 1 (the paper's k = images per class, self excluded). Each metric's
    values are cached on their own (:func:`helpers.cache.memo`), keyed on the features (weights,
    data, pooling) and that metric's options.
    """
    return _measure(features.lazy(model, unseen, pooling=pooling), unseen.labels.numpy(),
                    metrics, knn_k, probe_test_fraction, seed)


def _measure(feats: cache.Lazy, labels: np.ndarray, metrics, knn_k, probe_test_fraction,
             seed) -> pd.DataFrame:
    """:func:`measure` of features made only when a metric is not cached."""
    out = pd.concat([cache.memo(_layer_values, feats, labels, m, metric_options(
        m, knn_k, probe_test_fraction, seed), folder=CHAPTER) for m in metrics],
        ignore_index=True)
    order = {layer: i for i, layer in enumerate(dict.fromkeys(out["layer"]))}
    out["layer_index"] = out["layer"].map(order)
    out["depth"] = out["layer_index"] / max(1, len(order) - 1)
    return out[["layer", "layer_index", "depth", "metric", "value"]]


def _layer_values(feats: cache.Lazy, labels: np.ndarray, metric: str, options: dict
                  ) -> pd.DataFrame:
    return layerwise(feats.value, labels, metrics=[metric], **options)


def _start_identity(member: str, scale: str) -> str:
    """What fixes a member's starting weights, known without loading them: the zoo recipe's
    cache key (deterministic training), or the timm name with its tag (hub weights)."""
    if member in zoo.names():
        return zoo.recipe_key(zoo.spec(member, scale))
    return member


def run_one(member: str, domain: Domain, condition: str, trial: int, *, scale: str = "default",
            epochs: int = 3, lr: float = 1e-3, batch_size: int = 64, augment: bool = True,
            metrics=METRICS, knn_k: int | None = None, probe_test_fraction: float = 0.5,
            seed: int = 0, stop_at: float | None = None, cached_only: bool = False):
    """(layers table, info) of one model in one ``condition`` on one domain.

    ``condition``: "fine-tuned" (seed ``trial``), "pre-trained" or "random init" (seed
    ``trial``). The model's job (:func:`model_job`) and each metric are cached on their own
    (:func:`helpers.cache.memo`): a rerun with new analysis settings (k of kNN, the metric
    list) measures the cached features and builds no model. ``cached_only``: None instead of
    training or extracting.
    """
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}, got {condition!r}")
    hyper = ({"epochs": epochs, "lr": lr, "batch_size": batch_size, "augment": augment,
              "stop_at": stop_at} if condition == "fine-tuned" else {})
    job = (member, domain, condition, trial, scale, hyper)
    start = {"start": _start_identity(member, scale)}
    info = cache.memo(model_job, *job, folder=CHAPTER, depends_on=start, cached_only=True)
    cached = info is not None
    if not cached:
        if cached_only:
            return None
        info = cache.memo(model_job, *job, folder=CHAPTER, depends_on=start)
    feats = cache.Lazy(info["features"], lambda: _job_features(info["features"], *job))
    table = _measure(feats, domain.unseen.labels.numpy(), metrics, knn_k, probe_test_fraction,
                     seed)
    return table, {**info, "cached": cached}


def model_job(member: str, domain: Domain, condition: str, trial: int, scale: str,
              hyper: dict) -> dict:
    """One model of the study made (``hyper``: :func:`finetune`'s settings) and its features of
    the unseen set extracted: seen_accuracy, epochs, seconds, features (their cache key)."""
    model, info = _job_model(member, domain, condition, trial, scale, hyper)
    features.extract(model, domain.unseen, progress=False)
    return {**info, "features": features.cache_key(model, domain.unseen)}


def _job_model(member, domain, condition, trial, scale, hyper):
    if condition == "fine-tuned":
        model, info = finetune(member, domain, scale=scale, seed=trial, **hyper)
        return model, {k: info[k] for k in ("seen_accuracy", "epochs", "seconds")}
    make = pretrained if condition == "pre-trained" else random_init
    model = make(member, len(domain.train.classes), scale, seed=trial)
    return model, {"seen_accuracy": float("nan"), "epochs": 0, "seconds": 0.0}


def _job_features(key: str, *job) -> dict:
    """The unseen set's layers of a job's model: from the features cache, else from the model
    made again (its fine-tuning checkpoint reused)."""
    found = features.load(key)
    if found is None:
        found = features.extract(_job_model(*job)[0], job[1].unseen, progress=False)
    return {k: v for k, v in found.items() if k != "logits"}


def _job(member, domain, condition, trial, stop_at, cached_only: bool = False, **kw):
    """:func:`run_one` with the domain's own ``stop_at`` (a module function, for workers)."""
    return run_one(member, domain, condition, trial, stop_at=stop_at, cached_only=cached_only,
                   **kw)


def domain_levels(stop_at, domains) -> dict:
    """``stop_at`` (None, one level, or one per domain) as {domain label: level}."""
    if stop_at is None or isinstance(stop_at, (int, float)):
        return {d.label: stop_at for d in domains}
    levels = list(stop_at)
    if len(levels) == 1:
        levels *= len(domains)
    if len(levels) != len(domains):
        raise ValueError(f"accuracy_levels (stop_at): give one level, or one per domain "
                         f"({len(domains)} domains: {[d.label for d in domains]}); got {levels}")
    return {d.label: level for d, level in zip(domains, levels)}


def run(members, domains, *, scale: str = "default", trials=(0,),
        baselines=("pretrained", "random"),
        epochs: int = 3, lr: float = 1e-3, batch_size: int = 64, augment: bool = True,
        metrics=METRICS, knn_k: int | None = None, probe_test_fraction: float = 0.5,
        seed: int = 0, stop_at=None, workers: int = 1, progress: bool = True):
    """The whole study: (layers, runs) DataFrames (:func:`run_one` for every job, in
    ``workers`` jobs in flight, the zoo first: :func:`helpers.jobs.run`).

    layers: domain, model, condition, trial, layer, layer_index, depth, metric, value.
    runs: domain, model, condition, trial, seen_accuracy, epochs, finetune_seconds, cached.
    ``stop_at``: fine-tune each model until its seen accuracy reaches it (``epochs`` at most):
    one level, or one per domain.
    One fine-tuning per (domain, member, trial seed); the baselines once per (domain, member),
    the random init with the first trial's seed.
    """
    for b in baselines:
        if b not in BASELINES:
            raise ValueError(f"baselines: {b!r} is not one of {list(BASELINES)}")
    levels = domain_levels(stop_at, domains)
    jobs = [(d, m, "fine-tuned", t) for d in domains for m in members for t in trials]
    jobs += [(d, m, BASELINES[b], trials[0]) for d in domains for m in members for b in baselines]
    kw = {"scale": scale, "epochs": epochs, "lr": lr, "batch_size": batch_size,
          "augment": augment, "metrics": metrics, "knn_k": knn_k,
          "probe_test_fraction": probe_test_fraction, "seed": seed}
    zoo.pretrain_many(members, scale, workers)
    results = jobs_run(_job, [(m, d, cond, t, levels[d.label]) for d, m, cond, t in jobs], workers,
                           label="separability" if progress else None, cached_first=True, **kw)
    layers, runs = [], []
    for (d, m, cond, t), (table, info) in zip(jobs, results, strict=True):
        tag = {"domain": d.label, "model": m, "condition": cond, "trial": t}
        layers.append(table.assign(**tag))
        runs.append({**tag, "seen_accuracy": info["seen_accuracy"],
                     "epochs": info["epochs"],
                     "finetune_seconds": info["seconds"], "cached": info["cached"]})
    cols = ["domain", "model", "condition", "trial", "layer", "layer_index", "depth", "metric",
            "value"]
    return pd.concat(layers, ignore_index=True)[cols], pd.DataFrame(runs)


# --------------------------------------------------------------------------------------------
# Analysis: best layers, accuracy vs generalization, the paper's numbers, the verdict
# --------------------------------------------------------------------------------------------

def mean_curves(layers: pd.DataFrame) -> pd.DataFrame:
    """Per-layer values averaged over trials (the paper reports means of 3 trials)."""
    keys = ["domain", "model", "condition", "metric", "layer", "layer_index", "depth"]
    out = layers.groupby(keys, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"mean": "value"})


def best_layers(layers: pd.DataFrame, condition: str = "fine-tuned") -> pd.DataFrame:
    """The best layer per (domain, model, metric) on the trial-mean curve, against the last.

    Columns: best_layer, best_index, n_layers, best_depth, best_value, last_value, gain
    (best - last), is_last (is the deepest layer the best?). A tie (within ``TIE``) goes to
    the deeper layer: an inner layer counts as better only when it is strictly better.
    """
    curves = mean_curves(layers[layers["condition"] == condition]).reset_index(drop=True)
    rows = []
    for (dom, mod, met), g in curves.groupby(["domain", "model", "metric"], sort=False):
        g = g.sort_values("layer_index")
        best = g.loc[_deepest_argmax(g["value"])]
        last = g.iloc[-1]
        rows.append({"domain": dom, "model": mod, "metric": met, "best_layer": best["layer"],
                     "best_index": int(best["layer_index"]), "n_layers": len(g),
                     "best_depth": float(best["depth"]), "best_value": float(best["value"]),
                     "last_value": float(last["value"]),
                     "gain": float(best["value"] - last["value"]),
                     "is_last": bool(best["layer_index"] == last["layer_index"])})
    return pd.DataFrame(rows)


#: Values closer than this count as equal when looking for the best layer.
TIE = 1e-9


def _deepest_argmax(values: pd.Series):
    """Index label of the maximum; among (near-)ties, the last one (the deepest layer)."""
    top = values.max()
    return values.index[(values >= top - TIE).to_numpy()][-1]


def best_layer_table(best: pd.DataFrame) -> pd.DataFrame:
    """:func:`best_layers` as one row per (domain, model), one column per metric; each cell
    reads ``layer: best value`` and either ``= last`` or ``> last <value at the last layer>``."""
    def cell(r):
        tail = "= last" if r["is_last"] else f"> last {r['last_value']:.3f}"
        return f"{r['best_layer']}: {r['best_value']:.3f} {tail}"

    out = best.assign(cell=best.apply(cell, axis=1))
    table = out.pivot_table(index=["domain", "model"], columns="metric", values="cell",
                            aggfunc="first", sort=False)
    table.columns = [METRIC_LABELS.get(c, c) for c in table.columns]
    return table


def generalization(layers: pd.DataFrame, runs: pd.DataFrame, metric: str = "nmi") -> pd.DataFrame:
    """One row per run: seen accuracy and the generalization index (max over layers of
    ``metric`` on unseen data), with the depth of the best layer."""
    sub = layers[layers["metric"] == metric].reset_index(drop=True)
    keys = ["domain", "model", "condition", "trial"]
    sub = sub.sort_values(keys + ["layer_index"], kind="stable")
    idx = sub.groupby(keys, sort=False)["value"].agg(_deepest_argmax)
    best = sub.loc[idx, keys + ["layer", "depth", "value"]].rename(
        columns={"layer": "best_layer", "depth": "best_depth", "value": f"best_{metric}"})
    last = sub[sub.groupby(keys, sort=False)["layer_index"].transform("max") == sub["layer_index"]]
    last = last[keys + ["value"]].rename(columns={"value": f"last_{metric}"})
    return runs.merge(best, on=keys).merge(last, on=keys)


def model_summary(gen: pd.DataFrame, metric: str = "nmi") -> pd.DataFrame:
    """Mean (and std over trials) of seen accuracy and best-layer ``metric`` per domain x model."""
    ft = gen[gen["condition"] == "fine-tuned"]
    out = ft.groupby(["domain", "model"], sort=False).agg(
        seen_accuracy=("seen_accuracy", "mean"), seen_accuracy_sd=("seen_accuracy", "std"),
        unseen=(f"best_{metric}", "mean"), unseen_sd=(f"best_{metric}", "std"),
        trials=("trial", "count")).reset_index()
    base = gen[gen["condition"] != "fine-tuned"].pivot_table(
        index=["domain", "model"], columns="condition", values=f"best_{metric}").reset_index()
    return out.merge(base, on=["domain", "model"], how="left")


def paper_table() -> pd.DataFrame:
    """The paper's numbers (methods page, section 1: book/methods.md) in long form."""
    rows = []
    for domain, vals in PAPER.items():
        for i, m in enumerate(PAPER_MODELS):
            rows.append({"source": "paper (ImageNet models, 224 px)", "domain": domain, "model": m,
                         "seen accuracy": vals["seen_accuracy"][i],
                         "unseen NMI (best layer)": vals["unseen_nmi"][i]})
    return pd.DataFrame(rows)


def comparison_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's numbers and ours side by side (ours: mean +- sd over trials)."""
    ours = pd.DataFrame({
        "source": "this book (glyph-pre-trained zoo, 32 px)", "domain": summary["domain"],
        "model": summary["model"],
        "seen accuracy": summary["seen_accuracy"].round(3),
        "unseen NMI (best layer)": summary["unseen"].round(3),
        "sd over trials": summary["unseen_sd"].round(3)})
    both = pd.concat([paper_table(), ours], ignore_index=True)
    return both.set_index(["source", "domain", "model"])


def comparison_spread(comparison: pd.DataFrame) -> pd.DataFrame:
    """The lowest and highest seen accuracy and unseen NMI per experiment and domain of
    :func:`comparison_table`: the spread that claim (i) is about."""
    columns = ["seen accuracy", "unseen NMI (best layer)"]
    return comparison[columns].groupby(level=["source", "domain"], sort=False).agg(["min", "max"])


def _spearman(x, y) -> float:
    x, y = pd.Series(np.asarray(x, float)), pd.Series(np.asarray(y, float))
    if len(x) < 3 or x.nunique() < 2 or y.nunique() < 2:
        return float("nan")
    return float(x.rank().corr(y.rank()))


def verdict(layers: pd.DataFrame, runs: pd.DataFrame, metric: str = "nmi") -> dict:
    """Descriptive numbers behind the two headline claims, on the fine-tuned models (the
    verdicts themselves: :func:`claim_accuracy` and :func:`claim_deepest`).

    Per domain: the range of seen accuracy and of the best-layer ``metric`` over the models,
    the most accurate and the best-generalizing model, and the Spearman correlation between
    the two over all runs. Overall: how many trial-mean curves peak before the last layer (for
    ``metric`` and for all metrics), the mean margin, and the same count run by run.
    """
    gen = generalization(layers, runs, metric)
    summ = model_summary(gen, metric)
    ft = gen[gen["condition"] == "fine-tuned"]
    best = best_layers(layers)
    per_domain = {}
    for dom, g in summ.groupby("domain", sort=False):
        r = ft[ft["domain"] == dom]
        per_domain[dom] = {
            "acc_min": float(g["seen_accuracy"].min()), "acc_max": float(g["seen_accuracy"].max()),
            "gen_min": float(g["unseen"].min()), "gen_max": float(g["unseen"].max()),
            "best_acc_model": str(g.loc[g["seen_accuracy"].idxmax(), "model"]),
            "best_gen_model": str(g.loc[g["unseen"].idxmax(), "model"]),
            "spearman": _spearman(r["seen_accuracy"], r[f"best_{metric}"])}
    sel = best[best["metric"] == metric]
    return {"metric": metric, "per_domain": per_domain,
            "spearman_all": _spearman(ft["seen_accuracy"], ft[f"best_{metric}"]),
            "not_last": int((~sel["is_last"]).sum()), "curves": len(sel),
            "not_last_all_metrics": int((~best["is_last"]).sum()), "curves_all_metrics": len(best),
            "mean_gain": float(sel["gain"].mean()),
            "runs_not_last": int((ft["best_depth"] < 1).sum()), "runs": len(ft)}


def finetune_effect(summary: pd.DataFrame, margin: float = 0.1) -> str:
    """Per domain, the mean best-layer index after fine-tuning, with random weights and before
    fine-tuning (columns of :func:`model_summary`), and whether fine-tuning moved it by more
    than ``margin``."""
    effect = []
    for dom, g in summary.groupby("domain", sort=False):
        after = g["unseen"].mean()
        text = f"on {dom}, {after:.2f} after fine-tuning"
        if "random init" in g:
            text += f", {g['random init'].mean():.2f} with random weights"
        if "pre-trained" in g:
            before = g["pre-trained"].mean()
            change = ("fine-tuning made the unseen classes markedly more separable"
                      if after > before + margin else
                      "fine-tuning made them less separable" if after < before - margin else
                      "fine-tuning changed little")
            text += f" and {before:.2f} before fine-tuning: {change}"
        effect.append(text)
    return "; ".join(effect)


def inner_margins(layers: pd.DataFrame, metric: str = "nmi", condition: str = "fine-tuned",
                  confidence: float = 0.95) -> pd.DataFrame:
    """Claim (ii), "the deepest layer is not always the best": per (domain, model), how much the
    best layer beats the last, with a t interval over trials.

    The best layer is chosen on the *other* trials' mean curve and the margin (value there minus
    value at the last layer) measured on the held-out trial, so the choice does not inflate the
    margin (with one trial: chosen and measured on it, no interval). Columns: domain, model,
    best_layer (on all trials), trials, margin, always_last (every held-out choice was the
    last layer: the margin is 0 by construction), low, high, se, detectable.
    """
    sub = layers[(layers["metric"] == metric) & (layers["condition"] == condition)]
    rows = []
    for (dom, mod), g in sub.groupby(["domain", "model"], sort=False):
        grid = g.pivot_table(index="trial", columns="layer_index", values="value")
        names = g.drop_duplicates("layer_index").set_index("layer_index")["layer"]
        values = grid.to_numpy()
        if len(values) > 1:
            picks = [int(_deepest_argmax(pd.Series(np.delete(values, t, 0).mean(0))))
                     for t in range(len(values))]
        else:
            picks = [int(_deepest_argmax(pd.Series(values[0])))]
        margins = [values[t, b] - values[t, -1] for t, b in enumerate(picks)]
        margin, low, high = mean_interval(margins, confidence)
        se = float(np.std(margins, ddof=1) / np.sqrt(len(margins))) if len(margins) > 1 else np.nan
        rows.append({"domain": dom, "model": mod,
                     "best_layer": names[grid.columns[_deepest_argmax(pd.Series(values.mean(0)))]],
                     "trials": len(margins), "margin": margin,
                     "always_last": all(b == values.shape[1] - 1 for b in picks),
                     "low": low if len(margins) > 1 else np.nan,
                     "high": high if len(margins) > 1 else np.nan, "se": se,
                     "detectable": np.nan if np.isnan(se) else detectable_effect(se, confidence)})
    return pd.DataFrame(rows)


def claim_deepest(margins: pd.DataFrame) -> dict:
    """Verdict on claim (ii) from :func:`inner_margins`: ``reproduced`` when some curve's inner
    layer beats the last with an interval above 0, ``not shown`` when none does (with the
    median detectable margin over the pairs whose margins vary, and how many pairs always
    chose the last layer), ``undetermined`` with one trial (no interval)."""
    if margins["low"].isna().all():
        return {"verdict": "undetermined (one trial: no interval)", "curves": len(margins),
                "clear": [], "detectable": float("nan")}
    clear = margins[margins["low"] > 0]
    varying = margins[margins["se"] > 1e-12]  # margins that vary beyond rounding
    return {"verdict": "reproduced" if len(clear) else "not shown", "curves": len(margins),
            "clear": [f"{r.model} on {r.domain}" for r in clear.itertuples()],
            "always_last": int(margins["always_last"].sum()),
            "detectable": float(varying["detectable"].median()) if len(varying) else float("nan")}


def claim_accuracy(gen: pd.DataFrame, level, metric: str = "nmi",
                   confidence: float = 0.95) -> pd.DataFrame:
    """Claim (i), "high accuracy does not imply generalizability", among the models that reach
    ``level`` mean seen accuracy (the paper's models all reach 0.92-0.99): one level, or
    {domain: level}.

    Per domain: every qualified model's best-layer ``metric`` minus that of the most accurate
    qualified model, with Welch's interval over trials. Columns: domain, level, model,
    seen_accuracy, unseen, qualified, most_accurate, effect, low, high, detectable, direction (NaN / "" for the most accurate
    model and the unqualified ones).
    """
    ft = gen[gen["condition"] == "fine-tuned"]
    rows = []
    for dom, g in ft.groupby("domain", sort=False):
        lev = level[dom] if isinstance(level, dict) else level
        if not 0 < lev <= 1:
            raise ValueError(f"level must be a seen accuracy in (0, 1], got {lev!r}")
        means = g.groupby("model", sort=False)[["seen_accuracy", f"best_{metric}"]].mean()
        qualified = means[means["seen_accuracy"] >= lev]
        top = qualified["seen_accuracy"].idxmax() if len(qualified) else None
        for model, m in means.iterrows():
            row = {"domain": dom, "level": lev, "model": model, "seen_accuracy": m["seen_accuracy"],
                   "unseen": m[f"best_{metric}"], "qualified": model in qualified.index,
                   "most_accurate": model == top, "effect": np.nan, "low": np.nan,
                   "high": np.nan, "detectable": np.nan, "direction": ""}
            if row["qualified"] and model != top:
                mine, best = (g[g["model"] == name][f"best_{metric}"] for name in (model, top))
                if min(len(mine), len(best)) > 1:
                    e = welch_effect(mine, best, confidence)
                    row.update({k: e[k] for k in ("effect", "low", "high", "detectable",
                                                  "direction")})
            rows.append(row)
    return pd.DataFrame(rows)


def claim_accuracy_verdict(table: pd.DataFrame, gen: pd.DataFrame | None = None,
                           metric: str = "nmi") -> dict:
    """Verdicts on claim (i) per domain from :func:`claim_accuracy`.

    ``verdict``: ``reproduced`` when a qualified model generalizes detectably better than the
    most accurate one, ``not shown`` when none does, ``not testable`` with fewer than 2
    qualified models (or one trial). ``spread_verdict`` (with ``gen``, the runs of
    :func:`generalization`): ``reproduced`` when the qualified models' best-layer ``metric``
    differ at all (Alexander-Govern test over trials, unequal variances, p < 0.05: the paper's
    evidence is such a spread among equally accurate models), else ``not shown``; with
    ``spread`` (max - min of their means) and ``spread_p``.
    """
    out = {}
    for dom, t in table.groupby("domain", sort=False):
        q = t[t["qualified"] & ~t["most_accurate"]]
        compared = q[q["direction"] != ""]
        top = t[t["most_accurate"]]["model"]
        if compared.empty:
            verdict = "not testable"
        elif (compared["direction"] == "higher").any():
            verdict = "reproduced"
        else:
            verdict = "not shown"
        out[dom] = {"verdict": verdict, "qualified": int(t["qualified"].sum()),
                    "models": len(t), "most_accurate": top.iloc[0] if len(top) else None,
                    "better": list(compared[compared["direction"] == "higher"]["model"]),
                    "detectable": (float(compared["detectable"].median()) if len(compared)
                                   else float("nan")),
                    "spread": float("nan"), "spread_p": float("nan"),
                    "spread_verdict": "not testable"}
        if gen is None:
            continue
        qualified = list(t[t["qualified"]]["model"])
        runs = gen[(gen["domain"] == dom) & (gen["condition"] == "fine-tuned")]
        groups = [runs[runs["model"] == m][f"best_{metric}"].to_numpy() for m in qualified]
        if len(groups) >= 2 and min(len(g) for g in groups) >= 2:
            p = float(scipy.stats.alexandergovern(*groups).pvalue)
            means = [g.mean() for g in groups]
            out[dom].update(spread=float(max(means) - min(means)), spread_p=p,
                            spread_verdict="reproduced" if p < 0.05 else "not shown")
    return out


def deepest_sentence(margins: pd.DataFrame, verdict: dict) -> str:
    """Claim (ii) in words, from :func:`inner_margins` and :func:`claim_deepest`."""
    if verdict["verdict"].startswith("undetermined"):
        return ("with one trial there is no interval: rerun with at least 3 trials "
                "(`-p \"trials=[0,1,2]\"`) for a verdict")
    clear = margins[margins["low"] > 0]
    listed = "; ".join(f"{r.model} on {r.domain}, {r.best_layer}: {r.margin:+.3f} "
                       f"[{r.low:+.3f}, {r.high:+.3f}]" for r in clear.itertuples())
    head = (f"an inner layer beats the last one with an interval above 0 for {len(clear)} of "
            f"{verdict['curves']} (domain, model) pairs")
    last = (f"; for {verdict['always_last']} of them the other trials always chose the last "
            "layer" if verdict["always_last"] else "")
    power = ("" if np.isnan(verdict["detectable"]) else
             f"; where the margins vary, this run would detect one of about "
             f"{verdict['detectable']:.3f} (80 % power, median over those pairs)")
    return f"{head} ({listed}){last}{power}" if len(clear) else f"{head}{last}{power}"


def accuracy_sentence(table: pd.DataFrame, verdicts: dict) -> str:
    """Claim (i) in words, per domain, from :func:`claim_accuracy` and its verdict."""
    parts = []
    for dom, t in table.groupby("domain", sort=False):
        v = verdicts[dom]
        head = (f"on {dom}, {v['qualified']} of {v['models']} models reach "
                f"{t['level'].iloc[0]:.2f} seen accuracy")
        if v["verdict"] == "not testable":
            parts.append(f"{head}: too few to test the claim (or a single trial)")
            continue
        top = t[t["most_accurate"]].iloc[0]
        better = t[t["model"].isin(v["better"])]
        found = ("; ".join(f"{r.model} ({r.seen_accuracy:.2f}) is above it by {r.effect:+.3f} "
                           f"[{r.low:+.3f}, {r.high:+.3f}]" for r in better.itertuples())
                 if len(better) else
                 f"no qualified model differs detectably from it (detectable: about "
                 f"{v['detectable']:.3f})")
        spread = ("" if np.isnan(v["spread_p"]) else
                  f"; their indices span {v['spread']:.3f} (Alexander-Govern p = "
                  f"{v['spread_p']:.2g}): spread rule {v['spread_verdict']}")
        parts.append(f"{head}; the most accurate, {top.model} ({top.seen_accuracy:.2f}), has a "
                     f"generalization index of {top.unseen:.3f}; {found}: "
                     f"{v['verdict']}{spread}")
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------
# The chapter's tables and the numbers its text quotes (``glue_record``)
# --------------------------------------------------------------------------------------------

def headline_metric(metrics) -> str:
    """The metric the chapter's verdicts use: k-means NMI (the paper's) when measured, else the
    first of ``metrics``."""
    return "nmi" if "nmi" in metrics else metrics[0]


def domain_table(domains) -> pd.DataFrame:
    """One row per :class:`Domain`: its classes and images, seen and unseen."""
    return pd.DataFrame([d.describe() for d in domains]).set_index("domain")


def seen_accuracy_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Seen accuracy after fine-tuning, the mean over trials: model x domain."""
    ft = runs[runs.condition == "fine-tuned"]
    return ft.pivot_table(index="model", columns="domain", values="seen_accuracy",
                          aggfunc="mean", sort=False)


def record_sources(sources: pd.DataFrame) -> dict:
    """Which models of :func:`source_table` did not learn their source task (accuracy < 0.5),
    in words."""
    weak = sources[sources["source accuracy"] < 0.5]
    return {"sep_weak_sources":
            "every zoo member learned its source task" if weak.empty else
            "; ".join(f"{m} reached only {a:.2f} source accuracy, so its 'pre-trained' start is "
                      "little better than random weights"
                      for m, a in weak["source accuracy"].items())}


def record_runs(runs: pd.DataFrame, *, seconds: float, trials, headline: str, epochs: int,
                accuracy_levels, levels: dict) -> dict:
    """The fine-tuning as the text quotes it: the range of seen accuracy and of epochs, the
    share of cached models, the trials, the headline metric, and how long each model was
    fine-tuned (``epochs``, or until the ``levels`` of :func:`domain_levels` when
    ``accuracy_levels`` is set)."""
    ft = runs[runs.condition == "fine-tuned"]
    level = (f"{epochs} epoch{'s' * (epochs > 1)}" if accuracy_levels is None else
             "until its seen accuracy reached "
             + ", ".join(f"{v:.2f} on {k}" for k, v in levels.items())
             + f" (at most {epochs} epochs)")
    return {"sep_run_seconds": f"{seconds:.0f}",
            "sep_cached_share": f"{100 * ft.cached.mean():.0f}",
            "sep_n_trials": len(trials), "sep_headline": METRIC_LABELS[headline],
            "sep_acc_min": f"{ft.seen_accuracy.min():.2f}",
            "sep_acc_max": f"{ft.seen_accuracy.max():.2f}",
            "sep_epochs_range": f"{ft.epochs.min()}-{ft.epochs.max()}", "sep_level": level}


def record_deepest(layers: pd.DataFrame, runs: pd.DataFrame, metric: str = "nmi") -> dict:
    """Claim (ii) as the text quotes it: how often the best layer is an inner one (by
    ``metric`` and by every metric, trial-mean curves and single runs, from :func:`verdict`),
    the mean margin, and the held-out verdict (:func:`inner_margins`, :func:`claim_deepest`)."""
    v = verdict(layers, runs, metric)
    margins = inner_margins(layers, metric)
    claim = claim_deepest(margins)
    return {"sep_not_last": v["not_last"], "sep_curves": v["curves"],
            "sep_deepest_verdict": claim["verdict"],
            "sep_deepest_text": deepest_sentence(margins, claim),
            "sep_not_last_all": v["not_last_all_metrics"],
            "sep_curves_all": v["curves_all_metrics"], "sep_mean_gain": f"{v['mean_gain']:.3f}",
            "sep_runs_not_last": v["runs_not_last"], "sep_runs": v["runs"]}


def record_accuracy(gen: pd.DataFrame, levels, metric: str = "nmi") -> dict:
    """Claim (i) as the text quotes it: per domain the verdict of both rules
    (:func:`claim_accuracy_verdict`), the sentence, and in how many domains the first rule
    reproduced the claim."""
    table = claim_accuracy(gen, levels, metric)
    verdicts = claim_accuracy_verdict(table, gen, metric)
    reproduced = sum(v["verdict"] == "reproduced" for v in verdicts.values())
    return {"sep_claim1_text": accuracy_sentence(table, verdicts),
            "sep_claim1_short": "; ".join(f"{d}: {v['verdict']} (spread rule: "
                                          f"{v['spread_verdict']})" for d, v in verdicts.items()),
            "sep_claim1_domains": f"{reproduced} of {len(verdicts)}"}


# --------------------------------------------------------------------------------------------
# Figures and the explorer
# --------------------------------------------------------------------------------------------

def plot_curves(layers: pd.DataFrame, metrics=None, condition: str = "fine-tuned",
                height: float = 2.2):
    """Per-layer curves of the ``condition`` models on unseen data: one row per metric, one
    column per domain, one colour per model (mean over trials, band = sd over trials)."""
    metrics = list(metrics or dict.fromkeys(layers["metric"]))
    sub = layers[layers["metric"].isin(metrics) & (layers["condition"] == condition)].copy()
    sub["metric"] = sub["metric"].map(lambda m: METRIC_LABELS.get(m, m))
    return plots.layer_curves(sub, hue="model", row="metric", col="domain",
                              row_order=[METRIC_LABELS.get(m, m) for m in metrics],
                              height=height, aspect=1.5, ylabel="score (unseen)")


def plot_baselines(layers: pd.DataFrame, metric: str = "nmi", height: float = 2.0):
    """One panel per (model, domain), a row per model: ``metric`` per layer for the fine-tuned
    models (mean, band = sd over trials), the pre-trained model before fine-tuning and random
    weights."""
    sub = layers[layers["metric"] == metric]
    conds = [c for c in CONDITIONS if c in set(sub["condition"])]
    return plots.layer_curves(sub, hue="condition", row="model", col="domain", hue_order=conds,
                              linestyles=dict(zip(CONDITIONS, ["-", "--", ":"])),
                              colours=CONDITION_COLOURS, sharey="col",
                              height=height, aspect=1.6,
                              ylabel=METRIC_LABELS.get(metric, metric))


def plot_accuracy_vs_generalization(gen: pd.DataFrame, metric: str = "nmi"):
    """Seen accuracy (x) against the best-layer ``metric`` on unseen data (y), one point per
    fine-tuned run, one panel per domain; the pre-trained baseline as a horizontal line."""
    ft = gen[gen["condition"] == "fine-tuned"]
    domains = list(dict.fromkeys(ft["domain"]))
    fig, axes = plt.subplots(1, len(domains), squeeze=False,
                             figsize=plots.fit_width(3.3 * len(domains) + 1.6, 3.4))
    palette = plots.palette(list(dict.fromkeys(gen["model"])))
    for ax, dom in zip(axes[0], domains):
        d = ft[ft["domain"] == dom]
        sns.scatterplot(data=d, x="seen_accuracy", y=f"best_{metric}", hue="model",
                        palette=palette, s=60, ax=ax, legend=ax is axes[0][-1])
        base = gen[(gen["domain"] == dom) & (gen["condition"] == "pre-trained")]
        for _, r in base.iterrows():
            ax.axhline(r[f"best_{metric}"], color=palette[r["model"]], ls="--", lw=0.8)
        ax.set_title(dom)
        ax.set_xlabel("seen-class test accuracy")
        ax.set_ylabel(f"best-layer {METRIC_LABELS.get(metric, metric)} (unseen)")
    if len(axes[0]):
        leg = axes[0][-1].get_legend()
        if leg is not None:
            sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1),
                            title="model\n(dashed: before\nfine-tuning)")
    fig.tight_layout()
    return fig


def plot_one(layers: pd.DataFrame, model: str, domain: str, metric: str = "nmi", ax=None):
    """One model, one domain, one metric: the fine-tuned curve (each trial thin, mean thick)
    with the pre-trained and random-init baselines, against the layer names."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.4))
    sub = layers[(layers["model"] == model) & (layers["domain"] == domain)
                 & (layers["metric"] == metric)]
    if sub.empty:
        ax.text(0.5, 0.5, "no data for this choice", ha="center", transform=ax.transAxes)
        return ax
    for cond in CONDITIONS:
        c, colour = sub[sub["condition"] == cond], CONDITION_COLOURS[cond]
        if c.empty:
            continue
        for _, t in c.groupby("trial"):
            if c["trial"].nunique() > 1:
                ax.plot(t["layer_index"], t["value"], color=colour, lw=0.6, alpha=0.4)
        m = c.groupby("layer_index")["value"].mean()
        ax.plot(m.index, m.values, marker="o", color=colour, lw=2,
                ls="-" if cond == "fine-tuned" else "--", label=cond)
        if cond == "fine-tuned":
            ax.plot(_deepest_argmax(m), m.max(), marker="*", ms=16, color=colour,
                    zorder=5, label="best layer (fine-tuned)")
    names = sub.drop_duplicates("layer_index").sort_values("layer_index")["layer"]
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} (unseen)")
    ax.set_title(f"{model} on {domain}")
    ax.legend(loc="best")
    return ax


def plot_unseen(domain: Domain, seed: int = 0):
    """32 images of the unseen classes of ``domain``, with their class names."""
    return plots.image_grid(domain.unseen, n=32, seed=seed,
                            title=f"{domain.label}: images of the UNSEEN classes")


def show_one(layers: pd.DataFrame, model: str, domain: str, metric: str = "nmi") -> None:
    """Show :func:`plot_one` as a figure of its own (the explorer's view)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    plot_one(layers, model, domain, metric, ax=ax)
    fig.tight_layout()
    plt.show()


def explorer(layers: pd.DataFrame, model: str | None = None, domain: str | None = None,
             metric: str = "nmi"):
    """An ipywidgets explorer: choose model, domain and metric -> the per-layer curve with the
    baselines (:func:`plot_one`). Needs a live kernel to react; the book shows its first state."""
    import ipywidgets as w

    models_ = list(dict.fromkeys(layers["model"]))
    domains_ = list(dict.fromkeys(layers["domain"]))
    metrics_ = list(dict.fromkeys(layers["metric"]))

    def show(model, domain, metric):
        show_one(layers, model, domain, metric)

    return w.interactive(
        show,
        model=w.Dropdown(options=models_, value=model or models_[0], description="model"),
        domain=w.Dropdown(options=domains_, value=domain or domains_[0], description="domain"),
        metric=w.Dropdown(options=[(METRIC_LABELS.get(m, m), m) for m in metrics_],
                          value=metric if metric in metrics_ else metrics_[0],
                          description="metric"))
