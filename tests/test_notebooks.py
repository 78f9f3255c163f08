"""Execute every notebook with small parameters (papermill), and check that a bad parameter
stops a notebook with a message naming it."""
from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import papermill as pm
import pytest

from rmapwalk import paths

NOTEBOOKS = paths.NOTEBOOKS
# Small parameters: each notebook in well under a minute.
SMALL = {
    "skip-ratio": {"scenario": "ci-small", "vmas": [10, 100, 1000], "children": [0, 1], "workers": 1},
    "mremap-flaw": {"pages": 24, "moves": 3, "unmoved": 4},
    "cost-model": {"vmas": [10, 100, 1000], "children": [0, 2], "workers": 1},
    # Measurement notebooks read the committed data/traces, whatever part of it is there;
    # a scenario without runs is reported by the notebook, not an error.
    "kernel-traces": {"scenarios": "ci-small,seed-benchmark", "resamples": 199},
    "model-vs-kernel": {"scenarios": "ci-small,ksm-and-mremap", "resamples": 199},
    "scaling": {"benchmark": "ci-small", "resamples": 199},
    "claim": {"vmas": [10, 100, 1000], "children": [0, 1], "resamples": 199, "workers": 1},
    "provenance": {},
    "conditions": {},
    "paths": {},
    "trust": {},
    "versions": {},
}
MEASURED = ("kernel-traces", "model-vs-kernel", "scaling", "claim", "provenance")
BAD = [
    ("skip-ratio", {"vmas": [10, -5]}, "vmas"),
    ("skip-ratio", {"scenario": "no-such-scenario"}, "scenario"),
    ("skip-ratio", {"level": 1.5}, "level"),
    ("mremap-flaw", {"pages": -1}, "pages"),
    ("mremap-flaw", {"scenario": "seed-benchmark"}, "scenario"),
    ("cost-model", {"sharers": 0}, "sharers"),
    ("cost-model", {"children": "x"}, "children"),
    ("kernel-traces", {"confidence": 1.5}, "confidence"),
    ("kernel-traces", {"scenarios": "no-such-scenario"}, "scenarios"),
    ("model-vs-kernel", {"resamples": 3}, "resamples"),
    ("scaling", {"seed": -1}, "seed"),
    ("scaling", {"benchmark": "nope"}, "benchmark"),
    ("claim", {"confidence": "high"}, "confidence"),
    ("provenance", {"resamples": "x"}, "resamples"),
    ("kernel-traces", {"include_unverified": "maybe"}, "include_unverified"),
    ("scaling", {"traces": "/no/such/folder"}, "traces"),
    ("conditions", {"conditions": "/no/such/folder"}, "conditions"),
    ("conditions", {"include_unverified": "maybe"}, "include_unverified"),
    ("paths", {"runs_dir": "/nonexistent"}, "runs_dir"),
    ("trust", {"campaign": "no-such-campaign"}, "campaign"),
    ("trust", {"fuzz_data": "/no/such/folder"}, "fuzz_data"),
    ("versions", {"kernels_data": "/no/such/folder"}, "kernels_data"),
    ("versions", {"selftests_data": "/no/such/folder"}, "selftests_data"),
]


def execute(name: str, out_dir: Path, cache: Path, **params) -> Path:
    out = out_dir / f"{name}.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out),
                        parameters={**SMALL[name], "cache": str(cache), **params},
                        kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False)
    return out


def glued(path: Path) -> dict:
    """name -> text/plain of every myst_nb glue output of an executed notebook."""
    out = {}
    for cell in json.loads(path.read_text())["cells"]:
        for o in cell.get("outputs", []):
            book = o.get("metadata", {}).get("scrapbook", {})
            if book.get("name"):
                out[book["name"]] = o.get("data", {}).get(book.get("mime_prefix", "") + "text/plain")
    return out


def test_committed_without_outputs():
    for nb in NOTEBOOKS.glob("*.ipynb"):
        doc = json.loads(nb.read_text())
        tagged = [c for c in doc["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb.name}: expected one cell tagged 'parameters'"
        for c in doc["cells"]:
            if c["cell_type"] == "code":
                assert not c["outputs"] and c["execution_count"] is None, f"{nb.name}: outputs committed"
                assert not DEFINITION.search(source(c)), \
                    f"{nb.name}: definitions belong in rmapwalk.analysis:\n{source(c)}"


def source(cell) -> str:
    """A cell's text: nbformat stores it as one string or as a list of lines."""
    s = cell["source"]
    return s if isinstance(s, str) else "".join(s)


DEFINITION = re.compile(r"^\s*(async\s+def|def|class)\s+\w", re.M)


# --- tables that would show nothing ------------------------------------------------------
# Jupyter displays only a cell's *last* expression: a table expression followed by another
# statement (e.g. `table` then `plt.close("all")`) is computed and never shown.  Calls whose
# value is a table (or a formatted table) count as table expressions; calls made for their
# side effect (display, glue, plt.close, ...) do not.
TABLE_CALLS = {"show", "Markdown", "pivot_table", "head", "tail", "unstack", "to_markdown",
               "style", "describe", "DataFrame", "set_index", "rename", "sort_values"}
SIDE_EFFECT_CALLS = {"display", "glue", "print", "close", "savefig", "run_all", "write_text"}


def _call_name(node) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def shows_a_table(stmt) -> bool:
    """A top-level statement whose value Jupyter would display if it were the cell's last."""
    if not isinstance(stmt, ast.Expr):
        return False
    v = stmt.value
    if isinstance(v, ast.Constant):     # a docstring-like string
        return False
    if isinstance(v, ast.Call):
        return _call_name(v) in TABLE_CALLS
    return True


def lost_tables(code: str) -> list[str]:
    """The table expressions of a cell that are not its last statement (shown by nothing)."""
    body = ast.parse(code).body
    return [ast.unparse(s) for s in body[:-1] if shows_a_table(s)]


def test_lost_table_check_sees_the_pattern():
    assert lost_tables('table\nplt.close("all")') == ["table"]
    assert lost_tables('T.show(t)\nplt.close("all")') == ["T.show(t)"]
    assert lost_tables('plt.close("all")\ntable') == []
    assert lost_tables('display(t)\nglue("x", 1, display=False)\nt') == []


def test_no_table_is_lost():
    """No cell of any notebook computes a table and then hides it behind another statement."""
    for nb in NOTEBOOKS.glob("*.ipynb"):
        for c in json.loads(nb.read_text())["cells"]:
            if c["cell_type"] == "code":
                lost = lost_tables(source(c))
                assert not lost, f"{nb.name}: shows nothing for {lost} (not the cell's last statement)"


def assert_tables_shown(path: Path) -> None:
    """Every cell of an executed notebook whose last statement is a table expression has an
    output: a table that rendered to nothing would fail here."""
    for c in json.loads(path.read_text())["cells"]:
        if c["cell_type"] != "code" or not source(c).strip():
            continue
        body = ast.parse(source(c)).body
        if body and shows_a_table(body[-1]):
            shown = [o for o in c.get("outputs", []) if o.get("output_type") in
                     ("execute_result", "display_data") and o.get("data")]
            assert shown, f"{path.name}: cell ending with {ast.unparse(body[-1])!r} showed nothing"


def test_definition_check_sees_both_source_forms():
    for form in ("x = 1\ndef f():\n    pass\n", ["x = 1\n", "def f():\n", "    pass\n"],
                 ["class A:\n", "    pass\n"]):
        assert DEFINITION.search(source({"source": form})), form
    assert not DEFINITION.search(source({"source": ["undefined = 1\n", "# def in a comment\n"]}))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs(name, tmp_path):
    out = execute(name, tmp_path, tmp_path / "cache")
    values = glued(out)
    assert values, f"{name}: nothing glued"
    assert_tables_shown(out)
    if name == "skip-ratio":
        assert float(values["skip_pct"]) >= 99.9           # ci-small: 2,000 VMAs
        assert float(values["pgoff_iter"]) < float(values["base_iter"])
    if name == "mremap-flaw":
        assert int(values["naive_failed"]) > 0
        assert int(values["pgoff_failed"]) == 0 and int(values["pgoff_missed"]) == 0
    if name == "cost-model":
        assert float(values["base_slope"]) > 1 and float(values["pgoff_r2"]) > 0.9
    if name == "model-vs-kernel":
        # the committed data set: the model equals the kernel on every walk
        assert int(values["walks_compared"]) > 0
        assert int(values["n_disagree"]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", MEASURED)
def test_measurement_notebook_without_data(name, tmp_path):
    """No runs at all: the notebook says so and still runs to the end."""
    empty = tmp_path / "traces"
    empty.mkdir()
    out = execute(name, tmp_path, tmp_path / "cache", traces=str(empty))
    outputs = json.dumps([c.get("outputs", []) for c in json.loads(out.read_text())["cells"]]).lower()
    assert any(s in outputs for s in ("no runs", "no data", "not both there", "no baseline")), \
        f"{name}: nothing in the output says the data is absent"


@pytest.mark.slow
@pytest.mark.parametrize("name,params,parameter", BAD, ids=[f"{n}-{p}" for n, _, p in BAD])
def test_bad_parameter_names_it(name, params, parameter, tmp_path):
    with pytest.raises(pm.PapermillExecutionError) as err:
        execute(name, tmp_path, tmp_path / "cache", **params)
    assert err.value.ename == "ValueError"
    assert f"parameter '{parameter}'" in err.value.evalue


@pytest.mark.slow
def test_tampered_data_fails_the_notebook(tmp_path):
    """A truncated walks.csv in a copy of the committed data set: the notebook stops, naming
    the file, instead of publishing shifted numbers."""
    traces = tmp_path / "traces"
    shutil.copytree(paths.TRACES, traces)
    shutil.copy(paths.DATA / "dataset.yaml", traces / "dataset.yaml")
    victim = next(traces.glob("seed-benchmark/*/baseline/run-1/walks.csv"))
    victim.write_bytes(victim.read_bytes()[:-40])
    with pytest.raises(pm.PapermillExecutionError) as err:
        execute("kernel-traces", tmp_path, tmp_path / "cache", traces=str(traces))
    assert err.value.ename == "DataIntegrityError"
    assert str(victim) in err.value.evalue


@pytest.mark.slow
def test_unverified_runs_only_when_asked_and_then_the_page_says_so(tmp_path):
    traces = tmp_path / "traces"
    shutil.copytree(paths.TRACES, traces)
    shutil.copy(paths.DATA / "dataset.yaml", traces / "dataset.yaml")
    victim = next(traces.glob("ci-small/*/baseline/run-1/walks.csv"))
    victim.write_bytes(victim.read_bytes() + b"\n")
    out = execute("kernel-traces", tmp_path, tmp_path / "cache", traces=str(traces),
                  include_unverified=True)
    shown = json.dumps([c.get("outputs", []) for c in json.loads(out.read_text())["cells"]])
    assert "unverified" in shown and victim.name in shown
