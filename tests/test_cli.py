"""``python -m helpers``: bad input is refused before any work, in one line naming it, with
exit status 2; a good run executes the chapter with the merged parameters.

The chapters used here live in ``tests/fixtures/chapters`` and are registered only through
``HELPERS_EXTRA_CHAPTERS``, never in the real book.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from helpers import chapters
from helpers.chapters import ParameterError
from helpers.device import device_name

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "chapters"


def cli(*args: str, extra: Path = FIXTURES) -> subprocess.CompletedProcess[str]:
    """Run ``python -m helpers ARGS`` with the fixture chapters registered."""
    env = {**os.environ, chapters.EXTRA_CHAPTERS_ENV: str(extra)}
    return subprocess.run(
        [sys.executable, "-m", "helpers", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def assert_refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 2, one ``error:`` line on stderr containing ``words``, no traceback, no work."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    assert "running" not in done.stdout


BAD_INPUTS = [
    # (arguments, words the message must contain)
    (["-p", "epochs=ten"], ["'epochs'", "'fixture'", "an int in [1, 100]", "got 'ten'"]),
    (["-p", "epochs=0"], ["'epochs'", "an int in [1, 100]", "got 0"]),
    (["-p", "epochs=101"], ["'epochs'", "got 101"]),
    (["-p", "epochs=2.5"], ["'epochs'", "an int", "got 2.5"]),
    (["-p", "epochs=true"], ["'epochs'", "an int", "got True"]),
    (["-p", "epochs="], ["'epochs'", "got None"]),
    (["-p", "scale=abc"], ["'scale'", "a float >= 0.0", "got 'abc'"]),
    (["-p", "scale=-1"], ["'scale'", "a float >= 0.0", "got -1"]),
    (["-p", "label=[1,2]"], ["'label'", "a string", "got [1, 2]"]),
    (["-p", "mode=median"], ["'mode'", "one of 'sum', 'mean'", "(did you mean 'mean'?)"]),
    (["-p", "mode=7"], ["'mode'", "one of 'sum', 'mean'", "got 7"]),
    (["-p", "widget=maybe"], ["'widget'", "true or false", "got 'maybe'"]),
    (["-p", "seeds=3"], ["'seeds'", "a list of ints >= 0", "got 3"]),
    (["-p", "seeds=[0,-1]"], ["'seeds'", "a list of ints >= 0", "got [0, -1]"]),
    (["-p", "seeds=[0,a]"], ["'seeds'", "got [0, 'a']"]),
    (["-p", "seeds=[]"], ["'seeds'", "(at least 1)", "got []"]),
    (["-p", "limit=0"], ["'limit'", "an int >= 1 or null", "got 0"]),
    (["-p", "epoch=3"], ["unknown parameter 'epoch'", "'fixture'", "(did you mean 'epochs'?)"]),
    (["-p", "zzz=1"], ["unknown parameter 'zzz'", "'fixture'"]),
    (["-p", "epochs"], ["malformed -p 'epochs'", "NAME=VALUE"]),
    (["-p", "=3"], ["malformed -p '=3'", "NAME=VALUE"]),
    (["-p", "bad-name=3"], ["malformed -p 'bad-name=3'"]),
    (["-p", "epochs=[1,"], ["malformed -p 'epochs=[1,'", "'epochs'"]),
    (["--profile", "smok"], ["unknown profile 'smok'", "(did you mean 'smoke'?)"]),
    (["--profile", "gpu"], ["unknown profile 'gpu'", "smoke, default, full"]),
    (["--bogus"], ["unrecognized arguments: --bogus"]),
    (["-p"], ["-p", "expected one argument"]),
]


@pytest.mark.parametrize(
    "args, words", BAD_INPUTS, ids=[" ".join(a) or "empty" for a, _ in BAD_INPUTS]
)
def test_bad_input_is_refused_in_one_line(args: list[str], words: list[str]) -> None:
    assert_refused(cli("run", "fixture", *args), *words)


def test_unknown_chapter_is_refused_with_the_closest_id() -> None:
    assert_refused(cli("run", "fixtur"), "unknown chapter 'fixtur'", "(did you mean 'fixture'?)")


def test_chapter_without_notebook_is_refused() -> None:
    assert_refused(cli("run", "missing"), "chapter 'missing' has no notebook yet")


def test_list_of_unknown_chapter_is_refused() -> None:
    assert_refused(cli("list", "nope"), "unknown chapter 'nope'")


def test_unknown_command_is_refused() -> None:
    assert_refused(cli("frob"), "invalid choice: 'frob'")


def copy_fixtures(tmp_path: Path) -> Path:
    """A writable copy of the fixture chapters, to break one file at a time."""
    return Path(shutil.copytree(FIXTURES, tmp_path / "chapters"))


def test_bad_value_in_a_profile_file_names_the_file(tmp_path: Path) -> None:
    extra = copy_fixtures(tmp_path)
    (extra / "params" / "default.yml").write_text("fixture:\n  epochs: 0\n")
    assert_refused(cli("run", "fixture", extra=extra), "'epochs'", "got 0", "default.yml")


def test_unknown_name_in_a_profile_file_is_refused(tmp_path: Path) -> None:
    extra = copy_fixtures(tmp_path)
    (extra / "params" / "smoke.yml").write_text("fixture:\n  epoch: 3\n")
    done = cli("run", "fixture", "--profile", "smoke", extra=extra)
    assert_refused(done, "unknown parameter 'epoch'", "smoke.yml", "(did you mean 'epochs'?)")


def test_bad_schema_is_refused(tmp_path: Path) -> None:
    extra = copy_fixtures(tmp_path)
    (extra / "params" / "schema.yml").write_text("fixture:\n  epochs: {type: integer, help: x}\n")
    assert_refused(cli("run", "fixture", extra=extra), "parameter 'epochs'", "needs a type")


def test_list_offers_only_chapters_with_a_notebook() -> None:
    done = cli("list")
    assert done.returncode == 0, done.stderr
    ready = [line.split()[0] for line in done.stdout.splitlines() if "(" in line]
    assert "fixture" in ready and "missing" not in ready
    assert "missing" in done.stdout.splitlines()[-1]  # "not written yet: ..."
    done = cli("list", "fixture")
    assert "epochs: an int in [1, 100]" in done.stdout
    assert "smoke=4" in done.stdout


def executed_stdout(path: Path) -> str:
    """All stream output of an executed notebook."""
    cells = json.loads(path.read_text())["cells"]
    return "".join(
        "".join(o.get("text", "")) for c in cells for o in c.get("outputs", []) if "text" in o
    )


@pytest.mark.slow
def test_p_changes_the_executed_notebook(tmp_path: Path) -> None:
    first = cli("run", "fixture", "--profile", "smoke", "--output-dir", str(tmp_path / "a"))
    second = cli(
        "run", "fixture", "--profile", "smoke", "-p", "epochs=2", "-p", "scale=1e-1",
        "--output-dir", str(tmp_path / "b"),
    )  # fmt: skip
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "done fixture in" in first.stdout
    a = executed_stdout(tmp_path / "a" / "fixture.ipynb")
    b = executed_stdout(tmp_path / "b" / "fixture.ipynb")
    assert "result: 14.0" in a  # smoke: epochs=4, 0 + 1 + 4 + 9
    assert "result: 0.1" in b  # epochs=2, scale=0.1
    assert "profile: smoke" in a
    meta = json.loads((tmp_path / "a" / "fixture.ipynb").read_text())["metadata"]["helpers"]
    assert meta["profile"] == "smoke" and meta["device"] == device_name()  # what the kernel used
    assert 0 < meta["cpu_seconds"]  # the kernel's CPU time, counted once it has exited


@pytest.mark.slow
def test_failing_notebook_reports_cell_and_exception_in_one_line(tmp_path: Path) -> None:
    done = cli("run", "fixture", "-p", "fail=true", "--output-dir", str(tmp_path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: chapter 'fixture' failed in cell 5: RuntimeError: fixture failure requested"
    ]
    assert str(tmp_path / "fixture.ipynb") in done.stderr


# In-process: the model/dataset/metric kinds against stand-ins for the modules that define
# the names (written by others, possibly not there yet), and setup() as a notebook calls it.

KINDS_SCHEMA = """\
kinds:
  model: {type: model, help: a model}
  models: {type: "list[model]", help: models}
  data: {type: dataset, help: a data set}
  metric: {type: metric, help: a metric}
  seed: {type: int, min: 0, help: the seed}
  sources: {type: "list[dataset|model]", also: [letters], help: sources}
"""


@pytest.fixture
def kinds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Register a chapter ``kinds`` and stand-in modules; returns the seeds seen by seeding."""
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "schema.yml").write_text(KINDS_SCHEMA)
    (tmp_path / "chapters.yml").write_text("kinds: Kinds\n")
    (tmp_path / "kinds.ipynb").write_text("{}")
    monkeypatch.setenv(chapters.EXTRA_CHAPTERS_ENV, str(tmp_path))
    seeds: list[int] = []
    monkeypatch.setattr(chapters, "ZOO", ("tiny_cnn", "tiny_vit"))
    monkeypatch.setattr(chapters, "DOMAINS", ("glyphs", "digits"))
    monkeypatch.setattr(chapters, "METRICS", ("nmi", "knn", "logme"))
    monkeypatch.setattr(chapters, "torchvision_datasets", lambda: ("CIFAR100",))
    fakes = {
        "helpers.device": types.SimpleNamespace(seed_everything=seeds.append),
        "timm": types.SimpleNamespace(
            is_model=lambda name: name.split(".")[0] in ("resnet18", "resnet50"),
            list_pretrained=lambda pattern: ["resnet50.tv_in1k"],
            list_models=lambda: ["resnet18", "resnet50"],
        ),
    }
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    return seeds


@pytest.mark.parametrize(
    "name, value",
    [
        ("model", "tiny_cnn"),
        ("model", "resnet18"),
        ("model", "resnet50.tv_in1k"),
        ("models", ["tiny_vit", "resnet50"]),
        ("data", "digits"),
        ("data", "CIFAR100"),
        ("data", "tests"),  # a folder
        ("metric", "logme"),
        ("sources", ["letters", "CIFAR100", "resnet50.tv_in1k", "tiny_cnn"]),
    ],
)
def test_known_names_are_accepted(kinds: list[int], name: str, value: object) -> None:
    assert chapters.check("kinds", name, value) == value


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("model", "tiny_cn", ["'model'", "model name", "(did you mean 'tiny_cnn'?)"]),
        ("model", "resnet50.bogus", ["'model'", "got 'resnet50.bogus'"]),
        ("model", "resnt18", ["(did you mean 'resnet18'?)"]),
        ("models", ["tiny_cnn", "vgg"], ["'models'", "a list of model names"]),
        ("data", "digitz", ["'data'", "(did you mean 'digits'?)"]),
        ("data", "/no/such/folder", ["'data'", "dataset"]),
        ("metric", "nmj", ["'metric'", "(did you mean 'nmi'?)"]),
        ("metric", 3, ["'metric'", "got 3"]),
        ("sources", ["letters", "leters"], ["'sources'", "a list of datasets or model names",
                                             "letters", "(did you mean 'letters'?)"]),
    ],
)
def test_unknown_names_are_refused(
    kinds: list[int], name: str, value: object, words: list[str]
) -> None:
    with pytest.raises(ParameterError) as caught:
        chapters.check("kinds", name, value)
    for word in words:
        assert word in str(caught.value)


def test_setup_validates_the_notebook_globals_and_seeds(kinds: list[int]) -> None:
    namespace = {
        "model": "tiny_cnn",
        "models": ["resnet18"],
        "data": "glyphs",
        "metric": "nmi",
        "seed": 7,
        "sources": ["letters"],
        "unrelated": object(),
    }
    params = chapters.setup("kinds", namespace)
    assert params == {k: v for k, v in namespace.items() if k != "unrelated"}
    assert kinds == [7]
    with pytest.raises(ParameterError, match="parameter 'seed' of chapter 'kinds' must be"):
        chapters.setup("kinds", {**namespace, "seed": -1})
    with pytest.raises(ParameterError, match="'metric' of chapter 'kinds' is not set"):
        chapters.setup("kinds", {k: v for k, v in namespace.items() if k != "metric"})


def test_a_kernel_shows_missing_table_values_as_a_dash_and_the_rest_as_pandas_does() -> None:
    import re

    import numpy as np
    import pandas as pd
    from IPython.core.interactiveshell import InteractiveShell

    frame = pd.DataFrame({"published": [0.41, np.nan], "ours": [0.34, 0.19]},
                         index=["LEEP", "FaCe"])
    shell = InteractiveShell.instance()
    try:
        chapters._show_missing_as_dash()
        html = shell.display_formatter.format(frame)[0]["text/html"]
        assert pd.get_option("styler.format.na_rep") == chapters.MISSING
    finally:
        InteractiveShell.clear_instance()
        pd.reset_option("styler.format.na_rep")
    cells = re.findall(r"<td>(.*?)</td>", html)
    assert cells == ["0.41", "0.34", chapters.MISSING, "0.19"]
    assert re.sub(r"<td>.*?</td>", "", html) == re.sub(r"<td>.*?</td>", "", frame._repr_html_())


def test_float_parameters_accept_exponents_that_yaml_reads_as_strings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(chapters.EXTRA_CHAPTERS_ENV, str(FIXTURES))
    assert chapters.parse_assignment("scale=1e-3") == ("scale", "1e-3")  # YAML 1.1
    assert chapters.check("fixture", "scale", "1e-3") == 0.001
    assert chapters.check("fixture", "scale", 2) == 2.0


# The real registry, toc and profiles agree with each other and with the notebooks.


def test_toc_lists_the_registered_chapters_in_order() -> None:
    toc = (ROOT / "_toc.yml").read_text()
    listed = [
        line.split("book/chapters/")[1].strip()
        for line in toc.splitlines()
        if "file: book/chapters/" in line
    ]
    assert listed == [cid for cid, _ in chapters.REGISTRY]


def test_each_registered_title_is_its_notebooks_heading() -> None:
    for cid, title in chapters.REGISTRY:
        cells = json.loads((chapters.NOTEBOOKS / f"{cid}.ipynb").read_text())["cells"]
        first = "".join(cells[0]["source"]).splitlines()[0]
        assert first == f"# {title}", cid


def parameter_names(notebook: Path) -> list[str]:
    """The names assigned in the cell tagged ``parameters``."""
    cells = json.loads(notebook.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{notebook} needs exactly one cell tagged 'parameters'"
    tree = ast.parse("".join(tagged[0]["source"]))
    return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets]


REAL = [c for c in chapters.REGISTRY if (chapters.NOTEBOOKS / f"{c[0]}.ipynb").exists()]


@pytest.mark.parametrize("chapter_id", [cid for cid, _ in REAL])
def test_notebook_parameters_match_the_schema_and_profiles(chapter_id: str) -> None:
    chapter = chapters.chapters()[chapter_id]
    assert parameter_names(chapter.notebook) == list(chapter.schema)
    cells = json.loads(chapter.notebook.read_text())["cells"]
    after = next(
        "".join(cells[i + 1]["source"])
        for i, c in enumerate(cells)
        if "parameters" in c.get("metadata", {}).get("tags", [])
    )
    assert f'helpers.chapters.setup("{chapter_id}", globals())' in after
    for profile in chapters.PROFILES:
        block = yaml.safe_load((chapter.params_dir / f"{profile}.yml").read_text()) or {}
        assert set(block.get(chapter_id) or {}) <= set(chapter.schema)
        chapters.resolve([chapter_id], profile, {})


@pytest.mark.parametrize("chapter_id, name, names", [
    ("transferability", "targets", "helpers.studies.transferability:EMBEDDED_TARGETS"),
    ("tunnel", "ood_sets", "helpers.studies.tunnel:EMBEDDED_SETS+VARIATIONS"),
    ("double_descent", "sources", "helpers.studies.double_descent:GLYPH_SOURCES"),
])
def test_extra_names_in_the_schema_are_those_the_study_knows(chapter_id, name, names) -> None:
    import importlib

    module, attrs = names.split(":")
    study = importlib.import_module(module)
    known = {n for a in attrs.split("+") for n in getattr(study, a)}
    assert set(chapters.chapters()[chapter_id].schema[name]["also"]) == known
    with pytest.raises(ParameterError, match=f"'{name}'"):
        chapters.check(chapter_id, name, ["no_such_set"])


@pytest.mark.parametrize("param, words", [
    (["epochs", "ten"], ["'epochs'", "an int in [1, 100]", "got 'ten'"]),
    (["mode", "median"], ["'mode'", "(did you mean 'mean'?)"]),
    (["seeds", "[0, -1]"], ["'seeds'", "a list of ints >= 0"]),
])
def test_plain_papermill_with_a_bad_value_shows_one_line_not_a_stack(
    tmp_path: Path, param: list[str], words: list[str]
) -> None:
    """The notebook's first cell refuses the value; the cell's error output is the one line."""
    env = {**os.environ, chapters.EXTRA_CHAPTERS_ENV: str(FIXTURES)}
    out = tmp_path / "out.ipynb"
    done = subprocess.run(
        [sys.executable, "-m", "papermill", str(FIXTURES / "fixture.ipynb"), str(out),
         "-p", *param], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode != 0
    errors = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert len(errors) == 1 and errors[0]["ename"] == "ParameterError"
    (line,) = errors[0]["traceback"]
    for word in words:
        assert word in line and word in done.stderr
    assert "chapters.py" not in done.stderr


def test_glue_record_glues_every_value_and_closes_the_figures(monkeypatch) -> None:
    import matplotlib.pyplot as plt
    import myst_nb

    glued = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: glued.append(
        (name, value, display, plt.fignum_exists(getattr(value, "number", -1)))))
    fig, _ = plt.subplots()
    chapters.glue_record({"n": 3, "text": "a", "fig": fig})
    assert glued == [("n", 3, False, False), ("text", "a", False, False), ("fig", fig, False, True)]
    assert not plt.fignum_exists(fig.number)  # glued while open, then closed


def test_fold_plumbing_hides_the_opening_code_and_adds_a_rerun_box() -> None:
    import nbformat

    from helpers.cli import fold_plumbing

    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell("# Title"), v4.new_code_cell("x = 1"), v4.new_code_cell("x = 2"),
        v4.new_code_cell("import y"), v4.new_markdown_cell("## Story"), v4.new_code_cell("plot()"),
    ])
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.cells[3].metadata["tags"] = ["remove-cell"]
    nb.metadata["helpers"] = {"profile": "default", "seconds": 90.0, "device": "CPU (2 cores)",
                              "date": "2026-12-02"}
    fold_plumbing(nb, "tunnel", {"noises": [0.0, 0.4]})
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert tags[2:5] == [["parameters", "hide-cell"], ["hide-cell"], ["remove-cell"]]
    assert tags[5:] == [[], []]  # the story and its code stay in view
    box = nb.cells[1].source
    assert tags[1] == ["rerun-box"] and box.startswith("```{admonition} Rerun this chapter")
    assert "`python -m helpers run tunnel --profile default -p 'noises=[0.0, 0.4]'`" in box
    assert "CPU (2 cores), 1.5 min, 2026-12-02" in box
    assert "{download}`tunnel.ipynb <tunnel.ipynb>`" in box


def test_launch_links_come_from_the_one_configured_repository(tmp_path) -> None:
    from helpers.cli import launch_links

    config = tmp_path / "_config.yml"
    config.write_text("repository:\n  url: ''\n")
    assert launch_links("tunnel", config) == ""  # none configured: no links, none broken
    config.write_text("repository:\n  url: https://github.com/org/book.git\n  branch: dev\n")
    links = launch_links("tunnel", config)
    assert "(https://mybinder.org/v2/gh/org/book/dev?urlpath=lab/tree/notebooks/tunnel.ipynb)" in links
    assert "(https://colab.research.google.com/github/org/book/blob/dev/notebooks/tunnel.ipynb)" in links
    assert launch_links("tunnel") == ""  # the repository's own _config.yml names none yet
    assert launch_links("tunnel", tmp_path / "absent.yml") == ""


def test_fold_plumbing_hides_the_source_of_cells_that_only_glue() -> None:
    import nbformat

    from helpers.cli import fold_plumbing, glue_only

    assert glue_only('glue_record({"a_fig": plot(x)})\nglue_figures({})')
    assert glue_only("helpers.chapters.glue_record(r)")
    assert not glue_only("r = record(x)\nglue_record(r)")  # computes: stays in view
    assert not glue_only("%matplotlib inline") and not glue_only("")
    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[v4.new_markdown_cell("# Title"), v4.new_code_cell("x = 1"),
                                v4.new_markdown_cell("text"), v4.new_code_cell("glue_record(r)"),
                                v4.new_code_cell("plot()")])
    nb.metadata["helpers"] = {"profile": "default", "seconds": 1.0, "device": "CPU",
                              "date": "2026-12-02"}
    fold_plumbing(nb, "tunnel", {})
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert tags[4:] == [["hide-input"], []]


def test_a_chapters_cpu_time_counts_its_job_workers() -> None:
    """``_cpu_seconds`` (the timings page's CPU column) includes the CPU of the job workers a
    chapter starts, not only its kernel's: here a child running two CPU-bound jobs in two
    worker processes, each reporting its own CPU time."""
    from helpers.cli import _cpu_seconds

    script = ("import time\n"
              "from helpers import jobs\n"
              "def burn(seconds):\n"
              "    end = time.process_time() + seconds\n"
              "    while time.process_time() < end:\n"
              "        pass\n"
              "    return time.process_time()\n"
              "workers = sum(jobs.run(burn, [(1.5,), (1.5,)], workers=2))\n"
              "print(time.process_time() + workers)\n")
    before = _cpu_seconds()
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    counted = _cpu_seconds() - before
    assert counted >= float(out.stdout.split()[-1]) - 0.05  # kernel + both workers (>= 3 s)
