"""Open every chapter of the built book in headless Chromium: each page loads, every <img>
decoded (naturalWidth > 0), and the browser console logged no error.  A screenshot of the
results chapter is saved under build/browser/.

Needs the book built (``make book``) and Debian's ``chromium`` + ``chromium-driver``
(``make test`` installs them when run as root); otherwise skipped, saying which is missing.
"""
from __future__ import annotations

import functools
import http.server
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
import yaml

from rmapwalk import paths

HTML = paths.BOOK / "_build" / "html"
SHOTS = paths.BUILD / "browser"
RESULTS = "_generated/claim"          # the results chapter, saved as a screenshot
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
