"""Boot a kernel in QEMU with the replayer initramfs and bring back the console and the trace.

One run is one boot: ``qemu-system-x86_64 -nographic -no-reboot``, ttyS0 (the console) and
ttyS1 (the trace stream, see :mod:`rmapwalk.measure.initramfs`) written to files, two NUMA
nodes by ``numa=fake=2`` on the kernel command line (CONFIG_NUMA_EMU in
kernel-config/rmapwalk.config; /init checks that node1 exists), TCG unless KVM was asked for
and a short probe boot under KVM succeeded (KVM guests have been seen to hang on the build
machine).

Every run has a timeout.  A kernel panic, a timeout, a missing exit status or trace end marker,
or a replayer that exited non-zero raises :class:`VMRunError` with the reason and the console.

QEMU never outlives its run: it starts in a process group of its own (a new session), under
coreutils ``timeout`` with a hard limit a little above the run's timeout (which holds even if
Python is killed with SIGKILL) and with ``PR_SET_PDEATHSIG`` (the group is told to stop as
soon as the Python process dies).  When the run ends, times out, fails or the Python process
gets SIGTERM or SIGINT, the whole group gets SIGTERM, then SIGKILL after
:data:`GRACE_SECONDS`; the signal then goes on as :class:`Interrupted` (a
``KeyboardInterrupt``), so the caller's clean-up runs and ``rmapwalk`` exits 128 + signal.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from rmapwalk.measure import initramfs

GRACE_SECONDS = 5.0                 # SIGTERM to QEMU's group, then SIGKILL this much later
HARD_LIMIT_MARGIN = 30.0            # QEMU's own limit: the run's timeout plus this
KILL_AFTER = 10                     # coreutils timeout: SIGKILL this long after its SIGTERM


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived during a VM run; QEMU's process group has been ended."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum



def default_qemu() -> str:
    """The QEMU binary: ``$RMAPWALK_QEMU`` (tests put a fake there) or qemu-system-x86_64."""
    return os.environ.get("RMAPWALK_QEMU", "qemu-system-x86_64")

MEMORY_MB = 1024                    # numa=fake=2: two nodes of 512 MiB
CMDLINE = "console=ttyS0 numa=fake=2 panic=-1 oops=panic loglevel=5 rdinit=/init"
PANIC_RE = re.compile(r"Kernel panic|BUG: |Oops: |general protection fault")
KVM_PROBE_TIMEOUT = 8.0


class VMRunError(RuntimeError):
    """A VM run that did not produce a complete trace; ``console`` is the guest's console."""

    def __init__(self, reason: str, console: str = "", command: list[str] | None = None):
        self.reason, self.console, self.command = reason, console, command or []
        tail = "\n".join(console.splitlines()[-15:])
        super().__init__(f"{reason}\n--- last console lines ---\n{tail}" if tail else reason)


@dataclasses.dataclass
class VMResult:
    console: str
    trace: str                 # the ttyS1 stream, BEGIN_MARK .. END_MARK lines=N
    command: list[str]
    accel: str
    boot_seconds: float | None  # host seconds from QEMU start to /init's first line
    wall_seconds: float
    guest_replay: str | None    # "t0..t1" guest uptime around the replayer


def qemu_version(qemu: str | None = None) -> str:
    qemu = qemu or default_qemu()
    try:
        out = subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    return out.stdout.splitlines()[0].strip() if out.stdout else "unknown"


def qemu_command(kernel: Path, initrd: Path, console: Path, trace: Path, accel: str,
                 append_extra: str = "", qemu: str | None = None) -> list[str]:
    append = CMDLINE + (f" {append_extra}" if append_extra else "")
    return [qemu or default_qemu(), "-accel", accel, "-m", str(MEMORY_MB), "-smp", "1",
            "-kernel", str(kernel), "-initrd", str(initrd), "-append", append,
            "-nographic", "-no-reboot", "-monitor", "none",
            "-serial", f"file:{console}", "-serial", f"file:{trace}"]


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace").replace("\r", "")
    except FileNotFoundError:
        return ""


def guarded_command(cmd: list[str], limit: float) -> list[str]:
    """``cmd`` under coreutils ``timeout``: SIGTERM after ``limit`` seconds, SIGKILL
    :data:`KILL_AFTER` seconds later, whatever happens to the Python process.  Without
    ``timeout`` on PATH, ``cmd`` itself (the group is still ended by :func:`end_group`)."""
    tool = shutil.which("timeout")
    if tool is None:
        return list(cmd)
    return [tool, f"--kill-after={KILL_AFTER}", f"{max(1, int(limit + 0.999))}", *cmd]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)          # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def start(cmd: list[str], limit: float, **popen) -> subprocess.Popen:
    """Start ``cmd`` in a new session (its own process group) with a hard time limit."""
    return subprocess.Popen(guarded_command(cmd, limit), start_new_session=True,
                            preexec_fn=_die_with_parent, **popen)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_group(proc: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """End ``proc``'s process group: SIGTERM, then SIGKILL after ``grace`` seconds; reap."""
    pgid = proc.pid                 # the session leader: its pid is the group's id
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait()


@contextlib.contextmanager
def _signals_end(proc: subprocess.Popen):
    """For the duration of the run: SIGTERM/SIGINT end QEMU's group and raise Interrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield                       # signal handlers live in the main thread only
        return

    def handler(signum, frame):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def boot(kernel: Path, initrd: Path, workdir: Path, timeout: float, accel: str = "tcg",
         append_extra: str = "", qemu: str | None = None) -> tuple[subprocess.CompletedProcess | None,
                                                            list[str], float | None, float]:
    """Run QEMU until it exits; kill it at ``timeout`` or soon after a panic.

    QEMU's whole process group is ended before this returns or raises (also on SIGTERM and
    SIGINT, which raise :class:`Interrupted`)."""
    console, trace = workdir / "console.log", workdir / "ttyS1.log"
    for p in (console, trace):
        p.write_bytes(b"")
    cmd = qemu_command(kernel, initrd, console, trace, accel, append_extra, qemu)
    t0 = time.monotonic()
    booted = panic_at = exited_at = None
    with open(workdir / "qemu.out", "wb") as out:
        proc = start(cmd, timeout + HARD_LIMIT_MARGIN, stdin=subprocess.DEVNULL, stdout=out,
                     stderr=subprocess.STDOUT)
        try:
            with _signals_end(proc):
                while proc.poll() is None:
                    time.sleep(0.2)
                    elapsed = time.monotonic() - t0
                    text = _read(console)
                    if booted is None and "RMAPWALK-BOOTED" in text:
                        booted = elapsed
                    if panic_at is None and PANIC_RE.search(text):
                        panic_at = elapsed
                    if panic_at is not None and elapsed - panic_at > 5:
                        break  # panic=-1 reboots, -no-reboot exits; give it 5 s, then stop it
                    if exited_at is None and initramfs.EXIT_MARK in text:
                        exited_at = elapsed
                    if exited_at is not None and elapsed - exited_at > 5:
                        break  # /init is done; should the reboot not end QEMU, stop it here
                    if elapsed > timeout:
                        end_group(proc)
                        raise VMRunError(f"timeout: the VM ran longer than {timeout:.0f} s",
                                         _read(console) + _read(workdir / "qemu.out"), cmd)
        finally:
            end_group(proc)         # QEMU and anything it started, whatever happened
    return proc.returncode, cmd, booted, time.monotonic() - t0


def run(kernel: Path, program: str, workdir: Path, timeout: float, accel: str = "tcg",
        qemu: str | None = None) -> VMResult:
    """Boot ``kernel`` with the replayer running ``program``; return console and trace."""
    workdir.mkdir(parents=True, exist_ok=True)
    initrd = initramfs.initramfs_for(program, workdir / "initramfs.cpio.gz")
    rc, cmd, booted, wall = boot(kernel, initrd, workdir, timeout, accel, qemu=qemu)
    console = _read(workdir / "console.log")
    qemu_out = _read(workdir / "qemu.out")
    if PANIC_RE.search(console):
        line = next(l for l in console.splitlines() if PANIC_RE.search(l))
        raise VMRunError(f"kernel panic or oops: {line.strip()}", console, cmd)
    m = re.search(re.escape(initramfs.EXIT_MARK) + r"(\d+)", console)
    if not m:
        raise VMRunError(f"the guest ended (QEMU exit status {rc}) without printing its exit "
                         f"status{': ' + qemu_out.strip() if qemu_out.strip() else ''}",
                         console, cmd)
    status = int(m.group(1))
    if status != 0:
        errors = [l for l in console.splitlines()
                  if "rmapwalk-replayer: error" in l or "RMAPWALK-ERROR" in l]
        raise VMRunError(f"the replayer failed (exit status {status}): "
                         + ("; ".join(errors) or "no message"), console, cmd)
    trace = initramfs.decode_stream(_read(workdir / "ttyS1.log"))
    if initramfs.END_MARK not in trace:
        raise VMRunError("the trace stream on ttyS1 has no end marker (truncated)", console, cmd)
    replay = re.search(r"RMAPWALK-REPLAYED seconds=(\S+)", console)
    return VMResult(console=console, trace=trace, command=cmd, accel=accel,
                    boot_seconds=booted, wall_seconds=wall,
                    guest_replay=replay.group(1) if replay else None)


def probe_kvm(kernel: Path, workdir: Path, timeout: float = KVM_PROBE_TIMEOUT,
              qemu: str | None = None) -> tuple[bool, str]:
    """Boot under KVM to /init and back; True only if that finished within ``timeout``."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not accessible"
    workdir.mkdir(parents=True, exist_ok=True)
    initrd = initramfs.initramfs_for("", workdir / "initramfs.cpio.gz")
    try:
        boot(kernel, initrd, workdir, timeout, "kvm", append_extra="rmapwalk.probe", qemu=qemu)
    except VMRunError as e:
        return False, e.reason
    if initramfs.PROBE_OK in _read(workdir / "console.log"):
        return True, "ok"
    return False, "probe boot did not reach /init: " + _read(workdir / "qemu.out").strip()[:200]


def choose_accel(option: str, kernel: Path, workdir: Path, qemu: str | None = None) -> tuple[str, str]:
    """``tcg`` -> tcg; ``kvm`` -> kvm or an error; ``auto`` -> kvm if the probe passes."""
    if option == "tcg":
        return "tcg", "asked for tcg"
    workdir.mkdir(parents=True, exist_ok=True)
    ok, why = probe_kvm(kernel, workdir, qemu=qemu)
    shutil.rmtree(workdir, ignore_errors=True)
    if ok:
        return "kvm", "kvm probe boot passed"
    if option == "kvm":
        raise VMRunError(f"--accel kvm: the KVM probe boot failed: {why}")
    return "tcg", f"kvm probe failed ({why}); using tcg"
