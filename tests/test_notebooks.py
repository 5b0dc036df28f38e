"""Every chapter runs in the smoke profile and the real book builds from them (the book build
is a test); then the browser checks of tests/test_book.py run on that build.

Works on a copy of the tracked sources so that a developer's own `make book` output is kept.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _copy_sources(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, text=True, capture_output=True,
                           check=True).stdout.split()
    for f in files:
        target = dst / f
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, target)
    vendor = ROOT / "book" / "_vendor"
    if vendor.exists():
        shutil.copytree(vendor, dst / "book" / "_vendor")


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke-book")
    _copy_sources(root)
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-m", "helpers", "book", "--profile", "smoke"],
                          cwd=root, env=env, text=True, capture_output=True)
    print(proc.stdout[-4000:], proc.stderr[-4000:])
    assert proc.returncode == 0, "the smoke book did not build:\n" + proc.stderr[-3000:]
    return root


def test_every_available_chapter_was_executed(smoke_book):
    sys.path.insert(0, str(ROOT))
    from helpers import chapters

    executed = {p.stem for p in (smoke_book / "book" / "chapters").glob("*.ipynb")}
    ids = {c.id for c in chapters.available()}
    assert ids and ids <= executed
    for ch in ids:
        assert (smoke_book / "_build" / "html" / "book" / "chapters" / f"{ch}.html").exists()


def test_browser_checks_pass_on_the_real_book(smoke_book):
    env = {**os.environ, "BOOK_BUILT": "1", "PYTHONPATH": str(smoke_book)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(smoke_book / "tests" / "test_book.py")], cwd=smoke_book, env=env,
                          text=True, capture_output=True)
    print(proc.stdout[-6000:])
    assert proc.returncode == 0, proc.stdout[-4000:]
