"""The mm selftests machinery without a VM: plan, guest script, output splitting, TAP counts,
the summary table and its findings, the initramfs and the compile command."""
from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rmapwalk import dataset
from rmapwalk.measure import selftests as st


def test_plan_keeps_order_and_expands_ksm_tests():
    p = st.plan(["migration", "ksm_tests", "ksm_functional_tests"])
    n = 6 * st.KSM_TESTS_ROUNDS
    assert [i.test for i in p] == ["ksm_functional_tests"] + ["ksm_tests"] * n + ["migration"]
    assert p[1].label == "ksm_tests -M -p 10 [round 1]"
    assert p[7].label == "ksm_tests -M -p 10 [round 2]"
    assert st.plan(["ksm_tests", "migration"])[0].binary == "ksm_tests"   # 6.1: no functional


def test_init_script_runs_each_invocation_with_markers():
    p = st.plan(["ksm_tests", "migration"])
    text = st.init_script(p)
    assert text.startswith("#!/bin/busybox sh\n")
    for k, inv in enumerate(p):
        assert f"{st.BEGIN} {k} {inv.label}" in text
        assert f"{st.END} {k} status=$status" in text
    assert "timeout 900 /selftests/ksm_tests -N -m 0 " in text
    assert f"{st.BEGIN} {len(p) - 2} ksm_tests -N -m 0 [round {st.KSM_TESTS_ROUNDS}]" in text
    assert text.count("echo 2 > $K/run; echo 0 > $K/run") == len(p)
    assert "RMAPWALK-EXIT status=0" in text


def test_split_output_per_invocation():
    stream = (f"noise\n{st.BEGIN} 0 ksm_tests -M -p 10\nOK\n{st.END} 0 status=0\n"
              f"{st.BEGIN} 1 ksm_tests -U\r\nfailed\r\n{st.END} 1 status=1\r\n"
              f"{st.BEGIN} 2 migration\nTAP version 13\n1..3\nok 1 a\n")
    out = st.split_output(stream)
    assert out[0] == ("OK\n", 0)
    assert out[1] == ("failed\n", 1)
    assert out[2] == ("TAP version 13\n1..3\nok 1 a\n", None)


def test_count_tap():
    text = ("TAP version 13\n1..6\nok 1 a\nnot ok 2 b\nok 3 c # SKIP no uffd\n"
            "ok 4 d # XFAIL known\n  not ok 1 nested, not counted\nnot ok 5 e # TODO later\n")
    # 5 result lines for a plan of 6: the missing one is a failure
    assert st.count_tap(text) == {"pass": 2, "fail": 2, "skip": 2, "planned": 6}
    assert st.count_tap("no tap at all\n") == {"pass": 0, "fail": 0, "skip": 0, "planned": None}


def test_ksm_tests_exit_statuses_become_tap():
    invs = st.plan(["ksm_tests"])[:4]
    text = st.tap_of_invocations([(invs[0], "ok\n", 0), (invs[1], "", st.KSFT_SKIP),
                                  (invs[2], "boom\n", 1), (invs[3], "", None)])
    assert "1..4" in text and "# boom" in text
    assert st.count_tap(text) == {"pass": 1, "fail": 2, "skip": 1, "planned": 4}
    assert "not ok 4 ksm_tests -Z -p 10 -z 1 [round 1] # did not finish" in text


def test_tap_files_keep_native_tap_and_group_ksm_tests():
    p = st.plan(["ksm_functional_tests", "ksm_tests"])
    outputs = {0: ("TAP version 13\n1..1\nok 1 x\n", 0)}
    outputs.update({k: ("", 0) for k in range(1, len(p))})
    files = st.tap_files(p, outputs)
    assert set(files) == {"ksm_functional_tests", "ksm_tests"}
    native, statuses = files["ksm_functional_tests"]
    assert native.startswith("TAP version 13\n1..1\nok 1 x\n") and statuses == [0]
    assert "exit status 0" in native
    assert st.count_tap(files["ksm_tests"][0])["pass"] == 6 * st.KSM_TESTS_ROUNDS


def _fake_result(root: Path, base: str, variant: str, results: dict, tap: str = "") -> None:
    d = root / base / variant
    d.mkdir(parents=True)
    for test in results:
        (d / f"{test}.tap").write_text(tap or "TAP version 13\n")
    dataset.write_manifest(d, {"kind": "selftests", "base": base, "variant": variant,
                               "results": results})


def test_summary_table_and_findings(tmp_path):
    ok = {"pass": 8, "fail": 0, "skip": 1, "planned": 9, "statuses": [0]}
    bad = {"pass": 7, "fail": 1, "skip": 1, "planned": 9, "statuses": [1]}
    good_tap = "1..3\nok 1 a\nok 2 b # SKIP x\nok 3 c\n"
    bad_tap = "1..3\nok 1 a\nok 2 b # SKIP x\nnot ok 3 c\n"
    _fake_result(tmp_path, "6.12", "baseline", {"ksm_functional_tests": ok}, good_tap)
    _fake_result(tmp_path, "6.12", "merged", {"ksm_functional_tests": bad}, bad_tap)
    _fake_result(tmp_path, "6.12", "patched", {"ksm_functional_tests": ok}, good_tap)
    rows = st.write_summary(tmp_path)
    assert [(r["variant"], r["fail"]) for r in rows] == [("baseline", 0), ("merged", 1),
                                                          ("patched", 0)]
    assert rows[1]["failed"] == "c" and rows[0]["passed"] == "a; c"
    assert st.findings(rows) == ["6.12/merged: ksm_functional_tests: c fails, the baseline "
                                 "passes it"]
    md = (tmp_path / "summary.md").read_text()
    assert "| ksm_functional_tests | 8/0/1 | 8/0/1 | 7/1/1 |" in md    # kernels.yaml order
    assert (tmp_path / "summary.csv").read_text().splitlines()[0] == ",".join(st.SUMMARY_COLUMNS)


def test_a_case_the_baseline_fails_once_is_not_a_finding(tmp_path):
    """ksm_tests -N -m 1 failed in one of three rounds on the baseline: flaky there."""
    r = {"pass": 2, "fail": 1, "skip": 0, "planned": 3, "statuses": [0, 1, 0]}
    base_tap = ("1..3\nok 1 ksm_tests -N -m 1 [round 1]\nnot ok 2 ksm_tests -N -m 1 [round 2] "
                "# exit status 1\nok 3 ksm_tests -U [round 1]\n")
    var_tap = ("1..3\nnot ok 1 ksm_tests -N -m 1 [round 1] # exit status 1\n"
               "not ok 2 ksm_tests -N -m 1 [round 2] # exit status 1\n"
               "not ok 3 ksm_tests -U [round 1] # exit status 1\n")
    _fake_result(tmp_path, "6.1", "baseline", {"ksm_tests": r}, base_tap)
    _fake_result(tmp_path, "6.1", "naive", {"ksm_tests": r}, var_tap)
    rows = st.summary(tmp_path)
    assert rows[0]["failed"] == "ksm_tests -N -m 1" and rows[0]["passed"] == "ksm_tests -U"
    assert st.findings(rows) == ["6.1/naive: ksm_tests: ksm_tests -U fails, the baseline "
                                 "passes it"]


def test_initramfs_holds_busybox_init_and_the_binaries(tmp_path):
    if not st.initramfs.BUSYBOX.exists():
        pytest.skip("no busybox-static")
    (tmp_path / "ksm_tests").write_bytes(b"\x7fELF fake")
    dest = st.initramfs_for(tmp_path, st.plan(["ksm_tests"]), tmp_path / "i.cpio.gz")
    raw = gzip.decompress(dest.read_bytes())
    for name in (b"selftests/ksm_tests", b"bin/busybox", b"init", b"\x7fELF fake"):
        assert name in raw
    assert b"RMAPWALK-BOOTED" in raw


def test_compile_command_follows_the_makefile(tmp_path):
    tree = tmp_path / "linux"
    d = tree / "tools/testing/selftests/vm"             # 6.1's layout
    d.mkdir(parents=True)
    (d / "vm_util.c").write_text("")
    cmd = st.compile_command(tree, tmp_path / "hdr", "migration", tmp_path / "out")
    assert cmd[:2] == ["gcc", "-static"] and "-lnuma" in cmd
    assert str(d / "vm_util.c") in cmd and not any("thp_settings" in c for c in cmd)
    assert ["-isystem", str(tmp_path / "hdr" / "include")] == cmd[cmd.index("-isystem"):][:2]
    (tree / "tools/testing/selftests/mm").mkdir()
    (tree / "tools/testing/selftests/mm/vm_util.c").write_text("")
    (tree / "tools/testing/selftests/mm/thp_settings.c").write_text("")
    cmd = st.compile_command(tree, tmp_path / "hdr", "ksm_functional_tests", tmp_path / "o")
    assert any(c.endswith("mm/thp_settings.c") for c in cmd) and "-lnuma" not in cmd


def test_a_tiny_static_selftest_compiles(tmp_path):
    """The compile command really links statically (a stand-in selftest, no kernel tree)."""
    if not shutil.which("gcc"):
        pytest.skip("no gcc")
    tree = tmp_path / "linux"
    d = tree / "tools/testing/selftests/mm"
    d.mkdir(parents=True)
    (d / "vm_util.c").write_text("int vm_util(void) { return 0; }\n")
    (d / "hello.c").write_text("#include <stdio.h>\nint main(void) { puts(\"ok 1\"); return 0; }\n")
    (tmp_path / "hdr" / "include").mkdir(parents=True)
    cmd = st.compile_command(tree, tmp_path / "hdr", "hello", tmp_path / "hello")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 and "cannot find -lc" in r.stderr:
        pytest.skip("no static libc")
    assert r.returncode == 0, r.stderr
    assert subprocess.run([str(tmp_path / "hello")], capture_output=True,
                          text=True).stdout == "ok 1\n"
    assert "statically linked" in subprocess.run(["file", str(tmp_path / "hello")],
                                                 capture_output=True, text=True).stdout \
        or not shutil.which("file")


def test_committed_selftest_data_verifies():
    """data/selftests, when committed: every folder's manifest matches its files."""
    from rmapwalk import paths
    from rmapwalk.measure import matrix
    root = paths.ROOT / "data" / "selftests"
    if not (root / "manifest.json").is_file():
        pytest.skip("no data/selftests yet")
    assert matrix.verify(root) == []
    for m in root.glob("*/*/manifest.json"):
        assert matrix.verify(m.parent) == [], m.parent
        doc = json.loads(m.read_text())
        assert doc["kind"] == "selftests" and (m.parent / "console.log.gz").is_file()


def test_count_tap_prefers_the_last_totals_line():
    """ksm_functional_tests' exec'd child prints its own totals; the parent's come last."""
    text = ("TAP version 13\n1..9\nok 1 a\nok 8 b\n# Totals: pass:7 fail:0 xfail:0 xpass:0 "
            "skip:1 error:0\nok 8 c\nok 9 d\n# # Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 "
            "error:0\n# Totals: pass:8 fail:0 xfail:0 xpass:0 skip:1 error:0\n")
    assert st.count_tap(text) == {"pass": 8, "fail": 0, "skip": 1, "planned": 9}
    text = "1..3\n# Totals: pass:1 fail:1 xfail:1 xpass:1 skip:0 error:1\n"
    assert st.count_tap(text) == {"pass": 2, "fail": 3, "skip": 0, "planned": 3}


def test_migration_boots_apart_with_three_vcpus():
    p = st.plan(["ksm_functional_tests", "ksm_tests", "migration"])
    assert {i.test: i.smp for i in p} == {"ksm_functional_tests": 1, "ksm_tests": 1,
                                          "migration": 3}
    only = {k for k, i in enumerate(p) if i.smp == 3}
    text = st.init_script(p, only)
    assert "/selftests/migration" in text and "/selftests/ksm_tests" not in text
