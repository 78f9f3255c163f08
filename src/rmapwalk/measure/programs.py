"""``rmapwalk programs capture``: KSM rmap walks of real programs (issue 11).

A *workload* (``data/workloads/<name>.yaml``) is a real program from Debian that nobody here
wrote (javac, python3 -m compileall, nginx), started KSM-mergeable by a small static launcher
(``measure/launcher/launcher.c``: ``prctl(PR_SET_MEMORY_MERGE, 1)``, then ``execvp``).

One run is one boot of a kernel of ``kernel-config/kernels.yaml`` in QEMU (TCG, ``-m 2048``,
``numa=fake=2``) with the host's root file system shared read-only over virtio-9p
(``-virtfs local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap``).
The guest's /init (a busybox initramfs of our own, built here from
:func:`rmapwalk.measure.initramfs.cpio_archive`) mounts it, mounts proc, sys, dev and tmpfs
paths (``/tmp``, ``/run``, ``/var/tmp``, ``/dev/shm``) inside it, brings up loopback and then:

1. runs the workload's ``setup`` lines in the chroot (unpacking sources into tmpfs, writing a
   config), sets ksmd to ``pages_to_scan``/``sleep_millisecs``, turns tracing on (only the
   ``rmap:rmap_walk`` event and the markers) and starts ksmd (``run=1``);
2. starts the program under the launcher (``chroot /newroot launcher exec COMMAND``) with the
   workload's environment; a ``load`` (e.g. busybox wget against nginx) runs beside it;
3. after ``warmup_seconds`` stops the load and freezes the program's whole process tree
   (SIGSTOP): the *defined point* at which it is measured;
4. lets ksmd merge until ``full_scans`` has grown by ``merge.full_scans`` (or
   ``merge.max_seconds`` passed), then stops ksmd (``run=0``: merged pages stay merged);
5. records per process ``/proc/PID/maps``, ``ksm_stat``, ``numa_maps``, and
   ``/sys/kernel/mm/ksm/*`` and ``/proc/vmstat``;
6. triggers the walks the kernel makes in production, per process of the tree: ``migrate``
   (``migrate_pages(pid, {0,1}, {1})``: the whole process to node 1) and then ``idle`` (a
   page_idle scan: every present page's bit set in ``/sys/kernel/mm/page_idle/bitmap``),
   each between ``rmapwalk-programs trigger ... begin|end`` trace markers;
7. records ``numa_maps`` and ``/proc/vmstat`` again, kills the tree, streams the info files
   and the trace out on ttyS1 (gzip + base64) and reboots.

The run folder (:mod:`rmapwalk.dataset` layout, under ``data/programs/`` by default)::

    <out>/<workload>/<base>/<variant>/run-<k>/
        walks.csv       contract.MEASURED_WALK_COLUMNS, one row per walk of a KSM page made
                        inside a trigger (the walks the series changes): step = the trigger's
                        number, region = '-' and page = 0 (a whole-process trigger has no
                        scenario region or page), proc = the target pid
        events.csv.gz   every rmap_walk event of the trace (ksm, anon and file; also those
                        outside triggers) with the trace line's task name and pid, the trigger
                        and its target (gzip'ed: a JVM's migration walks ~60,000 pages)
        triggers.csv    one row per trigger: op, pid, comm, result (migrate_pages' pages not
                        migrated; idle: bitmap words), pages (idle), seconds, walks
        outcomes.csv    contract.OUTCOME_COLUMNS, header only: per-page outcomes do not exist
                        for whole-process triggers (migrate_pages returns a count: triggers.csv)
        processes.csv   pid, ppid, comm of the frozen tree
        info/           maps, ksm_stat, numa_maps (before/after), ksm counters, vmstat
                        (before/after), the program's output, the phase timeline
        trace.txt.gz  console.log.gz  manifest.json

The manifest's ``scenario`` is ``{"name": <workload>, "sha256": sha256 of the workload
file}``; ``workload`` records the Debian packages and versions (dpkg-query), the exact command,
the launcher's sha256; ``summary`` the run's numbers.  Verify with
``rmapwalk.dataset.verify(Path('data/programs'), scenarios=Path('data/workloads'), plan=None)``.
"""
from __future__ import annotations

import argparse
import base64
import collections
import csv
import dataclasses
import gzip
import hashlib
import io
import os
import re
import shlex
import stat
import subprocess
import sys
import time
from pathlib import Path

from rmapwalk import contract, dataset, kernels as kernel_list, outputs, paths
from rmapwalk.measure import guestrun, initramfs, vm
from rmapwalk.measure.trace import LINE_RE, WALK_RE

WORKLOADS = paths.DATA / "workloads"
PROGRAMS = paths.DATA / "programs"
LAUNCHER_DIR = Path(__file__).resolve().parent / "launcher"
DEFAULT_VARIANTS = kernel_list.primary()   # kernels.yaml: one variant per model strategy
MEMORY_MB = 2048                    # numa=fake=2: two nodes of 1 GiB
CMDLINE = "console=ttyS0 numa=fake=2 panic=-1 oops=panic loglevel=5 rdinit=/init"
VIRTFS = "local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap"
BUFFER_SIZE_KB = 131072             # per CPU: a JVM's migration + idle scan, all walks
FILE_MARK = "@@RMAPWALK-FILE@@"
FILE_END = "@@RMAPWALK-FILE-END@@"
MARK_PREFIX = "rmapwalk-programs "
TRIGGER_OPS = ("migrate", "idle")
NAME_RE = guestrun.NAME_RE
WORKLOAD_KEYS = {"name", "description", "debian_packages", "program", "command", "env",
                 "setup", "load", "warmup_seconds", "merge", "trigger", "guest", "notes"}
EVENT_COLUMNS = ("seq", "task", "task_pid", "cpu", "timestamp", "step", "op", "target_pid",
                 "target_comm", "page_type", "reason", "rmap_one_fn", "iterations",
                 "skip_addr", "skip_mm", "rmap_one", "duration_ns", "pfn", "index")
TRIGGER_COLUMNS = ("step", "op", "pid", "comm", "result", "errno", "pages", "seconds",
                   "walks", "ksm_walks")
PROCESS_COLUMNS = ("pid", "ppid", "comm")


class WorkloadError(ValueError):
    """A workload file that cannot be used; the message names the file and the key."""


class ProgramRunError(guestrun.GuestRunError):
    """A run that did not give a complete trace; ``console`` is the guest's console."""

    TAIL_LINES = 20


# --- workload files ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    path: Path
    sha256: str
    doc: dict

    @property
    def command(self) -> list[str]:
        return [str(x) for x in self.doc["command"]]

    @property
    def packages(self) -> list[str]:
        return [str(x) for x in self.doc.get("debian_packages") or []]

    @property
    def warmup(self) -> float:
        return float(self.doc["warmup_seconds"])

    @property
    def merge(self) -> dict:
        m = {"pages_to_scan": 4000, "sleep_millisecs": 10, "full_scans": 2, "max_seconds": 180}
        m.update(self.doc.get("merge") or {})
        return m

    @property
    def guest(self) -> dict:
        g = {"smp": 2, "memory_mb": MEMORY_MB}
        g.update(self.doc.get("guest") or {})
        return g

    @property
    def triggers(self) -> list[str]:
        return [str(t) for t in self.doc.get("trigger") or list(TRIGGER_OPS)]


def workload_path(name_or_path: str) -> Path:
    return guestrun.named_file(name_or_path, WORKLOADS)


def load_workload(name_or_path: str) -> Workload:
    """Read and check a workload file; :class:`WorkloadError` names the file and key."""
    path = workload_path(name_or_path)
    raw, doc = guestrun.read_mapping(path, WorkloadError, "workload", WORKLOAD_KEYS)
    unknown = sorted(set(doc) - WORKLOAD_KEYS)
    if unknown:
        raise WorkloadError(f"{path}: unknown key(s) {unknown}; expected {sorted(WORKLOAD_KEYS)}")
    name = doc.get("name")
    guestrun.check_name(path, name, WorkloadError)
    cmd = doc.get("command")
    if not (isinstance(cmd, list) and cmd and all(isinstance(x, (str, int)) for x in cmd)):
        raise WorkloadError(f"{path}: command: expected a non-empty list of strings")
    if not str(cmd[0]).startswith("/"):
        raise WorkloadError(f"{path}: command: the program must be an absolute path, got {cmd[0]!r}")
    w = doc.get("warmup_seconds")
    if not (isinstance(w, (int, float)) and 0 < w <= 600):
        raise WorkloadError(f"{path}: warmup_seconds: expected seconds in (0, 600], got {w!r}")
    for key in ("setup", "load"):
        v = doc.get(key)
        if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            raise WorkloadError(f"{path}: {key}: expected a list of shell lines")
    env = doc.get("env") or {}
    if not (isinstance(env, dict) and all(re.match(r"^[A-Z_][A-Z0-9_]*$", str(k)) for k in env)):
        raise WorkloadError(f"{path}: env: expected NAME: value pairs")
    trig = doc.get("trigger") or list(TRIGGER_OPS)
    if not (isinstance(trig, list) and trig and all(t in TRIGGER_OPS for t in trig)):
        raise WorkloadError(f"{path}: trigger: expected a list of {TRIGGER_OPS}, got {trig!r}")
    merge = doc.get("merge") or {}
    if not isinstance(merge, dict) or set(merge) - {"pages_to_scan", "sleep_millisecs",
                                                    "full_scans", "max_seconds"}:
        raise WorkloadError(f"{path}: merge: expected pages_to_scan, sleep_millisecs, "
                            "full_scans, max_seconds")
    return Workload(str(name), path, hashlib.sha256(raw).hexdigest(), doc)


# --- the host side: packages, launcher, initramfs ------------------------------------------
def package_versions(packages: list[str]) -> dict[str, str | None]:
    """``dpkg-query`` versions of ``packages`` (None: not installed)."""
    out: dict[str, str | None] = {}
    for p in packages:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], capture_output=True,
                           text=True)
        out[p] = r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None
    return out


def ensure_packages(wl: Workload, install: bool) -> dict[str, str]:
    """The workload's Debian packages and their versions; missing ones are installed with
    apt-get (as root, ``install``) or refused."""
    versions = package_versions(wl.packages)
    missing = [p for p, v in versions.items() if v is None]
    if missing and install and os.geteuid() == 0:
        _say(f"{wl.name}: installing Debian package(s) {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(["apt-get", "install", "-y", "-q", *missing], env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            r = subprocess.run(["apt-get", "install", "-y", "-q", *missing], env=env,
                               capture_output=True, text=True)
        versions = package_versions(wl.packages)
        missing = [p for p, v in versions.items() if v is None]
    if missing:
        raise outputs.UsageError(f"{wl.path}: Debian package(s) not installed: "
                                 f"{' '.join(missing)} (apt-get install {' '.join(missing)})")
    prog = Path(wl.command[0])
    if not prog.exists():
        raise outputs.UsageError(f"{wl.path}: {prog} does not exist on this host (the guest "
                                 "runs the host's programs)")
    return {p: v for p, v in versions.items() if v}


def build_launcher(dest: Path) -> Path:
    """Compile the static launcher into ``dest`` (gcc -static -Werror, its Makefile)."""
    return initramfs.build_static(LAUNCHER_DIR, dest)


def launcher_key() -> str:
    """sha256 of the launcher's sources (launcher.c, its Makefile, guest.h)."""
    return guestrun.source_key(LAUNCHER_DIR, "launcher.c")


def launcher_binary() -> Path:
    """The cached launcher binary (built on first use), named by its sources' sha256."""
    return guestrun.cached_binary(LAUNCHER_DIR, "launcher.c", "launcher")


def _q(x) -> str:
    return shlex.quote(str(x))


def workload_script(wl: Workload) -> str:
    """``/workload.sh``: the workload's settings and shell functions, sourced by /init."""
    m, lines = wl.merge, []
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": "/tmp",
           "LANG": "C.UTF-8", **{str(k): str(v) for k, v in (wl.doc.get("env") or {}).items()}}
    lines.append(f"WL_NAME={_q(wl.name)}")
    lines.append(f"WL_WARMUP={int(round(wl.warmup))}")
    lines.append(f"WL_PAGES_TO_SCAN={int(m['pages_to_scan'])}")
    lines.append(f"WL_SLEEP_MS={int(m['sleep_millisecs'])}")
    lines.append(f"WL_FULL_SCANS={int(m['full_scans'])}")
    lines.append(f"WL_MERGE_MAX={int(m['max_seconds'])}")
    lines.append(f"WL_TRIGGERS={_q(' '.join(wl.triggers))}")
    envs = " ".join(f"{k}={_q(v)}" for k, v in env.items())
    setup = "\n".join(wl.doc.get("setup") or []) or ":"
    lines.append("wl_setup() {\n  env -i " + envs + " chroot $R /bin/sh -e -c " + _q(setup)
                 + "\n}")
    lines.append("wl_start() {\n  exec env -i " + envs + " chroot $R /run/rmapwalk/launcher "
                 "exec " + " ".join(_q(c) for c in wl.command) + "\n}")
    load = "\n".join(wl.doc.get("load") or []) or ":"
    lines.append("wl_load() {\n" + load + "\n}")
    return "\n".join(lines) + "\n"


INIT = f"""#!/bin/busybox sh
# rmapwalk programs guest /init (generated by rmapwalk.measure.programs)
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing
mount -t tmpfs -o size=40% tmpfs /tmp
echo "RMAPWALK-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)"
fail() {{ echo "RMAPWALK-ERROR $*"; echo "{initramfs.EXIT_MARK}99"; reboot -f; sleep 10; }}
up() {{ cut -d' ' -f1 /proc/uptime; }}
I=/tmp/info
mkdir -p $I
phase() {{ echo "$1 $(up)" >> $I/timeline.txt; echo "RMAPWALK-PHASE $1 uptime=$(up)"; }}
[ -d /sys/devices/system/node/node1 ] || fail "no NUMA node1: numa=fake=2 did not take"
K=/sys/kernel/mm/ksm
[ -e $K/run ] || fail "no /sys/kernel/mm/ksm (CONFIG_KSM)"
T=/sys/kernel/tracing
[ -d $T/events/rmap/rmap_walk ] || fail "no rmap/rmap_walk event in $T/events"
R=/newroot
mkdir -p $R
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 root $R \\
  || fail "cannot mount the host's root over virtio-9p (CONFIG_9P_FS, QEMU -virtfs)"
mount -t proc proc $R/proc || fail "cannot mount proc in the chroot"
mount -t sysfs sysfs $R/sys || fail "cannot mount sysfs in the chroot"
mount -t devtmpfs devtmpfs $R/dev || fail "cannot mount devtmpfs in the chroot"
mkdir -p $R/dev/shm $R/dev/pts
mount -t tmpfs -o size=256m tmpfs $R/dev/shm || fail "cannot mount /dev/shm"
for d in tmp run var/tmp; do
  mount -t tmpfs -o size=25% tmpfs $R/$d || fail "cannot mount a tmpfs on $R/$d"
done
mkdir -p $R/run/rmapwalk
cp /launcher $R/run/rmapwalk/launcher || fail "cannot copy the launcher"
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
. /workload.sh
echo "RMAPWALK-WORKLOAD $WL_NAME"
echo 0 > $T/tracing_on
echo {BUFFER_SIZE_KB} > $T/buffer_size_kb || fail "cannot set buffer_size_kb"
echo 0 > $T/events/enable
echo 1 > $T/events/rmap/rmap_walk/enable || fail "cannot enable rmap/rmap_walk"
echo 0 > $K/run
echo $WL_PAGES_TO_SCAN > $K/pages_to_scan
echo $WL_SLEEP_MS > $K/sleep_millisecs
phase setup
wl_setup > $I/setup.out 2>&1 || {{ tail -20 $I/setup.out; fail "the workload's setup failed"; }}
echo > $T/trace
echo 1 > $T/tracing_on
echo 1 > $K/run
phase start
( wl_start ) > $I/program.out 2>&1 &
P=$!
echo "RMAPWALK-PID $P"
wl_load > $I/load.out 2>&1 &
L=$!
i=0
while [ $i -lt $WL_WARMUP ]; do
  sleep 1
  [ -d /proc/$P ] || {{ tail -20 $I/program.out; fail "the program ended during its warm-up (after $i s)"; }}
  i=$((i + 1))
done
kill $L 2>/dev/null
sleep 1
kill -9 $L 2>/dev/null
tree() {{
  all=" $1 "
  changed=1
  while [ $changed = 1 ]; do
    changed=0
    for st in /proc/[0-9]*/stat; do
      p=${{st#/proc/}}; p=${{p%/stat}}
      case "$all" in *" $p "*) continue ;; esac
      read -r line < $st 2>/dev/null || continue
      rest=${{line##*) }}
      set -- $rest
      case "$all" in *" $2 "*) all="$all$p "; changed=1 ;; esac
    done
  done
  echo $all
}}
PIDS=$(tree $P)
kill -STOP $PIDS
phase frozen
: > $I/processes.txt
for p in $PIDS; do
  read -r line < /proc/$p/stat
  rest=${{line##*) }}
  set -- $rest
  echo "$p $2 $(cat /proc/$p/comm)" >> $I/processes.txt
done
F0=$(cat $K/full_scans)
i=0
while [ $(cat $K/full_scans) -lt $((F0 + WL_FULL_SCANS)) ] && [ $i -lt $((WL_MERGE_MAX * 10)) ]; do
  sleep 0.1
  i=$((i + 1))
done
echo "full_scans_at_freeze=$F0 full_scans=$(cat $K/full_scans) waited_deciseconds=$i" > $I/merge.txt
echo 0 > $K/run
phase merged
grep . $K/* > $I/ksm-before.txt 2>/dev/null
cat /proc/vmstat > $I/vmstat-before.txt
for p in $PIDS; do
  cat /proc/$p/maps > $I/maps-$p.txt 2>/dev/null
  cat /proc/$p/ksm_stat > $I/ksm_stat-$p.txt 2>/dev/null
  cat /proc/$p/numa_maps > $I/numa_maps-before-$p.txt 2>/dev/null
done
s=0
for op in $WL_TRIGGERS; do
  phase "trigger-$op"
  for p in $PIDS; do
    /launcher $op $s $p >> $I/triggers.txt 2>&1
    s=$((s + 1))
  done
  cat /proc/vmstat > $I/vmstat-after-$op.txt
  if [ $op = migrate ]; then
    for p in $PIDS; do cat /proc/$p/numa_maps > $I/numa_maps-after-$p.txt 2>/dev/null; done
  fi
done
echo 0 > $T/tracing_on
phase triggered
grep . $K/* > $I/ksm-after.txt 2>/dev/null
kill -CONT $PIDS 2>/dev/null
kill -9 $PIDS 2>/dev/null
cat $T/trace > /tmp/trace.txt
lines=$(wc -l < /tmp/trace.txt)
phase streaming
{{
  for f in $I/*; do
    echo "{FILE_MARK} ${{f#$I/}}"
    gzip -c $f | base64
    echo "{FILE_END}"
  done
  echo "{initramfs.BEGIN_MARK} {initramfs.ENCODING}"
  gzip -c /tmp/trace.txt | base64
  echo "{initramfs.END_MARK} lines=$lines"
}} > /dev/ttyS1
echo "RMAPWALK-STREAMED lines=$lines uptime=$(up)"
echo "{initramfs.EXIT_MARK}0"
reboot -f
sleep 10
"""


def guest_initramfs(wl: Workload, dest: Path) -> Path:
    """busybox, the launcher, /init and /workload.sh as one gzip'ed cpio archive."""
    d = stat.S_IFDIR | 0o755
    entries = [(n, d, b"") for n in ("bin", "dev", "proc", "sys", "tmp", "run", "newroot")]
    entries += [
        ("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
        ("bin/busybox", stat.S_IFREG | 0o755, initramfs.BUSYBOX.read_bytes()),
        ("bin/sh", stat.S_IFLNK | 0o777, b"busybox"),
        ("launcher", stat.S_IFREG | 0o755, launcher_binary().read_bytes()),
        ("init", stat.S_IFREG | 0o755, INIT.encode()),
        ("workload.sh", stat.S_IFREG | 0o644, workload_script(wl).encode()),
    ]
    dest.write_bytes(initramfs.cpio_archive(entries))
    return dest


def qemu_command(kernel: Path, initrd: Path, console: Path, ttys1: Path, wl: Workload,
                 qemu: str | None = None) -> list[str]:
    g = wl.guest
    return [qemu or vm.default_qemu(), "-accel", "tcg", "-m", str(int(g["memory_mb"])),
            "-smp", str(int(g["smp"])), "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", CMDLINE, "-nographic", "-no-reboot", "-monitor", "none",
            "-serial", f"file:{console}", "-serial", f"file:{ttys1}", "-virtfs", VIRTFS]


def boot(cmd: list[str], workdir: Path, timeout: float) -> tuple[str, str, float]:
    """Run QEMU (its own process group, hard time limit: :func:`rmapwalk.measure.vm.start`)
    until the guest prints its exit status; (console, ttyS1 stream, wall seconds)."""
    console, ttys1 = workdir / "console.log", workdir / "ttyS1.log"
    t0 = time.monotonic()
    panic_at = exited_at = None
    with open(workdir / "qemu.out", "wb") as out:
        proc = vm.start(cmd, timeout + vm.HARD_LIMIT_MARGIN, stdin=subprocess.DEVNULL,
                        stdout=out, stderr=subprocess.STDOUT)
        try:
            while proc.poll() is None:
                time.sleep(0.5)
                elapsed = time.monotonic() - t0
                text = vm._read(console)
                if panic_at is None and vm.PANIC_RE.search(text):
                    panic_at = elapsed
                if panic_at is not None and elapsed - panic_at > 5:
                    break
                if exited_at is None and initramfs.EXIT_MARK in text:
                    exited_at = elapsed
                if exited_at is not None and elapsed - exited_at > 5:
                    break
                if elapsed > timeout:
                    raise ProgramRunError(f"timeout: the VM ran longer than {timeout:.0f} s",
                                          vm._read(console) + vm._read(workdir / "qemu.out"))
        finally:
            vm.end_group(proc)
    console_text = vm._read(console)
    if guestrun.exit_status(console_text, workdir, ProgramRunError) != "0":
        err = re.findall(r"RMAPWALK-ERROR (.*)", console_text)
        raise ProgramRunError("the guest failed: " + ("; ".join(err) or "no message"),
                              console_text)
    return console_text, vm._read(ttys1), time.monotonic() - t0


# --- parsing what came back ----------------------------------------------------------------
def split_stream(raw: str) -> tuple[dict[str, bytes], str]:
    """The ttyS1 stream: the info files (name -> bytes) and the decoded trace text."""
    files: dict[str, bytes] = {}
    lines = raw.replace("\r", "").split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith(FILE_MARK):
            name = lines[i][len(FILE_MARK):].strip()
            j = i + 1
            while j < len(lines) and not lines[j].startswith(FILE_END):
                j += 1
            if j == len(lines):
                raise ProgramRunError(f"ttyS1: info file {name} cut short")
            try:
                files[name] = gzip.decompress(base64.b64decode("".join(lines[i + 1:j])))
            except (ValueError, OSError, EOFError) as e:
                raise ProgramRunError(f"ttyS1: info file {name} garbled: {e}") from None
            i = j + 1
            continue
        if lines[i].startswith(initramfs.BEGIN_MARK):
            break
        i += 1
    return files, initramfs.decode_stream("\n".join(lines[i:]))


def _kv(text: str) -> dict[str, str]:
    return dict(t.split("=", 1) for t in text.split() if "=" in t)


@dataclasses.dataclass
class Parsed:
    events: list[dict]
    walks: list[dict]
    triggers: list[dict]


def parse_trace(text: str, where: str = "<trace>") -> Parsed:
    """Every rmap_walk event (with its task and the trigger it falls in) and the walks rows
    of the triggers; raises :class:`ProgramRunError` on a truncated or lossy trace."""
    lines = text.replace("\r", "").split("\n")
    try:
        begin = next(i for i, l in enumerate(lines) if l.strip() == initramfs.BEGIN_MARK)
        end = next(i for i in range(begin + 1, len(lines))
                   if lines[i].startswith(initramfs.END_MARK))
    except StopIteration:
        raise ProgramRunError(f"{where}: no complete trace block (begin/end markers)") from None
    m = re.match(re.escape(initramfs.END_MARK) + r" lines=(\d+)", lines[end])
    if not m or int(m.group(1)) != end - begin - 1:
        raise ProgramRunError(f"{where}: the guest sent {m.group(1) if m else '?'} trace lines, "
                              f"{end - begin - 1} arrived")
    events, walks, triggers = [], [], []
    current: dict | None = None
    for i in range(begin + 1, end):
        line = lines[i]
        if not line.strip():
            continue
        if line.startswith("#"):
            e = re.match(r"^# entries-in-buffer/entries-written: (\d+)/(\d+)", line)
            if e and e.group(1) != e.group(2):
                raise ProgramRunError(f"{where}:{i + 1}: the ring buffer lost events "
                                      f"({e.group(1)}/{e.group(2)})")
            continue
        if "[LOST" in line:
            raise ProgramRunError(f"{where}:{i + 1}: the ring buffer lost events")
        lm = LINE_RE.match(line)
        if not lm:
            raise ProgramRunError(f"{where}:{i + 1}: not an ftrace line: {line[:120]!r}")
        event, payload = lm.group("event"), lm.group("payload").strip()
        if event == "tracing_mark_write":
            if not payload.startswith(MARK_PREFIX):
                continue
            kv = _kv(payload[len(MARK_PREFIX):])
            if payload.endswith(" begin"):
                current = {"step": int(kv["step"]), "op": kv["op"], "pid": int(kv["pid"]),
                           "comm": kv["comm"]}
            elif " end " in payload:
                triggers.append({"step": int(kv["step"]), "op": kv["op"], "pid": int(kv["pid"]),
                                 "comm": kv["comm"], "result": int(kv["result"]),
                                 "errno": kv["errno"], "pages": int(kv["pages"])})
                current = None
            continue
        if event != "rmap_walk":
            continue
        w = WALK_RE.match(payload)
        if not w:
            raise ProgramRunError(f"{where}:{i + 1}: malformed rmap_walk event {payload[:160]!r}")
        fn = w.group("rmap_one")
        reason = contract.REASONS.get(fn, fn)
        row = {"seq": len(events), "task": lm.group("task").strip(),
               "task_pid": int(lm.group("pid")), "cpu": int(lm.group("cpu")),
               "timestamp": lm.group("ts"),
               "step": current["step"] if current else "", "op": current["op"] if current else "",
               "target_pid": current["pid"] if current else "",
               "target_comm": current["comm"] if current else "",
               "page_type": w.group("type"), "reason": reason, "rmap_one_fn": fn,
               "iterations": int(w.group("iterations")), "skip_addr": int(w.group("skip_addr")),
               "skip_mm": int(w.group("skip_mm")), "rmap_one": int(w.group("calls")),
               "duration_ns": int(w.group("duration_ns")), "pfn": int(w.group("pfn"), 16),
               "index": int(w.group("index"), 16)}
        events.append(row)
        if current is not None:
            walks.append({"step": current["step"], "region": "-", "page": 0,
                          "page_type": row["page_type"], "reason": reason,
                          "iterations": row["iterations"], "skip_addr": row["skip_addr"],
                          "skip_mm": row["skip_mm"], "rmap_one": row["rmap_one"],
                          "duration_ns": row["duration_ns"], "pfn": row["pfn"],
                          "index": row["index"], "proc": current["pid"]})
    return Parsed(events, walks, triggers)


def parse_maps(text: str) -> dict:
    """VMA survey of one /proc/PID/maps: counts, anonymous VMAs, and runs of adjacent
    anonymous VMAs that differ only in protection (one mmap split by mprotect: the VMAs
    that share an anon_vma)."""
    vmas = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        path = parts[5].strip() if len(parts) > 5 else ""
        vmas.append((start, end, parts[1], int(parts[4]), path))
    anon = [v for v in vmas if v[3] == 0 and (v[4] == "" or v[4] in ("[heap]", "[stack]"))]
    runs, run = [], 1
    for a, b in zip(vmas, vmas[1:]):
        both_anon = a in anon and b in anon and a[4] == "" and b[4] == ""
        if both_anon and a[1] == b[0] and a[2] != b[2] and a[2][3] == b[2][3]:
            run += 1
        else:
            if run > 1:
                runs.append(run)
            run = 1
    if run > 1:
        runs.append(run)
    return {"vmas": len(vmas), "anon_vmas": len(anon),
            "file_vmas": sum(1 for v in vmas if v[4].startswith("/")),
            "prot_runs": len(runs), "vmas_in_prot_runs": sum(runs),
            "longest_prot_run": max(runs, default=0)}


def _table(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        if ":" in line and line.startswith("/sys/"):        # grep . /sys/kernel/mm/ksm/*
            k, _, v = line.partition(":")
            k = k.rsplit("/", 1)[-1]
        else:
            k, _, v = line.replace(":", " ").partition(" ")
        v = v.strip()
        if re.fullmatch(r"-?\d+", v):
            out[k.strip()] = int(v)
    return out


def _numa_pages(text: str) -> dict[str, int]:
    n = collections.Counter()
    for tok in text.split():
        m = re.fullmatch(r"N(\d+)=(\d+)", tok)
        if m:
            n[f"N{m.group(1)}"] += int(m.group(2))
    return dict(n)


def summarize(parsed: Parsed, files: dict[str, bytes]) -> dict:
    """The run's numbers for the manifest (the analysis recomputes them from the tables)."""
    ksm = [e for e in parsed.events if e["page_type"] == "ksm" and e["step"] != ""]
    iters = sorted(e["iterations"] for e in ksm)
    it = sum(iters)
    skips = sum(e["skip_addr"] for e in ksm)        # the project's skip ratio: address skips
    procs = []
    for line in files.get("processes.txt", b"").decode().splitlines():
        pid, ppid, comm = (line.split(None, 2) + ["", "", ""])[:3]
        text = lambda n: files.get(n, b"").decode("utf-8", "replace")  # noqa: E731
        procs.append({"pid": int(pid), "ppid": int(ppid), "comm": comm,
                      **parse_maps(text(f"maps-{pid}.txt")),
                      "ksm_stat": _table(text(f"ksm_stat-{pid}.txt")),
                      "numa_before": _numa_pages(text(f"numa_maps-before-{pid}.txt")),
                      "numa_after": _numa_pages(text(f"numa_maps-after-{pid}.txt"))})
    vm0 = _table(files.get("vmstat-before.txt", b"").decode())
    vm1 = _table(files.get("vmstat-after-migrate.txt", b"").decode())
    outside = collections.Counter(f"{e['task']}:{e['page_type']}:{e['reason']}"
                                  for e in parsed.events if e["step"] == "")
    return {
        "events": len(parsed.events), "walk_rows": len(parsed.walks),
        "ksm_walks": len(ksm), "ksm_iterations": it, "ksm_skip_addr": skips,
        "ksm_skip_mm": sum(e["skip_mm"] for e in ksm),
        "ksm_skip_ratio": (skips / it) if it else None,
        "ksm_iterations_median": iters[len(iters) // 2] if iters else None,
        "ksm_iterations_max": iters[-1] if iters else None,
        "ksm_duration_ns": sum(e["duration_ns"] for e in ksm),
        "migrate_not_migrated": sum(t["result"] for t in parsed.triggers
                                    if t["op"] == "migrate" and t["result"] > 0),
        "pgmigrate_success": vm1.get("pgmigrate_success", 0) - vm0.get("pgmigrate_success", 0),
        "pgmigrate_fail": vm1.get("pgmigrate_fail", 0) - vm0.get("pgmigrate_fail", 0),
        "walks_outside_triggers": dict(outside),
        "ksm_before": _table(files.get("ksm-before.txt", b"").decode()),
        "processes": procs,
    }


# --- one run -------------------------------------------------------------------------------
def _say(msg: str) -> None:
    print(f"programs: {msg}", file=sys.stderr, flush=True)


def _kernel(base: str, variant: str) -> tuple[Path, dict]:
    return guestrun.kernel_image(base, variant, build=True)


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def capture_one(wl: Workload, base: str, variant: str, image: Path, provenance: dict,
                versions: dict[str, str], out_root: Path, timeout: float,
                qemu: str | None = None) -> Path | None:
    """One boot; the run folder written (atomically), or None after a failure (its console
    kept under build/failed/)."""
    def attempt(workdir: Path) -> tuple:
        initrd = guest_initramfs(wl, workdir / "initramfs.cpio.gz")
        cmd = qemu_command(image, initrd, workdir / "console.log", workdir / "ttyS1.log", wl,
                           qemu)
        console, raw, wall = boot(cmd, workdir, timeout)
        files, trace_text = split_stream(raw)
        parsed = parse_trace(trace_text, f"{wl.name}/{variant}/trace.txt")
        return cmd, console, wall, files, trace_text, parsed

    got = guestrun.boot_or_keep("programs", f"{wl.name} on {base}/{variant}", wl.name,
                                f"{base}-{variant}", out_root, _say, attempt)
    if got is None:
        return None
    cmd, console, wall, files, trace_text, parsed = got
    steps = {t["step"]: t for t in parsed.triggers}
    secs = {int(kv["step"]): float(kv["seconds"]) for kv in
            (_kv(l) for l in files.get("triggers.txt", b"").decode().splitlines()
             if l.startswith("RMAPWALK-TRIGGER"))}
    per = collections.Counter(w["step"] for w in parsed.walks)
    per_ksm = collections.Counter(w["step"] for w in parsed.walks if w["page_type"] == "ksm")
    trig_rows = [{**t, "seconds": secs.get(s, ""), "walks": per[s], "ksm_walks": per_ksm[s]}
                 for s, t in sorted(steps.items())]
    procs = []
    for line in files.get("processes.txt", b"").decode().splitlines():
        pid, ppid, comm = (line.split(None, 2) + ["", "", ""])[:3]
        procs.append({"pid": pid, "ppid": ppid, "comm": comm})
    summary = summarize(parsed, files)
    with guestrun.new_run(out_root, wl.name, base, variant) as (staging, dest):
        (staging / "trace.txt.gz").write_bytes(gzip.compress(trace_text.encode(), 6, mtime=0))
        (staging / "console.log.gz").write_bytes(gzip.compress(console.encode(), 6, mtime=0))
        _write_csv(staging / "walks.csv", contract.MEASURED_WALK_COLUMNS,
                   [w for w in parsed.walks if w["page_type"] == "ksm"])
        _write_csv(staging / "outcomes.csv", contract.OUTCOME_COLUMNS, [])
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=EVENT_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(parsed.events)
        (staging / "events.csv.gz").write_bytes(gzip.compress(buf.getvalue().encode(), 6,
                                                              mtime=0))
        _write_csv(staging / "triggers.csv", TRIGGER_COLUMNS, trig_rows)
        _write_csv(staging / "processes.csv", PROCESS_COLUMNS, procs)
        (staging / "info").mkdir()
        for name, data in sorted(files.items()):
            if re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                (staging / "info" / name).write_bytes(data)
        dataset.write_manifest(staging, {
            "kind": "rmapwalk programs run",
            "kernel": provenance,
            "qemu": guestrun.qemu_manifest(
                cmd, "TCG only (KVM does not work on the build machine)"),
            "scenario": {"name": wl.name, "sha256": wl.sha256,
                         "path": os.path.relpath(wl.path, paths.ROOT)
                         if wl.path.is_absolute() else str(wl.path)},
            "workload": {"command": wl.command, "env": wl.doc.get("env") or {},
                         "debian_packages": versions, "warmup_seconds": wl.warmup,
                         "merge": wl.merge, "triggers": wl.triggers, "guest": wl.guest,
                         "launcher_sha256": dataset.sha256_file(launcher_binary()),
                         "launcher_source_sha256": launcher_key(),
                         "init_sha256": hashlib.sha256(INIT.encode()).hexdigest(),
                         "busybox_sha256": dataset.sha256_file(initramfs.BUSYBOX)},
            "timing": {"host_wall_seconds": round(wall, 3),
                       "timeline": files.get("timeline.txt", b"").decode()},
            "summary": summary,
        })
    ratio = summary["ksm_skip_ratio"]
    _say(f"{wl.name} on {base}/{variant} {dest.name}: {wall:.0f} s, {summary['ksm_walks']} KSM "
         f"walks, max iterations {summary['ksm_iterations_max']}, skip ratio "
         f"{'-' if ratio is None else f'{ratio:.4f}'} -> {dest}")
    return dest


def capture(wl: Workload, base: str, variants: tuple[str, ...], runs: int, out_root: Path,
            timeout: float, install: bool = True, qemu: str | None = None) -> list[Path | None]:
    versions = ensure_packages(wl, install)
    results = []
    for variant in variants:
        _say(f"kernel {base}/{variant}: getting the image (a build can take a while)")
        image, provenance = _kernel(base, variant)
        for r in range(runs):
            _say(f"{wl.name} on {base}/{variant}: run {r + 1}/{runs} (timeout {timeout:.0f} s)")
            results.append(capture_one(wl, base, variant, image, provenance, versions,
                                       out_root, timeout, qemu))
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="programs_command", required=True)
    kl = kernel_list.load()
    c = sub.add_parser("capture", help="run a real program KSM-mergeable in QEMU, trigger "
                                       "migrate_pages and a page_idle scan, record the walks")
    c.add_argument("workload", help="workload name under data/workloads/ or a path")
    c.add_argument("--kernel", default="all", metavar="V|all",
                   help=f"variant(s), comma-separated, or all = {','.join(DEFAULT_VARIANTS)}")
    c.add_argument("--base", choices=tuple(kl.bases), default=kl.default_base)
    c.add_argument("--runs", type=int, default=1, metavar="N", help="boots per kernel")
    c.add_argument("--out", type=Path, default=None, help=f"output root (default {PROGRAMS})")
    c.add_argument("--timeout", type=float, default=900.0, metavar="S",
                   help="seconds one boot may take (default 900)")
    c.add_argument("--no-install", action="store_true",
                   help="refuse instead of apt-get installing missing Debian packages")
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.runs < 1:
            raise outputs.UsageError(f"--runs {args.runs}: expected an integer >= 1")
        outputs.check_seconds(args.timeout, "--timeout")
        out_root = outputs.check_output_dir(args.out if args.out is not None else PROGRAMS,
                                            "--out")
        wl = load_workload(args.workload)
        kl = kernel_list.load()
        variants = DEFAULT_VARIANTS if args.kernel == "all" else \
            tuple(v for v in args.kernel.split(",") if v)
        for v in variants:
            kl.patches(args.base, v)        # KernelListError: unknown or build-only
        results = capture(wl, args.base, variants, args.runs, out_root, args.timeout,
                          install=not args.no_install)
    except (WorkloadError, outputs.UsageError, kernel_list.KernelListError) as e:
        print(f"programs: {e}", file=sys.stderr)
        return 2
    return 1 if any(r is None for r in results) else 0
