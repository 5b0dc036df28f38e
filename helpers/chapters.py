"""The chapter registry, one parameter schema per chapter, and parameter validation.

A chapter is a parameterized notebook ``notebooks/<id>.ipynb`` (a cell tagged ``parameters``).
Its parameters are declared once, in ``notebooks/params/schema.yml``; the profiles
``notebooks/params/{smoke,default,full}.yml`` give values. Every way of running a chapter
(``python -m helpers run``, papermill, a plain JupyterLab session) goes through
:func:`validate`, so a bad value fails before any work with one line that names it.

To add a chapter: add ``(id, title)`` to :data:`REGISTRY`, a block to ``schema.yml`` and to each
profile, a ``book/chapters/<id>`` line to ``_toc.yml``, and write ``notebooks/<id>.ipynb``
whose cell after ``parameters`` is ``P = helpers.chapters.setup("<id>", globals())``.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .names import DOMAINS, METRICS, ZOO, did_you_mean, torchvision_datasets

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "book" / "chapters"
PROFILES = ("smoke", "default", "full")
EXTRA_CHAPTERS_ENV = "HELPERS_EXTRA_CHAPTERS"
PROFILE_ENV = "HELPERS_PROFILE"
DEVICE_GLUE = "helpers_device"
#: how a table shows a missing value (a paper that did not report it, a score not measured)
MISSING = "—"
#: helpers.plots.BOOK_STYLE, the figures' style, known here without importing matplotlib.
BOOK_STYLE = Path(__file__).with_name("book.mplstyle")

# jsonschema imports rfc3987_syntax, when installed, only to check "iri" string formats, and that
# package compiles 38 grammars on import (1.5-2 s). papermill and myst-nb's glue reach jsonschema
# through nbformat, whose notebook schema has no IRI format; the processes that run chapters (this
# module is the first import of the CLI and of every chapter) skip it.
sys.modules.setdefault("rfc3987_syntax", None)

#: The chapters in book order: (id, title). The notebook is ``notebooks/<id>.ipynb``.
REGISTRY: tuple[tuple[str, str], ...] = (
    ("tour", "A tour of the helpers"),
    ("separability", "Which layer generalizes? Separability of unseen data"),
    ("transferability", "Predicting transfer from neural collapse (FaCe)"),
    ("tunnel", "The tunnel effect and out-of-distribution generalization"),
    ("double_descent", "Freezing-wise double descent in transfer learning"),
    ("atlas", "Your model, layer by layer: an atlas of every measure"),
)

SCALARS = ("int", "float", "str", "bool", "model", "dataset", "metric", "dataset|model")
TYPES = SCALARS + tuple(f"list[{t}]" for t in SCALARS)
SPEC_KEYS = {"type", "help", "min", "max", "choices", "nullable", "min_len", "also", "lazy"}


class ParameterError(ValueError):
    """A chapter, profile or parameter value that is not allowed; the message is one line."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows in a notebook (and plain papermill prints): the line, no stack."""
        return [f"ParameterError: {self}"]


@dataclass(frozen=True)
class Chapter:
    """One chapter: its id, title, source notebook and the folder with its schema and profiles."""

    id: str
    title: str
    notebook: Path
    params_dir: Path

    @property
    def available(self) -> bool:
        """True when the source notebook exists (chapters arrive over time)."""
        return self.notebook.exists()

    @property
    def schema(self) -> dict[str, dict[str, Any]]:
        """The chapter's parameter specs, ``name -> {type, help, min, max, choices, ...}``."""
        return _schemas(self.params_dir).get(self.id, {})

    def profile(self, name: str) -> dict[str, Any]:
        """The chapter's block of values in profile ``name`` (empty when it has none)."""
        check_profile(name)
        path = self.params_dir / f"{name}.yml"
        block = _load_yaml(path).get(self.id) or {}
        if not isinstance(block, dict):
            raise ParameterError(f"block '{self.id}' in {rel(path)} must be a mapping")
        return dict(block)


def rel(path: Path) -> str:
    """``path`` relative to the repository root where possible, for messages."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _load_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from ``path``; a missing or comment-only file is empty."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        why = " ".join(str(exc).split())
        raise ParameterError(f"{rel(path)} is not valid YAML: {why}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(f"{rel(path)} must hold a mapping of chapter ids")
    return data


def _schemas(params_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """All schemas in ``params_dir/schema.yml``, read again only when the file changes."""
    path = params_dir / "schema.yml"
    return _read_schemas(path, path.stat().st_mtime_ns if path.exists() else 0)


@cache
def _read_schemas(path: Path, mtime_ns: int) -> dict[str, dict[str, dict[str, Any]]]:
    """The schemas in ``path`` (as of ``mtime_ns``), each spec checked."""
    schemas = _load_yaml(path)
    for chapter_id, params in schemas.items():
        for name, spec in (params or {}).items():
            where = f"{rel(path)}: parameter '{name}' of chapter '{chapter_id}'"
            if not isinstance(spec, dict) or spec.get("type") not in TYPES:
                raise ParameterError(f"{where} needs a type, one of {', '.join(TYPES)}")
            if not spec.get("help"):
                raise ParameterError(f"{where} needs a help string")
            if extra := set(spec) - SPEC_KEYS:
                raise ParameterError(f"{where} has unknown keys {sorted(extra)}")
        schemas[chapter_id] = dict(params or {})
    return schemas


def chapters() -> dict[str, Chapter]:
    """All registered chapters in book order, plus extras from ``$HELPERS_EXTRA_CHAPTERS``.

    The extra folder (used by the tests) mirrors ``notebooks/``: ``<id>.ipynb``,
    ``params/{schema,smoke,default,full}.yml``, and ``chapters.yml`` mapping id -> title.
    """
    found = {
        cid: Chapter(cid, title, NOTEBOOKS / f"{cid}.ipynb", NOTEBOOKS / "params")
        for cid, title in REGISTRY
    }
    extra = os.environ.get(EXTRA_CHAPTERS_ENV)
    if extra:
        folder = Path(extra).resolve()
        for cid, title in _load_yaml(folder / "chapters.yml").items():
            found[cid] = Chapter(cid, str(title), folder / f"{cid}.ipynb", folder / "params")
    return found


def available() -> list[Chapter]:
    """The chapters whose notebook exists, in book order."""
    return [c for c in chapters().values() if c.available]


def get(chapter_id: str) -> Chapter:
    """The chapter ``chapter_id``; fails when it is unknown or has no notebook yet."""
    known = chapters()
    if chapter_id not in known:
        offer = ", ".join(c.id for c in available()) or "none yet"
        raise ParameterError(
            f"unknown chapter '{chapter_id}'{did_you_mean(chapter_id, known)}; available: {offer}"
        )
    chapter = known[chapter_id]
    if not chapter.available:
        raise ParameterError(
            f"chapter '{chapter_id}' has no notebook yet ({rel(chapter.notebook)} is missing)"
        )
    return chapter


def check_profile(name: str) -> str:
    """``name`` if it is a profile; otherwise a :class:`ParameterError`."""
    if name not in PROFILES:
        raise ParameterError(
            f"unknown profile '{name}'{did_you_mean(name, PROFILES)}; choose from {', '.join(PROFILES)}"
        )
    return name


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"NAME=VALUE"`` -> ``(NAME, value)``, the value parsed as YAML (``seeds=[0,1]``)."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise ParameterError(f"malformed -p '{text}': expected NAME=VALUE, e.g. -p epochs=3")
    try:
        return name, yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ParameterError(f"malformed -p '{text}': value of '{name}' is {problem}") from None


def describe(spec: Mapping[str, Any]) -> str:
    """What a spec allows, in words: ``an int >= 1``, ``a list of strings from 'a', 'b'``."""
    kind = spec["type"]
    is_list = kind.startswith("list[")
    base = kind[5:-1] if is_list else kind
    words = {
        "int": ("an int", "ints", ""),
        "float": ("a float", "floats", ""),
        "str": ("a string", "strings", ""),
        "bool": ("true or false", "true/false values", ""),
        "model": ("a model name", "model names", "helpers.zoo.names() or timm"),
        "dataset": ("a dataset", "datasets",
                    "helpers.data.domain_names(), torchvision.datasets or a folder"),
        "metric": ("a metric", "metrics", "helpers.metrics.available()"),
    }
    kinds = [words[k] for k in base.split("|")]
    noun, plural = " or ".join(k[0] for k in kinds), " or ".join(k[1] for k in kinds)
    sources = [", ".join(spec["also"])] if spec.get("also") else []
    sources += [k[2] for k in kinds if k[2]]
    where = f" ({'; '.join(sources)})" if sources else ""
    lo, hi = spec.get("min"), spec.get("max")
    bound = ""
    if lo is not None and hi is not None:
        bound = f" in [{lo}, {hi}]"
    elif lo is not None:
        bound = f" >= {lo}"
    elif hi is not None:
        bound = f" <= {hi}"
    choices = ", ".join(repr(c) for c in spec.get("choices", []))
    if is_list:
        text = f"a list of {plural}{bound}" + (f" from {choices}" if choices else "") + where
        if spec.get("min_len"):
            text += f" (at least {spec['min_len']})"
    elif choices:
        text = f"one of {choices}"
    else:
        text = f"{noun}{bound}{where}"
    return text + (" or null" if spec.get("nullable") else "")


def _module(name: str) -> Any | None:
    """``import name`` lazily; None if that module itself is not written (or installed) yet."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            return None
        raise


def _known(kind: str, value: str) -> tuple[bool, list[str]]:
    """Whether ``value`` is a known model/dataset/metric, and the names to suggest from."""
    if kind == "metric":
        return value in METRICS, list(METRICS)
    if kind == "model":
        names = list(ZOO)
        if value in names:
            return True, names
        timm = _module("timm")
        if timm is None:
            return False, names
        if timm.is_model(value):
            return ("." not in value or value in timm.list_pretrained(value)), names
        return False, names + list(timm.list_models())
    names = list(DOMAINS)
    if value in names:
        return True, names
    if value in torchvision_datasets():
        return True, names
    path = Path(value).expanduser()
    return path.is_dir() or (ROOT / path).is_dir(), names


_BAD = object()  # marks a value that does not fit its spec


def _check_scalar(base: str, spec: Mapping[str, Any], value: Any) -> tuple[Any, str]:
    """``(value, "")`` converted when it fits the spec, else ``(_BAD, hint)``."""
    if base == "bool":
        ok = isinstance(value, bool)
    elif base in ("int", "float"):
        if base == "float" and isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads 1e-3 as a string
            except ValueError:
                return _BAD, ""
        ok_types = (int,) if base == "int" else (int, float)
        ok = isinstance(value, ok_types) and not isinstance(value, bool)
        if ok:
            value = float(value) if base == "float" else value
            lo, hi = spec.get("min"), spec.get("max")
            ok = not (math.isnan(value) or (lo is not None and value < lo))
            ok = ok and not (hi is not None and value > hi)
    else:
        ok = isinstance(value, str)
    if not ok:
        return _BAD, ""
    if "choices" in spec:
        if value in spec["choices"]:
            return value, ""
        return _BAD, did_you_mean(value, spec["choices"])
    kinds = [k for k in base.split("|") if k in ("model", "dataset", "metric")]
    if kinds:
        also = list(spec.get("also", []))
        if value in also:
            return value, ""
        names = also
        for kind in kinds:
            known, more = _known(kind, value)
            if known:
                return value, ""
            names = names + more
        return _BAD, did_you_mean(value, names)
    return value, ""


def _must(chapter_id: str, name: str, spec: Mapping[str, Any], value: Any, hint: str) -> str:
    """The one-line message for a value that does not fit ``spec``."""
    return (
        f"parameter '{name}' of chapter '{chapter_id}' must be {describe(spec)}, "
        f"got {value!r}{hint}"
    )


def check(chapter_id: str, name: str, value: Any) -> Any:
    """Validate one value of parameter ``name`` of ``chapter_id``; return it (floats as float)."""
    schema = chapters()[chapter_id].schema
    if name not in schema:
        raise ParameterError(
            f"unknown parameter '{name}' for chapter '{chapter_id}'{did_you_mean(name, schema)}"
        )
    spec = schema[name]
    if value is None and spec.get("nullable"):
        return None
    is_list = spec["type"].startswith("list[")
    base = spec["type"][5:-1] if is_list else spec["type"]
    if is_list and not (isinstance(value, list) and len(value) >= spec.get("min_len", 0)):
        raise ParameterError(_must(chapter_id, name, spec, value, ""))
    checked = []
    for item in value if is_list else [value]:
        good, hint = _check_scalar(base, spec, item)
        if good is _BAD:
            raise ParameterError(_must(chapter_id, name, spec, value, hint))
        checked.append(good)
    return checked if is_list else checked[0]


def validate(chapter_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate every ``name -> value`` of ``params`` for ``chapter_id``; return a new dict."""
    return {name: check(chapter_id, name, value) for name, value in params.items()}


def setup(chapter_id: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a notebook's parameters from its globals, seed, and return them as a dict.

    The cell after ``parameters`` in every chapter is
    ``P = helpers.chapters.setup("<id>", globals())``. If the schema has ``seed``,
    :func:`helpers.device.seed_everything` is called with it. The chapter's figures get the
    book's style (``_use_book_style``).
    """
    schema = chapters()[chapter_id].schema
    missing = [name for name in schema if name not in namespace]
    if missing:
        raise ParameterError(
            f"parameter '{missing[0]}' of chapter '{chapter_id}' is not set in the "
            "notebook's parameters cell"
        )
    params = validate(chapter_id, {name: namespace[name] for name in schema})
    _require_data(chapter_id, schema, params)
    if "seed" in params:
        device = _module("helpers.device")
        if device is not None and hasattr(device, "seed_everything"):
            device.seed_everything(params["seed"])
    _glue_device()
    _use_book_style()
    _show_missing_as_dash()
    return params


def _use_book_style() -> None:
    """Draw every figure from here on in the book's style: now if matplotlib is loaded, else
    when the chapter first imports it (matplotlib reads ``$MATPLOTLIBRC``), so that a chapter
    without figures never loads it."""
    if "matplotlib" in sys.modules:
        from .plots import use_book_style

        use_book_style()
    else:
        os.environ["MATPLOTLIBRC"] = str(BOOK_STYLE)


def _require_data(chapter_id: str, schema: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """The torchvision data sets that the parameters name are there (downloaded first when
    ``download`` is set) before any work; a missing one fails with one line that names it, the
    root (``data_root``, else ``~/.cache/torchvision``) and how to get it."""
    known = set(torchvision_datasets())
    names = [v for key, spec in schema.items() if "dataset" in spec["type"]
             and not spec.get("lazy")  # used only in some settings: checked where it is used
             for v in (params[key] if isinstance(params[key], list) else [params[key]])
             if isinstance(v, str) and v in known]
    if not names:
        return
    from .data.real import require

    try:
        require(names, params.get("data_root") or None, bool(params.get("download", False)))
    except FileNotFoundError as exc:
        raise ParameterError(f"chapter '{chapter_id}': {exc}") from None


def _show_missing_as_dash() -> None:
    """In a kernel, tables show a missing value (not measured, not reported) as a dash, not as
    ``NaN``: a DataFrame's HTML is pandas' own with its NaN cells replaced."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    import pandas as pd

    shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, frame_html)
    pd.set_option("styler.format.na_rep", MISSING)


def frame_html(frame) -> str | None:
    """``frame``'s notebook HTML with every NaN cell shown as :data:`MISSING`."""
    html = frame._repr_html_()
    return None if html is None else html.replace("<td>NaN</td>", f"<td>{MISSING}</td>")


def _glue_device() -> None:
    """In a kernel, glue the name of the device it computes on: ``python -m helpers run`` copies
    it into the executed notebook's metadata without importing torch itself."""
    from IPython import get_ipython

    if get_ipython() is None:
        return
    from myst_nb import glue

    from .device import device_name

    glue(DEVICE_GLUE, device_name(), display=False)


def glue_record(record: Mapping[str, Any]) -> None:
    """Glue every ``name: value`` of a chapter's record (the numbers its text quotes, and its
    figures: a matplotlib figure is closed once glued, so that its cell does not show it too)."""
    from myst_nb import glue

    figure = sys.modules.get("matplotlib.figure")  # loaded wherever a figure was made
    for name, value in record.items():
        glue(name, value, display=False)
        if figure is not None and isinstance(value, figure.Figure):
            import matplotlib.pyplot as plt

            plt.close(value)


def glue_figures(figures: Mapping[str, tuple[Any, str]]) -> None:
    """Glue each ``name: (figure, caption)`` and show them as numbered figures with their
    captions, for figures whose number only the run knows (one per variable or data set): a
    ``{glue:figure}`` directive each, in a Markdown output that the cell's metadata
    ``"mystnb": {"markdown_format": "myst"}`` makes the book render as MyST."""
    from IPython.display import Markdown, display

    glue_record({name: figure for name, (figure, _) in figures.items()})
    display(Markdown("\n\n".join(f"```{{glue:figure}} {name}\n:name: {name}\n{caption}\n```"
                                  for name, (_, caption) in figures.items())))


def resolve(
    chapter_ids: Iterable[str], profile: str, overrides: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Validated parameters per chapter: the profile's block, then ``overrides`` where declared.

    An override that no selected chapter declares is an error (with the closest name).
    """
    check_profile(profile)
    selected = [get(cid) for cid in chapter_ids]
    declared = {name for c in selected for name in c.schema}
    for name in overrides:
        if name not in declared:
            owners = ", ".join(f"'{c.id}'" for c in selected)
            noun = "chapter" if len(selected) == 1 else "chapters"
            raise ParameterError(
                f"unknown parameter '{name}' for {noun} {owners}{did_you_mean(name, declared)}"
            )
    resolved = {}
    for chapter in selected:
        source = rel(chapter.params_dir / f"{profile}.yml")
        try:
            block = validate(chapter.id, chapter.profile(profile))
        except ParameterError as exc:
            raise ParameterError(f"{exc} (in {source})") from None
        block.update(
            validate(chapter.id, {k: v for k, v in overrides.items() if k in chapter.schema})
        )
        resolved[chapter.id] = block
    return resolved
