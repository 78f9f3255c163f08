"""The book build is the test: notebooks executed with small parameters, then
``jupyter-book build -W -n --keep-going`` (warnings are errors) into a temporary copy."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import papermill as pm
import pytest
import yaml

from rmapwalk import paths
from rmapwalk.analysis import provenance

from .test_notebooks import SMALL, execute


OTHER = {"real-programs": {"vmas": [1, 10, 100], "children": [0, 2]}}


def toc_notebooks() -> list[str]:
    """The executed notebooks the table of contents lists (``_generated/<name>``)."""
    toc = yaml.safe_load((paths.BOOK / "_toc.yml").read_text())
    files = [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    return [f.split("/", 1)[1] for f in files if f.startswith("_generated/")]


@pytest.mark.slow
def test_book_builds(tmp_path):
    book = tmp_path / "book"
    shutil.copytree(paths.BOOK, book, ignore=shutil.ignore_patterns("_build", "_generated"))
    # the patches page includes kernel-config/patches/* by a path relative to the book
    shutil.copytree(paths.ROOT / "kernel-config", tmp_path / "kernel-config")
    (book / "_generated").mkdir()
    for name in SMALL:
        execute(name, book / "_generated", tmp_path / "cache")
    # chapters the table of contents lists without small parameters in test_notebooks: run
    # with OTHER's (or their defaults), so that a new chapter cannot break the build unseen
    for name in sorted(set(toc_notebooks()) - set(SMALL)):
        pm.execute_notebook(str(paths.NOTEBOOKS / f"{name}.ipynb"),
                            str(book / "_generated" / f"{name}.ipynb"),
                            parameters=OTHER.get(name, {}), kernel_name="python3",
                            cwd=str(paths.NOTEBOOKS), progress_bar=False)
    # What `make book` writes there: the appendix's build information (commit, data,
    # parameters) and the front page's verdict, from what the claim notebook glued.
    (book / "_generated" / "build-info.md").write_text(provenance.build_info(book / "_generated"))
    (book / "_generated" / "verdict.md").write_text(
        provenance.verdict(book / "_generated" / "claim.ipynb"))
    (book / "_generated" / "kernels.md").write_text(provenance.kernels_table())
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(book), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    html = book / "_build" / "html"
    for page in ("intro.html", "rerun.html", "method.html", "threats.html", "patches.html",
                 "references.html",
                 *(f"_generated/{n}.html" for n in toc_notebooks())):
        assert (html / page).exists(), page


def test_data_archive_is_deterministic(tmp_path):
    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    assert provenance.archive(a) == provenance.archive(b)
    assert a.read_bytes() == b.read_bytes()
    import tarfile   # noqa: PLC0415
    with tarfile.open(a) as t:
        names = t.getnames()
    assert "rmapwalk-data/data/dataset.yaml" in names and "rmapwalk-data/data/thread.yaml" in names
    assert any(n.startswith("rmapwalk-data/data/traces/") and n.endswith("manifest.json") for n in names)
    assert any(n.startswith("rmapwalk-data/data/scenarios/") for n in names)
    for folder in ("conditions", "paths", "kernels", "selftests", "fuzz"):
        assert any(n.startswith(f"rmapwalk-data/data/{folder}/") and n.endswith("manifest.json")
                   for n in names), folder
    assert not any(n.startswith("rmapwalk-data/data/programs/") for n in names)
