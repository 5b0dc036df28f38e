"""Every chapter runs in the smoke profile and the real book builds from them (the book build
is a test, the ``smoke_book`` fixture of conftest.py); then the browser checks of
tests/test_book.py run on that build, and a killed chapter run resumes to the same numbers.
"""

import html
import os
import re
import signal
import subprocess
import sys
import time

from conftest import ROOT, run_chapter


def test_every_available_chapter_was_executed(smoke_book):
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
                          text=True, capture_output=True, check=False)
    print(proc.stdout[-6000:])
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_a_killed_chapter_run_resumes_to_the_same_numbers(smoke_glued, tmp_path):
    """SIGKILL `helpers run double_descent` (and its kernel) after 10 of its 60 transfer runs,
    run the same command again: the glued numbers equal those of the uninterrupted run."""
    env = {**os.environ, "HELPERS_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "helpers", "run", "double_descent", "--profile", "smoke",
               "--output-dir", str(tmp_path / "out")]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = tmp_path / "cache" / "double_descent"
    deadline = time.monotonic() + 600
    while len(list(runs.glob("*.pt"))) < 10 and time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(runs.glob("*.pt")))
    assert 10 <= done < int(smoke_glued["double_descent"]["dd_n_runs"])
    resumed = run_chapter("double_descent", tmp_path / "out", env=env)
    timeless = lambda g: {k: v for k, v in g.items() if "seconds" not in k}
    assert timeless(resumed) == timeless(smoke_glued["double_descent"])


def test_a_chapter_swept_on_a_dask_cluster_glues_the_local_runs_numbers(smoke_glued, tmp_path):
    """double_descent's 60 transfer runs on two one-thread Dask workers on 127.0.0.1 (a fresh
    cache, so every run is computed there): its glued numbers are bit-identical."""
    from distributed import LocalCluster

    env = {**os.environ, "HELPERS_CACHE": str(tmp_path / "cache")}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as cluster:
        glued = run_chapter("double_descent", tmp_path / "out", env=env,
                            options=("--scheduler", cluster.scheduler_address))
        ran_there = cluster.scheduler.task_prefixes["job"].state_counts  # named by function
    timeless = lambda g: {k: v for k, v in g.items() if "seconds" not in k}
    assert timeless(glued) == timeless(smoke_glued["double_descent"])
    runs = int(glued["dd_n_runs"]) + int(glued["dd_fair_n_runs"])  # the grid and the fair test
    assert len(list((tmp_path / "cache" / "double_descent").glob("*.pt"))) == runs
    assert ran_there["memory"] == runs, ran_there  # all ran on the workers


def test_the_first_page_quotes_every_claim_from_its_chapter(smoke_book, smoke_glued):
    from helpers.book import FINDINGS

    findings = (smoke_book / "book" / "chapters" / "findings.md").read_text()
    assert "not in this run" not in findings
    page = (smoke_book / "_build" / "html" / "book" / "intro.html").read_text()
    page = page.translate(str.maketrans({"\u2019": "'", "\u201c": '"', "\u201d": '"'}))
    for chapter, *_, verdict in FINDINGS:
        for name in re.findall(r"\{(\w+)\}", verdict):
            assert html.escape(smoke_glued[chapter][name], quote=False) in page, (chapter, name)
