"""Device choice and the parallel runner of independent trainings (helpers.device)."""

import operator
import os
import time

import pytest
import torch

from helpers import device


def test_parallel_map_keeps_job_order_and_runs_one_thread_worker_processes():
    assert device.parallel_map(operator.add, [(i, 10) for i in range(5)], workers=2) == [
        10, 11, 12, 13, 14]
    assert device.parallel_map(torch.get_num_threads, [()] * 2, workers=2) == [1, 1]
    assert os.getpid() not in device.parallel_map(os.getpid, [()] * 3, workers=2)
    assert device.parallel_map(os.getpid, [()] * 2, workers=1) == [os.getpid()] * 2


def test_results_keep_job_order_when_a_later_job_finishes_first(capsys):
    nap = lambda seconds: (time.sleep(seconds), seconds)[1]
    assert device.parallel_map(nap, [(1.5,), (0.0,), (0.1,)], workers=2, label="naps") == [
        1.5, 0.0, 0.1]
    assert "naps: 3/3 done" in capsys.readouterr().out


def test_cached_first_sends_only_the_misses_to_the_workers():
    def job(x, cached_only=False):
        if cached_only:
            return ("cached", x) if x % 2 == 0 else None
        return ("computed", x, os.getpid())

    out = device.parallel_map(job, [(x,) for x in range(5)], workers=2, cached_first=True)
    assert [o[:2] for o in out] == [("cached", 0), ("computed", 1), ("cached", 2),
                                    ("computed", 3), ("cached", 4)]
    assert os.getpid() not in {o[2] for o in out if o[0] == "computed"}


def test_parallel_workers_use_the_callers_cache_of_now(monkeypatch, tmp_path):
    device.parallel_map(os.getpid, [()] * 2, workers=2)  # start (or reuse) the workers
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))
    assert device.parallel_map(os.environ.get, [("HELPERS_CACHE",)] * 2, workers=2) == [
        str(tmp_path)] * 2


def test_parallel_map_prints_progress_and_rejects_bad_workers(capsys):
    device.parallel_map(abs, [(-1,), (2,)], workers=1, label="demo")
    assert "demo: 2/2 done" in capsys.readouterr().out
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        device.parallel_map(abs, [(1,)], workers=0)
