"""Data: every domain is an :class:`ImageSet` (Chapter 1 introduces them)."""

from __future__ import annotations

from pathlib import Path

from ..names import did_you_mean
from .digits import mnist5k, sklearn_digits
from .glyphs import CHARACTERS, DIGITS, find_fonts, font_inventory, glyphs
from .imageset import ImageSet, concat
from .real import default_root, image_folder, torchvision_names, torchvision_set
from .variations import (
    add_noise,
    invert,
    label_noise,
    per_class,
    resize,
    rotate,
    split_classes,
    train_test,
)

_EMBEDDED = {
    "glyphs": lambda resolution, **kw: glyphs(resolution=resolution, **kw),
    "glyph_styles": lambda resolution, **kw: glyphs(resolution=resolution, label="font", **kw),
    "mnist5k": lambda resolution, **kw: mnist5k(resolution),
    "digits8x8": lambda resolution, **kw: sklearn_digits(resolution),
}


def domain_names() -> list[str]:
    """Names of the embedded (offline) domains that :func:`load` knows."""
    return list(_EMBEDDED)


def load(name: str, resolution: int = 32, root=None, download: bool = False, **kwargs) -> ImageSet:
    """A domain by name: embedded, a torchvision class name, or an ImageFolder path."""
    if name in _EMBEDDED:
        return _EMBEDDED[name](resolution, **kwargs)
    if name in torchvision_names():
        return torchvision_set(name, root or default_root(),
                               resolution=resolution, download=download, **kwargs)
    if Path(name).expanduser().is_dir():
        return image_folder(name, resolution)
    hint = did_you_mean(name, domain_names() + torchvision_names())
    raise ValueError(f"dataset: unknown data set {name!r}{hint}; use one of {domain_names()}, "
                     "a torchvision data set name, or an existing ImageFolder directory")


__all__ = [
    "CHARACTERS",
    "DIGITS",
    "ImageSet",
    "add_noise",
    "concat",
    "default_root",
    "domain_names",
    "find_fonts",
    "font_inventory",
    "glyphs",
    "image_folder",
    "invert",
    "label_noise",
    "load",
    "mnist5k",
    "per_class",
    "resize",
    "rotate",
    "sklearn_digits",
    "split_classes",
    "torchvision_names",
    "torchvision_set",
    "train_test",
]
