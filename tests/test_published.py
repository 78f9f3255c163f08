"""rmapwalk.analysis.published: the published tables (data/kernels, data/selftests, the fuzz
campaigns) checked before any notebook runs, through the chapters' own readers."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from rmapwalk import paths
from rmapwalk.analysis import published as P


@pytest.fixture()
def copies(tmp_path):
    """Copies of the committed tables, to tamper with."""
    out = {}
    for name, src in (("kernels", paths.DATA / "kernels"), ("selftests", paths.DATA / "selftests"),
                      ("fuzz", paths.DATA / "fuzz")):
        out[name] = tmp_path / name
        shutil.copytree(src, out[name])
    return out


def test_committed_tables_verify():
    ok, problems = P.check()
    assert problems == []
    assert len(ok) >= 3 and any("campaign" in o for o in ok)


def test_changed_kernel_table_is_named(copies):
    f = copies["kernels"] / "matrix.csv"
    f.write_text(f.read_text().replace("64", "72", 1))
    ok, problems = P.check(copies["kernels"], copies["selftests"], copies["fuzz"])
    assert any(str(f) in p for p in problems), problems
    assert str(copies["kernels"]) not in ok


def test_changed_campaign_file_and_missing_campaign_are_named(copies, tmp_path):
    camp = next(p for p in copies["fuzz"].iterdir() if p.is_dir())
    with open(camp / "results.csv", "a") as f:
        f.write("x\n")
    _, problems = P.check(copies["kernels"], copies["selftests"], copies["fuzz"])
    assert any(str(camp / "results.csv") in p for p in problems), problems
    empty = tmp_path / "nofuzz"
    empty.mkdir()
    _, problems = P.check(copies["kernels"], copies["selftests"], empty)
    assert problems == [f"{empty}: no published fuzz campaign (the Trust chapter reads one)"]


def test_command_exits_1_naming_the_file(copies):
    (copies["selftests"] / "summary.csv").unlink()
    r = subprocess.run([sys.executable, "-m", "rmapwalk.analysis.published",
                        "--kernels", str(copies["kernels"]), "--selftests", str(copies["selftests"]),
                        "--fuzz", str(copies["fuzz"])], capture_output=True, text=True)
    assert r.returncode == 1
    assert str(copies["selftests"] / "summary.csv") in r.stdout
    assert "problem(s)" in r.stderr and " 0 problem(s)" not in r.stderr
