"""Cache keys follow the code (helpers.cache.code_hash): editing what a job runs misses its
entries, editing anything else does not; temp files are unique and cleaned up."""

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

from helpers import cache, features, plots, zoo
from helpers.studies import double_descent, separability, tunnel

FILES = {
    "__init__.py": "",
    "jobs.py": """
        from . import util
        from .shapes import Box
        SCALE = {"factor": 2}

        def job(x, box):
            return util.double(x) * SCALE["factor"] + box.area()

        def other(x):
            from .lazy import triple
            return triple(x)
    """,
    "util.py": """
        def double(x):
            return 2 * x
    """,
    "shapes.py": """
        class Box:
            def __init__(self, w):
                self.w = w

            def area(self):
                return self.w * self.w
    """,
    "lazy.py": """
        def triple(x):
            return 3 * x
    """,
    "unrelated.py": """
        def figure(x):
            return x
    """,
}


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A small package ``jobpkg`` on sys.path; ``edit(module, old, new)`` rewrites and reloads."""
    root = tmp_path / "jobpkg"
    root.mkdir()
    for name, text in FILES.items():
        (root / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))

    def load():
        for name in [m for m in sys.modules if m.startswith("jobpkg")]:
            del sys.modules[name]
        importlib.invalidate_caches()
        return importlib.import_module("jobpkg.jobs")

    def edit(module, old, new):
        path = root / f"{module}.py"
        path.write_text(path.read_text().replace(old, new))
        return load()

    yield load(), edit
    for name in [m for m in sys.modules if m.startswith("jobpkg")]:
        del sys.modules[name]


def test_editing_a_job_or_what_it_calls_misses_its_entry(package):
    mod, edit = package
    key = lambda m: cache.make_key(m.job, x=1)
    before = key(mod)
    assert key(mod) == before
    assert key(edit("unrelated", "return x", "return x + 1")) == before  # not called by the job
    assert key(edit("lazy", "3 * x", "4 * x")) == before  # only `other` imports it
    assert key(edit("util", "def double(x):", 'def double(x):\n    """Twice x."""')) == before
    assert key(edit("util", '"""Twice x."""', '"""x doubled."""')) == before  # a docstring
    changed = [key(edit("util", "2 * x", "x + x"))]  # a function the job calls
    changed.append(key(edit("shapes", "self.w * self.w", "self.w ** 2")))  # a method it calls
    changed.append(key(edit("jobs", '{"factor": 2}', '{"factor": 3}')))  # a constant it reads
    changed.append(key(edit("jobs", "box.area()", "box.area() + 0")))  # the job itself
    assert len({before, *changed}) == 5


def test_a_lazily_imported_module_is_followed(package):
    mod, edit = package
    before = cache.code_hash(mod.other)
    assert cache.code_hash(edit("lazy", "3 * x", "x * 3").other) != before


def test_the_books_jobs_follow_their_own_code_only():
    reached = lambda fn: {k.split(":")[0] for k in cache._reached(fn)}
    pretrain = reached(zoo.pretrain)
    assert {"helpers.train.fit", "helpers.models.create", "helpers.zoo.spec"} <= pretrain
    assert not {k for k in pretrain if k.startswith(("helpers.plots", "helpers.metrics",
                                                     "helpers.studies"))}
    extraction = reached(features.extract)
    assert "helpers.features._compute" in extraction
    assert not {k for k in extraction if k.startswith(("helpers.train", "helpers.metrics"))}
    transfer = reached(double_descent.transfer_run)
    assert not {k for k in transfer if k.startswith(("helpers.studies.separability",
                                                     "helpers.studies.tunnel", "helpers.plots"))}
    assert plots.layer_curves.__qualname__ not in str(reached(separability.finetune))
    assert "helpers.metrics.layerwise.layerwise" in reached(tunnel.geometry)


def test_the_code_hash_is_the_same_in_a_fresh_process():
    """Keys made by a notebook kernel and by a worker process must agree."""
    here = cache.code_hash(zoo.pretrain, features.extract)
    code = ("from helpers import cache, features, zoo; "
            "print(cache.code_hash(zoo.pretrain, features.extract))")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert there == here


def test_temp_names_are_unique_and_dead_writers_temps_are_removed(tmp_path):
    target = tmp_path / "entry.json"
    a, b = cache.temp_path(target), cache.temp_path(target)
    assert a != b and a.name.startswith(f"entry.json.tmp-{os.uname().nodename}-{os.getpid()}-")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = tmp_path / f"entry.json.tmp-{os.uname().nodename}-{dead}-0000"
    left.write_text("half a file")  # a killed writer's
    other_host = tmp_path / f"entry.json.tmp-elsewhere-{dead}-0000"
    other_host.write_text("another host's writer: maybe alive")
    cache.write_json(target, {"a": 1})
    assert cache.read_json(target) == {"a": 1}
    assert not left.exists() and other_host.exists()
    with pytest.raises(ZeroDivisionError), cache.atomic(target) as tmp:
        tmp.write_text("partial")
        raise ZeroDivisionError
    assert cache.read_json(target) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["entry.json", other_host.name])


def test_a_monkeypatched_helper_changes_the_key_and_undoing_it_restores_it(monkeypatch):
    before = cache.code_hash(zoo.pretrain)
    monkeypatch.setattr(zoo, "build", lambda *args, **kwargs: None)
    patched = cache.code_hash(zoo.pretrain)
    monkeypatch.undo()
    assert patched != before and cache.code_hash(zoo.pretrain) == before


# ---------------------------------------------------------------- the memoizer

CALLS = []


def _square_sum(values, offset=0, *, scale=1.0):
    """A job: counts its calls in this process (so a test sees whether it ran)."""
    CALLS.append(1)
    return {"sum": float((values ** 2).sum()) * scale + offset}


def _with_progress(x, progress=False):
    return x


def test_a_progress_argument_is_not_part_of_the_key():
    quiet = cache.entry(_with_progress, "t", (1,))
    assert cache.entry(_with_progress, "t", (1,), {"progress": True}) == quiet
    assert cache.entry(_with_progress, "t", (2,)) != quiet
    assert cache.entry(_with_progress, "t", (1,), depends_on={"fonts": ["a"]}) != quiet


def _slow_square(x, pid_dir):
    """A job for worker processes: leaves its process id behind."""
    from pathlib import Path

    (Path(pid_dir) / f"{os.getpid()}-{x}").touch()
    return x * x


def test_memo_computes_once_per_arguments_as_bound_and_recomputes_a_corrupted_entry(
        tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))
    CALLS.clear()
    x = np.arange(4.0)
    first = cache.memo(_square_sum, x, 1, folder="t", scale=2.0)
    assert first == {"sum": 29.0} and len(CALLS) == 1
    assert cache.memo(_square_sum, x.copy(), offset=1, scale=2.0, folder="t") == first
    assert len(CALLS) == 1  # the same values, positional or by name: loaded
    assert cache.memo(_square_sum, x + 1, 1, folder="t", scale=2.0) == {"sum": 61.0}
    assert len(CALLS) == 2
    entry = cache.entry(_square_sum, "t", (x, 1), {"scale": 2.0})
    entry.write_bytes(entry.read_bytes()[:-3])  # truncated
    with pytest.warns(UserWarning, match="corrupted"):
        assert cache.memo(_square_sum, x, 1, folder="t", scale=2.0) == first
    assert len(CALLS) == 3 and cache.memo(_square_sum, x, 1, folder="t", scale=2.0) == first
    assert cache.memo(_square_sum, x * 5, folder="t", cached_only=True) is None
    assert len(CALLS) == 3


def _powers(x, *, each):
    """A job with named parts: x ** p for each part's power, one call for all that are asked."""
    CALLS.append(sorted(each))
    return {name: float(x.value ** opts["p"]) for name, opts in each.items()}


def test_memo_each_keeps_one_entry_per_name_and_computes_the_missing_ones_in_one_call(
        tmp_path, monkeypatch):
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))
    CALLS.clear()
    made = []
    x = cache.Lazy("three", lambda: made.append(1) or 3)
    assert cache.memo_each(_powers, x, each={"sq": {"p": 2}, "cube": {"p": 3}},
                           folder="t") == {"sq": 9.0, "cube": 27.0}
    assert CALLS == [["cube", "sq"]] and made == [1]
    x = cache.Lazy("three", lambda: made.append(1) or 3)
    # one option changed: that name alone is computed; the input is made again only for it
    assert cache.memo_each(_powers, x, each={"sq": {"p": 2}, "cube": {"p": 4}},
                           folder="t") == {"sq": 9.0, "cube": 81.0}
    assert CALLS[1:] == [["cube"]] and made == [1, 1]
    x = cache.Lazy("three", lambda: made.append(1) or 3)
    assert cache.memo_each(_powers, x, each={"cube": {"p": 3}}, folder="t") == {"cube": 27.0}
    assert len(CALLS) == 2 and made == [1, 1]  # all cached: the lazy input is never made
    # the lazy input is keyed by its key, not by what make() would return
    other = cache.Lazy("four", lambda: 4)
    assert cache.memo_each(_powers, other, each={"sq": {"p": 2}}, folder="t") == {"sq": 16.0}


def _where_is_my_checkpoint(x):
    return str(cache.checkpoint_file())


def test_a_job_computed_by_memo_finds_its_checkpoint_beside_its_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path))
    inside = cache.memo(_where_is_my_checkpoint, 1, folder="t")
    assert inside == str(cache.entry(_where_is_my_checkpoint, "t", (1,)).with_suffix(".ckpt"))
    assert cache.checkpoint_file() is None and _where_is_my_checkpoint(1) == "None"


def test_memo_keys_data_sets_and_models_by_content_and_refuses_what_it_cannot_key():
    import numpy as np
    import torch

    from helpers import data, models

    glyphs = data.glyphs(chars="ab", per_pair=1, resolution=16)
    same = data.glyphs(chars="ab", per_pair=1, resolution=16)
    assert cache.fingerprint(glyphs) == cache.fingerprint(same)
    torch.manual_seed(0)
    a = models.create("smallcnn", 2, width=4, depth=2)
    torch.manual_seed(0)
    b = models.create("smallcnn", 2, width=4, depth=2)
    assert cache.fingerprint(a) == cache.fingerprint(b)
    with torch.no_grad():
        next(b.parameters())[0] += 1
    assert cache.fingerprint(a) != cache.fingerprint(b)
    assert cache.fingerprint(np.int64(3)) == 3 and cache.fingerprint(0.1) == "0.1"
    with pytest.raises(TypeError, match="cannot key a cache entry on a object"):
        cache.fingerprint(object())


def test_cached_jobs_are_written_by_the_workers_and_a_rerun_starts_no_process(tmp_path,
                                                                               monkeypatch):
    from helpers import jobs

    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path / "cache"))
    pids = tmp_path / "pids"
    pids.mkdir()
    todo = [(x, str(pids)) for x in range(4)]
    assert jobs.run(_slow_square, todo, workers=2, cache="sq") == [0, 1, 4, 9]
    assert len(list((tmp_path / "cache" / "sq").glob("_slow_square-*.pt"))) == 4
    assert os.getpid() not in {int(p.name.split("-")[0]) for p in pids.iterdir()}
    monkeypatch.setattr(jobs, "_local", None)  # starting any process would fail now
    assert jobs.run(_slow_square, todo, workers=2, cache="sq") == [0, 1, 4, 9]
