"""capture refuses bad input before it boots anything, and never mixes two texts of a
scenario under one name."""
from __future__ import annotations

import argparse

import pytest

from rmapwalk import paths
from rmapwalk.measure import capture, vm
from tests.fakedata import use_scenarios, write_run

SCENARIO = """name: tiny
description: one page
steps:
  - mmap: {region: A, pages: 1}
  - fill: {region: A, byte: 1}
  - migrate: {region: A, pages: [0]}
"""


@pytest.fixture
def args(tmp_path, monkeypatch):
    def no_vm(*a, **k):
        raise AssertionError("a VM was started although the input is bad")
    monkeypatch.setattr(vm, "run", no_vm)
    monkeypatch.setattr(paths, "BUILD", tmp_path / "build")
    sc = tmp_path / "tiny.yaml"
    sc.write_text(SCENARIO)
    image = tmp_path / "bzImage"
    image.write_bytes(b"not a kernel")
    return argparse.Namespace(scenario=str(sc), kernel="baseline", base="6.12", repeat=1, run=None,
                              out=tmp_path / "out", timeout=60.0, accel="tcg", bzimage=image)


def test_out_is_a_file(args, capsys):
    args.out.write_text("x")
    assert capture.run_capture(args) == 2
    assert f"--out {args.out}: is a file" in capsys.readouterr().err


@pytest.mark.parametrize("field,value,message", [
    ("repeat", 0, "--repeat 0"), ("timeout", -1.0, "--timeout -1.0"),
    ("timeout", float("nan"), "--timeout nan"),
    ("timeout", float("inf"), "--timeout inf: expected a finite number of seconds > 0")])
def test_bad_numbers(args, capsys, field, value, message):
    setattr(args, field, value)
    assert capture.run_capture(args) == 2
    assert message in capsys.readouterr().err


def test_unknown_base(args, capsys):
    args.base = "2.6"
    assert capture.run_capture(args) == 2
    assert "no base '2.6'" in capsys.readouterr().err


def test_edited_scenario_is_not_added_to_old_runs(args, tmp_path, monkeypatch, capsys):
    scenarios = use_scenarios(monkeypatch, tmp_path / "scenarios")
    (scenarios / "tiny.yaml").write_text(SCENARIO.replace("one page", "an older text"))
    old = write_run(args.out, "tiny", "baseline", 1)       # captured from the older text
    assert capture.run_capture(args) == 2
    err = capsys.readouterr().err
    assert str(old / "manifest.json") in err and "another text of scenario 'tiny'" in err


def test_failure_folders_are_unique(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "BUILD", tmp_path / "build")
    work = tmp_path / "work"
    work.mkdir()
    (work / "console.log").write_text("boom")
    a = capture._keep_failure("tiny", "6.12-baseline", work, "first")
    b = capture._keep_failure("tiny", "6.12-baseline", work, "second")
    assert a != b and (a / "reason.txt").read_text() == "first\n"
    assert (b / "reason.txt").read_text() == "second\n"


def test_run_number_taken(args, tmp_path, monkeypatch, capsys):
    scenarios = use_scenarios(monkeypatch, tmp_path / "scenarios")
    (scenarios / "tiny.yaml").write_text(SCENARIO)
    taken = write_run(args.out, "tiny", "baseline", 2)
    args.run = 2
    assert capture.run_capture(args) == 2
    assert f"--run 2: {taken} exists already" in capsys.readouterr().err
    args.run, args.repeat = 3, 2
    assert capture.run_capture(args) == 2
    assert "with --repeat 1" in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["conditions", "capture", "posted-benchmark", "--kernel", "baseline"],
    ["paths", "capture", "reclaim", "--kernel", "baseline-paths"],
    ["programs", "capture", "ci-python", "--kernel", "baseline"],
    ["kernel", "selftests", "--kernel", "baseline"],
])
@pytest.mark.parametrize("value", ["inf", "nan", "0"])
def test_every_guest_command_refuses_a_timeout_without_a_limit(tmp_path, monkeypatch, capsys,
                                                              command, value):
    """--timeout inf passed the check (inf > 0) and failed at the boot with a traceback
    (OverflowError in the QEMU guard); kernel selftests did not check --timeout at all."""
    from rmapwalk import cli
    from rmapwalk.measure import kernel, selftests

    def no_work(*a, **k):
        raise AssertionError("work started although the input is bad")
    monkeypatch.setattr(vm, "start", no_work)
    monkeypatch.setattr(kernel, "kernel_image", no_work)
    monkeypatch.setattr(selftests, "run_one", no_work)
    assert cli.main([*command, "--timeout", value, "--out", str(tmp_path / "out")]) == 2
    assert f"--timeout {float(value)}" in capsys.readouterr().err
