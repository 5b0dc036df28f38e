"""Exercise notebooks for the course (``book/course.md``): a chapter's source notebook as a
student copy without the solutions and a teacher copy with them.

A chapter's exercises are the markdown under its ``## Exercises`` heading (up to the next
heading of that level or higher): each starts with a bold number, ``**1. Title.**``, and is
followed by its solution, a MyST admonition titled ``Solution`` in a fence of backticks,
tildes or colons (code inside it indented or in a fence of another kind). Both copies split
the exercise cells at each solution; the student copy has a ``Your answer here.`` cell where
the teacher copy has the solution. ``python -m helpers student`` writes them
(:func:`write`) and ``python -m helpers book`` links them from the course page.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from helpers import chapters

PLACEHOLDER = "Your answer here."
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,}|:{3,})(.*)")
_SOLUTION = re.compile(r"\{admonition\}\s+Solution")
_HEADING = re.compile(r"(#{1,6})\s+(.*?)\s*$")
_EXERCISE = re.compile(r"\*\*\d+\.")


class ExerciseError(ValueError):
    """An exercise without its solution, or a solution without its exercise; one line that
    names the notebook and the cell."""


def _blocks(text: str) -> list[tuple[str, str]]:
    """A markdown cell as ``(kind, text)`` blocks in order: ``solution`` or ``fence`` for a
    fenced block (up to its closing fence, else the end of the cell), ``line`` for any other
    line."""
    lines = text.splitlines(keepends=True)
    blocks, start = [], 0
    while start < len(lines):
        opening, end, kind = _FENCE.match(lines[start]), start + 1, "line"
        if opening:
            mark = opening[1]
            closing = re.compile(rf" {{0,3}}{re.escape(mark[0])}{{{len(mark)},}}\s*$")
            while end < len(lines) and not closing.match(lines[end]):
                end += 1
            end = min(end + 1, len(lines))
            kind = "solution" if _SOLUTION.fullmatch(opening[2].strip()) else "fence"
        blocks.append((kind, "".join(lines[start:end])))
        start = end
    return blocks


def _tidy(text: str) -> str:
    """``text`` without leading blank lines and trailing white space."""
    return re.sub(r"\A(?:[ \t]*\n)+", "", text).rstrip()


def split(notebook: NotebookNode | str | Path) -> tuple[NotebookNode, NotebookNode]:
    """``(student, teacher)`` copies of a source notebook (a path or a notebook): the student
    copy has a ``Your answer here.`` cell in place of each solution, the teacher copy the
    solution in that cell; every other cell is kept as it is. Raises :class:`ExerciseError`
    for an exercise without a solution (see ``book/course.md``)."""
    if isinstance(notebook, NotebookNode):
        name = "the notebook"
    else:
        name, notebook = chapters.rel(Path(notebook)), nbformat.read(notebook, as_version=4)
    student, teacher = (nbformat.from_dict({**notebook, "cells": []}) for _ in range(2))
    pending = None  # the exercise awaiting its solution: (first line, cell index)
    level = 0  # the heading level of the Exercises section; 0 outside it

    def unsolved() -> ExerciseError:
        return ExerciseError(f"{name} cell {pending[1]}: exercise '{pending[0]}' has no "
                             "solution (a '{admonition} Solution' block after it)")

    for index, cell in enumerate(notebook.cells):
        chunks, solutions = [""], []  # the cell's text between its solutions, and those
        for kind, text in _blocks(cell.source) if cell.cell_type == "markdown" else []:
            if kind == "solution":
                if pending is None:
                    raise ExerciseError(f"{name} cell {index}: a solution that follows no "
                                        "exercise ('**N. ...**' under an Exercises heading)")
                pending = None
                solutions.append(_tidy(text))
                chunks.append("")
                continue
            chunks[-1] += text
            heading = _HEADING.match(text) if kind == "line" else None
            if heading and level and len(heading[1]) <= level:
                if pending:
                    raise unsolved()
                level = 0
            if heading and heading[2] == "Exercises":
                level = len(heading[1])
            elif kind == "line" and level and _EXERCISE.match(text):
                if pending:
                    raise unsolved()
                pending = (text.strip(), index)
        if not solutions:  # a code cell, or markdown without a solution: kept as it is
            student.cells.append(copy.deepcopy(cell))
            teacher.cells.append(copy.deepcopy(cell))
            continue
        pairs = [(_tidy(chunks[0]),) * 2]  # (student text, teacher text) of each new cell
        for solution, chunk in zip(solutions, chunks[1:]):
            pairs += [(PLACEHOLDER, solution), (_tidy(chunk),) * 2]
        for n, texts in enumerate(p for p in pairs if p[0]):
            new = cell if n == 0 else nbformat.v4.new_markdown_cell(id=f"{cell.id}-{n}")
            for copied, text in zip((student, teacher), texts):
                copied.cells.append(copy.deepcopy(new))
                copied.cells[-1].source = text
    if pending:
        raise unsolved()
    return student, teacher


def write(
    chapter_ids: Sequence[str], out_dir: Path = chapters.EXECUTED
) -> dict[str, tuple[Path, Path]]:
    """Write ``out_dir/student/<id>.ipynb`` and ``out_dir/teacher/<id>-solutions.ipynb`` for
    each chapter that has exercises (all available chapters when ``chapter_ids`` is empty); every notebook is
    checked before any is written. Returns ``id -> (student path, teacher path)``."""
    selected = [chapters.get(cid) for cid in chapter_ids] or chapters.available()
    copies = {chapter.id: split(chapter.notebook) for chapter in selected}
    written = {}
    for cid, (student, teacher) in copies.items():
        if student == teacher:  # no solution, so no exercise
            continue
        written[cid] = (out_dir / "student" / f"{cid}.ipynb",
                        out_dir / "teacher" / f"{cid}-solutions.ipynb")
        for path, notebook in zip(written[cid], (student, teacher)):
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, path)
    return written
