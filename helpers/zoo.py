"""The offline default model zoo: timm architectures pre-trained here on glyph characters.

Each member is pre-trained once and cached (``$HELPERS_CACHE/zoo``); later calls load it.
Chapter 2 ranks the zoo, Chapters 1, 3 and 4 start from its members.
"""

from __future__ import annotations

import sys
import time

import pandas as pd
import torch

from . import cache
from .data import CHARACTERS, DIGITS, font_inventory, glyphs
from .jobs import run as jobs_run
from .models import create
from .names import did_you_mean
from .train import evaluate, fit

ZOO = {
    "resnet10t": {"arch": "resnet10t"},
    "resnet18": {"arch": "resnet18"},
    "convnext_atto": {"arch": "convnext_atto"},
    # a ViT from scratch stayed at chance with the CNNs' recipe (lr 2e-3, 3 epochs): it needs
    # warm-up, a lower lr, smaller batches and 4x the epochs. At the default scale (seeds 0, 1):
    # width 192 with 3 heads 63-66 %; width 128 with 8 heads 72-75 % in 55 % of the time
    # (4 heads 64 %, 2 heads 58 %; width 96 45-51 %); 6 blocks instead of 4 gave no gain
    "vit_tiny": {"arch": "vit_tiny_patch16_224",
                 "arch_kwargs": {"patch_size": 8, "depth": 4, "embed_dim": 128, "num_heads": 8},
                 "lr": 1e-3, "batch_size": 64, "warmup": 0.1, "epoch_factor": 4},
    "resnet10t_noaug": {"arch": "resnet10t", "augment": False},
    "resnet10t_digits": {"arch": "resnet10t", "chars": DIGITS},
    "smallcnn": {"arch": "smallcnn", "arch_kwargs": {"width": 32, "depth": 5}},
}
_BASE = {"chars": CHARACTERS, "augment": True, "resolution": 32, "arch_kwargs": {},
         "lr": 2e-3, "batch_size": 128, "warmup": 0.0, "seed": 0}
SCALES = {
    "smoke": {"images": 36 * 22 * 2, "epochs": 1},
    "default": {"images": 36 * 22 * 6, "epochs": 3},
    "large": {"images": 36 * 22 * 30, "epochs": 6},
}
MEAN = STD = (0.5, 0.5, 0.5)


def names() -> list[str]:
    """Members of the default zoo."""
    return list(ZOO)


def spec(name: str, scale: str = "default", **overrides) -> dict:
    """The full recipe of a member: architecture, source characters, augmentation, size, epochs.

    The number of source images is fixed by ``scale`` whatever the number of characters, so
    variants that differ in class count differ in nothing else (Chapter 3).
    """
    if name not in ZOO:
        raise ValueError(f"model: {name!r} is not in the zoo{did_you_mean(name, names())}; "
                         f"members: {names()}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {list(SCALES)}, got {scale!r}")
    out = {**_BASE, **SCALES[scale], **ZOO[name], **overrides}
    out["epochs"] *= out.pop("epoch_factor", 1)
    unknown = set(out) - set(_BASE) - set(SCALES["smoke"]) - {"arch"}
    if unknown:
        raise ValueError(f"unknown zoo settings {sorted(unknown)}; allowed: {sorted(_BASE)}")
    return out


def source_data(recipe: dict):
    """(train, test) glyph-character sets for a recipe (test: a different jitter seed), rendered
    once and cached: the members that differ only in architecture share them."""
    return cache.memo(render_source, recipe["chars"], recipe["images"], recipe["resolution"],
                      recipe["seed"], folder="zoo", depends_on=font_inventory())


def render_source(chars: str, images: int, resolution: int, seed: int):
    """The job behind :func:`source_data`: about ``images`` training images over the fonts
    that have every character, and 2 test images per (character, font)."""
    from .data import find_fonts

    per_pair = max(1, round(images / (len(chars) * len(find_fonts(chars=chars)))))
    kw = {"chars": chars, "resolution": resolution}
    return glyphs(per_pair=per_pair, seed=seed, **kw), glyphs(per_pair=2, seed=seed + 10_000, **kw)


def build(recipe: dict, num_classes: int | None = None, weights=None):
    """An untrained (or ``weights``-loaded) model for a recipe."""
    return create(recipe["arch"], num_classes or len(recipe["chars"]), weights=weights,
                  img_size=recipe["resolution"], mean=MEAN, std=STD, **recipe["arch_kwargs"])


def pretrain(name: str, scale: str = "default", progress: bool = True, **overrides):
    """(model, report) of a zoo member: pre-trained on glyph characters, or loaded from cache.

    The report holds the recipe, the source test accuracy and the training time.
    """
    recipe = spec(name, scale, **overrides)
    weights, report_file = _files(name, recipe)
    ckpt = weights.with_suffix(".ckpt")
    with cache.locked(weights):
        report = cache.verified_report(report_file, weights)
        if report:
            return build(recipe, weights=weights).eval(), report
        torch.manual_seed(recipe["seed"])
        model = build(recipe)
        train, test = source_data(recipe)
        tic = time.perf_counter()
        # tested once, at the end: testing after every epoch cost 5-11 % of a pre-training
        history = fit(model, train, None, epochs=recipe["epochs"], lr=recipe["lr"],
                      batch_size=recipe["batch_size"], warmup=recipe["warmup"],
                      augment=recipe["augment"],
                      seed=recipe["seed"], checkpoint=ckpt, progress=progress)
        seconds = time.perf_counter() - tic
        _, test_err = evaluate(model, test)
        cache.save_atomic(model.state_dict(), weights)
        report = {"name": name, "recipe": recipe,
                  "source_accuracy": 1 - test_err,
                  "params": sum(p.numel() for p in model.parameters()),
                  "train_images": len(train), "train_seconds": seconds,
                  "history": history.to_dict("records"), "sha256": cache.file_sha256(weights)}
        cache.write_json(report_file, report)
        ckpt.unlink(missing_ok=True)
    return model.eval(), report


def report(name: str, scale: str = "default", progress: bool = False, **overrides) -> dict:
    """A zoo member's report (recipe, source accuracy, parameters, training time), pre-training
    it if needed; a cached one is read without building the model (fast chapter reruns)."""
    weights, report_file = _files(name, spec(name, scale, **overrides))
    with cache.locked(weights):
        found = cache.verified_report(report_file, weights)
    if found and "params" in found:
        return found
    model, found = pretrain(name, scale, progress=progress, **overrides)
    return {**found, "params": sum(p.numel() for p in model.parameters())}


def recipe_key(recipe: dict) -> str:
    """What pins a member's pre-trained weights without loading them: its recipe and the code
    that trains it (:func:`pretrain`), as a cache key."""
    return cache.make_key(pretrain, kind="zoo", **recipe)


def _files(name: str, recipe: dict):
    stem = cache.cache_dir() / "zoo" / f"{name}-{recipe_key(recipe)}"
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def trained(name: str, scale: str = "default", **overrides) -> bool:
    """Whether a member's weights are cached: a cheap look at the files (:func:`pretrain`
    verifies their sha256 when it loads them)."""
    return all(f.exists() for f in _files(name, spec(name, scale, **overrides)))


def _pretrain_report(name: str, overrides: dict, scale: str) -> dict:
    return pretrain(name, scale, progress=False, **overrides)[1]


def pretrain_many(members, scale: str = "default", workers: int = 1) -> None:
    """Pre-train the members not yet cached in ``workers`` one-thread processes, the longest
    training (images x epochs) first so that the workers finish together. ``members``: names,
    or (name, overrides) pairs for variants of a member (e.g. ``{"resolution": 16, "seed": 1}``)."""
    wanted = [(m, {}) if isinstance(m, str) else (m[0], dict(m[1])) for m in members]
    todo = {recipe_key(spec(m, scale, **ov)): (m, ov) for m, ov in wanted
            if m in ZOO and not trained(m, scale, **ov)}
    if not todo:
        return
    names_ = ", ".join(m + "".join(f" {k}={v}" for k, v in ov.items()) for m, ov in todo.values())
    print(f"zoo: pre-training {names_} ({scale} scale, once)", file=sys.stderr, flush=True)
    work = {key: spec(m, scale, **ov)["images"] * spec(m, scale, **ov)["epochs"]
            for key, (m, ov) in todo.items()}
    jobs = [(*todo[key], scale) for key in sorted(todo, key=lambda k: -work[k])]
    jobs_run(_pretrain_report, jobs, workers, label="zoo pre-training")


def load(name: str, scale: str = "default", num_classes: int | None = None, progress: bool = True,
         **overrides):
    """(model, report) for a zoo member, or for any timm name with its hub weights (the full
    profile; needs internet once, then timm's own cache). ``num_classes`` swaps the head."""
    if name in ZOO:
        model, report = pretrain(name, scale, progress=progress, **overrides)
    else:
        model = create(name, 1000 if num_classes is None else num_classes, weights="hub").eval()
        return model, {"name": name, "recipe": {"arch": name}, "source_accuracy": None}
    if num_classes is not None:
        model.reset_classifier(num_classes)
    return model, report


def table(members=None, scale: str = "default", progress: bool = True,
          workers: int = 1) -> pd.DataFrame:
    """Pre-train (:func:`pretrain_many`) or load several members; one row each: architecture,
    classes, accuracy, training time."""
    members = list(members or names())
    pretrain_many(members, scale, workers)
    rows = []
    for name in members:
        r = report(name, scale, progress)
        rows.append({"member": name, "arch": r["recipe"]["arch"],
                     "source_classes": len(r["recipe"]["chars"]),
                     "augment": r["recipe"]["augment"],
                     "params_M": r["params"] / 1e6,
                     "source_accuracy": r["source_accuracy"],
                     "train_seconds": r["train_seconds"]})
    return pd.DataFrame(rows)
