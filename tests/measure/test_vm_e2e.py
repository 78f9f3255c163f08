"""End to end: capture a small scenario on the baseline and patched kernels and compare every
walk with the simulator (rmapwalk.simulate.simulate_walks).  Needs the cached kernel builds
and QEMU; run with ``pytest -m vm``."""
import argparse
import gzip
import csv
import shutil

import pytest

from rmapwalk import contract, paths, scenario
from rmapwalk import dataset, kernels, simulate
from rmapwalk.measure import capture, kernel

pytestmark = [pytest.mark.vm, pytest.mark.slow]

FALLBACK = """
name: e2e-small
description: >
  A small KSM history: 2,000 identical pages split by mprotect, a second region part of which
  mremap moves, a forked child, one merge; then migrations and idle walks of KSM pages.
ksm: {max_page_sharing: 256}
steps:
  - mmap:      {region: A, pages: 2000}
  - mmap:      {region: C, pages: 20}
  - fill:      {region: A, byte: 0xaa}
  - fill:      {region: C, byte: 0xaa}
  - mprotect:  {region: A, start: 0, pages: 1, stride: 2, prot: r}
  - fork:      {children: 1}
  - mremap:    {region: C, start: 5, pages: 10, to: B}
  - mergeable: {region: A}
  - mergeable: {region: B}
  - mergeable: {region: C}
  - mergeable: {region: A, proc: 1}
  - ksm_merge: {full_scans: 2}
  - migrate:   {region: A, pages: [1, 3]}
  - migrate:   {region: B, pages: [0]}
  - idle:      {region: A, pages: [5]}
"""

INT_COLUMNS = ("step", "page", "iterations", "skip_addr", "skip_mm", "rmap_one")


def kernel_cached(name):
    """Why the kernel cannot be booted here (not built yet), or None."""
    try:
        kernel.kernel_image(name, build=False)
    except kernel.KernelBuildError as e:
        return str(e)
    return None


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory):
    ci = paths.SCENARIOS / "ci-small.yaml"
    if ci.exists():
        return ci
    p = tmp_path_factory.mktemp("scen") / "e2e-small.yaml"
    p.write_text(FALLBACK)
    return p


def read_walks(run):
    with open(run / "walks.csv") as f:
        rows = list(csv.DictReader(f))
    return [{c: int(r[c]) if c in INT_COLUMNS else r[c] for c in contract.COLUMNS} for r in rows]


@pytest.mark.parametrize("variant", kernels.variants())
def test_capture_matches_simulation(variant, scenario_file, tmp_path):
    strategy = kernels.strategy_of()[variant]
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 not installed")
    why = kernel_cached(variant)
    if why:
        pytest.skip(f"no cached {variant} kernel: {why}")
    out = tmp_path / "out"
    base = kernels.load().default_base
    args = argparse.Namespace(scenario=str(scenario_file), kernel=variant, base=base, repeat=1, run=None,
                              out=out, timeout=1800.0, accel="tcg", bzimage=None)
    assert capture.run_capture(args) == 0
    sc = scenario.load(scenario_file)
    run = dataset.run_folder(out, sc.name, base, variant, 1)
    assert sorted(p.name for p in run.iterdir()) == [
        "console.log.gz", "manifest.json", "outcomes.csv", "trace.txt.gz", "walks.csv"]
    assert dataset.verify(out, scenarios=scenario_file.parent) == []
    measured = read_walks(run)
    assert measured, "no walks captured"
    expected = simulate.simulate_walks(sc, strategy)
    assert len(measured) == len(expected), (measured, expected)
    for i, (m, e) in enumerate(zip(measured, expected)):
        assert m == e, f"walk {i}: measured {m} != simulated {e}"


@pytest.mark.parametrize("kind", sorted(scenario.STEP_KINDS))
def test_replayer_runs_every_step_kind_on_the_kernel(kind, tmp_path):
    """The step contract on the real kernel: each kind's minimal scenario (the one the static
    contract test uses) replays in the VM, its last step is executed, and the walks equal the
    model's."""
    from tests.test_step_contract import minimal
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 not installed")
    variant = "patched"
    why = kernel_cached(variant)
    if why:
        pytest.skip(f"no cached {variant} kernel: {why}")
    sc = minimal(kind)
    path = tmp_path / f"{sc.name}.yaml"
    path.write_text(sc_text(sc))
    out = tmp_path / "out"
    base = kernels.load().default_base
    args = argparse.Namespace(scenario=str(path), kernel=variant, base=base, repeat=1, run=None, out=out,
                              timeout=600.0, accel="tcg", bzimage=None)
    assert capture.run_capture(args) == 0, f"step kind {kind!r}: the replayer run failed"
    run = dataset.run_folder(out, sc.name, base, variant, 1)
    trace = gzip.decompress((run / "trace.txt.gz").read_bytes()).decode()
    last = sc.steps[-1].index
    assert f"rmapwalk step step={last} kind={kind} " in trace and " end" in trace, \
        f"step kind {kind!r}: no step marker for step {last} in the trace"
    expected = simulate.simulate_walks(scenario.load(path), kernels.strategy_of()[variant])
    assert read_walks(run) == expected


def sc_text(sc) -> str:
    """The text of a minimal contract scenario, as tests/test_step_contract.py writes it."""
    from tests.test_step_contract import MINIMAL
    kind = sc.steps[-1].kind
    body = "".join(f"  - {s}\n" for s in MINIMAL[kind])
    return f"name: {sc.name}\ndescription: one {kind} step\nsteps:\n{body}"
