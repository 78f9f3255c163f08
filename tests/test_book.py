"""The book build is the test: notebooks executed with small parameters, then
``jupyter-book build -W -n --keep-going`` (warnings are errors) into a temporary copy."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rmapwalk import paths
from rmapwalk.analysis import provenance

from .test_notebooks import SMALL, execute


@pytest.mark.slow
def test_book_builds(tmp_path):
    book = tmp_path / "book"
    shutil.copytree(paths.BOOK, book, ignore=shutil.ignore_patterns("_build", "_generated"))
    (book / "_generated").mkdir()
    for name in SMALL:
        execute(name, book / "_generated", tmp_path / "cache")
    # The front page includes what `make book` writes there (commit, data, parameters).
    (book / "_generated" / "build-info.md").write_text(provenance.build_info(book / "_generated"))
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(book), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    html = book / "_build" / "html"
    for page in ("intro.html", "rerun.html", "method.html", "threats.html",
                 *(f"_generated/{n}.html" for n in SMALL)):
        assert (html / page).exists(), page
