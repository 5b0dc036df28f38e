"""One job runner for every sweep of independent work (zoo members, fine-tunes, transfer runs).

``run(fn, jobs, workers=...)`` is ``[fn(*job, **shared) for job in jobs]``: cached jobs are read
here first; the rest run where :func:`scheduler` says (``HELPERS_SCHEDULER``, or ``--scheduler``
of ``python -m helpers run|book``):

- ``local`` (default): ``workers`` processes (joblib/loky): one thread each on a CPU; on a GPU
  they share it (small jobs leave a GPU mostly idle: bench/jobs_gpu.py); one worker: here;
- ``gpus``: a Dask cluster on 127.0.0.1 with ``workers`` one-thread worker processes spread
  over the visible GPUs (at least one each), each pinned with ``CUDA_VISIBLE_DEVICES``;
- ``tcp://HOST:PORT``: an existing Dask scheduler and its workers;
- ``slurm``: dask-jobqueue's ``SLURMCluster`` from the user's jobqueue config, ``workers`` jobs.

``workers`` is the number of jobs in flight. On Dask, every large argument (a data set, a
model) is sent to the workers once, a worker that dies has its job rerun elsewhere (jobs
resume from their checkpoints), and the cache directory must be one that every worker sees:
it is checked when the cluster is first used. The book's "Beyond one machine" (README).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
import socket
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

SCHEDULERS = ("local", "gpus", "slurm", "tcp://HOST:PORT")
#: environment the jobs need from the caller (workers are reused, or remote)
ENVIRONMENT = ("HELPERS_CACHE", "HELPERS_DEVICE")
_TCP = re.compile(r"^tcp://[\w.\-\[\]:]+:\d+$")
_clients: dict[str, tuple[object, int]] = {}  # scheduler -> (client, workers)
_checked: set[tuple[str, str]] = set()


def check_scheduler(value: str) -> str:
    """``value`` if it names a scheduler (:data:`SCHEDULERS`), else a ValueError that says so."""
    if isinstance(value, str) and (value in SCHEDULERS[:3] or _TCP.match(value)):
        return value
    raise ValueError(f"scheduler must be one of 'local', 'gpus', 'slurm' or 'tcp://HOST:PORT', "
                     f"got {value!r}")


def scheduler() -> str:
    """The scheduler in use: ``HELPERS_SCHEDULER``, else ``local``."""
    return check_scheduler(os.environ.get("HELPERS_SCHEDULER") or "local")


def use_scheduler(value: str) -> None:
    """Run the following sweeps on ``value`` (for JupyterLab; the CLI's ``--scheduler``)."""
    os.environ["HELPERS_SCHEDULER"] = check_scheduler(value)


def run(fn: Callable, jobs: Iterable, workers: int = 1, label: str | None = None,
        cached_first: bool = False, cache: str | None = None, **shared) -> list:
    """``[fn(*job, **shared) for job in jobs]``, in job order, on :func:`scheduler`.

    ``fn`` must be a module-level function. ``cache``: each result is kept by
    :func:`helpers.cache.memo` in that folder of the cache (the worker writes it, so a killed
    sweep keeps what it finished), and the cached ones are read here. With ``cached_first``
    (implied by ``cache``), ``fn(*job, **shared, cached_only=True)`` runs here first and only
    the jobs it returns None for (not cached) are sent out, so a rerun starts no process.
    ``label``: one progress bar (done/total, ETA).
    """
    if not isinstance(workers, (int, np.integer)) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if cache is not None:
        fn, cached_first = functools.partial(_memo, fn, cache), True
    jobs = [tuple(j) for j in jobs]
    out = [None] * len(jobs)
    todo = list(range(len(jobs)))
    if cached_first:
        out = [fn(*job, cached_only=True, **shared) for job in jobs]
        todo = [i for i, r in enumerate(out) if r is None]
    if not todo:
        return out
    where = scheduler()
    bar = _progress(label, len(todo))
    try:
        if where == "local":
            results = _local(fn, [jobs[i] for i in todo], workers, shared)
        else:
            results = _dask(_client(where, workers), fn, [jobs[i] for i in todo], workers, shared)
        for done, (j, result) in enumerate(results):
            out[todo[j]] = result
            bar.update(1)
            if done + 1 == len(todo):
                break
    finally:
        bar.close()
    return out


def _memo(fn: Callable, folder: str, *args, cached_only: bool = False, **kwargs):
    """``fn(*args, **kwargs)`` through the one memoizer (a module function: workers import it)."""
    from .cache import memo

    return memo(fn, *args, folder=folder, cached_only=cached_only, **kwargs)


def _progress(label: str | None, total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc=label, disable=not label, file=sys.stderr, mininterval=1.0,
                unit="job")


def _environment() -> dict:
    return {k: os.environ[k] for k in ENVIRONMENT if k in os.environ}


def _call(i: int, fn: Callable, args: tuple, shared: dict, env: dict):
    """One job in a worker: the caller's environment, one torch thread on a CPU."""
    import torch

    from . import device

    os.environ.update(env)
    device._notified = True  # the caller already said whether it runs on the CPU
    if not torch.cuda.is_available():
        torch.set_num_threads(1)
    return i, fn(*args, **shared)


def _local(fn, jobs: list, workers: int, shared: dict):
    """(index, result) pairs: ``workers`` processes (sharing the GPU, if any), or here with one."""
    if workers == 1 or len(jobs) < 2:
        return ((i, fn(*job, **shared)) for i, job in enumerate(jobs))
    from joblib import Parallel, delayed

    env = _environment()
    return Parallel(n_jobs=min(workers, len(jobs)), backend="loky",
                    return_as="generator_unordered")(
        delayed(_call)(i, fn, job, shared, env) for i, job in enumerate(jobs))


def _dask(client, fn, jobs: list, workers: int, shared: dict):
    """(index, result) pairs as jobs finish, at most ``workers`` in flight; every argument that
    is not a plain value is scattered once (by identity), not sent inside every job."""
    from distributed import as_completed

    sent: dict[int, object] = {}

    def once(value):
        if isinstance(value, (str, bytes, int, float, bool, type(None), Path)):
            return value
        if id(value) not in sent:
            sent[id(value)] = client.scatter(value, broadcast=False, hash=False)
        return sent[id(value)]

    shared = {k: once(v) for k, v in shared.items()}
    env = _environment()
    queue = iter(enumerate(jobs))

    def submit(i, job):
        return client.submit(_call, i, fn, tuple(once(a) for a in job), shared, env,
                             pure=False, key=f"{getattr(fn, '__name__', 'job')}-{i}-"
                                             f"{secrets.token_hex(4)}")

    running = as_completed([submit(i, job) for i, job in
                            (next(queue) for _ in range(min(workers, len(jobs))))])
    for future in running:
        yield future.result()
        nxt = next(queue, None)
        if nxt is not None:
            running.add(submit(*nxt))


def _client(where: str, workers: int):
    """A Dask client for ``where``, kept for the process; a cluster started here is started
    again for another number of ``workers``; the cache is checked to be shared."""
    from . import cache

    client, made_for = _clients.get(where, (None, workers))
    if client is not None and made_for != workers and not where.startswith("tcp://"):
        _close(client)
        client = None
    if client is None or client.status != "running":
        client = _connect(where, workers)
        _clients[where] = (client, workers)
        _checked.difference_update({c for c in _checked if c[0] == where})  # new workers
    root = str(cache.cache_dir())
    if (where, root) not in _checked:
        check_shared_cache(client, root)
        _checked.add((where, root))
    return client


def _connect(where: str, workers: int):
    from distributed import Client

    if where.startswith("tcp://"):
        try:
            return Client(where, timeout="20s")
        except OSError as err:
            raise RuntimeError(f"scheduler {where}: no Dask scheduler answers there ({err})"
                               ) from None
    if where == "gpus":
        import torch

        n = torch.cuda.device_count()
        if n == 0:
            raise RuntimeError("scheduler 'gpus': torch sees no CUDA GPU on this machine; use "
                               "'local' (or a tcp:// scheduler whose workers have GPUs)")
        return Client(gpu_cluster([str(i) for i in range(n)], per_device=-(-workers // n)))
    return Client(slurm_cluster(workers))


def gpu_cluster(devices: list[str], per_device: int = 1):
    """A Dask cluster on 127.0.0.1: ``per_device`` one-thread worker processes per device, each
    seeing only its own GPU (``CUDA_VISIBLE_DEVICES``). Small jobs leave a GPU mostly idle:
    double descent's at 32 px ran 2.7-3.6x faster four at a time on an H200 (bench/jobs_gpu.py)."""
    from distributed import Nanny, Scheduler, SpecCluster

    scheduler_spec = {"cls": Scheduler, "options": {"host": "127.0.0.1",
                                                    "dashboard_address": None}}
    workers = {f"gpu{d}-{j}": {"cls": Nanny, "options": {
        "nthreads": 1, "host": "127.0.0.1", "env": {"CUDA_VISIBLE_DEVICES": d},
        "silence_logs": logging.ERROR}}
        for d in devices for j in range(per_device)}
    return SpecCluster(workers=workers, scheduler=scheduler_spec, silence_logs=logging.ERROR)


def slurm_cluster(workers: int):
    """dask-jobqueue's SLURMCluster from the user's jobqueue config (``~/.config/dask/
    jobqueue.yaml``: queue, account, cores, memory, walltime, job_extra_directives for GPUs),
    scaled to ``workers`` jobs."""
    try:
        from dask_jobqueue import SLURMCluster
        cluster = SLURMCluster()
    except (ImportError, ValueError) as err:
        raise RuntimeError(f"scheduler 'slurm': {err} (set it in ~/.config/dask/jobqueue.yaml, "
                           "section jobqueue.slurm; README, 'Beyond one machine')") from None
    cluster.scale(jobs=workers)
    return cluster


def _write_probe(root: str, token: str) -> str:
    """In a worker: write a probe file into the cache directory; its name says who wrote it."""
    host = socket.gethostname()
    path = Path(root) / f".probe-{token}-{host}-{os.getpid()}"
    Path(root).mkdir(parents=True, exist_ok=True)
    path.write_text(host)
    return path.name


def check_shared_cache(client, root: str) -> None:
    """Every worker writes a file into the cache directory ``root`` and this process reads it:
    a RuntimeError naming ``HELPERS_CACHE`` if a worker cannot, or writes elsewhere."""
    token = secrets.token_hex(6)
    try:
        written = client.run(_write_probe, root, token)
    except OSError as err:
        written, failed = {}, str(err)
    else:
        failed = ""
    seen = {p.name for p in Path(root).glob(f".probe-{token}-*")}
    for name in seen:
        (Path(root) / name).unlink(missing_ok=True)
    lost = sorted(w for w, name in written.items() if name not in seen)
    if failed or lost or not written:
        who = failed or (", ".join(lost) if lost else "no worker answered")
        raise RuntimeError(f"the cache directory {root} is not shared with the Dask workers "
                           f"({who}): set HELPERS_CACHE to a directory that every worker and "
                           "this machine see (a network file system)")


def _close(client) -> None:
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def close() -> None:
    """Close the clients (and the clusters this process started)."""
    for client, _ in _clients.values():
        _close(client)
    _clients.clear()
    _checked.clear()
