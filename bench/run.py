"""`make bench`: every benchmark as a ratio against the straightforward way, measured in the
same run (these machines are noisy: compare ratios, not absolute times).

Writes bench/results.json and bench/results.md; prints each ratio with its target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from peers import bench_peers
from sweep import bench_sweep

from helpers import data, features, models, train, zoo
from helpers.device import autocast, get_device


def timed(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        tic = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def timed_together(*fns, repeats: int) -> tuple[float, ...]:
    """Median seconds of each of ``fns`` run in turn (after one warm-up each), so that a slow
    spell of the machine hits every side alike."""
    for fn in fns:
        fn()
    times = [[timed(fn, repeats=1, warmup=0) for fn in fns] for _ in range(repeats)]
    return tuple(statistics.median(column) for column in zip(*times))


def _model(name, **kw):
    torch.manual_seed(0)
    return models.create(name, 10, img_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, **kw).eval()


MODELS = {"resnet18": {}, "convnext_atto": {},
          "vit_tiny_patch16_224": {"patch_size": 4, "depth": 6}}


@torch.inference_mode()
def _plain(model, x):
    with autocast(x.device):
        model(x)


@torch.inference_mode()
def _all_layers(model, x, idx, how):
    with autocast(x.device):
        _, outs = features.forward_layers(model, x, idx)
        [features.pool(o, how) for o in outs]


@torch.inference_mode()
def _per_layer(model, x, idx):
    for i in idx:  # one full forward per layer, keeping one layer's output
        with autocast(x.device):
            features.forward_layers(model, x, [i])


def bench_extraction(device, batch: int, repeats: int) -> list[dict]:
    """All-layer extraction vs one plain forward, and vs re-running the model per layer."""
    rows = []
    for name, kw in MODELS.items():
        model = _model(name, **kw).to(device)
        x = torch.randn(batch, 3, 32, 32, device=device)
        idx = list(range(len(models.layer_names(model))))
        how = features.resolve_pooling(model, "auto")
        t_plain, t_all, t_naive = timed_together(
            partial(_plain, model, x), partial(_all_layers, model, x, idx, how),
            partial(_per_layer, model, x, idx), repeats=repeats)
        rows.append({"benchmark": f"extract all layers / plain forward ({name})", "ours_s": t_all,
                     "baseline_s": t_plain, "ratio": t_all / t_plain, "target": "<= 1.15",
                     "met": t_all / t_plain <= 1.15, "sizes": f"batch {batch}, 32 px, {len(idx)} layers"})
        rows.append({"benchmark": f"naive per-layer reruns / all layers in one pass ({name})",
                     "ours_s": t_all, "baseline_s": t_naive, "ratio": t_naive / t_all,
                     "target": ">= 1 (speed-up)", "met": t_naive / t_all >= 1,
                     "sizes": f"batch {batch}, 32 px, {len(idx)} layers"})
    return rows


def bench_training(device, n: int) -> dict:
    """helpers.train.fit vs a bare timm + torch loop: same model, data, batches, optimizer."""
    s = data.per_class(data.mnist5k(), n // 10)
    batch = 128

    def ours():
        m = _model("resnet10t").to(device)
        train.fit(m, s, epochs=1, lr=1e-3, batch_size=batch, schedule="constant",
                  progress=False, device=device)

    def bare():
        m = _model("resnet10t").to(device).train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.05)
        perm = torch.randperm(len(s))
        for i in range(0, len(s), batch):
            idx = perm[i:i + batch]
            x = (s.images[idx].float().expand(-1, 3, -1, -1) / 255 - 0.5) / 0.5
            loss = F.cross_entropy(m(x.to(device)), s.labels[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()

    t_ours, t_bare = timed_together(ours, bare, repeats=5)
    return {"benchmark": "train.fit / bare timm+torch loop (resnet10t, 1 epoch)", "ours_s": t_ours,
            "baseline_s": t_bare, "ratio": t_ours / t_bare, "target": "<= 1.1",
            "met": t_ours / t_bare <= 1.1, "sizes": f"{len(s)} images, batch {batch}, 32 px"}


def bench_rerun() -> dict:
    """An analysis-only rerun (new k of kNN, new metric list) vs the first run: a zoo member
    at the chapters' default scale, its features and metrics from scratch, then again in a new
    process with only the analysis changed (bench/RESULTS.md has whole-chapter reruns)."""
    code = """
import sys, time
from helpers import data, measure, zoo
tic = time.perf_counter()
model, _ = zoo.pretrain("resnet10t", scale="default", progress=False)
styles = data.glyphs(fonts=["cmr10", "cmtt10", "DejaVuSans", "STIXGeneral"], per_pair=3, label="font")
measure.layer_table(model, styles, metrics=sys.argv[1].split(","), k=int(sys.argv[2]))
print(time.perf_counter() - tic)
"""
    with tempfile.TemporaryDirectory(prefix="bench-rerun-") as cache:
        env = {**os.environ, "HELPERS_CACHE": cache}
        run = lambda metrics, k: float(subprocess.run(
            [sys.executable, "-c", code, metrics, str(k)], env=env, check=True, text=True,
            capture_output=True).stdout.split()[-1])
        first = run("nmi,knn", 5)
        rerun = run("nmi,knn,1nn", 9)
    recipe = zoo.spec("resnet10t", "default")
    return {"benchmark": "first run / analysis-only rerun (zoo member + features + metrics)",
            "ours_s": rerun, "baseline_s": first, "ratio": first / rerun, "target": ">= 10",
            "met": first / rerun >= 10,
            "sizes": f"resnet10t default zoo ({recipe['images']:,} images, {recipe['epochs']} "
                     "epochs), 432 glyph images"}


def bench_memory(n: int) -> dict:
    """Peak resident memory while extracting every layer of n images, in a fresh process."""
    code = f"""
import resource, torch
from helpers import data, features, models
torch.manual_seed(0)
imgs = torch.randint(0, 256, ({n}, 1, 32, 32), dtype=torch.uint8)
s = data.ImageSet(imgs, torch.randint(0, 10, ({n},)), [str(i) for i in range(10)], "random")
s.fingerprint
m = models.create("resnet18", 10, img_size=32).eval()
features.extract(m, s, batch_size=256, progress=False)  # warm: libraries, one pass
import shutil, helpers.cache as c; shutil.rmtree(c.cache_dir() / "features")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import psutil
proc = psutil.Process()
start = proc.memory_info().rss
peak = [start]
import threading
stop = threading.Event()
def watch():
    while not stop.is_set():
        peak.append(proc.memory_info().rss); stop.wait(0.02)
t = threading.Thread(target=watch); t.start()
f = features.extract(m, s, batch_size=256, progress=False)
stop.set(); t.join()
largest = max(v.shape[1] for k, v in f.items() if k != "logits") * {n} * 4
total = sum(v.shape[1] for v in f.values()) * {n} * 4
print(max(peak) - start, largest, total)
"""
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as cache:
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "HELPERS_CACHE": cache},
                             check=True, text=True, capture_output=True).stdout.split()
    growth, largest, total = map(int, out[-3:])
    return {"benchmark": "peak RSS growth / one layer's features (extract all layers)",
            "ours_s": None, "baseline_s": None, "ratio": growth / largest, "target": "<= 2",
            "met": growth / largest <= 2,
            "sizes": f"N={n}, resnet18, 32 px: largest layer {largest / 2**20:.0f} MiB, "
                     f"all layers {total / 2**20:.0f} MiB, growth {growth / 2**20:.0f} MiB"}


def bench_allocator(repeats: int) -> list[dict]:
    """All-layer extraction under glibc's own allocator policy against the package's
    (:func:`helpers.keep_freed_memory`), each side a fresh process, sides alternating."""
    from peers import CASES

    code = """
import statistics, sys, time, torch
from helpers import features, models
from peers import CASES, _images
kw, size = CASES[sys.argv[1]]
torch.manual_seed(0)
m = models.create(sys.argv[1], 10, img_size=size, mean=(0.5,) * 3, std=(0.5,) * 3, **kw).eval()
s = _images(1024, size)
times = []
for _ in range(4):
    tic = time.perf_counter()
    features.extract(m, s, use_cache=False, progress=False)
    times.append(time.perf_counter() - tic)
print(statistics.median(times[1:]))
"""
    rows = []
    for name, (_, size) in CASES.items():
        times = {"keep": [], "system": []}
        for _ in range(repeats):
            for policy, seconds in times.items():
                out = subprocess.run([sys.executable, "-c", code, name], cwd=HERE, check=True,
                                     text=True, capture_output=True,
                                     env={**os.environ, "HELPERS_MALLOC": policy})
                seconds.append(float(out.stdout.split()[-1]))
        ours, system = (statistics.median(times[p]) for p in ("keep", "system"))
        rows.append({"benchmark": f"extract all layers, glibc's allocator policy / freed memory "
                                  f"kept ({name})", "ours_s": ours, "baseline_s": system,
                     "ratio": system / ours, "target": ">= 1 (speed-up)", "met": system >= ours,
                     "sizes": f"1024 images, {size} px, batch 256"})
    return rows


def bench_metrics(quick: bool) -> list[dict]:
    out = HERE / "results_metrics.json"
    args = [sys.executable, str(HERE / "metrics.py"), str(out)] + (["--repeats", "1"] if quick else [])
    subprocess.run(args, check=True)
    res = json.loads(out.read_text())
    rows = []
    for r in res["results"]:
        rows.append({"benchmark": f"metric {r['metric']}: reference / ours", "ours_s": r["ours_s"],
                     "baseline_s": r["reference_s"], "ratio": r["ratio"], "target": ">= 3",
                     "met": r["ratio"] >= 3, "sizes": "N={n}, D={d}, C={classes}".format(**res["sizes"])})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller sizes")
    parser.add_argument("--out", default=str(HERE / "results.json"))
    args = parser.parse_args()
    device = get_device()
    repeats = 3 if args.quick else 5
    rows = []
    steps = [("extraction", lambda: bench_extraction(device, 256, repeats)),
             ("extraction against the peers", lambda: bench_peers(device, repeats)),
             ("allocator", lambda: bench_allocator(3)),
             ("training loop", lambda: [bench_training(device, 1000 if args.quick else 2000)]),
             ("analysis-only rerun", lambda: [bench_rerun()]),
             ("memory", lambda: [bench_memory(10_000 if args.quick else 50_000)]),
             ("metrics", lambda: bench_metrics(args.quick)),
             ("sweeps", lambda: bench_sweep(args.quick))]
    for title, step in steps:
        print(f"== {title}", flush=True)
        for row in step():
            rows.append(row)
            print(f"{row['benchmark']}: ratio {row['ratio']:.2f} (target {row['target']}) "
                  f"{'met' if row['met'] else 'NOT met'}", flush=True)
    meta = {"device": str(device), "device_name": torch.cuda.get_device_name() if device.type == "cuda"
            else platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M"), "quick": args.quick}
    Path(args.out).write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
    lines = ["| benchmark | sizes | ours (s) | baseline (s) | ratio | target | met |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    fmt = lambda v: "" if v is None else f"{v:.4f}"
    for r in rows:
        lines.append(f"| {r['benchmark']} | {r['sizes']} | {fmt(r['ours_s'])} | "
                     f"{fmt(r['baseline_s'])} | {r['ratio']:.2f} | {r['target']} | "
                     f"{'yes' if r['met'] else 'no'} |")
    md = Path(args.out).with_suffix(".md")
    md.write_text(f"Device: {meta['device']} ({meta['device_name']}), {meta['date']}\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {args.out} and {md}")


if __name__ == "__main__":
    main()
