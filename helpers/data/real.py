"""Real data sets for the full profile: torchvision sets by name, ImageFolder directories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..names import torchvision_datasets
from .imageset import ImageSet


def torchvision_names() -> list[str]:
    """Dataset classes that torchvision offers (valid names for :func:`torchvision_set`)."""
    return list(torchvision_datasets())


def _to_uint8(img, resolution: int) -> np.ndarray:
    img = img.convert("RGB").resize((resolution, resolution))
    return np.asarray(img).transpose(2, 0, 1)


def torchvision_set(name: str, root, train: bool = True, resolution: int | None = None,
                    download: bool = False) -> ImageSet:
    """A torchvision data set by class name (e.g. ``"CIFAR100"``), loaded into memory.

    ``download=True`` fetches it (needs internet); offline, point ``root`` at local files.
    """
    import torchvision.datasets as tvd

    if name not in torchvision_names():
        import difflib

        close = difflib.get_close_matches(name, torchvision_names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"dataset: unknown torchvision data set {name!r}{hint}")
    try:
        ds = getattr(tvd, name)(root=str(root), train=train, download=download)
    except RuntimeError as err:
        raise FileNotFoundError(f"dataset {name!r} not found under {root} ({err}); "
                                "pass download=True when online") from None
    classes = [str(c) for c in getattr(ds, "classes", sorted(set(map(int, ds.targets))))]
    if resolution is None and hasattr(ds, "data") and isinstance(ds.data, np.ndarray):
        data = ds.data if ds.data.ndim == 4 else ds.data[..., None]
        images = torch.from_numpy(np.ascontiguousarray(data.transpose(0, 3, 1, 2)))
    else:
        res = resolution or 32
        images = torch.from_numpy(np.stack([_to_uint8(ds[i][0], res) for i in range(len(ds))]))
    return ImageSet(images, torch.as_tensor(np.asarray(ds.targets)), classes, name.lower())


def image_folder(path, resolution: int = 224) -> ImageSet:
    """An ImageFolder tree (one sub-directory per class), resized and loaded into memory."""
    from torchvision.datasets import ImageFolder

    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"dataset path {path} does not exist or is not a directory")
    ds = ImageFolder(str(path), allow_empty=True)
    if len(ds) == 0:
        raise ValueError(f"dataset path {path} holds no images")
    counts = np.bincount(ds.targets, minlength=len(ds.classes))
    if (counts == 0).any():
        empty = [c for c, n in zip(ds.classes, counts) if n == 0]
        raise ValueError(f"dataset path {path}: empty classes {empty}")
    images = np.stack([_to_uint8(ds.loader(p), resolution) for p, _ in ds.samples])
    return ImageSet(torch.from_numpy(images), torch.as_tensor(ds.targets), list(ds.classes),
                    path.name)
