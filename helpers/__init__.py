"""Helpers for the book *Which layer generalizes?*.

The package carries the logic; the chapters (``notebooks/``) carry the story. Data flows
``data`` -> ``zoo``/``models`` -> ``train`` -> ``features`` -> ``metrics`` -> ``plots``.
"""

import ctypes
import os
import platform
import warnings

__version__ = "0.1.0"

#: glibc's ``mallopt`` parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Let this process reuse the memory it frees instead of handing it back to the system
    (glibc only; ``HELPERS_MALLOC=system`` keeps glibc's own policy). glibc maps large blocks
    (from 128 KiB, rising to 32 MiB) afresh and unmaps them when freed, so every batch of a CPU
    forward pass page-faults zeroed memory again: at batch 256 20-40 % of its time (Methods,
    "One forward pass"). Applied when the package is imported; True if it was."""
    policy = os.environ.get("HELPERS_MALLOC", "keep")
    if policy not in ("keep", "system"):
        warnings.warn(f"HELPERS_MALLOC must be 'keep' or 'system', got {policy!r}: using 'keep'",
                      stacklevel=2)
    if policy == "system" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 2**30)
                    and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False


keep_freed_memory()
