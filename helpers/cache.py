"""Content-addressed on-disk cache: keys cover everything that determines an entry, the code
that computes it included; every entry is written atomically (temp names unique across hosts),
checksummed, and recomputed when found corrupted."""

from __future__ import annotations

import ast
import builtins
import contextlib
import contextvars
import dataclasses
import fcntl
import functools
import glob
import hashlib
import importlib.metadata
import importlib.util
import inspect
import io
import json
import os
import re
import secrets
import shutil
import socket
import sys
import textwrap
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch


def cache_dir() -> Path:
    """``$HELPERS_CACHE``, else ``.cache/`` of the source checkout, else ``~/.cache/which-layer``."""
    env = os.environ.get("HELPERS_CACHE")
    if env:
        path = Path(env).expanduser()
    else:
        root = Path(__file__).resolve().parents[1]
        path = root / ".cache" if (root / "pyproject.toml").exists() else Path.home() / ".cache" / "which-layer"
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_key(code: Callable | Sequence[Callable], **parts) -> str:
    """SHA-256 of the parts (JSON, sorted) and of ``code``, the function(s) that compute the
    entry (:func:`code_hash`): editing that code, or code it calls, misses the old entries."""
    code = [code] if callable(code) else list(code)
    text = json.dumps({**parts, "code": code_hash(*code)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


#: third-party packages whose version enters every key (their code computes our results too)
KEYED_PACKAGES = ("torch", "timm", "numpy", "scipy", "scikit-learn")


def code_hash(*functions: Callable) -> str:
    """SHA-256 of the source of ``functions`` and of every function, class and constant of
    their own package that they reach, and of :data:`KEYED_PACKAGES`' versions.

    Reached: names a function loads from its globals or closure (modules followed through the
    attribute names it uses), lazy ``from . import`` targets, and the classes of the package
    that define an attribute it uses on an object (a method call). Like ``joblib.Memory``'s
    function hash, but following the call graph, so that editing a helper a job calls misses
    its entries and editing unrelated code does not.
    """
    sources = {}
    for fn in functions:
        sources.update(_reached(fn))
    versions = {p: _version(p) for p in KEYED_PACKAGES}
    text = json.dumps({"code": sources, "versions": versions}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@functools.cache
def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _package(obj) -> str | None:
    name = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
    return name.split(".")[0] if isinstance(name, str) else None


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names) | set(code.co_freevars)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _source(obj) -> str:
    """A function's compiled code without its docstring (what runs in this process, not the
    file, which may have been edited since), or a class's own non-function attributes (its
    methods are followed)."""
    if isinstance(obj, type):
        attrs = {k: v for k, v in vars(obj).items()
                 if not callable(getattr(v, "__func__", v)) and not isinstance(v, property)
                 and not (k.startswith("__") and k != "__annotations__")}  # __slotnames__...
        return json.dumps([obj.__qualname__, [b.__qualname__ for b in obj.__bases__],
                           _stable(attrs)], sort_keys=True)
    return json.dumps(_code(obj.__code__, doc=obj.__doc__))


def _code(code: types.CodeType, doc: str | None = None) -> list:
    """``code`` as JSON-able parts; its docstring ``doc`` left out (it computes nothing)."""
    consts = [_code(c) if isinstance(c, types.CodeType) else _stable(c) for c in code.co_consts]
    if doc is not None and code.co_consts and code.co_consts[0] == doc:
        consts[0] = None
    return [code.co_code.hex(), consts, code.co_names, code.co_varnames, code.co_freevars]


def _stable(value, depth: int = 0):
    """A JSON-able picture of a module-level constant, without memory addresses."""
    if isinstance(value, (str, int, bool, type(None))):
        return value
    if isinstance(value, (float, bytes, complex)) or value is Ellipsis:
        return repr(value)
    if callable(value) or isinstance(value, types.ModuleType):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', value)}"
    if depth > 4:
        return type(value).__name__
    if isinstance(value, dict):
        return {str(k): _stable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_stable(v, depth + 1) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    return type(value).__name__


def _module_closure(module: types.ModuleType) -> list[types.ModuleType]:
    """The modules of ``module``'s package that it imports, directly or not (its globals)."""
    package, seen, stack = _package(module), {}, [module]
    while stack:
        m = stack.pop()
        if m.__name__ in seen:
            continue
        seen[m.__name__] = m
        for value in vars(m).values():
            if _package(value) != package:
                continue
            owner = value if isinstance(value, types.ModuleType) else sys.modules.get(
                getattr(value, "__module__", ""))
            if owner is not None:
                stack.append(owner)
    return [seen[k] for k in sorted(seen)]


_MISSING = object()
_walks: dict = {}


def _reached(root: Callable) -> dict[str, str]:
    """What :func:`code_hash` hashes for ``root``; the walk is reused while every name it
    looked up still resolves to the same object (a monkeypatch or a reload walks again)."""
    walk = _walks.get(root)
    if walk is None or not all(_unchanged(*lookup) for lookup in walk[1]):
        walk = _walks[root] = _walk(root)
    return walk[0]


def _constant(name: str, value) -> bool:
    """A value that is part of the code: a default argument, a closure's value, or a module
    constant (an UPPER_CASE name, PEP 8); lower-case module globals are state (caches,
    clients, flags) and change while the code does not."""
    if callable(value) or isinstance(value, types.ModuleType):
        return False
    return name in ("default", "closure") or re.fullmatch(r"_?[A-Z][A-Z0-9_]*", name) is not None


def _unchanged(container, name, value) -> bool:
    if isinstance(container, tuple):  # closure cells
        return container[name].cell_contents is value
    return container.get(name, _MISSING) is value


def _walk(root: Callable) -> tuple[dict[str, str], list]:
    root = inspect.unwrap(root.func if isinstance(root, functools.partial) else root)
    package = _package(root)
    classes = [c for m in _module_closure(sys.modules[root.__module__])
               for c in vars(m).values()
               if isinstance(c, type) and c.__module__ == m.__name__]
    out: dict[str, str] = {}
    lookups: list = []
    stack = [root]

    def follow(value, names: set[str], where: str, name: str, depth: int = 0) -> None:
        if isinstance(value, functools.partial):
            value = value.func
        if callable(value) and hasattr(value, "__wrapped__"):  # functools.cache, wraps
            value = inspect.unwrap(value)
        if _package(value) != package:
            if _constant(name, value):
                out[f"{where}:{name}"] = json.dumps(_stable(value), sort_keys=True)
            return
        if isinstance(value, types.ModuleType):
            if depth < 3:
                for n in names & set(vars(value)):
                    lookups.append((vars(value), n, vars(value)[n]))
                    follow(vars(value)[n], names, value.__name__, n, depth + 1)
        elif isinstance(value, type) or inspect.isfunction(value):
            stack.append(value)
        elif _constant(name, value):
            out[f"{where}:{name}"] = json.dumps(_stable(value), sort_keys=True)

    while stack:
        obj = stack.pop()
        key = f"{obj.__module__}.{obj.__qualname__}"
        if key in out:
            continue
        out[key] = _source(obj)
        if isinstance(obj, type):
            for base in obj.__mro__[1:]:
                if _package(base) == package:
                    stack.append(base)
            lookups.extend((vars(obj), k, v) for k, v in vars(obj).items())
            for attr in vars(obj).values():
                attr = getattr(attr, "__func__", attr)
                for f in (attr, getattr(attr, "fget", None), getattr(attr, "fset", None)):
                    if inspect.isfunction(f):
                        stack.append(f)
            continue
        names = _names(obj.__code__)
        cells = obj.__closure__ or ()
        scope = {n: i for i, n in enumerate(obj.__code__.co_freevars)}
        missing = set()
        for n in names:
            if n in scope:
                value = cells[scope[n]].cell_contents
                lookups.append((cells, scope[n], value))
            elif n in obj.__globals__:
                value = obj.__globals__[n]
                lookups.append((obj.__globals__, n, value))
            else:
                if not hasattr(builtins, n):
                    missing.add(n)
                continue
            follow(value, names, obj.__module__, "closure" if n in scope else n)
        for n in _lazy_imports(obj):
            follow(sys.modules.get(n) or importlib.import_module(n), names, obj.__module__, n)
        stack.extend(c for c in classes if (missing - _common_attributes()) & set(vars(c)))
        for default in (obj.__defaults__ or ()) + tuple((obj.__kwdefaults__ or {}).values()):
            follow(default, names, key, "default")
    return out, lookups


@functools.cache
def _common_attributes() -> set[str]:
    """Attribute names of tensors, arrays, frames, modules and builtins: a call ``x.mean()``
    names no class of ours (a class the code names itself is followed anyway)."""
    import pandas as pd

    kinds = (torch.Tensor, torch.nn.Module, np.ndarray, pd.DataFrame, pd.Series, dict, list,
             str, set, tuple)
    return {n for kind in kinds for n in dir(kind)}


def _lazy_imports(fn) -> list[str]:
    """Modules of ``fn``'s package that it imports inside its body (``from ..x import y``)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return []
    package, top = sys.modules[fn.__module__].__package__, _package(fn)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) \
                if node.level else node.module or ""
            if base.split(".")[0] != top:
                continue
            out.append(base)
            if hasattr(importlib.import_module(base), "__path__"):
                out.extend(f"{base}.{a.name}" for a in node.names
                           if importlib.util.find_spec(f"{base}.{a.name}") is not None)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names if a.name.split(".")[0] == top)
    return out


def weights_hash(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer (names, shapes, values)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of the file at ``path``, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock (``path.lock``) so two processes never build the same entry at once.

    ``flock``: on NFS, Linux clients turn it into a byte-range lock that the server arbitrates
    between hosts (NFSv4, or v3 with lockd); Lustre needs the ``-o flock`` mount option
    (``localflock`` locks within one node only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def commit(tmp: Path, final: Path, files: list[str], meta: dict) -> None:
    """Write checksums + meta into ``tmp`` and rename it to ``final`` (atomic)."""
    meta = {**meta, "sha256": {f: file_sha256(tmp / f) for f in files}}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)


def verify(entry: Path) -> dict | None:
    """The entry's meta if every file matches its checksum; else warn, remove it, None."""
    meta_file = entry / "meta.json"
    if not meta_file.exists():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        bad = [f for f, digest in meta["sha256"].items() if file_sha256(entry / f) != digest]
    except (OSError, ValueError, KeyError) as err:
        bad = [f"meta.json ({err})"]
    if bad:
        warnings.warn(f"cache entry {entry.name} is corrupted ({', '.join(bad)}): recomputing")
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return meta


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``; None if it is missing or unreadable (a killed write)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def temp_path(path: Path) -> Path:
    """A name beside ``path`` that no other process on any host uses: host, pid, random."""
    path = Path(path)
    return path.with_name(f"{path.name}.tmp-{socket.gethostname()}-{os.getpid()}-"
                          f"{secrets.token_hex(4)}")


@contextlib.contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """Write to the yielded temp path; on success it replaces ``path`` in one rename, on an
    error it is removed. Temps of ``path`` left by dead processes of this host (a killed
    worker) are removed too."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    remove_stale_temps(path)


def remove_stale_temps(path: Path) -> None:
    """Remove ``path``'s temp files (:func:`temp_path`) whose process on this host is gone."""
    path = Path(path)
    for tmp in path.parent.glob(f"{glob.escape(path.name)}.tmp-{socket.gethostname()}-*"):
        pid = tmp.name.rsplit("-", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic`)."""
    with atomic(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, obj: dict) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    write_atomic(path, json.dumps(obj, indent=1, default=str))


def save_atomic(obj, path: Path) -> None:
    """``torch.save`` to ``path`` atomically (:func:`atomic`)."""
    with atomic(path) as tmp:
        torch.save(obj, tmp)


def verified_report(report_file: Path, weights: Path) -> dict | None:
    """The JSON report of a finished training whose ``weights`` file still has the sha256 the
    report recorded; None when either is missing, truncated or changed."""
    report = read_json(report_file)
    if report and Path(weights).exists() and report.get("sha256") == file_sha256(weights):
        return report
    return None


# ---------------------------------------------------------------------------------------------
# the memoizer: one cached result per (function, arguments, code)

def fingerprint(value):
    """A JSON-able identity of a job argument: data sets by their pixels and labels, models by
    their weights, arrays and tables by their bytes, containers element-wise; a TypeError
    names any other kind (its ``repr`` could hold a memory address, or miss its content)."""
    from .data import ImageSet

    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, ImageSet):
        return {"ImageSet": value.fingerprint}
    if isinstance(value, Lazy):
        return {"Lazy": value.key}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {type(value).__name__: {f.name: fingerprint(getattr(value, f.name))
                                       for f in dataclasses.fields(value)}}
    if isinstance(value, torch.nn.Module):
        return {type(value).__name__: weights_hash(value)}
    if isinstance(value, (torch.Tensor, np.ndarray)):
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        array = np.ascontiguousarray(array)
        digest = hashlib.sha256(array.view(np.uint8).tobytes()).hexdigest()[:32]
        return {"array": [str(array.dtype), list(array.shape), digest]}
    if isinstance(value, dict):
        return {str(k): fingerprint(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [fingerprint(v) for v in value]
    import pandas as pd

    if isinstance(value, (pd.DataFrame, pd.Series)):
        text = value.to_json(orient="split", double_precision=15)
        return {"table": hashlib.sha256(text.encode()).hexdigest()[:32]}
    raise TypeError(f"cannot key a cache entry on a {type(value).__name__}; pass plain values, "
                    "arrays, tables, data sets or models")


def entry(fn: Callable, folder: str, args: tuple = (), kwargs: dict | None = None,
          depends_on: dict | None = None) -> Path:
    """Where :func:`memo` keeps ``fn(*args, **kwargs)``: ``cache_dir()/folder``, named by the
    function and a key of its arguments as bound to its signature (:func:`fingerprint`; a
    ``progress`` argument, which changes no result, left out), of ``depends_on`` and of the
    code (:func:`make_key`)."""
    bound = inspect.signature(fn).bind(*args, **(kwargs or {}))
    bound.apply_defaults()  # f(x, 2) and f(x, seed=2) are one entry
    arguments = {k: v for k, v in bound.arguments.items() if k != "progress"}
    key = make_key(fn, function=f"{fn.__module__}.{fn.__qualname__}",
                   arguments=fingerprint(arguments),
                   depends_on=fingerprint(depends_on or {}))
    return cache_dir() / folder / f"{fn.__name__}-{key}.pt"


def memo(fn: Callable, *args, folder: str, cached_only: bool = False,
         depends_on: dict | None = None, **kwargs):
    """``fn(*args, **kwargs)``, computed once per key (:func:`entry`) and kept: written
    atomically with its sha256, read back only when that still matches (a truncated or altered
    entry is recomputed), built by one process at a time. ``depends_on``: what else the result
    depends on (e.g. the font files found). ``cached_only``: the cached result or None,
    computing nothing. The one cache of the studies' jobs (``helpers.jobs.run(...,
    cache=folder)``)."""
    path = entry(fn, folder, args, kwargs, depends_on)
    found, value = _read_entry(path)
    if found or cached_only:
        return value
    with locked(path):
        found, value = _read_entry(path)
        if not found:
            token = _COMPUTING.set(path)
            try:
                value = fn(*args, **kwargs)
            finally:
                _COMPUTING.reset(token)
            _write_entry(path, value)
    return value


_COMPUTING = contextvars.ContextVar("computing", default=None)


def checkpoint_file() -> Path | None:
    """Where the job that :func:`memo` is computing keeps its training checkpoint (beside its
    entry, removed by the job when done), so an interrupted job resumes; None outside one."""
    path = _COMPUTING.get()
    return None if path is None else path.with_suffix(".ckpt")


def memo_each(fn: Callable, *args, each: dict, folder: str, depends_on: dict | None = None,
              **kwargs) -> dict:
    """``{name: value}`` of ``fn(*args, each=each, **kwargs)``, which returns a dict by the
    names of ``each`` (e.g. metric -> its options), kept by :func:`memo` as one entry per name:
    changing one name's options recomputes that name alone, and the names not yet cached are
    computed by one call (so they can share work, e.g. one factorization)."""
    paths = {name: entry(fn, folder, args, {**kwargs, "each": {name: options}}, depends_on)
             for name, options in each.items()}
    found = {name: _read_entry(path) for name, path in paths.items()}
    if all(ok for ok, _ in found.values()):
        return {name: value for name, (_, value) in found.items()}
    with contextlib.ExitStack() as stack:
        for name in sorted(paths):  # a fixed order: two processes never deadlock
            stack.enter_context(locked(paths[name]))
        found = {name: _read_entry(path) for name, path in paths.items()}
        missing = {name: each[name] for name, (ok, _) in found.items() if not ok}
        computed = fn(*args, each=missing, **kwargs) if missing else {}
        for name in missing:
            _write_entry(paths[name], computed[name])
    return {name: computed[name] if name in missing else found[name][1] for name in each}


class Lazy:
    """A costly input of a memoized function, keyed by ``key`` (e.g. the features' cache key)
    and made by ``make()`` only when some entry has to be computed: an analysis-only rerun
    builds no model and extracts nothing."""

    def __init__(self, key: str, make: Callable):
        self.key, self._make = key, make

    @functools.cached_property
    def value(self):
        return self._make()


def _write_entry(path: Path, value) -> None:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    payload = buffer.getvalue()
    with atomic(path) as tmp:
        tmp.write_bytes(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def _read_entry(path: Path) -> tuple[bool, object]:
    """(True, value) of a :func:`memo` entry whose checksum matches; else (False, None), and
    an entry that fails its checksum is removed with a warning."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return False, None
    digest, _, payload = raw.partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        warnings.warn(f"cache entry {path.name} is corrupted (checksum): recomputing")
        path.unlink(missing_ok=True)
        return False, None
    return True, torch.load(io.BytesIO(payload), weights_only=False)
