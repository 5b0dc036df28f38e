"""All-layer extraction against what a researcher would pick instead, in one run, alternating
sides: one plain forward (the floor), torchvision FX's `create_feature_extractor` (timm's
wrapper, which knows timm's leaf modules) and TorchLens `trace` (bench-only dependency,
installed by `make bench`). Every side starts from the same uint8 images, converts and
normalizes them the same way, and (FX) pools the same layers as `features.extract`.

Run alone: `cd bench && ../.venv/bin/python peers.py [--quick]`.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import data, features, models
from helpers.device import autocast, get_device

#: (model, timm kwargs, image size): a CNN at 64 px and a ViT at 32 px (patch 4: 64 tokens).
CASES = {"resnet18": ({}, 64), "vit_tiny_patch16_224": ({"patch_size": 4, "depth": 6}, 32)}


def _images(n: int, size: int) -> data.ImageSet:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)
    return data.ImageSet(images, torch.arange(n) % 10, [str(i) for i in range(10)], "random")


def _to_device(images: torch.Tensor, device) -> torch.Tensor:
    """A batch to ``device`` as the package sends it: through pinned memory to a GPU (on an H200
    a 224-px batch arrives in ~0.6x the time of a pageable copy: bench/RESULTS.md)."""
    if device.type == "cuda":
        images = images.pin_memory()
    return images.to(device, non_blocking=True)


@torch.inference_mode()
def _plain(model, s: data.ImageSet, spec: dict, batch: int, device) -> None:
    for i in range(0, len(s), batch):
        x = models.preprocess(_to_device(s.images[i:i + batch], device), spec)
        with autocast(device):
            model(x)


def _fx_extractor(model, names: list[str]):
    """timm's FX feature extractor returning the last graph node of each of ``names``."""
    from timm.models._features_fx import create_feature_extractor, get_graph_node_names

    nodes = get_graph_node_names(model)[1]
    last = {n: [g for g in nodes if g == n or g.startswith(n + ".")][-1] for n in names}
    return create_feature_extractor(model, return_nodes={v: k for k, v in last.items()})


@torch.inference_mode()
def _fx(extractor, s: data.ImageSet, spec: dict, how: str, batch: int, device) -> dict:
    out: dict[str, list] = {}
    for i in range(0, len(s), batch):
        x = models.preprocess(_to_device(s.images[i:i + batch], device), spec)
        with autocast(device):
            for name, o in extractor(x).items():  # a ViT block gives (N, tokens, D)
                pooled = o[:, 0] if how == "cls" else features.pool(o, how)
                out.setdefault(name, []).append(pooled.float().cpu())
    return {k: torch.cat(v).numpy() for k, v in out.items()}


@torch.inference_mode()
def _torchlens(model, s: data.ImageSet, spec: dict, batch: int, device) -> None:
    import torchlens

    for i in range(0, len(s), batch):
        torchlens.trace(model, models.preprocess(_to_device(s.images[i:i + batch], device), spec))


def bench_peers(device, repeats: int, n: int = 1024, batch: int = 256) -> list[dict]:
    """Rows for bench/run.py: ours / plain forward, ours / FX, TorchLens / ours per model."""
    from run import timed_together

    try:
        import torchlens  # noqa: F401

        lens = True
    except ImportError:
        lens = False
        print("TorchLens is not installed (make bench installs it): its rows are left out")
    rows = []
    for name, (kw, size) in CASES.items():
        torch.manual_seed(0)
        model = models.create(name, 10, img_size=size, mean=(0.5,) * 3, std=(0.5,) * 3,
                              **kw).eval().to(device)
        s, spec = _images(n, size), models.input_spec(model)
        layer_names = models.layer_names(model)
        how = features.resolve_pooling(model, "auto")
        extractor = _fx_extractor(model, layer_names)
        ours_out = features.extract(model, s, batch_size=batch, device=device, use_cache=False,
                                    progress=False)
        fx_out = _fx(extractor, s, spec, how, batch, device)
        for layer in layer_names:  # the same work: FX gives the same pooled features
            torch.testing.assert_close(torch.as_tensor(fx_out[layer]),
                                       torch.as_tensor(ours_out[layer]), rtol=1e-3, atol=1e-3)
        extract = partial(features.extract, model, s, batch_size=batch, device=device,
                          use_cache=False, progress=False)
        ours, plain, fx = timed_together(extract, partial(_plain, model, s, spec, batch, device),
                                         partial(_fx, extractor, s, spec, how, batch, device),
                                         repeats=repeats)
        if lens:  # apart: the side after TorchLens's 13 GB of saved tensors runs slower
            lens_ours, lens_time = timed_together(
                extract, partial(_torchlens, model, s, spec, batch, device),
                repeats=min(repeats, 3))
        sizes = f"{n} images, {size} px, {len(layer_names)} layers, batch {batch}"
        rows.append({"benchmark": f"extract all layers / plain forward, both from uint8 ({name})",
                     "ours_s": ours, "baseline_s": plain, "ratio": ours / plain,
                     "target": "<= 1.05", "met": ours / plain <= 1.05, "sizes": sizes})
        rows.append({"benchmark": f"extract all layers / torchvision FX extractor ({name})",
                     "ours_s": ours, "baseline_s": fx, "ratio": ours / fx, "target": "<= 1.0",
                     "met": ours / fx <= 1.0, "sizes": sizes})
        if lens:
            rows.append({"benchmark": f"TorchLens trace / extract all layers ({name})",
                         "ours_s": lens_ours, "baseline_s": lens_time,
                         "ratio": lens_time / lens_ours, "target": ">= 1 (speed-up)",
                         "met": lens_time / lens_ours >= 1, "sizes": sizes})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 5")
    parser.add_argument("--n", type=int, default=1024, help="images (default 1024)")
    parser.add_argument("--cnn-px", type=int, default=CASES["resnet18"][1],
                        help="the CNN's image size (a GPU: 224 gives runs long enough to time)")
    args = parser.parse_args()
    CASES["resnet18"] = (CASES["resnet18"][0], args.cnn_px)
    for row in bench_peers(get_device(), 3 if args.quick else 5, n=args.n):
        print(f"{row['benchmark']}: {row['ours_s']:.3f} s vs {row['baseline_s']:.3f} s, ratio "
              f"{row['ratio']:.2f} (target {row['target']}) {'met' if row['met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
