"""The names that chapter parameters accept, importable without torch.

The CLI checks a run's parameters before it starts a kernel; importing the registries themselves
(``zoo``, ``metrics``, ``data``) would import torch, 1.5-3 s of every run. Each tuple lists its
registry's keys in order; tests/test_setup.py keeps them equal.
"""

import ast
import difflib
import functools
import importlib.util
from collections.abc import Iterable
from pathlib import Path

ZOO = ("resnet10t", "resnet18", "convnext_atto", "vit_tiny", "resnet10t_noaug",
       "resnet10t_digits", "smallcnn")
METRICS = ("nmi", "knn", "1nn", "probe", "logme", "h_score", "gbc", "face", "nc1",
           "numerical_rank", "rankme", "sfda", "nleep", "parc", "ncti", "knn_acc")
DOMAINS = ("glyphs", "glyph_styles", "mnist5k", "digits8x8")


def did_you_mean(word, options: Iterable) -> str:
    """`` (did you mean 'x'?)`` for the option closest to ``word``, or an empty string: the one
    hint of every message that rejects a name."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


@functools.cache
def torchvision_datasets() -> tuple[str, ...]:
    """The dataset classes of ``torchvision.datasets``, read from its ``__all__`` without importing
    torchvision (which imports torch and torch._dynamo: 3 s); () when torchvision is absent."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return ()
    init = Path(spec.submodule_search_locations[0]) / "datasets" / "__init__.py"
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__"
                                                for t in node.targets):
            return tuple(sorted(n for n in ast.literal_eval(node.value) if n[0].isupper()))
    import torchvision.datasets  # no literal __all__ in this version: ask the module

    return tuple(sorted(n for n in torchvision.datasets.__all__ if n[0].isupper()))
