"""Real data sets for the full profile: torchvision sets by name, ImageFolder directories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..names import did_you_mean, torchvision_datasets
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
    import inspect

    import torchvision.datasets as tvd

    root = Path(root or default_root()).expanduser()
    cls = getattr(tvd, name)
    params = inspect.signature(cls.__init__).parameters
    if "root" in params:
        kwargs["root"] = str(root)
    if "download" not in params:  # a generated set (FakeData): nothing to find or fetch
        return cls(**kwargs)
    try:
        return cls(download=False, **kwargs)
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
        return cls(download=True, **kwargs)
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
    """A PIL image (or a CHW tensor) as a uint8 (3, resolution, resolution) array: the shorter
    side resized to ``resolution`` (bilinear), then the centre crop: torchvision's and timm's
    evaluation transform, so a non-square image keeps its aspect ratio. The one resize policy
    of every real data set (see the book's methods page)."""
    from PIL import Image

    if isinstance(img, torch.Tensor):
        arr = img.detach().cpu().numpy()
        arr = (arr * 255 if arr.dtype.kind == "f" else arr).clip(0, 255).astype(np.uint8)
        img = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
    img = img.convert("RGB")
    w, h = img.size
    scale = resolution / min(w, h)
    img = img.resize((max(resolution, round(w * scale)), max(resolution, round(h * scale))),
                     Image.BILINEAR)
    left, top = (img.size[0] - resolution) // 2, (img.size[1] - resolution) // 2
    img = img.crop((left, top, left + resolution, top + resolution))
    return np.asarray(img).transpose(2, 0, 1).copy()


def _open_split(name: str, root, train: bool, download: bool):
    """The training (``train=True``; split "trainval", else "train") or evaluation split
    (``train=False``; split "test", else "val") of a torchvision set, whatever its constructor
    calls it."""
    import inspect

    import torchvision.datasets as tvd

    params = inspect.signature(getattr(tvd, name).__init__).parameters
    if "train" in params:
        attempts = [{"train": train}]
    elif "split" in params:
        attempts = [{"split": s} for s in (("trainval", "train") if train else ("test", "val"))]
    else:
        attempts = [{}]
    error = None
    for split in attempts:
        try:
            return open_torchvision(name, root, download, **split)
        except ValueError as err:  # a split name this set does not have
            error = err
    raise ValueError(f"dataset {name}: no {'training' if train else 'test or val'} split ({error})")


def _labels(ds) -> np.ndarray:
    """Integer labels of a torchvision data set, read without decoding its images."""
    for attr in ("targets", "labels", "_labels", "y"):
        if hasattr(ds, attr):
            return np.asarray(getattr(ds, attr), dtype=np.int64).ravel()
    if hasattr(ds, "_samples"):  # StanfordCars, Imagenette
        return np.asarray([s[1] for s in ds._samples], dtype=np.int64)
    return np.asarray([int(ds[i][1]) for i in range(len(ds))], dtype=np.int64)


def _class_names(ds, n: int) -> list[str]:
    """Class names (``classes`` or Caltech's ``categories``; a tuple of synonyms: the first)."""
    names = list(getattr(ds, "classes", None) or getattr(ds, "categories", None) or [])
    if len(names) < n:
        return [str(c) for c in range(n)]
    return [str(c[0]) if isinstance(c, (tuple, list)) else str(c) for c in names]


def torchvision_set(name: str, root=None, train: bool = True, resolution: int | None = None,
                    per_class: int | None = None, seed: int = 0, download: bool = False
                    ) -> ImageSet:
    """A torchvision data set by class name (e.g. ``"CIFAR100"``), in memory: the one adapter
    of every chapter.

    ``train``: the training split, else the evaluation split (see ``_open_split``).
    ``per_class``: at most that many images per class, drawn with ``seed``; only those are
    decoded, so large sets never sit in memory. ``resolution``: square images by
    ``pil_to_uint8``; None keeps the stored arrays of the sets that hold them (CIFAR).
    Classes absent from the images drawn are dropped. ``download=True`` fetches a missing set
    (needs internet); offline, point ``root`` at local files.
    """
    if name not in torchvision_names():
        raise ValueError(f"dataset: unknown torchvision data set "
                         f"{name!r}{did_you_mean(name, torchvision_names())}")
    ds = _open_split(name, root, train, download)
    labels = _labels(ds)
    keep = np.arange(len(labels))
    if per_class is not None:
        rng = np.random.default_rng(seed)
        keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                                       for c in np.unique(labels)]))
    if resolution is None and isinstance(getattr(ds, "data", None), np.ndarray):
        arrays = ds.data[keep] if ds.data.ndim == 4 else ds.data[keep][..., None]
        images = np.ascontiguousarray(arrays.transpose(0, 3, 1, 2))
    else:
        images = np.stack([pil_to_uint8(ds[int(i)][0], resolution or 32) for i in keep])
    present = np.unique(labels[keep])
    classes = _class_names(ds, int(labels.max()) + 1)
    return ImageSet(torch.from_numpy(images), torch.as_tensor(np.searchsorted(present, labels[keep])),
                    [classes[c] for c in present], name.lower())


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
