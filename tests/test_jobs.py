"""The job runner (helpers.jobs): local processes, a Dask cluster on 127.0.0.1, a killed worker."""

import operator
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from helpers import cache, data, jobs, models, train
from helpers.device import one_thread


def test_local_runner_keeps_job_order_and_runs_one_thread_worker_processes():
    assert jobs.run(operator.add, [(i, 10) for i in range(5)], workers=2) == [10, 11, 12, 13, 14]
    assert jobs.run(torch.get_num_threads, [()] * 2, workers=2) == [1, 1]
    assert os.getpid() not in jobs.run(os.getpid, [()] * 3, workers=2)
    assert jobs.run(os.getpid, [()] * 2, workers=1) == [os.getpid()] * 2


def test_results_keep_job_order_when_a_later_job_finishes_first(capsys):
    nap = lambda seconds: (time.sleep(seconds), seconds)[1]
    assert jobs.run(nap, [(1.5,), (0.0,), (0.1,)], workers=2, label="naps") == [1.5, 0.0, 0.1]
    assert "naps: 100%" in capsys.readouterr().err


def test_cached_first_sends_only_the_misses_to_the_workers():
    def job(x, cached_only=False):
        if cached_only:
            return ("cached", x) if x % 2 == 0 else None
        return ("computed", x, os.getpid())

    out = jobs.run(job, [(x,) for x in range(5)], workers=2, cached_first=True)
    assert [o[:2] for o in out] == [("cached", 0), ("computed", 1), ("cached", 2),
                                    ("computed", 3), ("cached", 4)]
    assert os.getpid() not in {o[2] for o in out if o[0] == "computed"}


def test_workers_use_the_callers_cache_of_now(monkeypatch, tmp_path):
    jobs.run(os.getpid, [()] * 2, workers=2)  # start (or reuse) the workers
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))
    assert jobs.run(os.environ.get, [("HELPERS_CACHE",)] * 2, workers=2) == [str(tmp_path)] * 2


def test_bad_workers_and_schedulers_are_named(monkeypatch):
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        jobs.run(abs, [(1,)], workers=0)
    for bad in ("ray", "tcp://nohost", "gpu"):
        with pytest.raises(ValueError, match="scheduler must be one of 'local', 'gpus'"):
            jobs.use_scheduler(bad)
    monkeypatch.setenv("HELPERS_SCHEDULER", "dask")
    with pytest.raises(ValueError, match="got 'dask'"):
        jobs.run(abs, [(1,)])
    monkeypatch.setenv("HELPERS_SCHEDULER", "tcp://127.0.0.1:9")  # nothing listens there
    with pytest.raises(RuntimeError, match="no Dask scheduler answers"):
        jobs.run(abs, [(1,), (2,)])


def test_a_cache_the_workers_do_not_share_stops_the_run_with_one_line(tmp_path):
    class Elsewhere:  # a worker whose file system is not ours: its file never shows up here
        def run(self, fn, root, token):
            return {"tcp://10.0.0.2:4000": f".probe-{token}-node2-1"}

    with pytest.raises(RuntimeError, match=r"not shared .*tcp://10.0.0.2:4000.*HELPERS_CACHE"):
        jobs.check_shared_cache(Elsewhere(), str(tmp_path))


@pytest.fixture(scope="module")
def cluster():
    """Two one-thread worker processes and their scheduler, all on 127.0.0.1."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as c:
        yield c
    jobs.close()


def _pid_and_thread_count(_):
    return os.getpid(), torch.get_num_threads(), os.environ.get("HELPERS_CACHE")


def test_dask_runner_matches_local_order_and_environment(cluster, monkeypatch, tmp_path):
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))
    monkeypatch.setenv("HELPERS_SCHEDULER", cluster.scheduler_address)
    big = torch.arange(1_000_000)  # sent to the workers once, not in each job
    assert jobs.run(operator.getitem, [(big, i) for i in range(6)], workers=2) == list(range(6))
    out = jobs.run(_pid_and_thread_count, [(i,) for i in range(4)], workers=2)
    assert {o[1:] for o in out} == {(1, str(tmp_path))}
    assert os.getpid() not in {o[0] for o in out} and len({o[0] for o in out}) == 2
    assert not list(tmp_path.glob(".probe-*"))  # the shared-cache check cleans up


def _visible_devices():
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def test_gpu_workers_per_device_each_see_only_their_own():
    import torch
    from distributed import Client

    # the machine's GPUs (distributed asks NVML about each); without one, labels only
    devices = [str(i) for i in range(torch.cuda.device_count())] or ["0", "1"]
    with jobs.gpu_cluster(devices, per_device=2) as c, Client(c) as client:
        seen = client.run(_visible_devices)
        assert sorted(seen.values()) == sorted(devices * 2)
        assert all(addr.startswith("tcp://127.0.0.1:") for addr in seen)


def test_a_gpus_cluster_is_started_again_for_another_number_of_workers(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # a label where there is no GPU
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))
    monkeypatch.setenv("HELPERS_SCHEDULER", "gpus")
    try:
        for workers in (2, 1, 1):
            before = jobs._clients.get("gpus", (None,))[0]
            jobs.run(os.getpid, [()] * 2, workers=workers)
            client = jobs._clients["gpus"][0]
            assert len(client.scheduler_info()["workers"]) == workers
        assert client is before  # the same number again: the same cluster
    finally:
        jobs.close()


def test_slurm_cluster_reads_the_users_jobqueue_config():
    import dask
    import dask_jobqueue  # noqa: F401 - loads the jobqueue section of the config

    unset = {"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}
    with pytest.raises(RuntimeError, match="jobqueue.yaml"), dask.config.set(unset):
        jobs.slurm_cluster(0)
    config = {"jobqueue.slurm.cores": 1, "jobqueue.slurm.memory": "4GB",
              "jobqueue.slurm.walltime": "02:00:00",
              "jobqueue.slurm.job-extra-directives": ["--gres=gpu:1"],
              "jobqueue.slurm.scheduler-options": {"host": "127.0.0.1",
                                                   "dashboard_address": None}}
    with dask.config.set(config):  # jobqueue reads it lazily: keep it while the cluster lives
        cluster = jobs.slurm_cluster(0)
        try:
            script = cluster.job_script()
            assert "#SBATCH --gres=gpu:1" in script and "#SBATCH -t 02:00:00" in script
            assert "--nthreads 1" in script
            assert cluster.scheduler_address.startswith("tcp://127.0.0.1")
        finally:
            cluster.close()


# -- a worker killed in the middle of a training job -------------------------------------------

def _train_job(seed: int, root: str, pid_dir: str) -> dict:
    """A small training with an epoch checkpoint: its weights' hash and history."""
    Path(pid_dir, f"{seed}-{os.getpid()}").touch()
    d = data.per_class(data.sklearn_digits(resolution=16), 20, seed=0)
    torch.manual_seed(seed)
    model = models.create(models.SMALL_CNN, 10, width=8, depth=3, img_size=16)
    ckpt = Path(root) / f"job{seed}.ckpt"
    hist = train.fit(model, d, None, epochs=12, lr=1e-3, batch_size=20, seed=seed,
                     checkpoint=ckpt, checkpoint_every=0, progress=False)
    return {"weights": cache.weights_hash(model), "loss": hist["train_loss"].tolist()}


def test_a_worker_killed_mid_job_is_replaced_and_the_sweep_ends_as_if_not(cluster, monkeypatch,
                                                                         tmp_path):
    with one_thread():
        expected = [_train_job(s, str(tmp_path / "ref"), str(tmp_path)) for s in (0, 1)]
    root, pids = tmp_path / "run", tmp_path / "pids"
    root.mkdir()
    pids.mkdir()
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HELPERS_SCHEDULER", cluster.scheduler_address)
    out = {}
    sweep = threading.Thread(target=lambda: out.update(result=jobs.run(
        _train_job, [(0, str(root), str(pids)), (1, str(root), str(pids))], workers=2)))
    sweep.start()
    deadline = time.time() + 120
    while not (root / "job0.ckpt").exists() and time.time() < deadline:
        time.sleep(0.05)
    victim = next(int(p.name.split("-")[1]) for p in pids.iterdir() if p.name.startswith("0-"))
    os.kill(victim, signal.SIGKILL)  # after its first epoch checkpoint, before its end
    sweep.join(timeout=300)
    assert not sweep.is_alive()
    assert out["result"] == expected
    assert len([p for p in pids.iterdir() if p.name.startswith("0-")]) == 2  # it ran again
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_the_cli_exports_the_scheduler_and_refuses_a_bad_one(monkeypatch, capsys):
    from helpers import cli

    monkeypatch.setenv("HELPERS_SCHEDULER", "local")  # restored after the test
    assert cli.main(["run", "tour", "--scheduler", "rays"]) == 2
    assert "error: scheduler must be one of" in capsys.readouterr().err
    monkeypatch.setattr(cli, "run_chapters", lambda *args: os.environ["HELPERS_SCHEDULER"] == "gpus")
    assert cli.main(["run", "tour", "--scheduler", "gpus"]) is True  # the kernels inherit it
