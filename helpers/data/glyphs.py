"""Glyphs: characters rendered from font files, labelled by character or by font style.

The offline stand-in for handwriting (Chapter 1's calligraphers are our fonts) and the
source domain of the default model zoo (Chapters 2-4).
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .imageset import ImageSet

DIGITS = string.digits
CHARACTERS = string.digits + string.ascii_uppercase
# Files that matplotlib ships but that hold symbols, not letters, or only placeholders.
_NOT_TEXT = re.compile(r"Display|NonUni|STIXSiz|cmex10|cmsy10|LastResort", re.IGNORECASE)
_JITTER = {"shift": 0.08, "scale": 0.15, "rotation": 10.0, "stroke": 1}


def matplotlib_font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@functools.cache
def _cmap(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True, fontNumber=0) as font:
        return frozenset(font.getBestCmap() or {})


def find_fonts(font_dirs=(), chars: str = CHARACTERS, include_matplotlib: bool = True
               ) -> dict[str, Path]:
    """Fonts (name -> file) that have a glyph for every character of ``chars``.

    Looks in matplotlib's own fonts and in every directory of ``font_dirs`` (.ttf/.otf).
    """
    dirs = [matplotlib_font_dir()] if include_matplotlib else []
    for d in font_dirs:
        d = Path(d).expanduser()
        if not d.is_dir():
            raise FileNotFoundError(f"font_dirs: {d} is not a directory")
        dirs.append(d)
    fonts = {}
    for d in dirs:
        for path in sorted(p for p in d.rglob("*") if p.suffix.lower() in (".ttf", ".otf")):
            if _NOT_TEXT.search(path.name) or path.stem in fonts:
                continue
            try:
                cmap = _cmap(str(path))
            except Exception:  # noqa: BLE001, S112 - fontTools raises many kinds on a broken font
                continue
            if all(ord(c) in cmap for c in chars):
                fonts[path.stem] = path
    if not fonts:
        raise ValueError(f"no font in {[str(d) for d in dirs]} has every character of {chars!r}")
    return fonts


def _resolve_fonts(fonts, chars: str, font_dirs) -> dict[str, Path]:
    available = find_fonts(font_dirs, chars="")
    if fonts is None:
        return find_fonts(font_dirs, chars)
    out = {}
    for f in fonts:
        path = Path(f) if Path(f).suffix.lower() in (".ttf", ".otf") else available.get(f)
        if path is None or not path.exists():
            raise ValueError(f"fonts: unknown font {f!r}; known: {sorted(available)}")
        missing = [c for c in chars if ord(c) not in _cmap(str(path))]
        if missing:
            raise ValueError(f"fonts: {path.stem} has no glyph for {''.join(missing)!r}")
        out[path.stem] = path
    return out


def font_inventory() -> dict:
    """What rendered glyphs depend on beyond their arguments: the font files found and
    matplotlib's version (it ships them); part of the cache key of every rendered set."""
    import matplotlib

    return {"fonts": sorted(find_fonts(chars="")), "matplotlib": matplotlib.__version__}


@functools.lru_cache(maxsize=64)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size=size)


def render(char: str, font_path, resolution: int, rng: np.random.Generator,
           jitter: dict) -> np.ndarray:
    """One glyph, white on black, scaled to its bounding box, with random jitter."""
    size = 64
    stroke = int(rng.integers(0, jitter["stroke"] + 1))
    canvas = Image.new("L", (3 * size, 3 * size), 0)
    ImageDraw.Draw(canvas).text((size, size // 2), char, fill=255, font=_font(str(font_path), size),
                                stroke_width=stroke, stroke_fill=255)
    canvas = canvas.rotate(float(rng.uniform(-1, 1) * jitter["rotation"]),
                           resample=Image.BILINEAR, expand=False)
    box = canvas.getbbox()
    if box is None:
        raise ValueError(f"font {Path(font_path).stem} renders {char!r} as an empty image")
    glyph = canvas.crop(box)
    target = resolution * 0.8 * (1 + rng.uniform(-1, 1) * jitter["scale"])
    scale = target / max(glyph.size)
    w, h = (max(1, round(s * scale)) for s in glyph.size)
    glyph = glyph.resize((w, h), Image.LANCZOS)
    out = Image.new("L", (resolution, resolution), 0)
    dx, dy = rng.uniform(-1, 1, 2) * jitter["shift"] * resolution
    out.paste(glyph, (round((resolution - w) / 2 + dx), round((resolution - h) / 2 + dy)))
    return np.asarray(out)


def glyphs(chars: str = CHARACTERS, fonts=None, per_pair: int = 10, resolution: int = 32,
           jitter: dict | None = None, label: str = "char", font_dirs=(), seed: int = 0) -> ImageSet:
    """Render ``per_pair`` jittered images of every (character, font) pair.

    ``fonts``: names (see :func:`find_fonts`) or file paths; default: every font found that
    has all of ``chars``. ``label``: ``"char"`` or ``"font"`` (the style, Chapter 1).
    Same arguments and seed give identical pixels.
    """
    if label not in ("char", "font"):
        raise ValueError(f"label must be 'char' or 'font', got {label!r}")
    if not chars or len(set(chars)) != len(chars):
        raise ValueError(f"chars must be non-empty and without repeats, got {chars!r}")
    if per_pair < 1:
        raise ValueError(f"per_pair must be >= 1, got {per_pair}")
    if not 8 <= resolution <= 512:
        raise ValueError(f"resolution must be in 8..512, got {resolution}")
    jitter = {**_JITTER, **(jitter or {})}
    unknown = set(jitter) - set(_JITTER)
    if unknown:
        raise ValueError(f"jitter: unknown keys {sorted(unknown)}; allowed {sorted(_JITTER)}")
    paths = _resolve_fonts(fonts, chars, font_dirs)
    images, char_of, font_of = [], [], []
    for name, path in paths.items():
        key = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
        for c in chars:
            rng = np.random.default_rng([seed, key, ord(c)])
            for _ in range(per_pair):
                images.append(render(c, path, resolution, rng, jitter))
                char_of.append(c)
                font_of.append(name)
    attrs = {"char": np.array(char_of), "font": np.array(font_of)}
    classes = list(chars)
    labels = np.array([classes.index(c) for c in char_of])
    out = ImageSet(torch.from_numpy(np.stack(images))[:, None], torch.from_numpy(labels),
                   classes, "glyphs", attrs)
    return out.relabel("font") if label == "font" else out
