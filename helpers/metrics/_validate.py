"""Input checks shared by every metric: one clear error naming the argument, before torch runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor | Sequence


def _to_tensor(value: ArrayLike, name: str) -> torch.Tensor:
    """Tensor view of `value` (numpy arrays are shared, never written to)."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be a numpy array or torch tensor; got {type(value).__name__}"
        ) from err
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers; got dtype {arr.dtype}")
    if not (arr.flags.writeable and arr.flags.c_contiguous):
        arr = np.ascontiguousarray(arr).copy()
    return torch.from_numpy(arr)


def as_features(features: ArrayLike, name: str = "features") -> torch.Tensor:
    """(N, D) float tensor on the input's device: float64 stays, anything else -> float32."""
    t = _to_tensor(features, name)
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} must hold real numbers; got dtype {t.dtype}")
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) array; got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must not be empty; got shape {tuple(t.shape)}")
    t = t if t.dtype == torch.float64 else t.to(torch.float32)
    if not bool(torch.isfinite(torch.stack(torch.aminmax(t))).all()):  # NaN propagates
        raise ValueError(f"{name} contain NaN or Inf values")
    return t


def encode_labels(
    labels: ArrayLike,
    n: int | None,
    device: torch.device,
    name: str = "labels",
    features_name: str = "features",
    min_classes: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check integer labels (of length `n` unless None).

    Returns (codes 0..C-1, sorted class ids) on `device`.
    """
    t = _to_tensor(labels, name)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class ids; got dtype {t.dtype}")
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {tuple(t.shape)}")
    if n is not None and t.shape[0] != n:
        raise ValueError(
            f"{features_name} and {name} must have the same length; "
            f"got {n} rows and {t.shape[0]} labels"
        )
    classes, codes = torch.unique(t.to(device=device, dtype=torch.int64), return_inverse=True)
    if len(classes) < min_classes:
        raise ValueError(f"{name} must contain at least {min_classes} classes; got {len(classes)}")
    return codes, classes


def check_k(k: int, smallest_class: int) -> int:
    """`k` must be a positive integer smaller than the smallest class (so purity 1 is reachable)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer; got {type(k).__name__}")
    if not 1 <= k < smallest_class:
        raise ValueError(
            f"k must be >= 1 and smaller than the smallest class size ({smallest_class}); got k={k}"
        )
    return int(k)


def check_positive_int(value: int, name: str) -> int:
    """A positive integer option (epochs, n_clusters, pca_dim, ...)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def as_curve(values: ArrayLike, name: str, min_len: int = 1) -> np.ndarray:
    """1-D finite float64 numpy array (a per-layer curve or a list of scores)."""
    t = _to_tensor(values, name)
    if t.ndim != 1 or t.shape[0] < min_len:
        raise ValueError(
            f"{name} must be 1-D with at least {min_len} entries; got shape {tuple(t.shape)}"
        )
    arr = t.cpu().numpy().astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contain NaN or Inf values")
    return arr


def check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Two curves must have one entry per layer (or per model) each."""
    if len(a) != len(b):
        raise ValueError(
            f"{name_a} and {name_b} must have the same length; got {len(a)} and {len(b)}"
        )
