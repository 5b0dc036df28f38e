"""Every layer's embedding in ONE forward pass, pooled by a documented policy, cached.

Pooling (``pooling=``), one vector per image and layer (Chapter 1 and 3 explain the choice):
- ``"auto"``: ViT with a class token -> ``"cls"``; ViT without one and CNNs -> ``"mean"``.
- ``"cls"``: the class token (token 0).
- ``"mean"``: mean over spatial positions (CNN) or patch tokens (ViT).
- ``"pool2x2"``: adaptive average pool to 2x2, then flatten (4C dims; the tunnel-effect probes).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib import format

from . import cache
from .data import ImageSet
from .device import autocast, get_device
from .models import input_spec, is_token_model, layer_names, predict_batches

POOLINGS = ("auto", "cls", "mean", "pool2x2")


def describe_transform(spec: dict) -> str:
    """The preprocessing of a transform spec in one line (part of the feature cache's key)."""
    return (f"uint8/255->ch{spec['channels']}->bilinear{spec['size']}"
            f"->norm{tuple(spec['mean'])}{tuple(spec['std'])}")


def _has_prefix(model) -> bool:
    return is_token_model(model) and model.num_prefix_tokens > 0


def resolve_pooling(model, pooling: str) -> str:
    """The pooling ``pooling`` means for ``model``: ``"auto"`` is ``"cls"`` where it has a class
    token, else ``"mean"``; a name not in ``POOLINGS``, or ``"cls"`` without a token, is an error."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if pooling == "cls" and getattr(model, "cls_token", None) is None:
        raise ValueError(f"pooling='cls' needs a class token; {type(model).__name__} has none")
    if pooling == "auto":
        return "cls" if getattr(model, "cls_token", None) is not None else "mean"
    return pooling


def pool(output, how: str) -> torch.Tensor:
    """One layer's output (NCHW tensor or (N, L, D) tokens, with the prefix tokens as a pair
    for ViTs) -> (N, D)."""
    spatial, prefix = output if isinstance(output, tuple) else (output, None)
    if how == "cls":
        return prefix[:, 0]
    if spatial.ndim == 3:  # tokens (N, L, D): a transformer's layer without a grid
        return spatial.mean(dim=1)
    if how == "mean":
        return spatial.mean(dim=(2, 3))
    return F.adaptive_avg_pool2d(spatial, 2).flatten(1)


def forward_layers(model, x: torch.Tensor, indices: list[int], norm: bool = False,
                   grid: bool = True):
    """(logits, [layer outputs]) from one forward pass. ``grid=False``: a transformer's
    layers stay token sequences (N, L, D), not reshaped into a feature map (no copy)."""
    if hasattr(model, "forward_intermediates"):
        kwargs = {"return_prefix_tokens": True} if _has_prefix(model) else {}
        if norm:
            kwargs["norm"] = True
        if not grid and is_token_model(model):
            kwargs["output_fmt"] = "NLC"
        final, inter = model.forward_intermediates(x, indices=indices, **kwargs)
        return model.forward_head(final), inter
    names = layer_names(model)
    captured = {}
    hooks = [model.get_submodule(names[i]).register_forward_hook(
        lambda _m, _i, out, i=i: captured.__setitem__(i, out)) for i in indices]
    try:
        logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    return logits, [captured[i] for i in indices]


def _layer_indices(model, layers) -> list[int]:
    names = layer_names(model)
    if isinstance(layers, str) and layers == "all":
        return list(range(len(names)))
    out = []
    for layer in layers:
        if isinstance(layer, (int, np.integer)) and -len(names) <= layer < len(names):
            out.append(int(layer) % len(names))
        elif layer in names:
            out.append(names.index(layer))
        else:
            raise ValueError(f"layers: unknown layer {layer!r}; this model has {names} "
                             f"(or indices 0..{len(names) - 1})")
    return out


def extract(model, data: ImageSet, layers="all", pooling: str = "auto", batch_size: int = 256,
            device=None, use_cache: bool = True, norm: bool = False, progress: bool = True,
            ) -> dict[str, np.ndarray]:
    """Mapping layer name -> (N, D) float32 features (plus ``"logits"``), one forward pass per
    batch for all layers; streamed to a cache entry keyed on weights, layers, pooling,
    transform, data, dtype and package version. Interrupted runs resume where they stopped."""
    if not isinstance(data, ImageSet):
        raise TypeError(f"data must be a helpers.data.ImageSet, got {type(data).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = get_device(device)
    indices = _layer_indices(model, layers)
    names = [layer_names(model)[i] for i in indices]
    how = resolve_pooling(model, pooling)
    spec = input_spec(model)
    if not use_cache:
        return _compute(model, data, indices, names, how, spec, batch_size, device, norm,
                        progress, None)
    key = cache_key(model, data, layers, pooling, norm, device)
    root = cache.cache_dir() / "features"
    entry = root / key
    with cache.locked(entry):
        meta = cache.verify(entry) if entry.exists() else None
        if meta is None:
            partial = root / (key + ".partial")
            _compute(model, data, indices, names, how, spec, batch_size, device, norm, progress,
                     partial)
            files = [f"{i}.npy" for i in range(len(names) + 1)]
            os.remove(partial / "done.json")
            cache.commit(partial, entry, files, {"layers": names + ["logits"], "n": len(data)})
    return _open(entry, names + ["logits"])


def cache_key(model, data: ImageSet, layers="all", pooling: str = "auto", norm: bool = False,
              device=None, weights: str | None = None) -> str:
    """The cache entry of ``extract(model, data, ...)``: weights, architecture, layers, pooling,
    transform, data and dtype. Keep it to :func:`load` the features without the model.
    ``weights``: the model's ``cache.weights_hash`` when the caller has it already."""
    names = [layer_names(model)[i] for i in _layer_indices(model, layers)]
    amp = autocast(get_device(device))
    return cache.make_key(extract, kind="features", weights=weights or cache.weights_hash(model),
                          arch=type(model).__name__, layers=names,
                          pooling=resolve_pooling(model, pooling), norm=norm,
                          transform=describe_transform(input_spec(model)), data=data.fingerprint,
                          dtype=str(getattr(amp, "fast_dtype", "float32")))


def lazy(model, data: ImageSet, layers="all", pooling: str = "auto", norm: bool = False,
         weights: str | None = None) -> cache.Lazy:
    """The layers' features of :func:`extract` (logits left out) as a memoized function's input,
    keyed by :func:`cache_key`: extracted only when some result has to be computed."""
    key = cache_key(model, data, layers, pooling, norm, weights=weights)

    def make():
        out = extract(model, data, layers, pooling, norm=norm, progress=False)
        return {k: v for k, v in out.items() if k != "logits"}

    return cache.Lazy(key, make)


def load(key: str) -> dict[str, np.ndarray] | None:
    """The features ``extract`` cached under ``key`` (:func:`cache_key`), or None when that
    entry is absent or fails its checksums: an analysis-only rerun needs no model."""
    entry = cache.cache_dir() / "features" / key
    with cache.locked(entry):
        meta = cache.verify(entry) if entry.exists() else None
    return None if meta is None else _open(entry, meta["layers"])


def _open(entry: Path, names: list[str]) -> dict[str, np.ndarray]:
    return {name: np.load(entry / f"{i}.npy", mmap_mode="r") for i, name in enumerate(names)}


class _Writer:
    """Appends rows to an .npy file with plain writes (no memory map: resident memory stays at
    one batch however large the file grows), resuming after ``rows`` already written."""

    def __init__(self, path: Path, shape: tuple[int, int], rows: int = 0):
        self.path = path
        fresh = rows == 0 or not path.exists()
        self.f = open(path, "wb" if fresh else "r+b")  # noqa: SIM115 - closed by close()
        if fresh:
            format.write_array_header_1_0(self.f, {"descr": "<f4", "fortran_order": False,
                                                   "shape": shape})
            self.offset = self.f.tell()
        else:
            format.read_magic(self.f)
            format.read_array_header_1_0(self.f)
            self.offset = self.f.tell()
            self.f.seek(self.offset + rows * shape[1] * 4)
            self.f.truncate()

    def write(self, rows: np.ndarray) -> None:
        self.f.write(np.ascontiguousarray(rows, dtype="<f4").tobytes())

    def close(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()


def _one_batch_late(batches, done: int, how: str):
    """(first row, [pooled layers..., logits] as arrays) for each batch of ``predict_batches``,
    yielded once the next batch is queued: on a GPU a batch's one copy to (pinned) host memory
    overlaps the next batch's forward pass instead of stalling it once per layer."""
    pending = None
    for offset, (logits, outs) in batches:
        vecs = [pool(o, how) for o in outs] + [logits]
        sent = (done + offset, [v.shape[1] for v in vecs], *_to_host(torch.cat(vecs, 1).float()))
        if pending is not None:
            yield _arrived(*pending)
        pending = sent
    if pending is not None:
        yield _arrived(*pending)


def _to_host(rows: torch.Tensor):
    """(host copy, event): from a GPU, a copy into pinned memory that does not wait (the event
    marks its arrival); on the CPU, the tensor itself and None."""
    if not rows.is_cuda:
        return rows, None
    host = rows.to("cpu", non_blocking=True)
    arrived = torch.cuda.Event()
    arrived.record()
    return host, arrived


def _arrived(start: int, dims: list[int], rows: torch.Tensor, event) -> tuple:
    if event is not None:
        event.synchronize()
    return start, np.split(rows.numpy(), np.cumsum(dims)[:-1], axis=1)


def _compute(model, data, indices, names, how, spec, batch_size, device, norm, progress, partial):
    from tqdm.auto import tqdm

    n = len(data)
    done, outputs = 0, None
    if partial is not None and (partial / "done.json").exists():
        state = json.loads((partial / "done.json").read_text())
        done = state["rows"]
        outputs = [_Writer(partial / f"{i}.npy", (n, d), done) for i, d in enumerate(state["dims"])]
    elif partial is not None and partial.exists():
        shutil.rmtree(partial)
    bar = tqdm(total=n, initial=done, desc="features", unit="img", disable=not progress,
               leave=False)
    batches = predict_batches(model, data.images[done:],
                              lambda m, x: forward_layers(m, x, indices, norm,
                                                          grid=how == "pool2x2"),
                              batch_size, device, spec)
    for start, vecs in _one_batch_late(batches, done, how):
        if outputs is None:
            if partial is None:
                outputs = [np.empty((n, v.shape[1]), np.float32) for v in vecs]
            else:
                partial.mkdir(parents=True, exist_ok=True)
                outputs = [_Writer(partial / f"{i}.npy", (n, v.shape[1]))
                           for i, v in enumerate(vecs)]
        for out, v in zip(outputs, vecs):
            if partial is None:
                out[start:start + len(v)] = v
            else:
                out.write(v)
        if partial is not None:
            for out in outputs:
                out.f.flush()
            cache.write_json(partial / "done.json", {"rows": start + len(vecs[0]),
                                                     "dims": [v.shape[1] for v in vecs]})
        bar.update(len(vecs[0]))
    bar.close()
    if partial is None:
        return dict(zip(names + ["logits"], outputs))
    for out in outputs:
        out.close()
    return None
