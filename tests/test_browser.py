"""Open every chapter of the built book in headless Chromium: each page loads, every <img>
decoded (naturalWidth > 0), and the browser console logged no error.  A screenshot of the
results chapter is saved under build/browser/.

Read as a reviewer would (issue 8): the front page's first 1280x800 screen holds the verdict
table; no page scrolls sideways at 1280 px, nor the front page and the claim chapter at 390 px
(a phone); no chapter shows more than one code cell expanded; every figure has alt text that
is not a file name; the PDF exists and holds as many figures as the HTML.  Screenshots of the
front page (1280 and 390 px) and the claim chapter go to build/screenshots/.

Needs the book built (``make book``) and Debian's ``chromium`` + ``chromium-driver``
(``make test`` installs them when run as root); otherwise skipped, saying which is missing.
"""
from __future__ import annotations

import functools
import http.server
import re
import zlib
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
import yaml

from rmapwalk import paths

HTML = paths.BOOK / "_build" / "html"
SHOTS = paths.BUILD / "browser"
SCREENS = paths.BUILD / "screenshots"
RESULTS = "_generated/claim"          # the results chapter, saved as a screenshot
FRONT = "intro"
PDF = HTML / "rmapwalk.pdf"
SINGLE = paths.BOOK / "_build" / "singlehtml" / "index.html"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage")


def chapters() -> list[str]:
    """The book's pages in table-of-contents order, as paths of html files."""
    toc = yaml.safe_load((paths.BOOK / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def _browser_or_skip():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("needs Debian's chromium and chromium-driver "
                    "(apt-get install -y chromium chromium-driver; `make test` does it as root)")
    try:
        from selenium import webdriver  # noqa: PLC0415 (an optional test dependency)
        from selenium.webdriver.chrome.service import Service  # noqa: PLC0415
    except ImportError:
        pytest.skip("needs selenium (pip install -e '.[test]')")
    return chromium, driver, webdriver, Service


class Quiet(http.server.SimpleHTTPRequestHandler):
    """Serves the book; answers the browser's own /favicon.ico request (the book has none)
    with 204 so that it is not a console error, and keeps the test output clean."""

    def do_GET(self):
        if self.path == "/favicon.ico":
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.skip(f"no built book at {HTML}: run `make book` first")
    handler = functools.partial(Quiet, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    chromium, driver, webdriver, Service = _browser_or_skip()
    profile = tempfile.mkdtemp(prefix="rmapwalk-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_argument("--window-size=1280,900")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    b = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    b.set_page_load_timeout(60)
    yield b
    b.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("chapter", chapters())
def test_chapter_renders(server, browser, chapter):
    page = HTML / f"{chapter}.html"
    assert page.exists(), f"{page}: not built (is it in _toc.yml and executed?)"
    browser.get_log("browser")                      # drop what earlier pages logged
    browser.get(f"{server}/{chapter}.html")
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "Promise.all([...document.images].map(i => i.complete ? 0 :"
        " new Promise(r => { i.onload = i.onerror = r; }))).then(done);")
    title = browser.title
    assert title and "404" not in title, f"{chapter}: page title {title!r}"
    assert browser.find_elements("css selector", "main, article, .bd-article"), \
        f"{chapter}: no article element"
    broken = browser.execute_script(
        "return [...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.src);")
    assert not broken, f"{chapter}: images that did not load: {broken}"
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"{chapter}: console errors: {errors}"
    if chapter == RESULTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        height = browser.execute_script("return document.documentElement.scrollHeight;")
        browser.set_window_size(1280, min(int(height) + 100, 16000))
        shot = SHOTS / "claim.png"
        assert browser.save_screenshot(str(shot)), f"could not write {shot}"
        browser.set_window_size(1280, 900)


def _open(server, browser, chapter: str, width: int, height: int = 800) -> None:
    """Load a chapter in a viewport (not window) of ``width`` x ``height`` CSS px."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    browser.get(f"{server}/{chapter}.html")
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "Promise.all([...document.images].map(i => i.complete ? 0 :"
        " new Promise(r => { i.onload = i.onerror = r; }))).then(done);")


def _viewport(browser) -> tuple[int, int]:
    return tuple(browser.execute_script(
        "return [document.documentElement.clientWidth, window.innerHeight];"))


def _sideways(browser) -> int:
    """How far the page scrolls sideways, in px (0: it does not)."""
    return int(browser.execute_script(
        "const e = document.documentElement;"
        "return Math.max(e.scrollWidth, document.body.scrollWidth) - e.clientWidth;"))


def _wide_elements(browser) -> list[str]:
    """The elements sticking out of the viewport (for the failure message)."""
    return browser.execute_script(
        "const w = document.documentElement.clientWidth; const out = [];"
        "for (const e of document.querySelectorAll('body *')) {"
        "  const r = e.getBoundingClientRect();"
        "  if (r.right > w + 1 && r.width > 0 && getComputedStyle(e).position !== 'fixed')"
        "    out.push(e.tagName + '.' + e.className + ' ' + Math.round(r.right));"
        "} return out.slice(0, 8);")


@pytest.mark.slow
def test_front_page_first_screen_holds_the_verdict(server, browser):
    _open(server, browser, FRONT, 1280, 800)
    SCREENS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENS / "front-1280.png"))
    rect = browser.execute_script(
        "const t = document.querySelector('#verdict-table table');"
        "if (!t) return null; const r = t.getBoundingClientRect();"
        "return [r.top, r.bottom, t.rows.length, t.innerText];")
    assert rect is not None, "front page: no verdict table (#verdict-table table)"
    top, bottom, rows, text = rect
    _, height = _viewport(browser)
    assert rows >= 2 and "verdict" in text.lower(), f"front page: verdict table is empty: {text!r}"
    assert bottom <= height, (f"front page: the verdict table ends at {bottom:.0f} px, below the "
                              f"first {height} px screen")
    assert re.search(r"holds|does not hold|no data", text), "front page: no verdict in the table"


@pytest.mark.slow
def test_phone_reads_each_verdict_without_scrolling_the_table(server, browser):
    """At 390 px the verdict table scrolls inside its box; the verdict column (next to the
    claim) is inside the screen, so each claim's answer is read without scrolling it."""
    _open(server, browser, FRONT, 390, 844)
    cells = browser.execute_script(
        "const t = document.querySelector('#verdict-table table'); if (!t) return null;"
        "const h = [...t.rows[0].cells].map(c => c.innerText.trim().toLowerCase());"
        "const k = h.indexOf('verdict'); if (k < 0) return [];"
        "return [...t.rows].slice(1).map(r => [r.cells[k].innerText,"
        " r.cells[k].getBoundingClientRect().right]);")
    width, _ = _viewport(browser)
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert cells, "front page: no verdict column in the verdict table"
    hidden = [text for text, right in cells if right > width + 1]
    assert not hidden, f"front page at 390 px: verdicts off-screen (table scrolled): {hidden}"


@pytest.mark.slow
@pytest.mark.parametrize("chapter", chapters())
def test_no_sideways_scroll_at_1280(server, browser, chapter):
    _open(server, browser, chapter, 1280, 800)
    assert _sideways(browser) <= 1, \
        f"{chapter}: scrolls {_sideways(browser)} px sideways at 1280 px: {_wide_elements(browser)}"


@pytest.mark.slow
@pytest.mark.parametrize("chapter", [FRONT, RESULTS])
def test_no_sideways_scroll_on_a_phone(server, browser, chapter):
    _open(server, browser, chapter, 390, 844)
    SCREENS.mkdir(parents=True, exist_ok=True)
    name = "front-390.png" if chapter == FRONT else "claim-390.png"
    browser.save_screenshot(str(SCREENS / name))
    assert _sideways(browser) <= 1, \
        f"{chapter}: scrolls {_sideways(browser)} px sideways at 390 px: {_wide_elements(browser)}"
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


@pytest.mark.slow
@pytest.mark.parametrize("chapter", chapters())
def test_code_out_of_the_way(server, browser, chapter):
    """At most one code cell's source is visible without a click."""
    _open(server, browser, chapter, 1280, 800)
    shown = browser.execute_script(
        "return [...document.querySelectorAll('.cell .cell_input')]"
        ".filter(e => !e.closest('details:not([open])') && e.offsetHeight > 0).length;")
    assert shown <= 1, f"{chapter}: {shown} code cells expanded by default"
    if chapter == RESULTS:
        SCREENS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENS / "claim-1280.png"))


FILE_NAME = re.compile(r"^[\w./-]+\.(png|svg|jpe?g|gif|webp)$|^[0-9a-f]{16,}", re.I)


def _figures(browser) -> list[list[str]]:
    return browser.execute_script(
        "return [...document.querySelectorAll('.bd-article img, article img')]"
        ".map(i => [i.getAttribute('src') || '', i.getAttribute('alt') || '']);")


@pytest.mark.slow
@pytest.mark.parametrize("chapter", chapters())
def test_every_figure_has_alt_text(server, browser, chapter):
    _open(server, browser, chapter, 1280, 800)
    bad = [(src, alt) for src, alt in _figures(browser)
           if len(alt.strip()) < 15 or FILE_NAME.search(alt.strip())]
    assert not bad, f"{chapter}: figures without real alt text (src, alt): {bad}"


def pdf_images(data: bytes) -> int:
    """Colour image XObjects in a PDF: the figures.  Chromium also writes grey-scale images
    (box shadows, soft masks), which are not figures and are not counted."""
    texts = [data]
    for m in re.finditer(rb"/Type\s*/ObjStm.*?stream\r?\n", data, re.S):
        end = data.find(b"endstream", m.end())
        try:
            texts.append(zlib.decompress(data[m.end():end]))
        except zlib.error:
            pass
    return sum(1 for t in texts for d in re.findall(rb"<<[^<>]*?/Subtype\s*/Image[^<>]*?>>", t, re.S)
               if not re.search(rb"/ColorSpace\s*/DeviceGray", d))


@pytest.mark.slow
def test_pdf_has_every_figure(server, browser):
    if not PDF.exists():
        pytest.fail(f"{PDF}: no PDF (make pdf)")
    data = PDF.read_bytes()
    assert data.startswith(b"%PDF"), f"{PDF}: not a PDF"
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    assert pages > 5, f"{PDF}: only {pages} pages"
    html = 0
    for chapter in chapters():
        _open(server, browser, chapter, 1280, 800)
        html += sum(1 for src, _ in _figures(browser) if not src.lower().endswith(".svg"))
    assert html > 0
    assert pdf_images(data) == html, (f"{PDF}: {pdf_images(data)} raster figures, the HTML "
                                      f"chapters {html}")


@pytest.mark.slow
def test_pdf_pages_are_numbered_without_local_paths():
    """Every page carries "k / n" (the book's @page style) and no browser footer with the
    local file path (make pdf prints without Chromium's header and footer)."""
    from pypdf import PdfReader
    if not PDF.exists():
        pytest.fail(f"{PDF}: no PDF (make pdf)")
    pages = PdfReader(PDF).pages
    texts = [p.extract_text() for p in pages]
    unnumbered = [k for k, t in enumerate(texts, 1) if f"{k} / {len(pages)}" not in t]
    assert not unnumbered, f"{PDF}: pages without their number: {unnumbered[:10]}"
    local = [k for k, t in enumerate(texts, 1) if "file://" in t]
    assert not local, f"{PDF}: a local file path printed on pages {local[:10]}"
