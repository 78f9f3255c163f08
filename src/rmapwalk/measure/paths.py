"""``rmapwalk paths``: every path reviewers raised, on every kernel variant (issue 10, item 2).

A KSM page one of whose mappings was moved by ``mremap(MREMAP_MAYMOVE | MREMAP_FIXED)`` (the
moved VMA keeps the page offset of its old address), shared by a fork tree, is

- **reclaim**: swapped out under memory pressure (Hugh Dickins' report on v3):
  mm/vmscan.c ``shrink_folio_list()`` -> ``try_to_unmap()`` -> ``rmap_walk_ksm()`` with
  ``try_to_unmap_one``.  ``madvise(MADV_PAGEOUT)`` cannot do it: mm/madvise.c
  ``madvise_cold_or_pageout_pte_range()`` skips a folio whose mapcount is not its number of
  pages, i.e. every shared KSM page.  So the guest (``mem=`` :data:`RECLAIM_MEM`) fills
  memory in steps until every mapping is swapped out or a limit is reached; swap is zram
  (``CONFIG_ZRAM``), written and enabled by the guest program itself (swap header,
  ``swapon(2)``);
- **hwpoison** (and **hwpoison-split**, the same on the v4 benchmark's shape: 32 pages, every
  even one read-only, so that the anon_vma trees hold many VMAs that do not cover the page's
  index): poisoned with ``madvise(MADV_HWPOISON)``: mm/memory-failure.c
  ``memory_failure()`` -> ``hwpoison_user_mappings()`` -> ``collect_procs_ksm()`` (counted by
  the ``ksm:collect_procs_ksm`` event of patch 0008/0009), then ``try_to_unmap()``;
  ``vm.memory_failure_early_kill=1``, so that collect_procs_ksm() searches every process;
- **selftest**: the merged selftest's shape (``ksm_and_mremap``): every process sets
  ``PR_SET_MEMORY_MERGE`` and writes its 2 pages of 0x77, a worker moves page 2 onto page 1,
  KSM merges, the worker retries ``move_pages()`` up to 100 times, every process compares its
  pfn with the migrated one.

Reclaim first records a ``madvise(MADV_PAGEOUT)`` of the root's mappings (trigger window
``op=pageout``, result ``pageout_present``: the mappings still present after it), as evidence
that it skips the shared KSM page; the walks of the path are those of its own trigger
window (``op=reclaim``).

on the *path variants* of kernels.yaml (``baseline-paths``, ``patched-paths``,
``naive-paths``, ``merged-paths``: the variant plus 0008/0009, configured with
``paths.config`` too).  The guest program is ``paths-guest/paths.c`` (static, built by
:func:`rmapwalk.measure.initramfs.build_static`); one run is one boot of the replayer's guest
(:func:`rmapwalk.measure.vm.boot`) with the paths program in place of the replayer.  Every
process records its ``/proc/self/pagemap`` entries before and after the trigger.  This is a
kernel-only measurement: the model has no swap and no memory failure, and nothing here
imports it.

The run folder (:mod:`rmapwalk.dataset` layout, scenario = the path)::

    data/paths/<path>/<base>/<variant>/run-<k>/
        walks.csv          contract.MEASURED_WALK_COLUMNS: the rmap walks of the trigger window
        outcomes.csv       contract.OUTCOME_COLUMNS: the trigger's one row
        events.csv.gz      every rmap_walk event of the boot (programs.EVENT_COLUMNS)
        collect_procs.csv  every ksm:collect_procs_ksm event (COLLECT_COLUMNS)
        mappings.csv       MAPPING_COLUMNS: per process and page, pagemap before and after
        result.csv         RESULT_COLUMNS: the merge and the trigger, one row
        trace.txt.gz  console.log.gz  manifest.json

A run folder appears whole or not at all (built beside its place, then renamed); a failed
boot writes nothing there and keeps its console under ``build/failed/``.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import re
import sys
import time
from pathlib import Path

from rmapwalk import contract, dataset, kernels as kernel_list, outputs, paths
from rmapwalk.measure import capture as capture_mod, guestrun, initramfs, programs, trace, vm

ROOT = paths.DATA / "paths"
GUEST_DIR = Path(__file__).resolve().parent / "paths-guest"
VARIANTS = kernel_list.path_variants()   # kernel-config/kernels.yaml: the variants with fragments
DEFAULT_TIMEOUT = 600.0
RECLAIM_MEM = "mem=256M"            # the guest's usable memory for reclaim (QEMU has -m 1024)

_COMMON = {"depth": 2, "fanout": 2, "mover": 6, "full_scans": 2, "max_seconds": 300,
           "retries": 100, "hog_max_mb": 0, "hog_step_mb": 8, "zram_mb": 0, "early_kill": 0,
           "buffer_kb": 0, "ksm_walks_only": 0, "split": 0}
# Hugh's shape: 3 pages, merged, then forked; the mover moves page 1 onto page 2.
_HUGH = {"pages": 3, "byte": 0x77, "move_src": 0, "move_dst": 1, "merge_before_fork": 1,
         "prctl": 0}
PATHS = {
    "reclaim": {**_COMMON, **_HUGH, "hog_max_mb": 768, "hog_step_mb": 32, "zram_mb": 1536,
                "buffer_kb": 8192, "ksm_walks_only": 1},
    "hwpoison": {**_COMMON, **_HUGH, "early_kill": 1},
    # memory failure on the v4 benchmark's shape: 32 pages, every even one made read-only
    # (32 VMAs in one anon_vma, and in every child's), so that [0, ULONG_MAX] meets many VMAs
    # that do not cover the page's index (223 mappings: under max_page_sharing, one KSM page)
    "hwpoison-split": {**_COMMON, **_HUGH, "pages": 32, "early_kill": 1, "split": 1},
    "selftest": {**_COMMON, "pages": 2, "byte": 0x77, "move_src": 1, "move_dst": 0,
                 "merge_before_fork": 0, "prctl": 1},
}
APPEND = {"reclaim": RECLAIM_MEM}
PROGRAM_PATH = {"hwpoison-split": "hwpoison"}     # the guest program's path= of a path
OPS = {"reclaim": "reclaim", "hwpoison": "hwpoison", "hwpoison-split": "hwpoison",
       "selftest": "migrate"}

MAP_RE = re.compile(r"^RMAPWALK-PATHS-MAP (.*)$", re.M)
RESULT_RE = re.compile(r"^RMAPWALK-PATHS-RESULT (.*)$", re.M)
MERGED_RE = re.compile(r"^RMAPWALK-PATHS-MERGED (.*)$", re.M)
DONE_RE = re.compile(r"^RMAPWALK-PATHS-DONE path=(\S+)\s*$", re.M)
MF_RE = re.compile(r"Memory failure: (.*)$", re.M)
COLLECT_RE = re.compile(
    r"^pfn=(?P<pfn>0x[0-9a-f]+|0) index=(?P<index>0x[0-9a-f]+|0) rmap_items=(?P<rmap_items>\d+) "
    r"tasks=(?P<tasks>\d+) iterations=(?P<iterations>\d+) skip_mm=(?P<skip_mm>\d+) "
    r"matched=(?P<matched>\d+) procs=(?P<procs>\d+)\s*$")
COLLECT_FORMAT = ("pfn=%#lx index=%#lx rmap_items=%lu tasks=%lu iterations=%lu skip_mm=%lu "
                  "matched=%lu procs=%lu")
MAP_INTS = ("proc", "pid", "ppid", "page", "moved", "hole", "pre", "post", "sigbus",
            "sigbus_code")
MAPPING_COLUMNS = MAP_INTS
RESULT_INTS = ("procs", "pages", "mover", "ksm_pfn", "result", "tries", "node_before",
               "target", "node_after", "pfn_before", "pfn_after", "hog_mb", "pswpout",
               "pgmigrate_success", "pageout_rc", "pageout_present")
MERGED_KEYS = ("merge_seconds", "full_scans", "merge_before_fork_seconds",
               "full_scans_before_fork", "pages_shared", "pages_sharing")
RESULT_COLUMNS = ("path", "op", *RESULT_INTS, "errno", *MERGED_KEYS)
COLLECT_COLUMNS = ("seq", "task", "task_pid", "timestamp", "pfn", "index", "rmap_items",
                   "tasks", "iterations", "skip_mm", "matched", "procs")


class PathsRunError(guestrun.GuestRunError):
    """A boot that did not give a complete result; ``console`` is the guest's console."""


# --- the guest -----------------------------------------------------------------------------
def program_text(path: str) -> str:
    """``/program.txt`` for the guest program: the path's parameters as key=value lines."""
    if path not in PATHS:
        raise outputs.UsageError(f"no path {path!r}; paths: {', '.join(PATHS)}")
    return f"path={PROGRAM_PATH.get(path, path)}\n" + "".join(
        f"{k}={v}\n" for k, v in sorted(PATHS[path].items()))


def guest_key() -> str:
    """sha256 of the guest program's sources (paths.c, its Makefile, guest.h)."""
    return guestrun.source_key(GUEST_DIR, "paths.c")


def guest_binary() -> Path:
    """The cached static guest program (built on first use), named by its sources' sha256."""
    return guestrun.cached_binary(GUEST_DIR, "paths.c", "paths")


def guest_initramfs(path: str, dest: Path) -> Path:
    """The replayer's base archive, then one that replaces /replayer by the paths program
    and holds its /program.txt (the kernel unpacks the archives in order)."""
    return guestrun.overlay_initramfs(guest_binary(), program_text(path), dest)


def boot_guest(image: Path, path: str, workdir: Path, timeout: float,
               qemu: str | None = None) -> tuple[str, str, list[str], float, float | None]:
    """One boot; (console, decoded ttyS1 stream, QEMU command, wall seconds, boot seconds).
    A panic, a missing exit status, a failed program or a truncated stream raise
    :class:`PathsRunError`."""
    workdir.mkdir(parents=True, exist_ok=True)
    initrd = guest_initramfs(path, workdir / "initramfs.cpio.gz")
    return guestrun.boot(image, initrd, workdir, timeout, PathsRunError, "paths program",
                         append_extra=APPEND.get(path, ""), qemu=qemu)


# --- what came back ------------------------------------------------------------------------
def _kv(line: str, where: str, lineno: int, ints: tuple[str, ...]) -> dict:
    kv = dict(t.split("=", 1) for t in line.split() if "=" in t)
    row = {}
    for key in ints:
        try:
            row[key] = int(kv[key], 0)
        except (KeyError, ValueError):
            raise PathsRunError(f"{where}:{lineno}: {key} missing or not an integer in "
                                f"{line[:200]!r}") from None
    return {**kv, **row}


def _lineno(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def parse_console(console: str, path: str, where: str = "<console>") -> tuple[list[dict], dict]:
    """The program's mapping lines and its result (with the merge's numbers), checked: every
    field there, one result of this path, every process and page once, the final line seen."""
    text = console.replace("\r", "")
    program = PROGRAM_PATH.get(path, path)
    done = DONE_RE.search(text)
    if not done or done.group(1) != program:
        raise PathsRunError(f"{where}: no 'RMAPWALK-PATHS-DONE path={program}' line: the "
                            "program did not finish")
    results = list(RESULT_RE.finditer(text))
    merged = list(MERGED_RE.finditer(text))
    if len(results) != 1 or len(merged) != 1:
        raise PathsRunError(f"{where}: expected one RESULT and one MERGED line, found "
                            f"{len(results)} and {len(merged)}")
    res = _kv(results[0].group(1), where, _lineno(text, results[0].start()), RESULT_INTS)
    if res.get("path") != program or res.get("op") != OPS[path] or "errno" not in res:
        raise PathsRunError(f"{where}:{_lineno(text, results[0].start())}: a result of path "
                            f"{res.get('path')!r} op {res.get('op')!r}, expected {program!r} "
                            f"{OPS[path]!r} with an errno")
    mline = merged[0].group(1)
    mkv = dict(t.split("=", 1) for t in mline.split() if "=" in t)
    for key in MERGED_KEYS:
        try:
            res[key] = float(mkv[key]) if "seconds" in key else int(mkv[key])
        except (KeyError, ValueError):
            raise PathsRunError(f"{where}:{_lineno(text, merged[0].start())}: {key} missing "
                                f"or not a number in the MERGED line") from None
    rows, seen = [], set()
    for m in MAP_RE.finditer(text):
        row = _kv(m.group(1), where, _lineno(text, m.start()), MAP_INTS)
        row = {k: row[k] for k in MAPPING_COLUMNS}
        key = (row["proc"], row["page"])
        if key in seen:
            raise PathsRunError(f"{where}:{_lineno(text, m.start())}: process {key[0]} page "
                                f"{key[1]} reported twice")
        seen.add(key)
        rows.append(row)
    want = {(i, k) for i in range(res["procs"]) for k in range(res["pages"])}
    if seen != want:
        raise PathsRunError(f"{where}: mapping lines for {len(seen)} (process, page) pairs, "
                            f"expected {len(want)} ({res['procs']} processes x {res['pages']} "
                            "pages)")
    return rows, {k: res[k] for k in RESULT_COLUMNS}


def parse_collect(text: str, where: str = "<trace>") -> list[dict]:
    """Every ``ksm:collect_procs_ksm`` event of a decoded trace stream (COLLECT_COLUMNS)."""
    out = []
    for lineno, line in enumerate(text.replace("\r", "").split("\n"), 1):
        m = trace.LINE_RE.match(line)
        if not m or m.group("event") != "collect_procs_ksm":
            continue
        c = COLLECT_RE.match(m.group("payload"))
        if not c:
            raise PathsRunError(f"{where}:{lineno}: malformed collect_procs_ksm event; "
                                f"expected {COLLECT_FORMAT!r}, got {m.group('payload')[:200]!r}")
        out.append({"seq": len(out), "task": m.group("task").strip(),
                    "task_pid": int(m.group("pid")), "timestamp": m.group("ts"),
                    **{k: int(v, 0) for k, v in c.groupdict().items()}})
    return out


def outcome(path: str, res: dict) -> dict:
    """contract.OUTCOME_COLUMNS for the trigger: move_pages' terms for migrate; for reclaim
    ``ok`` when no mapping stayed present (``result`` counts those), for hwpoison when
    madvise() returned 0."""
    page = PATHS[path]["move_dst"] if path == "selftest" else 0
    if path == "selftest":
        rc = res["result"]
        result = ("error" if rc < 0 else "not-migrated" if rc > 0
                  else "moved" if res["node_after"] == res["target"] else "stayed")
    else:
        result = "ok" if res["result"] == 0 else "error"
    errno = res["errno"] if res["errno"] != "0" else (
        "" if result in ("ok", "moved") or path == "selftest" else "mapped")
    return {"step": 1, "region": "A", "page": page, "proc": res["mover"] if path == "selftest"
            else 0, "op": OPS[path], "result": result, "errno": errno,
            "from_node": res["node_before"] if path == "selftest" else "",
            "to_node": res["target"] if path == "selftest" else "",
            "pfn": res["pfn_after"] if path == "selftest" else res["ksm_pfn"]}


def summarize(path: str, mappings: list[dict], res: dict, events: list[dict],
              collect: list[dict]) -> dict:
    """The run's counts for the manifest and the log line (the analysis recomputes them)."""
    ksm = [e for e in events if e["page_type"] == "ksm" and e["op"] == OPS[path]]
    of_ksm = [m for m in mappings if not m["hole"] and m["pre"] >> 63
              and m["pre"] & ((1 << 55) - 1) == res["ksm_pfn"]]
    if path == "selftest":
        moved = res["pfn_after"] != res["pfn_before"] and res["result"] == 0
        found = [m for m in of_ksm if moved and m["post"] >> 63
                 and m["post"] & ((1 << 55) - 1) == res["pfn_after"]]
    else:
        found = [m for m in of_ksm if not m["post"] >> 63 and (m["post"] >> 62) & 1]
    return {"mappings": len(of_ksm), "found": len(found), "missed": len(of_ksm) - len(found),
            "ksm_walks": len(ksm), "ksm_iterations": sum(e["iterations"] for e in ksm),
            "collect_procs_ksm": len(collect),
            "collect_iterations": sum(c["iterations"] for c in collect),
            "result": res["result"], "errno": res["errno"]}


# --- one run -------------------------------------------------------------------------------
def _say(msg: str) -> None:
    print(f"paths: {msg}", file=sys.stderr, flush=True)


def kernel_image(base: str, variant: str) -> tuple[Path, dict]:
    """The cached kernel image and its provenance; never builds (``rmapwalk kernel build``)."""
    return guestrun.kernel_image(base, variant, build=False)


def write_run(path: str, base: str, variant: str, provenance: dict, out_root: Path,
              console: str, stream: str, parsed, collect: list[dict], mappings: list[dict],
              res: dict, cmd: list[str], timing: dict, run: int | None = None) -> Path:
    """Write run folder ``run`` (default: the next number) atomically; its path."""
    page = PATHS[path]["move_dst"] if path == "selftest" else 0
    walks = [{**{k: w[k] for k in contract.MEASURED_WALK_COLUMNS}, "region": "A", "page": page}
             for w in parsed.walks]
    text = program_text(path)
    with guestrun.new_run(out_root, path, base, variant, run) as (staging, dest):
        capture_mod._gzip_to(staging / "trace.txt.gz", stream)
        capture_mod._gzip_to(staging / "console.log.gz", console)
        contract.write_csv(staging / "walks.csv", walks, contract.MEASURED_WALK_COLUMNS)
        contract.write_csv(staging / "outcomes.csv", [outcome(path, res)],
                           contract.OUTCOME_COLUMNS)
        contract.write_csv(staging / "mappings.csv", mappings, MAPPING_COLUMNS)
        contract.write_csv(staging / "result.csv", [res], RESULT_COLUMNS)
        contract.write_csv(staging / "collect_procs.csv", collect, COLLECT_COLUMNS)
        buf = io.StringIO()
        contract.write_csv(buf, parsed.events, programs.EVENT_COLUMNS)
        capture_mod._gzip_to(staging / "events.csv.gz", buf.getvalue())
        dataset.write_manifest(staging, {
            "kind": "rmapwalk paths run",
            "kernel": provenance,
            "qemu": guestrun.qemu_manifest(cmd),
            "scenario": {"name": path, "sha256": hashlib.sha256(text.encode()).hexdigest(),
                         "program": text, "defined_in": "src/rmapwalk/measure/paths.py PATHS"},
            "guest": {"paths_sha256": dataset.sha256_file(guest_binary()),
                      "paths_source_sha256": guest_key(),
                      "initramfs_base": initramfs.base_key(),
                      "append": APPEND.get(path, "")},
            "memory_failure_console": MF_RE.findall(console),
            "timing": timing,
            "summary": summarize(path, mappings, res, parsed.events, collect),
        })
    return dest


def capture_one(path: str, base: str, variant: str, image: Path, provenance: dict,
                out_root: Path, timeout: float, run: int | None = None,
                qemu: str | None = None) -> Path | None:
    """One boot into run folder ``run`` (default: the next); None after a failure (its
    console kept under build/failed/, nothing written under ``out_root``)."""
    where = f"{path}/{base}/{variant}"

    def attempt(workdir: Path) -> tuple:
        console, stream, cmd, wall, booted = boot_guest(image, path, workdir, timeout, qemu)
        parsed = programs.parse_trace(stream, f"{where}/trace.txt")
        collect = parse_collect(stream, f"{where}/trace.txt")
        mappings, res = parse_console(console, path, f"{where}/console.log")
        return console, stream, cmd, wall, booted, parsed, collect, mappings, res

    got = guestrun.boot_or_keep("paths", where, f"paths-{path}", f"{base}-{variant}",
                                out_root, _say, attempt)
    if got is None:
        return None
    console, stream, cmd, wall, booted, parsed, collect, mappings, res = got
    dest = write_run(path, base, variant, provenance, out_root, console, stream, parsed,
                     collect, mappings, res, cmd, guestrun.timing(console, wall, booted), run)
    s = summarize(path, mappings, res, parsed.events, collect)
    _say(f"{where} {dest.name}: {wall:.0f} s; {s['found']}/{s['mappings']} mappings reached, "
         f"{s['ksm_walks']} KSM walks ({s['ksm_iterations']} iterations), "
         f"{s['collect_procs_ksm']} collect_procs_ksm ({s['collect_iterations']} iterations), "
         f"result {s['result']} {s['errno']} -> {dest}")
    return dest


def capture(names: list[str], base: str, variants: tuple[str, ...], runs: int, out_root: Path,
            timeout: float, qemu: str | None = None, only_missing: bool = True) -> int:
    """``runs`` boots of each path on each variant (``only_missing``: just the run numbers
    1..runs not yet in ``out_root``, so an interrupted capture resumes); the failures."""
    return guestrun.capture(names, base, variants, runs, out_root, timeout, qemu,
                            only_missing, _say, kernel_image, capture_one)


# --- command line --------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="paths_command", required=True)
    kl = kernel_list.load()
    c = sub.add_parser("capture", help="boot the path variants with reclaim, memory failure "
                                       "and the merged selftest's shape")
    c.add_argument("path", nargs="*", default=list(PATHS),
                   help=f"paths (default all: {', '.join(PATHS)})")
    c.add_argument("--kernel", default="all", metavar="V|all",
                   help=f"variant(s), comma-separated (default all: {', '.join(VARIANTS)})")
    c.add_argument("--base", choices=tuple(kl.bases), default=kl.default_base)
    c.add_argument("--runs", type=int, default=3, metavar="N",
                   help="boots per path and kernel (default 3); finished runs are kept")
    c.add_argument("--out", type=Path, default=None, help=f"output root (default {ROOT})")
    c.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"seconds one boot may take (default {DEFAULT_TIMEOUT:.0f})")
    c.set_defaults(func=run)
    v = sub.add_parser("verify", help="check a paths data folder (manifests, places, the plan "
                                      "data/paths/dataset.yaml)")
    v.add_argument("dir", nargs="?", type=Path, default=None, help=f"default {ROOT}")
    v.set_defaults(func=run)
    s = sub.add_parser("show", help="print a path's guest parameters (/program.txt)")
    s.add_argument("path", choices=tuple(PATHS))
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return guestrun.run_command("paths", _run, args)


def _run(args: argparse.Namespace) -> int:
    if args.paths_command == "show":
        sys.stdout.write(program_text(args.path))
        return 0
    if args.paths_command == "verify":
        return guestrun.verify(args.dir if args.dir is not None else ROOT, None, _say)
    guestrun.check_capture_args(args)
    for name in args.path:
        program_text(name)              # UsageError: not a path
    kl = kernel_list.load()
    variants = VARIANTS if args.kernel == "all" else \
        tuple(v for v in args.kernel.split(",") if v)
    for v in variants:
        if not kl.variant(v).fragments:
            raise outputs.UsageError(f"--kernel {v}: not a path variant (kernels.yaml "
                                     f"'fragment:'); path variants: {', '.join(VARIANTS)}")
        kl.patches(args.base, v, build=True)
    out_root = outputs.check_output_dir(args.out if args.out is not None else ROOT, "--out")
    t0 = time.monotonic()
    failures = capture(list(args.path), args.base, variants, args.runs, out_root,
                       args.timeout)
    _say(f"done in {time.monotonic() - t0:.0f} s, {failures} failed boot(s)")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    return guestrun.main("paths", __doc__, add_arguments, argv)


if __name__ == "__main__":
    sys.exit(main())
