"""The two install paths agree; the package imports without a network; the code lints clean."""

import ast
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [l.split("#")[0].strip() for l in lines if l.split("#")[0].strip()]


def test_environment_yml_installs_the_pinned_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-r requirements.txt" in pip and "-e ." in pip
    assert "python=3.11" in env["dependencies"]


def test_requirements_pin_the_stack_that_installs_offline_here():
    pins = dict(p.split("==") for p in _pins() if "==" in p)
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert pins["timm"] == "1.0.31" and pins["jupyter-book"] == "1.0.4.post1"
    for name in ("papermill", "scikit-learn", "seaborn", "ipywidgets", "jupyterlab", "mlxtend"):
        assert name in pins, name


def test_installed_versions_match_the_pins():
    from importlib.metadata import version

    for pin in _pins():
        if "==" in pin:
            name, want = pin.split("==")
            assert version(name).split("+")[0] == want, name


def test_the_code_and_the_notebooks_pass_ruff():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise",
                           "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]


def test_the_torch_free_name_lists_match_their_registries():
    from helpers import data, metrics, names, zoo

    assert list(names.ZOO) == zoo.names()
    assert list(names.METRICS) == metrics.available()
    assert list(names.DOMAINS) == data.domain_names()
    import torchvision.datasets as tvd

    classes = {n for n in dir(tvd) if n[0].isupper() and isinstance(getattr(tvd, n), type)}
    assert set(names.torchvision_datasets()) == classes & set(tvd.__all__) and "CIFAR100" in classes


def test_checking_a_chapter_run_imports_no_torch():
    """Neither the CLI's check of every chapter nor a notebook's check of its own defaults."""
    code = """
import json, sys
import helpers.chapters as c
c.resolve([ch.id for ch in c.available()], 'default', {'knn_k': 7})
for ch in c.available():
    cell = next(x for x in json.loads(ch.notebook.read_text())['cells']
                if 'parameters' in x['metadata'].get('tags', []))
    defaults = {}
    exec(''.join(cell['source']), defaults)
    c.validate(ch.id, {name: defaults[name] for name in ch.schema})
print('torch' in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["False"]


def _helpers_imports(path: Path) -> set[str]:
    """The ``helpers`` modules a file imports (relative imports resolved), anywhere in it."""
    package = ["helpers", *path.relative_to(ROOT / "helpers").parent.parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            found |= {name} | {f"{name}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {n for n in found if n.startswith("helpers")}


def test_no_import_runs_against_the_flow():
    """Data -> models -> forward pass / training -> metrics -> studies -> front end: the
    metrics import no model, data, training, cache or forward-pass code, training does not
    reach into feature extraction, the forward path imports no metrics, and nothing in the
    library imports the front end (cli, chapters, book, student)."""
    low = ("helpers.models", "helpers.data", "helpers.train", "helpers.cache",
           "helpers.features", "helpers.zoo")
    for path in (ROOT / "helpers" / "metrics").glob("*.py"):
        assert not {n for n in _helpers_imports(path) if n.startswith(low)}, path.name
    assert not {n for n in _helpers_imports(ROOT / "helpers" / "train.py")
                if n.startswith("helpers.features")}
    for name in ("features", "models", "train", "zoo", "cache", "jobs", "device"):
        path = ROOT / "helpers" / f"{name}.py"
        assert not {n for n in _helpers_imports(path) if n.startswith("helpers.metrics")}, name
    front = ("helpers.chapters", "helpers.cli", "helpers.book", "helpers.student")
    library = [p for p in (ROOT / "helpers").rglob("*.py")
               if p.stem not in ("chapters", "cli", "book", "student", "__main__")]
    for path in library:
        bad = {n for n in _helpers_imports(path) if n.startswith(front)}
        assert not bad, (path.relative_to(ROOT).as_posix(), bad)


#: calls that write a file (the run layer's own, and the ways around it)
_WRITES = {"open", "write_text", "write_bytes", "save", "savefig", "write_atomic", "save_atomic",
           "atomic", "write_json", "mkdir", "to_parquet"}


def test_no_study_module_writes_a_file_outside_the_run_layer():
    """The studies keep results through ``cache.memo`` (and the training loop's checkpoints, the
    features cache) alone: no open(), save or atomic write of their own; a table may become a
    string (``to_csv()`` with no path), not a file."""
    for path in (ROOT / "helpers" / "studies").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            assert name not in _WRITES, (path.name, node.lineno, name)
            if name in ("to_csv", "to_json"):
                assert not node.args and not any(k.arg == "path_or_buf" for k in node.keywords), (
                    path.name, node.lineno)


def _notebook_code(path: Path) -> str:
    import json

    cells = json.loads(path.read_text())["cells"]
    lines = [line for c in cells if c["cell_type"] == "code"
             for line in "".join(c["source"]).splitlines()]
    return "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))


def test_chapters_only_tell_the_story():
    """No chapter defines a function, a class or a numeric threshold of its own (every rule is a
    tested function of helpers), and each holds at most 80 lines of code."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        code = _notebook_code(path)
        lines = [l for l in code.splitlines() if l.strip() and not l.strip().startswith("#")]
        assert len(lines) <= 80, (path.name, len(lines))
        for node in ast.walk(ast.parse(code)):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                         ast.ClassDef)), (path.name, node.lineno, "a definition")
            if isinstance(node, ast.Compare):
                numbers = [n for n in (node.left, *node.comparators)
                           if isinstance(n, ast.Constant) and isinstance(n.value, (int, float))
                           and not isinstance(n.value, bool)]
                assert not numbers, (path.name, node.lineno, "a numeric threshold")
