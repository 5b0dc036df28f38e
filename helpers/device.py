"""Device choice, mixed precision and seeding (used by every chapter)."""

from __future__ import annotations

import contextlib
import os
import random
import sys

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
        print("helpers: running on the CPU (no GPU found); the embedded default profile is "
              "sized for it.", file=sys.stderr)
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
