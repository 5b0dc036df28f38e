"""Where the CPU time of `make book` goes, per stage: sampled with py-spy across every process
(the CLI, each chapter's kernel, the job workers, the book build).

    make profile                                   # record a cold book, then summarize
    python bench/profile_book.py summarize FILE    # summarize a recorded py-spy raw file

"Cold": the book runs with an empty cache of its own (``HELPERS_CACHE`` under ``_build/``), as
from a fresh clone, leaving the checkout's cache alone.

py-spy samples every thread that is not idle, which counts a thread that waits for the CPU
(a busy machine) or blocks in native code (joblib's result thread) as active: the samples give
each stage's *share*, not its seconds. The seconds come from the operating system: the CPU time
of the whole process tree (``getrusage``), split by those shares, with the stacks that only
wait (WAITS) left out. Each stack goes to the first stage of STAGES whose marker it contains,
so pre-training (which calls the training loop) counts as pre-training, and evaluation inside
a training run counts as training.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

#: (stage, markers in a stack's frames), first match wins
STAGES = [
    ("install", ("pip/_internal", "pip/_vendor")),
    ("rendering data", ("helpers/data/glyphs.py", "helpers/data/digits.py",
                        "helpers/data/real.py", "helpers/data/variations.py")),
    ("metrics", ("helpers/metrics/",)),
    ("pre-training (zoo)", ("helpers/zoo.py",)),
    ("double descent training", ("train_tail (",)),
    ("fine-tuning", ("helpers/train.py", "finetune (")),
    ("extraction", ("helpers/features.py", "pre_logits (", "forward_intermediates")),
    ("figures", ("matplotlib/", "seaborn/")),
    ("book build", ("sphinx/", "jupyter_book/", "myst_nb/", "docutils/", "myst_parser/")),
    ("imports", ("importlib._bootstrap",)),
]
OTHER = "other (kernels, notebook I/O, glue)"
#: leaf frames of threads that wait (for results, sockets, locks): not CPU work
WAITS = ("_retrieve (joblib", "_wait_retrieval (", "parentpoller.py", "wait (threading.py",
         "select (selectors.py", "poll (selectors.py", "_recv (", "recv_bytes (")


def stage(stack: str) -> str:
    """The stage a semicolon-joined stack belongs to."""
    for name, markers in STAGES:
        if any(m in stack for m in markers):
            return name
    return OTHER


def summarize(path: Path) -> list[tuple[str, float]]:
    """(stage, share of the working samples) from a py-spy raw (collapsed) file, largest
    first; stacks whose leaf frame only waits are left out."""
    samples = collections.Counter()
    for line in path.read_text().splitlines():
        match = re.match(r"(.*) (\d+)$", line)
        if match and not any(w in match.group(1).rsplit(";", 1)[-1] for w in WAITS):
            samples[stage(match.group(1))] += int(match.group(2))
    total = sum(samples.values()) or 1
    return [(name, n / total) for name, n in samples.most_common()]


def table(rows: list[tuple[str, float]], cpu: float | None = None, wall: float | None = None
          ) -> str:
    """Markdown: each stage's share, and its CPU-minutes when the tree's CPU time is known."""
    lines = ["| stage | share | CPU-minutes |", "| --- | --- | --- |"]
    lines += [f"| {name} | {100 * f:.1f} % | {f * cpu / 60:.1f} |" if cpu else
              f"| {name} | {100 * f:.1f} % | - |" for name, f in rows]
    if cpu:
        lines.append(f"| total | 100 % | {cpu / 60:.1f} |")
    if wall:
        lines.append(f"\nwall {wall / 60:.1f} min")
    return "\n".join(lines)


def record(out: Path, rate: int, command: list[str]) -> tuple[float, float]:
    """Run ``command`` on an empty cache with py-spy attached to it and its children; (wall
    seconds, CPU seconds of the whole process tree)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    cold = out.parent / "profile-cache"
    shutil.rmtree(cold, ignore_errors=True)
    tic = time.perf_counter()
    book = subprocess.Popen(command, env={**os.environ, "HELPERS_CACHE": str(cold.resolve())})
    spy = subprocess.Popen([spy, "record", "--pid", str(book.pid), "--subprocesses",
                            "--nonblocking", "--rate", str(rate), "--format", "raw",
                            "--output", str(out)])
    if book.wait():
        raise SystemExit(f"{' '.join(command)} failed (exit {book.returncode})")
    wall = time.perf_counter() - tic
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the book's tree (py-spy not reaped yet)
    spy.wait()
    return wall, usage.ru_utime + usage.ru_stime


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["record", "summarize"])
    parser.add_argument("file", type=Path, nargs="?", default=Path("_build/book-profile.txt"))
    parser.add_argument("--rate", type=int, default=20, help="samples per second")
    parser.add_argument("--profile", default="default", help="the book's parameter profile")
    args = parser.parse_args(argv)
    wall = cpu = None
    if args.action == "record":
        args.file.parent.mkdir(parents=True, exist_ok=True)
        wall, cpu = record(args.file, args.rate,
                           [sys.executable, "-m", "helpers", "book", "--profile", args.profile])
    print(table(summarize(args.file), cpu, wall))


if __name__ == "__main__":
    main()
