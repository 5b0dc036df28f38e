"""One command for a GPU machine before the full profile is run there (issue #16).

    python bench/gpu_check.py [--out DIR]        # one CUDA GPU, no network, <= 8 min on an H100
    python bench/gpu_check.py --cpu-dry-run      # tiny sizes on the CPU: checks this script

Run from the checkout (the project's code on PYTHONPATH) with the machine's own PyTorch and the
packages of requirements.txt. Steps, each timed and recorded:

1. the CUDA tests: every test whose name says ``cuda`` in the test files that mention CUDA
   (they skip without a GPU);
2. throughput on the GPU under the package's own settings (bf16 autocast, channels-last;
   ``helpers.device``): images/s of training (``helpers.train.fit``, all layers, AdamW) and of
   all-layer extraction (``helpers.features.extract``) for every architecture of the full
   profile, random weights, at the resolution the profile uses (224 px; 299 for Inception;
   32 px for the glyph zoo and double descent);
3. one chapter, separability, in the full profile on the GPU against the offline stand-ins of
   ``tests/standins.py`` (the profile's six hub models, a few CIFAR-100 images per class);
4. the other GPU benchmarks, each in its own process with a time limit (:data:`EXTRAS`): the
   transferability scores at the full profile's sizes on the GPU, all-layer extraction against
   the peers (at the CPU bench's sizes and at 224 px), what extraction adds to a plain forward,
   piece by piece, and double descent's job with 1-8 of them at a time on the GPU;
5. the table: the README's image-pass counts per chapter ("What the full profile asks for")
   divided by the measured images/s: GPU-hours per chapter, as ``gpu_check.md`` and
   ``gpu_check.json`` in ``--out`` (default ``$OUT``, else ``bench/gpu``), with step 4's output.

Without a CUDA GPU it says so in one line and exits with status 3, unless ``--cpu-dry-run``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

#: README "What the full profile asks for" (counted from the code): per chapter and resolution,
#: training and inference image-passes and the architectures they go through, one share per
#: entry (a name repeated takes more shares). Names: a zoo member (``zoo:<member>``),
#: ``dd:resnet18`` (double descent's width-64 ResNet-18) or a timm name with its tag.
#: The zoo's seven members: three are resnet10t; vit_tiny trains 4x the epochs of the others.
ZOO_TRAINED = (("zoo:resnet10t",) * 3 + ("zoo:resnet18", "zoo:convnext_atto")
               + ("zoo:vit_tiny",) * 4 + ("zoo:smallcnn",))
ZOO_RUN = ("zoo:resnet10t",) * 3 + ("zoo:resnet18", "zoo:convnext_atto", "zoo:vit_tiny",
                                    "zoo:smallcnn")
SEPARABILITY = ("vit_base_patch16_224.orig_in21k", "swin_tiny_patch4_window7_224.ms_in1k",
                "pvt_v2_b1.in1k", "poolformer_s12.sail_in1k", "convnextv2_tiny.fcmae_ft_in1k",
                "resnet50.tv_in1k")
TRANSFER = ("resnet34.tv_in1k", "resnet50.tv_in1k", "resnet101.tv_in1k", "resnet152.tv_in1k",
            "densenet121.tv_in1k", "densenet169.tv_in1k", "densenet201.tv_in1k",
            "mnasnet_100.rmsp_in1k", "mobilenetv2_100.ra_in1k", "inception_v3.tv_in1k")
TUNNEL_HUB = ("resnet50.tv_in1k", "resnet50.a1_in1k", "vit_base_patch16_224.augreg_in1k",
              "vit_base_patch16_224.augreg_in21k", "resnet18.tv_in1k", "resnet34.tv_in1k",
              "resnet101.tv_in1k")
PLAN = (
    # chapter, training passes, models trained, inference passes, models run, resolution
    ("tour", 1.4e6, ZOO_TRAINED, 0.1e6, ZOO_RUN, 32),
    ("separability", 0.72e6, SEPARABILITY, 0.22e6, SEPARABILITY, 224),
    ("transferability", 0.0, (), 1.0e6, TRANSFER, 224),
    # tunnel: 5 resnet10t trainings of 0.142 M passes (3 backbone seeds at 224 px, 2 at 32 px);
    # its 0.35 M inference passes in equal shares over the 12 models it runs
    ("tunnel", 0.43e6, ("zoo:resnet10t",), 0.29e6, TUNNEL_HUB + ("zoo:resnet10t",) * 3, 224),
    ("tunnel", 0.28e6, ("zoo:resnet10t",), 0.06e6, ("zoo:resnet10t",), 32),
    ("double_descent", 313e6, ("dd:resnet18",), 94e6, ("dd:resnet18",), 32),
)
NOTES = {
    "double_descent": "upper bound: most of its runs train only the layers after the k frozen "
                      "ones (cheaper backward), at batch 128; one at a time (the profile runs 4 "
                      "at once: jobs_gpu below)",
    "transferability": "inference only (published accuracies); 600 CPU probes not counted",
    "tunnel": "3,555 linear probes on pooled features not counted (small)",
}
#: step 4: name -> (command on a GPU, command in a CPU dry run or None, seconds allowed)
EXTRAS = {
    "scores_full": (["bench/scores_full.py", "--device", "cuda", "--timeout", "40"],
                    ["bench/scores_full.py", "--n", "2000", "--d", "64", "--c", "10",
                     "--only", "logme", "face", "--timeout", "60"], 240),
    "peers": (["bench/peers.py", "--quick"], None, 120),
    "peers_224": (["bench/peers.py", "--quick", "--n", "4096", "--cnn-px", "224"], None, 180),
    "extract_gpu": (["bench/extract_gpu.py"], ["bench/extract_gpu.py"], 120),
    "jobs_gpu": (["bench/jobs_gpu.py"], ["bench/jobs_gpu.py", "--cpu-dry-run"], 240),
}
#: the chapter run on the GPU: the full profile, these sizes (the stand-ins are small)
CHAPTER = "separability"
CHAPTER_OVERRIDES = {"train_per_class": 4, "unseen_per_class": 4, "epochs": 1, "trials": [42]}
DRY_CHAPTER_OVERRIDES = {**CHAPTER_OVERRIDES, "train_per_class": 2, "unseen_per_class": 2,
                         "models": ["pvt_v2_b1.in1k", "poolformer_s12.sail_in1k"]}


def build(name: str, resolution: int, num_classes: int = 100):
    """A randomly initialised model for a PLAN name, expecting ``resolution`` px inputs."""
    from helpers import models, zoo
    from helpers.studies.double_descent import arch_kwargs

    if name.startswith("zoo:"):
        member = name[4:]
        return zoo.build(zoo.spec(member, "large", resolution=resolution), num_classes)
    if name.startswith("dd:"):
        return models.create("resnet18", num_classes, img_size=resolution, mean=zoo.MEAN,
                             std=zoo.STD, **arch_kwargs("resnet18", 64))
    return models.create(name, num_classes, img_size=resolution)


def native_resolution(name: str, resolution: int) -> int:
    return 299 if name.startswith("inception_v3") and resolution == 224 else resolution


def synthetic(n: int, resolution: int, classes: int = 100):
    import torch

    from helpers.data import ImageSet

    g = torch.Generator().manual_seed(n + resolution)
    images = torch.randint(0, 256, (n, 3, resolution, resolution), dtype=torch.uint8,
                           generator=g)
    labels = torch.arange(n) % classes
    return ImageSet(images, labels, [str(c) for c in range(classes)], f"synthetic{resolution}")


def throughput(name: str, resolution: int, n: int, train: bool, batch: int) -> float:
    """Images/s of the second of two epochs of ``fit`` (training) or of the second of two
    ``extract`` calls (all layers, no cache), on ``n`` synthetic images."""
    import torch

    from helpers import features
    from helpers import train as training

    res = native_resolution(name, resolution)
    model = build(name, res)
    data = synthetic(n, res)
    if train:
        hist = training.fit(model, data, None, epochs=2, batch_size=batch, lr=1e-4,
                            progress=False)
        seconds = float(hist["seconds"].iloc[-1])
    else:
        features.extract(model, data, batch_size=batch, use_cache=False, progress=False)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        tic = time.perf_counter()
        features.extract(model, data, batch_size=batch, use_cache=False, progress=False)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - tic
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return n / max(seconds, 1e-9)


def cuda_tests(out: Path) -> dict:
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                   if "cuda" in p.read_text())
    tic = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-k", "cuda",
                           "-p", "no:cacheprovider", *files], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    (out / "cuda_tests.log").write_text(done.stdout + done.stderr)
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    return {"files": files, "returncode": done.returncode, "summary": summary,
            "seconds": round(time.perf_counter() - tic, 1)}


def run_chapter(out: Path, dry: bool) -> dict:
    """Separability in the full profile against the stand-ins, on this machine's device."""
    import standins

    tmp = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    home, hf = tmp / "home", tmp / "hf"
    overrides = DRY_CHAPTER_OVERRIDES if dry else CHAPTER_OVERRIDES
    names = overrides.get("models") or standins.full_profile()[CHAPTER]["models"]
    tic = time.perf_counter()
    manifest = standins.write_datasets(home / ".cache" / "torchvision", ["CIFAR100"],
                                       train_per_class=overrides["train_per_class"] + 1)
    site = standins.write_site(tmp / "site")
    env = {k: v for k, v in os.environ.items() if k not in ("HELPERS_SCHEDULER", "PYTHONPATH")}
    env.update(HOME=str(home), HF_HOME=str(hf), HF_HUB_OFFLINE="1",
               HELPERS_CACHE=str(tmp / "cache"), STANDINS_MD5=str(manifest),
               PYTHONPATH=os.pathsep.join([str(site), str(ROOT), str(ROOT / "tests"),
                                           *filter(None, [os.environ.get("PYTHONPATH")])]))
    standins.write_hub_checkpoints(hf, names)
    standin_seconds = time.perf_counter() - tic
    args = [x for k, v in overrides.items()
            for x in ("-p", f"{k}={json.dumps(v) if isinstance(v, list) else v}")]
    tic = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "helpers", "run", CHAPTER, "--profile", "full",
                           *args, "--output-dir", str(out / "chapters")], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    (out / "chapter.log").write_text(done.stdout + done.stderr)
    device = None
    executed = out / "chapters" / f"{CHAPTER}.ipynb"
    if executed.exists():
        device = json.loads(executed.read_text())["metadata"].get("helpers", {}).get("device")
    return {"chapter": CHAPTER, "overrides": overrides, "returncode": done.returncode,
            "device": device, "standin_seconds": round(standin_seconds, 1),
            "seconds": round(time.perf_counter() - tic, 1),
            "error": next((ln for ln in done.stderr.splitlines() if ln.startswith("error:")),
                          None)}


def run_extras(dry: bool) -> dict:
    """Step 4: each of :data:`EXTRAS` in its own process; its output, exit status and seconds."""
    results = {}
    for name, (gpu, cpu, limit) in EXTRAS.items():
        args = cpu if dry else gpu
        if args is None:
            continue
        tic = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True,
                                  text=True, timeout=limit, check=False)
            code, output = done.returncode, done.stdout + done.stderr[-2000:]
        except subprocess.TimeoutExpired as exc:
            code, output = None, f"over {limit} s\n{exc.stdout or ''}"
        results[name] = {"command": "python " + " ".join(args), "returncode": code,
                         "seconds": round(time.perf_counter() - tic, 1), "output": output}
        print(f"  {name}: exit {code} in {results[name]['seconds']:.0f} s", flush=True)
    return results


def gpu_hours(speeds: dict) -> list[dict]:
    rows = []
    for chapter, train_passes, trained, infer_passes, run, res in PLAN:
        hours, missing = 0.0, []
        for passes, names, kind in ((train_passes, trained, "train"),
                                    (infer_passes, run, "extract")):
            for name in names:
                ips = speeds.get(f"{name}@{res}", {}).get(kind)
                if ips:
                    hours += passes / len(names) / ips / 3600
                elif f"{name} ({kind})" not in missing:  # a name with several shares: once
                    missing.append(f"{name} ({kind})")
        rows.append({"chapter": chapter, "training image-passes": train_passes,
                     "inference image-passes": infer_passes, "resolution": res,
                     "GPU-hours": round(hours, 2) if not missing else None,
                     "not measured": missing, "note": NOTES.get(chapter, "")})
    return rows


def markdown(report: dict) -> str:
    lines = [f"# GPU check ({report['device']}, {report['date']})", "",
             (f"torch {report['torch']}, autocast {report['autocast']}, channels-last; "
             f"{report['mode']}; total {report['seconds']:.0f} s"), "",
             (f"CUDA tests: {report['cuda_tests']['summary']} "
             f"(exit {report['cuda_tests']['returncode']})"), "",
             f"Chapter `{report['chapter']['chapter']}` (full profile, stand-ins): exit "
             f"{report['chapter']['returncode']} on {report['chapter']['device']} in "
             f"{report['chapter']['seconds']:.0f} s"
             + (f" — {report['chapter']['error']}" if report['chapter']['error'] else ""), "",
             "| model @ px | train images/s | extract images/s |", "| --- | ---: | ---: |"]
    for key, s in report["throughput"].items():
        lines.append(f"| {key} | {s.get('train', float('nan')):.0f} | "
                     f"{s.get('extract', float('nan')):.0f} |")
    lines += ["", "| chapter | training passes | inference passes | px | GPU-hours | note |",
              "| --- | ---: | ---: | ---: | ---: | --- |"]
    for r in report["gpu_hours"]:
        hours = "n/a" if r["GPU-hours"] is None else f"{r['GPU-hours']:.2f}"
        note = r["note"] + (f" (not measured: {', '.join(r['not measured'])})"
                            if r["not measured"] else "")
        lines.append(f"| {r['chapter']} | {r['training image-passes']:.3g} | "
                     f"{r['inference image-passes']:.3g} | {r['resolution']} | {hours} | "
                     f"{note} |")
    total = [r["GPU-hours"] for r in report["gpu_hours"]]
    if all(t is not None for t in total):
        lines += ["", f"Total: {sum(total):.1f} GPU-hours (one GPU, one job at a time)."]
    for extra in report.get("extras", {}).values():
        head = f"`{extra['command']}`: exit {extra['returncode']} in {extra['seconds']:.0f} s"
        lines += ["", head, "", "```", extra["output"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: $OUT, else bench/gpu)")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="tiny sizes on the CPU: checks the script, measures nothing useful")
    parser.add_argument("--budget", type=float, default=300.0,
                        help="seconds for the throughput step; models left are 'not measured'")
    parser.add_argument("--skip-chapter", action="store_true", help="leave out step 3")
    parser.add_argument("--skip-extras", action="store_true", help="leave out step 4")
    args = parser.parse_args(argv)
    out = args.out or Path(os.environ.get("OUT") or ROOT / "bench" / "gpu")
    out.mkdir(parents=True, exist_ok=True)

    import torch

    if args.cpu_dry_run:
        os.environ["HELPERS_DEVICE"] = "cpu"
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible (torch.cuda.is_available() is False); run it on a "
              "GPU machine, or with --cpu-dry-run to check the script", file=sys.stderr)
        return 3
    os.environ.setdefault("HELPERS_CACHE", tempfile.mkdtemp(prefix="gpu-check-cache-"))
    from helpers.device import amp_dtype, device_name, get_device

    device = get_device(quiet=True)
    start = time.perf_counter()
    report = {"mode": "cpu dry run (tiny sizes)" if args.cpu_dry_run else "gpu",
              "device": torch.cuda.get_device_name() if device.type == "cuda"
              else device_name(device), "torch": torch.__version__,
              "autocast": str(amp_dtype(device)), "date": time.strftime("%Y-%m-%d %H:%M"),
              "python": platform.python_version()}
    print("gpu_check: CUDA tests", flush=True)
    report["cuda_tests"] = cuda_tests(out)
    print(f"  {report['cuda_tests']['summary']}", flush=True)

    dry = args.cpu_dry_run
    wanted = {}
    for _, _, trained, _, run, res in PLAN:
        for name in dict.fromkeys(trained + run):
            kinds = wanted.setdefault(f"{name}@{res}", (name, res, set()))[2]
            kinds.update(["train"] * (name in trained) + ["extract"] * (name in run))
    if dry:  # one architecture per family, 32 px, 8 images
        keep = ("zoo:resnet10t", "dd:resnet18", "mobilenetv2_100.ra_in1k",
                "vit_base_patch16_224.orig_in21k")
        wanted = {k: v for k, v in wanted.items() if v[0] in keep}
    speeds: dict[str, dict] = {}
    tic = time.perf_counter()
    for key, (name, res, kinds) in wanted.items():
        if time.perf_counter() - tic > args.budget:
            print(f"  budget of {args.budget:.0f} s spent: {key} not measured", flush=True)
            continue
        px = 32 if dry else res
        n = 8 if dry else (512 if res >= 224 else 8192)
        for kind in sorted(kinds):
            batch = (4 if dry else 64 if res >= 224 else 256) if kind == "train" else (
                8 if dry else 256)
            try:
                ips = throughput(name, px, n, kind == "train", batch)
            except Exception as exc:  # noqa: BLE001 - recorded in the table, the rest goes on
                speeds.setdefault(key, {})[f"{kind}_error"] = f"{type(exc).__name__}: {exc}"[:300]
                print(f"  {key} {kind}: {type(exc).__name__}: {exc}", flush=True)
                continue
            speeds.setdefault(key, {})[kind] = round(ips, 1)
            print(f"  {key} {kind}: {ips:.0f} images/s", flush=True)
    report["throughput"] = speeds
    report["throughput_seconds"] = round(time.perf_counter() - tic, 1)
    report["gpu_hours"] = gpu_hours(speeds)

    if args.skip_chapter:
        report["chapter"] = {"chapter": CHAPTER, "returncode": None, "device": None,
                             "seconds": 0.0, "error": "skipped (--skip-chapter)"}
    else:
        print(f"gpu_check: chapter {CHAPTER} (full profile, stand-ins)", flush=True)
        report["chapter"] = run_chapter(out, dry)
        print(f"  exit {report['chapter']['returncode']} on {report['chapter']['device']}",
              flush=True)
    if not args.skip_extras:
        print("gpu_check: the other GPU benchmarks", flush=True)
        report["extras"] = run_extras(dry)
    report["seconds"] = round(time.perf_counter() - start, 1)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    (out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    failed = (report["cuda_tests"]["returncode"] not in (0, 5)  # 5: every test deselected
              or report["chapter"]["returncode"] not in (0, None)
              or any(k.endswith("_error") for s in speeds.values() for k in s)
              or any(e["returncode"] != 0 for e in report.get("extras", {}).values()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
