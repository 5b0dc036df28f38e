"""Per-layer quantities that several metrics share, each computed once on first use.

`layerwise` builds one `LayerStats` per layer and hands it to every requested metric, so the
class means, the two spectral factorisations and the nearest-neighbour search are not repeated.
"""

from __future__ import annotations

from functools import cached_property

import torch

from ._validate import ArrayLike, as_features, encode_labels

_BLOCK_ELEMENTS = 2**24  # distance-matrix entries per block (64 MiB in float32)
_GRAM_BLOCK = 128  # column-block width of the CPU Gram (measured best of 64 / 128 / 256)


def rank_cut(s2: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Mask of Gram eigenvalues (squared singular values) above round-off.

    Kept: > eps * max(N, D) * the largest.

    The pseudo-inverse rule of torch.linalg.pinv applied to the Gram / covariance matrix.
    """
    eps = torch.finfo(s2.dtype).eps
    return s2 > s2.max() * eps * max(shape)


def gram(x: torch.Tensor) -> torch.Tensor:
    """x^T x. On the CPU from the upper block triangle (column blocks of 128), then mirrored.

    BLAS behind torch has no symmetric product: blocks save 10-35 % of the time at D >= 384
    (bench/RESULTS.md). The lower blocks are copies of the upper ones, so the result is symmetric
    except within the diagonal blocks (each entry still one dot product).
    """
    d = x.shape[1]
    if x.device.type != "cpu" or d <= 2 * _GRAM_BLOCK:
        return x.T @ x
    g = x.new_empty(d, d)
    for a in range(0, d, _GRAM_BLOCK):
        b = min(a + _GRAM_BLOCK, d)
        g[a:b, a:] = x[:, a:b].T @ x[:, a:]
        g[b:, a:b] = g[a:b, b:].T
    return g


def right_spectrum(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared singular values (descending) and right singular vectors (D, r) of `x`.

    Eigendecomposition of the D x D Gram x^T x when N > D, else a thin SVD of x.
    """
    n, d = x.shape
    if n > d:
        s2, v = torch.linalg.eigh(gram(x))
        return s2.flip(0).clamp_min(0), v.flip(1)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    return s**2, vh.T


def squared_singular_values(x: torch.Tensor) -> torch.Tensor:
    """Squared singular values (descending) of `x`, without vectors: Gram eigenvalues or svdvals."""
    n, d = x.shape
    if n > d:
        return torch.linalg.eigvalsh(gram(x)).flip(0).clamp_min(0)
    return torch.linalg.svdvals(x) ** 2


class LayerStats:
    """Validated features (and labels) of one layer plus lazily cached shared statistics."""

    def __init__(
        self, features: ArrayLike, labels: ArrayLike | None = None, name: str = "features"
    ):
        self.x = as_features(features, name)
        self.n, self.d = self.x.shape
        self.device = self.x.device
        self._hits: dict[int, torch.Tensor] = {}
        if labels is not None:
            self.codes, self.classes = encode_labels(
                labels, self.n, self.device, features_name=name
            )
            self.n_classes = len(self.classes)

    @cached_property
    def x64(self) -> torch.Tensor:
        return self.x.to(torch.float64)

    def class_sum(self, values: torch.Tensor) -> torch.Tensor:
        """(C, K) per-class sums of the rows of `values` (N, K)."""
        return values.new_zeros(self.n_classes, values.shape[1]).index_add_(0, self.codes, values)

    @cached_property
    def counts(self) -> torch.Tensor:
        return torch.bincount(self.codes, minlength=self.n_classes).to(torch.float64)

    @cached_property
    def class_sums(self) -> torch.Tensor:
        return self.class_sum(self.x64)

    @cached_property
    def class_means(self) -> torch.Tensor:
        return self.class_sums / self.counts[:, None]

    @cached_property
    def mean(self) -> torch.Tensor:
        return self.x64.mean(0)

    @cached_property
    def centred(self) -> torch.Tensor:
        return self.x64 - self.mean

    @cached_property
    def raw_spectrum(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Spectrum of the uncentred features F (LogME, RankMe)."""
        return right_spectrum(self.x64)

    @cached_property
    def raw_s2(self) -> torch.Tensor:
        """Squared singular values of F, reusing `raw_spectrum` when LogME already computed it."""
        if "raw_spectrum" in self.__dict__:
            return self.raw_spectrum[0]
        return squared_singular_values(self.x64)

    @cached_property
    def cov_eigenvalues(self) -> torch.Tensor:
        """Covariance eigenvalues (descending), reusing `cov_spectrum` when it exists."""
        if "cov_spectrum" in self.__dict__:
            return self.cov_spectrum[0]
        return squared_singular_values(self.centred) / max(self.n - 1, 1)

    @cached_property
    def cov_spectrum(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eigenvalues (descending), eigenvectors (D, r) of the covariance (H-score, PCA, rank)."""
        s2, v = right_spectrum(self.centred)
        return s2 / max(self.n - 1, 1), v

    def neighbour_hits(self, ks: tuple[int, ...]) -> dict[int, torch.Tensor]:
        """Per sample, the fraction of its k nearest neighbours (self excluded) with its label.

        One blockwise pass of squared Euclidean distances in the input precision serves every k.
        """
        todo = sorted(set(ks) - set(self._hits))
        if todo:
            found = _neighbour_hits(self.x - self.x.mean(0), self.codes, todo)
            self._hits.update(found)
        return {k: self._hits[k] for k in ks}


def _neighbour_hits(x: torch.Tensor, codes: torch.Tensor, ks: list[int]) -> dict[int, torch.Tensor]:
    n = x.shape[0]
    k_max = max(ks)
    sq = (x * x).sum(1)
    block = max(1, _BLOCK_ELEMENTS // n)
    same = []
    for start in range(0, n, block):
        rows = torch.arange(start, min(start + block, n), device=x.device)
        # ||x_i||^2 is constant along a row, so ranking by ||x_j||^2 - 2 x_i.x_j is enough.
        scores = torch.addmm(sq, x[rows], x.T, alpha=-2.0)
        scores[torch.arange(len(rows), device=x.device), rows] = float("inf")
        if k_max == 1:
            idx = scores.argmin(1, keepdim=True)
        else:
            idx = scores.topk(k_max, dim=1, largest=False, sorted=True).indices
        same.append(codes[idx] == codes[rows, None])
    same = torch.cat(same)
    return {k: same[:, :k].to(torch.float64).mean(1) for k in ks}
