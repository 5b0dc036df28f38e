"""Splits (seen/unseen classes, train/test) and variations of a domain (Chapters 1, 3, 4)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .imageset import ImageSet


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def split_classes(data: ImageSet, unseen, seen=None, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """(seen, unseen) sets with disjoint classes.

    ``unseen``: class names, or a number of classes drawn with ``seed``. ``seen``: class
    names (default: all the others).
    """
    if isinstance(unseen, (int, np.integer)):
        if not 1 <= unseen < len(data.classes):
            raise ValueError(f"unseen must be in 1..{len(data.classes) - 1} classes, got {unseen}")
        unseen = sorted(_rng(seed).choice(data.classes, size=unseen, replace=False).tolist(),
                        key=data.classes.index)
    unseen = list(unseen)
    seen = [c for c in data.classes if c not in unseen] if seen is None else list(seen)
    overlap = sorted(set(seen) & set(unseen))
    if overlap:
        raise ValueError(f"unseen classes overlap the seen ones: {overlap}")
    if len(seen) < 2 or len(unseen) < 2:
        raise ValueError(f"need >= 2 seen and >= 2 unseen classes, got {len(seen)} and {len(unseen)}")
    return data.keep_classes(seen), data.keep_classes(unseen)


def train_test(data: ImageSet, test: float = 0.2, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Stratified split; ``test`` is a fraction or a number of images per class."""
    rng = _rng(seed)
    labels = data.labels.numpy()
    train_idx, test_idx = [], []
    for c in range(len(data.classes)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) == 0:
            raise ValueError(f"class {data.classes[c]!r} is empty")
        n = round(test * len(idx)) if isinstance(test, float) else int(test)
        if not 0 < n < len(idx):
            raise ValueError(f"test={test} leaves class {data.classes[c]!r} ({len(idx)} images) "
                             "without train or test images")
        test_idx.append(idx[:n])
        train_idx.append(idx[n:])
    return data.subset(np.sort(np.concatenate(train_idx))), data.subset(np.sort(np.concatenate(test_idx)))


def per_class(data: ImageSet, n: int, seed: int = 0) -> ImageSet:
    """``n`` images of every class, drawn with ``seed``."""
    rng = _rng(seed)
    labels = data.labels.numpy()
    counts = np.bincount(labels, minlength=len(data.classes))
    if n < 1 or n > counts.min():
        raise ValueError(f"n must be in 1..{counts.min()} (the smallest class), got {n}")
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), n, replace=False)
                          for c in range(len(data.classes))])
    return data.subset(np.sort(idx))


def _replace(data: ImageSet, images: torch.Tensor, suffix: str) -> ImageSet:
    return ImageSet(images, data.labels, list(data.classes), f"{data.domain}:{suffix}", dict(data.attrs))


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def resize(data: ImageSet, resolution: int) -> ImageSet:
    """All images at ``resolution`` x ``resolution``."""
    x = F.interpolate(data.images.float() / 255, size=(resolution, resolution), mode="bilinear",
                      antialias=True, align_corners=False)
    return _replace(data, _to_uint8(x), f"{resolution}px")


def rotate(data: ImageSet, degrees: float) -> ImageSet:
    """Every image rotated by ``degrees`` (counter-clockwise)."""
    t = torch.deg2rad(torch.tensor(float(degrees)))
    theta = torch.tensor([[torch.cos(t), -torch.sin(t), 0], [torch.sin(t), torch.cos(t), 0]])
    x = data.images.float() / 255
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    return _replace(data, _to_uint8(F.grid_sample(x, grid, align_corners=False)), f"rot{degrees:g}")


def add_noise(data: ImageSet, std: float, seed: int = 0) -> ImageSet:
    """Gaussian pixel noise of standard deviation ``std`` (pixel range [0, 1])."""
    g = torch.Generator().manual_seed(seed)
    x = data.images.float() / 255
    return _replace(data, _to_uint8((x + std * torch.randn(x.shape, generator=g)).clamp(0, 1)),
                    f"noise{std:g}")


def invert(data: ImageSet) -> ImageSet:
    """Black on white instead of white on black."""
    return _replace(data, 255 - data.images, "inverted")


def label_noise(data: ImageSet, rate: float, seed: int = 0) -> tuple[ImageSet, np.ndarray]:
    """Symmetric label noise: each label flipped with probability ``rate`` to another class.

    Returns the noisy set and the boolean mask of flipped labels (Chapter 4).
    """
    if not 0 <= rate < 1:
        raise ValueError(f"rate must be in [0, 1), got {rate}")
    rng = _rng(seed)
    labels = data.labels.numpy().copy()
    flipped = rng.random(len(labels)) < rate
    shift = rng.integers(1, len(data.classes), size=len(labels))
    labels[flipped] = (labels[flipped] + shift[flipped]) % len(data.classes)
    noisy = ImageSet(data.images, torch.from_numpy(labels), list(data.classes),
                     f"{data.domain}:noise{rate:g}", dict(data.attrs))
    return noisy, flipped
