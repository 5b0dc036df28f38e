"""An in-memory labelled image set: the one data type every helper takes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class ImageSet:
    """Images (N, C, H, W) uint8, integer labels, class names, a domain tag.

    ``attrs`` holds other per-image labels (e.g. ``char`` and ``font`` for glyphs), so one
    set can be relabelled (:meth:`relabel`) without re-rendering.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    domain: str
    attrs: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        self.images = torch.as_tensor(self.images)
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64)
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be a uint8 tensor (N, C, H, W), got {self.images.dtype} "
                f"with shape {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"images and labels differ in length: {len(self.images)} vs {len(self.labels)}")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(f"labels must lie in 0..{len(self.classes) - 1} (one per class name)")
        self._fingerprint = None

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        c, h, w = self.images.shape[1:]
        return (f"ImageSet(domain={self.domain!r}, n={len(self)}, classes={len(self.classes)}, "
                f"shape=({c}, {h}, {w}))")

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    def counts(self) -> np.ndarray:
        """Images per class."""
        return np.bincount(self.labels.numpy(), minlength=len(self.classes))

    def subset(self, index) -> ImageSet:
        """The images at ``index`` (indices or boolean mask), same classes."""
        index = torch.as_tensor(np.asarray(index))
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        idx = index.numpy()
        return ImageSet(self.images[index], self.labels[index], list(self.classes), self.domain,
                        {k: v[idx] for k, v in self.attrs.items()})

    def keep_classes(self, names) -> ImageSet:
        """Only the images of the classes ``names``, relabelled 0..len(names)-1 in that order."""
        names = list(names)
        unknown = [n for n in names if n not in self.classes]
        if unknown:
            raise ValueError(f"classes {unknown} are not in this set; it has {self.classes}")
        old = np.array([self.classes.index(n) for n in names])
        lab = self.labels.numpy()
        keep = np.isin(lab, old)
        out = self.subset(keep)
        remap = np.full(len(self.classes), -1)
        remap[old] = np.arange(len(old))
        out.labels = torch.as_tensor(remap[lab[keep]])
        out.classes = names
        out._fingerprint = None
        return out

    def relabel(self, by: str) -> ImageSet:
        """Use the per-image attribute ``by`` (e.g. ``"font"``) as the label."""
        if by not in self.attrs:
            raise ValueError(f"relabel: by must be one of {sorted(self.attrs)}, got {by!r}")
        values = self.attrs[by]
        classes = sorted(set(values.tolist()))
        labels = np.searchsorted(np.array(classes), values)
        return ImageSet(self.images, torch.as_tensor(labels), classes, self.domain, dict(self.attrs))

    def float(self, channels: int = 3) -> torch.Tensor:
        """Images as float in [0, 1], grey expanded to ``channels``."""
        x = self.images.float() / 255
        return x.expand(-1, channels, -1, -1) if x.shape[1] == 1 and channels != 1 else x

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the pixels, labels and class names (part of every cache key)."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(self.images.contiguous().numpy().tobytes())
            h.update(self.labels.numpy().tobytes())
            h.update("\x1f".join(self.classes).encode())
            h.update(str(tuple(self.images.shape)).encode())
            self._fingerprint = h.hexdigest()[:20]
        return self._fingerprint


def concat(sets: list[ImageSet], domain: str | None = None) -> ImageSet:
    """Stack sets with the same resolution; class lists are merged by name."""
    if not sets:
        raise ValueError("concat: sets is empty")
    shapes = {tuple(s.images.shape[1:]) for s in sets}
    if len(shapes) > 1:
        raise ValueError(f"concat: images of mixed sizes or channels {sorted(shapes)}; "
                         "resize them first (helpers.data.resize)")
    classes = sorted({c for s in sets for c in s.classes})
    labels = [torch.as_tensor([classes.index(s.classes[i]) for i in s.labels.tolist()],
                              dtype=torch.int64) for s in sets]
    keys = set.intersection(*(set(s.attrs) for s in sets))
    attrs = {k: np.concatenate([s.attrs[k] for s in sets]) for k in keys}
    return ImageSet(torch.cat([s.images for s in sets]), torch.cat(labels), classes,
                    domain or "+".join(dict.fromkeys(s.domain for s in sets)), attrs)
