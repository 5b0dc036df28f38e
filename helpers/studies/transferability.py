"""Chapter 2 (transferability / FaCe): predict which pre-trained model transfers best.

Score every model of a zoo on a target task from its FROZEN features (FaCe and its two terms,
LogME, LEEP, NCE, H-score, GBC, NC1, a kNN and a linear-probe proxy), fine-tune every model on
the target for real, and measure with the weighted Kendall tau how well each score ranks the
fine-tuned accuracies. Also: the same scores at every layer (which depth predicts transfer
best), the FaCe ablation, the spread of tau over so few models, and the published benchmark.

Every function takes plain data and returns a DataFrame (or a figure); every expensive step is
cached under ``helpers.cache.cache_dir() / "transferability"`` (fine-tuning results, pre-logit
features, score tables) or in the shared feature cache (per-layer features).
"""

from __future__ import annotations

import functools
import itertools
import math
import string
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .. import cache, data, features, models, plots, zoo
from ..device import get_device, one_thread
from ..jobs import run as jobs_run
from ..metrics import face_zoo, leep, nce, ncti_zoo, weighted_tau
from ..metrics.intervals import paired_effect, percentile_interval
from ..metrics.layerwise import layerwise_each
from ..models import input_spec, layer_names
from ..names import did_you_mean
from ..train import evaluate, fit

CACHE = "transferability"
BOOK_DATA = Path(__file__).resolve().parents[2] / "book" / "data"  # the published tables

# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------

#: Embedded (offline) targets: name -> what it is. All 32 px, white on black.
EMBEDDED_TARGETS = {
    "mnist": "MNIST-5k handwritten digits (10 classes)",
    "digits8x8": "scikit-learn's 8x8 handwritten digits, upsampled (10 classes)",
    "font_styles": "the font of lowercase glyphs (one class per font; the zoo never saw "
                   "lowercase letters nor font labels)",
    "lowercase": "lowercase letters a-z of every font (26 classes the zoo never saw)",
    "rotated_digits": "glyph digits 0-9 of every font, rotated by 90 degrees (10 classes)",
    "rotated_chars": "the zoo's own characters 0-9A-Z, rotated by 90 degrees (36 classes)",
    "inverted_mnist": "MNIST-5k digits, black on white (10 classes)",
}

#: Full profile: torchvision class -> the benchmark's name for the target (SFDA/LogME tables).
#: VOC2007 is a multi-label task in the benchmark: not scored here.
FULL_TARGETS = {
    "FGVCAircraft": "aircraft", "Caltech101": "caltech101", "StanfordCars": "cars",
    "CIFAR10": "cifar10", "CIFAR100": "cifar100", "DTD": "dtd", "Flowers102": "flowers",
    "Food101": "food", "OxfordIIITPet": "pets", "SUN397": "sun397",
}

#: Full profile: timm checkpoint -> the benchmark's (torchvision) model name. googlenet is not
#: in timm; timm's mnasnet_100 and mobilenetv2_100 are not torchvision's weights (nearest).
FULL_ZOO = {
    "resnet34.tv_in1k": "resnet34", "resnet50.tv_in1k": "resnet50",
    "resnet101.tv_in1k": "resnet101", "resnet152.tv_in1k": "resnet152",
    "densenet121.tv_in1k": "densenet121", "densenet169.tv_in1k": "densenet169",
    "densenet201.tv_in1k": "densenet201", "mnasnet_100.rmsp_in1k": "mnasnet1_0",
    "mobilenetv2_100.ra_in1k": "mobilenet_v2", "inception_v3.tv_in1k": "inception_v3",
}

_GLYPH_SEED = 1000  # the zoo renders with seeds 0 and 10,000: targets get fresh jitter


def target_names() -> list[str]:
    """Targets :func:`make_target` knows: the embedded ones and the full-profile torchvision ones."""
    return list(EMBEDDED_TARGETS) + list(FULL_TARGETS)


def check_targets(names) -> list[str]:
    """``names`` if every one is a known target, else a one-line ValueError naming the bad one."""
    names = list(names)
    for n in names:
        if n not in target_names():
            raise ValueError(f"targets: unknown target {n!r}{did_you_mean(n, target_names())}; "
                             f"known: {target_names()}")
    if len(set(names)) != len(names):
        raise ValueError(f"targets: repeated names in {names}")
    return names


def check_parameters(targets, scatter_target: str, scatter_metric: str) -> list[str]:
    """The chapter's ``targets`` (:func:`check_targets`) if its scatter figure's target is one
    of them and its metric one of :data:`SCORE_LABELS`, else a one-line ValueError."""
    targets = check_targets(targets)
    if scatter_target not in targets:
        raise ValueError(f"scatter_target {scatter_target!r} must be one of the targets {targets}")
    if scatter_metric not in SCORE_LABELS:
        raise ValueError(f"scatter_metric must be one of {list(SCORE_LABELS)}")
    return targets


def target_table(data_sets: dict) -> pd.DataFrame:
    """One row per target of ``{name: (train, test)}``: what it is, its classes and images."""
    return pd.DataFrame([
        {"target": name, "what": EMBEDDED_TARGETS.get(name, f"torchvision {name}"),
         "classes": len(train.classes), "train images": len(train),
         "test images": len(test) if test is not None else 0}
        for name, (train, test) in data_sets.items()]).set_index("target")


def _sized(d: data.ImageSet, name: str, train_per_class: int, test_per_class: int, seed: int):
    d = data.per_class(d, train_per_class + test_per_class, seed=seed)
    train, test = data.train_test(d, test=test_per_class, seed=seed)
    train.domain = test.domain = name
    return train, test


def make_target(name: str, train_per_class: int = 30, test_per_class: int = 50,
                resolution: int = 32, n_fonts: int = 8, seed: int = 0, root=None,
                download: bool = False) -> tuple[data.ImageSet, data.ImageSet | None]:
    """(train, test) of one target, ``train_per_class`` + ``test_per_class`` images per class.

    Embedded targets: see :data:`EMBEDDED_TARGETS`. Torchvision targets (the full profile) give
    (train, None): their fine-tuned accuracies come from the published benchmark.
    """
    check_targets([name])
    if name in FULL_TARGETS:
        return torchvision_target(name, train_per_class, resolution, seed, root, download), None
    return cache.memo(_make_embedded, name, train_per_class, test_per_class, resolution, n_fonts,
                      seed, folder=CACHE, depends_on=data.font_inventory())


def make_targets(names, train_per_class: int = 30, test_per_class: int = 50, **options) -> dict:
    """``{name: (train, test)}`` of :func:`make_target` (with ``options``) for every name."""
    return {name: make_target(name, train_per_class, test_per_class, **options) for name in names}


def _make_embedded(name: str, train_per_class: int, test_per_class: int, resolution: int,
                   n_fonts: int, seed: int):
    n = train_per_class + test_per_class
    if name in ("mnist", "inverted_mnist"):
        d = data.mnist5k(resolution)
        if name == "inverted_mnist":
            d = data.invert(d)
    elif name == "digits8x8":
        d = data.sklearn_digits(resolution)
    elif name == "font_styles":
        fonts = sorted(data.find_fonts(chars=string.ascii_lowercase))
        if not 2 <= n_fonts <= len(fonts):
            raise ValueError(f"n_fonts must be in 2..{len(fonts)}, got {n_fonts}")
        chosen = sorted(np.random.default_rng(seed).choice(fonts, n_fonts, replace=False).tolist())
        d = data.glyphs(string.ascii_lowercase, fonts=chosen, per_pair=math.ceil(n / 26),
                        resolution=resolution, label="font", seed=_GLYPH_SEED + seed)
    else:
        chars = {"lowercase": string.ascii_lowercase, "rotated_digits": data.DIGITS}.get(
            name, data.CHARACTERS)
        n_all = len(data.find_fonts(chars=chars))
        d = data.glyphs(chars, per_pair=math.ceil(n / n_all), resolution=resolution,
                        seed=_GLYPH_SEED + seed)
        if name in ("rotated_digits", "rotated_chars"):
            d = data.rotate(d, 90)
    return _sized(d, name, train_per_class, test_per_class, seed)


def torchvision_target(name: str, per_class: int, resolution: int = 224, seed: int = 0,
                       root=None, download: bool = False) -> data.ImageSet:
    """Up to ``per_class`` training images per class of a torchvision target (full profile),
    through the one adapter :func:`helpers.data.torchvision_set`."""
    if name not in FULL_TARGETS:
        raise ValueError(f"torchvision target must be one of {list(FULL_TARGETS)}, got {name!r}")
    try:
        return data.torchvision_set(name, root, train=True, resolution=resolution,
                                    per_class=per_class, seed=seed, download=download)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"targets: {err}, or leave {name} out of targets") from None


# ---------------------------------------------------------------------------------------------
# Fine-tuning (the ground truth)
# ---------------------------------------------------------------------------------------------

def _weights_id(member: str, scale: str) -> str:
    """What pins a member's pre-trained weights, known without loading them: the sha256 of a
    zoo member's weights file (from its report), or the timm name with its tag. Scores are keyed
    on it; fine-tunes on the member's name, their key covering its recipe and the code that
    pre-trains it (:func:`finetune`)."""
    return f"{member}:{zoo.report(member, scale)['sha256']}" if member in zoo.names() else member


def finetune(member: str, train: data.ImageSet, test: data.ImageSet, *, scale: str = "default",
             epochs: int = 4, lr: float = 5e-4, batch_size: int = 64, weight_decay: float = 0.05,
             augment: bool = False, seed: int = 0, cached_only: bool = False) -> dict | None:
    """Fine-tune every parameter of ``member`` (fresh head) on ``train``; top-1 accuracy on ``test``.

    AdamW, cosine schedule (``helpers.train.fit``). The result is cached
    (:func:`helpers.cache.memo`: keyed on the member, both data sets, every setting, the seed
    and the code, the zoo's pre-training included); the training checkpoint lets an
    interrupted run resume and is removed once the run is done. ``cached``: whether the
    result was read from the cache. ``cached_only``: the cached result or None, never
    training. Chapter 2 ranks these accuracies.
    """
    args = (member, train, test, scale, seed)
    settings = {"epochs": epochs, "lr": lr, "batch_size": batch_size,
                "weight_decay": weight_decay, "augment": augment}
    found = cache.memo(finetune_run, *args, folder=CACHE, cached_only=True, **settings)
    if found is not None or cached_only:
        return None if found is None else {**found, "cached": True}
    return {**cache.memo(finetune_run, *args, folder=CACHE, **settings), "cached": False}


def finetune_run(member: str, train: data.ImageSet, test: data.ImageSet, scale: str = "default",
                 seed: int = 0, **settings) -> dict:
    """The job behind :func:`finetune`: the run and its result, uncached."""
    torch.manual_seed(seed)  # the fresh head's initialization
    model, _ = zoo.load(member, scale, num_classes=len(train.classes), progress=False)
    checkpoint = cache.checkpoint_file()
    tic = time.perf_counter()
    history = fit(model, train, None, checkpoint=checkpoint, progress=False, seed=seed,
                  **settings)
    _, err = evaluate(model, test)
    if checkpoint:
        checkpoint.unlink(missing_ok=True)
    return {"member": member, "target": train.domain, "seed": seed, "accuracy": 1 - err,
            "final_train_loss": float(history["train_loss"].iloc[-1]),
            "train_seconds": time.perf_counter() - tic, **settings}


def finetune_table(members, targets: dict, seeds=(0,), scale: str = "default",
                   workers: int = 1, **settings) -> pd.DataFrame:
    """Fine-tune every member on every target (``{name: (train, test)}``) for every seed, in
    ``workers`` jobs in flight (:func:`helpers.jobs.run`), the zoo first.

    One row per run: member, target, seed, accuracy, train_seconds, cached.
    """
    zoo.pretrain_many(members, scale, workers)
    jobs = [(member, train, test, seed, scale, settings) for (name, (train, test)), member, seed
            in itertools.product(targets.items(), members, seeds)]
    results = jobs_run(_finetune_job, jobs, workers, label="fine-tuning", cached_first=True)
    keys = ("member", "target", "seed", "accuracy", "train_seconds", "cached")
    return pd.DataFrame([{k: r[k] for k in keys} for r in results])


def _finetune_job(member, train, test, seed, scale, settings, cached_only: bool = False):
    """One :func:`finetune` (a module function, so that worker processes can run it)."""
    return finetune(member, train, test, scale=scale, seed=seed, cached_only=cached_only,
                    **settings)


def accuracy_runs(source: str, members, data_sets: dict, seeds=(0,), scale: str = "default",
                  workers: int = 1, **settings) -> pd.DataFrame:
    """The ground truth, one row per run (:func:`finetune_table`'s columns): ``finetune``
    fine-tunes every member on every target of ``data_sets`` with ``settings``; ``published``
    (the full profile) reads the benchmark's accuracies (:func:`published_accuracy_for`, one
    seed, nothing trained)."""
    if source == "finetune":
        return finetune_table(members, data_sets, seeds=seeds, scale=scale, workers=workers,
                              **settings)
    if source != "published":
        raise ValueError(f"accuracy_source must be 'finetune' or 'published', got {source!r}")
    return published_accuracy_for(members, list(data_sets)).assign(seed=0, train_seconds=np.nan,
                                                                   cached=True)


def mean_accuracy(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean fine-tuned accuracy over seeds: one row per (member, target)."""
    return runs.groupby(["member", "target"], as_index=False, sort=False)["accuracy"].mean()


def ground_truth_notes(runs: pd.DataFrame, members, targets, finetuned: bool = True) -> dict:
    """What the reader should know about the fine-tuned accuracies (``runs``): the wide
    member x target table in %, the mean spread per target (``spread``), the mean gap between
    two seeds of one fine-tune (``seed_gap``), and the sentences that compare the top of the
    ranking with that seed noise (``runs_sentence``, ``top_sentence``)."""
    wide = 100 * (mean_accuracy(runs).pivot(index="member", columns="target", values="accuracy")
                  .loc[list(members), list(targets)])
    seeds = runs["seed"].nunique()
    seed_gap = float(runs.groupby(["member", "target"])["accuracy"]
                     .agg(lambda a: a.max() - a.min()).mean() * 100)
    top = min(3, len(members))
    top_gap = float(wide.apply(lambda a: a.nlargest(top).iloc[0] - a.nlargest(top).iloc[-1])
                    .mean())
    runs_sentence = (("" if seeds > 1 else "One seed per fine-tune: no seed-to-seed spread here. ")
                     + (f"{len(runs)} fine-tunes in all, cached: a rerun only reads their results."
                        if finetuned else
                        "These are the published accuracies: nothing was fine-tuned here."))
    top_sentence = (f"The top {top} members of a target are on average only {top_gap:.1f} points "
                    "apart" + (f", while two seeds of one fine-tune differ by {seed_gap:.1f}: the "
                               "top of the ranking, where the weighted tau puts most of its "
                               "weight, is partly noise." if seeds > 1 else "."))
    return {"wide": wide, "spread": float((wide.max() - wide.min()).mean()),
            "seed_gap": seed_gap, "runs_sentence": runs_sentence, "top_sentence": top_sentence}


def member_table(members, scale: str = "default", workers: int = 1) -> pd.DataFrame:
    """One row per member: architecture, parameters, source classes and source accuracy (zoo
    members, pre-trained in ``workers`` processes or loaded from the cache), or the timm
    checkpoint (full profile)."""
    zoo.pretrain_many(members, scale, workers)
    rows = []
    for member in members:
        if member in zoo.names():
            rows.append(zoo.table([member], scale, progress=False).iloc[0].to_dict())
        else:
            rows.append({"member": member, "arch": member.split(".")[0], "source_classes": 1000,
                         "augment": None, "params_M": None,
                         "source_accuracy": None, "train_seconds": None})
    return pd.DataFrame(rows).set_index("member")


# ---------------------------------------------------------------------------------------------
# Published benchmark (book/data)
# ---------------------------------------------------------------------------------------------

def published_tau() -> pd.DataFrame:
    """Published tau_w (SFDA paper) of LEEP, LogME, NLEEP, PARC, SFDA on 11 targets, + mean."""
    table = pd.read_csv(BOOK_DATA / "transfer_benchmark_published_tau_w.csv", index_col="metric")
    table["mean"] = table.mean(axis=1)
    return table


def published_accuracy() -> pd.DataFrame:
    """Published fine-tuned top-1 accuracy (%) of 11 torchvision models on 11 targets (long)."""
    return pd.read_csv(BOOK_DATA / "transfer_benchmark_finetune_accuracy.csv")


def published_accuracy_for(members, targets) -> pd.DataFrame:
    """(member, target, accuracy) of timm ``members`` on torchvision ``targets`` from the
    published table, accuracy as a fraction (the full profile's ground truth)."""
    pub = published_accuracy().set_index(["target", "model"])["finetune_top1"]
    rows = []
    for member, target in itertools.product(members, targets):
        if member not in FULL_ZOO or target not in FULL_TARGETS:
            raise ValueError(f"no published accuracy for member {member!r} on target {target!r}; "
                             f"members: {list(FULL_ZOO)}, targets: {list(FULL_TARGETS)}")
        rows.append({"member": member, "target": target,
                     "accuracy": pub[(FULL_TARGETS[target], FULL_ZOO[member])] / 100})
    return pd.DataFrame(rows)


def side_by_side(tau: pd.DataFrame, published: pd.DataFrame, n_members: int,
                 n_targets: int) -> pd.DataFrame:
    """Mean tau per score: the published benchmark's column beside ours (NaN: not measured).

    ``tau``: our :func:`tau_table`, averaged here over the targets."""
    ours = tau.groupby("metric")["tau"].mean().rename(SCORE_LABELS)
    names = list(published.index) + [n for n in ours.index if n not in published.index]
    return pd.DataFrame({
        "published benchmark (11 ImageNet models, 11 targets)": published["mean"].reindex(names),
        f"ours ({n_members} members, {n_targets} targets)": ours.reindex(names),
    })


def full_zoo_table() -> pd.DataFrame:
    """The full profile's timm checkpoints beside the benchmark's models, and where the weights
    differ (googlenet is not in timm)."""
    table = pd.DataFrame({"timm checkpoint": list(FULL_ZOO),
                          "benchmark model": list(FULL_ZOO.values())})
    table["note"] = table["benchmark model"].map({
        "mnasnet1_0": "timm's own weights, not torchvision's",
        "mobilenet_v2": "timm's own weights, not torchvision's"}).fillna("same weights")
    table.loc[len(table)] = ["(none)", "googlenet", "not in timm: left out"]
    return table


# ---------------------------------------------------------------------------------------------
# Scores from frozen features
# ---------------------------------------------------------------------------------------------

#: Raw scores (their own signs) -> how they read. ``nc1``: lower = more collapsed.
SCORE_LABELS = {
    "face": "FaCe", "variance_collapse": "C term (-NC1)", "class_fairness": "F term",
    "face_raw": "C + F (no z-score)", "logme": "LogME", "leep": "LEEP", "nce": "NCE",
    "h_score": "H-score", "gbc": "GBC", "nc1": "-NC1", "knn": "kNN", "probe": "linear probe",
    "sfda": "SFDA", "nleep": "NLEEP", "parc": "PARC", "ncti": "NCTI", "knn_acc": "kNN accuracy",
    "params": "parameters",
}
#: FaCe and the baselines it is ranked against: its own paper's, those of the work since
#: (SFDA, NLEEP, PARC, NCTI, kNN accuracy) and the data-free number of parameters.
MAIN_METRICS = ("face", "logme", "leep", "nce", "h_score", "gbc", "nc1", "knn", "probe",
                "sfda", "nleep", "parc", "ncti", "knn_acc", "params")
ABLATION = ("variance_collapse", "class_fairness", "face_raw", "face")
ABLATION_TERMS = ("variance_collapse", "class_fairness")  # FaCe's two terms, each alone
LAYER_METRICS = ("face", "logme", "h_score", "gbc", "knn", "probe")
_LAYERWISE = ("logme", "h_score", "gbc", "face", "nc1", "knn", "probe")
_FINAL_ONLY = ("sfda", "nleep", "parc", "ncti", "knn_acc")  # pre-logits only: the papers' use
_NCTI_COLUMNS = ("ncti.seli", "ncti.ncc", "ncti.vc")
_SIGN = {"nc1": -1.0}  # oriented so that higher = predicted to transfer better


def _backbone(model, x):
    if hasattr(model, "forward_features"):
        return model.forward_features(x)
    return model.forward_intermediates(x, indices=[])[0]


def _head_views(model, x) -> tuple[np.ndarray, np.ndarray]:
    """(pre-logits, logits) of one batch, from one backbone pass."""
    h = _backbone(model, x)
    return (model.forward_head(h, pre_logits=True).float().cpu().numpy(),
            model.forward_head(h).float().cpu().numpy())


def pre_logits(model, d: data.ImageSet, batch_size: int = 256, device=None) -> dict:
    """``{"pre_logits": (N, D), "logits": (N, classes)}``: the representation the source head
    sees and its output, one pass, cached (:func:`helpers.cache.memo`, keyed on the weights,
    the input the model expects, the data and the device) (the features the transferability
    papers score)."""
    device = str(get_device(device, quiet=True))
    return cache.memo(_pre_logits, model, d, input_spec(model), device, batch_size, folder=CACHE)


def _pre_logits(model, d: data.ImageSet, spec: dict, device: str, batch_size: int) -> dict:
    parts = [out for _, out in models.predict_batches(model, d.images, _head_views, batch_size,
                                                        device, spec)]
    return {"pre_logits": np.concatenate([f for f, _ in parts]),
            "logits": np.concatenate([g for _, g in parts])}


_OPTION_KEYS = {"knn": ("k",), "gbc": ("pca_dim",), "face": ("pca_dim",),
                "probe": ("epochs", "lr", "random_state", "test_fraction", "batch_size"),
                "knn_acc": ("k",), "ncti": ("pca_dim",),
                "nleep": ("random_state", "component_ratio")}


def _metric_options(labels: np.ndarray, knn_k: int, probe_epochs: int, pca_dim: int, seed: int):
    """Per scored metric, the options it takes: kNN's k capped by the smallest class, NLEEP's
    5 mixture components per class capped at N / C, PARC its paper's 32 PCA dimensions."""
    smallest = int(np.bincount(labels).min())
    every = {"k": max(1, min(knn_k, smallest - 1)), "epochs": probe_epochs, "pca_dim": pca_dim,
             "random_state": seed, "test_fraction": 0.5, "batch_size": 256, "lr": 1e-2,
             "component_ratio": max(1, min(5, len(labels) // len(np.unique(labels))))}
    return {m: {k: every[k] for k in _OPTION_KEYS.get(m, ())} for m in _LAYERWISE + _FINAL_ONLY}


def _raw_rows(table: pd.DataFrame) -> pd.DataFrame:
    """layerwise's names (face.variance_collapse, ...) -> our raw score names (NCTI's terms keep
    theirs: ncti.seli, ncti.ncc, ncti.vc)."""
    table = table[~table.metric.isin(["face.face"])].copy()
    table["source"] = table["metric"].str.split(".").str[0]
    table["metric"] = table["metric"].str.replace("face.", "", regex=False)
    return table


def score_member(model, train: data.ImageSet, *, knn_k: int = 10, probe_epochs: int = 50,
                 pca_dim: int = 64, seed: int = 0, layers: bool = True) -> tuple[pd.DataFrame,
                                                                                 pd.DataFrame]:
    """Every score of one pre-trained model on one target's training set (frozen features).

    Returns ``(scores, per_layer)``: scores = (metric, value) on the pre-logit features plus
    LEEP and NCE from the source head's posteriors; per_layer = (layer, layer_index, depth,
    metric, value) at every layer of :func:`helpers.models.layer_names` (no LEEP/NCE there).
    Raw values, their own signs. Cached per metric on the weights, the data and that metric's
    own options, so changing e.g. ``knn_k`` recomputes only kNN (from cached features).
    """
    return _score(lambda: model, cache.weights_hash(model), train, knn_k=knn_k,
                  probe_epochs=probe_epochs, pca_dim=pca_dim, seed=seed, layers=layers)


def _score(get_model, weights: str, train: data.ImageSet, *, knn_k: int = 10,
           probe_epochs: int = 50, pca_dim: int = 64, seed: int = 0, layers: bool = True):
    """:func:`score_member` given what identifies the weights; ``get_model()`` is called only
    when a score is not cached."""
    labels = train.labels.numpy()
    key = cache.make_key((_score_inputs, pre_logits, features.extract), weights=weights,
                         data=train.fingerprint, layers=layers)
    inputs = cache.Lazy(key, lambda: _score_inputs(get_model(), train, layers))
    each = _metric_options(labels, knn_k, probe_epochs, pca_dim, seed)
    scored = cache.memo_each(_scores, inputs, labels, each=each, folder=CACHE)
    head = cache.memo(_head_scores, inputs, labels, folder=CACHE)
    table = pd.concat([*scored.values(), head], ignore_index=True)
    n_layers = int(table["layer_index"].max()) + 1  # every layer has rows (extract: all)
    table["depth"] = table["layer_index"] / max(1, n_layers - 1)
    final = table[table.layer_index == -1][["metric", "value"]].reset_index(drop=True)
    per_layer = table[table.layer_index >= 0].reset_index(drop=True)
    return final, per_layer


def _score_inputs(model, train: data.ImageSet, layers: bool) -> dict:
    """What the scores read: the pre-logits and logits, every layer's features (``layers``),
    the layers' order and the number of parameters."""
    pl = pre_logits(model, train)
    feats = features.extract(model, train, progress=False) if layers else {}
    return {**pl, "layers": {k: v for k, v in feats.items() if k != "logits"},
            "order": layer_names(model), "params": sum(p.numel() for p in model.parameters())}


def _scores(inputs: cache.Lazy, labels: np.ndarray, *, each: dict) -> dict[str, pd.DataFrame]:
    """{metric: its rows (layer, metric, value, layer_index; -1 = the pre-logits)} for the
    metrics of ``each`` (metric -> options), those that allow it sharing one call."""
    final = {"pre_logits": inputs.value["pre_logits"]}
    where = {**final, **inputs.value["layers"]}
    with one_thread():
        parts = [layerwise_each(at, labels, {m: each[m] for m in each if m in group})
                 for at, group in ((where, _LAYERWISE), (final, _FINAL_ONLY))
                 if any(m in group for m in each)]
    table = _raw_rows(pd.concat(parts, ignore_index=True))
    order = {name: i for i, name in enumerate(inputs.value["order"])}
    table["layer_index"] = table["layer"].map(order).fillna(-1).astype(int)
    return {m: table[table.source == m].drop(columns="source").reset_index(drop=True)
            for m in each}


def _head_scores(inputs: cache.Lazy, labels: np.ndarray) -> pd.DataFrame:
    """LEEP and NCE from the source head's posteriors, and the number of parameters."""
    probs = torch.softmax(torch.as_tensor(inputs.value["logits"], dtype=torch.float64), 1)
    probs = probs.numpy()
    return pd.DataFrame({"layer": "head", "metric": ["leep", "nce", "params"],
                         "value": [leep(probs, labels), nce(probs.argmax(1), labels),
                                   inputs.value["params"]], "layer_index": -1})


def score_table(members, targets: dict, scale: str = "default", progress: bool = False,
                **options) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`score_member` for every member x target (``{name: (train, test)}``), each member
    loaded once. Returns ``(scores, per_layer)`` with member and target columns added."""
    from tqdm.auto import tqdm

    finals, layers = [], []
    for member in tqdm(members, desc="scores", disable=not progress):
        # loaded once, and only when a score is not cached (an analysis-only rerun loads none)
        get_model = functools.cache(lambda m=member: zoo.load(m, scale, progress=False)[0])
        weights = _weights_id(member, scale)
        for name, (train, _) in targets.items():
            final, per_layer = _score(get_model, weights, train, **options)
            finals.append(final.assign(member=member, target=name))
            layers.append(per_layer.assign(member=member, target=name))
    cols = ["member", "target"]
    scores = pd.concat(finals, ignore_index=True)
    per_layer = pd.concat(layers, ignore_index=True)
    return (scores[cols + ["metric", "value"]],
            per_layer[cols + ["layer", "layer_index", "depth", "metric", "value"]])


def with_face(scores: pd.DataFrame, by=("target",)) -> pd.DataFrame:
    """Add FaCe (the two terms z-scored across the members present, then added: ``face_zoo``),
    the raw sum of its terms and NCTI (its terms min-max scaled across the members:
    ``ncti_zoo``), per group ``by``; orient every score so that higher = better."""
    by = list(by)
    wide = scores.pivot_table(index=by + ["member"], columns="metric", values="value",
                              sort=False).reset_index()
    extra = []
    for _, g in wide.groupby(by, sort=False):
        if {"variance_collapse", "class_fairness"} <= set(g.columns):
            face = face_zoo(g[["variance_collapse", "class_fairness"]])
            raw = g["variance_collapse"] + g["class_fairness"]
            for metric, values in (("face", face), ("face_raw", raw)):
                extra.append(g[by + ["member"]].assign(metric=metric, value=np.asarray(values)))
        if set(_NCTI_COLUMNS) <= set(g.columns):
            terms = g[list(_NCTI_COLUMNS)].rename(columns=lambda c: c.split(".", 1)[1])
            extra.append(g[by + ["member"]].assign(metric="ncti", value=ncti_zoo(terms)))
    out = pd.concat([scores[by + ["member", "metric", "value"]], *extra], ignore_index=True)
    out["value"] = out["value"] * out["metric"].map(_SIGN).fillna(1.0)
    return out


# ---------------------------------------------------------------------------------------------
# Weighted Kendall tau
# ---------------------------------------------------------------------------------------------

def tau_table(scores: pd.DataFrame, accuracy: pd.DataFrame, metrics=MAIN_METRICS,
              by=("target",)) -> pd.DataFrame:
    """Weighted Kendall tau (``metrics.weighted_tau``) between each oriented score and the
    fine-tuned accuracy across the members, per group ``by`` and metric.

    ``scores``: raw (member, target, metric, value) rows; FaCe is formed here, so it always
    z-scores over exactly the members that are ranked. Returns (by..., metric, tau, n_models).
    """
    by = list(by)
    oriented = with_face(scores, by)
    merged = oriented[oriented.metric.isin(metrics)].merge(accuracy, on=["member", "target"])
    rows = []
    for keys, g in merged.groupby(by + ["metric"], sort=False):
        g = g[np.isfinite(g["value"])]  # a score that failed (LogME on N <= D) ranks nothing
        tau = weighted_tau(g["value"].to_numpy(), g["accuracy"].to_numpy()) if len(g) > 1 else np.nan
        rows.append({**dict(zip(by + ["metric"], keys if isinstance(keys, tuple) else (keys,))),
                     "tau": tau, "n_models": len(g)})
    return pd.DataFrame(rows)


def tau_matrix(tau: pd.DataFrame, metrics=MAIN_METRICS, labels: bool = True) -> pd.DataFrame:
    """Metric x target matrix of tau with a ``mean`` column (the chapter's main table, laid out
    like the published one)."""
    m = tau.pivot(index="metric", columns="target", values="tau")
    m = m.loc[[c for c in metrics if c in m.index], list(dict.fromkeys(tau["target"]))]
    m["mean"] = m.mean(axis=1)
    m.columns.name = None
    return m.rename(index=SCORE_LABELS) if labels else m


def leave_one_out(scores: pd.DataFrame, accuracy: pd.DataFrame, metrics=MAIN_METRICS
                  ) -> pd.DataFrame:
    """Tau of every metric with each member left out in turn (FaCe re-z-scored without it):
    (target, metric, left_out, tau). The spread says how much one model moves tau."""
    rows = []
    for member in accuracy["member"].unique():
        t = tau_table(scores[scores.member != member], accuracy[accuracy.member != member],
                      metrics)
        rows.append(t.assign(left_out=member))
    return pd.concat(rows, ignore_index=True)


def seed_taus(scores: pd.DataFrame, runs: pd.DataFrame, metrics=MAIN_METRICS) -> pd.DataFrame:
    """Tau against each fine-tuning seed's accuracies separately: the ground truth's own noise."""
    rows = [tau_table(scores, g[["member", "target", "accuracy"]], metrics).assign(seed=s)
            for s, g in runs.groupby("seed")]
    return pd.concat(rows, ignore_index=True)


def spread(loo: pd.DataFrame) -> pd.DataFrame:
    """Per metric: the mean over targets of tau's min and max over left-out members."""
    per = loo.groupby(["target", "metric"])["tau"].agg(["min", "max"]).reset_index()
    return per.groupby("metric")[["min", "max"]].mean()


def null_tau(n_models: int, n_targets: int = 1, q: float = 0.95, draws: int = 20000,
             seed: int = 0) -> float:
    """The ``q`` quantile of tau_w (mean over ``n_targets`` independent targets) for a score
    that ranks ``n_models`` at random: what chance alone reaches. Exact over all permutations
    for one target and n_models <= 8, else Monte Carlo."""
    if n_models < 2:
        raise ValueError(f"n_models must be >= 2, got {n_models}")
    pool = _null_pool(n_models, seed)
    rng = np.random.default_rng(seed)
    taus = pool if n_targets == 1 else rng.choice(pool, size=(draws, n_targets)).mean(1)
    return float(np.quantile(taus, q))


@functools.lru_cache(maxsize=8)
def _null_pool(n_models: int, seed: int) -> np.ndarray:
    """tau_w of random orderings of ``n_models``: all of them (exact) up to 8, else 5,000."""
    acc = np.arange(n_models, dtype=float)
    if n_models <= 8:
        orders = itertools.permutations(range(n_models))
    else:
        rng = np.random.default_rng(seed)
        orders = (rng.permutation(n_models) for _ in range(5000))
    return np.array([weighted_tau(np.array(p, float), acc) for p in orders])


def tau_bootstrap(scores: pd.DataFrame, runs: pd.DataFrame, metrics=MAIN_METRICS,
                  n_boot: int = 2000, random_state: int = 0) -> pd.DataFrame:
    """Bootstrap draws (n_boot x metric) of the mean tau over targets.

    Each draw resamples the targets, and within every drawn target the fine-tuning seeds, with
    replacement; the accuracy is the mean over the drawn seeds. The scores stay fixed (they are
    a deterministic function of the data). With one seed (published accuracies) only the
    targets are resampled. Methods page, section "intervals".
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 2:
        raise ValueError(f"n_boot must be an int >= 2, got {n_boot!r}")
    oriented = with_face(scores)
    oriented = oriented[oriented.metric.isin(metrics)]
    names = [m for m in metrics if m in set(oriented.metric)]
    wide = {t: g.pivot(index="member", columns="metric", values="value").reindex(columns=names)
            for t, g in oriented.groupby("target", sort=False)}
    targets = [t for t in dict.fromkeys(runs["target"]) if t in wide]
    seeds = sorted(runs["seed"].unique())
    acc = runs.pivot_table(index=["target", "seed"], columns="member", values="accuracy")
    memo: dict[tuple, np.ndarray] = {}

    def taus(t: int, drawn: tuple) -> np.ndarray:
        key = (t, drawn)
        if key not in memo:
            a = acc.loc[targets[t]].loc[[seeds[i] for i in drawn]].mean()
            memo[key] = _taus_of(wide[targets[t]], a)
        return memo[key]

    rng = np.random.default_rng(random_state)
    out = np.empty((n_boot, len(names)))
    for b in range(n_boot):
        picks = rng.integers(len(targets), size=len(targets))
        drawn = np.sort(rng.integers(len(seeds), size=(len(targets), len(seeds))), axis=1)
        stack = np.array([taus(int(t), tuple(d)) for t, d in zip(picks, drawn)])
        ok = np.isfinite(stack)  # tau is NaN where a score or the accuracies are all tied
        n = ok.sum(0)
        out[b] = np.where(n > 0, np.where(ok, stack, 0).sum(0) / np.maximum(n, 1), np.nan)
    return pd.DataFrame(out, columns=names)


def _taus_of(wide: pd.DataFrame, accuracy: pd.Series) -> np.ndarray:
    """tau of every column of ``wide`` (member x metric) against ``accuracy`` (per member),
    non-finite scores left out as in :func:`tau_table`."""
    acc = accuracy.reindex(wide.index).to_numpy()
    out = []
    for m in wide.columns:
        v = wide[m].to_numpy()
        ok = np.isfinite(v) & np.isfinite(acc)
        out.append(weighted_tau(v[ok], acc[ok]) if ok.sum() > 1 else np.nan)
    return np.array(out)


def tau_intervals(scores: pd.DataFrame, runs: pd.DataFrame, metrics=MAIN_METRICS,
                  draws: pd.DataFrame | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """Per metric: mean tau over targets (against the mean accuracy over seeds) with its
    bootstrap interval (:func:`tau_bootstrap`), best first."""
    draws = tau_bootstrap(scores, runs, metrics) if draws is None else draws
    point = tau_table(scores, mean_accuracy(runs), metrics).groupby("metric")["tau"].mean()
    rows = [{"metric": m, "tau": point[m],
             **dict(zip(("low", "high"), percentile_interval(draws[m], confidence)
                        if draws[m].notna().any() else (np.nan, np.nan)))}
            for m in draws.columns]  # all NaN: the score or the accuracies tie everywhere
    return pd.DataFrame(rows).set_index("metric").sort_values("tau", ascending=False)


def compare_to(claim: str, intervals: pd.DataFrame, draws: pd.DataFrame,
               confidence: float = 0.95) -> pd.DataFrame:
    """``claim``'s mean tau minus every other metric's, with a paired bootstrap interval, the
    smallest difference this run could detect, and the direction (``paired_effect``)."""
    if claim not in draws.columns:
        raise ValueError(f"claim {claim!r} is not among the bootstrapped metrics "
                         f"{list(draws.columns)}")
    rows = [{"metric": m, **paired_effect(intervals.loc[claim, "tau"] - intervals.loc[m, "tau"],
                                          draws[claim] - draws[m], confidence)}
            for m in intervals.index
            if m != claim and np.isfinite(draws[claim] - draws[m]).any()]
    columns = ["metric", "effect", "low", "high", "se", "detectable", "direction"]
    return pd.DataFrame(rows, columns=columns).set_index("metric")


def face_verdict(comparison: pd.DataFrame) -> dict:
    """The verdict on "FaCe ranks models better than the other scores" from
    :func:`compare_to`: ``reproduced`` (above every score), ``contradicted`` (some score is
    above FaCe), ``partly reproduced`` (above some, no detected difference from the rest) or
    ``not shown`` (no difference detected from any). Also the scores in each group and the
    smallest difference the run could detect (the median over the tied scores, else over all)."""
    above = list(comparison.index[comparison.direction == "higher"])
    below = list(comparison.index[comparison.direction == "lower"])
    tied = list(comparison.index[comparison.direction == "no difference detected"])
    verdict = ("contradicted" if below else "reproduced" if not tied
               else "partly reproduced" if above else "not shown")
    among = comparison.loc[tied] if tied else comparison
    return {"verdict": verdict, "above": above, "below": below, "tied": tied,
            "detectable": float(among["detectable"].median())}


def align_depths(per_layer: pd.DataFrame, grid: int = 5) -> pd.DataFrame:
    """Per member, the layer nearest each of ``grid`` relative depths 0..1 (first..last layer),
    so models of different depth can be ranked layer by layer: adds a ``rel_depth`` column."""
    if grid < 2:
        raise ValueError(f"grid must be >= 2, got {grid}")
    rows = []
    points = np.linspace(0, 1, grid)
    for member, g in per_layer.groupby("member", sort=False):
        n = int(g["layer_index"].max()) + 1
        for p in points:
            idx = round(p * (n - 1))
            rows.append(g[g.layer_index == idx].assign(rel_depth=round(float(p), 3)))
    return pd.concat(rows, ignore_index=True)


def tau_by_depth(per_layer: pd.DataFrame, accuracy: pd.DataFrame, metrics=LAYER_METRICS,
                 grid: int = 5) -> pd.DataFrame:
    """Tau of each metric computed from the layer at each relative depth (``align_depths``):
    (target, rel_depth, metric, tau, n_models)."""
    aligned = align_depths(per_layer, grid)
    return tau_table(aligned, accuracy, metrics, by=("target", "rel_depth"))


# ---------------------------------------------------------------------------------------------
# The chapter's tables and the numbers its text quotes (``glue_record``)
# ---------------------------------------------------------------------------------------------

def record_setup(members, targets, train_per_class: int, ft_epochs: int, ft_lr: float,
                 ft_seeds) -> dict:
    """The settings of the run as the text quotes them."""
    return {"tr_n_members": len(members), "tr_n_targets": len(targets),
            "tr_train_per_class": train_per_class, "tr_ft_epochs": ft_epochs,
            "tr_ft_lr": f"{ft_lr:g}", "tr_ft_seeds": ", ".join(map(str, ft_seeds)),
            "tr_n_seeds": len(ft_seeds)}


def record_zoo(zoo_table: pd.DataFrame) -> dict:
    """A note on the members of :func:`member_table` that did not learn their source task
    (accuracy < 0.5; empty when every one did), and the number of fonts the zoo's source
    characters are rendered from."""
    weak = zoo_table[zoo_table.source_accuracy.fillna(1) < 0.5]
    note = " ".join(f"`{m}` reached only {100 * a:.0f} % source accuracy: it did not learn the "
                    "source task and is in effect a randomly initialized network."
                    for m, a in weak.source_accuracy.items())
    if len(weak):
        note += " That makes it a sanity check: every score should rank it low."
    return {"tr_zoo_note": note,
            "tr_source_fonts": len(data.find_fonts(chars=data.CHARACTERS))}


def record_ground_truth(notes: dict) -> dict:
    """The numbers and sentences of :func:`ground_truth_notes` that the text quotes."""
    return {"tr_seed_gap": f"{notes['seed_gap']:.1f}", "tr_ft_sentence": notes["runs_sentence"],
            "tr_acc_range": f"{notes['spread']:.1f}", "tr_top_sentence": notes["top_sentence"]}


def face_terms(scores: pd.DataFrame) -> pd.DataFrame:
    """The two FaCe terms and FaCe per (target, member), to 3 decimals (:func:`with_face`)."""
    terms = with_face(scores)
    terms = terms[terms.metric.isin(["variance_collapse", "class_fairness", "face"])]
    return (terms.pivot_table(index=["target", "member"], columns="metric", values="value",
                              sort=False).rename(columns=SCORE_LABELS).round(3))


def record_tau(matrix: pd.DataFrame, intervals: pd.DataFrame, draws: pd.DataFrame,
               n_members: int, band_mean: float) -> dict:
    """How well the scores rank the zoo, as the text quotes it: the mean tau of FaCe, LogME,
    LEEP and of the best score (``matrix`` = :func:`tau_matrix`), FaCe's rank, the chance
    levels (one target, and ``band_mean`` for the mean over the targets), FaCe's interval over
    the bootstrap ``draws`` and the verdict on its claim (:func:`compare_to`,
    :func:`face_verdict`)."""
    means = matrix["mean"]
    best = means.idxmax()
    face_mean = means[SCORE_LABELS["face"]]
    comparison = compare_to("face", intervals, draws)
    verdict = face_verdict(comparison)
    face_iv = intervals.loc["face"]
    return {"tr_face_mean": f"{face_mean:.2f}",
            "tr_logme_mean": f"{means[SCORE_LABELS['logme']]:.2f}",
            "tr_leep_mean": f"{means[SCORE_LABELS['leep']]:.2f}",
            "tr_best_metric": best, "tr_best_mean": f"{means[best]:.2f}",
            "tr_face_rank": int((means > face_mean).sum()) + 1, "tr_n_metrics": len(means),
            "tr_band": f"{null_tau(n_members):.2f}", "tr_band_mean": f"{band_mean:.2f}",
            "tr_face_interval": (f"{face_iv['tau']:.2f} [{face_iv['low']:.2f}, "
                                 f"{face_iv['high']:.2f}]"),
            "tr_verdict_word": verdict["verdict"],
            "tr_verdict": verdict_sentence(verdict, comparison),
            "tr_detectable": f"{verdict['detectable']:.2f}", "tr_n_boot": len(draws)}


def noise_table(loo: pd.DataFrame, scores: pd.DataFrame, runs: pd.DataFrame, means: pd.Series,
                metrics=MAIN_METRICS) -> pd.DataFrame:
    """Per score (labelled): the mean tau over targets (``means``), its min and max when one
    member is left out (``loo`` = :func:`leave_one_out`) and, with several fine-tuning seeds,
    the tau against each seed alone (:func:`seed_taus`)."""
    noise = spread(loo).rename(index=SCORE_LABELS)
    noise.columns = ["tau, leave-one-model-out min", "max"]
    if runs["seed"].nunique() > 1:
        per_seed = seed_taus(scores, runs, metrics)
        by_seed = per_seed.groupby(["metric", "seed"])["tau"].mean().unstack("seed")
        by_seed.columns = [f"tau, seed {s} only" for s in by_seed.columns]
        noise = noise.join(by_seed.rename(index=SCORE_LABELS))
    noise.insert(0, "tau (mean over targets)", means)
    return noise


def record_noise(noise: pd.DataFrame) -> dict:
    """FaCe's smallest and largest mean tau with one member left out (:func:`noise_table`)."""
    face = noise.loc[SCORE_LABELS["face"]]
    return {"tr_face_loo_min": f"{face['tau, leave-one-model-out min']:.2f}",
            "tr_face_loo_max": f"{face['max']:.2f}"}


def record_ablation(ablation: pd.DataFrame, scores: pd.DataFrame, accuracy: pd.DataFrame,
                    runs: pd.DataFrame, n_boot: int = 2000, random_state: int = 0) -> dict:
    """The FaCe ablation as the text quotes it: the mean tau of each term, of their raw sum and
    of FaCe (``ablation`` = :func:`tau_table` of :data:`ABLATION`), the verdict of
    :func:`ablation_verdict` on :func:`tau_bootstrap` of ``runs`` in a word and in a sentence,
    and the member the fairness term rates fairest on average with its rank by fine-tuned
    accuracy."""
    draws = tau_bootstrap(scores, runs, ABLATION, n_boot=n_boot, random_state=random_state)
    intervals = tau_intervals(scores, runs, ABLATION, draws=draws)
    abl = ablation.groupby("metric")["tau"].mean()
    fair = (with_face(scores).query("metric == 'class_fairness'")
            .groupby("member")["value"].mean())
    acc_rank = accuracy.groupby("member")["accuracy"].mean().rank(ascending=False).astype(int)
    verdict, comparison = ablation_verdict(intervals, draws)
    return {"tr_abl_c": f"{abl['variance_collapse']:.2f}",
            "tr_abl_f": f"{abl['class_fairness']:.2f}", "tr_abl_raw": f"{abl['face_raw']:.2f}",
            "tr_abl_face": f"{abl['face']:.2f}", "tr_abl_verdict_word": verdict["verdict"],
            "tr_abl_verdict": ablation_sentence(comparison),
            "tr_fairest": fair.idxmax(), "tr_fairest_rank": int(acc_rank[fair.idxmax()])}


def ablation_verdict(intervals: pd.DataFrame, draws: pd.DataFrame,
                     confidence: float = 0.95) -> tuple[dict, pd.DataFrame]:
    """The claim "both FaCe terms matter": FaCe's mean tau against each term's alone
    (:func:`compare_to` on :data:`ABLATION_TERMS`), judged by :func:`face_verdict`'s rule:
    reproduced when FaCe is above both; (verdict, comparison)."""
    comparison = compare_to("face", intervals.loc[["face", *ABLATION_TERMS]], draws, confidence)
    return face_verdict(comparison), comparison


def depth_means(depth_tau: pd.DataFrame) -> pd.DataFrame:
    """Mean tau over targets per score (rows) and relative depth (columns), from
    :func:`tau_by_depth`."""
    return depth_tau.groupby(["metric", "rel_depth"])["tau"].mean().unstack("rel_depth")


def record_depth(by_depth: pd.DataFrame, grid: int) -> dict:
    """Which depth ranks the zoo best, as the text quotes it (``by_depth`` =
    :func:`depth_means`): averaged over the scores, against the last layer, and score by score."""
    mean = by_depth.mean()
    best_depth, last = mean.idxmax(), by_depth.columns.max()
    return {"tr_depth_grid": grid, "tr_best_depth": f"{best_depth:g}",
            "tr_best_depth_tau": f"{mean[best_depth]:.2f}",
            "tr_last_depth_tau": f"{mean[last]:.2f}",
            "tr_depth_sentence": "; ".join(
                f"{SCORE_LABELS[m]} {row.max():.2f} at depth {row.idxmax():g} ({row[last]:.2f} "
                "at the last layer)" for m, row in by_depth.iterrows())}


def record_published(published: pd.DataFrame, spread_points: float) -> dict:
    """The published benchmark as the text quotes it (``published`` = :func:`published_tau`):
    LogME's and LEEP's mean tau, the best score, and our spread of fine-tuned accuracy
    (``spread_points``, from :func:`ground_truth_notes`) against the benchmark's."""
    return {"tr_pub_logme": f"{published.loc['LogME', 'mean']:.2f}",
            "tr_pub_leep": f"{published.loc['LEEP', 'mean']:.2f}",
            "tr_pub_best": published["mean"].idxmax(),
            "tr_pub_best_mean": f"{published['mean'].max():.2f}",
            "tr_spread_sentence": spread_sentence(spread_points, published_accuracy())}


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

def plot_tau_heatmap(matrix: pd.DataFrame,
                     title: str = "weighted Kendall tau per target (last column: mean)", ax=None):
    """Heatmap of a metric x target tau matrix (diverging, -1..1), the mean column set apart."""
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=plots.fit_width(1.6 + 0.95 * matrix.shape[1],
                                                     0.8 + 0.4 * matrix.shape[0]))
    sns.heatmap(matrix.astype(float), annot=True, fmt=".2f", cmap="RdBu", vmin=-1, vmax=1,
                center=0, cbar=False, ax=ax, linewidths=0.5)
    if "mean" in matrix.columns:
        ax.axvline(list(matrix.columns).index("mean"), color="k", lw=2)
    ax.set_title(title)
    ax.set_xlabel("")
    ax.set_ylabel("")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    ax.figure.tight_layout()
    return ax.figure


def plot_scatter(scores: pd.DataFrame, accuracy: pd.DataFrame, target: str, metric: str, ax=None):
    """Oriented score vs fine-tuned accuracy of every member on one target, tau_w in the title."""
    oriented = with_face(scores[scores.target == target])
    g = oriented[oriented.metric == metric].merge(accuracy[accuracy.target == target],
                                                  on=["member", "target"])
    if g.empty:
        raise ValueError(f"no scores for metric {metric!r} on target {target!r}")
    tau = weighted_tau(g["value"].to_numpy(), g["accuracy"].to_numpy())
    if ax is None:
        _, ax = plt.subplots(figsize=(plots.PAGE_WIDTH, 3.6))
    markers = "osD^vP*Xph"
    colours = plots.palette(g["member"].tolist())
    for i, (_, r) in enumerate(g.iterrows()):
        ax.scatter(r["value"], 100 * r["accuracy"], s=55, marker=markers[i % len(markers)],
                   color=colours[r["member"]], label=r["member"], zorder=3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_xlabel(f"{SCORE_LABELS.get(metric, metric)} (frozen features)")
    ax.set_ylabel("fine-tuned accuracy (%)")
    ax.set_title(f"{target}: {SCORE_LABELS.get(metric, metric)}, tau_w = {tau:.2f}")
    ax.figure.tight_layout()
    return ax.figure


def ablation_sentence(comparison: pd.DataFrame) -> str:
    """:func:`ablation_verdict` in words: FaCe minus each term alone, with its interval."""
    words = {"higher": "FaCe above", "lower": "FaCe below"}
    return "; ".join(f"FaCe minus the {SCORE_LABELS[m]} alone: {r.effect:+.2f} "
                     f"[{r.low:+.2f}, {r.high:+.2f}] ({words.get(r.direction, r.direction)})"
                     for m, r in comparison.iterrows())


def spread_sentence(ours: float, published: pd.DataFrame) -> str:
    """Our mean spread of fine-tuned accuracy per target (points) against the benchmark's
    (``published_accuracy``), and what that means for ranking."""
    theirs = published.groupby("target")["finetune_top1"].agg(lambda a: a.max() - a.min())
    return (f"Our fine-tuned accuracies span {ours:.1f} points per target on average, the "
            f"benchmark's {theirs.mean():.1f} (median {theirs.median():.1f}): "
            + ("a wide spread is easier to rank, so our task is in that respect easier than the "
               "benchmark's." if ours > theirs.mean() else
               "close accuracies are hard to rank, so small ranking errors cost a lot of tau."))


def plot_tau_intervals(intervals: pd.DataFrame, band: float | None = None, claim: str = "face",
                       ax=None):
    """Mean tau of every score with its bootstrap interval (:func:`tau_intervals`), best at
    the top, ``claim`` highlighted; ``band``: the chance level of a mean over the targets."""
    t = intervals.iloc[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 0.3 * len(t) + 1.0))
    colors = ["C3" if m == claim else "0.35" for m in t.index]
    y = np.arange(len(t))
    ax.errorbar(t["tau"], y, xerr=[t["tau"] - t["low"], t["high"] - t["tau"]], fmt="none",
                ecolor=colors, elinewidth=1.6)
    ax.scatter(t["tau"], y, c=colors, zorder=3, s=22)
    ax.set_yticks(y, [SCORE_LABELS.get(m, m) for m in t.index])
    ax.axvline(0, color="k", lw=0.8)
    if band is not None:
        ax.axvline(band, color="0.5", ls="--", lw=0.9, label="95 % chance level")
        ax.legend(loc="lower right")
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("mean weighted Kendall tau over targets (95 % bootstrap interval)")
    ax.figure.tight_layout()
    return ax.figure


def verdict_sentence(verdict: dict, comparison: pd.DataFrame, claim: str = "face") -> str:
    """The verdict of :func:`face_verdict` in words: which scores ``claim`` beats, which beat
    it, with the differences and their intervals, and the smallest detectable difference."""
    label = SCORE_LABELS.get(claim, claim)

    def listed(metrics) -> str:
        return ", ".join(f"{SCORE_LABELS.get(m, m)} ({comparison.loc[m, 'effect']:+.2f} "
                         f"[{comparison.loc[m, 'low']:+.2f}, {comparison.loc[m, 'high']:+.2f}])"
                         for m in metrics)

    parts = {"reproduced": f"Reproduced: {label} ranks the zoo better than every other score.",
             "partly reproduced": f"Partly reproduced: {label} ranks better than some scores, "
                                  "and no difference is detected from the rest.",
             "not shown": f"Not shown: no score differs detectably from {label}.",
             "contradicted": f"Contradicted: some scores rank the zoo better than {label}."}
    text = [parts[verdict["verdict"]]]
    if verdict["above"]:
        text.append(f"{label} is above {listed(verdict['above'])}.")
    if verdict["below"]:
        text.append(f"{label} is below {listed(verdict['below'])}.")
    if verdict["tied"]:
        text.append(f"No difference is detected from {len(verdict['tied'])} scores: this run "
                    f"would detect a difference of about {verdict['detectable']:.2f} in mean "
                    "tau (80 % power, the median over those comparisons).")
    return " ".join(text)


def plot_ablation(tau: pd.DataFrame, ax=None):
    """Bars of tau per target for each FaCe term alone, their raw sum and FaCe (z-sum)."""
    import seaborn as sns

    t = tau[tau.metric.isin(ABLATION)].copy()
    mean = t.groupby("metric", as_index=False)["tau"].mean().assign(target="mean")
    t = pd.concat([t, mean], ignore_index=True)
    t["variant"] = t["metric"].map(SCORE_LABELS)
    if ax is None:
        _, ax = plt.subplots(figsize=(plots.PAGE_WIDTH, 3.6))
    sns.barplot(data=t, x="target", y="tau", hue="variant",
                hue_order=[SCORE_LABELS[m] for m in ABLATION], ax=ax)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("weighted Kendall tau")
    ax.set_xlabel("")
    ax.legend(ncol=2, loc="lower left")
    ax.set_title("FaCe ablation: each term alone vs their sum")
    ax.figure.tight_layout()
    return ax.figure


def plot_tau_by_depth(tau: pd.DataFrame, band: float | None = None, ax=None):
    """Mean tau over targets against relative depth, one line per metric (chance band dashed)."""
    import seaborn as sns

    t = tau.groupby(["rel_depth", "metric"], as_index=False)["tau"].mean()
    t["metric"] = t["metric"].map(SCORE_LABELS)
    if ax is None:
        _, ax = plt.subplots(figsize=(plots.PAGE_WIDTH, 3.6))
    sns.lineplot(data=t, x="rel_depth", y="tau", hue="metric", marker="o", ax=ax)
    if band is not None:
        ax.axhline(band, color="grey", ls="--", lw=1, label="chance, 95 %")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("relative depth of the scored layer (first = 0, last = 1)")
    ax.set_ylabel("mean tau_w over targets")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title("Which layer's features predict transfer?")
    ax.figure.tight_layout()
    return ax.figure


def plot_targets(data_sets: dict, seed: int = 0):
    """A strip of 14 training images per target of ``{name: (train, test)}``, one row each."""
    fig, axes = plt.subplots(len(data_sets), 1,
                             figsize=(plots.PAGE_WIDTH, 0.75 * len(data_sets) + 0.3))
    for ax, (name, (train, _)) in zip(np.atleast_1d(axes), data_sets.items()):
        idx = np.random.default_rng(seed).choice(len(train), size=min(14, len(train)),
                                                 replace=False)
        strip = np.concatenate([train.images[i].float().mean(0).numpy() for i in np.sort(idx)],
                               axis=1)
        ax.imshow(strip, cmap="gray")
        ax.set_axis_off()
        ax.set_title(name, fontsize=10, loc="left")
    fig.tight_layout()
    return fig


def explorer(scores: pd.DataFrame, accuracy: pd.DataFrame, targets, target: str, metric: str):
    """An ipywidgets explorer: choose a target and a score -> :func:`plot_scatter`. Needs a
    live kernel to react; the book shows the chapter's scatter figure."""
    import ipywidgets as widgets

    def show(target, metric):
        plot_scatter(scores, accuracy, target, metric)
        plt.show()

    return widgets.interactive(
        show,
        target=widgets.Dropdown(options=list(targets), value=target, description="target"),
        metric=widgets.Dropdown(options=[(SCORE_LABELS[m], m)
                                         for m in MAIN_METRICS + ABLATION[:3]],
                                value=metric, description="score"))
