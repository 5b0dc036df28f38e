"""Sweeps of independent jobs (helpers.jobs.run): a Dask cluster on 127.0.0.1 against local
one-thread processes, on jobs of ~0.2 s and ~2 s of CPU work, sides alternating round by round.
Called by bench/run.py; ``python bench/sweep.py`` prints the rows alone."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import jobs


def busy(steps: int, seed: int) -> float:
    """A job of fixed CPU work: ``steps`` 192x192 matrix products on one thread."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(192, 192, generator=g), torch.randn(192, 192, generator=g)
    for _ in range(steps):
        a = torch.tanh(a @ b)
    return float(a.sum())


def _steps_for(seconds: float) -> int:
    """Steps of :func:`busy` that take about ``seconds`` on one thread here."""
    torch.set_num_threads(1)
    busy(20, 0)
    tic = time.perf_counter()
    busy(200, 0)
    return max(1, round(200 * seconds / (time.perf_counter() - tic)))


def _sweep(where: str, steps: int, n: int, workers: int) -> float:
    os.environ["HELPERS_SCHEDULER"] = where
    tic = time.perf_counter()
    out = jobs.run(busy, [(steps, i) for i in range(n)], workers=workers)
    seconds = time.perf_counter() - tic
    assert len(out) == n
    return seconds


def bench_sweep(quick: bool = False) -> list[dict]:
    """Per-job overhead of the Dask backend over local processes, and 2-worker efficiency."""
    from distributed import LocalCluster

    threads = torch.get_num_threads()
    rounds = 2 if quick else 3
    rows = []
    before = os.environ.get("HELPERS_SCHEDULER")
    tic = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as cluster:
        startup = time.perf_counter() - tic
        dask = cluster.scheduler_address
        try:
            for seconds, n in ((0.2, 20), (2.0, 6)):
                steps = _steps_for(seconds)
                torch.set_num_threads(threads)
                _sweep("local", steps, 2, 2)  # warm both sides: workers started, imports done
                _sweep(dask, steps, 2, 2)
                local, remote = [], []
                for _ in range(rounds):
                    local.append(_sweep("local", steps, n, 2))
                    remote.append(_sweep(dask, steps, n, 2))
                t_local, t_dask = sorted(local)[len(local) // 2], sorted(remote)[len(remote) // 2]
                per_job = (t_dask - t_local) * 2 / n  # worker-seconds lost per job
                rows.append({"benchmark": f"Dask cluster / local processes, ~{seconds:g} s jobs",
                             "ours_s": t_dask, "baseline_s": t_local, "ratio": t_dask / t_local,
                             "target": "overhead < 5 % of a 2 s job" if seconds == 2 else "info",
                             "met": per_job < 0.1 if seconds == 2 else True,
                             "sizes": f"{n} jobs, 2 one-thread workers on 127.0.0.1; overhead "
                                      f"{per_job * 1e3:.0f} ms a job ({per_job / seconds:.1%}); "
                                      f"{n / t_dask:.2f} jobs/s on Dask, {n / t_local:.2f} local;"
                                      f" cluster start {startup:.1f} s"})
            steps = _steps_for(0.2)
            one = _sweep(dask, steps, 20, 1)
            two = _sweep(dask, steps, 20, 2)
            rows.append({"benchmark": "2 Dask workers / 1, ~0.2 s jobs (efficiency)",
                         "ours_s": two, "baseline_s": one, "ratio": one / (2 * two),
                         "target": "info (2 cores, shared)", "met": True,
                         "sizes": f"20 jobs: {20 / one:.2f} jobs/s with 1 worker, "
                                  f"{20 / two:.2f} with 2"})
        finally:
            jobs.close()
            torch.set_num_threads(threads)
            if before is None:
                os.environ.pop("HELPERS_SCHEDULER", None)
            else:
                os.environ["HELPERS_SCHEDULER"] = before
    return rows


if __name__ == "__main__":
    for row in bench_sweep("--quick" in sys.argv):
        print(f"{row['benchmark']}: ratio {row['ratio']:.3f} ({row['sizes']})")
