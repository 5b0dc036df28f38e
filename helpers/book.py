"""Build the book offline: pinned front-end assets, a toc of the executed chapters, jupyter-book.

``python -m helpers book`` runs the chapters (:mod:`helpers.cli`), then :func:`build_book`:
:func:`fetch_assets` vendors MathJax, RequireJS and the widget manager from npm (pinned and
hash-checked) into ``book/_vendor/vendor`` so that no page loads anything from a CDN;
:func:`write_toc` copies ``_toc.yml`` without the chapters not executed yet;
:func:`write_exercises` writes the exercise notebooks that the course page links;
:func:`executed_errors` refuses notebooks that hold an error output; :func:`build` runs
``jupyter-book build`` with warnings as errors.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from helpers import student
from helpers.chapters import ROOT, available, get, rel

VENDOR = ROOT / "book" / "_vendor" / "vendor"


@dataclass(frozen=True)
class Asset:
    """One npm package: what to fetch, its sha512, and which part of it goes where."""

    spec: str  # name@version, exact
    integrity: str  # sha512 of the tarball, as npm's lock files write it
    source: str  # a file or folder inside the tarball's ``package/``
    target: str  # its path under VENDOR
    keep: str = ""  # regex on paths inside ``source``: only matching files are kept


ASSETS = (
    Asset(
        "requirejs@2.3.7",
        "sha512-DouTG8T1WanGok6Qjg2SXuCMzszOo0eHeH9hDZ5Y4x8Je+9JB38HdTLT4/VA8OaUhBa0JPVHJ0pyBkM1z+pDsw==",
        "require.js",
        "require.js",
    ),
    Asset(
        "@jupyter-widgets/html-manager@1.0.6",
        "sha512-+Mn+Ra8wyIHrYaUpfmf9A3dsLkt/NuwzPQN8sthdxBD35VV5cOJbpmgMhNR27n/rmP3mKyEe0PWCJrtZrXTXDQ==",
        "dist",
        "html-manager",
        keep=r"(?!.*\.map$)",  # no source maps
    ),
    Asset(
        "mathjax@3.2.2",
        "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        "es5",
        "mathjax",
        keep=r"tex-mml-chtml\.js$|[^/]+/",  # the one bundle we load, and what it loads (fonts)
    ),
)


# Loaded between require.js and the widget manager on pages with widgets. (1) RequireJS names
# the manager's modules "@jupyter-widgets/html-manager/dist/..." and the manager loads its fonts
# next to its module's URL: map that name to the vendored copy, from this script's own URL, so
# it holds on every page whatever its depth. (2) ipywidgets typesets labels with the MathJax 2
# call MathJax.Hub.Queue; the book loads MathJax 3: give it that one call.
WIDGETS_CONFIG = "widgets-config.js"
WIDGETS_CONFIG_JS = """\
// Written by helpers/book.py (see WIDGETS_CONFIG_JS there).
(function () {
  var here = document.currentScript.src.replace(/[?#].*$/, "").replace(/[^/]*$/, "");
  require.config({paths: {"@jupyter-widgets/html-manager/dist": here + "html-manager"}});
  document.addEventListener("DOMContentLoaded", function () {
    var mj = window.MathJax;
    if (mj && mj.startup && !mj.Hub) {
      mj.Hub = {Queue: function (job) {
        mj.startup.promise.then(function () { return mj.typesetPromise([job[2]]); });
      }};
    }
  });
})();
"""


class BuildError(RuntimeError):
    """The book cannot be built; the message says why in one line."""


def _sha512(path: Path) -> str:
    """``sha512-<base64>`` of a file, the form of npm's ``integrity`` field."""
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def _unpack(tarball: Path, asset: Asset, vendor: Path) -> None:
    """Copy ``asset.source`` (filtered by ``asset.keep``) from ``tarball`` into ``vendor``."""
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix("package/")
            if not member.isfile() or ".." in Path(name).parts:
                continue
            if name == asset.source:
                inner = ""
            elif name.startswith(asset.source + "/"):
                inner = name[len(asset.source) + 1 :]
                if not re.match(asset.keep, inner):
                    continue
            else:
                continue
            dest = vendor / asset.target / inner if inner else vendor / asset.target
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(tar.extractfile(member).read())


def fetch_assets(vendor: Path = VENDOR) -> Path:
    """Fetch the pinned assets with ``npm pack`` into ``vendor`` unless they are there already."""
    stamp = vendor / "ASSETS"
    wanted = "".join(f"{a.spec} {a.integrity}\n" for a in ASSETS) + WIDGETS_CONFIG_JS
    if stamp.exists() and stamp.read_text() == wanted:
        return vendor
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("npm not found: install Node.js to fetch the book's front-end assets")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [npm, "pack", "--silent", "--pack-destination", tmp, *(a.spec for a in ASSETS)],
            check=False,
            capture_output=True,
            text=True,
        )
        tarballs = [Path(tmp) / line for line in done.stdout.split()]
        if done.returncode or len(tarballs) != len(ASSETS):
            why = " ".join(done.stderr.split())[-300:]
            raise BuildError(f"npm pack failed (exit {done.returncode}): {why}")
        staging = Path(tmp) / "vendor"
        by_hash = {_sha512(tarball): tarball for tarball in tarballs}
        for asset in ASSETS:
            if asset.integrity not in by_hash:
                raise BuildError(
                    f"{asset.spec}: npm gave a tarball whose sha512 is not the pinned one"
                )
            _unpack(by_hash[asset.integrity], asset, staging)
        (staging / WIDGETS_CONFIG).write_text(WIDGETS_CONFIG_JS)
        (staging / "ASSETS").write_text(wanted)
        shutil.rmtree(vendor, ignore_errors=True)
        vendor.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staging, vendor)
    return vendor


def _exists(root: Path, file: str) -> bool:
    """Whether a toc entry ``file`` (no suffix) has a source under ``root``."""
    return any((root / f"{file}{ext}").is_file() for ext in ("", ".md", ".ipynb"))


def _prune(entries: list[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    """Toc entries without the files that do not exist, recursively; empty parts dropped."""
    kept = []
    for entry in entries:
        if "file" in entry and not _exists(root, entry["file"]):
            continue
        entry = dict(entry)
        for key in ("chapters", "sections", "parts"):
            if key in entry:
                entry[key] = _prune(entry[key], root)
                if not entry[key]:
                    del entry[key]
        if "file" in entry or "url" in entry or any(k in entry for k in ("chapters", "sections")):
            kept.append(entry)
    return kept


def write_toc(root: Path, out: Path) -> Path:
    """Write ``root/_toc.yml`` to ``out`` without the entries whose page does not exist yet."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    for key in ("chapters", "parts"):
        if key in toc:
            toc[key] = _prune(toc[key], root)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# Generated by helpers.book.write_toc from _toc.yml: only the pages that exist.\n"
        + yaml.safe_dump(toc, sort_keys=False),
        encoding="utf-8",
    )
    return out


def _files(toc: dict[str, Any]) -> list[str]:
    """Every ``file`` in a toc, in order."""
    found = [toc["root"]] if "root" in toc else []
    for key in ("chapters", "sections", "parts"):
        for entry in toc.get(key, []):
            found += [entry["file"]] if "file" in entry else []
            found += _files({k: v for k, v in entry.items() if k != "file"})
    return found


def executed_errors(root: Path, toc: Path) -> list[str]:
    """One line per notebook in ``toc`` holding an error output in a cell not tagged
    ``raises-exception`` (the build runs with execution off and would not notice)."""
    problems = []
    for file in _files(yaml.safe_load(toc.read_text(encoding="utf-8"))):
        path = root / f"{file}.ipynb"
        if not path.is_file():
            continue
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        for index, cell in enumerate(cells):
            tags = cell.get("metadata", {}).get("tags", [])
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if errors and "raises-exception" not in tags:
                error = errors[0]
                problems.append(
                    f"{rel(path)} cell {index} holds an error output: "
                    f"{error.get('ename')}: {error.get('evalue')}"
                )
                break
    return problems


def glued(notebook: Path) -> dict[str, str]:
    """The values an executed notebook glued (myst-nb ``glue``), name -> plain text without
    quotes: the numbers its prose shows, for comparing runs."""
    out = {}
    for cell in json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            meta = output.get("metadata", {}).get("scrapbook", {})
            text = output.get("data", {}).get(meta.get("mime_prefix", "") + "text/plain")
            if meta.get("name") and text is not None:
                out[meta["name"]] = "".join(text).strip("'\"")
    return out


def build(root: Path, toc: Path) -> int:
    """``jupyter-book build`` of ``root`` with ``toc``, warnings as errors; the exit status."""
    command = [
        sys.executable,
        "-c",
        "from jupyter_book.cli.main import main; main()",
        "build",
        str(root),
        "--path-output",
        str(root),
        "--toc",
        str(toc),
        "--warningiserror",
        "--nitpick",
        "--keep-going",
        "--all",
    ]
    return subprocess.run(command, check=False, cwd=root).returncode


def write_timings(executed: Path) -> Path:
    """A table of each executed chapter's profile, device, wall and CPU time (the course page
    includes it), read from what ``python -m helpers run`` recorded in the notebooks."""
    import nbformat

    from .chapters import REGISTRY

    rows = ["| chapter | profile | device | run time | CPU time | date |",
            "| --- | --- | --- | --- | --- | --- |"]
    for cid, title in REGISTRY:
        path = executed / f"{cid}.ipynb"
        if path.exists():
            meta = nbformat.read(path, as_version=4).metadata.get("helpers")
            if meta:
                cpu = meta.get("cpu_seconds")
                rows.append(f"| {title} | {meta['profile']} | {meta['device']} | "
                            f"{meta['seconds'] / 60:.1f} min | "
                            f"{'' if cpu is None else f'{cpu / 60:.1f} min'} | {meta['date']} |")
    executed.mkdir(parents=True, exist_ok=True)
    out = executed / "timings.md"
    out.write_text("\n".join(rows) + "\n" if len(rows) > 2 else
                   "No chapter has been run with `python -m helpers run` yet.\n")
    return out


def write_exercises(executed: Path) -> Path:
    """The student and teacher notebooks (:mod:`helpers.student`) of each executed chapter with
    exercises, and ``exercises.md`` beside the chapters: one row per such chapter with download
    links to both (the course page includes it)."""
    ids = [c.id for c in available() if (executed / f"{c.id}.ipynb").exists()]
    written = student.write(ids, executed) if ids else {}
    rows = ["| chapter | student copy | teacher copy (with solutions) |", "| --- | --- | --- |"]
    for cid, paths in written.items():
        links = [f"{{download}}`{path.name} <chapters/{path.parent.name}/{path.name}>`"
                 for path in paths]
        rows.append(f"| {get(cid).title} | {links[0]} | {links[1]} |")
    executed.mkdir(parents=True, exist_ok=True)
    out = executed / "exercises.md"
    out.write_text("\n".join(rows) + "\n" if written else
                   "No chapter with exercises has been run yet.\n", encoding="utf-8")
    return out


#: The book's first-page table, one row per claim of the four papers: (chapter, claim, the
#: paper's number, ours and the verdict). ``{name}`` in the last two is a value the chapter
#: glued; :func:`write_findings` turns it into a glue reference to that chapter.
FINDINGS: tuple[tuple[str, str, str, str, str], ...] = (
    ("separability", "high seen accuracy does not imply generalizability",
     "6 models at 0.98-0.99 seen accuracy, unseen NMI 0.50-0.78 (calligraphy)", "{sep_claim1_short}",
     "shown on {sep_claim1_domains} domains"),
    ("separability", "the deepest layer is not always the best",
     "inner layers best for several models", "{sep_deepest_text}", "{sep_deepest_verdict}"),
    ("transferability", "FaCe ranks a zoo better than the other scores", "best on its benchmark",
     "FaCe {tr_face_interval}; best {tr_best_metric} {tr_best_mean}", "{tr_verdict_word}"),
    ("transferability", "both FaCe terms matter", "FaCe above each term alone",
     "{tr_abl_verdict}", "{tr_abl_verdict_word}"),
    ("tunnel", "higher resolution weakens the tunnel (% OOD retained)", "68.6 → 78.4",
     "{tunnel_res_low} → {tunnel_res_high}: {tunnel_res_diff}", "{tunnel_res_verdict}"),
    ("tunnel", "augmentation weakens the tunnel", "64.3 → 78.4",
     "{tunnel_aug_low} → {tunnel_aug_high}: {tunnel_aug_diff}", "{tunnel_aug_verdict}"),
    ("tunnel", "more ID classes weaken the tunnel", "more classes, weaker tunnel",
     "{tunnel_cls_low} → {tunnel_cls_high}: {tunnel_cls_diff}", "{tunnel_cls_verdict}"),
    ("tunnel", "a deeper network has a longer tunnel (% OOD retained)", "deeper, longer tunnel",
     "{tunnel_depth_low} → {tunnel_depth_high}: {tunnel_depth_diff}", "{tunnel_depth_verdict}"),
    ("double_descent", "epoch-wise double descent with label noise", "qualitative",
     "{dd_ew_summary}", "{dd_verdict_0}"),
    ("double_descent", "a larger target set makes it stronger", "qualitative",
     "{dd_size_summary}", "{dd_verdict_1}"),
    ("double_descent", "the frozen layers decide whether the transfer interpolates",
     "qualitative", "memorized: {dd_mem_by_k}", "{dd_verdict_2}"),
    ("double_descent", "freezing-wise double descent", "qualitative",
     "{dd_fw_summary}", "{dd_verdict_3}"),
    ("double_descent", "a less related source can transfer better", "qualitative",
     "{dd_src_summary}", "{dd_verdict_4}"),
)


def _glue_refs(template: str, chapter: str, have: set[str]) -> str | None:
    """``template`` with each ``{name}`` as a glue reference into ``chapter``'s page; None if
    the chapter glued not all of them."""
    names = re.findall(r"\{(\w+)\}", template)
    if not set(names) <= have:
        return None
    return re.sub(r"\{(\w+)\}", lambda m: f"{{glue:text}}`{chapter}.ipynb::{m[1]}:s`", template)


def write_findings(executed: Path) -> Path:
    """``findings.md`` beside the executed chapters: :data:`FINDINGS` as a table whose numbers
    and verdicts are glue references into the chapters (the first page includes it); a row
    whose chapter did not run (or glued another set of values) says so."""
    rows = ["| Chapter | Claim | Paper | Ours | Verdict |", "| --- | --- | --- | --- | --- |"]
    for chapter, claim, paper, ours, verdict in FINDINGS:
        path = executed / f"{chapter}.ipynb"
        have = set(glued(path)) if path.exists() else set()
        cells = [_glue_refs(t, f"chapters/{chapter}", have) for t in (ours, verdict)]
        name = chapter.replace("_", " ").capitalize()
        link = f"{{doc}}`{name} <chapters/{chapter}>`" if have else name
        if None in cells:
            cells = ["not in this run", "-"]
        rows.append(f"| {link} | {claim} | {paper} | {cells[0]} | **{cells[1]}** |")
    executed.mkdir(parents=True, exist_ok=True)
    out = executed / "findings.md"
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out


def build_book(root: Path = ROOT) -> int:
    """Fetch the assets, write the course page's tables and exercise notebooks and the toc of
    existing pages, check the notebooks, build; 0 if ok."""
    try:
        fetch_assets(root / VENDOR.relative_to(ROOT))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_timings(root / "book" / "chapters")
    write_findings(root / "book" / "chapters")
    try:
        write_exercises(root / "book" / "chapters")
    except student.ExerciseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    toc = write_toc(root, root / "_build" / "toc.yml")
    problems = executed_errors(root, toc)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 1
    status = build(root, toc)
    if status == 0:
        print(f"book: {rel(root / '_build' / 'html' / 'index.html')}")
    return 1 if status else 0
