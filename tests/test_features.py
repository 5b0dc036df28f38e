"""All layers in one pass, pooling, the content-addressed cache (helpers.features)."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import cache, features, models
from helpers.data import add_noise

ARCHS = [("resnet10t", {}), ("vit_tiny_patch16_224", {"patch_size": 8, "depth": 3}),
         ("smallcnn", {"width": 8}), ("convnext_atto", {})]


def _make(name, kw):
    torch.manual_seed(0)
    return models.create(name, 10, img_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, **kw).eval()


def _per_layer_reference(model, x, layer, how):
    """Independent: hook one module, run the plain forward, pool by hand."""
    out = {}
    h = model.get_submodule(layer).register_forward_hook(lambda m, i, o: out.setdefault("o", o))
    with torch.no_grad():
        logits = model(x)
    h.remove()
    o = out["o"]
    if o.ndim == 3:  # ViT tokens (N, 1 + L, D)
        if how != "pool2x2":
            return o[:, 0] if how == "cls" else o[:, 1:].mean(1), logits
        side = int((o.shape[1] - 1) ** 0.5)
        o = o[:, 1:].transpose(1, 2).reshape(len(o), -1, side, side)
    if how == "pool2x2":
        if o.shape[-1] == 1:  # a 1x1 map: adaptive pooling to 2x2 repeats it
            o = o.expand(-1, -1, 2, 2)
        n, c, hh, ww = o.shape
        return o.reshape(n, c, 2, hh // 2, 2, ww // 2).mean((3, 5)).flatten(1), logits
    return o.mean((2, 3)), logits


@pytest.mark.parametrize("name,kw", ARCHS)
@pytest.mark.parametrize("pooling", ["auto", "pool2x2"])
def test_one_pass_equals_independent_per_layer(name, kw, pooling, small_set):
    model = _make(name, kw)
    feats = features.extract(model, small_set, pooling=pooling, use_cache=False, progress=False)
    x = models.preprocess(small_set.images, models.input_spec(model))
    how = features.resolve_pooling(model, pooling)
    for layer in models.layer_names(model):
        ref, logits = _per_layer_reference(model, x, layer, how)
        np.testing.assert_allclose(feats[layer], ref.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(feats["logits"], logits.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name,kw", ARCHS[:2])
def test_cuda_extraction_matches_the_cpu_row_for_row(name, kw, small_set):
    """On a GPU each batch reaches the host one batch late (non-blocking copies): every row
    must still land in its place, with bf16 autocast's precision."""
    model = _make(name, kw)
    cpu = features.extract(model, small_set, batch_size=7, use_cache=False, progress=False)
    gpu = features.extract(model, small_set, batch_size=7, device="cuda", use_cache=False,
                           progress=False)
    for layer, ref in cpu.items():
        ours = gpu[layer]
        assert ours.shape == ref.shape and np.isfinite(ours).all()
        own = np.linalg.norm(ours - ref, axis=1)
        next_batch = np.linalg.norm(ours - np.roll(ref, -7, axis=0), axis=1)
        assert np.median(own) < 0.2 * np.median(next_batch), layer
        scale = np.abs(ref).max()
        np.testing.assert_allclose(ours, ref, atol=0.05 * scale, err_msg=layer)


def test_cached_features_equal_fresh_ones_and_hit_the_cache(small_set):
    model = _make("resnet10t", {})
    fresh = features.extract(model, small_set, use_cache=False, progress=False)
    first = features.extract(model, small_set, progress=False)
    entries = sorted(p.name for p in (cache.cache_dir() / "features").iterdir() if p.is_dir())
    again = features.extract(model, small_set, progress=False)
    assert entries == sorted(p.name for p in (cache.cache_dir() / "features").iterdir() if p.is_dir())
    for k in fresh:
        np.testing.assert_array_equal(fresh[k], first[k])
        np.testing.assert_array_equal(first[k], again[k])


def _entry_for(**kw):
    before = set((cache.cache_dir() / "features").glob("*/meta.json"))
    features.extract(progress=False, **kw)
    new = set((cache.cache_dir() / "features").glob("*/meta.json")) - before
    return new


def test_cache_key_changes_with_every_part(small_set):
    model = _make("resnet10t", {})
    base = dict(model=model, data=small_set, layers="all", pooling="mean")
    _entry_for(**base)
    assert not _entry_for(**base), "identical call must hit"
    changed_weights = _make("resnet10t", {})
    with torch.no_grad():
        changed_weights.fc.bias += 1
    variants = [dict(layers=["layer1"]), dict(pooling="pool2x2"),
                dict(data=add_noise(small_set, 0.01)), dict(model=changed_weights)]
    for v in variants:
        assert _entry_for(**{**base, **v}), f"changing {list(v)} must miss the cache"
    changed_input = _make("resnet10t", {})
    changed_input.pretrained_cfg["mean"] = (0.4,) * 3  # the transform
    assert _entry_for(**{**base, "model": changed_input})


def test_key_covers_all_named_parts():
    base = dict(weights="w", layer="l", pooling="p", transform="t", data="d", dtype="f32")
    keys = {cache.make_key(features.extract, **base)}
    for part, value in base.items():
        keys.add(cache.make_key(features.extract, **{**base, part: value + "x"}))
    assert len(keys) == len(base) + 1


def test_corrupted_entry_is_detected_and_recomputed(small_set):
    model = _make("smallcnn", {"width": 8})
    good = features.extract(model, small_set, progress=False)
    entry = Path(good["logits"].filename).parent
    arr = entry / "0.npy"
    raw = bytearray(arr.read_bytes())
    raw[-8:] = b"\x00\x01" * 4
    arr.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="corrupted"):
        again = features.extract(model, small_set, progress=False)
    np.testing.assert_array_equal(np.asarray(again["blocks.0"]),
                                  features.extract(model, small_set, use_cache=False,
                                                   progress=False)["blocks.0"])


def test_unknown_layer_and_pooling_are_clear_errors(small_set):
    model = _make("resnet10t", {})
    with pytest.raises(ValueError, match="layers: unknown layer 'layer9'"):
        features.extract(model, small_set, layers=["layer9"])
    with pytest.raises(ValueError, match="pooling must be one of"):
        features.extract(model, small_set, pooling="max")
    with pytest.raises(ValueError, match="class token"):
        features.extract(model, small_set, pooling="cls")


def test_killed_extraction_resumes_to_identical_features(tmp_path):
    script = textwrap.dedent("""
        import os, sys, time, torch
        from helpers import data, features, models
        torch.manual_seed(0)
        m = models.create("resnet18", 10, img_size=32, mean=(.5,)*3, std=(.5,)*3).eval()
        s = data.per_class(data.mnist5k(), 60)
        if sys.argv[1] == "slow":  # slow the forward so the kill lands mid-way
            real = features.forward_layers
            def slow(*a, **k):
                time.sleep(0.5); print("batch", flush=True); return real(*a, **k)
            features.forward_layers = slow
        f = features.extract(m, s, batch_size=50, use_cache=sys.argv[1] != "nocache", progress=False)
        import numpy as np
        np.save(sys.argv[2], np.concatenate([np.asarray(v) for v in f.values()], 1))
    """)
    env = {**os.environ, "HELPERS_CACHE": str(tmp_path / "cache")}
    p = subprocess.Popen([sys.executable, "-c", script, "slow", str(tmp_path / "a.npy")], env=env,
                         stdout=subprocess.PIPE, text=True)
    for _ in range(4):
        p.stdout.readline()
    p.send_signal(signal.SIGKILL)
    p.wait()
    partial = list((tmp_path / "cache" / "features").glob("*.partial"))
    assert partial and (partial[0] / "done.json").exists()
    subprocess.run([sys.executable, "-c", script, "cache", str(tmp_path / "b.npy")], env=env,
                   check=True)
    subprocess.run([sys.executable, "-c", script, "nocache", str(tmp_path / "c.npy")], env=env,
                   check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), np.load(tmp_path / "c.npy"))


def test_two_processes_writing_the_same_entry_do_not_corrupt_it(tmp_path):
    script = textwrap.dedent("""
        import sys, numpy as np, torch
        from helpers import data, features, models
        torch.manual_seed(0)
        m = models.create("resnet10t", 10, img_size=32, mean=(.5,)*3, std=(.5,)*3).eval()
        f = features.extract(m, data.per_class(data.mnist5k(), 30), batch_size=25,
                             use_cache=sys.argv[1] == "cache", progress=False)
        np.save(sys.argv[2], np.concatenate([np.asarray(v) for v in f.values()], 1))
    """)
    env = {**os.environ, "HELPERS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    run = lambda mode, out: subprocess.Popen([sys.executable, "-c", script, mode,
                                              str(tmp_path / out)], env=env)
    writers = [run("cache", "a.npy"), run("cache", "b.npy")]
    assert [p.wait() for p in writers] == [0, 0]
    assert run("nocache", "ref.npy").wait() == 0
    ref = np.load(tmp_path / "ref.npy")
    for out in ("a.npy", "b.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / out), ref)
    entries = [p for p in (tmp_path / "cache" / "features").iterdir() if p.is_dir()]
    assert len(entries) == 1 and not entries[0].name.endswith(".partial")
    assert cache.verify(entries[0])
