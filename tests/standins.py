"""Stand-ins for what the full profile downloads: timm hub checkpoints and torchvision data sets.

Nothing here is in the package: the full-profile rehearsal (``tests/test_full_rehearsal.py``)
and ``bench/gpu_check.py --cpu-dry-run`` use it to run the full profile's own code offline.

- :func:`write_hub_checkpoints`: randomly initialised weights of the exact timm names, written
  where ``timm.create_model(name, pretrained=True)`` finds them with ``HF_HUB_OFFLINE=1``: the
  Hugging Face hub cache, ``$HF_HOME/hub/models--timm--<name>/snapshots/<rev>/model.safetensors``
  with ``refs/main`` (timm 1.0 resolves ``<name>`` to the hub id ``timm/<name>`` and asks the
  hub for ``model.safetensors``; it takes the model's config from its own registry, so no
  config.json is read).
- :func:`write_datasets`: a few images per class of every torchvision data set the full
  profile names, in the files and folders that torchvision 0.29's classes read with
  ``download=False`` (the extracted layout, no archives), plus an ImageFolder "calligraphy"
  tree (one folder per writer).
- :func:`write_site`: a ``sitecustomize.py`` for the chapters' kernels (subprocesses): every
  non-loopback ``socket.connect`` raises, and torchvision's md5 check accepts the stand-in
  files (CIFAR, SVHN, STL10 and Flowers102 check the md5 of their extracted files; a stand-in
  cannot match the real sums). Only those files: any other file is checked as usual.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

REVISION = "0" * 40  # the snapshot folder's name (a commit hash on the real hub)
MANIFEST = "standins-md5.json"

CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest",
    "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower",
    "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit",
    "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower",
    "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train",
    "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
IMAGENETTE_WNIDS = ("n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
                    "n03394916", "n03417042", "n03425413", "n03445777", "n03888257")

#: every torchvision data set the full profile names (notebooks/params/full.yml)
DATASETS = ("CIFAR10", "CIFAR100", "FashionMNIST", "STL10", "SVHN", "Imagenette", "DTD",
            "Flowers102", "Food101", "OxfordIIITPet", "Caltech101", "FGVCAircraft", "SUN397",
            "StanfordCars")
#: the folder (under the data root) that holds each one (SVHN: its .mat files lie in the root)
FOLDERS = {"CIFAR10": "cifar-10-batches-py", "CIFAR100": "cifar-100-python",
           "FashionMNIST": "FashionMNIST", "STL10": "stl10_binary", "SVHN": None,
           "Imagenette": "imagenette2", "DTD": "dtd", "Flowers102": "flowers-102",
           "Food101": "food-101", "OxfordIIITPet": "oxford-iiit-pet", "Caltech101": "caltech101",
           "FGVCAircraft": "fgvc-aircraft-2013b", "SUN397": "SUN397",
           "StanfordCars": "stanford_cars"}


# ---------------------------------------------------------------------------------------------
# timm hub checkpoints


def hub_folder(hf_home: Path, name: str) -> Path:
    return Path(hf_home) / "hub" / f"models--timm--{name}"


def write_hub_checkpoints(hf_home: Path, names, seed: int = 0) -> dict[str, float]:
    """Random weights of every timm ``name`` (with its tag) in the hub cache under ``hf_home``;
    names already there are skipped. Returns name -> seconds spent."""
    import time

    import timm
    import torch
    from safetensors.torch import save_file

    spent = {}
    for name in names:
        folder = hub_folder(hf_home, name)
        target = folder / "snapshots" / REVISION / "model.safetensors"
        if target.exists():
            continue
        tic = time.perf_counter()
        hub_id = timm.models.get_pretrained_cfg(name).hf_hub_id
        if hub_id != f"timm/{name}":
            raise ValueError(f"{name}: timm resolves it to hub id {hub_id!r}, not timm/{name}")
        torch.manual_seed(seed)
        model = timm.create_model(name)  # the checkpoint's own head (num_classes of its cfg)
        _calibrate_batch_norms(model, timm.models.get_pretrained_cfg(name).input_size)
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        target.parent.mkdir(parents=True, exist_ok=True)
        save_file(state, str(target), metadata={"format": "pt"})
        (folder / "refs").mkdir(exist_ok=True)
        (folder / "refs" / "main").write_text(REVISION)
        spent[name] = time.perf_counter() - tic
    return spent


def _calibrate_batch_norms(model, input_size, n: int = 4) -> None:
    """Running statistics of every batch norm measured on noise (as training would set them):
    with the initial ones (mean 0, variance 1) a deep random network's activations grow by
    orders of magnitude in eval mode, and scores such as LogME turn NaN on them."""
    import torch
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the calls
    model.train()
    with torch.no_grad():
        model(torch.randn(n, *input_size))
    model.eval()
    for m in norms:
        m.momentum = 0.1


# ---------------------------------------------------------------------------------------------
# images


def _image(cls: int, i: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """An HxWx3 uint8 image whose colour and stripes depend on its class, with noise."""
    base = np.array([(37 * cls) % 256, (91 * cls + 50) % 256, (151 * cls + 100) % 256], float)
    yy, xx = np.mgrid[0:size, 0:size]
    stripes = 60 * np.sin((xx * (1 + cls % 5) + yy * (cls % 3)) / size * 2 * np.pi)
    img = base[None, None] + stripes[..., None] + rng.normal(0, 25, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _jpeg(path: Path, cls: int, i: int, rng, size: int = 48, gray: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(_image(cls, i, size, rng))
    (img.convert("L") if gray else img).save(path, quality=90)


def _per_class(n_classes: int, n: int):
    return [(c, i) for c in range(n_classes) for i in range(n)]


# ---------------------------------------------------------------------------------------------
# one writer per data set: (root, rng, train per class, test per class)


def _cifar(root, rng, n_train, n_test, hundred: bool):
    names = CIFAR100_CLASSES if hundred else CIFAR10_CLASSES
    folder = root / FOLDERS["CIFAR100" if hundred else "CIFAR10"]
    folder.mkdir(parents=True, exist_ok=True)
    key = "fine_labels" if hundred else "labels"

    def batch(n):
        items = _per_class(len(names), n)
        data = np.stack([_image(c, i, 32, rng).transpose(2, 0, 1).reshape(-1) for c, i in items])
        out = {"data": data, key: [c for c, _ in items], "filenames": [f"{c}_{i}.png"
                                                                      for c, i in items]}
        if hundred:
            out["coarse_labels"] = [c // 5 for c, _ in items]
        return out

    def dump(obj, name):
        with open(folder / name, "wb") as f:
            pickle.dump(obj, f)

    if hundred:
        dump(batch(n_train), "train")
        dump(batch(n_test), "test")
        dump({"fine_label_names": list(names),
              "coarse_label_names": [f"super{j}" for j in range(20)]}, "meta")
    else:
        train = batch(n_train)
        for b in range(5):  # the 5 batches torchvision checks, the images spread over them
            sel = slice(b, None, 5)
            dump({"data": train["data"][sel], "labels": train["labels"][sel],
                  "filenames": train["filenames"][sel]}, f"data_batch_{b + 1}")
        dump(batch(n_test), "test_batch")
        dump({"label_names": list(names), "num_cases_per_batch": 10000, "num_vis": 3072},
             "batches.meta")


def _fashion(root, rng, n_train, n_test):
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        items = _per_class(10, n)
        images = np.stack([_image(c, i, 28, rng).mean(2).astype(np.uint8) for c, i in items])
        labels = np.array([c for c, _ in items], np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 0x803, len(images), 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 0x801, len(labels)) + labels.tobytes())


def _stl10(root, rng, n_train, n_test):
    folder = root / FOLDERS["STL10"]
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        items = _per_class(10, n)
        # torchvision reads (N, 3, 96, 96) and transposes the last two axes (column-major)
        x = np.stack([_image(c, i, 96, rng).transpose(2, 1, 0) for c, i in items])
        (folder / f"{split}_X.bin").write_bytes(x.astype(np.uint8).tobytes())
        (folder / f"{split}_y.bin").write_bytes(np.array([c + 1 for c, _ in items],
                                                         np.uint8).tobytes())
    (folder / "unlabeled_X.bin").write_bytes(b"")
    (folder / "class_names.txt").write_text("airplane\nbird\ncar\ncat\ndeer\ndog\nhorse\nmonkey\nship\n"
                                            "truck\n")
    (folder / "fold_indices.txt").write_text(
        "\n".join(" ".join(str(j) for j in range(10 * n_train)) for _ in range(10)) + "\n")


def _svhn(root, rng, n_train, n_test):
    from scipy.io import savemat

    folder = root  # torchvision reads <root>/<split>_32x32.mat
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        items = _per_class(10, n)
        x = np.stack([_image(c, i, 32, rng) for c, i in items], axis=3)  # 32x32x3xN
        y = np.array([[c if c else 10] for c, _ in items], np.uint8)  # SVHN writes 0 as 10
        savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})


def _imagenette(root, rng, n_train, n_test):
    for split, n in (("train", n_train), ("val", n_test)):
        for c, wnid in enumerate(IMAGENETTE_WNIDS):
            for i in range(n):
                _jpeg(root / "imagenette2" / split / wnid / f"{wnid}_{split}{i}.JPEG", c, i, rng)


def _dtd(root, rng, n_train, n_test, classes=("banded", "dotted", "striped")):
    base = root / "dtd" / "dtd"
    lines = {"train": [], "val": [], "test": []}
    for c, name in enumerate(classes):
        for split, n in (("train", n_train), ("val", n_test), ("test", n_test)):
            for i in range(n):
                fname = f"{name}_{split}{i:04d}.jpg"
                _jpeg(base / "images" / name / fname, c, i, rng)
                lines[split].append(f"{name}/{fname}")
    (base / "labels").mkdir(parents=True, exist_ok=True)
    for split, rows in lines.items():
        (base / "labels" / f"{split}1.txt").write_text("\n".join(rows) + "\n")


def _flowers(root, rng, n_train, n_test, n_classes=3):
    from scipy.io import savemat

    base = root / "flowers-102"
    labels, ids = [], {"trnid": [], "valid": [], "tstid": []}
    image_id = 0
    for c in range(n_classes):
        for split, n in (("trnid", n_train), ("valid", n_test), ("tstid", n_test)):
            for i in range(n):
                image_id += 1
                _jpeg(base / "jpg" / f"image_{image_id:05d}.jpg", c, i, rng)
                labels.append(c + 1)
                ids[split].append(image_id)
    savemat(base / "imagelabels.mat", {"labels": np.array([labels])})
    savemat(base / "setid.mat", {k: np.array([v]) for k, v in ids.items()})


def _food(root, rng, n_train, n_test, classes=("apple_pie", "pizza", "sushi")):
    base = root / "food-101"
    meta = {"train": {}, "test": {}}
    for c, name in enumerate(classes):
        for split, n in (("train", n_train), ("test", n_test)):
            meta[split][name] = []
            for i in range(n):
                rel = f"{name}/{split}{i}"
                _jpeg(base / "images" / f"{rel}.jpg", c, i, rng)
                meta[split][name].append(rel)
    (base / "meta").mkdir(parents=True, exist_ok=True)
    for split, m in meta.items():
        (base / "meta" / f"{split}.json").write_text(json.dumps(m))


def _pets(root, rng, n_train, n_test, breeds=(("Abyssinian", 1), ("beagle", 2), ("Bengal", 1))):
    base = root / "oxford-iiit-pet"
    rows = {"trainval": [], "test": []}
    for c, (breed, species) in enumerate(breeds):
        for split, n in (("trainval", n_train), ("test", n_test)):
            for i in range(n):
                image_id = f"{breed}_{split}{i}"
                _jpeg(base / "images" / f"{image_id}.jpg", c, i, rng)
                rows[split].append(f"{image_id} {c + 1} {species} 1")
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    for split, r in rows.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(r) + "\n")


def _caltech(root, rng, n_train, n_test, classes=("BACKGROUND_Google", "accordion", "anchor",
                                                  "ant")):
    base = root / "caltech101" / "101_ObjectCategories"
    for c, name in enumerate(classes):
        for i in range(n_train + n_test):
            _jpeg(base / name / f"image_{i + 1:04d}.jpg", c, i, rng, gray=c == 2)


def _aircraft(root, rng, n_train, n_test, variants=("707-320", "A320", "Cessna 172")):
    data = root / "fgvc-aircraft-2013b" / "data"
    rows = {"trainval": [], "test": [], "train": [], "val": []}
    k = 1000000
    for c, name in enumerate(variants):
        for split, n in (("trainval", n_train), ("test", n_test)):
            for i in range(n):
                k += 1
                _jpeg(data / "images" / f"{k}.jpg", c, i, rng)
                rows[split].append(f"{k} {name}")
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    for split, r in rows.items():
        (data / f"images_variant_{split}.txt").write_text("\n".join(r) + ("\n" if r else ""))


def _sun397(root, rng, n_train, n_test, classes=("a/abbey", "b/beach", "k/kitchen")):
    base = root / "SUN397"
    for c, name in enumerate(classes):
        for i in range(n_train + n_test):
            _jpeg(base / name / f"sun_{c}{i:04d}.jpg", c, i, rng)
    (base / "ClassName.txt").write_text("".join(f"/{name}\n" for name in classes))


def _cars(root, rng, n_train, n_test, classes=("AM General Hummer SUV 2000",
                                                "Audi TT RS Coupe 2012", "BMW M3 Coupe 2012")):
    from scipy.io import savemat

    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    dtype = [("fname", object), ("class", np.uint8)]
    for split, n, mat, folder in (("train", n_train, base / "devkit" / "cars_train_annos.mat",
                                   "cars_train"),
                                  ("test", n_test, base / "cars_test_annos_withlabels.mat",
                                   "cars_test")):
        rows = []
        for c in range(len(classes)):
            for i in range(n):
                fname = f"{split}{c}{i:04d}.jpg"
                _jpeg(base / folder / fname, c, i, rng)
                rows.append((fname, c + 1))
        savemat(mat, {"annotations": np.array(rows, dtype=dtype)[None]})
    names = np.empty((1, len(classes)), dtype=object)
    names[0, :] = list(classes)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": names})


WRITERS = {
    "CIFAR10": lambda r, g, a, b: _cifar(r, g, a, b, hundred=False),
    "CIFAR100": lambda r, g, a, b: _cifar(r, g, a, b, hundred=True),
    "FashionMNIST": _fashion, "STL10": _stl10, "SVHN": _svhn, "Imagenette": _imagenette,
    "DTD": _dtd, "Flowers102": _flowers, "Food101": _food, "OxfordIIITPet": _pets,
    "Caltech101": _caltech, "FGVCAircraft": _aircraft, "SUN397": _sun397,
    "StanfordCars": _cars,
}


def write_datasets(root: Path, names=DATASETS, train_per_class: int = 4, test_per_class: int = 2,
                   seed: int = 0) -> Path:
    """Every data set of ``names`` under ``root`` (a torchvision data root), ``train_per_class``
    training and ``test_per_class`` test/val images per class; returns the md5 manifest of
    the files written (what :func:`write_site`'s md5 check accepts)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for name in names:
        WRITERS[name](root, rng, train_per_class, test_per_class)
    manifest = root / MANIFEST
    sums = json.loads(manifest.read_text()) if manifest.exists() else {}
    for path in root.rglob("*"):
        if path.is_file() and path.name != MANIFEST and path.suffix.lower() not in (".jpg",
                                                                                   ".jpeg"):
            sums[str(path.resolve())] = hashlib.md5(path.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(sums, indent=0))
    return manifest


def write_calligraphy(folder: Path, writers: int = 8, per_writer: int = 4, seed: int = 1) -> Path:
    """An ImageFolder tree, one sub-folder per writer (the separability chapter's calligraphy)."""
    rng = np.random.default_rng(seed)
    for w in range(writers):
        for i in range(per_writer):
            _jpeg(Path(folder) / f"writer{w:02d}" / f"{i}.jpg", w + 7, i, rng, size=64,
                  gray=True)
    return Path(folder)


# ---------------------------------------------------------------------------------------------
# the kernels' sitecustomize


SITE = '''"""Written by tests/standins.py for the full-profile rehearsal: loaded by every Python
process that has this folder on PYTHONPATH (the CLI, the chapters' kernels, their workers)."""
import importlib.abc
import importlib.machinery
import json
import os
import socket
import sys

_connect = socket.socket.connect


def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1")
                                      or self.family == socket.AF_UNIX):
        raise OSError(f"full-profile rehearsal: no network (tried to connect to {address})")
    return _connect(self, address)


socket.socket.connect = _loopback_only
_MANIFEST = os.environ.get("STANDINS_MD5")


def _patch(utils):
    sums = json.loads(open(_MANIFEST).read()) if _MANIFEST else {}
    original = utils.check_md5

    def check_md5(fpath, md5, **kwargs):
        if original(fpath, md5, **kwargs):
            return True
        want = sums.get(os.path.realpath(fpath))
        return want is not None and utils.calculate_md5(fpath) == want

    utils.check_md5 = check_md5


class _Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "torchvision.datasets.utils":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Hook())
'''


def write_site(folder: Path) -> Path:
    """``folder/sitecustomize.py`` (see the module's docstring); put ``folder`` on PYTHONPATH
    and the manifest of :func:`write_datasets` in ``STANDINS_MD5``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITE)
    return folder


def accept_standins(manifest: Path) -> None:
    """The same md5 rule in this process (for tests that open the stand-ins in-process)."""
    from torchvision.datasets import utils

    sums = json.loads(Path(manifest).read_text())
    if getattr(utils.check_md5, "_standins", None) is not None:
        utils.check_md5._standins.update(sums)
        return
    original = utils.check_md5

    def check_md5(fpath, md5, **kwargs):
        if original(fpath, md5, **kwargs):
            return True
        want = check_md5._standins.get(str(Path(fpath).resolve()))
        return want is not None and utils.calculate_md5(fpath) == want

    check_md5._standins = dict(sums)
    utils.check_md5 = check_md5


# ---------------------------------------------------------------------------------------------
# the full profile's names, read from its own file


def full_profile(path: Path | None = None) -> dict:
    import yaml

    path = path or Path(__file__).resolve().parents[1] / "notebooks" / "params" / "full.yml"
    return yaml.safe_load(Path(path).read_text())


def hub_names(full: dict | None = None) -> list[str]:
    """Every timm name with a tag (a hub checkpoint) that the full profile names."""
    full = full or full_profile()
    names = []
    for block in full.values():
        for value in (block or {}).values():
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, str) and "." in v and "/" not in v and v[0].islower():
                    names.append(v)
    return sorted(dict.fromkeys(names))


def dataset_names(full: dict | None = None) -> list[str]:
    """Every torchvision data set that the full profile names."""
    from helpers.names import torchvision_datasets

    known = set(torchvision_datasets())
    full = full or full_profile()
    found = [v for block in full.values() for value in (block or {}).values()
             for v in (value if isinstance(value, list) else [value])
             if isinstance(v, str) and v in known]
    return sorted(dict.fromkeys(found))


def check_hub_names(names, transfer_members=()) -> list[dict]:
    """Load every name from the hub cache through ``helpers.zoo.load`` (a fresh 5-class head, as
    separability and tunnel do; 1000 classes for ``transfer_members``, as transferability
    does), extract every layer of one image at the model's own input size, and for the
    transferability members the pre-logits; one row per name. Run with HF_HUB_OFFLINE=1."""
    import time

    import torch

    from helpers import data, features, models, zoo
    from helpers.studies import transferability

    rows = []
    one = data.ImageSet(torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8),
                        torch.tensor([0]), ["a"], "one")
    for name in names:
        tic = time.perf_counter()
        member = name in transfer_members
        model, _ = zoo.load(name, num_classes=None if member else 5, progress=False)
        feats = features.extract(model, one, progress=False)
        extra = transferability.pre_logits(model, one) if member else None
        rows.append({"name": name, "layers": len(models.layer_names(model)),
                     "features": sorted(feats), "input": models.input_spec(model)["size"],
                     "classes": int(model.get_classifier().out_features),
                     "pre_logits": None if extra is None else list(extra["pre_logits"].shape),
                     "seconds": round(time.perf_counter() - tic, 1)})
    return rows


if __name__ == "__main__":  # python tests/standins.py check-hub NAME... [--members NAME...]
    import sys

    args = sys.argv[1:]
    if not args or args[0] != "check-hub":
        sys.exit("usage: python tests/standins.py check-hub NAME... [--members NAME...]")
    names = args[1:]
    members = []
    if "--members" in names:
        i = names.index("--members")
        names, members = names[:i], names[i + 1:]
    for row in check_hub_names(list(dict.fromkeys(names + members)), members):
        print(json.dumps(row), flush=True)
