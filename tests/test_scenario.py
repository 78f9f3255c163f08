"""The scenario reader: every shipped scenario loads; bad ones fail with file, line, step."""
import pytest

from rmapwalk import paths
from rmapwalk import scenario as sc

GOOD = """\
name: t
description: a test
steps:
  - mmap: {region: A, pages: 4}
  - fill: {region: A, byte: 1}
"""


def test_shipped_scenarios_load():
    files = sorted(paths.SCENARIOS.glob("*.yaml"))
    names = {sc.load(f).name for f in files}
    assert {"seed-benchmark", "ksm-and-mremap", "fork-fanout", "production-v1"} <= names
    for f in files:
        assert sc.load(f).name == f.stem


def test_region_addresses_are_fixed_and_apart():
    s = sc.load(paths.SCENARIOS / "ksm-and-mremap.yaml")
    assert s.region_addresses == {"A": sc.REGION_BASE, "B": sc.REGION_BASE + sc.REGION_STRIDE}


@pytest.mark.parametrize("step, message", [
    ("  - frobnicate: {region: A}", "unknown step 'frobnicate'"),
    ("  - fill: {region: A}", "exactly one of 'byte: N' or 'unique: true'"),
    ("  - fill: {region: A, byte: 300}", "field 'byte' must be a byte value 0..255, got 300"),
    ("  - mprotect: {region: A, start: 0, pages: 1}", "missing field 'prot'"),
    ("  - mprotect: {region: A, start: 0, pages: '1', prot: r}", "field 'pages' must be a positive integer"),
    ("  - mprotect: {region: A, start: 0, pages: 1, prot: rwx}", "field 'prot' must be one of r, rw, none"),
    ("  - migrate: {region: A, pages: [9]}", "page 9 out of range for region 'A' of 4 pages"),
    ("  - munmap: {region: A, start: 3, pages: 2}", "pages [3, 5) out of range"),
    ("  - idle: {region: Z, pages: all}", "unknown region 'Z'"),
    ("  - fork: {children: 1, proc: 3}", "'proc' must be 0..0"),
    ("  - mmap: {region: A, pages: 1}", "region 'A' already exists"),
    ("  - ksm_merge: {full_scans: 2, color: red}", "unknown field 'color'"),
])
def test_bad_step_names_file_line_step_and_expectation(step, message):
    text = GOOD + step + "\n"
    with pytest.raises(sc.ScenarioError) as e:
        sc.loads(text, "bad.yaml")
    assert str(e.value).startswith("bad.yaml:6: step 3: ")
    assert message in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("text, message", [
    ("name: Bad Name\ndescription: d\nsteps: [{mmap: {region: A, pages: 1}}]\n", "'name' must match"),
    ("name: x\nsteps: [{mmap: {region: A, pages: 1}}]\n", "'description' is required"),
    ("name: x\ndescription: d\nsteps: []\n", "'steps' must be a non-empty list"),
    ("name: x\ndescription: d\nksm: {max_page_sharing: 1}\nsteps: [{mmap: {region: A, pages: 1}}]\n",
     "max_page_sharing must be an integer >= 2"),
    ("name: x\ndescription: [unclosed\n", "not valid YAML"),
])
def test_bad_top_level(text, message):
    with pytest.raises(sc.ScenarioError) as e:
        sc.loads(text, "bad.yaml")
    assert message in str(e.value) and str(e.value).startswith("bad.yaml")


def test_mprotect_stride_ranges():
    s = sc.loads(GOOD + "  - mprotect: {region: A, start: 0, pages: 1, stride: 2, prot: r}\n")
    assert sc.mprotect_ranges(s.steps[2], 4) == [(0, 1), (2, 3)]
