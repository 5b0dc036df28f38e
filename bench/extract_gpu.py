"""Where all-layer extraction's time goes beside a plain forward, step by step, on a GPU.

    python bench/extract_gpu.py          # on a CUDA GPU: 4 models, 1,024 images each
                                         # without one: the first model, 64 images, on the CPU

Each row is the same batched loop over uint8 images (batch 256, bf16 autocast on a GPU) with
one more piece of :func:`helpers.features.extract`'s work: pinned host memory for the input
copy, the layer outputs (``forward_layers``) pooled, their copy to the host per layer, in one
copy per batch, or once at the end; then ``features.extract`` itself. Medians of 5 runs after a
warm-up; ratios against a plain forward with pinned input, timed first (runs of 15-90 ms: the
noise is large). ``features.extract`` copies each batch's features to the host once, one batch
late, so that the copy overlaps the next batch's forward pass.
"""

import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import data, features, models
from helpers.device import autocast

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
CASES = [("resnet18", {}, 64), ("resnet18", {}, 224),
         ("vit_tiny_patch16_224", {"patch_size": 4, "depth": 6}, 32), ("resnet50", {}, 224)]
BATCH = 256


def sync():
    if CUDA:
        torch.cuda.synchronize()


def timed(fn, rounds: int = 5) -> float:
    fn()
    sync()
    times = []
    for _ in range(rounds):
        sync()
        tic = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


@torch.inference_mode()
def loop(model, images, spec, how, pin: bool, copy: str) -> None:
    """copy: "none" (plain forward), "per layer", "per batch" or "at end"."""
    indices = list(range(len(models.layer_names(model))))
    kept = []
    for i in range(0, len(images), BATCH):
        batch = images[i:i + BATCH]
        if pin and CUDA:
            batch = batch.pin_memory()
        x = models.preprocess(batch.to(DEVICE, non_blocking=True), spec)
        with autocast(DEVICE):
            if copy == "none":
                model(x)
                continue
            logits, outs = features.forward_layers(model, x, indices, grid=how == "pool2x2")
            vecs = [features.pool(o, how).float() for o in outs] + [logits.float()]
        if copy == "per layer":
            kept.append([v.cpu().numpy() for v in vecs])
        elif copy == "per batch":
            kept.append(torch.cat(vecs, 1).cpu().numpy())
        else:
            kept.append(torch.cat(vecs, 1))
    if copy == "at end":
        torch.cat(kept).cpu()


def case(name: str, kwargs: dict, size: int, n: int) -> str:
    """One model's row: each variant's median and its ratio to a plain forward."""
    torch.manual_seed(0)
    model = models.create(name, 10, img_size=size, mean=(0.5,) * 3, std=(0.5,) * 3,
                          **kwargs).eval().to(DEVICE)
    if CUDA:
        model.to(memory_format=torch.channels_last)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)
    s = data.ImageSet(images, torch.arange(n) % 10, [str(i) for i in range(10)], "random")
    spec, how = models.input_spec(model), features.resolve_pooling(model, "auto")
    variants = {f"{what}{' + pin' * pin}": partial(loop, model, images, spec, how, pin, copy)
                for what, copy in (("plain", "none"), ("hooks, copy per layer", "per layer"),
                                   ("hooks, one copy per batch", "per batch"),
                                   ("hooks, one copy at end", "at end"))
                for pin in (False, True)}
    variants["features.extract"] = partial(features.extract, model, s, batch_size=BATCH,
                                           device=DEVICE, use_cache=False, progress=False)
    base = timed(variants["plain + pin"])  # the package pins its input: the fair floor
    out = {k: timed(fn) for k, fn in variants.items()}
    return f"{name} {size} px, {n} images on {DEVICE}: " + ", ".join(
        f"{k} {v * 1e3:.1f} ms ({v / base:.2f}x)" for k, v in out.items())


def main() -> None:
    for name, kwargs, size in CASES if CUDA else CASES[:1]:
        print(case(name, kwargs, size, 1024 if CUDA else 64), flush=True)


if __name__ == "__main__":
    main()
