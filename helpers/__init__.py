"""Helpers for the book *Which layer generalizes?*.

The package carries the logic; the chapters (``notebooks/``) carry the story. Data flows
``data`` -> ``zoo``/``models`` -> ``train`` -> ``features`` -> ``metrics`` -> ``plots``.
"""

__version__ = "0.1.0"
