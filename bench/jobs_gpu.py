"""Jobs per GPU: double descent's training job, several at a time on one GPU.

    python bench/jobs_gpu.py                 # on a CUDA GPU: 1, 2, 4 and 8 jobs in flight
    python bench/jobs_gpu.py --scheduler gpus   # the same through the Dask cluster on 127.0.0.1
    python bench/jobs_gpu.py --cpu-dry-run   # the same calls, tiny, on the CPU

The job is :func:`helpers.studies.double_descent.train_tail` with the full profile's network
and step (ResNet-18 of width 64 at 32 px, batch 128, Adam, every layer trained, the training
set and the test set measured after each epoch) on random images, sent through
:func:`helpers.jobs.run` (local scheduler: ``workers`` processes that share the GPU, one worker
runs the jobs in this process; ``gpus``: that many Dask workers on the GPU). Each setting is timed after a warm-up that starts its
workers; printed: training images per second and the ratio to one job at a time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import data, jobs
from helpers.studies import double_descent as dd


def _images(n: int, size: int, seed: int) -> data.ImageSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return data.ImageSet(images, torch.arange(n) % 10, [str(i) for i in range(10)], "random")


def throughput(source, train_set, test_set, n_jobs: int, workers: int, epochs: int) -> float:
    """Training images per second of ``n_jobs`` jobs with ``workers`` in flight."""
    job = (source, 0, train_set, test_set)
    small = (source, 0, train_set.subset(range(128)), test_set.subset(range(16)))
    jobs.run(dd.train_tail, [small] * workers, workers=workers, epochs=1, lr=1e-4,
             batch_size=128)  # warm-up: starts the workers
    tic = time.perf_counter()
    jobs.run(dd.train_tail, [(*job, None, seed) for seed in range(n_jobs)], workers=workers,
             epochs=epochs, lr=1e-4, batch_size=128)
    rate = n_jobs * epochs * len(train_set) / (time.perf_counter() - tic)
    return rate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--scheduler", default="local", choices=("local", "gpus"))
    args = parser.parse_args(argv)
    jobs.use_scheduler(args.scheduler)
    gpu = torch.cuda.is_available() and not args.cpu_dry_run
    if not gpu and not args.cpu_dry_run:
        print("no CUDA GPU: use --cpu-dry-run to rehearse", file=sys.stderr)
        return 3
    width, size, n, n_jobs, epochs, settings = ((64, 32, 8192, 8, 2, (1, 2, 4, 8)) if gpu
                                                else (8, 8, 256, 2, 1, (1, 2)))
    torch.manual_seed(0)
    source = dd._source_net("resnet18", 10, size, dd.arch_kwargs("resnet18", width))
    train_set, test_set = _images(n, size, 0), _images(n // 8, size, 1)
    where = torch.cuda.get_device_name() if gpu else "CPU (dry run)"
    print(f"double descent's job on {where}: resnet18 width {width} at {size} px, {n} training "
          f"images, {epochs} epochs, {n_jobs} jobs, scheduler {args.scheduler}", flush=True)
    base = None
    try:  # a Dask cluster is started again for each number of workers
        for workers in settings:
            rate = throughput(source, train_set, test_set, n_jobs, workers, epochs)
            base = base or rate
            print(f"{workers} in flight: {rate:,.0f} training images/s ({rate / base:.2f}x one "
                  f"at a time)", flush=True)
    finally:
        jobs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
