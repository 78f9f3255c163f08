"""The kernel's own mm selftests, run in the guest of every kernel variant.

``rmapwalk kernel selftests [--base B] [--kernel V|all] [--out data/selftests]``

1. **Build** (once per base, cached in ``$RMAPWALK_CACHE/selftests/<base>-<key>/``): the
   base's source (the Debian tarball of kernels.yaml, or ``--source``) is unpacked into a
   temporary directory, ``make headers_install`` puts its uapi headers into a temporary
   ``INSTALL_HDR_PATH``, and each selftest of :data:`SELFTESTS` whose source exists in
   ``tools/testing/selftests/mm`` (6.12) or ``.../vm`` (6.1) is compiled with ``gcc -static``
   the way the selftests' Makefile does (``-I $(top_srcdir)``, the headers with ``-isystem``,
   ``vm_util.c`` and, where it exists, ``thp_settings.c``; ``-lnuma`` for ksm_tests and
   migration, so ``libnuma-dev`` must be installed).  ``build.json`` records the source, the
   compiler and the command lines.
2. **Run**: an initramfs of its own (not the replayer's, :mod:`rmapwalk.measure.initramfs` is
   only borrowed from for the cpio writer and busybox): ``/init`` mounts proc, sysfs,
   devtmpfs and a tmpfs, and runs every invocation of the plan one after the other (KSM
   unmerged and stopped before each: ``run=2`` then ``run=0``), each under busybox
   ``timeout``, in ``/tmp``; the output goes straight to the second serial port (a tty:
   stdout is line-buffered, so a test that forks does not print its unflushed buffer twice,
   as it does into a file) between ``@@RMAPWALK-SELFTEST-BEGIN k`` and
   ``@@RMAPWALK-SELFTEST-END k status=N`` lines.  The boot is
   :func:`rmapwalk.measure.vm.boot` (QEMU TCG, 1 GiB, ``numa=fake=2``), one boot per vCPU
   count of :data:`SMP`: the KSM tests on 1 vCPU, ``migration`` on 3 (a QEMU wrapper
   appends ``-smp``; the last one counts), since it needs two migrating threads besides its
   main one, else it skips every test.
3. **Data**: ``<out>/<base>/<variant>/<test>.tap`` (the TAP the test printed; the KSM
   invocations of ``ksm_tests``, which print no TAP, are turned into one TAP file with a line
   per invocation: exit 0 = ok, 4 (KSFT_SKIP) = ok # SKIP, anything else not ok), the
   console log (gzip) and a ``manifest.json``; ``<out>/summary.csv`` (base, variant, test:
   pass / fail / skip counts, exit statuses) with its own manifest.  A variant that fails a
   test its base's baseline passes is printed as a finding.

Not run: ``ksm_tests -H`` (THP is off in the fragment), ``-P``/``-D``/``-C`` (timings, not
checks); 6.1 has no ``ksm_functional_tests`` (it came with 6.2).
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from rmapwalk import dataset, kernels as kernel_list, outputs, paths
from rmapwalk.measure import initramfs, kernel, vm

# (test name, binary, arguments): one line each in the guest.  The name is the .tap file.
KSM_TESTS_ARGS = (("-M", "-p", "10"), ("-U",), ("-Z", "-p", "10", "-z", "0"),
                  ("-Z", "-p", "10", "-z", "1"), ("-N", "-m", "1"), ("-N", "-m", "0"))
SELFTESTS = ("ksm_functional_tests", "ksm_tests", "migration")
# ksm_tests' invocations are run this many times in a row: -N -m 1 passed and failed on the
# same baseline kernel in two boots (timing: its pages_shared check after the merge), so
# one result per kernel cannot tell a regression from chance.
KSM_TESTS_ROUNDS = 3
NUMA_LIBS = {"ksm_tests", "migration"}
TEST_TIMEOUT = 900          # seconds per invocation, busybox timeout in the guest
BOOT_TIMEOUT = 3000.0       # the whole boot
# vCPUs per test (default 1, as the replayer's boots): migration.c wants
# numa_num_task_cpus() - 1 >= 2 migrating threads, else it skips every test.  The KSM tests
# stay on 1 vCPU: with 3, ksm_tests -U and -N -m 1 failed once on the baseline (ksmd on
# another CPU races their pages_shared/pages_sharing checks).
SMP = {"migration": 3}
KSFT_SKIP = 4
BUILD_FORMAT = "1"          # bump when compile_command() changes: the binaries' cache key
BEGIN = "@@RMAPWALK-SELFTEST-BEGIN"
END = "@@RMAPWALK-SELFTEST-END"
SUMMARY_COLUMNS = ("base", "variant", "test", "pass", "fail", "skip", "planned", "exit",
                   "failed", "passed")


class SelftestError(RuntimeError):
    """The selftests could not be built or run; the message says what and where."""


@dataclasses.dataclass(frozen=True)
class Invocation:
    test: str                   # the .tap file's name
    binary: str
    args: tuple[str, ...] = ()
    smp: int = 1                # vCPUs of the boot that runs it
    round: int = 0              # ksm_tests: which of the KSM_TESTS_ROUNDS

    @property
    def label(self) -> str:
        return " ".join((self.binary, *self.args)) + (f" [round {self.round}]"
                                                      if self.round else "")


def plan(binaries: list[str]) -> list[Invocation]:
    """The invocations for the built binaries, in a fixed order."""
    out = []
    for name in SELFTESTS:
        if name not in binaries:
            continue
        if name == "ksm_tests":
            out += [Invocation("ksm_tests", name, a, round=r)
                    for r in range(1, KSM_TESTS_ROUNDS + 1) for a in KSM_TESTS_ARGS]
        else:
            out.append(Invocation(name, name, smp=SMP.get(name, 1)))
    return out


# --- building ----------------------------------------------------------------

def _selftest_dir(tree: Path) -> Path:
    for sub in ("mm", "vm"):                 # mm since 6.3, vm before
        d = tree / "tools/testing/selftests" / sub
        if (d / "vm_util.c").is_file():
            return d
    raise SelftestError(f"{tree}: no tools/testing/selftests/mm (or vm) with vm_util.c")


def compile_command(tree: Path, headers: Path, name: str, out: Path) -> list[str]:
    """gcc -static for one selftest, as its Makefile builds it (CFLAGS, vm_util.c,
    thp_settings.c where it exists, LDLIBS)."""
    d = _selftest_dir(tree)
    cmd = ["gcc", "-static", "-Wall", "-O2", "-U_FORTIFY_SOURCE", "-I", str(tree),
           "-isystem", str(headers / "include"), "-I", str(d.parent)]
    if (tree / "tools/include/uapi").is_dir():
        cmd += ["-isystem", str(tree / "tools/include/uapi")]
    cmd += [str(d / f"{name}.c"), str(d / "vm_util.c")]
    if (d / "thp_settings.c").is_file():
        cmd.append(str(d / "thp_settings.c"))
    cmd += ["-lrt", "-lpthread", "-lm"] + (["-lnuma"] if name in NUMA_LIBS else [])
    return cmd + ["-o", str(out)]


def _unpack(source: kernel.Source, dest: Path) -> Path:
    if source.path.is_dir():
        return source.path
    subprocess.run(["tar", "xf", str(source.path), "-C", str(dest)], check=True)
    (top,) = [p for p in dest.iterdir() if p.is_dir()]
    return top


def build(base: str, *, source: str | None = None) -> Path:
    """The cached static selftest binaries of ``base`` (built on first use)."""
    src = kernel.find_source(source, base=base)
    h = hashlib.sha256()
    for part in (src.version, " ".join(SELFTESTS), BUILD_FORMAT):
        h.update(hashlib.sha256(part.encode()).digest())
    key = h.hexdigest()[:16]
    target = paths.CACHE / "selftests" / f"{base}-{key}"
    if (target / "build.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{base}-") as td:
        td = Path(td)
        print(f"rmapwalk: building the mm selftests of {base} from {src.path}", file=sys.stderr)
        (td / "src").mkdir()
        tree = _unpack(src, td / "src")
        headers = td / "headers"
        r = subprocess.run(["make", "-s", f"O={td / 'hdr-build'}", "headers_install",
                            f"INSTALL_HDR_PATH={headers}"], cwd=tree, capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise SelftestError(f"{tree}: make headers_install failed:\n{r.stderr[-2000:]}")
        out = td / "out"
        out.mkdir()
        built, commands, missing = [], {}, []
        for name in SELFTESTS:
            if not (_selftest_dir(tree) / f"{name}.c").is_file():
                missing.append(name)
                continue
            cmd = compile_command(tree, headers, name, out / name)
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise SelftestError(f"{name}: gcc -static failed (libnuma-dev installed?):\n"
                                    f"{r.stderr[-3000:]}")
            built.append(name)
            commands[name] = " ".join(cmd).replace(str(td), "$BUILD")
        cc = subprocess.run(["gcc", "--version"], capture_output=True, text=True)
        info = {"base": base, "key": key, "source": src.provenance,
                "selftest_dir": str(_selftest_dir(tree).relative_to(tree)),
                "built": built, "not_in_source": missing, "commands": commands,
                "sha256": {n: hashlib.sha256((out / n).read_bytes()).hexdigest()
                           for n in built},
                "compiler": cc.stdout.splitlines()[0] if cc.stdout else None,
                "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        (out / "build.json").write_text(json.dumps(info, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    return target


# --- the guest ---------------------------------------------------------------

def init_script(invocations: list[Invocation], only: set[int] | None = None) -> str:
    """/init running ``invocations`` (those whose index is in ``only``, default all)."""
    lines = []
    for k, inv in enumerate(invocations):
        if only is not None and k not in only:
            continue
        args = " ".join(inv.args)
        lines.append(f"""echo 2 > $K/run; echo 0 > $K/run
echo "{BEGIN} {k} {inv.label}" > /dev/ttyS1
echo "RMAPWALK-SELFTEST {k} {inv.label}"
cd /tmp; timeout {TEST_TIMEOUT} /selftests/{inv.binary} {args} > /dev/ttyS1 2>&1 < /dev/null
status=$?
echo "{END} {k} status=$status" > /dev/ttyS1
echo "RMAPWALK-SELFTEST-DONE {k} status=$status\"""")
    body = "\n".join(lines)
    return f"""#!/bin/busybox sh
# rmapwalk guest /init for the mm selftests (generated by rmapwalk.measure.selftests)
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs -o size=50% tmpfs /tmp
echo "RMAPWALK-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)"
K=/sys/kernel/mm/ksm
[ -e $K/run ] || {{ echo "RMAPWALK-ERROR no $K"; echo "{initramfs.EXIT_MARK}99"; reboot -f; }}
{body}
echo "{initramfs.EXIT_MARK}0"
reboot -f
sleep 10
"""


def initramfs_for(binaries: Path, invocations: list[Invocation], dest: Path,
                  only: set[int] | None = None) -> Path:
    d = stat.S_IFDIR | 0o755
    entries = [(n, d, b"") for n in ("bin", "dev", "proc", "sys", "tmp", "selftests")]
    entries += [("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
                ("bin/busybox", stat.S_IFREG | 0o755, initramfs.BUSYBOX.read_bytes()),
                ("bin/sh", stat.S_IFLNK | 0o777, b"busybox"),
                ("init", stat.S_IFREG | 0o755, init_script(invocations, only).encode())]
    for name in sorted({i.binary for k, i in enumerate(invocations)
                        if only is None or k in only}):
        entries.append((f"selftests/{name}", stat.S_IFREG | 0o755,
                        (binaries / name).read_bytes()))
    dest.write_bytes(initramfs.cpio_archive(entries))
    return dest


def _qemu_wrapper(work: Path, smp: int) -> Path:
    """vm.boot's QEMU command line with ``-smp N`` appended (QEMU takes the last -smp)."""
    p = work / "qemu-smp"
    p.write_text(f'#!/bin/sh\nexec {vm.default_qemu()} "$@" -smp {smp}\n')
    p.chmod(0o755)
    return p


def split_output(stream: str) -> dict[int, tuple[str, int | None]]:
    """ttyS1 -> invocation k -> (its output, exit status or None if it never ended)."""
    out = {}
    for m in re.finditer(rf"^{re.escape(BEGIN)} (\d+) [^\n]*\n(.*?)(?=^{re.escape(BEGIN)} |\Z)",
                         stream.replace("\r\n", "\n"), flags=re.M | re.S):
        k, text = int(m.group(1)), m.group(2)
        end = re.search(rf"^{re.escape(END)} {k} status=(\d+)\s*$", text, flags=re.M)
        out[k] = (text[:end.start()] if end else text, int(end.group(1)) if end else None)
    return out


# --- TAP ---------------------------------------------------------------------

_TAP_LINE = re.compile(r"^(not ok|ok)\b[^#\n]*(#\s*(\w+))?", re.M)
_PLAN = re.compile(r"^1\.\.(\d+)", re.M)
_TOTALS = re.compile(r"^# Totals: pass:(\d+) fail:(\d+) xfail:(\d+) xpass:(\d+) skip:(\d+) "
                     r"error:(\d+)", re.M)


def count_tap(text: str) -> dict[str, int | None]:
    """pass, fail, skip and the plan (None without one) of a TAP document.

    The kselftest's own last top-level ``# Totals: pass:.. fail:.. xfail:.. xpass:.. skip:..
    error:..`` line when there is one (xfail counts as pass, xpass and error as fail): a test
    that forks can print result lines twice (ksm_functional_tests' exec'd child prints its
    own header and totals), the parent's totals come last.  Else the top-level result lines
    (``# SKIP`` = skip, ``# XFAIL`` = pass, ``not ok`` with ``# TODO`` = skip), and planned
    tests without a result line count as failures."""
    plan_m = _PLAN.search(text)
    planned = int(plan_m.group(1)) if plan_m else None
    totals = _TOTALS.findall(text)
    if totals:
        p, f, xf, xp, sk, err = map(int, totals[-1])
        return {"pass": p + xf, "fail": f + xp + err, "skip": sk, "planned": planned}
    n = {"pass": 0, "fail": 0, "skip": 0}
    for m in _TAP_LINE.finditer(text):
        directive = (m.group(3) or "").upper()
        if directive == "SKIP" or (m.group(1) == "not ok" and directive == "TODO"):
            n["skip"] += 1
        elif m.group(1) == "ok":
            n["pass"] += 1
        else:
            n["fail"] += 1
    if planned is not None and sum(n.values()) < planned:
        n["fail"] += planned - sum(n.values())
    return {**n, "planned": planned}


_RESULT = re.compile(r"^(not ok|ok) \d+ ?([^#\n]*?)\s*(?:\[round \d+\])?\s*(?:#\s*(\w+).*)?$",
                     re.M)


def results_by_name(text: str) -> tuple[set[str], set[str]]:
    """(failed, passed) test names of a TAP document's top-level result lines, ``[round k]``
    dropped; skipped and unnamed results are in neither."""
    failed, passed = set(), set()
    for m in _RESULT.finditer(text):
        name, directive = m.group(2).strip(), (m.group(3) or "").upper()
        if not name or directive in ("SKIP", "TODO"):
            continue
        (passed if m.group(1) == "ok" else failed).add(name)
    return failed, passed


def tap_of_invocations(results: list[tuple[Invocation, str, int | None]]) -> str:
    """One TAP document for commands that print no TAP (ksm_tests): a line per invocation,
    its output as comments."""
    lines = ["TAP version 13", f"1..{len(results)}"]
    for k, (inv, text, status) in enumerate(results, start=1):
        lines += [f"# {line}" for line in text.rstrip("\n").splitlines()]
        if status == 0:
            lines.append(f"ok {k} {inv.label}")
        elif status == KSFT_SKIP:
            lines.append(f"ok {k} {inv.label} # SKIP exit status {KSFT_SKIP}")
        else:
            why = "did not finish" if status is None else f"exit status {status}"
            lines.append(f"not ok {k} {inv.label} # {why}")
    return "\n".join(lines) + "\n"



def tap_files(invocations: list[Invocation],
              outputs: dict[int, tuple[str, int | None]]) -> dict[str, tuple[str, list]]:
    """test name -> (TAP text, exit statuses)."""
    grouped: dict[str, list] = {}
    for k, inv in enumerate(invocations):
        text, status = outputs.get(k, ("", None))
        grouped.setdefault(inv.test, []).append((inv, text, status))
    out = {}
    for test, results in grouped.items():
        statuses = [s for _, _, s in results]
        if len(results) == 1 and "TAP version" in results[0][1]:
            inv, text, status = results[0]
            tail = "did not finish" if status is None else f"exit status {status}"
            if status is None and not text.endswith("\n"):
                text += "\n"
            out[test] = (text + f"# rmapwalk: {inv.label}: {tail}\n", statuses)
        else:
            out[test] = (tap_of_invocations(results), statuses)
    return out


# --- one kernel -----------------------------------------------------------------

def run_one(base: str, variant: str, out_root: Path, *, source: str | None = None,
            accel: str = "tcg", timeout: float = BOOT_TIMEOUT, keep: Path | None = None,
            art: kernel.KernelArtifact | None = None) -> Path:
    """Run the base's selftests on one cached kernel (``art``, default: the cache entry of
    kernels.yaml's ``base``/``variant``); write ``out_root/base/variant/``."""
    art = art or kernel.kernel_image(variant, base=base, build=False, source=source)
    binaries = build(base, source=source)
    info = json.loads((binaries / "build.json").read_text())
    invocations = plan(info["built"])
    folder = out_root / base / variant
    outputs, consoles, boots, problems = {}, [], [], []
    for smp in sorted({i.smp for i in invocations}):
        only = {k for k, i in enumerate(invocations) if i.smp == smp}
        with tempfile.TemporaryDirectory(prefix="rmapwalk-selftests-") as td:
            work = Path(td)
            initrd = initramfs_for(binaries, invocations, work / "initramfs.cpio.gz", only)
            rc, cmd, booted, wall = vm.boot(art.bzimage, initrd, work, timeout, accel,
                                            qemu=str(_qemu_wrapper(work, smp)))
            console = (work / "console.log").read_text(errors="replace")
            stream = (work / "ttyS1.log").read_text(errors="replace")
            if keep:
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy2(work / "console.log", keep / f"{base}-{variant}-smp{smp}.log")
        if vm.PANIC_RE.search(console):
            line = next(l for l in console.splitlines() if vm.PANIC_RE.search(l))
            problems.append(f"smp {smp}: kernel panic or oops: {line.strip()}")
        elif initramfs.EXIT_MARK not in console:
            problems.append(f"smp {smp}: the guest ended without its exit mark")
        outputs.update({k: v for k, v in split_output(stream).items() if k in only})
        consoles.append(f"@@rmapwalk boot: -smp {smp}, invocations {sorted(only)}\n{console}")
        boots.append({"smp": smp, "invocations": sorted(only), "command": cmd,
                      "boot_seconds": booted, "wall_seconds": round(wall, 1), "exit": rc})
    problem = "; ".join(problems) or None
    tmp = folder.parent / f".{variant}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    results = {}
    for test, (text, statuses) in tap_files(invocations, outputs).items():
        (tmp / f"{test}.tap").write_text(text)
        results[test] = {"statuses": statuses, **count_tap(text)}
    (tmp / "console.log.gz").write_bytes(gzip.compress("".join(consoles).encode(), mtime=0))
    dataset.write_manifest(tmp, {
        "kind": "selftests", "base": base, "variant": variant,
        "kernel": art.provenance, "selftests": info,
        "invocations": [i.label for i in invocations], "results": results,
        "vm": {"boots": boots, "accel": accel, "qemu": vm.qemu_version(),
               "problem": problem}})
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    if problem:
        raise SelftestError(f"{base}/{variant}: {problem} (data kept in {folder})")
    return folder


# --- the table ----------------------------------------------------------------

def summary(root: Path) -> list[dict]:
    """One row per base, variant and test, from the manifests under ``root``."""
    rows = []
    for manifest in sorted(root.glob(f"*/*/{dataset.MANIFEST}")):
        doc = json.loads(manifest.read_text())
        if doc.get("kind") != "selftests":
            continue
        for test, r in sorted(doc["results"].items()):
            tap = manifest.parent / f"{test}.tap"
            failed, passed = results_by_name(tap.read_text()) if tap.is_file() else (set(), set())
            rows.append({"base": doc["base"], "variant": doc["variant"], "test": test,
                         "pass": r["pass"], "fail": r["fail"], "skip": r["skip"],
                         "planned": "" if r["planned"] is None else r["planned"],
                         "exit": " ".join("-" if s is None else str(s)
                                          for s in r["statuses"]),
                         "failed": "; ".join(sorted(failed)),
                         "passed": "; ".join(sorted(passed - failed))})
    return rows


def findings(rows: list[dict]) -> list[str]:
    """A variant that fails a test case that its base's baseline passed every time it ran
    it (by name: ``ksm_tests -N -m 1`` over its rounds, a kselftest's test description).  A
    case the baseline failed at least once is flaky or broken by the configuration there, so
    its failures elsewhere are not findings (the counts stay in the table)."""
    ref = {(r["base"], r["test"]): r for r in rows if r["variant"] == "baseline"}
    out = []
    for r in rows:
        if r["variant"] == "baseline" or not r["failed"]:
            continue
        b = ref.get((r["base"], r["test"]))
        if b is None:
            out.append(f"{r['base']}/{r['variant']}: {r['test']}: fails {r['failed']} "
                       "(no baseline result)")
            continue
        always = set(filter(None, b["passed"].split("; ")))
        for name in filter(None, r["failed"].split("; ")):
            if name in always:
                out.append(f"{r['base']}/{r['variant']}: {r['test']}: {name} fails, "
                           "the baseline passes it")
    return out


def markdown(rows: list[dict]) -> str:
    """test x kernel table: pass/fail/skip."""
    kernels = sorted({(r["base"], r["variant"]) for r in rows},
                     key=lambda bv: (bv[0], _variant_order(bv[1])))
    tests = sorted({r["test"] for r in rows})
    cell = {(r["base"], r["variant"], r["test"]): f"{r['pass']}/{r['fail']}/{r['skip']}"
            for r in rows}
    head = "| test | " + " | ".join(f"{b} {v}" for b, v in kernels) + " |"
    lines = [head, "|" + "---|" * (len(kernels) + 1)]
    for t in tests:
        lines.append(f"| {t} | " + " | ".join(cell.get((b, v, t), "-") for b, v in kernels)
                     + " |")
    return "\n".join(lines) + "\n\npass/fail/skip per test and kernel.\n"


def _variant_order(v: str) -> int:
    names = list(kernel_list.load().variants)
    return names.index(v) if v in names else len(names)


def write_summary(root: Path) -> list[dict]:
    rows = summary(root)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    (root / "summary.csv").write_text(buf.getvalue())
    (root / "summary.md").write_text(markdown(rows))
    return rows


# --- command line ------------------------------------------------------------

def add_arguments(sub) -> None:
    kl = kernel_list.load()
    p = sub.add_parser("selftests", help="run the kernel's mm selftests (ksm_functional_tests, "
                       "ksm_tests' KSM parts, migration) in the guest of each kernel")
    p.add_argument("--base", choices=(*kl.bases, "all"), default="all")
    p.add_argument("--kernel", choices=(*kl.variants, "all"), default="all",
                   help="variant (default all, build-only ones included)")
    p.add_argument("--out", default=str(paths.ROOT / "data" / "selftests"),
                   help="data folder (default data/selftests)")
    p.add_argument("--source", help="kernel tree or tarball (default: the base's package)")
    p.add_argument("--accel", choices=("tcg", "kvm"), default="tcg")
    p.add_argument("--timeout", type=float, default=BOOT_TIMEOUT, help="seconds per boot")
    p.add_argument("--summary-only", action="store_true",
                   help="only rewrite summary.csv/summary.md from the data")


def run(args) -> int:
    kl = kernel_list.load()
    out = outputs.check_output_dir(args.out, "--out")
    outputs.check_seconds(args.timeout, "--timeout")
    out.mkdir(parents=True, exist_ok=True)
    bases = tuple(kl.bases) if args.base == "all" else (args.base,)
    failed = []
    if not args.summary_only:
        for b, v in kl.builds():
            if b not in bases or args.kernel not in ("all", v):
                continue
            try:
                folder = run_one(b, v, out, source=args.source, accel=args.accel,
                                 timeout=args.timeout)
                print(f"rmapwalk selftests: {b}/{v} -> {folder}", file=sys.stderr)
            except (SelftestError, kernel.KernelBuildError, vm.VMRunError) as e:
                print(f"rmapwalk selftests: {b}/{v}: {e}", file=sys.stderr)
                failed.append(f"{b}/{v}")
    rows = write_summary(out)
    for extra in (out / dataset.MANIFEST,):
        extra.unlink(missing_ok=True)
    dataset.write_manifest(out, {"kind": "selftests-summary",
                                 "kernels": sorted({f"{r['base']}/{r['variant']}"
                                                    for r in rows})})
    sys.stdout.write(markdown(rows))
    for f in findings(rows):
        print(f"FINDING: {f}")
    if failed:
        print(f"rmapwalk selftests: not run to the end on {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
