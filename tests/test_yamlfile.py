"""The one YAML reader (rmapwalk.yamlfile) and every file it reads: a duplicate key, text that
is not UTF-8, invalid YAML and a document nested too deeply are each one line naming the file
and line, never a traceback and never the last key silently winning."""
from __future__ import annotations

import subprocess
import sys

import pytest

from rmapwalk import dataset, kernels, paths, scenario as sc, yamlfile
from rmapwalk.measure import conditions

DEEP = "[" * 20000 + "]" * 20000


@pytest.mark.parametrize("data, line, words", [
    (b"a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a' (first given on line 1)"),
    (b"a: {x: 1, x: 2}\n", 1, "duplicate key 'x'"),
    (b"a: 1\nb: caf\xe9\n", 2, "not UTF-8 text: byte 0xe9"),
    (b"a: [1,\nb: 2\n", None, "not valid YAML"),
    (b"a: " + DEEP.encode() + b"\n", None, "nested too deeply"),
])
def test_load_names_file_and_line(tmp_path, data, line, words):
    p = tmp_path / "f.yaml"
    p.write_bytes(data)
    with pytest.raises(ValueError) as e:
        yamlfile.load(p, ValueError)
    msg = str(e.value)
    assert "\n" not in msg and words in msg
    assert msg.startswith(f"{p}:{line}: " if line else f"{p}")
    assert "<unicode string>" not in msg


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="nope.yaml: cannot read"):
        yamlfile.load(tmp_path / "nope.yaml", ValueError)


def test_kernel_list_refuses_a_duplicate_key(tmp_path):
    """A second 'strategy:' under one variant used to win silently (patched = baseline)."""
    text = kernels.KERNELS_FILE.read_text()
    assert "    strategy: pgoff\n" in text
    p = tmp_path / "kernels.yaml"
    p.write_text(text.replace("    strategy: pgoff\n", "    strategy: pgoff\n    strategy: baseline\n", 1))
    with pytest.raises(kernels.KernelListError, match=rf"^{p}:\d+: duplicate key 'strategy'"):
        kernels.load(p)


def test_dataset_plan_refuses_a_duplicate_key_and_latin1(tmp_path):
    p = tmp_path / "dataset.yaml"
    p.write_text("captures:\n  - scenarios: [ci-small]\n    bases: ['6.12']\n"
                 "    variants: [baseline]\n    runs: 8\n    runs: 3\n")
    with pytest.raises(dataset.DataIntegrityError, match=rf"{p}:6: duplicate key 'runs'"):
        dataset.load_plan(p)
    p.write_bytes(b"captures: caf\xe9\n")
    with pytest.raises(dataset.DataIntegrityError, match=rf"{p}:1: not UTF-8 text"):
        dataset.load_plan(p)


def test_setup_file_refuses_a_duplicate_key(tmp_path):
    src = paths.DATA / "conditions" / "posted-benchmark.yaml"
    p = tmp_path / "posted-benchmark.yaml"
    p.write_text(src.read_text() + "name: posted-benchmark\n")
    with pytest.raises(conditions.SpecError, match=rf"{p}:\d+: duplicate key 'name'"):
        conditions.load_spec(str(p))


def test_deeply_nested_scenario_is_one_line_exit_2(tmp_path):
    p = tmp_path / "deep.yaml"
    p.write_text("name: deep\ndescription: d\nsteps:\n  - mmap: {region: A, pages: 4}\n"
                 f"params: {DEEP}\n")
    with pytest.raises(sc.ScenarioError, match="nested too deeply"):
        sc.load(p)
    r = subprocess.run([sys.executable, "-m", "rmapwalk.cli", "simulate", str(p)],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"rmapwalk: {p}: ") and "Traceback" not in r.stderr


def test_deeply_nested_plan_is_a_verify_problem(tmp_path):
    p = tmp_path / "dataset.yaml"
    p.write_text(f"captures: {DEEP}\n")
    r = subprocess.run([sys.executable, "-m", "rmapwalk.cli", "verify", str(paths.TRACES),
                        "--plan", str(p)], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{p}: not valid YAML: nested too deeply" in r.stdout
