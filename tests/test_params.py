"""Notebook parameters: unknown names refused before anything runs, data folders that must
exist, single values for list parameters, and ``make run``'s outputs (unique names, a failed
or interrupted run kept only as ``...-FAILED.ipynb``)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rmapwalk import paths
from rmapwalk.analysis import execute as X
from rmapwalk.analysis.params import check_dir, check_int_list
from rmapwalk.outputs import UsageError

NOTEBOOKS = paths.NOTEBOOKS


def run_execute(*args, cwd=paths.ROOT, **kw):
    return subprocess.run([sys.executable, "-m", "rmapwalk.analysis.execute", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, **kw)


def tiny_notebook(path: Path, body: str) -> Path:
    """A notebook with a parameters cell (``wait``, ``fail``) and one code cell."""
    def cell(src, tags=()):
        return {"cell_type": "code", "execution_count": None, "id": f"c{abs(hash(src)) % 10**8}",
                "metadata": {"tags": list(tags)}, "outputs": [], "source": src}
    doc = {"cells": [cell("wait = 0\nfail = False\n", ["parameters"]), cell(body)],
           "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}},
           "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(doc))
    return path


# --- unknown parameters ---------------------------------------------------------------------

def test_unknown_parameter_is_refused_before_anything_runs(tmp_path):
    r = run_execute("notebooks/skip-ratio.ipynb", tmp_path, "-p", "seeds", "7")
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line
    assert ("parameter 'seeds': not a parameter of notebooks/skip-ratio.ipynb; valid: "
            "scenario, vmas, children") in line
    assert not any(tmp_path.iterdir())          # nothing written, not even a part file


def test_every_notebook_parameter_is_known():
    for nb in NOTEBOOKS.glob("*.ipynb"):
        known = X.notebook_parameters(nb)
        assert known, nb.name
        X.check_parameters(nb, {k: None for k in known})
        with pytest.raises(UsageError, match="parameter 'nope': not a parameter of"):
            X.check_parameters(nb, {"nope": 1})


def test_make_run_refuses_unknown_parameter():
    r = subprocess.run(["make", "-s", "run", "NB=skip-ratio", "PARAMS=-p seeds 7"],
                       capture_output=True, text=True, cwd=paths.ROOT)
    assert r.returncode != 0
    assert "parameter 'seeds': not a parameter of notebooks/skip-ratio.ipynb" in r.stderr


def test_values_are_typed_like_papermill():
    assert X.parse_value("1000") == 1000 and X.parse_value("0.5") == 0.5
    assert X.parse_value("True") is True and X.parse_value("None") is None
    assert X.parse_value("10,100") == "10,100"


# --- data folders ---------------------------------------------------------------------------

def test_check_dir(tmp_path):
    assert check_dir("", "traces", tmp_path / "default") == tmp_path / "default"   # not checked
    assert check_dir(str(tmp_path), "traces", Path("x")) == tmp_path
    with pytest.raises(ValueError, match=r"parameter 'traces': no such directory: '.*/nowhere'"):
        check_dir(str(tmp_path / "nowhere"), "traces", Path("x"))
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(ValueError, match="parameter 'traces': not a directory"):
        check_dir(str(f), "traces", Path("x"))
    with pytest.raises(ValueError, match="parameter 'traces': expected a directory path"):
        check_dir(3, "traces", Path("x"))
    assert check_dir(str(tmp_path / "later"), "out", Path("x"), must_exist=False) == tmp_path / "later"


def test_notebooks_with_a_data_folder_check_it():
    """Every notebook with a ``traces`` parameter checks it with check_dir in the cell after
    ``parameters``."""
    found = []
    for nb in NOTEBOOKS.glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        i = next(i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", []))
        if "traces" in X.notebook_parameters(nb):
            found.append(nb.stem)
            assert 'check_dir(traces, "traces"' in "".join(cells[i + 1]["source"]), nb.name
    assert {"kernel-traces", "model-vs-kernel", "scaling", "claim"} <= set(found)


@pytest.mark.slow
def test_missing_traces_folder_names_parameter_and_path(tmp_path):
    missing = tmp_path / "no-such-traces"
    r = run_execute("notebooks/kernel-traces.ipynb", tmp_path / "runs", "-p", "traces", missing,
                    "--cwd", "notebooks")
    assert r.returncode == 2, r.stderr
    assert f"parameter 'traces': no such directory: '{missing}'" in r.stderr
    assert [p.name.endswith("-FAILED.ipynb") for p in (tmp_path / "runs").iterdir()] == [True]


# --- single values for list parameters ------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (1000, [1000]), ("1000", [1000]), ([1000], [1000]), ("10,100", [10, 100]),
    ([100, 10, 10], [10, 100]),
])
def test_single_value_list(value, expected):
    assert check_int_list(value, "vmas", minimum=1) == expected


@pytest.mark.parametrize("value", [True, 1.5, None, "x", -3, [1, "y"]])
def test_bad_list(value):
    with pytest.raises(ValueError, match="parameter 'vmas'"):
        check_int_list(value, "vmas", minimum=1)


def test_single_value_below_min_len():
    with pytest.raises(ValueError, match="at least 2 distinct"):
        check_int_list(1000, "vmas", minimum=2, min_len=2)


# --- output names ---------------------------------------------------------------------------

def test_output_names_are_unique(tmp_path):
    nb = NOTEBOOKS / "skip-ratio.ipynb"
    names = [X.output_names(nb, tmp_path) for _ in range(5)]     # same second, same pid
    finals = {final for _, final, _ in names}
    assert len(finals) == 5
    assert all(part.exists() and part.name.startswith(".") for part, _, _ in names)
    assert all(f"-{os.getpid()}" in f.name and f.name.startswith("skip-ratio-") for f in finals)


def test_two_runs_at_once_do_not_share_a_name(tmp_path):
    nb = tiny_notebook(tmp_path / "tiny.ipynb", "x = 1\n")
    out = tmp_path / "runs"
    procs = [subprocess.Popen([sys.executable, "-m", "rmapwalk.analysis.execute", str(nb), str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    done = sorted(p.name for p in out.iterdir())
    assert len(done) == 2 and all(n.startswith("tiny-") and n.endswith(".ipynb") for n in done)
    assert not any("FAILED" in n or n.startswith(".") for n in done)


# --- failed and interrupted runs ------------------------------------------------------------

def test_failed_run_is_renamed(tmp_path):
    nb = tiny_notebook(tmp_path / "tiny.ipynb", "if fail:\n    raise RuntimeError('boom')\n")
    out = tmp_path / "runs"
    r = run_execute(nb, out, "-p", "fail", "True")
    assert r.returncode == 1
    files = list(out.iterdir())
    assert len(files) == 1 and files[0].name.endswith("-FAILED.ipynb")
    assert "RuntimeError: boom" in r.stderr and files[0].name in r.stderr
    r = run_execute(nb, out)
    assert r.returncode == 0 and "run: " in r.stdout
    assert len([f for f in out.iterdir() if not f.name.endswith("-FAILED.ipynb")]) == 1


def test_check_cell_refusal_exits_2(tmp_path):
    nb = tiny_notebook(tmp_path / "tiny.ipynb",
                       "if fail:\n    raise ValueError(\"parameter 'fail': expected False\")\n")
    r = run_execute(nb, tmp_path / "runs", "-p", "fail", "True")
    assert r.returncode == 2 and "parameter 'fail': expected False" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_run_is_renamed(tmp_path, sig):
    started = tmp_path / "kernel.pid"   # written by the running cell: its kernel's pid
    nb = tiny_notebook(tmp_path / "tiny.ipynb",
                       f"import os, time\nopen({str(started)!r}, 'w').write(str(os.getpid()))\n"
                       "time.sleep(wait)\n")
    out = tmp_path / "runs"
    p = subprocess.Popen([sys.executable, "-m", "rmapwalk.analysis.execute", str(nb), str(out),
                          "-p", "wait", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:              # the cell runs (the part file has its
        if started.exists() and started.read_text():  # source from the start: not a sign)
            break
        time.sleep(0.2)
    else:
        p.kill()
        pytest.fail("the notebook did not start")
    p.send_signal(sig)
    rc = p.wait(timeout=60)
    err = p.stderr.read()
    assert rc == 128 + sig, err
    files = list(out.iterdir())
    assert len(files) == 1 and files[0].name.endswith("-FAILED.ipynb"), files
    assert "interrupted" in err and files[0].name in err
    # the kernel is shut down, not left computing (papermill's own command leaves it on SIGTERM)
    kernel = int(started.read_text())
    deadline = time.monotonic() + 20
    while Path(f"/proc/{kernel}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{kernel}").exists(), f"kernel {kernel} still runs"


def test_make_book_executes_notebooks_through_execute():
    """The book's notebooks run through rmapwalk.analysis.execute (a kernel ended on SIGTERM,
    failed notebooks kept out of the book), not papermill's own command."""
    r = subprocess.run(["make", "-n", "-W", "notebooks/trust.ipynb",
                        "book/_generated/trust.ipynb"], capture_output=True, text=True,
                       cwd=paths.ROOT)
    lines = [x for x in r.stdout.splitlines() if "notebooks/trust.ipynb" in x]
    assert len(lines) == 1, r.stdout + r.stderr
    assert "-m rmapwalk.analysis.execute --failed build/failed-notebooks" in lines[0]
    assert lines[0].endswith("notebooks/trust.ipynb book/_generated/trust.ipynb")


def test_explicit_output_and_failed_folder(tmp_path):
    """What the book build needs: a fixed output name, written only on success, and failed
    notebooks kept out of the book's folder."""
    nb = tiny_notebook(tmp_path / "tiny.ipynb", "if fail:\n    raise RuntimeError('boom')\n")
    book, failed = tmp_path / "book", tmp_path / "failed"
    r = run_execute(nb, book / "tiny.ipynb", "-p", "fail", "True", "--failed", failed)
    assert r.returncode == 1
    assert not book.exists() or not list(book.iterdir())
    assert [p.name for p in failed.iterdir()] == ["tiny-FAILED.ipynb"]
    r = run_execute(nb, book / "tiny.ipynb", "--failed", failed)
    assert r.returncode == 0 and [p.name for p in book.iterdir()] == ["tiny.ipynb"]
