"""Shared fixtures: an isolated cache per test session, no network, small data."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

_OWN_CACHE = None
if "HELPERS_CACHE" not in os.environ:
    _OWN_CACHE = os.environ["HELPERS_CACHE"] = tempfile.mkdtemp(prefix="helpers-test-cache-")
os.environ.setdefault("HELPERS_PROFILE", "smoke")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

_connect = socket.socket.connect


def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1")
                                      or self.family == socket.AF_UNIX):
        raise OSError(f"tests must not touch the network (tried {address})")
    return _connect(self, address)


socket.socket.connect = _loopback_only


def pytest_sessionfinish(session, exitstatus):
    """Remove the session's own cache (a few hundred MB); a cache the caller named stays."""
    if _OWN_CACHE:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def mnist():
    from helpers import data

    return data.mnist5k()


@pytest.fixture
def small_set(mnist):
    from helpers import data

    return data.per_class(mnist, 12, seed=0)


ROOT = Path(__file__).resolve().parents[1]


def _copy_sources(dst: Path) -> None:
    """The tracked files (and the vendored front-end assets) of the checkout, copied to ``dst``."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, text=True, capture_output=True,
                           check=True).stdout.split()
    for f in files:
        if (ROOT / f).exists():
            target = dst / f
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, target)
    vendor = ROOT / "book" / "_vendor"
    if vendor.exists():
        shutil.copytree(vendor, dst / "book" / "_vendor")


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """Every chapter run in the smoke profile and the book built, once per test session, in a
    copy of the sources (a developer's own `make book` output is kept)."""
    root = tmp_path_factory.mktemp("smoke-book")
    _copy_sources(root)
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-m", "helpers", "book", "--profile", "smoke"],
                          cwd=root, env=env, text=True, capture_output=True, check=False)
    print(proc.stdout[-4000:], proc.stderr[-4000:])
    assert proc.returncode == 0, "the smoke book did not build:\n" + proc.stderr[-3000:]
    return root


def run_chapter(chapter: str, out: Path, *params: str, env: dict | None = None,
                timeout: float = 900, options: tuple = ()) -> dict[str, str]:
    """Run ``chapter`` in the smoke profile with ``-p`` ``params`` (and the command-line
    ``options``) into ``out``; its glued values."""
    from helpers.book import glued

    args = [x for p in params for x in ("-p", p)] + list(options)
    done = subprocess.run([sys.executable, "-m", "helpers", "run", chapter, "--profile", "smoke",
                           *args, "--output-dir", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env or os.environ.copy(), check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return glued(out / f"{chapter}.ipynb")


@pytest.fixture(scope="session")
def smoke_glued(smoke_book):
    """chapter id -> the values its smoke-profile run glued (from the smoke book)."""
    from helpers.book import glued

    return {p.stem: glued(p) for p in (smoke_book / "book" / "chapters").glob("*.ipynb")}
