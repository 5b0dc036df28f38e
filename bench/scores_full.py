"""The transferability scores at the full profile's sizes: each score's seconds and peak memory
on N x D features of C classes (default N = 50,000, D = 2,048, C = 100), and its share of one
model's extraction time (ResNet-50 at 224 px over the same N images, timed on a batch here and
scaled to N).

    python bench/scores_full.py [--n 50000] [--d 2048] [--c 100] [--timeout 300] [--only logme]
                                [--device cuda]

Each score runs alone in a fresh process (its own factorizations, as a user calling it would),
with a time limit; a score that needs more memory or time than this machine has says so.
Features: class means in a 64-d subspace plus noise with a power-law spectrum, so that PCA-based
scores see a realistic decay (not isotropic noise, where 80 % of the variance needs most dims).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCORES = ("logme", "h_score", "gbc", "face", "nc1", "ncti", "sfda", "leep", "nce", "probe",
          "knn", "knn_acc", "nleep", "parc")
OPTIONS = {"knn": {"k": 10}, "knn_acc": {"k": 10}, "parc": {"pca_dim": 32}}


def features(n: int, d: int, c: int, seed: int = 0):
    """(x float32 N x D, labels, source posteriors N x 1000) of Gaussian classes."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    basis = torch.linalg.qr(torch.randn(d, 64, generator=gen))[0]
    means = torch.randn(c, 64, generator=gen) @ basis.T
    scales = torch.arange(1, d + 1, dtype=torch.float32) ** -0.5
    x = means[y] + torch.randn(n, d, generator=gen) * scales
    logits = torch.randn(n, 1000, generator=gen) + 3 * torch.nn.functional.one_hot(y * 7 % 1000, 1000)
    return x, y, torch.softmax(logits, 1)


def one(name: str, n: int, d: int, c: int, device: str = "cpu") -> dict:
    """Seconds of score ``name`` on fresh features on ``device`` (after they are made)."""

    import torch

    from helpers.metrics import layerwise, leep, nce

    x, y, probs = (t.to(device) for t in features(n, d, c))
    tic = time.perf_counter()
    if name == "leep":
        leep(probs.double(), y)
    elif name == "nce":
        nce(probs.argmax(1), y)
    else:
        layerwise({"x": x}, y, [name], **OPTIONS.get(name, {}))
    seconds = time.perf_counter() - tic
    peak = (torch.cuda.max_memory_allocated() / 2**30 if x.is_cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    return {"seconds": seconds, "peak_gib": peak}


def extraction_seconds(n: int, device: str = "cpu", batch: int = 32) -> float:
    """ResNet-50 (random weights) at 224 px through ``features.extract`` on ``device``: a timed
    batch x N."""
    import torch

    from helpers import data, models
    from helpers import features as F

    model = models.create("resnet50", num_classes=1000).eval()
    images = torch.randint(0, 256, (2 * batch, 3, 224, 224), dtype=torch.uint8)
    labels = torch.zeros(batch, dtype=torch.long)
    warm, timed = (data.ImageSet(half, labels, ["x"], "bench") for half in images.split(batch))
    F.extract(model, warm, batch_size=batch, device=device, use_cache=False, progress=False)
    tic = time.perf_counter()
    F.extract(model, timed, batch_size=batch, device=device, use_cache=False, progress=False)
    return (time.perf_counter() - tic) / batch * n


def run_one(name: str, args) -> dict:
    command = [sys.executable, __file__, "--one", name, "--n", str(args.n), "--d", str(args.d),
               "--c", str(args.c), "--device", args.device]
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True,
                              timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"score": name, "seconds": None, "note": f"over {args.timeout} s"}
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["killed (out of memory?)"])[-1]
        return {"score": name, "seconds": None, "note": last[:120]}
    return {"score": name, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=2_048)
    parser.add_argument("--c", type=int, default=100)
    parser.add_argument("--timeout", type=int, default=300, help="seconds per score")
    parser.add_argument("--only", nargs="*", default=list(SCORES), choices=SCORES)
    parser.add_argument("--device", default="cpu", help="where the scores run: cpu or cuda")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    if args.one:
        print(json.dumps(one(args.one, args.n, args.d, args.c, args.device)))
        return
    extract = extraction_seconds(args.n, args.device)
    print(f"N={args.n:,} D={args.d:,} C={args.c}; scores on {args.device}; ResNet-50 extraction "
          f"at 224 px there, scaled from one batch: {extract:.0f} s")
    print(f"| score | seconds | share of extraction | peak memory ({args.device}) | note |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.only:
        row = run_one(name, args)
        s = row.get("seconds")
        share = f"{100 * s / extract:.1f} %" if s is not None else "-"
        peak = f"{row['peak_gib']:.1f} GiB" if row.get("peak_gib") else "-"
        print(f"| {name} | {s:.2f} |" if s is not None else f"| {name} | - |",
              f"{share} | {peak} | {row.get('note', '')} |", flush=True)


if __name__ == "__main__":
    main()
