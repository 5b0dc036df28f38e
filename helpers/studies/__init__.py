"""The four studies, one module per chapter (``notebooks/<study>.ipynb``)."""
