"""One training step of each model the default book trains, on one CPU thread (as a job worker
runs it): as built (dead kernel taps cropped, :class:`helpers.models.CroppedConv2d`), with every
tap computed (plain ``nn.Conv2d``), and in channels-last memory format. The ratios decide where
:func:`helpers.train.fit` uses channels-last on the CPU, and whether cropping pays.

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
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import train, zoo

#: (zoo member, resolution, batch size): the shapes the default book trains
SHAPES = [("resnet10t", 32, 128), ("resnet18", 32, 128), ("convnext_atto", 32, 128),
          ("vit_tiny", 32, 64), ("smallcnn", 32, 128), ("resnet10t", 16, 64),
          ("resnet18", 32, 32), ("resnet10t", 32, 16)]

SIDES = ("as built", "all taps", "channels-last")


def step_fn(member: str, resolution: int, batch_size: int, side: str = "as built"):
    """A closure doing one optimizer step of ``member`` on a fixed random batch."""
    recipe = zoo.spec(member, resolution=resolution)
    torch.manual_seed(0)
    model = zoo.build(recipe, num_classes=10).train()
    channels_last = side == "channels-last"
    if side == "all taps":
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.__class__ = nn.Conv2d
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
    print(f"{'model':<15}{'px':>4}{'batch':>6}" + "".join(f"{s + ' ms':>17}" for s in SIDES)
          + f"{'built/all taps':>16}{'ch-last/built':>15}")
    for member, res, batch in SHAPES:
        sides = {side: step_fn(member, res, batch, side) for side in SIDES}
        for fn in sides.values():
            fn(), fn()
        times = {side: [] for side in sides}
        for _ in range(args.rounds):
            for side, fn in sides.items():
                tic = time.perf_counter()
                for _ in range(args.steps):
                    fn()
                times[side].append((time.perf_counter() - tic) / args.steps)
        built, full, last = (statistics.median(times[side]) * 1000 for side in SIDES)
        print(f"{member:<15}{res:>4}{batch:>6}{built:>17.1f}{full:>17.1f}{last:>17.1f}"
              f"{built / full:>16.2f}{last / built:>15.2f}", flush=True)


if __name__ == "__main__":
    main()
