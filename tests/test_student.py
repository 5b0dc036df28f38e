"""Exercise notebooks (``python -m helpers student``): the student copy of every chapter keeps
each exercise and holds no line of any solution; the teacher copy holds every solution; an
exercise without a solution fails naming the notebook and cell; the course page's table links
both copies of the chapters that ran."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers import book, chapters, cli, student
from helpers.student import PLACEHOLDER, ExerciseError

SOURCES = sorted(chapters.NOTEBOOKS.glob("*.ipynb"))
# Found here independently of helpers.student: an exercise's bold number at a line's start, and
# a solution from its ``{admonition} Solution`` fence to the closing fence of the same kind.
EXERCISE = re.compile(r"^\*\*\d+\..*$", re.MULTILINE)
SOLUTION = re.compile(r"^(`{3,}|~{3,}|:{3,})\{admonition\} Solution\n.*?^\1[ \t]*$",
                      re.MULTILINE | re.DOTALL)


def _markdown(notebook: nbformat.NotebookNode) -> str:
    """The text of every markdown cell."""
    return "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_student_copy_keeps_the_exercises_and_drops_every_solution(path: Path) -> None:
    source = nbformat.read(path, as_version=4)
    text = _markdown(source)
    solutions = [m[0] for m in SOLUTION.finditer(text)]
    stud, teach = student.split(path)
    stud_lines = {line.strip() for line in _markdown(stud).splitlines()}  # code: as the source's
    assert len(solutions) == len(EXERCISE.findall(text))
    assert EXERCISE.findall(_markdown(stud)) == EXERCISE.findall(text)
    assert "{admonition} Solution" not in _markdown(stud)
    for solution in solutions:
        body = [line.strip() for line in solution.splitlines()[2:-1]]
        leaked = [line for line in body if len(line) > 3 and line in stud_lines]
        assert not leaked, f"{path.name}: solution lines in the student copy: {leaked}"
        assert solution in _markdown(teach)
    assert sum(c.source == PLACEHOLDER for c in stud.cells) == len(solutions)
    assert [c.source for c in stud.cells if c.cell_type == "code"] == [
        c.source for c in source.cells if c.cell_type == "code"]  # parameters cell and all
    assert [c.metadata for c in stud.cells if c.cell_type == "code"] == [
        c.metadata for c in source.cells if c.cell_type == "code"]
    for copy in (stud, teach):
        nbformat.validate(copy)
        assert len({c.id for c in copy.cells}) == len(copy.cells)
    if not solutions:  # a chapter without exercises is copied as it is
        assert stud == teach == source


SOLVED_1 = "```{admonition} Solution\n:class: dropdown\n    x = 1\n```"
SOLVED_2 = "~~~{admonition} Solution\n:class: dropdown\n```python\n# not a heading\n```\n~~~"


def _constructed() -> nbformat.NotebookNode:
    """A notebook with a parameters cell and two exercises in one cell, then another section."""
    params = new_code_cell("seed = 0", metadata={"tags": ["parameters"]}, id="params")
    return new_notebook(cells=[
        params,
        new_markdown_cell("# Title\n\n**1. Not an exercise.** Bold text outside Exercises.",
                          id="intro"),
        new_markdown_cell("Before.\n\n## Exercises\n\n**1. First.** Do A.\n\n" + SOLVED_1
                          + "\n\n**2. Second.** Do B.\n" + SOLVED_2 + "\n\nAfter the last.\n",
                          id="ex", metadata={"tags": ["keep"]}),
        new_markdown_cell("## Further reading\n\nSee the paper.", id="more"),
    ])


def test_constructed_notebook_gives_exactly_these_cells() -> None:
    notebook = _constructed()
    stud, teach = student.split(notebook)
    expected = [
        ("params", "code", "seed = 0", "seed = 0"),
        ("intro", "markdown", notebook.cells[1].source, notebook.cells[1].source),
        ("ex", "markdown", "Before.\n\n## Exercises\n\n**1. First.** Do A.",
         "Before.\n\n## Exercises\n\n**1. First.** Do A."),
        ("ex-1", "markdown", PLACEHOLDER, SOLVED_1),
        ("ex-2", "markdown", "**2. Second.** Do B.", "**2. Second.** Do B."),
        ("ex-3", "markdown", PLACEHOLDER, SOLVED_2),
        ("ex-4", "markdown", "After the last.", "After the last."),
        ("more", "markdown", notebook.cells[3].source, notebook.cells[3].source),
    ]
    assert [(c.id, c.cell_type, c.source) for c in stud.cells] == [e[:3] for e in expected]
    assert [(c.id, c.cell_type, c.source) for c in teach.cells] == [
        (i, t, s) for i, t, _, s in expected]
    assert stud.cells[0].metadata == {"tags": ["parameters"]}
    assert stud.cells[2].metadata == {"tags": ["keep"]} and stud.cells[3].metadata == {}
    assert stud.metadata == teach.metadata == notebook.metadata
    assert notebook.cells[2].source.count("Solution") == 2  # the input is left as it was
    nbformat.validate(stud)
    nbformat.validate(teach)


@pytest.mark.parametrize("cells, words", [
    (["## Exercises\n\n**1. A.** Text.\n\n**2. B.** Text.\n\n" + SOLVED_1],
     ["cell 1", "exercise '**1. A.** Text.' has no solution"]),
    (["## Exercises\n\n**1. A.** Text.", "## Next\n\n" + SOLVED_1],
     ["cell 1", "exercise '**1. A.** Text.' has no solution"]),
    (["## Exercises\n\n" + SOLVED_1 + "\n\n**1. A.** Text."],
     ["cell 1", "a solution that follows no exercise"]),
    (["## Exercises\n\n**1. A.**\n" + SOLVED_1, "Text.\n\n**2. B.**"],
     ["cell 2", "exercise '**2. B.**' has no solution"]),
])
def test_an_exercise_without_its_solution_is_refused(cells: list[str], words: list[str]) -> None:
    notebook = new_notebook(cells=[new_code_cell("x = 1")]
                            + [new_markdown_cell(c) for c in cells])
    with pytest.raises(ExerciseError) as error:
        student.split(notebook)
    for word in words:
        assert word in str(error.value)


def test_a_chapter_file_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.ipynb"
    nbformat.write(new_notebook(cells=[new_markdown_cell("## Exercises\n\n**1. A.**")]), path)
    with pytest.raises(ExerciseError, match=r"broken\.ipynb cell 0: exercise '\*\*1\. A\.\*\*'"):
        student.split(path)


def test_cli_writes_both_copies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["student", "tunnel", "tour", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.ipynb"))
    assert written == ["student/tunnel.ipynb", "teacher/tunnel-solutions.ipynb"]
    assert str(tmp_path / "student" / "tunnel.ipynb") in out and "tour: no exercises" in out
    stud = nbformat.read(tmp_path / "student" / "tunnel.ipynb", as_version=4)
    teach = nbformat.read(tmp_path / "teacher" / "tunnel-solutions.ipynb", as_version=4)
    assert (stud, teach) == student.split(chapters.get("tunnel").notebook)


def test_cli_refuses_an_unknown_chapter_with_the_closest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["student", "tunnel", "tunel", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown chapter 'tunel'")
    assert "(did you mean 'tunnel'?)" in err[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_course_table_links_both_copies_of_the_chapters_that_ran(tmp_path: Path) -> None:
    for cid in ("tour", "tunnel"):  # executed chapters; tour has no exercises
        (tmp_path / f"{cid}.ipynb").write_text("{}")
    lines = book.write_exercises(tmp_path).read_text().splitlines()
    title = chapters.get("tunnel").title
    links = [f"{{download}}`{name} <chapters/{who}/{name}>`"
             for who, name in (("student", "tunnel.ipynb"), ("teacher", "tunnel-solutions.ipynb"))]
    assert lines[2:] == [f"| {title} | {links[0]} | {links[1]} |"]
    assert (tmp_path / "student" / "tunnel.ipynb").is_file()
    assert (tmp_path / "teacher" / "tunnel-solutions.ipynb").is_file()
    empty = tmp_path / "none"
    assert "No chapter" in book.write_exercises(empty).read_text()
    assert not (empty / "student").exists()
