"""Device choice, mixed precision and seeding (used by every chapter)."""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

_DEVICES = ("cuda", "mps", "cpu")
_notified = False


def get_device(prefer: str | None = None, quiet: bool = False) -> torch.device:
    """Return cuda > mps > cpu, or `prefer` (also read from env ``HELPERS_DEVICE``).

    Prints a one-line notice the first time it falls back to the CPU.
    """
    global _notified
    prefer = prefer or os.environ.get("HELPERS_DEVICE") or None
    if prefer is not None:
        kind = str(prefer).split(":")[0]
        if kind not in _DEVICES:
            raise ValueError(f"device must be one of {_DEVICES}, got {prefer!r}")
        if kind == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' was asked for, but torch sees no CUDA GPU")
        if kind == "mps" and not torch.backends.mps.is_available():
            raise ValueError("device='mps' was asked for, but MPS is not available")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    if not (_notified or quiet):
        print("helpers: running on the CPU (no GPU found); the embedded default profile is sized for it.")
        _notified = True
    return torch.device("cpu")


def device_name(device: torch.device | str | None = None) -> str:
    """The GPU's name, or ``CPU (n cores)``: what a chapter ran on (the course page's table)."""
    device = torch.device(device or get_device(quiet=True))
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "Apple MPS" if device.type == "mps" else f"CPU ({os.cpu_count()} cores)"


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """Autocast dtype: bf16 on CUDA GPUs that support it, fp16 on older CUDA, none elsewhere."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device | str, enabled: bool = True):
    """Context manager for mixed precision on GPU; a no-op on CPU."""
    device = torch.device(device)
    dtype = amp_dtype(device)
    if not enabled or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def one_thread():
    """Torch on one CPU thread inside the block: many tiny ops (probes, metrics) run faster on
    one thread than on several, whose synchronisation dominates and collapses when other
    processes share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_ENVIRONMENT = ("HELPERS_CACHE", "HELPERS_DEVICE")


def _single_threaded(fn, args, kwargs, env):
    global _notified
    os.environ.update(env)  # worker processes are reused: take the caller's cache of now
    _notified = True  # the caller already said whether it runs on the CPU
    torch.set_num_threads(1)
    return fn(*args, **kwargs)


def _numbered(i, fn, args, kwargs, env):
    return i, _single_threaded(fn, args, kwargs, env)


def parallel_map(fn, jobs, workers: int = 1, label: str | None = None,
                 cached_first: bool = False, **kwargs) -> list:
    """``[fn(*job, **kwargs) for job in jobs]``, run by ``workers`` single-threaded processes.

    On a 2-core CPU, two one-thread processes train small models at batch 16-32 about 2x faster
    than one process on two threads (bench/RESULTS.md). ``fn`` must be importable (a module
    function). With one worker, one job or a GPU, the jobs run here, in order. ``label``
    prints one line per finished job. With ``cached_first``, ``fn(*job, cached_only=True)``
    runs here first and only the jobs it returns None for (not cached) go to the workers, so a
    rerun starts no process. Chapters 1, 2 and 4 run their independent trainings so.
    """
    import time

    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    jobs = [tuple(j) for j in jobs]
    if cached_first:
        out = [fn(*job, cached_only=True, **kwargs) for job in jobs]
        todo = [i for i, r in enumerate(out) if r is None]
        for i, r in zip(todo, parallel_map(fn, [jobs[i] for i in todo], workers, label, **kwargs),
                        strict=True):
            out[i] = r
        return out
    tic = time.perf_counter()

    def report(i):
        if label:
            print(f"{label}: {i + 1}/{len(jobs)} done ({time.perf_counter() - tic:.0f} s)",
                  flush=True)

    if workers == 1 or len(jobs) < 2 or torch.cuda.is_available():
        out = []
        for i, job in enumerate(jobs):
            out.append(fn(*job, **kwargs))
            report(i)
        return out
    from joblib import Parallel, delayed

    env = {k: os.environ[k] for k in _ENVIRONMENT if k in os.environ}
    results = Parallel(n_jobs=min(workers, len(jobs)), backend="loky",
                       return_as="generator_unordered")(
        delayed(_numbered)(i, fn, job, kwargs, env) for i, job in enumerate(jobs))
    out = [None] * len(jobs)
    for done, (i, result) in enumerate(results):
        out[i] = result
        report(done)
    return out
