"""The offline zoo: recipes, caching, a second call loads (helpers.zoo)."""

import time

import pytest
import torch

from helpers import cache, zoo
from helpers.train import evaluate


def test_zoo_spans_three_families_and_variants():
    archs = {zoo.spec(n)["arch"].split("_")[0].rstrip("0123456789t") for n in zoo.names()}
    assert len(zoo.names()) >= 5 and len(archs) >= 3
    assert zoo.spec("resnet10t_noaug")["augment"] is False
    assert zoo.spec("resnet10t_digits")["images"] == zoo.spec("resnet10t")["images"]


def test_unknown_member_and_scale_are_clear_errors():
    with pytest.raises(ValueError, match="did you mean 'resnet18'"):
        zoo.spec("resnet19")
    with pytest.raises(ValueError, match="scale must be one of"):
        zoo.spec("resnet18", scale="huge")


def test_pretrain_caches_and_second_call_loads_same_weights():
    tic = time.perf_counter()
    model, report = zoo.pretrain("resnet10t", scale="smoke", progress=False, epochs=1,
                                 images=36 * 22)
    first = time.perf_counter() - tic
    tic = time.perf_counter()
    again, report2 = zoo.pretrain("resnet10t", scale="smoke", progress=False, epochs=1,
                                  images=36 * 22)
    second = time.perf_counter() - tic
    assert report == report2 and 0 <= report["source_accuracy"] <= 1
    assert second < first / 3
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    _, test = zoo.source_data(report["recipe"])  # the accuracy of the weights kept
    _, err = evaluate(model, test)
    assert report["source_accuracy"] == pytest.approx(1 - err, abs=1 / len(test))


def test_members_with_one_source_share_its_rendering(monkeypatch):
    recipe = zoo.spec("resnet18", scale="smoke", images=36 * 22)
    train, test = zoo.source_data(recipe)
    monkeypatch.setattr(zoo, "glyphs", lambda **kw: pytest.fail("rendered again"))
    for other in ("resnet10t", "convnext_atto"):
        again = zoo.source_data(zoo.spec(other, scale="smoke", images=36 * 22))
        assert all(torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
                   for a, b in zip((train, test), again))


def test_report_of_a_cached_member_builds_no_model(monkeypatch):
    kw = {"epochs": 1, "images": 36 * 22}
    model, _ = zoo.pretrain("resnet10t", scale="smoke", progress=False, **kw)

    def boom(*args, **kwargs):
        raise AssertionError("a cached report must not build the model")

    # torch's, not ours: patching a helper would change the code the cache keys follow
    monkeypatch.setattr(torch.nn.Module, "__init__", boom)
    report = zoo.report("resnet10t", "smoke", **kw)
    assert report["params"] == sum(p.numel() for p in model.parameters())


def test_a_truncated_report_or_weights_file_is_rebuilt_not_a_crash():
    kw = {"scale": "smoke", "progress": False, "epochs": 1, "images": 36 * 22}
    _, report = zoo.pretrain("resnet10t", **kw)
    (json_file,) = [p for p in (cache.cache_dir() / "zoo").glob("resnet10t-*.json")
                    if '"images": 792' in p.read_text()]
    json_file.write_text(json_file.read_text()[:40])  # a write killed half-way
    _, report2 = zoo.pretrain("resnet10t", **kw)
    assert report2["sha256"] == report["sha256"]  # retrained, bit-identical on the CPU
    weights = json_file.with_suffix(".pt")
    weights.write_bytes(weights.read_bytes()[:1000])
    _, report3 = zoo.pretrain("resnet10t", **kw)
    assert report3["sha256"] == report["sha256"]


def test_pretrain_many_trains_in_workers_and_the_cache_serves_them(monkeypatch, tmp_path):
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))
    members = ["smallcnn", "resnet10t"]
    zoo.pretrain_many(members, "smoke", workers=2)
    reports = [cache.verified_report(*zoo._files(m, zoo.spec(m, "smoke"))[::-1]) for m in members]
    written = sorted(p.name for p in (tmp_path / "zoo").iterdir())
    expected = [f.name for m in members for f in zoo._files(m, zoo.spec(m, "smoke"))]
    assert all(r and r["name"] == m for r, m in zip(reports, members)), (written, expected)
    tic = time.perf_counter()
    table = zoo.table(members, "smoke", progress=False, workers=2)  # nothing left to train
    assert time.perf_counter() - tic < 10
    assert list(table.member) == members
    assert list(table.train_seconds) == [r["train_seconds"] for r in reports]


def test_pretrain_many_trains_variants_of_a_member(monkeypatch, tmp_path):
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))
    variant = {"seed": 1, "resolution": 16}
    zoo.pretrain_many(["smallcnn", ("smallcnn", variant)], "smoke", workers=1)
    base, other = (cache.verified_report(*zoo._files("smallcnn", zoo.spec("smallcnn", "smoke", **ov))[::-1])
                   for ov in ({}, variant))
    assert (base["recipe"]["seed"], base["recipe"]["resolution"]) == (0, 32)
    assert (other["recipe"]["seed"], other["recipe"]["resolution"]) == (1, 16)
    assert other["sha256"] != base["sha256"]
    assert len(list((tmp_path / "zoo").glob("smallcnn-*.pt"))) == 2
