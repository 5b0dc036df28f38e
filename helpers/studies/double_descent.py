"""Chapter 4 (``double_descent``): freezing-wise and epoch-wise double descent in transfer.

Dar, Luzi & Baraniuk, *Frozen Overparameterization* (arXiv:2211.11074): transfer a source
model to a target task whose training labels are noisy, keep the first ``k`` transferred layers
frozen and train the rest, for every ``k``. The test error per epoch (epoch-wise double
descent) and at the end against ``k`` (freezing-wise double descent) are the two curves.

The default setting is the width-parameterized :class:`helpers.models.SmallCNN` (blocks of equal
size, so that freezing one more block moves the trainable-parameter count by a fixed step and
the sweep over ``k`` crosses the number of training samples), pre-trained on glyph characters,
transferred to MNIST-5k digits. Every transfer run is cached (history + tail weights), so a
rerun with only analysis parameters changed loads them.

Speed: the frozen prefix is a fixed function (its batch norms keep their source statistics, no
augmentation), so for :class:`SmallCNN` its output is computed once per data set and only the
trainable tail is trained (:func:`transfer_run`); other architectures go through
:func:`helpers.train.fit` with :func:`helpers.models.freeze_first`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import string
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import cache, data, models, plots, train, zoo
from ..data import ImageSet
from ..device import one_thread
from ..jobs import run as jobs_run
from ..metrics.intervals import detectable_effect, mean_interval, welch_effect

CHAPTER = "double_descent"
#: glyph sources for the smallcnn family: name -> characters (the target is digits)
GLYPH_SOURCES = {"digits": data.DIGITS, "letters": string.ascii_uppercase,
                 "all": data.CHARACTERS}


# ---------------------------------------------------------------------------------------------
# source models and target data


def arch_kwargs(arch: str, width: int | None = None, depth: int | None = None) -> dict:
    """Width (and depth) of the architecture family: ``smallcnn`` takes ``width`` and
    ``depth``; a timm ResNet takes ``width`` as its stem width and first stage (stages
    ``w, 2w, 4w, 8w``, the width-parameterized ResNet-18 of the double-descent literature)."""
    if arch == models.SMALL_CNN:
        return {"width": int(width or 32), "depth": int(depth or 5)}
    if arch.startswith("resnet") and width:
        w = int(width)
        return {"channels": (w, 2 * w, 4 * w, 8 * w), "stem_width": w}
    return {}


def source_model(source: str = "digits", arch: str = "smallcnn", scale: str = "default",
                 width: int = 32, depth: int = 5, resolution: int = 32, epochs: int | None = None,
                 root=None, download: bool = False, progress: bool = False):
    """(model, report): the pre-trained source of the transfer.

    ``source``: a key of :data:`GLYPH_SOURCES` (``arch`` pre-trained by
    :func:`helpers.zoo.pretrain` on glyphs of those characters, the zoo's fixed image count);
    a torchvision data-set class (``arch`` pre-trained on its training split here, cached;
    the full profile); or a timm name with hub weights (``resnet18.tv_in1k``).
    """
    kw = arch_kwargs(arch, width, depth)
    if source in GLYPH_SOURCES:
        member = {models.SMALL_CNN: "smallcnn", "resnet10t": "resnet10t"}.get(arch)
        if member is None:
            raise ValueError(f"arch: glyph sources are pre-trained as 'smallcnn' or 'resnet10t', "
                             f"got {arch!r}")
        extra = {"arch_kwargs": kw} if member == "smallcnn" else {}
        over = {"epochs": int(epochs)} if epochs else {}
        return zoo.pretrain(member, scale, progress=progress, chars=GLYPH_SOURCES[source],
                            resolution=resolution, **extra, **over)
    if source in data.torchvision_names():
        train_set = data.load(source, resolution=resolution, root=root, download=download,
                              train=True)
        test_set = data.load(source, resolution=resolution, root=root, download=download,
                             train=False)
        return pretrain_source(arch, train_set, test_set, kw, resolution=resolution,
                               epochs=epochs or 30, progress=progress)
    model, report = zoo.load(source, scale, progress=progress)
    return model, report


def pretrain_source(arch: str, train_set: ImageSet, test_set: ImageSet, kwargs: dict | None = None,
                    resolution: int = 32, epochs: int = 30, lr: float = 2e-3,
                    batch_size: int = 128, seed: int = 0, progress: bool = False):
    """(model, report): ``arch`` trained from scratch on ``train_set`` (augmented, AdamW,
    cosine), cached (:func:`helpers.cache.memo`) by everything that determines it."""
    kwargs = dict(kwargs or {})
    out = cache.memo(train_source, arch, train_set, test_set, kwargs, resolution, epochs, lr,
                     batch_size, seed, progress, folder=CHAPTER)
    model = _source_net(arch, len(train_set.classes), resolution, kwargs)
    model.load_state_dict(out["state"])
    return model.eval(), out["report"]


def _source_net(arch: str, classes: int, resolution: int, kwargs: dict) -> nn.Module:
    return models.create(arch, classes, img_size=resolution, mean=zoo.MEAN, std=zoo.STD, **kwargs)


def train_source(arch: str, train_set: ImageSet, test_set: ImageSet, kwargs: dict,
                 resolution: int, epochs: int, lr: float, batch_size: int, seed: int,
                 progress: bool = False) -> dict:
    """The job behind :func:`pretrain_source`: {"state": weights, "report": ...}, resuming
    from its training checkpoint."""
    torch.manual_seed(seed)
    model = _source_net(arch, len(train_set.classes), resolution, kwargs)
    checkpoint = cache.checkpoint_file()
    hist = train.fit(model, train_set, test_set, epochs=epochs, lr=lr, batch_size=batch_size,
                     augment=True, seed=seed, checkpoint=checkpoint, progress=progress)
    if checkpoint:
        checkpoint.unlink(missing_ok=True)
    model.cpu()
    report = {"name": f"{arch}@{train_set.domain}", "recipe": {"arch": arch, **kwargs,
              "data": train_set.domain, "epochs": epochs}, "sha256": cache.weights_hash(model),
              "source_accuracy": 1 - float(hist["test_err"].iloc[-1]),
              "train_images": len(train_set)}
    return {"state": model.state_dict(), "report": report}


def target_data(name: str = "mnist5k", resolution: int = 32, test_per_class: int = 100,
                seed: int = 0, root=None, download: bool = False) -> tuple[ImageSet, ImageSet]:
    """(pool, test): the target domain split into a training pool and a fixed test set.

    ``test_per_class`` images of every class are held out (drawn with ``seed``); for a
    torchvision set (full profile) its own test split is used instead.
    """
    if name in data.domain_names():
        full = data.load(name, resolution=resolution)
        return data.train_test(full, test=int(test_per_class), seed=seed)
    kw = {"resolution": resolution, "root": root, "download": download}
    return data.load(name, train=True, **kw), data.load(name, train=False, **kw)


def noisy_subset(pool: ImageSet, size: int, noise: float, seed: int = 0
                 ) -> tuple[ImageSet, np.ndarray, ImageSet]:
    """(noisy train set, flipped mask, clean train set): ``size`` images, balanced over classes,
    with a fraction ``noise`` of symmetric label noise. Nested in ``seed`` only: the same
    seed gives the same images for every noise rate, so noise is the only change."""
    n_classes = len(pool.classes)
    per = size // n_classes
    if per < 1 or per * n_classes != size:
        raise ValueError(f"size must be a multiple of the {n_classes} classes, got {size}")
    clean = data.per_class(pool, per, seed=seed)
    noisy, flipped = data.label_noise(clean, noise, seed=seed + 7919)
    return noisy, flipped, clean


def parameter_counts(model: nn.Module, num_classes: int = 10) -> pd.DataFrame:
    """Trainable parameters after freezing the first ``k`` layers, for every ``k``
    (with a fresh ``num_classes`` head): columns k, layer, trainable."""
    m = copy.deepcopy(model)
    m.reset_classifier(num_classes)
    names = models.layer_names(m)
    rows = [{"k": k, "frozen_through": names[k - 1] if k else "(none)",
             "trainable": models.freeze_first(m, k)} for k in range(len(names) + 1)]
    return pd.DataFrame(rows)


def ks_crossing(counts: pd.DataFrame, sizes: Sequence[int]) -> dict[int, float]:
    """For each training-set size n, the (fractional) k at which trainable parameters = n,
    by linear interpolation of log(count) between the two neighbouring k; nan if never."""
    out = {}
    k, c = counts["k"].to_numpy(float), np.log(counts["trainable"].to_numpy(float))
    for n in sizes:
        out[int(n)] = float("nan")
        for i in range(len(k) - 1):
            if c[i] >= math.log(n) >= c[i + 1] and c[i] != c[i + 1]:
                out[int(n)] = k[i] + (c[i] - math.log(n)) / (c[i] - c[i + 1])
                break
    return out


# ---------------------------------------------------------------------------------------------
# one transfer run


def transfer_run(source: nn.Module, k: int, train_set: ImageSet, test_set: ImageSet,
                 clean_labels: torch.Tensor | None = None, *, epochs: int = 30,
                 lr: float = 1e-3, batch_size: int = 128, optimizer: str = "adam",
                 weight_decay: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Freeze the first ``k`` layers of a copy of ``source``, give it a fresh head (drawn with
    ``seed``), train the rest on ``train_set`` (its labels may be noisy) with a constant
    learning rate; return one row per epoch. Cached (:func:`helpers.cache.memo`): a rerun
    with the same source weights, data and settings loads the history.

    Columns: epoch, train_loss, train_err (on the labels trained on, eval mode),
    memorized (fraction of the flipped labels that the model reproduces; nan without noise),
    test_loss, test_err, seconds. ``clean_labels`` are the labels before noise.
    """
    if optimizer not in train.OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {train.OPTIMIZERS}, got {optimizer!r}")
    run = cache.memo(train_tail, source, k, train_set, test_set, clean_labels, seed,
                     folder=CHAPTER, epochs=epochs, lr=lr, batch_size=batch_size,
                     optimizer=optimizer, weight_decay=weight_decay)
    return pd.DataFrame(run["history"])


def train_tail(source: nn.Module, k: int, train_set: ImageSet, test_set: ImageSet,
               clean_labels: torch.Tensor | None = None, seed: int = 0, *, epochs: int = 30,
               lr: float = 1e-3, batch_size: int = 128, optimizer: str = "adam",
               weight_decay: float = 0.0) -> dict:
    """The job behind :func:`transfer_run`: {"history": rows, "state": the trained weights},
    trained by :func:`helpers.train.fit` (the frozen layers run once; resumed from its checkpoint
    beside this job's cache entry)."""
    torch.manual_seed(seed)
    model = copy.deepcopy(source).cpu()
    model.reset_classifier(len(train_set.classes))
    trainable = models.freeze_first(model, k)
    checkpoint = cache.checkpoint_file()
    hist = train.fit(model, train_set, test_set, epochs=epochs, lr=lr, batch_size=batch_size,
                     optimizer=optimizer, weight_decay=weight_decay, schedule="constant",
                     seed=seed, checkpoint=checkpoint, eval_train=True, progress=False)
    if checkpoint:
        checkpoint.unlink(missing_ok=True)
    pred = np.stack(hist.pop("train_pred"))  # (epochs, images)
    hist["memorized"] = float("nan")
    if clean_labels is not None and (flipped := (train_set.labels != clean_labels).numpy()).any():
        hist["memorized"] = (pred[:, flipped] == train_set.labels.numpy()[flipped]).mean(1)
    hist = hist.drop(columns=["lr"])
    hist["trainable"] = trainable
    return {"history": hist.to_dict("records"),
            "state": {n: p.cpu() for n, p in model.state_dict().items()}}


# ---------------------------------------------------------------------------------------------
# the grid of runs


def plan(sources: Sequence[str], sizes: Sequence[int], noises: Sequence[float],
         seeds: Sequence[int], ks: Sequence[int], compare_sizes: Sequence[int] | None = None,
         compare_noises: Sequence[float] | None = None) -> pd.DataFrame:
    """The runs of the chapter, one row each (source, size, noise, seed, k).

    The first source gets every size and noise rate; the other sources (the near/far
    comparison) only ``compare_sizes`` x ``compare_noises`` (default: the largest size and
    noise rate), to keep the grid within budget.
    """
    if not sources:
        raise ValueError("sources must name at least one source")
    compare_sizes = [max(sizes)] if not compare_sizes else list(compare_sizes)
    compare_noises = [max(noises)] if not compare_noises else list(compare_noises)
    rows = []
    for i, src in enumerate(sources):
        for n in (sizes if i == 0 else compare_sizes):
            for noise in (noises if i == 0 else compare_noises):
                for seed in seeds:
                    for k in ks:
                        rows.append({"source": src, "size": int(n), "noise": float(noise),
                                     "seed": int(seed), "k": int(k)})
    return pd.DataFrame(rows).drop_duplicates(ignore_index=True)


def run_plan(runs: pd.DataFrame, sources: dict, pool: ImageSet, test: ImageSet, *,
             epochs: int = 40, lr: float = 1e-3, batch_size: int = 128, optimizer: str = "adam",
             weight_decay: float = 0.0, workers: int = 1, progress: bool = True
             ) -> pd.DataFrame:
    """Run (or load from the cache) every row of ``runs``; return the per-epoch histories,
    one row per (run, epoch), with the run's settings, ``trainable`` and ``ratio`` =
    trainable parameters / training samples.

    ``sources``: name -> (model, report) from :func:`source_model`. The runs are independent
    cached jobs (:func:`helpers.jobs.run`, ``workers`` in flight, the longest first); on the
    CPU each runs on one torch thread: the small CNN's tiny convolutions run fastest so, and
    a busy CPU makes more threads much slower.
    """
    if optimizer not in train.OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {train.OPTIMIZERS}, got {optimizer!r}")
    cfg = {"epochs": int(epochs), "lr": float(lr), "batch_size": int(batch_size),
           "optimizer": optimizer, "weight_decay": float(weight_decay)}
    rows = list(runs.itertuples(index=False))
    subsets = {}
    for r in rows:
        if (r.size, r.noise, r.seed) not in subsets:
            subsets[r.size, r.noise, r.seed] = noisy_subset(pool, r.size, r.noise, seed=r.seed)
    jobs = [(sources[r.source][0], r.k, subsets[r.size, r.noise, r.seed][0], test,
             subsets[r.size, r.noise, r.seed][2].labels, r.seed) for r in rows]
    longest_first = sorted(range(len(rows)), key=lambda i: -rows[i].size * (6 - min(rows[i].k, 5)))
    tic = time.perf_counter()
    with one_thread() if not torch.cuda.is_available() else contextlib.nullcontext():
        results = jobs_run(train_tail, [jobs[i] for i in longest_first], workers, cache=CHAPTER,
                           label="double descent" if progress else None, **cfg)
    done = dict(zip(longest_first, results))
    if progress:
        print(f"double_descent: {len(jobs)} runs in {time.perf_counter() - tic:.0f} s",
              file=sys.stderr, flush=True)
    frames = [pd.DataFrame(done[i]["history"]).assign(**r._asdict()) for i, r in enumerate(rows)]
    out = pd.concat(frames, ignore_index=True)
    out["ratio"] = out["trainable"] / out["size"]
    return out


# ---------------------------------------------------------------------------------------------
# analysis: final errors, thresholds, the two double-descent tests


def fair_epochwise(params: Mapping[str, Any], progress: bool = True) -> pd.DataFrame:
    """The epoch-wise fair test of the chapter's parameters ``params`` (what
    :func:`helpers.chapters.setup` returns): the main source pre-trained as ``ew_arch`` (empty:
    ``arch``) at ``ew_resolution`` pixels (0: ``resolution``), every layer trained (k = 0) on
    each of ``ew_sizes`` target images at the largest noise rate, ``ew_epochs`` epochs, every
    seed; the per-epoch histories of :func:`run_plan` (cached, shared with the grid where the
    settings agree)."""
    p = params
    arch, res = p["ew_arch"] or p["arch"], p["ew_resolution"] or p["resolution"]
    where = {"root": p["data_root"] or None, "download": p["download"]}
    main = p["sources"][0]
    source = source_model(main, arch=arch, scale=p["scale"], width=p["width"], depth=p["depth"],
                          resolution=res, epochs=p["source_epochs"] or None, **where)
    pool, test = target_data(p["target"], resolution=res, test_per_class=p["test_per_class"],
                             seed=p["seed"], **where)
    runs = plan([main], p["ew_sizes"], [max(p["noises"])], p["seeds"], [0])
    return run_plan(runs, {main: source}, pool, test, epochs=p["ew_epochs"], lr=p["lr"],
                    batch_size=p["batch_size"], optimizer=p["optimizer"],
                    weight_decay=p["weight_decay"], workers=p["workers"], progress=progress
                    ).assign(arch=arch, resolution=res)


GROUP = ["source", "size", "noise"]


def final_errors(history: pd.DataFrame, last: int = 5) -> pd.DataFrame:
    """One row per run: test/train error and memorized fraction averaged over the ``last``
    epochs (Adam's epoch-to-epoch spikes average out), plus trainable and ratio."""
    top = history.groupby(GROUP + ["seed", "k"])["epoch"].transform("max")
    tail = history[history["epoch"] > top - last]
    keys = GROUP + ["seed", "k", "trainable", "ratio"]
    return (tail.groupby(keys, as_index=False)[["test_err", "train_err", "memorized"]].mean())


def seed_mean(table: pd.DataFrame, by: Sequence[str],
              values: Sequence[str] = ("test_err", "train_err", "memorized")) -> pd.DataFrame:
    """Mean, standard error (over seeds) and seed count of ``values`` per group ``by``."""
    g = table.groupby(list(by))
    out = g[list(values)].mean()
    se = g[list(values)].sem().fillna(0.0).add_suffix("_se")
    return pd.concat([out, se, g.size().rename("seeds")], axis=1).reset_index()


def interpolation_threshold(finals: pd.DataFrame, train_err: float = 0.02) -> pd.DataFrame:
    """Per (source, size, noise): the empirical interpolation threshold, i.e. the largest k
    (fewest trainable parameters) whose seed-mean final train error on the labels trained on
    is <= ``train_err``, with its trainable count and ratio; nan where no k interpolates."""
    m = seed_mean(finals, GROUP + ["k", "trainable", "ratio"])
    rows = []
    for key, g in m.groupby(GROUP):
        fit = g[g["train_err"] <= train_err]
        best = fit.sort_values("k").iloc[-1] if len(fit) else None
        rows.append(dict(zip(GROUP, key), k_interp=np.nan if best is None else int(best.k),
                         trainable_interp=np.nan if best is None else int(best.trainable),
                         ratio_interp=np.nan if best is None else float(best.ratio)))
    return pd.DataFrame(rows)


def freezing_wise(finals: pd.DataFrame, z: float = 2.0, min_effect: float = 0.01) -> pd.DataFrame:
    """The freezing-wise double-descent test per (source, size, noise).

    Test error against trainable parameters p (p falls as k rises). Double descent means a
    peak at some k* with lower error both at a smaller k (more parameters: the second
    descent) and at a larger k (fewer parameters: the classical side). ``bump`` = max over
    interior k* of min(err(k*) - min_{k<k*} err, err(k*) - min_{k>k*} err); it counts as shown
    when bump > ``z`` x the standard error (over seeds) of the differences and > ``min_effect``
    (one point of error by default). ``gain_full`` = err(k*) - err(smallest k): the second
    descent is *sustained* when training every layer is also clearly better than the peak.
    Also the best k and the worst k.
    """
    m = seed_mean(finals, GROUP + ["k", "trainable", "ratio"])
    rows = []
    for key, g in m.groupby(GROUP):
        g = g.sort_values("k")
        e, s, ks = g["test_err"].to_numpy(), g["test_err_se"].to_numpy(), g["k"].to_numpy()
        bump, k_peak, se_bump = -np.inf, np.nan, np.nan
        for i in range(1, len(e) - 1):
            left, right = np.argmin(e[:i]), i + 1 + np.argmin(e[i + 1:])
            b = min(e[i] - e[left], e[i] - e[right])
            if b > bump:
                bump, k_peak = b, int(ks[i])
                se_bump = math.sqrt(s[i] ** 2 + max(s[left], s[right]) ** 2)
        shown = bool(bump > z * se_bump and bump > min_effect)
        # does the error keep falling to the most trainable end (k = min) beyond the peak?
        i = int(np.flatnonzero(ks == k_peak)[0]) if not np.isnan(k_peak) else 0
        gain, gain_se = float(e[i] - e[0]), float(math.sqrt(s[i] ** 2 + s[0] ** 2))
        rows.append(dict(zip(GROUP, key), k_best=int(ks[np.argmin(e)]), err_best=float(e.min()),
                         k_worst=int(ks[np.argmax(e)]), err_worst=float(e.max()),
                         k_peak=k_peak, bump=float(bump), bump_se=float(se_bump), shown=shown,
                         gain_full=gain, gain_full_se=gain_se,
                         sustained=shown and gain > max(z * gain_se, min_effect)))
    return pd.DataFrame(rows)


def epoch_wise(history: pd.DataFrame, z: float = 2.0, last: int = 5,
               min_effect: float = 0.01) -> pd.DataFrame:
    """The epoch-wise double-descent test per (source, size, noise, k) on the seed-mean curve.

    ``early`` = the lowest test error before the peak, ``peak`` = the highest test error after
    that early minimum, ``final`` = the mean of the ``last`` epochs. Rise = peak - early,
    second descent = peak - final; shown when both exceed ``z`` x their standard error over
    seeds (per-seed values of the same epochs) and ``min_effect`` (one point of error).
    """
    rows = []
    for key, g in history.groupby(GROUP + ["k"]):
        curves = g.pivot_table(index="epoch", columns="seed", values="test_err")
        mean = curves.mean(axis=1).to_numpy()
        epochs = curves.index.to_numpy()
        n_last = min(last, len(mean))
        # the peak: highest point after the running minimum (largest rise)
        run_min = np.minimum.accumulate(mean)
        rise = mean - run_min
        i_peak = int(np.argmax(rise))
        if rise[i_peak] <= 0:  # never rises: the peak is the minimum itself (no rise)
            i_peak = int(np.argmin(mean))
        i_early = int(np.argmin(mean[:i_peak + 1]))
        final = mean[-n_last:].mean()
        per_seed = curves.to_numpy()
        rise_s = per_seed[i_peak] - per_seed[i_early]
        desc_s = per_seed[i_peak] - per_seed[-n_last:].mean(axis=0)
        sem = lambda x: x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else np.nan
        r, d = mean[i_peak] - mean[i_early], mean[i_peak] - final
        rows.append(dict(zip(GROUP + ["k"], key), early=float(mean[i_early]),
                         epoch_early=int(epochs[i_early]), peak=float(mean[i_peak]),
                         epoch_peak=int(epochs[i_peak]), final=float(final), rise=float(r),
                         rise_se=float(sem(rise_s)), descent=float(d),
                         descent_se=float(sem(desc_s)),
                         shown=bool(r > z * sem(rise_s) and d > z * sem(desc_s)
                                    and min(r, d) > min_effect)))
    return pd.DataFrame(rows)


def second_descent(history: pd.DataFrame, window: int = 5, fit_err: float = 0.02,
                   confidence: float = 0.95) -> pd.DataFrame:
    """The epoch-wise test with held-out seeds, one row per (source, size, noise, k).

    Each seed's test-error curve is smoothed by a trailing mean of ``window`` epochs (Adam's
    spikes average out). For each seed in turn the *other* seeds' mean curve fixes the early
    minimum and the peak after it (before the last window), so picking the highest of many
    noisy epochs does not inflate the held-out seed's values: its ``rise`` is its error at the
    peak minus at the early minimum, its ``descent`` the error at the peak minus its mean over
    the last ``window`` epochs. Each comes with Student's t interval over seeds and the
    smallest effect this many seeds detect (methods page, "Intervals and verdicts");
    ``descents`` keeps the per-seed values. ``epoch_fit``: the first epoch whose seed-mean
    train error is at most ``fit_err`` (the labels, noisy ones included, are interpolated).
    """
    rows = []
    for key, g in history.groupby(GROUP + ["k"]):
        curves = g.pivot_table(index="epoch", columns="seed", values="test_err")
        if len(curves) < 2 * window + 1:
            raise ValueError(f"window: {window} epochs leave no room for an early minimum, a "
                             f"peak and a final window in {len(curves)} epochs")
        smooth = curves.rolling(window, min_periods=1).mean().to_numpy()
        final = curves.to_numpy()[-window:].mean(axis=0)
        n = smooth.shape[1]
        rise, descent, peaks = [], [], []
        for s in range(n):
            others = np.delete(smooth, s, axis=1).mean(axis=1) if n > 1 else smooth[:, 0]
            end = len(others) - window
            early = int(np.argmin(others[:end]))
            peak = early + int(np.argmax(others[early:end]))
            rise.append(smooth[peak, s] - smooth[early, s])
            descent.append(smooth[peak, s] - final[s])
            peaks.append(int(curves.index[peak]))
        train = g.groupby("epoch")["train_err"].mean()
        fitted = train.index[train.to_numpy() <= fit_err]
        row = dict(zip(GROUP + ["k"], key), seeds=n, epochs=int(curves.index.max()),
                   epoch_peak=int(np.median(peaks)),
                   epoch_fit=float(fitted[0]) if len(fitted) else float("nan"),
                   final=float(final.mean()), descents=tuple(descent))
        for name, values in (("rise", rise), ("descent", descent)):
            mean, low, high = mean_interval(values, confidence)
            se = float(np.std(values, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
            row.update({name: mean, f"{name}_low": low, f"{name}_high": high,
                        f"{name}_detectable": detectable_effect(se, confidence)})
        rows.append(row)
    return pd.DataFrame(rows)


def epochwise_verdict(row: pd.Series, window: int = 5) -> str:
    """Claim 1 on one row of :func:`second_descent`: *not tested* when the noisy labels are
    not interpolated before the final window (the paper's precondition); *reproduced* when
    the rise and the second descent both have intervals above 0; *partly* when only the rise
    does; else *not shown*."""
    if not row.epoch_fit <= row.epochs - window:
        return "not tested (the noisy labels are not memorized in time)"
    if row.rise_low > 0:
        return "reproduced" if row.descent_low > 0 else "partly"
    return "not shown"


def size_effect(table: pd.DataFrame, small: int, big: int, confidence: float = 0.95) -> dict:
    """Claim 2: the second descent at ``big`` minus at ``small`` (rows of
    :func:`second_descent`, one noise rate and k) with Welch's interval over seeds, and the
    verdict: *reproduced* (above 0), *opposite* (below 0) or *no difference detected*."""
    a = table.loc[table["size"] == big, "descents"].iloc[0]
    b = table.loc[table["size"] == small, "descents"].iloc[0]
    e = welch_effect(a, b, confidence)
    verdict = ("reproduced" if e["low"] > 0 else "opposite" if e["high"] < 0
               else "no difference detected")
    return {**e, "detectable": detectable_effect(e["se"], confidence), "verdict": verdict}


def source_gap(finals: pd.DataFrame, near: str, far: str, size: int,
               confidence: float = 0.95) -> pd.DataFrame:
    """Near vs far source at training-set ``size``, per (noise, k): both seed-mean test errors
    and ``far - near`` with Welch's interval over seeds, at ``confidence`` shared by the k of
    one noise rate (Bonferroni: looking at every k must not find a difference by chance);
    ``better``: the source whose error is lower with the interval excluding 0 ("" if neither).
    """
    f = finals[finals["size"] == size]
    columns = ["noise", "k", near, far, "far - near", "low", "high", "better"]
    rows = []
    for noise, g in f.groupby("noise"):
        ks = sorted(set(g.k[g.source == near]) & set(g.k[g.source == far]))
        level = 1 - (1 - confidence) / max(len(ks), 1)
        for k in ks:
            a = g[(g.source == far) & (g.k == k)].test_err
            b = g[(g.source == near) & (g.k == k)].test_err
            e = welch_effect(a, b, level)
            rows.append({"noise": noise, "k": k, near: b.mean(), far: a.mean(),
                         "far - near": e["effect"], "low": e["low"], "high": e["high"],
                         "better": "far" if e["high"] < 0 else "near" if e["low"] > 0 else ""})
    return pd.DataFrame(rows, columns=columns).set_index(["noise", "k"])


#: "frozen layers decide interpolation": some k memorizes more than MEMORIZED of the flipped
#: labels and another less than FORGOTTEN
MEMORIZED, FORGOTTEN = 0.8, 0.2


def _verdict(ok: bool, partly: bool = False, otherwise: str = "not reproduced") -> str:
    """``otherwise``: "not shown" where the test looked for an effect and detected none (an
    interval that contains 0 does not exclude the paper's unstated effect size)."""
    return "reproduced" if ok else ("partly" if partly else otherwise)


def claims(fair: pd.DataFrame, fw: pd.DataFrame, finals: pd.DataFrame, main: str,
           noisy: float, gap: pd.DataFrame | None = None, window: int = 5) -> pd.DataFrame:
    """The chapter's verdicts on Dar et al.'s claims, one row each (claim, paper, ours,
    verdict), by rules fixed before the run (methods page, "Intervals and verdicts"):

    - epoch-wise double descent: :func:`epochwise_verdict` on the largest set of the fair test
      ``fair`` (:func:`second_descent` of :func:`fair_epochwise`);
    - larger target set, stronger: :func:`size_effect` between its smallest and largest set;
    - frozen layers decide interpolation: reproduced when some k memorizes > 80 % of the
      flipped labels and another < 20 %;
    - freezing-wise double descent: reproduced when a bump is sustained
      (:func:`freezing_wise`), partly when one is shown, else not shown;
    - a less related source can transfer better (``gap`` = :func:`source_gap`): reproduced
      when the far source's error is lower, with the interval excluding 0, at some (noise, k);
      else not shown.
    """
    n_big, n_small = int(fair["size"].max()), int(fair["size"].min())
    big = fair[fair["size"] == n_big].iloc[0]
    size = size_effect(fair, n_small, n_big) if n_small != n_big else None
    mem = memorized_by_k(finals, main, int(finals["size"].max()), noisy)
    noisy_fw = fw[(fw.source == main) & (fw.noise == noisy)]
    out = [
        {"claim (Dar et al.)": "epoch-wise double descent with label noise",
         "paper": "test error falls, rises, falls again",
         "ours": ours_epochwise(big),
         "verdict": epochwise_verdict(big, window)},
        {"claim (Dar et al.)": "larger target set, stronger epoch-wise double descent",
         "paper": "more significant for a larger target set",
         "ours": ours_size(size, n_small, n_big),
         "verdict": size["verdict"] if size else "not run (one size)"},
        {"claim (Dar et al.)": "frozen layers decide under- vs overparameterized",
         "paper": "k decides whether the target training interpolates",
         "ours": "flipped labels memorized: " + ", ".join(
             f"k={k}: {100 * v:.0f} %" for k, v in mem.items()),
         "verdict": _verdict(bool(mem.max() > MEMORIZED and mem.min() < FORGOTTEN))},
        {"claim (Dar et al.)": "freezing-wise double descent",
         "paper": "test error against k peaks near the threshold",
         "ours": "; ".join(f"n={int(r['size'])}: bump {100 * r.bump:.1f} +- "
                           f"{100 * r.bump_se:.1f} (detectable "
                           f"{100 * detectable_effect(r.bump_se):.1f}) at k={r.k_peak:.0f}, k=0 "
                           f"{_below(100 * r.gain_full)} it, best k={int(r.k_best)}"
                           for _, r in noisy_fw.iterrows()),
         "verdict": _verdict(bool(noisy_fw.sustained.any()), partly=bool(noisy_fw.shown.any()),
                             otherwise="not shown")},
    ]
    if gap is not None:
        out.append({"claim (Dar et al.)": "a less related source can transfer better",
                    "paper": "with too many frozen layers (overfreezing)",
                    "ours": ours_sources(gap),
                    "verdict": _verdict(bool((gap.better == "far").any()),
                                        otherwise="not shown")})
    return pd.DataFrame(out)


def _points(value: float, low: float, high: float) -> str:
    """An effect in points of error with its interval."""
    return f"{100 * value:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def ours_epochwise(row: pd.Series) -> str:
    """One row of :func:`second_descent` in words: rise and second descent with intervals."""
    return (f"n={int(row['size'])}: rise {_points(row.rise, row.rise_low, row.rise_high)}, "
            f"second descent {_points(row.descent, row.descent_low, row.descent_high)} points "
            f"(detectable {100 * row.descent_detectable:.1f}; "
            + (f"labels never fitted in {row.epochs} epochs)" if np.isnan(row.epoch_fit) else
               f"labels fitted by epoch {row.epoch_fit:.0f} of {row.epochs})"))


def ours_size(effect: dict | None, small: int, big: int) -> str:
    """:func:`size_effect` in words."""
    if effect is None:
        return "one training-set size"
    return (f"second descent at n={big} minus n={small}: "
            f"{_points(effect['effect'], effect['low'], effect['high'])} points "
            f"(detectable {100 * effect['detectable']:.1f})")


def ours_sources(gap: pd.DataFrame) -> str:
    """:func:`source_gap` in words: where the far source is better, or its closest call."""
    if gap.empty:
        return "no (noise, k) run from both sources"
    far = gap[gap.better == "far"]
    if len(far):
        return "far source better at " + "; ".join(f"noise {100 * nz:.0f} %, k={k}"
                                                   for nz, k in far.index)
    (nz, k), r = min(gap.iterrows(), key=lambda kv: kv[1]["far - near"])
    return (f"far source never detectably better; closest: noise {100 * nz:.0f} %, k={k}, "
            f"far - near {_points(r['far - near'], r.low, r.high)} points")


def memorized_by_k(finals: pd.DataFrame, source: str, size: int, noise: float) -> pd.Series:
    """Seed-mean share of the flipped training labels memorized at the end, per k."""
    m = seed_mean(finals[finals.source == source], GROUP + ["k", "trainable", "ratio"])
    return m[(m["size"] == size) & (m.noise == noise)].set_index("k")["memorized"]


def epochwise_sentences(ew: pd.DataFrame, main: str, noisy: float, k0: int) -> dict[str, str]:
    """The epoch-wise paragraph's two sentences: ``second`` (does the curve at ``k0`` and the
    largest size come down again?) and ``weak`` (which other k pass the test, and how far)."""
    main_ew = ew[ew.source == main].set_index(["size", "noise", "k"])
    n_big = main_ew.index.get_level_values("size").max()
    row = main_ew.loc[(n_big, noisy, k0)]
    big = main_ew.xs(noisy, level="noise").loc[n_big]
    passing = big[big.shown]
    strong = passing[passing.descent >= 0.5 * passing.rise]
    second = (f"comes down again after the peak, by {100 * row.descent:.1f} points" if row.shown
              else f"comes down by only {100 * row.descent:.1f} +- "
                   f"{100 * row.descent_se:.1f} points, too uncertain to count as a second "
                   "descent")
    if len(passing):
        weak = (f"At k = {', '.join(str(k) for k in passing.index)} the seed-mean curve does "
                f"come down again after its peak, by at most {100 * passing.descent.max():.1f} "
                f"points after {_span(100 * passing.rise, 'a rise', 'rises')}"
                + (": a weak second descent." if len(strong) == 0 else "."))
    else:
        weak = "No other k shows a second descent that passes the test either."
    return {"second": second, "weak": weak}


def _span(values: pd.Series, one: str, many: str) -> str:
    """``"a rise of 14.1"`` for one value (or equal ones), ``"rises of 9.0 to 14.1"`` else."""
    low, high = f"{values.min():.1f}", f"{values.max():.1f}"
    return f"{one} of {low}" if low == high else f"{many} of {low} to {high}"


def _below(points: float) -> str:
    """``"1.0 points below"`` for a positive difference, ``"1.0 points above"`` for a negative."""
    return f"{abs(points):.1f} points {'below' if points >= 0 else 'above'}"


def freezing_sentence(fw: pd.DataFrame, thresholds: pd.DataFrame, main: str, noisy: float) -> str:
    """The freezing-wise verdict in words: the largest bump shown at ``noisy`` and where it
    sits against the empirical interpolation threshold (:func:`interpolation_threshold`)."""
    shown = fw[(fw.source == main) & (fw.noise == noisy) & fw.shown]
    if not len(shown):
        return ("no interior peak with lower error on both sides that stands out from the "
                "seed-to-seed spread (see the bump in the table above)")
    r = shown.sort_values("bump").iloc[-1]
    t = thresholds[(thresholds.source == main) & (thresholds["size"] == r["size"])
                   & (thresholds.noise == noisy)].iloc[0]
    where = ("exactly at the empirical interpolation threshold" if r.k_peak == t.k_interp
             else f"while the empirical interpolation threshold is at k = {t.k_interp:.0f}")
    more = ("and training every layer is clearly better than the peak" if r.sustained else
            "but unfreezing still more layers does not keep lowering the error (k = 0 is "
            f"{100 * r.gain_full:.1f} +- {100 * r.gain_full_se:.1f} points below the peak)")
    return (f"a peak at k = {r.k_peak:.0f} for n = {int(r['size'])}, {where}, "
            f"{100 * r.bump:.1f} +- {100 * r.bump_se:.1f} points above the best k on "
            f"either side, {more}")


# ---------------------------------------------------------------------------------------------
# the chapter's tables and the numbers its text quotes (``glue_record``); the measures are
# defined on the methods page, section 4 (book/methods.md)


def record_protocol(params: Mapping[str, Any], test: ImageSet) -> dict:
    """The settings the protocol paragraph quotes, from the chapter's parameters ``params``
    (what :func:`helpers.chapters.setup` returns), and the size of the target test set."""
    return {"dd_width": params["width"], "dd_depth": params["depth"],
            "dd_res": params["resolution"], "dd_lr": f"{params['lr']:g}",
            "dd_bs": params["batch_size"], "dd_epochs": params["epochs"],
            "dd_last": params["last"], "dd_n_seeds": len(params["seeds"]),
            "dd_z": f"{params['z']:g}", "dd_test_n": len(test)}


def source_table(source_models: dict) -> pd.DataFrame:
    """One row per source of :func:`source_model`: its number of glyph classes (none for other
    sources) and its accuracy on its own test set."""
    return pd.DataFrame([{"source": s, "classes": len(r["recipe"].get("chars", "")) or None,
                          "source test accuracy": r["source_accuracy"]}
                         for s, (_, r) in source_models.items()]).round(3)


def ratio_table(counts: pd.DataFrame, sizes: Sequence[int]) -> pd.DataFrame:
    """:func:`parameter_counts` with the ratio p / n for each training-set size n."""
    return counts.assign(**{f"p/n, n={n}": counts["trainable"] / n for n in sizes}).round(3)


def record_thresholds(counts: pd.DataFrame, sizes: Sequence[int]) -> dict:
    """The trainable parameters with every layer trained and with the head alone, the number
    of layers L, and where the nominal threshold p = n is crossed for each size
    (:func:`ks_crossing`), or on which side of n every k stays."""
    p = counts["trainable"]

    def crossing(n, k):
        if not np.isnan(k):
            return f"crossed at k = {k:.1f} for n = {n}"
        return f"never crossed for n = {n} (p {'>' if n < p.min() else '<'} n at every k)"

    return {"dd_p_full": f"{p.iloc[0]:,}", "dd_p_head": f"{p.iloc[-1]:,}",
            "dd_L": int(counts["k"].max()),
            "dd_cross": ", ".join(crossing(n, k) for n, k in ks_crossing(counts, sizes).items())}


def record_grid(runs: pd.DataFrame, seconds: float) -> dict:
    """The number of transfer runs of the grid and the seconds they took."""
    return {"dd_n_runs": len(runs), "dd_grid_seconds": f"{seconds:.0f}"}


def epochwise_table(ew: pd.DataFrame, main: str) -> pd.DataFrame:
    """The epoch-wise test (:func:`epoch_wise`) of the ``main`` source per (size, noise, k)."""
    return (ew[ew.source == main].set_index(["size", "noise", "k"])
            [["early", "epoch_early", "peak", "epoch_peak", "final", "rise", "descent",
              "descent_se", "shown"]].round(3))


def record_epochwise(ew: pd.DataFrame, history: pd.DataFrame, main: str, noisy: float, k0: int,
                     last: int = 5) -> dict:
    """What the epoch-wise paragraph says of the ``main`` source at the noise rate ``noisy``:
    the curve at ``k0`` on the largest training set (early minimum, peak, final error, second
    descent, share of the flipped labels memorized over the ``last`` epochs), its rise and
    second descent on the smallest set, the rise without noise ("n/a" when noise 0 was not
    run) and the (size, k) that pass the test ("none" if none does)."""
    m = ew[ew.source == main].set_index(["size", "noise", "k"])
    sizes = m.index.get_level_values("size")
    n_big, n_small = int(sizes.max()), int(sizes.min())
    row, small = m.loc[(n_big, noisy, k0)], m.loc[(n_small, noisy, k0)]
    clean = 0.0 in m.index.get_level_values("noise")
    shown = m.xs(noisy, level="noise")
    memorized = (history[(history.source == main) & (history["size"] == n_big)
                         & (history.noise == noisy) & (history.k == k0)]
                 .groupby("epoch").memorized.mean())
    return {"dd_ew_early": f"{100 * row.early:.1f}", "dd_ew_early_epoch": int(row.epoch_early),
            "dd_ew_peak": f"{100 * row.peak:.1f}", "dd_ew_peak_epoch": int(row.epoch_peak),
            "dd_ew_final": f"{100 * row.final:.1f}", "dd_ew_descent": f"{100 * row.descent:.1f}",
            "dd_ew_descent_se": f"{100 * row.descent_se:.1f}",
            "dd_ew_noise": f"{100 * noisy:.0f}", "dd_n_big": n_big, "dd_n_small": n_small,
            "dd_k0": k0,
            "dd_ew_clean_rise": (f"{100 * m.loc[(n_big, 0.0, k0)].rise:.1f}" if clean
                                 else "n/a"),
            "dd_ew_small_rise": f"{100 * small.rise:.1f}",
            "dd_ew_small_descent": f"{100 * small.descent:.1f}",
            "dd_ew_big_rise": f"{100 * row.rise:.1f}",
            "dd_ew_shown_list": "; ".join(f"n = {n}, k = {k}" for (n, k), r in shown.iterrows()
                                          if r.shown) or "none",
            "dd_mem_final": f"{100 * memorized.iloc[-last:].mean():.0f}"}


def second_descent_table(fair: pd.DataFrame) -> pd.DataFrame:
    """:func:`second_descent` of the fair test, in points of error, one row per size."""
    cols = ["rise", "rise_low", "rise_high", "descent", "descent_low", "descent_high",
            "descent_detectable", "final"]
    t = fair.set_index("size")[["seeds", "epoch_fit", "epoch_peak", *cols]].copy()
    t[cols] = 100 * t[cols]
    return t.round(1)


def record_fair(fair: pd.DataFrame, history: pd.DataFrame, window: int) -> dict:
    """What the fair-test paragraph quotes: the network, its resolution, sizes, epochs, and on
    the largest set the epoch at which the labels are fitted, the peak epoch, the rise and
    the second descent with their intervals (points), and the verdict."""
    big = fair[fair["size"] == fair["size"].max()].iloc[0]
    return {"dd_fair_arch": str(history.arch.iloc[0]),
            "dd_fair_res": int(history.resolution.iloc[0]),
            "dd_fair_sizes": " and ".join(str(n) for n in sorted(fair["size"])),
            "dd_fair_epochs": int(big.epochs), "dd_fair_seeds": int(big.seeds),
            "dd_fair_n_runs": int(fair.seeds.sum()),
            "dd_fair_fit": "never" if np.isnan(big.epoch_fit) else int(big.epoch_fit),
            "dd_fair_peak": int(big.epoch_peak),
            "dd_fair_rise": _points(big.rise, big.rise_low, big.rise_high),
            "dd_fair_descent": _points(big.descent, big.descent_low, big.descent_high),
            "dd_fair_detectable": f"{100 * big.descent_detectable:.1f}",
            "dd_fair_final": f"{100 * big.final:.1f}",
            "dd_fair_verdict": epochwise_verdict(big, window)}


def freezing_table(fw: pd.DataFrame, thresholds: pd.DataFrame, main: str) -> pd.DataFrame:
    """The freezing-wise test (:func:`freezing_wise`) of the ``main`` source beside its
    empirical interpolation threshold (:func:`interpolation_threshold`)."""
    table = fw.merge(thresholds, on=GROUP)
    return table[table.source == main].round(3)


def record_freezing(fw: pd.DataFrame, thresholds: pd.DataFrame, finals: pd.DataFrame, main: str,
                    noisy: float) -> dict:
    """What the freezing-wise paragraph says of the ``main`` source on its largest training
    set: at ``noisy``, the best and worst k, the largest bump and its k ("none" without an
    interior k), the empirical threshold ("none" / "n/a" where no k interpolates), the share of
    flipped labels memorized per k; the settings whose bump passes the test ("none"); and the
    best and worst k without noise ("n/a" when noise 0 was not run)."""
    table = fw.merge(thresholds, on=GROUP)
    table = table[table.source == main]
    n_big = int(table["size"].max())
    big = table[table["size"] == n_big]
    f = big[big.noise == noisy].iloc[0]
    out = {"dd_fw_best_k": int(f.k_best), "dd_fw_best": f"{100 * f.err_best:.1f}",
           "dd_fw_worst_k": int(f.k_worst), "dd_fw_worst": f"{100 * f.err_worst:.1f}",
           "dd_fw_bump": f"{100 * f.bump:.1f}", "dd_fw_bump_se": f"{100 * f.bump_se:.1f}",
           "dd_fw_kpeak": "none" if np.isnan(f.k_peak) else int(f.k_peak),
           "dd_fw_kinterp": "none" if np.isnan(f.k_interp) else int(f.k_interp),
           "dd_fw_ratio_interp": "n/a" if np.isnan(f.ratio_interp) else f"{f.ratio_interp:.0f}",
           "dd_fw_shown_list": "; ".join(f"n = {r['size']}, noise {100 * r.noise:.0f} %"
                                         for _, r in fw[(fw.source == main) & fw.shown]
                                         .iterrows()) or "none",
           "dd_mem_by_k": ", ".join(f"k = {k}: {100 * v:.0f} %" for k, v in
                                    memorized_by_k(finals, main, n_big, noisy).items())}
    clean = big[big.noise == 0.0]
    c = clean.iloc[0] if len(clean) else None
    out["dd_fw_clean_best_k"] = "n/a" if c is None else int(c.k_best)
    out["dd_fw_clean_best"] = "n/a" if c is None else f"{100 * c.err_best:.1f}"
    out["dd_fw_clean_worst"] = "n/a" if c is None else f"{100 * c.err_worst:.1f}"
    return out


def near_far(finals: pd.DataFrame, sources: Sequence[str], compare_sizes: Sequence[int]
             ) -> tuple[int, pd.DataFrame | None]:
    """(size, gap): the first source against the second at the largest of ``compare_sizes``
    (:func:`source_gap`); with one source, (the largest training-set size, None)."""
    if len(sources) < 2:
        return int(finals["size"].max()), None
    size = int(max(compare_sizes))
    return size, source_gap(finals, sources[0], sources[1], size)


def record_sources(finals: pd.DataFrame, gap: pd.DataFrame | None, size: int, noisy: float
                   ) -> dict:
    """What the near-vs-far paragraph says: the training-set ``size`` compared, the (noise, k)
    where each source is better (:func:`source_gap` ``gap``, near source first; "none"), and
    each source's lowest seed-mean error over k at ``noisy`` ("n/a" when not run there);
    "n/a (one source)" for all but the size when ``gap`` is None."""
    if gap is None:
        return {"dd_n_cmp": size} | dict.fromkeys(
            ("dd_far_better", "dd_near_better", "dd_best_near", "dd_best_far"), "n/a (one source)")
    out = {"dd_n_cmp": size}
    for side in ("far", "near"):
        out[f"dd_{side}_better"] = "; ".join(f"noise {100 * nz:.0f} %, k = {k}"
                                             for nz, k in gap[gap.better == side].index) or "none"
    m = seed_mean(finals[finals["size"] == size], GROUP + ["k"])
    for side, src in zip(("near", "far"), gap.columns[:2]):
        err = m[(m.source == src) & (m.noise == noisy)].test_err
        out[f"dd_best_{side}"] = f"{100 * err.min():.1f}" if len(err) else "n/a"
    return out


def regime_sentence(verdict: str) -> str:
    """The closing paragraph's first sentence, as strong as the verdict on "frozen layers decide
    under- vs overparameterized" (:func:`claims`) allows."""
    regimes = ("an underparameterized regime (the trainable part cannot memorize the flipped "
               "labels, the test error stays low) and an overparameterized one (the flipped labels "
               "are memorized and the test error rises)")
    if verdict == "reproduced":
        return f"The number of frozen layers does switch the transfer between {regimes}"
    return (f"The number of frozen layers did not switch the transfer cleanly between {regimes}: "
            f"no k memorized more than {MEMORIZED:.0%} of the flipped labels while another "
            f"memorized less than {FORGOTTEN:.0%}")


def record_claims(claims_table: pd.DataFrame, ew: pd.DataFrame, fw: pd.DataFrame,
                  thresholds: pd.DataFrame, main: str, noisy: float, k0: int) -> dict:
    """The verdicts of :func:`claims` (``dd_verdict_<row>``; the source claim "not run (one
    source)" without a far source), its "ours" column for the book's first page, and the
    sentences of the closing paragraph
    (:func:`regime_sentence`, :func:`epochwise_sentences`, :func:`freezing_sentence`)."""
    out = {f"dd_verdict_{i}": c.verdict for i, c in claims_table.iterrows()}
    ours = claims_table.ours.tolist() + ["not run (one source)"] * (5 - len(claims_table))
    out |= {"dd_ew_summary": ours[0], "dd_size_summary": ours[1], "dd_fw_summary": ours[3],
            "dd_src_summary": ours[4]}
    if len(claims_table) < 5:
        out["dd_verdict_4"] = "not run (one source)"
    sentences = epochwise_sentences(ew, main, noisy, k0)
    return out | {"dd_regime_sentence": regime_sentence(claims_table.verdict.iloc[2]),
                  "dd_second_sentence": sentences["second"],
                  "dd_ew_weak_sentence": sentences["weak"],
                  "dd_fw_sentence": freezing_sentence(fw, thresholds, main, noisy)}


# ---------------------------------------------------------------------------------------------
# figures


def _noise_label(noise: float) -> str:
    return f"{100 * noise:.0f} % label noise" + (" (control)" if noise == 0 else "")


def plot_epochwise(history: pd.DataFrame, source: str, size: int, ks: Sequence[int] | None = None,
                   seed: int | None = None):
    """Test error (top) and train error on the labels trained on (bottom) per epoch, one
    line per k, one column per noise rate; seed mean with a +-1 s.e. band, or one ``seed``."""
    import matplotlib.pyplot as plt

    h = history[(history["source"] == source) & (history["size"] == size)]
    if seed is not None:
        h = h[h["seed"] == seed]
    ks = sorted(h["k"].unique()) if ks is None else list(ks)
    noises = sorted(h["noise"].unique())
    fig, axes = plt.subplots(2, len(noises), figsize=plots.fit_width(4.6 * len(noises), 5.4),
                             sharex=True, sharey="row", squeeze=False)
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(ks), 2)))
    for j, noise in enumerate(noises):
        for c, k in zip(colors, ks):
            g = h[(h["noise"] == noise) & (h["k"] == k)]
            if g.empty:
                continue
            for i, col in enumerate(["test_err", "train_err"]):
                s = g.groupby("epoch")[col]
                mean, se = s.mean(), s.sem().fillna(0)
                label = f"k={k} ({int(g['trainable'].iloc[0]):,} trainable)"
                axes[i, j].plot(mean.index, mean, color=c, lw=1.6, label=label)
                axes[i, j].fill_between(mean.index, mean - se, mean + se, color=c, alpha=0.2, lw=0)
        axes[0, j].set_title(f"n = {size}, {_noise_label(noise)}")
        axes[1, j].set_xlabel("epoch")
    late = h[h["epoch"] > 2].groupby(["noise", "k", "epoch"])["test_err"].mean()
    if len(late):
        axes[0, 0].set_ylim(0, min(1.0, 1.15 * late.max()))  # the first epochs of k=L go off
    axes[0, 0].set_ylabel("test error")
    axes[1, 0].set_ylabel("train error (labels trained on)")
    axes[0, -1].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Epoch-wise curves, source '{source}'" +
                 (f", seed {seed}" if seed is not None else ", mean over seeds +- 1 s.e."))
    fig.tight_layout()
    return fig


def plot_fair(history: pd.DataFrame, fair: pd.DataFrame):
    """The fair test's curves: test error (left) and train error on the labels trained on
    (right) per epoch, one line per training-set size (seed mean, band: +-1 s.e.), the
    held-out peak epoch marked."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(plots.PAGE_WIDTH, 3.0), sharex=True)
    colors = plots.palette(sorted(history["size"].unique()))
    for size, g in history.groupby("size"):
        color = colors[size]
        for ax, col in zip(axes, ["test_err", "train_err"]):
            stats_ = g.groupby("epoch")[col].agg(["mean", "sem"]).fillna(0)
            ax.plot(stats_.index, stats_["mean"], color=color, label=f"n = {size}")
            ax.fill_between(stats_.index, stats_["mean"] - stats_["sem"],
                            stats_["mean"] + stats_["sem"], color=color, alpha=0.2, lw=0)
        peak = fair.loc[fair["size"] == size, "epoch_peak"].iloc[0]
        axes[0].axvline(peak, color=color, ls=":", lw=1)
    axes[0].set(xlabel="epoch", ylabel="test error")
    axes[1].set(xlabel="epoch", ylabel="train error (noisy labels)")
    axes[0].legend()
    fig.tight_layout()
    return fig


def plot_freezing(finals: pd.DataFrame, source: str, thresholds: pd.DataFrame | None = None,
                  x: str = "ratio"):
    """Final test error (top) and final train error on the noisy labels (bottom) against
    ``x`` = ``"ratio"`` (trainable parameters / training samples, log scale; the dashed line
    is ratio 1) or ``"k"``, one line per training-set size, one column per noise rate.
    Open circles: the empirical interpolation threshold (largest k that fits the labels)."""
    import matplotlib.pyplot as plt

    f = finals[finals["source"] == source]
    m = seed_mean(f, GROUP + ["k", "trainable", "ratio"])
    noises, sizes = sorted(m["noise"].unique()), sorted(m["size"].unique())
    fig, axes = plt.subplots(2, len(noises), figsize=plots.fit_width(4.6 * len(noises), 5.6),
                             sharex=True, sharey="row", squeeze=False)
    colors = plt.cm.plasma(np.linspace(0.1, 0.8, max(len(sizes), 2)))
    for j, noise in enumerate(noises):
        for c, n in zip(colors, sizes):
            g = m[(m["noise"] == noise) & (m["size"] == n)].sort_values("k")
            for i, col in enumerate(["test_err", "train_err"]):
                axes[i, j].errorbar(g[x], g[col], yerr=g[col + "_se"], color=c, marker="o",
                                    ms=4, capsize=2, lw=1.5, label=f"n = {n}")
            if thresholds is not None:
                t = thresholds[(thresholds["source"] == source) & (thresholds["noise"] == noise)
                               & (thresholds["size"] == n)]
                if len(t) and not np.isnan(t["k_interp"].iloc[0]):
                    row = g[g["k"] == t["k_interp"].iloc[0]]
                    axes[0, j].plot(row[x], row["test_err"], "o", ms=11, mfc="none", color=c)
        for i in range(2):
            if x == "ratio":
                axes[i, j].set_xscale("log")
                axes[i, j].axvline(1.0, color="k", ls="--", lw=1)
        axes[0, j].set_title(_noise_label(noise))
        axes[1, j].set_xlabel("trainable parameters / training samples" if x == "ratio"
                              else "k = frozen layers")
    axes[0, 0].set_ylabel("final test error")
    axes[1, 0].set_ylabel("final train error\n(noisy labels)")
    axes[0, -1].legend()
    fig.suptitle(f"Freezing-wise curves, source '{source}'\n(mean over seeds +- 1 s.e.; "
                 "circle: interpolation threshold)")
    fig.tight_layout()
    return fig


def plot_sources(finals: pd.DataFrame, size: int):
    """Final test error against k for each source (near vs far), one column per noise rate."""
    import matplotlib.pyplot as plt

    m = seed_mean(finals[finals["size"] == size], GROUP + ["k"])
    noises = sorted(m["noise"].unique())
    fig, axes = plt.subplots(1, len(noises), figsize=plots.fit_width(4.6 * len(noises), 3.2),
                             sharey=True, squeeze=False)
    for j, noise in enumerate(noises):
        for src, g in m[m["noise"] == noise].groupby("source", sort=False):
            g = g.sort_values("k")
            axes[0, j].errorbar(g["k"], g["test_err"], yerr=g["test_err_se"], marker="o", ms=4,
                                capsize=2, label=f"source: {src}")
        axes[0, j].set_title(f"n = {size}, {_noise_label(noise)}")
        axes[0, j].set_xlabel("k = frozen layers")
    axes[0, 0].set_ylabel("final test error")
    axes[0, -1].legend()
    fig.tight_layout()
    return fig


def explore(history: pd.DataFrame, size: int, noise: float, average: bool = True,
            frozen: Sequence[int] | None = None, source: str | None = None) -> None:
    """Show :func:`plot_explored` of this choice, or say that no run made it."""
    import matplotlib.pyplot as plt

    if plot_explored(history, size, noise, average, frozen, source) is None:
        print("no runs for this choice (the far source runs only at compare_sizes)")
        return
    plt.show()


def plot_explored(history: pd.DataFrame, size: int, noise: float, average: bool = True,
                  frozen: Sequence[int] | None = None, source: str | None = None):
    """Test error and train error on the labels trained on, per epoch, of one (source, size,
    noise) for each k in ``frozen`` (default: every k), one color per k: the seed mean with a
    +-1 s.e. band when ``average``, else every seed on its own. ``source``: default the first
    source of ``history``. None when no run has this choice."""
    import matplotlib.pyplot as plt

    source = history["source"].iloc[0] if source is None else source
    ks = sorted(history["k"].unique().tolist())
    frozen = ks if frozen is None else frozen
    h = history[(history["source"] == source) & (history["size"] == size)
                & (history["noise"] == noise) & history["k"].isin(frozen)]
    if h.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(plots.PAGE_WIDTH, 3.0), sharex=True)
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(ks), 2)))
    for k, g in h.groupby("k"):
        c = colors[ks.index(k)]
        for ax, col in zip(axes, ["test_err", "train_err"]):
            if average:
                s = g.groupby("epoch")[col]
                mean, se = s.mean(), s.sem().fillna(0)
                ax.plot(mean.index, mean, color=c, label=f"k={k}")
                ax.fill_between(mean.index, mean - se, mean + se, color=c, alpha=0.2, lw=0)
            else:
                for sd, gs in g.groupby("seed"):
                    ax.plot(gs["epoch"], gs[col], color=c, lw=1, alpha=0.8,
                            label=f"k={k}" if sd == g["seed"].min() else None)
    axes[0].set(xlabel="epoch", ylabel="test error",
                title=f"{source}, n={size}, noise {100 * noise:.0f} %")
    axes[1].set(xlabel="epoch", ylabel="train error (labels trained on)")
    axes[0].legend()
    fig.tight_layout()
    return fig


def explorer(history: pd.DataFrame, main: str):
    """An ipywidgets explorer: choose the training-set size, the noise rate, seed means or
    single seeds, the k drawn and the source -> :func:`explore`. Needs a live kernel to react;
    the book shows its first state (the ``main`` source's largest size and noise rate, every
    k)."""
    import ipywidgets as widgets

    own = history[history["source"] == main]
    sizes, noises = sorted(own["size"].unique().tolist()), sorted(own["noise"].unique().tolist())
    ks = sorted(history["k"].unique().tolist())

    def show(size, noise, average, frozen, source):
        explore(history, size, noise, average, frozen, source)

    return widgets.interactive(
        show,
        size=widgets.Dropdown(options=sizes, value=sizes[-1], description="n"),
        noise=widgets.Dropdown(options=noises, value=noises[-1], description="noise"),
        average=widgets.Checkbox(value=True, description="average seeds"),
        frozen=widgets.SelectMultiple(options=ks, value=tuple(ks), description="k"),
        source=widgets.Dropdown(options=list(dict.fromkeys(history["source"])), value=main,
                                description="source"))
