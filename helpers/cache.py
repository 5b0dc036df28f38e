"""Content-addressed on-disk cache: keys cover everything that determines an entry; every
entry is written atomically, checksummed, and recomputed when found corrupted."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from . import __version__


def cache_dir() -> Path:
    """``$HELPERS_CACHE``, else ``.cache/`` of the source checkout, else ``~/.cache/which-layer``."""
    env = os.environ.get("HELPERS_CACHE")
    if env:
        path = Path(env).expanduser()
    else:
        root = Path(__file__).resolve().parents[1]
        path = root / ".cache" if (root / "pyproject.toml").exists() else Path.home() / ".cache" / "which-layer"
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_key(**parts) -> str:
    """SHA-256 of the parts (JSON, sorted) and the package version."""
    text = json.dumps({**parts, "helpers_version": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def weights_hash(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer (names, shapes, values)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock (``path.lock``) so two processes never build the same entry at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def commit(tmp: Path, final: Path, files: list[str], meta: dict) -> None:
    """Write checksums + meta into ``tmp`` and rename it to ``final`` (atomic)."""
    meta = {**meta, "sha256": {f: file_sha256(tmp / f) for f in files}}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)


def verify(entry: Path) -> dict | None:
    """The entry's meta if every file matches its checksum; else warn, remove it, None."""
    meta_file = entry / "meta.json"
    if not meta_file.exists():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        bad = [f for f, digest in meta["sha256"].items() if file_sha256(entry / f) != digest]
    except (OSError, ValueError, KeyError) as err:
        bad = [f"meta.json ({err})"]
    if bad:
        warnings.warn(f"cache entry {entry.name} is corrupted ({', '.join(bad)}): recomputing")
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return meta


def temp_dir(parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent, prefix=".tmp-"))


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``; None if it is missing or unreadable (a killed write)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temp file of this process, then a rename."""
    path = Path(path)
    tmp = path.with_suffix(f"{path.suffix}.tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def write_json(path: Path, obj: dict) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    write_atomic(path, json.dumps(obj, indent=1, default=str))


def save_atomic(obj, path: Path) -> None:
    """``torch.save`` to ``path`` atomically: a temp file of this process, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f"{path.suffix}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    tmp.replace(path)


def load_saved(path: Path):
    """What :func:`save_atomic` wrote to ``path``; None if it is missing, or unreadable (then it
    is removed, to be built again)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, weights_only=False)
    except (OSError, EOFError, RuntimeError, AttributeError, KeyError, pickle.UnpicklingError):
        path.unlink(missing_ok=True)
        return None


def verified_report(report_file: Path, weights: Path) -> dict | None:
    """The JSON report of a finished training whose ``weights`` file still has the sha256 the
    report recorded; None when either is missing, truncated or changed."""
    report = read_json(report_file)
    if report and Path(weights).exists() and report.get("sha256") == file_sha256(weights):
        return report
    return None
