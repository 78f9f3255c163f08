"""The capture workflow (workflow/Snakefile): the full data set plans as one job per run folder
(the CI dry run), and a run resumes after an interruption without redoing finished runs.  The
resume test uses a stand-in for the rmapwalk command that writes run folders the way the
capture does (no VM)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rmapwalk import dataset, paths

SNAKEMAKE = Path(sys.executable).parent / "snakemake"
SNAKEFILE = paths.ROOT / "workflow" / "Snakefile"

FAKE = """#!{python}
# A stand-in for `rmapwalk`: 'kernel build' does nothing; 'capture' writes the run folder
# (tests.fakedata.write_run) and logs the call; 'verify' is the real one.
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
args = sys.argv[1:]
with open({log!r}, "a") as f:
    f.write(" ".join(args) + "\\n")
if args[:2] == ["kernel", "build"]:
    sys.exit(0)
if args[0] == "verify":
    from rmapwalk.cli import main
    sys.exit(main(args))        # with --plan and --scenarios from the workflow
opt = dict(zip(args[2::2], args[3::2]))
from tests.fakedata import write_run
write_run(Path(opt["--out"]), Path(args[1]).stem, opt["--kernel"], int(opt["--run"]),
          base=opt["--base"], scenarios=Path(args[1]).parent)
"""


def snakemake(*args, cwd=paths.ROOT, check=True):
    return subprocess.run([str(SNAKEMAKE), "-s", str(SNAKEFILE), "--cores", "2",
                           "--resources", "kernel_build=1", *args], cwd=cwd, text=True,
                          capture_output=True, check=check)


def test_dry_run_of_the_full_data_set(tmp_path):
    r = snakemake("--dry-run", "--config", f"out={tmp_path}/traces.new", cwd=paths.ROOT)
    runs = sum(dataset.load_plan().values())
    assert re.search(rf"^capture\s+{runs}$", r.stdout, re.M), r.stdout[-2000:]


def test_unknown_kernel_in_the_plan_fails_before_any_job(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("captures:\n  - {scenarios: [ci-small], bases: ['6.12'], variants: [v9], runs: 1}\n")
    r = snakemake("--dry-run", "--config", f"out={tmp_path}/o", f"plan={plan}", check=False)
    assert r.returncode != 0 and "no variant 'v9'" in r.stdout + r.stderr


def test_interrupted_workflow_resumes_without_redoing_runs(tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "scen").mkdir(parents=True)
    scen = work / "scen" / "tiny.yaml"
    scen.write_text("name: tiny\ndescription: one page\nsteps:\n  - mmap: {region: A, pages: 1}\n")
    log = tmp_path / "calls.log"
    fake = tmp_path / "rmapwalk"
    fake.write_text(FAKE.format(python=sys.executable, root=str(paths.ROOT), log=str(log)))
    fake.chmod(0o755)
    plan = tmp_path / "plan.yaml"
    out = tmp_path / "out"
    env = {**os.environ, "RMAPWALK_ROOT": str(paths.ROOT)}

    def run(runs: int):
        plan.write_text(f"captures:\n  - {{scenarios: [tiny], bases: ['6.12'], "
                        f"variants: [baseline, patched], runs: {runs}}}\n")
        return subprocess.run(
            [str(SNAKEMAKE), "-s", str(SNAKEFILE), "--cores", "2", "--resources",
             "kernel_build=1", "--rerun-incomplete", "--config", f"out={out}", f"plan={plan}",
             f"rmapwalk={fake}", f"scenarios={work / 'scen'}"], cwd=work, env=env, text=True,
            capture_output=True)

    first = run(1)
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(captures(log)) == 2
    second = run(2)                 # the plan grew: only the two new runs are captured
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(captures(log)) == 4 and all("--run 2" in c for c in captures(log)[2:])
    shutil.rmtree(dataset.run_folder(out, "tiny", "6.12", "patched", 1))   # lost by hand
    third = run(2)                  # only that one is captured again
    assert third.returncode == 0, third.stderr[-3000:]
    assert len(captures(log)) == 5 and "--kernel patched --run 1" in captures(log)[4]
    assert dataset.verify(out, scenarios=work / "scen", plan=plan) == []
    verifies = [l for l in log.read_text().splitlines() if l.startswith("verify")]
    assert verifies and f"--plan {plan}" in verifies[-1]


def captures(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("capture")]
