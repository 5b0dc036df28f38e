"""Real data sets for the full profile: torchvision sets by name, ImageFolder directories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..names import torchvision_datasets
from .imageset import ImageSet

#: Data sets torchvision can no longer download (it raises even when the files are there):
#: where to get them by hand.
MANUAL_DOWNLOAD = {"StanfordCars": "https://github.com/pytorch/vision/issues/7545"}


def torchvision_names() -> list[str]:
    """Dataset classes that torchvision offers (valid names for :func:`torchvision_set`)."""
    return list(torchvision_datasets())


def default_root() -> Path:
    """Where torchvision data sets live when a chapter names no ``data_root``."""
    return Path.home() / ".cache" / "torchvision"


def open_torchvision(name: str, root=None, download: bool = False, **kwargs):
    """``torchvision.datasets.<name>(root, **kwargs)``: the files under ``root`` as they are,
    downloaded only when they are missing and ``download`` is set.

    A set that is missing (or cannot be downloaded) is a one-line :class:`FileNotFoundError`
    naming it, the root and how to get it. (Asking torchvision for ``download=True`` first
    would fail for a set that is present but cannot be downloaded: StanfordCars.)
    """
    import torchvision.datasets as tvd

    root = Path(root or default_root()).expanduser()
    cls = getattr(tvd, name)
    try:
        return cls(root=str(root), download=False, **kwargs)
    except RuntimeError as err:  # torchvision's "Dataset not found (or corrupted)"
        reason = " ".join(str(err).split(".")[0].split())
    where = f"torchvision data set '{name}' is not under {root} ({reason})"
    if name in MANUAL_DOWNLOAD:
        raise FileNotFoundError(f"{where}; torchvision cannot download it: put it there by hand "
                                f"({MANUAL_DOWNLOAD[name]}) or leave it out") from None
    if not download:
        raise FileNotFoundError(f"{where}; set download=true (needs internet) or data_root to a "
                                "folder that holds it") from None
    try:
        return cls(root=str(root), download=True, **kwargs)
    except (RuntimeError, OSError) as err:  # no network: URLError is an OSError
        why = " ".join(str(err).split())[:200]
        raise FileNotFoundError(f"{where} and could not be downloaded ({why}); check the "
                                "network, or put its files there") from None


def require(names, root=None, download: bool = False) -> None:
    """Check, before any work, that every torchvision data set of ``names`` is under ``root``
    (downloading it if missing and ``download``): :func:`open_torchvision` for each."""
    known = set(torchvision_names())
    for name in dict.fromkeys(names):
        if name in known:
            open_torchvision(name, root, download)


def pil_to_uint8(img, resolution: int) -> np.ndarray:
    """A PIL image as a uint8 (3, resolution, resolution) array (RGB, resized)."""
    img = img.convert("RGB").resize((resolution, resolution))
    return np.asarray(img).transpose(2, 0, 1)


def torchvision_set(name: str, root, train: bool = True, resolution: int | None = None,
                    download: bool = False) -> ImageSet:
    """A torchvision data set by class name (e.g. ``"CIFAR100"``), loaded into memory.

    ``download=True`` fetches it (needs internet); offline, point ``root`` at local files.
    """
    if name not in torchvision_names():
        import difflib

        close = difflib.get_close_matches(name, torchvision_names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"dataset: unknown torchvision data set {name!r}{hint}")
    ds = open_torchvision(name, root, download, train=train)
    classes = [str(c) for c in getattr(ds, "classes", sorted(set(map(int, ds.targets))))]
    if resolution is None and hasattr(ds, "data") and isinstance(ds.data, np.ndarray):
        data = ds.data if ds.data.ndim == 4 else ds.data[..., None]
        images = torch.from_numpy(np.ascontiguousarray(data.transpose(0, 3, 1, 2)))
    else:
        res = resolution or 32
        images = torch.from_numpy(np.stack([pil_to_uint8(ds[i][0], res) for i in range(len(ds))]))
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
    images = np.stack([pil_to_uint8(ds.loader(p), resolution) for p, _ in ds.samples])
    return ImageSet(torch.from_numpy(images), torch.as_tensor(ds.targets), list(ds.classes),
                    path.name)
