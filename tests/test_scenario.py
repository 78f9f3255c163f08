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


def test_a_region_after_another_starts_where_its_pages_end():
    s = sc.loads(GOOD + "  - mmap: {region: B, pages: 2, after: A}\n"
                 "  - mremap: {region: A, start: 0, pages: 1, to: M}\n"
                 "  - mmap: {region: C, pages: 1, after: B}\n"
                 "  - mremap: {region: C, start: 0, pages: 1, to: A, to_page: 3}\n")
    page = sc.PAGE_SIZE
    assert s.region_addresses == {"A": sc.REGION_BASE, "B": sc.REGION_BASE + 4 * page,
                                  "M": sc.REGION_BASE + 2 * sc.REGION_STRIDE,
                                  "C": sc.REGION_BASE + 6 * page}
    assert s.regions == {"A": 4, "B": 2, "M": 1, "C": 1}    # onto A: no new region


def test_exit_rules():
    fork = GOOD + "  - fork: {children: 1}\n  - fork: {children: 1, proc: 1}\n"
    with pytest.raises(sc.ScenarioError, match="still has live children"):
        sc.loads(fork + "  - exit: {proc: 1}\n")
    ok = sc.loads(fork + "  - exit: {proc: 2}\n  - exit: {proc: 1}\n")
    assert [s.kind for s in ok.steps][-2:] == ["exit", "exit"]
    with pytest.raises(sc.ScenarioError, match="process 2 has exited"):
        sc.loads(fork + "  - exit: {proc: 2}\n  - fill: {region: A, byte: 2, proc: 2}\n")


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
    ("  - exit: {}", "process 0 cannot exit"),
    ("  - mmap: {region: B, pages: 1, after: Z}", "unknown region 'Z' for 'after'"),
    ("  - mremap: {region: A, start: 0, pages: 2, to: A, to_page: 3}",
     "destination pages [3, 5) out of range for region 'A'"),
    ("  - mremap: {region: A, start: 0, pages: 2, to: M, to_page: 1}",
     "'to_page' needs an existing target region"),
    ("  - mremap_resize: {region: A, start: 1, pages: 2, new_pages: 4}",
     "pages [1, 5) out of range for region 'A' of 4 pages"),
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


# --- duplicate keys, encoding, limits --------------------------------------------------------

@pytest.mark.parametrize("text, line, key", [
    ("name: t\nname: u\ndescription: d\nsteps: [{mmap: {region: A, pages: 1}}]\n", 2, "name"),
    (GOOD + "  - fill: {region: A, byte: 1, byte: 2}\n", 6, "byte"),
    (GOOD + "  - fill:\n      region: A\n      unique: true\n      region: A\n", 9, "region"),
    ("name: t\ndescription: d\nksm: {max_page_sharing: 2, max_page_sharing: 3}\n"
     "steps: [{mmap: {region: A, pages: 1}}]\n", 3, "max_page_sharing"),
])
def test_duplicate_keys_are_refused_with_file_line_and_key(text, line, key):
    with pytest.raises(sc.ScenarioError) as e:
        sc.loads(text, "dup.yaml")
    assert str(e.value).startswith(f"dup.yaml:{line}: duplicate key {key!r}")
    assert "\n" not in str(e.value)


def test_non_utf8_file_names_the_line_of_the_first_bad_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(GOOD.encode() + "  # caf\u00e9\n".encode("latin-1"))
    with pytest.raises(sc.ScenarioError) as e:
        sc.load(path)
    assert str(e.value).startswith(f"{path}:6: not UTF-8 text: byte 0xe9")


def test_control_character_is_one_line_error():
    with pytest.raises(sc.ScenarioError) as e:
        sc.loads(GOOD + "  # \x07\n", "ctl.yaml")
    assert str(e.value).startswith("ctl.yaml:6: not valid YAML") and "\n" not in str(e.value)


@pytest.mark.parametrize("limit, text", [
    ("pages_per_region", "  - mmap: {region: B, pages: %d}\n" % (sc.LIMITS["pages_per_region"] + 1)),
    ("total_pages", "".join("  - mmap: {region: R%d, pages: %d}\n" % (i, sc.LIMITS["pages_per_region"])
                            for i in range(sc.LIMITS["total_pages"] // sc.LIMITS["pages_per_region"]))),
    ("processes", "  - fork: {children: %d}\n" % sc.LIMITS["processes"]),
    ("page_mappings", "  - mmap: {region: B, pages: %d}\n  - fork: {children: %d}\n"
     % (sc.LIMITS["pages_per_region"], sc.LIMITS["page_mappings"] // sc.LIMITS["pages_per_region"])),
    ("regions", "".join("  - mmap: {region: R%d, pages: 1}\n" % i for i in range(sc.LIMITS["regions"]))),
    ("steps", "  - fill: {region: A, byte: 1}\n" * 5),
    ("step_pages", "  - idle: {region: A, pages: [0, 1, 2, 3, 0, 1]}\n"),
    ("bytes", "# " + "x" * sc.LIMITS["bytes"] + "\n"),
])
def test_limits_are_checked_and_named(limit, text, monkeypatch):
    # steps and step_pages at their real size take the YAML parser seconds: shrink them
    if limit in ("steps", "step_pages"):
        monkeypatch.setitem(sc.LIMITS, limit, min(sc.LIMITS[limit], 5))
    with pytest.raises(sc.ScenarioError) as e:
        sc.loads(GOOD + text, "big.yaml")
    assert f"LIMITS[{limit!r}]" in str(e.value)


def test_shipped_scenarios_are_well_within_the_limits():
    for f in sorted(paths.SCENARIOS.glob("*.yaml")):
        s = sc.load(f)
        assert max(s.regions.values()) * 10 <= sc.LIMITS["pages_per_region"], f


# --- steps the kernel refuses: StepRefused, one line, the kernel's errno ---------------------

def _refusal(body: str) -> str:
    from rmapwalk import simulate
    text = "name: t\ndescription: d\nsteps:\n  - mmap: {region: A, pages: 4}\n" + body
    with pytest.raises(simulate.StepRefused) as e:
        simulate.replay(sc.loads(text, "r.yaml"), "baseline")
    assert isinstance(e.value, sc.ScenarioError) and "\n" not in str(e.value)
    return e.value


def test_mprotect_over_a_hole_is_enomem():
    e = _refusal("  - munmap: {region: A, start: 2, pages: 1}\n"
                 "  - mprotect: {region: A, start: 0, pages: 4, prot: r}\n")
    assert (e.step, e.line, e.errno) == (3, 6, "ENOMEM")
    assert str(e) == ("r.yaml:6: step 3: mprotect: ENOMEM (the range [0, 4) of region A has a "
                      "hole at page 2 of region A; mm/mprotect.c do_mprotect_pkey)")


def test_second_mremap_of_a_moved_range_is_efault():
    e = _refusal("  - mremap: {region: A, start: 1, pages: 2, to: B}\n"
                 "  - mremap: {region: A, start: 1, pages: 1, to: C}\n")
    assert (e.step, e.errno) == (3, "EFAULT") and "mm/mremap.c vma_to_resize" in str(e)


def test_mremap_across_two_vmas_is_efault():
    e = _refusal("  - mprotect: {region: A, start: 2, pages: 1, prot: r}\n"
                 "  - mremap: {region: A, start: 1, pages: 2, to: B}\n")
    assert e.errno == "EFAULT" and "crosses the end of its VMA at page 2 of region A" in str(e)


def test_write_to_a_read_only_page_is_sigsegv():
    e = _refusal("  - mprotect: {region: A, start: 1, pages: 1, prot: r}\n"
                 "  - fill: {region: A, byte: 1}\n")
    assert e.errno == "SIGSEGV" and "page 1 of region A" in str(e)


def test_mergeable_over_holes_and_on_files_is_not_refused():
    from rmapwalk import simulate
    text = ("name: t\ndescription: d\nsteps:\n"
            "  - mmap: {region: A, pages: 4}\n"
            "  - mmap: {region: F, pages: 2, backing: file}\n"
            "  - fill: {region: A, byte: 1}\n"
            "  - fill: {region: F, byte: 1}\n"
            "  - munmap: {region: A, start: 1, pages: 1}\n"
            "  - mergeable: {region: A}\n"       # ENOMEM, applied around the hole
            "  - mergeable: {region: F}\n"       # MAP_SHARED: advice ignored, no error
            "  - ksm_merge: {full_scans: 2}\n"
            "  - migrate: {region: A, pages: all}\n"
            "  - idle: {region: A, pages: [1]}\n")
    r = simulate.replay(sc.loads(text), "baseline")
    results = [(o["page"], o["result"], o["errno"]) for o in r.outcomes]
    assert results == [(0, "moved", ""), (1, "error", "EFAULT"), (2, "moved", ""), (3, "moved", ""),
                       (1, "error", "not-present")]
    assert {w["page_type"] for w in r.walks} == {"ksm"}       # A merged around the hole
    assert all(set(o) == set(simulate.SHARED_OUTCOME_COLUMNS) for o in r.outcomes)
