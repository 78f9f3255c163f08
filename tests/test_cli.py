"""The command line: simulate's JSON and walks CSV, and exit status 2 for bad input."""
import csv
import json
import subprocess
import sys

from rmapwalk import paths
from rmapwalk.walks import COLUMNS


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
    assert tuple(rows[0])[:len(COLUMNS)] == COLUMNS and "strategy" in rows[0]
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
    assert r.returncode == 2 and "step 3 (fill): write to read-only page" in r.stderr


def test_unknown_scenario_name_exits_2():
    r = run("simulate", "no-such-scenario")
    assert r.returncode == 2 and "no-such-scenario.yaml: cannot read" in r.stderr
