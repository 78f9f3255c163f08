"""The command line: simulate's JSON and walks CSV, and exit status 2 for bad input."""
import csv
import json
import os
import subprocess
import sys

import pytest

from rmapwalk import cli, paths
from rmapwalk.contract import COLUMNS, SIMULATED_COLUMNS
from rmapwalk.model.ksm import STRATEGIES
from rmapwalk.outputs import UsageError, check_output_dir, check_output_file


def run(*args):
    return subprocess.run([sys.executable, "-m", "rmapwalk.cli", *args], capture_output=True,
                          text=True, cwd=paths.ROOT)


def test_simulate_json_and_walks(tmp_path):
    out = tmp_path / "walks.csv"
    r = run("simulate", "ksm-and-mremap", "--json", "--walks", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["scenario"] == "ksm-and-mremap"
    assert set(doc["strategies"]) == {"baseline", "naive", "pgoff"}
    for s in doc["strategies"].values():
        assert set(s) == {"walks", "iterations", "skip_addr", "skip_mm", "rmap_one", "missed", "skip_ratio"}
        assert s["skip_ratio"] == (s["skip_addr"] / s["iterations"] if s["iterations"] else 0)
    assert doc["strategies"]["naive"]["missed"] > 0 and doc["strategies"]["pgoff"]["missed"] == 0
    rows = list(csv.DictReader(out.open()))
    assert tuple(rows[0]) == (*COLUMNS, *SIMULATED_COLUMNS)
    assert len(rows) == sum(s["walks"] for s in doc["strategies"].values())


def test_seed_benchmark_reproduces_the_kernel_walks():
    """The real 6.12 kernel's walk counts for the seed benchmark (SCENARIOS.md)."""
    r = run("simulate", "seed-benchmark", "--strategy", "baseline", "--walks", "-")
    rows = list(csv.DictReader(r.stdout.splitlines()))
    assert [(w["reason"], int(w["iterations"])) for w in rows] == [
        ("migrate_unmap", 5_100_001), ("migrate_remap", 10_240_000)]


def test_bad_scenario_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndescription: d\nsteps:\n  - mmap: {region: A, pages: 2}\n"
                   "  - migrate: {region: A, pages: [7]}\n")
    r = run("simulate", str(bad))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert f"{bad}:5: step 2: migrate: page 7 out of range" in r.stderr


def test_model_refusal_exits_2(tmp_path):
    bad = tmp_path / "ro.yaml"
    bad.write_text("name: ro\ndescription: d\nsteps:\n  - mmap: {region: A, pages: 2}\n"
                   "  - mprotect: {region: A, start: 0, pages: 2, prot: r}\n"
                   "  - fill: {region: A, byte: 1}\n")
    r = run("simulate", str(bad))
    one_line_exit_2(r, "step 3", "fill")     # the scenario reader or the model refuses it


def test_unknown_scenario_name_exits_2():
    r = run("simulate", "no-such-scenario")
    assert r.returncode == 2 and "no-such-scenario.yaml: cannot read" in r.stderr


def one_line_exit_2(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.strip().count("\n") == 0, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


# --- output paths: checked before any work --------------------------------------------------

def test_walks_to_a_folder(tmp_path):
    one_line_exit_2(run("simulate", "ci-small", "--walks", str(tmp_path)),
                    f"--walks {tmp_path}: is a folder")


def test_walks_in_a_missing_folder(tmp_path):
    dest = tmp_path / "nowhere" / "walks.csv"
    one_line_exit_2(run("simulate", "ci-small", "--walks", str(dest)),
                    f"--walks {dest}: its folder {dest.parent} does not exist")


def test_walks_where_nothing_can_be_written(tmp_path):
    if os.geteuid() == 0:
        dest = "/proc/rmapwalk-walks.csv"       # root may write anywhere but here
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        dest = str(ro / "walks.csv")
    one_line_exit_2(run("simulate", "ci-small", "--walks", dest), f"--walks {dest}: cannot create")


def test_walks_checked_before_the_scenario_runs(tmp_path):
    """A bad output fails even for a scenario that would take minutes."""
    r = run("simulate", "seed-benchmark", "--walks", str(tmp_path))
    one_line_exit_2(r, "--walks")
    assert r.stdout == ""


def test_walks_to_stdout_is_fine():
    r = run("simulate", "ci-small", "--strategy", "pgoff", "--walks", "-")
    assert r.returncode == 0 and r.stdout.startswith(",".join((*COLUMNS, *SIMULATED_COLUMNS)))


def test_bench_out_to_a_folder(tmp_path):
    r = run("bench", "--scale", "0.01", "--walk", "migrate-one", "--out", str(tmp_path))
    one_line_exit_2(r, f"--out {tmp_path}: is a folder")
    assert r.stdout == ""                       # nothing ran


def test_bench_out_in_a_missing_folder(tmp_path):
    dest = tmp_path / "no" / "bench.csv"
    one_line_exit_2(run("bench", "--scale", "0.01", "--out", str(dest)), "--out", str(dest.parent))


def test_bench_out_appends(tmp_path):
    dest = tmp_path / "bench.csv"
    for _ in range(2):
        r = run("bench", "--scale", "0.01", "--walk", "migrate-one", "--out", str(dest))
        assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(dest.open()))
    assert len(rows) == 2 * len(STRATEGIES) and {r["pages"] for r in rows} == {"200"}


def test_output_checks(tmp_path):
    assert check_output_file("-", "--walks").name == "-"
    assert check_output_file(tmp_path / "new.csv", "--walks") == tmp_path / "new.csv"
    assert not (tmp_path / "new.csv").exists() and not list(tmp_path.iterdir())
    f = tmp_path / "exists.csv"
    f.write_text("keep")
    check_output_file(f, "--out")
    assert f.read_text() == "keep"               # checked, not truncated
    with pytest.raises(UsageError, match="--out : expected|--out: expected"):
        check_output_file("", "--out")
    with pytest.raises(UsageError, match=f"--out {f}: is a file, expected a folder"):
        check_output_dir(f, "--out")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        check_output_dir(f / "sub" / "dir", "--out")
    assert check_output_dir(tmp_path / "a" / "b", "--out") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()         # nothing created by the check


# --- bench --scale --------------------------------------------------------------------------

@pytest.mark.parametrize("scale", ["0", "-1", "nan", "inf", "-inf", "abc", "1e-9", "0.00005"])
def test_bench_bad_scale(scale):
    r = run("bench", "--walk", "migrate-one", f"--scale={scale}")
    one_line_exit_2(r, f"--scale {scale}:", "expected a finite number > 0")
    assert r.stdout == ""


def test_bench_bad_scale_checked_before_the_first_run():
    r = run("bench", "--scale", "0.01", "--scale", "0")
    one_line_exit_2(r, "--scale 0:")
    assert r.stdout == ""


def test_bench_fractional_scale():
    """A fractional factor once made an invalid scenario name."""
    r = run("bench", "--scale", "0.005", "--walk", "migrate-one")
    assert r.returncode == 0, r.stderr
    assert len([l for l in r.stdout.splitlines() if l.split()[:2] == ["0.005", "100"]]) == 3


# --- strategies and errors ------------------------------------------------------------------

def test_strategy_choices_are_the_models():
    r = run("simulate", "ci-small", "--strategy", "nope")
    assert r.returncode == 2
    for s in (*STRATEGIES, "all"):
        assert repr(s) in r.stderr


def test_usage_error_in_a_command_exits_2(monkeypatch, capsys):
    def boom(args):
        raise UsageError("--x y: expected z")
    monkeypatch.setattr(cli, "cmd_bench", boom)
    assert cli.main(["bench"]) == 2
    assert capsys.readouterr().err == "rmapwalk: --x y: expected z\n"


def test_other_errors_are_not_swallowed(monkeypatch):
    def boom(args):
        raise RuntimeError("a bug")
    monkeypatch.setattr(cli, "cmd_bench", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["bench"])


@pytest.mark.parametrize("command", [["simulate", "ci-small"], ["verify"], ["kernel", "list"]])
@pytest.mark.parametrize("edit", [
    lambda t: t.replace("\n  patched:\n", "\n  patchedx:\n", 1),      # a series names no variant
    lambda t: "variants: [\n",                                        # not YAML
])
def test_a_broken_kernel_list_is_one_line_exit_2(tmp_path, monkeypatch, capsys, command, edit):
    """Every command reads kernel-config/kernels.yaml (the options' choices come from it): a
    broken one was a KernelListError traceback, even for simulate."""
    from rmapwalk import kernels
    text = kernels.KERNELS_FILE.read_text()
    assert "\n  patched:\n" in text
    broken = tmp_path / "kernels.yaml"
    broken.write_text(edit(text))
    monkeypatch.setattr(kernels, "KERNELS_FILE", broken)
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rmapwalk: {broken}") and err.count("\n") == 1, err
