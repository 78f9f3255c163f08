"""A VM run that times out, panics or dies leaves nothing under the output folder."""
import argparse
import os
import stat

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
    args = argparse.Namespace(scenario=str(sc), kernel="baseline", base="6.12", repeat=1, out=out,
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
