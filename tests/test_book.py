"""The built book works offline: every page, opened in headless Chromium from a local server
with every other host unreachable, shows its math, figures and widgets, holds no error output,
logs no script error, and every link in the sidebar resolves. Every chapter page (a page built
from a notebook) opens with its findings box filled in by the run and no code, progress or
notice lines in view, numbers and captions every figure, fits the page's width (measured in
the browser at 1280 px) and links its executed notebook.

By default a small book is built from the fixture chapter (``tests/fixtures/chapters``) with
the real ``_config.yml`` and introduction. With ``BOOK_BUILT=1`` the real ``_build/html`` is
checked instead. Without Chromium the browser checks are skipped, unless
``CI_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import yaml
from bs4 import BeautifulSoup

from helpers import book, chapters

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "chapters"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Console messages that are not ours to fix: sphinx-thebe and sphinx-togglebutton register their
# inline configuration twice under Sphinx 7.4, so the second `const THEBE_JS_URL` is a
# redeclaration. Thebe itself is off (no launch buttons), nothing is loaded from that URL.
KNOWN_CONSOLE = ("Identifier 'THEBE_JS_URL' has already been declared",)
# The resources a page may load; anything with a scheme or starting with // would be a CDN.
LOADING_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "icon", "preconnect"}
# Added by the test server to every page it serves: 3 s after the page has loaded (MathJax and
# the widgets drawn), the elements of the page's text column (main's article) whose right edge
# lies beyond the column's, except inside a box that scrolls by itself (overflow-x auto or
# scroll: tables' wrappers, code blocks), and the glued values drawn bold where the page did
# not ask for bold, as JSON in <pre id="layout-check">.
LAYOUT_CHECK = """<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var column = document.querySelector("main article") || document.querySelector("main");
    var edge = column.getBoundingClientRect().right;
    function scrollsItself(el) {
      for (var up = el.parentElement; up && up !== column; up = up.parentElement) {
        var overflow = getComputedStyle(up).overflowX;
        if (overflow === "auto" || overflow === "scroll") return true;
      }
      return false;
    }
    var wide = [];
    column.querySelectorAll("*").forEach(function (el) {
      var box = el.getBoundingClientRect();
      if (box.width > 0 && box.right > edge + 1 && !scrollsItself(el)) {
        var name = typeof el.className === "string" ? el.className.trim() : "";
        wide.push(el.tagName.toLowerCase() + (name ? "." + name.split(/\\s+/).join(".") : "")
                  + ": right edge " + Math.round(box.right) + " px > " + Math.round(edge));
      }
    });
    var out = document.createElement("pre");
    out.id = "layout-check";
    out.hidden = true;
    var bold = [];
    column.querySelectorAll("span.pasted-text").forEach(function (el) {
      if (!el.closest("strong, b, th") && parseInt(getComputedStyle(el).fontWeight) >= 600)
        bold.push(el.textContent.slice(0, 40));
    });
    out.textContent = JSON.stringify({
      column: Math.round(column.getBoundingClientRect().width), wide: wide.slice(0, 20),
      scrolls: document.documentElement.scrollWidth > document.documentElement.clientWidth,
      bold: bold.slice(0, 5)});
    document.body.appendChild(out);
  }, 3000);
});
</script>
"""
FINDINGS_TITLE = "Findings of this run"  # the chapters' opening box (glued numbers)
RERUN_TITLE = "Rerun this chapter"  # helpers.cli.fold_plumbing's box
# What the opening of a chapter page must not show: the device notice and progress bars.
NOTICE = re.compile(r"running on the CPU|\d+%\||\d+/\d+ \[|it/s\]")


def test_write_toc_drops_pages_that_do_not_exist(tmp_path: Path) -> None:
    (tmp_path / "book" / "chapters").mkdir(parents=True)
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    (tmp_path / "book" / "chapters" / "here.ipynb").write_text("{}")
    toc = {
        "format": "jb-book",
        "root": "book/intro",
        "parts": [
            {"caption": "A", "chapters": [{"file": "book/chapters/here"}, {"file": "book/x"}]},
            {"caption": "B", "chapters": [{"file": "book/chapters/absent"}]},
        ],
    }
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(toc))
    written = yaml.safe_load(book.write_toc(tmp_path, tmp_path / "out.yml").read_text())
    assert written["parts"] == [{"caption": "A", "chapters": [{"file": "book/chapters/here"}]}]


def _glued_notebook(path: Path, values: dict[str, str]) -> None:
    """A notebook whose one cell glued ``values`` the way myst-nb does."""
    outputs = [{"output_type": "display_data", "data": {"text/plain": repr(v)},
                "metadata": {"scrapbook": {"name": k, "mime_prefix": ""}}}
               for k, v in values.items()]
    cell = {"cell_type": "code", "source": "", "metadata": {}, "execution_count": 1,
            "outputs": outputs}
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}))


def test_timings_give_wall_and_cpu_time(tmp_path: Path) -> None:
    import nbformat

    from helpers.book import write_timings

    def executed(cid: str, **meta) -> None:
        nb = nbformat.v4.new_notebook(metadata={"helpers": {
            "profile": "default", "device": "CPU (2 cores)", "date": "2026-12-03", **meta}})
        nbformat.write(nb, tmp_path / f"{cid}.ipynb")

    executed("tour", seconds=180.0, cpu_seconds=330.0)
    executed("atlas", seconds=30.0)  # recorded before CPU time was
    table = write_timings(tmp_path).read_text()
    assert "| A tour of the helpers | default | CPU (2 cores) | 3.0 min | 5.5 min | 2026-12-03 |" in table
    assert "CPU (2 cores) | 0.5 min |  | 2026-12-03 |" in table


def test_findings_quote_the_chapters_that_ran_and_say_which_did_not(tmp_path: Path) -> None:
    rows = [r for r in book.FINDINGS if r[0] == "tunnel"]
    names = {n for r in rows for t in r[3:] for n in re.findall(r"\{(\w+)\}", t)}
    _glued_notebook(tmp_path / "tunnel.ipynb", {n: "x" for n in names})
    _glued_notebook(tmp_path / "separability.ipynb", {"sep_deepest_text": "x"})
    lines = book.write_findings(tmp_path).read_text().splitlines()[2:]
    assert len(lines) == len(book.FINDINGS)
    for line, (chapter, _claim, _paper, ours, verdict) in zip(lines, book.FINDINGS):
        if chapter == "tunnel":
            refs = re.findall(r"\{glue:text\}`chapters/tunnel\.ipynb::(\w+):s`", line)
            assert refs == re.findall(r"\{(\w+)\}", ours + verdict)
            assert "not in this run" not in line
        else:  # separability glued only part of its values; the others did not run
            assert "not in this run" in line and "{glue" not in line
    assert "{doc}`Tunnel <chapters/tunnel>`" in lines[4]


@dataclass
class Site:
    """A built book: its source root and its HTML folder."""

    root: Path
    html: Path
    build_seconds: float | None = None


def _build_fixture_book(root: Path) -> Site:
    """The real config, introduction and API page plus the executed fixture chapter (and a stub
    methods page), built in ``root``."""
    (root / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", root)
    for name in ("intro.md", "references.bib", "api.md"):
        shutil.copy(ROOT / "book" / name, root / "book")
    (root / "book" / "methods.md").write_text("(methods)=\n# Methods\n\nThe formulas.\n")
    shutil.copytree(ROOT / "book" / "_static", root / "book" / "_static")
    try:
        vendor = book.fetch_assets()
    except book.BuildError as exc:
        pytest.fail(f"cannot fetch the book's front-end assets: {exc}")
    (root / "book" / "_vendor").symlink_to(vendor.parent, target_is_directory=True)
    toc = {
        "format": "jb-book",
        "root": "book/intro",
        "parts": [
            {
                "caption": "Chapters",
                "chapters": [{"file": "book/chapters/fixture"}, {"file": "book/chapters/later"}],
            },
            {"caption": "Reference", "chapters": [{"file": "book/methods"}, {"file": "book/api"}]},
        ],
    }
    (root / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    env = {**os.environ, chapters.EXTRA_CHAPTERS_ENV: str(FIXTURES)}
    run = [sys.executable, "-m", "helpers", "run", "fixture", "--profile", "smoke"]
    out = ["--output-dir", str(root / "book" / "chapters")]
    done = subprocess.run(run + out, check=False, env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    start = time.perf_counter()
    status = book.build_book(root)
    seconds = time.perf_counter() - start
    assert status == 0, "jupyter-book build of the fixture book failed (see the output above)"
    print(f"\nfixture book built in {seconds:.1f} s")
    return Site(root, root / "_build" / "html", seconds)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The real build when ``BOOK_BUILT=1``, otherwise a fixture book built for the tests."""
    if os.environ.get("BOOK_BUILT") == "1":
        html = ROOT / "_build" / "html"
        assert (html / "index.html").exists(), "BOOK_BUILT=1 but _build/html is not built"
        return Site(ROOT, html)
    return _build_fixture_book(tmp_path_factory.mktemp("book"))


def _external(url: str) -> bool:
    """Whether ``url`` points off the site (a scheme or a protocol-relative //host)."""
    return bool(
        re.match(r"^([a-z][a-z0-9+.-]*:|//)", url.strip(), re.IGNORECASE)
    ) and not url.startswith("data:")


@pytest.mark.slow
def test_fixture_book_is_built(site: Site) -> None:
    assert (site.html / "index.html").exists()
    if site.build_seconds is not None:
        assert (site.html / "book" / "chapters" / "fixture.html").exists()
        assert not (site.html / "book" / "chapters" / "later.html").exists()


def test_the_api_page_documents_every_public_function_of_the_package(site: Site) -> None:
    import importlib
    import inspect

    page = BeautifulSoup((site.html / "book" / "api.html").read_text(encoding="utf-8"),
                         "html.parser")
    documented = {tag["id"] for tag in page.select("dt[id]")}
    modules = re.findall(r"automodule:: ([\w.]+)", (ROOT / "book" / "api.md").read_text())
    public = set()
    for name in modules:
        module = importlib.import_module(name)
        members = getattr(module, "__all__", None) or [
            n for n, f in inspect.getmembers(module, inspect.isfunction)
            if f.__module__ == name and not n.startswith("_")]
        public |= {f"{name}.{n}" for n in members if callable(getattr(module, n))}
    assert len(public) > 300
    assert public - documented == set()


@pytest.mark.slow
def test_no_page_loads_anything_from_another_host(site: Site) -> None:
    offending = []
    for page in site.html.rglob("*.html"):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        for tag in soup.find_all(["script", "img", "iframe", "source", "audio", "video"]):
            if tag.get("src") and _external(tag["src"]):
                offending.append(f"{page.relative_to(site.html)}: <{tag.name} src={tag['src']}>")
        for tag in soup.find_all("link"):
            rels = set(tag.get("rel", []))
            if rels & LOADING_RELS and _external(tag.get("href", "")):
                offending.append(f"{page.relative_to(site.html)}: <link href={tag['href']}>")
    for sheet in site.html.rglob("*.css"):
        text = sheet.read_text(encoding="utf-8", errors="replace")
        for url in re.findall(r"""(?:url\(|@import\s+)\s*['"]?([^'")\s]+)""", text):
            if _external(url):
                offending.append(f"{sheet.relative_to(site.html)}: {url}")
    assert not offending, "\n".join(offending)


# ---------------------------------------------------------------- in the browser


def _browser() -> str:
    """The Chromium executable, or a skip (a failure with ``CI_REQUIRE_BROWSER=1``)."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    reason = "Chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("CI_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " and CI_REQUIRE_BROWSER=1")
    pytest.skip(reason)


class _Handler(SimpleHTTPRequestHandler):
    """Serves the book quietly and records (path, status) of every request."""

    served: list[tuple[str, int]]

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Record instead of printing."""
        self.served.append((self.path, int(code) if str(code).isdigit() else 0))

    def log_message(self, format: str, *args: object) -> None:
        """Silence."""

    def do_GET(self) -> None:
        """An HTML page with :data:`LAYOUT_CHECK` before its ``</body>``; any other file as is."""
        path = Path(self.translate_path(self.path))
        if path.suffix != ".html" or not path.is_file():
            super().do_GET()
            return
        page = path.read_bytes().replace(b"</body>", LAYOUT_CHECK.encode() + b"</body>", 1)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)


@dataclass
class Server:
    """The local server of the built book."""

    base: str
    served: list[tuple[str, int]] = field(default_factory=list)


@pytest.fixture(scope="session")
def server(site: Site) -> Iterator[Server]:
    """``site.html`` on http://127.0.0.1:<free port>/."""
    served: list[tuple[str, int]] = []
    handler = functools.partial(
        type("Handler", (_Handler,), {"served": served}), directory=str(site.html)
    )
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{httpd.server_address[1]}/", served)
    httpd.shutdown()
    httpd.server_close()


def _status(url: str) -> int:
    """The HTTP status of ``url`` on the local server."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@dataclass
class Page:
    """One page as served (static HTML) and as rendered by the browser (DOM, console)."""

    path: str
    static: BeautifulSoup
    dom: BeautifulSoup
    console: list[str]


def _first_page(site: Site) -> str:
    """The page ``index.html`` redirects to."""
    index = (site.html / "index.html").read_text(encoding="utf-8")
    match = re.search(r'url=([^"\']+)', index)
    return match.group(1) if match else "index.html"


def _sidebar_links(site: Site, server: Server, path: str) -> list[str]:
    """Absolute URLs of the internal links in the primary sidebar of page ``path``."""
    soup = BeautifulSoup((site.html / path).read_text(encoding="utf-8"), "html.parser")
    links = []
    for anchor in soup.select(".bd-sidebar-primary a[href]"):
        href = anchor["href"]
        if not _external(href) and not href.startswith("#"):
            links.append(urljoin(server.base + path, href).split("#")[0])
    return links


def _render(browser: str, url: str, profile: Path) -> tuple[str, list[str]]:
    """The DOM of ``url`` after scripts ran, and the console lines; other hosts unreachable."""
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--virtual-time-budget=5000",
        "--enable-logging=stderr",
        "--log-level=0",
        "--window-size=1280,1600",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout, f"chromium failed on {url}: {done.stderr[-500:]}"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


@pytest.fixture(scope="session")
def pages(site: Site, server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Page]:
    """Every page reachable from the sidebar, rendered in headless Chromium."""
    browser = _browser()
    first = _first_page(site)
    paths = [first] + [urlsplit(u).path.lstrip("/") for u in _sidebar_links(site, server, first)]
    rendered = {}
    for path in dict.fromkeys(paths):
        profile = tmp_path_factory.mktemp("chromium")
        dom, console = _render(browser, server.base + path, profile)
        static = BeautifulSoup((site.html / path).read_text(encoding="utf-8"), "html.parser")
        rendered[path] = Page(path, static, BeautifulSoup(dom, "html.parser"), console)
    return rendered


def _notebook_images(site: Site, path: str) -> int:
    """How many image outputs (glued ones too) the executed notebook behind page ``path`` has
    (0 if none)."""
    notebook = site.root / Path(path).with_suffix(".ipynb")
    if not notebook.exists():
        return 0
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return sum(
        any("image/" in k for k in o.get("data", {}))
        for c in cells
        for o in c.get("outputs", [])
    )


@pytest.mark.slow
def test_math_is_rendered_by_mathjax(server: Server, pages: dict[str, Page]) -> None:
    fonts = [p for p, code in server.served if "/vendor/mathjax/" in p and "/fonts/" in p]
    if any(page.static.select(".math") for page in pages.values()):
        assert fonts, "MathJax fonts were not loaded from the book's own _static/vendor"
    problems = []
    for page in pages.values():
        expected = len(page.static.select(".math"))
        found = len(page.dom.find_all("mjx-container"))
        if found < expected:
            problems.append(f"{page.path}: {found} MathJax outputs for {expected} formulas")
        body = page.dom.select_one("main") or page.dom
        for tag in body.find_all(["script", "style", "pre", "code", "mjx-container"]):
            tag.decompose()
        text = body.get_text(" ")
        if "\\(" in text or "\\[" in text:
            problems.append(f"{page.path}: raw TeX delimiters in the visible text")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_figures_are_present_and_load(site: Site, server: Server, pages: dict[str, Page]) -> None:
    problems = []
    for page in pages.values():
        images = page.dom.select("main img")
        if _notebook_images(site, page.path) and not images:
            problems.append(f"{page.path}: the notebook has figures, the page shows none")
        for image in images:
            if image.get("src", "").startswith("data:image/"):
                continue  # inline (e.g. a widget's output): nothing to fetch
            url = urljoin(server.base + page.path, image.get("src", ""))
            if _external(image.get("src", "")) or _status(url) != 200:
                problems.append(f"{page.path}: image {image.get('src')} does not load")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_no_error_output(pages: dict[str, Page]) -> None:
    problems = []
    for page in pages.values():
        if page.dom.select(".output.traceback, .output.error, .system-message, .problematic"):
            problems.append(f"{page.path}: an error output or a rendering problem")
        for stderr in page.dom.select(".output.stderr"):
            if "Traceback" in stderr.get_text() or "Error" in stderr.get_text():
                problems.append(f"{page.path}: stderr output with an error")
        if "Traceback (most recent call last)" in page.dom.get_text():
            problems.append(f"{page.path}: a traceback in the page")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_widgets_are_rendered(pages: dict[str, Page]) -> None:
    problems = []
    for page in pages.values():
        views = page.static.select('script[type="application/vnd.jupyter.widget-view+json"]')
        shown = page.dom.select(".jupyter-widgets")
        if len(shown) < len(views):
            problems.append(f"{page.path}: {len(shown)} widgets rendered of {len(views)}")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_no_script_errors_and_nothing_fetched_from_elsewhere(
    server: Server, pages: dict[str, Page]
) -> None:
    errors = [
        f"{path}: {line}"
        for path, page in pages.items()
        for line in page.console
        if re.search(r"Uncaught|Failed to load|net::ERR|Error", line)
        and not any(known in line for known in KNOWN_CONSOLE)
    ]
    missing = [p for p, code in server.served if code >= 400 and p != "/favicon.ico"]
    assert not errors, "\n".join(errors)
    assert not missing, f"requests that failed on the local server: {missing}"


@pytest.mark.slow
def test_sidebar_links_resolve(site: Site, server: Server) -> None:
    first = _first_page(site)
    paths = [first] + [urlsplit(u).path.lstrip("/") for u in _sidebar_links(site, server, first)]
    assert len(set(paths)) >= 2, "the sidebar should list the introduction and a chapter"
    broken = []
    for path in dict.fromkeys(paths):
        if _status(server.base + path) != 200:
            broken.append(f"{first}: {path}")
            continue
        broken += [f"{path}: {u}" for u in _sidebar_links(site, server, path) if _status(u) != 200]
    assert not broken, "\n".join(broken)


# ---------------------------------------------------------------- chapter pages


def _chapter_pages(site: Site, pages: dict[str, Page]) -> list[Page]:
    """The pages built from an executed notebook; at least one."""
    found = [p for p in pages.values() if (site.root / Path(p.path).with_suffix(".ipynb")).exists()]
    assert found, "no chapter page among the pages of the sidebar"
    return found


def _column(soup: BeautifulSoup):
    """The page's text column (main's article)."""
    return soup.select_one("main article") or soup.select_one("main")


def _hidden(tag) -> bool:
    """Whether ``tag`` sits in a folded part of the page: a closed ``<details>`` (myst-nb's
    hide-input/hide-cell/hide-output) or a collapsed toggle, or a hidden element."""
    for up in [tag, *tag.parents]:
        if up.name == "details" and not up.has_attr("open") and up is not tag:
            return True
        if up.has_attr("hidden") or "toggle-hidden" in (up.get("class") or []):
            return True
    return False


def _box(soup: BeautifulSoup, title: str):
    """The admonition titled ``title`` in the page's text column, or None."""
    for heading in _column(soup).select(".admonition > .admonition-title"):
        if heading.get_text(" ", strip=True) == title:
            return heading.parent
    return None


@pytest.mark.slow
def test_every_figure_of_a_chapter_is_numbered_and_captioned(
    site: Site, pages: dict[str, Page]
) -> None:
    problems = []
    for page in _chapter_pages(site, pages):
        column = _column(page.dom)
        for figure in column.find_all("figure"):
            number = figure.select_one("figcaption .caption-number")
            text = figure.select_one("figcaption .caption-text")
            if number is None or not re.fullmatch(r"Fig\. ?[\d.]+", number.get_text(strip=True)):
                problems.append(f"{page.path}: figure {figure.get('id')} has no number")
            if text is None or not text.get_text(strip=True):
                problems.append(f"{page.path}: figure {figure.get('id')} has no caption")
        for image in column.find_all("img"):
            if image.find_parent("figure") or image.find_parent(class_="jupyter-widgets"):
                continue
            if not _hidden(image):
                problems.append(f"{page.path}: an image outside a figure ({image.get('src')})")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_no_element_of_a_chapter_is_wider_than_the_page_and_glued_values_read_as_text(
    site: Site, pages: dict[str, Page]
) -> None:
    problems = []
    for page in _chapter_pages(site, pages):
        report = page.dom.select_one("pre#layout-check")
        assert report is not None, f"{page.path}: the layout check did not run"
        layout = json.loads(report.get_text())
        problems += [f"{page.path} ({layout['column']} px wide): {w}" for w in layout["wide"]]
        if layout["scrolls"]:
            problems.append(f"{page.path}: the page scrolls horizontally")
        problems += [f"{page.path}: a glued value drawn bold: {t!r}" for t in layout["bold"]]
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_a_chapter_opens_with_its_findings_filled_in_by_the_run(
    site: Site, pages: dict[str, Page]
) -> None:
    problems = []
    for page in _chapter_pages(site, pages):
        box = _box(page.static, FINDINGS_TITLE)  # as served: MathJax draws text without text
        if box is None:
            problems.append(f"{page.path}: no '{FINDINGS_TITLE}' box")
            continue
        if "{glue" in box.get_text():
            problems.append(f"{page.path}: unresolved glue in the findings box")
        if not box.select("[class*=pasted]"):
            problems.append(f"{page.path}: the findings box quotes nothing the run glued")
        if any(not cell.get_text(strip=True) for cell in box.find_all("td")):
            problems.append(f"{page.path}: an empty cell in the findings box")
    assert not problems, "\n".join(problems)


def _opening(page: Page) -> list:
    """The elements from the page's h1 to the first paragraph of text of its first section
    (the first h2's), or to the end of the page without one."""
    title = _column(page.dom).find("h1")
    assert title is not None, f"{page.path}: no h1"
    heading = title.find_next("h2")
    elements, in_section = [], heading is None
    for element in title.find_all_next():
        in_section = in_section or element is heading
        if in_section and element.name == "p" and element.parent.name == "section":
            break
        elements.append(element)
    return elements


@pytest.mark.slow
def test_a_chapter_opening_shows_no_code_progress_or_notice(
    site: Site, pages: dict[str, Page]
) -> None:
    problems = []
    for page in _chapter_pages(site, pages):
        for element in _opening(page):
            classes = set(element.get("class") or [])
            if not classes & {"cell_input", "stderr", "cell_output"} or _hidden(element):
                continue
            if "cell_input" in classes:
                problems.append(f"{page.path}: code in view: {element.get_text()[:80]!r}")
            elif "stderr" in classes or NOTICE.search(element.get_text()):
                problems.append(f"{page.path}: a notice or progress output: "
                                f"{element.get_text()[:80]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_a_chapter_links_its_executed_notebook(
    site: Site, server: Server, pages: dict[str, Page]
) -> None:
    problems = []
    for page in _chapter_pages(site, pages):
        box = _box(page.dom, RERUN_TITLE)
        link = box.select_one("a.download[href]") if box is not None else None
        if link is None:
            problems.append(f"{page.path}: no download link in a '{RERUN_TITLE}' box")
            continue
        url = urljoin(server.base + page.path, link["href"])
        if not link["href"].endswith(".ipynb") or _status(url) != 200:
            problems.append(f"{page.path}: the executed notebook {link['href']} does not load")
    assert not problems, "\n".join(problems)
