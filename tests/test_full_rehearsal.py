"""The full profile, rehearsed offline on the CPU before anyone pays for a GPU (issue #16).

``python -m helpers run <chapter> --profile full`` runs every chapter with the full profile's
own values and code, against stand-ins written by ``tests/standins.py``: random-weight
checkpoints of the profile's exact timm names in a Hugging Face hub cache (``HF_HOME``, read
with ``HF_HUB_OFFLINE=1``), and a few images per class of every torchvision data set it names,
in torchvision's own on-disk formats, under ``~/.cache/torchvision`` of a temporary ``HOME``
(the root the chapters read when ``data_root`` is empty, as in the profile). Then the book is
built from the executed chapters. ``download: true`` stays as the profile has it: every set is
present, so torchvision must not fetch anything, and every Python process of the run (CLI,
kernels, workers) refuses non-loopback connections (a ``sitecustomize`` on ``PYTHONPATH``),
so a step that needs the network fails the test. ``HELPERS_DEVICE`` is unset: no GPU here.

The only changes to the full profile are sizes, in :data:`OVERRIDES` (``-p``): fewer images,
epochs, seeds, trials, probe sets, models and targets (subsets of the profile's own lists),
the glyph zoo's ``scale`` and the tunnel's ``resolutions`` (zoo-trained resolutions). Every
hub name the profile lists is loaded and run through the feature extraction (and, for
transferability's members, the pre-logits) by :func:`test_every_hub_name_loads_offline`, and
every data set it lists is opened by the chapters' own loaders in
:func:`test_every_data_set_opens_through_the_chapters_loaders`. Why not the full lists in the
chapters: a ViT-B/16 fine-tune at 224 px costs about a second per image on this 2-core CPU.

Not proven here (no GPU, no network): the real checkpoints' values and sizes (2.5 GB), the real
data sets' files and md5 sums, downloading, CUDA/bf16 (``bench/gpu_check.py`` does that on a
GPU machine), and the full sizes' memory and time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import standins
from conftest import ROOT, _copy_sources

pytestmark = pytest.mark.slow

#: The full-profile parameters this rehearsal overrides, per chapter (sizes only).
OVERRIDES = {
    "tour": {"scale": "smoke", "unseen_fonts": 3, "per_pair": 1},
    "separability": {"models": ["pvt_v2_b1.in1k", "poolformer_s12.sail_in1k"],
                     "train_per_class": 2, "unseen_per_class": 2, "epochs": 1, "trials": [42]},
    "transferability": {"members": ["mnasnet_100.rmsp_in1k", "mobilenetv2_100.ra_in1k"],
                        "targets": ["CIFAR10", "StanfordCars", "Caltech101"],
                        "train_per_class": 2},
    "tunnel": {"scale": "smoke", "variables": ["resolution", "depth"], "resolutions": [16, 32],
               "depth": ["resnet18.tv_in1k", "resnet34.tv_in1k"],
               "ood_sets": ["CIFAR10", "STL10", "SVHN"], "per_class": 2,
               "train_per_class": 1, "test_per_class": 1, "probe_seeds": [0]},
    "double_descent": {"source_epochs": 1, "sizes": [10, 20], "compare_sizes": [20],
                       "seeds": [0, 1], "ks": [0, 3, 5], "epochs": 2, "last": 2,
                       "ew_sizes": [10, 20], "ew_epochs": 5, "workers": 2},  # the profile's 4 share a GPU
    "atlas": {"other_data": ["DTD", "SVHN"], "per_class": 2, "seeds": [0, 1],
              "measures": ["nmi", "knn", "logme", "probe", "nc1"], "probe_epochs": 2},
}
CHAPTERS = tuple(OVERRIDES)


def _arg(value) -> str:
    return json.dumps(value) if isinstance(value, list) else str(value)


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """The stand-ins and the environment of every command: paths and ``env``."""
    import matplotlib

    tmp = tmp_path_factory.mktemp("full-rehearsal")
    home, hf = tmp / "home", tmp / "hf"
    data_root = home / ".cache" / "torchvision"
    tic = time.perf_counter()
    manifest = standins.write_datasets(data_root, standins.dataset_names())
    data_seconds = time.perf_counter() - tic
    site = standins.write_site(tmp / "site")
    env = {k: v for k, v in os.environ.items()
           if k not in ("HELPERS_DEVICE", "HELPERS_SCHEDULER", "HELPERS_PROFILE", "PYTHONPATH")}
    env.update(HOME=str(home), HF_HOME=str(hf), HF_HUB_OFFLINE="1",
               HELPERS_CACHE=str(tmp / "cache"), STANDINS_MD5=str(manifest),
               PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]),
               MPLCONFIGDIR=matplotlib.get_configdir(), CUDA_VISIBLE_DEVICES="")
    tic = time.perf_counter()
    names = standins.hub_names()
    standins.write_hub_checkpoints(hf, names)
    print(f"stand-ins: data sets {data_seconds:.1f} s, {len(names)} hub checkpoints "
          f"{time.perf_counter() - tic:.1f} s")
    book = tmp / "book"
    _copy_sources(book)
    shutil.rmtree(book / "book" / "chapters", ignore_errors=True)
    return {"tmp": tmp, "env": env, "data_root": data_root, "manifest": manifest, "hf": hf,
            "names": names, "book": book, "executed": book / "book" / "chapters"}


def run_full(rehearsal, chapter: str, overrides: dict, env: dict | None = None,
             out: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    args = [x for k, v in overrides.items() for x in ("-p", f"{k}={_arg(v)}")]
    out = out or rehearsal["executed"]
    return subprocess.run([sys.executable, "-m", "helpers", "run", chapter, "--profile", "full",
                           *args, "--output-dir", str(out)], cwd=ROOT,
                          env=env or rehearsal["env"], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_every_hub_name_loads_offline(rehearsal):
    """Every timm name of the full profile: a hub id timm resolves, loaded offline through
    ``helpers.zoo.load``, every layer extracted (pre-logits too for transferability)."""
    members = standins.full_profile()["transferability"]["members"]
    tests = ROOT / "tests"
    done = subprocess.run([sys.executable, str(tests / "standins.py"), "check-hub",
                           *rehearsal["names"], "--members", *members], cwd=ROOT,
                          env=rehearsal["env"], capture_output=True, text=True, check=False,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["name"]: r for r in map(json.loads, (line for line in done.stdout.splitlines()
                                                   if line.startswith("{")))}
    assert set(rows) == set(rehearsal["names"])
    for name, row in rows.items():
        assert row["layers"] >= 4 and len(row["features"]) == row["layers"] + 1, row
        assert row["classes"] == (1000 if name in members else 5), row
    assert rows["inception_v3.tv_in1k"]["input"] == 299
    assert all(rows[m]["pre_logits"][0] == 1 for m in members)


def test_every_data_set_opens_through_the_chapters_loaders(rehearsal):
    """Each torchvision set of the full profile, through the loader of the chapter that uses
    it (the splits and constructors differ), from the stand-ins with download=False."""
    from helpers import data
    from helpers.studies import transferability, tunnel
    from helpers.studies.separability import build_domain

    standins.accept_standins(rehearsal["manifest"])
    root = rehearsal["data_root"]
    full = standins.full_profile()
    for name in full["transferability"]["targets"]:
        s = transferability.torchvision_target(name, 2, resolution=16, root=root)
        assert len(s.classes) >= 2 and len(s) >= 2 * len(s.classes), name
    for name in [full["tunnel"]["hub_id_data"]] + [
            n for n in full["tunnel"]["ood_sets"] if n in data.torchvision_names()]:
        s = tunnel.load_set(name, resolution=16, per_class=2, root=root)
        assert len(s) == 2 * len(s.classes), name
    for name in full["double_descent"]["sources"] + [full["double_descent"]["target"]]:
        for train in (True, False):
            s = data.load(name, resolution=32, root=root, train=train)
            assert s.images.shape[1:] == (3, 32, 32), name
    calligraphy = standins.write_calligraphy(rehearsal["tmp"] / "calligraphy")
    dom = build_domain(str(calligraphy), unseen_classes=5, resolution=32)
    assert len(dom.unseen.classes) == 5 and len(dom.train.classes) == 3


def test_a_missing_data_set_fails_in_one_line_before_any_training(rehearsal):
    """Double descent pre-trains its first source (60 epochs in the profile) before it used to
    open the second: a missing second source now stops the chapter at its parameter check,
    with one line naming the set, the root and what to do; nothing is trained."""
    home = rehearsal["tmp"] / "home-missing"
    standins.write_datasets(home / ".cache" / "torchvision", ["CIFAR100", "CIFAR10"])
    cache = rehearsal["tmp"] / "cache-missing"
    env = {**rehearsal["env"], "HOME": str(home), "HELPERS_CACHE": str(cache),
           "STANDINS_MD5": str(home / ".cache" / "torchvision" / standins.MANIFEST)}
    done = run_full(rehearsal, "double_descent", OVERRIDES["double_descent"], env=env,
                    out=rehearsal["tmp"] / "executed-missing")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-2000:]
    line = errors[0]
    assert "FashionMNIST" in line and str(home / ".cache" / "torchvision") in line, line
    assert "could not be downloaded" in line, line
    assert not (cache / "double_descent").exists()  # no source was pre-trained


def test_a_missing_data_set_offline_says_what_to_do():
    from helpers.data.real import require

    with pytest.raises(FileNotFoundError) as caught:
        require(["Food101"], "/nonexistent/tv-root", download=False)
    message = str(caught.value)
    assert "'Food101'" in message and "/nonexistent/tv-root" in message
    assert "download=true" in message and "\n" not in message
    with pytest.raises(FileNotFoundError, match="put it there by hand"):
        require(["StanfordCars"], "/nonexistent/tv-root", download=True)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_in_the_full_profile(rehearsal, chapter):
    from helpers.book import glued

    tic = time.perf_counter()
    done = run_full(rehearsal, chapter, OVERRIDES[chapter])
    print(f"{chapter}: {time.perf_counter() - tic:.0f} s\n{done.stdout[-1500:]}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    executed = rehearsal["executed"] / f"{chapter}.ipynb"
    meta = json.loads(executed.read_text())["metadata"]["helpers"]
    assert meta["profile"] == "full" and meta["device"].startswith("CPU"), meta
    assert glued(executed)


def test_the_book_builds_from_the_full_profile_chapters(rehearsal):
    executed = sorted(p.stem for p in rehearsal["executed"].glob("*.ipynb"))
    missing = [c for c in CHAPTERS if c not in executed]
    if missing:
        pytest.skip(f"chapters that did not run: {missing}")
    env = {**rehearsal["env"], "PYTHONPATH": os.pathsep.join(
        [str(rehearsal["tmp"] / "site"), str(rehearsal["book"])])}
    done = subprocess.run([sys.executable, "-m", "helpers", "book", "--skip-run"],
                          cwd=rehearsal["book"], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    html = rehearsal["book"] / "_build" / "html" / "book" / "chapters"
    for chapter in CHAPTERS:
        assert (html / f"{chapter}.html").exists(), chapter
