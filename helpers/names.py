"""The names that chapter parameters accept, importable without torch.

The CLI checks a run's parameters before it starts a kernel; importing the registries themselves
(``zoo``, ``metrics``, ``data``) would import torch, 1.5-3 s of every run. Each tuple lists its
registry's keys in order; tests/test_setup.py keeps them equal.
"""

ZOO = ("resnet10t", "resnet18", "convnext_atto", "vit_tiny", "resnet10t_noaug",
       "resnet10t_digits", "smallcnn")
METRICS = ("nmi", "knn", "1nn", "probe", "logme", "h_score", "gbc", "face", "nc1",
           "numerical_rank", "rankme")
DOMAINS = ("glyphs", "glyph_styles", "mnist5k", "digits8x8")
