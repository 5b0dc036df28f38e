"""One loop for pre-training, fine-tuning and training after frozen layers (Chapters 1-4), in
small steps (prepare a batch, one epoch, evaluate, save): AMP on GPU, a progress bar, per-epoch
history, a checkpoint every epoch and exact resume from it."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import cache
from .data import ImageSet
from .device import amp_dtype, autocast, get_device
from .models import frozen_layers, input_spec, predict_batches, preprocess, split

OPTIMIZERS = ("adamw", "adam", "sgd")
#: a frozen prefix's outputs are kept (and the prefix run once) up to this many bytes
PREFIX_CACHE_BYTES = 256 * 2**20
SCHEDULES = ("cosine", "constant")


def augment_batch(x: torch.Tensor, generator: torch.Generator, rotation: float = 10.0,
                  scale: float = 0.1, shift: float = 0.1) -> torch.Tensor:
    """Random affine jitter (rotation, scale, shift) drawn from ``generator``; on any device."""
    n = len(x)
    r = lambda: (torch.rand(n, generator=generator) * 2 - 1).to(x.device)
    angle = torch.deg2rad(r() * rotation)
    s = 1 + r() * scale
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, r() * shift * 2], 1),
                         torch.stack([sin, cos, r() * shift * 2], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def _check(epochs, lr, batch_size, optimizer, schedule, label_smoothing):
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    """AdamW (``"adamw"``), Adam (``"adam"``) or SGD with momentum (``"sgd"``), fused into one
    kernel per step where the parameters allow it (6x faster than the per-tensor loop on CPU)."""
    params = list(params)
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               fused=fused)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def _frozen_norms_eval(model: nn.Module) -> None:
    """Batch-norm layers whose parameters are all frozen keep their running statistics."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters())
            if params and not any(p.requires_grad for p in params):
                m.eval()


def evaluate(model: nn.Module, data: ImageSet, batch_size: int = 512, device=None) -> tuple[float, float]:
    """(mean cross-entropy, top-1 error) of ``model`` on ``data``."""
    loss, pred = _predict(model, data.images, data.labels, batch_size, device)
    return loss, (pred != data.labels).float().mean().item()


def _predict(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 512, device=None) -> tuple[float, torch.Tensor]:
    """(mean cross-entropy, predicted classes on the CPU) on uint8 images or prepared inputs."""
    loss, pred = 0.0, []
    for start, out in predict_batches(model, inputs, batch_size=batch_size, device=device):
        y = labels[start:start + len(out)].to(out.device)
        loss += F.cross_entropy(out, y, reduction="sum").item()
        pred.append(out.argmax(1).cpu())
    return loss / len(inputs), torch.cat(pred)


def _after_frozen_prefix(model: nn.Module, sets: list, device, augment: bool):
    """(network to train, inputs per set): the rest of ``model`` after its frozen leading
    layers with their outputs on ``sets`` computed once (:func:`helpers.models.split`), or
    ``model`` and None per set when nothing is frozen, the family has no split, the batches
    are augmented or the outputs would exceed :data:`PREFIX_CACHE_BYTES`."""
    found = None if augment else split(model, frozen_layers(model))
    if found is not None:
        prefix, rest = found
        first = predict_batches(model, sets[0].images[:1], prefix, device=device)
        one = next(first)[1]
        first.close()
        if one.numel() * 4 * sum(len(d) for d in sets if d is not None) <= PREFIX_CACHE_BYTES:
            return rest, [None if d is None else torch.cat(
                [out.float() for _, out in predict_batches(model, d.images, prefix, 1024, device)])
                for d in sets]
    return model, [None] * len(sets)


def prepare_batch(train: ImageSet, idx: torch.Tensor, spec: dict, device, augment: bool,
                  generator: torch.Generator, prepared: torch.Tensor | None = None):
    """(inputs, labels) of one training batch on ``device``: the kept outputs of a frozen
    prefix (``prepared``), or the images preprocessed and (``augment``) jittered."""
    y = train.labels[idx].to(device, non_blocking=True)
    if prepared is not None:
        return prepared[idx.to(prepared.device)], y
    x = train.images[idx]
    if device.type == "cuda":
        x = x.pin_memory()
    x = preprocess(x.to(device, non_blocking=True), spec)
    return (augment_batch(x, generator) if augment else x), y


def train_epoch(net: nn.Module, train: ImageSet, opt, sched, scaler, *, epoch: int, seed: int,
                batch_size: int, spec: dict, device, augment: bool, label_smoothing: float,
                prepared: torch.Tensor | None = None, bar=None) -> dict:
    """One pass over ``train`` in a seeded order: the running train_loss and train_err (in
    train mode, as the weights change)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    torch.manual_seed(seed * 100_003 + epoch)
    net.train()
    _frozen_norms_eval(net)
    perm = torch.randperm(len(train), generator=g)
    loss_sum = wrong = 0.0
    for step in range(math.ceil(len(train) / batch_size)):
        idx = perm[step * batch_size:(step + 1) * batch_size]
        x, y = prepare_batch(train, idx, spec, device, augment, g, prepared)
        with autocast(device):
            out = net(x)
            loss = F.cross_entropy(out.float(), y, label_smoothing=label_smoothing)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        loss_sum += loss.item() * len(idx)
        wrong += (out.argmax(1) != y).sum().item()
        if bar is not None:
            bar.update(1)
    return {"train_loss": loss_sum / len(train), "train_err": wrong / len(train)}


def _config_hash(**config) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _lr_factor(schedule: str, total: int, warm: int):
    """Learning-rate multiplier per step: linear warm-up over ``warm`` steps, then the schedule."""
    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
    return factor


def fit(model: nn.Module, train: ImageSet, test: ImageSet | None = None, *, epochs: int = 5,
        lr: float = 1e-3, batch_size: int = 128, optimizer: str = "adamw",
        weight_decay: float = 0.05, momentum: float = 0.9, schedule: str = "cosine",
        label_smoothing: float = 0.0, warmup: float = 0.0, augment: bool = False,
        checkpoint=None, checkpoint_every: float = 30.0, device=None, seed: int = 0,
        stop_at: float | None = None, eval_train: bool = False, progress: bool = True
        ) -> pd.DataFrame:
    """Train the parameters that require grad; return the per-epoch history.

    History columns: epoch, lr, train_loss, train_err (on the training labels as given),
    test_loss, test_err, seconds. With ``checkpoint`` (a path), the state is saved after every
    epoch and a rerun resumes from it (bit-identical on CPU); a finished run returns at once
    (its checkpoint keeps the weights and the history, not the optimizer's state).
    ``stop_at``: stop after the first epoch whose test accuracy reaches it (``epochs`` is then
    the most; the schedule still spans ``epochs``). ``eval_train``: train_loss and train_err
    measured after each epoch on the whole training set in evaluation mode (not the running
    values), and train_pred, the predicted classes. Frozen leading layers run once, not every
    epoch, when their family splits (:func:`helpers.models.split`) and nothing is augmented.
    """
    import time

    from tqdm.auto import tqdm

    _check(epochs, lr, batch_size, optimizer, schedule, label_smoothing)
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup must be a fraction of the steps in [0, 1), got {warmup!r}")
    if len(train) == 0:
        raise ValueError("train is empty")
    if stop_at is not None and (test is None or not 0 < stop_at <= 1):
        raise ValueError(f"stop_at must be a test accuracy in (0, 1] and needs a test set; "
                         f"got {stop_at!r}" + ("" if test is not None else " without a test set"))
    device = get_device(device)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("every parameter is frozen: nothing to train")
    opt = make_optimizer(optimizer, params, lr=lr, weight_decay=weight_decay, momentum=momentum)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(schedule, total, round(warmup * total)))
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype(device) == torch.float16)
    spec = input_spec(model)
    config = _config_hash(epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer,
                          weight_decay=weight_decay, momentum=momentum, schedule=schedule,
                          label_smoothing=label_smoothing, warmup=warmup, augment=augment, seed=seed,
                          stop_at=stop_at, train=train.fingerprint, test=test.fingerprint if test else None,
                          trainable=[n for n, p in model.named_parameters() if p.requires_grad],
                          eval_train=eval_train)
    history, start_epoch = [], 0
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state.get("config") == config:
            model.load_state_dict(state["model"])
            if "optimizer" in state:
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
            history, start_epoch = state["history"], state["epoch"]
    if start_epoch < epochs:
        net, (train_in, test_in) = _after_frozen_prefix(model, [train, test], device, augment)
    bar = tqdm(total=total, initial=start_epoch * steps_per_epoch, desc="fit", unit="step",
               disable=not progress, leave=False)
    saved = time.perf_counter()
    def reached() -> bool:
        return stop_at is not None and bool(history) and 1 - history[-1]["test_err"] >= stop_at

    for epoch in range(start_epoch, epochs):
        if reached():
            break
        tic = time.perf_counter()
        running = train_epoch(net, train, opt, sched, scaler, epoch=epoch, seed=seed,
                              batch_size=batch_size, spec=spec, device=device, augment=augment,
                              label_smoothing=label_smoothing, prepared=train_in, bar=bar)
        row = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], **running}
        if eval_train:
            row["train_loss"], pred = _predict(net, train.images if train_in is None else train_in,
                                               train.labels, device=device)
            row["train_err"] = (pred != train.labels).float().mean().item()
            row["train_pred"] = pred.numpy()
        if test is not None:
            loss, pred = _predict(net, test.images if test_in is None else test_in, test.labels,
                                  device=device)
            row["test_loss"], row["test_err"] = loss, (pred != test.labels).float().mean().item()
        row["seconds"] = time.perf_counter() - tic
        history.append(row)
        bar.set_postfix({k: round(v, 4) for k, v in row.items() if k.endswith("err")})
        finished = epoch + 1 == epochs or reached()
        if checkpoint and (finished or time.perf_counter() - saved >= checkpoint_every):
            saved = time.perf_counter()
            # nothing resumes a finished run: without Adam's two moments it is a third the size
            resume = {} if finished else {"optimizer": opt.state_dict(),
                                          "scheduler": sched.state_dict()}
            _save(checkpoint, {"model": model.state_dict(), **resume, "history": history,
                               "epoch": epoch + 1, "config": config})
    bar.close()
    model.eval()
    return pd.DataFrame(history)


def _save(path: Path, state: dict) -> None:
    cache.save_atomic(state, path)
