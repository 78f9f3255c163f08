"""A VM run that times out, panics or dies leaves nothing under the output folder, and
QEMU's process group never outlives the run (SIGTERM, SIGINT, SIGKILL of the capture)."""
import argparse
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rmapwalk import paths
from rmapwalk.measure import capture, vm

SCENARIO = """
name: tiny
description: one page
steps:
  - mmap: {region: A, pages: 1}
  - fill: {region: A, byte: 1}
  - migrate: {region: A, pages: [0]}
"""

# A stand-in for qemu-system-x86_64: finds the console file (first -serial file:PATH) and
# does what FAKE_MODE says.
FAKE = """#!/bin/sh
if [ -n "$FAKE_PIDFILE" ]; then echo $$ > "$FAKE_PIDFILE.tmp"; mv "$FAKE_PIDFILE.tmp" "$FAKE_PIDFILE"; fi
console=""
prev=""
for a in "$@"; do
  if [ "$prev" = "-serial" ] && [ -z "$console" ]; then console="${a#file:}"; fi
  prev="$a"
done
case "$FAKE_MODE" in
  hang) echo "RMAPWALK-BOOTED" >> "$console"; exec sleep 60 ;;
  panic) printf 'booting\\r\\nKernel panic - not syncing: Attempted to kill init!\\r\\n' >> "$console"; exit 0 ;;
  die) echo "RMAPWALK-BOOTED" >> "$console"; exit 1 ;;
  fail) echo "rmapwalk-replayer: error: step 3 (migrate): boom" >> "$console";
        echo "RMAPWALK-EXIT status=1" >> "$console"; exit 0 ;;
esac
"""


@pytest.fixture
def setup(tmp_path, monkeypatch):
    fake = tmp_path / "fake-qemu"
    fake.write_text(FAKE)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("RMAPWALK_QEMU", str(fake))
    monkeypatch.setattr(paths, "BUILD", tmp_path / "build")
    sc = tmp_path / "tiny.yaml"
    sc.write_text(SCENARIO)
    image = tmp_path / "bzImage"
    image.write_bytes(b"not a kernel")
    out = tmp_path / "out"
    args = argparse.Namespace(scenario=str(sc), kernel="baseline", base="6.12", repeat=1, run=None, out=out,
                              timeout=3.0, accel="tcg", bzimage=image)
    return args, out, tmp_path / "build"


@pytest.mark.parametrize("mode, reason", [
    ("hang", "timeout: the VM ran longer than 3 s"),
    ("panic", "kernel panic or oops: Kernel panic - not syncing"),
    ("die", "without printing its exit status"),
    ("fail", "the replayer failed (exit status 1): rmapwalk-replayer: error: step 3"),
])
def test_failed_run_writes_nothing(setup, monkeypatch, capsys, mode, reason):
    args, out, build = setup
    monkeypatch.setenv("FAKE_MODE", mode)
    assert capture.run_capture(args) == 1
    assert not out.exists() or not any(out.rglob("*"))
    err = capsys.readouterr().err
    assert reason in err and "nothing written under" in err
    kept = list((build / "failed").glob("tiny-6.12-baseline-*"))
    assert len(kept) == 1 and (kept[0] / "console.log").exists()
    assert reason in (kept[0] / "reason.txt").read_text()
    assert not list(build.glob("vm-*"))       # scratch folders are removed


def test_vm_error_carries_console(setup, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_MODE", "panic")
    with pytest.raises(vm.VMRunError) as e:
        vm.run(tmp_path / "bzImage", "", tmp_path / "work", 5.0)
    assert "Kernel panic" in e.value.console and e.value.command[0] == os.environ["RMAPWALK_QEMU"]


# --- QEMU's process group -------------------------------------------------------------------

def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group ``pgid``."""
    out = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat_file.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(stat_file.parent.name))
    return out


def wait_gone(pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return True
        time.sleep(0.1)
    return False


# `rmapwalk capture` in a child process, with build/ redirected to a temporary folder.
CAPTURE = """
import sys
from pathlib import Path
from rmapwalk import paths
paths.BUILD = Path(sys.argv[1])
from rmapwalk import cli
sys.exit(cli.main(sys.argv[2:]))
"""


def start_capture(setup, tmp_path, timeout=120):
    args, out, build = setup
    pidfile = tmp_path / "qemu.pid"
    env = {**os.environ, "FAKE_MODE": "hang", "FAKE_PIDFILE": str(pidfile)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CAPTURE, str(build), "capture", args.scenario, "--kernel",
         args.kernel, "--base", args.base, "--bzimage", str(args.bzimage), "--out", str(out),
         "--timeout", str(timeout), "--accel", "tcg"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not pidfile.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the fake QEMU did not start: {proc.communicate()}")
        time.sleep(0.05)
    qemu = int(pidfile.read_text())
    pgid = os.getpgid(qemu)
    assert pgid != os.getpgid(proc.pid)             # QEMU has a process group of its own
    assert group_members(pgid)
    return proc, pgid, out, build


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_capture_ends_qemu_group(setup, tmp_path, sig):
    proc, pgid, out, build = start_capture(setup, tmp_path)
    time.sleep(0.5)
    proc.send_signal(sig)
    try:
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert wait_gone(pgid, 5), f"QEMU's group {pgid} is still there: {group_members(pgid)}"
    assert rc == 128 + sig, err
    assert f"interrupted by {signal.Signals(sig).name}" in err
    assert not out.exists() or not any(out.rglob("*"))
    assert not list(build.glob("vm-*"))             # the scratch folder was removed


def test_killed_capture_does_not_orphan_qemu(setup, tmp_path):
    """SIGKILL leaves Python no say: PR_SET_PDEATHSIG ends QEMU's group."""
    proc, pgid, _, _ = start_capture(setup, tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    assert wait_gone(pgid, 10), f"QEMU's group {pgid} outlived the capture: {group_members(pgid)}"


def test_qemu_has_a_hard_time_limit_of_its_own(tmp_path):
    """Even if nobody ends it, QEMU stops at its limit (coreutils timeout)."""
    assert vm.guarded_command(["qemu"], 7.2)[-2:] == ["8", "qemu"]
    proc = vm.start(["sleep", "60"], 1)
    try:
        assert proc.wait(timeout=20) == 124         # timeout(1): the command timed out
        assert wait_gone(proc.pid, 5)
    finally:
        vm.end_group(proc, grace=1)


def test_run_restores_signal_handlers(setup, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_MODE", "fail")
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with pytest.raises(vm.VMRunError):
        vm.run(tmp_path / "bzImage", "", tmp_path / "work", 5.0)
    assert {s: signal.getsignal(s) for s in before} == before


def test_timeout_ends_the_whole_group(setup, monkeypatch, tmp_path):
    pidfile = tmp_path / "qemu.pid"
    monkeypatch.setenv("FAKE_MODE", "hang")
    monkeypatch.setenv("FAKE_PIDFILE", str(pidfile))
    with pytest.raises(vm.VMRunError, match="timeout"):
        vm.run(tmp_path / "bzImage", "", tmp_path / "work", 1.0)
    assert not group_members(int(pidfile.read_text()))
