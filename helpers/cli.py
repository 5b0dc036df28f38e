"""``python -m helpers list|run|student|book``: run the chapters with papermill, write their
exercise notebooks and build the book.

Every input is validated before any work; a bad one ends the command with one line on stderr
and exit status 2. A chapter that fails ends it with exit status 1.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from helpers import chapters
from helpers.chapters import ParameterError


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``error: message`` and exit 2 (argparse's default prints the usage too)."""
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = _Parser(prog="python -m helpers", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    listing = commands.add_parser("list", help="list the chapters, or one chapter's parameters")
    listing.add_argument("chapter", nargs="?", help="show this chapter's parameters")

    profile = {
        "default": "default",
        "help": "parameter profile: smoke, default or full (default: %(default)s)",
        "metavar": "PROFILE",
    }
    scheduler = {
        "default": None,
        "metavar": "WHERE",
        "help": "where sweeps of independent jobs run: local, gpus, slurm or tcp://HOST:PORT "
                "(default: $HELPERS_SCHEDULER, else local)",
    }
    run = commands.add_parser("run", help="execute chapters with papermill")
    run.add_argument("chapters", nargs="*", metavar="CHAPTER", help="default: all available")
    run.add_argument("--profile", **profile)
    run.add_argument("--scheduler", **scheduler)
    run.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a parameter; VALUE is YAML (-p seeds=[0,1]); repeatable",
    )
    run.add_argument(
        "--output-dir",
        type=Path,
        default=chapters.EXECUTED,
        help="where executed notebooks go (default: book/chapters)",
    )

    student = commands.add_parser(
        "student", help="write the exercise notebooks: student copies without the solutions, "
                        "teacher copies with them (see book/course.md)"
    )
    student.add_argument("chapters", nargs="*", metavar="CHAPTER", help="default: all available")
    student.add_argument(
        "--output-dir",
        type=Path,
        default=chapters.EXECUTED,
        help="where the student/ and teacher/ folders go (default: book/chapters)",
    )

    book = commands.add_parser("book", help="run every available chapter, then build the book")
    book.add_argument("--profile", **profile)
    book.add_argument("--scheduler", **scheduler)
    book.add_argument("--skip-run", action="store_true", help="build from the executed notebooks")
    return parser


def cmd_list(chapter_id: str | None) -> int:
    """Print the available chapters, or the parameters of one with their profile values."""
    if chapter_id is None:
        ready = chapters.available()
        width = max([len(c.id) for c in ready], default=0)
        for c in ready:
            print(f"{c.id:<{width}}  {c.title}  ({chapters.rel(c.notebook)})")
        missing = [c.id for c in chapters.chapters().values() if not c.available]
        if missing:
            print(f"not written yet: {', '.join(missing)}")
        return 0
    chapter = chapters.get(chapter_id)
    profiles = {p: chapter.profile(p) for p in chapters.PROFILES}
    for name, spec in chapter.schema.items():
        values = "  ".join(f"{p}={profiles[p][name]!r}" for p in profiles if name in profiles[p])
        print(f"{name}: {chapters.describe(spec)}\n    {spec['help']}")
        if values:
            print(f"    {values}")
    return 0


def cmd_student(chapter_ids: Sequence[str], output_dir: Path) -> int:
    """Write the student and teacher notebooks of the chapters (all available when none given)."""
    from helpers import student

    try:
        written = student.write(chapter_ids, output_dir)
    except student.ExerciseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for cid in chapter_ids or [c.id for c in chapters.available()]:
        if cid in written:
            print(f"{cid}: wrote {' and '.join(chapters.rel(path) for path in written[cid])}")
        else:
            print(f"{cid}: no exercises")
    return 0


def run_chapters(
    chapter_ids: Sequence[str],
    profile: str,
    overrides: dict[str, Any],
    output_dir: Path = chapters.EXECUTED,
) -> int:
    """Validate everything, then execute each chapter with papermill; 0 if all succeeded."""
    ids = list(chapter_ids) or [c.id for c in chapters.available()]
    if not ids:
        print("no chapter notebooks yet: nothing to run", file=sys.stderr)
        return 0
    resolved = chapters.resolve(ids, profile, overrides)

    import papermill  # slow to import: only once the inputs are known to be good
    from papermill.exceptions import PapermillExecutionError

    _mirror_output_widgets_one_way()

    output_dir.mkdir(parents=True, exist_ok=True)
    os.environ[chapters.PROFILE_ENV] = profile
    failed = 0
    for cid, params in resolved.items():
        source = chapters.get(cid).notebook
        target = output_dir / f"{cid}.ipynb"
        print(f"running {cid} ({profile}): {chapters.rel(source)} -> {chapters.rel(target)}")
        start, cpu = time.perf_counter(), _cpu_seconds()
        try:
            papermill.execute_notebook(
                str(source),
                str(target),
                parameters=params,
                kernel_name="python3",
                progress_bar=True,
                # the output notebook is saved at the end and every 30 s, not twice a cell
                # (a 1 MB notebook of figures: ~2 s of 62 saves in a 31-cell chapter)
                request_save_on_cell_execute=False,
                cwd=str(chapters.ROOT),
            )
        except PapermillExecutionError as exc:
            failed += 1
            message = " ".join(str(exc.evalue).split())
            print(
                f"error: chapter '{cid}' failed in cell {exc.exec_count}: {exc.ename}: {message}\n"
                f"  details: {chapters.rel(target)} (after {time.perf_counter() - start:.1f} s)",
                file=sys.stderr,
            )
            continue
        seconds = time.perf_counter() - start
        record_run(target, profile, seconds, overrides={k: v for k, v in overrides.items()
                                                         if k in chapters.get(cid).schema},
                   cpu_seconds=_cpu_seconds() - cpu)
        print(f"done {cid} in {seconds:.1f} s")
    return 1 if failed else 0


def _cpu_seconds() -> float:
    """CPU time of this process's finished children and theirs (a chapter's kernel, its job
    workers), user + system."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _mirror_output_widgets_one_way() -> None:
    """Keep nbclient from echoing Output-widget state back to the kernel during a run.

    nbclient mirrors each Output widget (``ipywidgets.interactive`` draws into one) and sends its
    state to the kernel on the shell socket while it awaits the cell's reply on that same socket;
    the reply can be lost and the run hangs for ever (jupyter/nbclient#312; seen here on the
    explorer cells). The saved notebook keeps the widget outputs: nbclient records them itself.
    """
    import nbclient.client
    from nbclient.output_widget import OutputWidget

    class OneWayOutputWidget(OutputWidget):
        def sync_state(self) -> None:
            pass

    nbclient.client.OutputWidget = OneWayOutputWidget


def record_run(notebook: Path, profile: str, seconds: float,
               overrides: Mapping[str, Any] | None = None, cpu_seconds: float | None = None
               ) -> None:
    """Note the profile, device, wall and CPU time in the executed notebook (the course page's
    table) and fold its plumbing away (:func:`fold_plumbing`)."""
    import nbformat

    from .book import glued

    device = glued(notebook).get(chapters.DEVICE_GLUE, "unknown")
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata["helpers"] = {"profile": profile, "seconds": round(seconds, 1), "device": device,
                              "date": time.strftime("%Y-%m-%d")}
    if cpu_seconds is not None:
        nb.metadata["helpers"]["cpu_seconds"] = round(cpu_seconds, 1)
    fold_plumbing(nb, notebook.stem, overrides or {}, launch_links(notebook.stem))
    nbformat.write(nb, notebook)


def launch_links(chapter_id: str, config: Path | None = None) -> str:
    """A sentence that opens the chapter's notebook in Binder and Colab, from the repository
    that ``_config.yml`` names (``repository.url``, a GitHub URL, and ``repository.branch``),
    the one place to set; an empty string while none is set (no links, no broken ones)."""
    import yaml

    config = config or chapters.ROOT / "_config.yml"
    settings = yaml.safe_load(config.read_text()) if config.exists() else None
    repo = (settings or {}).get("repository") or {}
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?", repo.get("url") or "")
    if not match:
        return ""
    org, name, branch = *match.groups(), repo.get("branch") or "main"
    path = f"notebooks/{chapter_id}.ipynb"
    return (f" Open it in [Binder](https://mybinder.org/v2/gh/{org}/{name}/{branch}?urlpath=lab/"
            f"tree/{path}) or [Colab](https://colab.research.google.com/github/{org}/{name}/"
            f"blob/{branch}/{path}).")


#: calls whose cells only put the run's numbers and figures where the text cites them
GLUE_CALLS = ("glue", "glue_record", "glue_figures")


def fold_plumbing(nb: Any, chapter_id: str, overrides: Mapping[str, Any], launch: str = "") -> None:
    """Hide the code cells right after the opening text (parameters, papermill's injected
    copy, setup, imports) behind the page's "show code" toggle, and the source of every cell
    that only glues (:func:`glue_only`; its figures stay in view), and put a short "rerun this
    chapter" box after the opening text: the command, the run's profile, device and time, and
    the executed notebook to download, and ``launch`` (:func:`launch_links`)."""
    import nbformat

    first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), None)
    if first is None:
        return
    for cell in nb.cells[first + 1:]:
        if cell.cell_type != "code":
            break
        tags = cell.metadata.setdefault("tags", [])
        if not {"remove-cell", "hide-cell"} & set(tags):
            tags.append("hide-cell")
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if (cell.cell_type == "code" and glue_only(cell.source)
                and not {"remove-cell", "hide-cell", "remove-input", "hide-input"} & set(tags)):
            cell.metadata["tags"] = [*tags, "hide-input"]
    meta = nb.metadata["helpers"]
    command = " ".join(["python -m helpers run", chapter_id, "--profile", meta["profile"]]
                       + [f"-p {shlex.quote(f'{k}={json.dumps(v)}')}"
                          for k, v in overrides.items()])
    box = (f"```{{admonition}} Rerun this chapter\n:class: note\n"
           f"`{command}` made this page (profile *{meta['profile']}*, {meta['device']}, "
           f"{meta['seconds'] / 60:.1f} min, {meta['date']}). Change a parameter with "
           f"`-p NAME=VALUE`; `python -m helpers list {chapter_id}` lists them and their allowed "
           f"values; `make lab` opens the chapter in JupyterLab. The executed notebook: "
           f"{{download}}`{chapter_id}.ipynb <{chapter_id}.ipynb>`.{launch}\n```")
    cell = nbformat.v4.new_markdown_cell(box)
    cell.metadata["tags"] = ["rerun-box"]
    nb.cells.insert(first + 1, cell)


def glue_only(source: str) -> bool:
    """Whether a code cell's every statement is a call of :data:`GLUE_CALLS`."""
    try:
        body = ast.parse(source).body
    except SyntaxError:  # an IPython magic: not glue
        return False
    calls = [s.value.func for s in body if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call)]
    names = [getattr(f, "id", None) or getattr(f, "attr", None) for f in calls]
    return bool(body) and len(names) == len(body) and all(n in GLUE_CALLS for n in names)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m helpers``; returns the exit status."""
    args = _parser().parse_args(argv)
    if getattr(args, "scheduler", None):
        from helpers.jobs import use_scheduler

        try:
            use_scheduler(args.scheduler)  # the papermill kernels inherit it
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        if args.command == "list":
            return cmd_list(args.chapter)
        if args.command == "run":
            overrides = dict(chapters.parse_assignment(a) for a in args.param)
            return run_chapters(args.chapters, args.profile, overrides, args.output_dir)
        if args.command == "student":
            return cmd_student(args.chapters, args.output_dir)
        chapters.check_profile(args.profile)
        if not args.skip_run and (status := run_chapters([], args.profile, {})):
            return status
        from helpers import book

        return book.build_book()
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
