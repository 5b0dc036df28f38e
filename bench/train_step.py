"""One training step of each model the default book trains, on one CPU thread (as a job worker
runs it), with and without channels-last memory format: the ratio decides where
:func:`helpers.train.fit` uses it on the CPU.

    python bench/train_step.py [--rounds 5] [--steps 10]

Sides alternate within each round, so that a slow spell of the machine hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import train, zoo

#: (zoo member, resolution, batch size): the shapes the default book trains
SHAPES = [("resnet10t", 32, 128), ("resnet18", 32, 128), ("convnext_atto", 32, 128),
          ("vit_tiny", 32, 64), ("smallcnn", 32, 128), ("resnet10t", 16, 64),
          ("resnet18", 32, 32), ("resnet10t", 32, 16)]


def step_fn(member: str, resolution: int, batch_size: int, channels_last: bool):
    """A closure doing one optimizer step of ``member`` on a fixed random batch."""
    recipe = zoo.spec(member, resolution=resolution)
    torch.manual_seed(0)
    model = zoo.build(recipe, num_classes=10).train()
    x = torch.randn(batch_size, 3, resolution, resolution)
    y = torch.randint(0, 10, (batch_size,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = train.make_optimizer("adamw", model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"{'model':<15}{'px':>4}{'batch':>6}{'contiguous ms':>15}{'channels-last ms':>18}"
          f"{'ratio':>7}")
    for member, res, batch in SHAPES:
        sides = {cl: step_fn(member, res, batch, cl) for cl in (False, True)}
        for fn in sides.values():
            fn(), fn()
        times = {cl: [] for cl in sides}
        for _ in range(args.rounds):
            for cl, fn in sides.items():
                tic = time.perf_counter()
                for _ in range(args.steps):
                    fn()
                times[cl].append((time.perf_counter() - tic) / args.steps)
        a, b = (statistics.median(times[cl]) * 1000 for cl in (False, True))
        print(f"{member:<15}{res:>4}{batch:>6}{a:>15.1f}{b:>18.1f}{b / a:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
