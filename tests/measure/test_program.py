"""Scenario -> replayer program, and the C replayer itself (built with -Werror, run on the host
for the steps that need no special kernel: mmap, fill, mprotect, fork, mremap, munmap, idle
into a stand-in bitmap)."""
import shutil
import subprocess

import pytest

from rmapwalk import scenario
from rmapwalk.measure import initramfs, program

SEED = """
name: seed
description: the v4 benchmark, small
ksm: {max_page_sharing: 128}
steps:
  - mmap:      {region: A, pages: 8}
  - fill:      {region: A, byte: 0xaa}
  - mprotect:  {region: A, start: 0, pages: 1, stride: 2, prot: r}
  - mergeable: {region: A}
  - ksm_merge: {full_scans: 2}
  - migrate:   {region: A, pages: [1]}
"""

HOST = """
name: host-run
description: steps a host kernel can run without KSM, NUMA or page_idle
steps:
  - mmap:      {region: A, pages: 32}
  - mmap:      {region: "file region", pages: 4, backing: file}
  - fill:      {region: A, unique: true}
  - fill:      {region: "file region", byte: 7}
  - mprotect:  {region: A, start: 1, pages: 2, stride: 4, prot: none}
  - fork:      {children: 2}
  - fork:      {children: 1, proc: 2}
  - mremap:    {region: A, start: 8, pages: 4, to: B, proc: 3}
  - munmap:    {region: A, start: 20, pages: 2, proc: 1}
  - fill:      {region: B, start: 0, pages: 1, byte: 1, proc: 3}
  - idle:      {region: A, pages: [0, 4], proc: 1}
  - idle:      {region: "file region", pages: all, proc: 3}
"""


def test_seed_program():
    text = program.compile_program(scenario.loads(SEED))
    lines = text.splitlines()
    assert lines[0] == "rmapwalk-program 1" and lines[-1] == "end"
    assert "procs 1" in lines and "ksm 128 100000 120 3600000" in lines
    assert f"region 0 A 8 {program.REGION_BASE:#x} anon" in lines
    assert [l for l in lines if l.startswith("mprotect")] == [
        "mprotect 0 0 1 r", "mprotect 0 2 1 r", "mprotect 0 4 1 r", "mprotect 0 6 1 r"]
    assert lines[lines.index("step 6 0 migrate") + 1] == "migrate 0 1"
    assert "ksm_merge 2" in lines and "mergeable 0 0" in lines


def test_processes_regions_and_holes():
    sc = scenario.loads(HOST)
    assert program.process_parents(sc) == {1: 0, 2: 0, 3: 2}
    lines = program.compile_program(sc).splitlines()
    assert "procs 4" in lines and "parent 3 2" in lines
    assert "region 1 file%20region 4 0x110000000000 file" in lines
    assert "region 2 B 4 0x120000000000 anon" in lines       # mremap target, own region
    assert "fork 1 2" in lines and "fork 3 1" in lines
    assert "mremap 0 8 4 2" in lines
    assert [l for l in lines if l.startswith("idle 1")] == [f"idle 1 {p}" for p in range(4)]


def test_mergeable_after_munmap_expects_holes():
    sc = scenario.loads(SEED.replace("  - mergeable: {region: A}",
                                     "  - munmap: {region: A, start: 3, pages: 1}\n"
                                     "  - fork: {children: 1}\n"
                                     "  - mergeable: {region: A, proc: 1}"))
    assert "mergeable 0 1" in program.compile_program(sc).splitlines()


def test_too_big_region():
    """The scenario reader's limit keeps regions inside the replayer's layout."""
    with pytest.raises(scenario.ScenarioError, match="LIMITS\\['pages_per_region'\\]"):
        scenario.loads(SEED.replace("pages: 8}", f"pages: {program.REGION_STRIDE // 4096 + 1}}}"))
    assert scenario.LIMITS["pages_per_region"] * 4096 <= program.REGION_STRIDE


@pytest.fixture(scope="module")
def replayer(tmp_path_factory):
    if not shutil.which("gcc") or not shutil.which("make"):
        pytest.skip("gcc/make not installed")
    return initramfs.build_replayer(tmp_path_factory.mktemp("replayer") / "replayer")


def test_replayer_compiles_with_werror(replayer):
    make = (initramfs.REPLAYER_DIR / "Makefile").read_text()
    assert "-Werror" in make and "-static" in make
    assert replayer.stat().st_size > 100_000       # static


def run_on_host(replayer, tmp_path, text):
    prog = tmp_path / "program.txt"
    prog.write_text(text)
    markers = tmp_path / "markers"
    markers.write_text("")
    files = tmp_path / "files"
    files.mkdir(exist_ok=True)
    bitmap = tmp_path / "bitmap"
    bitmap.write_bytes(b"")
    ksm = tmp_path / "ksm"            # stands in for /sys/kernel/mm/ksm: knobs get written
    ksm.mkdir(exist_ok=True)
    for knob in ("run", "max_page_sharing", "sleep_millisecs", "pages_to_scan",
                 "stable_node_chains_prune_millisecs"):
        (ksm / knob).write_text("0\n")
    r = subprocess.run([str(replayer), "-m", str(markers), "-k", str(ksm),
                        "-f", str(files), "-i", str(bitmap), str(prog)],
                       capture_output=True, text=True, timeout=60)
    return r, markers.read_text().splitlines()


def test_replayer_runs_steps_on_host(replayer, tmp_path):
    r, markers = run_on_host(replayer, tmp_path, program.compile_program(scenario.loads(HOST)))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ksm" / "max_page_sharing").read_text() == "256\n"
    assert markers[0] == "rmapwalk step step=1 kind=mmap proc=0 begin"
    assert markers[-1] == "rmapwalk done scenario=host-run steps=12"
    pages = [m for m in markers if m.startswith("rmapwalk page")]
    assert pages[:2] == ["rmapwalk page step=11 kind=idle region=A page=0 proc=1",
                         "rmapwalk page step=11 kind=idle region=A page=4 proc=1"]
    assert pages[2] == "rmapwalk page step=12 kind=idle region=file%20region page=0 proc=3"
    outcomes = [m for m in markers if m.startswith("rmapwalk outcome")]
    assert len(outcomes) == 6 and all("result=" in m for m in outcomes)


def test_replayer_reports_a_fault(replayer, tmp_path):
    bad = HOST.replace("  - fill:      {region: B, start: 0, pages: 1, byte: 1, proc: 3}",
                       "  - fill:      {region: A, start: 1, pages: 1, byte: 1, proc: 3}")
    r, markers = run_on_host(replayer, tmp_path, program.compile_program(scenario.loads(bad)))
    assert r.returncode == 1
    assert "step 10: process 3 got signal 11" in r.stderr
    assert "process 3 died during step 10" in r.stderr
    assert markers[-1] == "rmapwalk error step=10 errno=SIGSEGV"   # trace.py: the refusal


def test_replayer_rejects_a_broken_program(replayer, tmp_path):
    text = program.compile_program(scenario.loads(HOST)).replace("mremap 0 8 4 2", "mremap 0 8")
    r, _ = run_on_host(replayer, tmp_path, text)
    assert r.returncode == 2 and "malformed 'mremap' op" in r.stderr
    r, _ = run_on_host(replayer, tmp_path, text.replace("\nend\n", "\n"))
    assert r.returncode == 2
