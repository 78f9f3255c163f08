"""``rmapwalk capture`` and ``rmapwalk verify``: run a scenario on real kernels, keep the walks.

For each kernel (baseline, patched, naive) and run, capture boots the cached kernel image in
QEMU with the scenario's replayer program, parses the trace, and writes the run folder::

    OUT/<scenario>/<kernel>/run-<k>/
        trace.txt.gz     the ttyS1 stream: ftrace text with the replayer's markers
        console.log.gz   the guest console
        walks.csv        walks.COLUMNS + duration_ns, pfn, index, proc (one row per walk)
        outcomes.csv     one row per page of a migrate/idle step
        manifest.json    provenance and checksums (rmapwalk.measure.manifest)

A run folder appears whole or not at all: it is built in a temporary folder beside its
destination and renamed into place.  A failed run writes nothing under OUT; its console log
is kept under ``build/failed/`` and the path is printed.  Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import gzip
import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rmapwalk import paths, scenario as scenario_mod, walks
from rmapwalk.measure import initramfs, manifest, program as program_mod, trace as trace_mod, vm

KERNELS = ("baseline", "patched", "naive")
DEFAULT_TIMEOUT = 3600.0


def add_capture_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="scenario file or name under data/scenarios/")
    parser.add_argument("--kernel", choices=(*KERNELS, "all"), default="all",
                        help="which kernel build to boot (default: all three)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="boots per kernel (default 1); runs are numbered after existing ones")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output root (default {paths.TRACES})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                        help=f"seconds one VM run may take (default {DEFAULT_TIMEOUT:.0f})")
    parser.add_argument("--accel", choices=("auto", "tcg", "kvm"), default="tcg",
                        help="QEMU accelerator; auto/kvm first probe a short KVM boot "
                             "(default tcg)")
    parser.add_argument("--bzimage", type=Path, default=None,
                        help="boot this kernel image instead of the cached build "
                             "(testing; the manifest records it as unverified)")


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", type=Path, default=None,
                        help=f"tree of run folders to check (default {paths.TRACES})")


def _say(msg: str) -> None:
    print(f"capture: {msg}", file=sys.stderr, flush=True)


def _kernel(name: str, bzimage: Path | None) -> tuple[Path, dict]:
    """The kernel image and its provenance (rmapwalk.measure.kernel builds and caches it)."""
    if bzimage is not None:
        return bzimage, {"name": name, "image": str(bzimage),
                         "image_sha256": manifest.sha256_file(bzimage),
                         "note": "given with --bzimage; not built by rmapwalk.measure.kernel"}
    from rmapwalk.measure import kernel  # noqa: PLC0415 (another engineer's module, heavy)
    img = kernel.kernel_image(name, build=True)
    path = next(getattr(img, a) for a in ("bzimage", "path", "image") if hasattr(img, a))
    prov = dict(getattr(img, "provenance", {}) or {})
    prov.setdefault("name", name)
    prov.setdefault("image_sha256", manifest.sha256_file(Path(path)))
    return Path(path), prov


def _next_run(folder: Path) -> int:
    taken = [int(p.name[4:]) for p in folder.glob("run-*") if p.name[4:].isdigit()]
    return max(taken, default=0) + 1


def _gzip_to(path: Path, text: str) -> None:
    path.write_bytes(gzip.compress(text.encode(), compresslevel=6, mtime=0))


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="raise")
        w.writeheader()
        w.writerows(rows)


def _keep_failure(sc_name: str, kernel: str, workdir: Path, reason: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    dest = paths.BUILD / "failed" / f"{sc_name}-{kernel}-{stamp}"
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("console.log", "ttyS1.log", "qemu.out"):
        if (workdir / name).exists():
            shutil.copy2(workdir / name, dest / name)
    (dest / "reason.txt").write_text(reason + "\n")
    return dest


def _ksm_merges(console: str) -> list[dict]:
    """Full scans each ksm_merge step really ran: ksmd can finish a scan or two more between
    the replayer's 1 ms polls and its run=0 (which waits for the batch under way)."""
    return [{"step": int(m[1]), "full_scans_before": int(m[2]), "full_scans_after": int(m[3]),
             "seconds": float(m[4])}
            for m in re.finditer(r"rmapwalk-replayer: step (\d+): ksm full_scans (\d+) -> (\d+) "
                                 r"in ([\d.]+) s", console)]


def capture_one(sc, prog: str, kernel: str, image: Path, provenance: dict, accel: str,
                accel_reason: str, out_root: Path, timeout: float) -> Path | None:
    """One boot; returns the run folder, or None after a failure (reported on stderr)."""
    paths.BUILD.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paths.BUILD, prefix="vm-") as tmp:
        workdir = Path(tmp)
        t0 = time.monotonic()
        try:
            result = vm.run(image, prog, workdir, timeout, accel)
            parsed = trace_mod.parse(result.trace, f"{sc.name}/{kernel}/trace.txt")
        except (vm.VMRunError, trace_mod.TraceError) as e:
            reason = getattr(e, "reason", None) or str(e)
            kept = _keep_failure(sc.name, kernel, workdir, str(e))
            _say(f"{sc.name} on {kernel}: FAILED: {reason}")
            _say(f"console log kept in {kept}/console.log; nothing written under {out_root}")
            return None
        wall = time.monotonic() - t0
        folder = out_root / sc.name / kernel
        folder.mkdir(parents=True, exist_ok=True)
        run = _next_run(folder)
        dest = folder / f"run-{run}"
        staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".run-{run}.tmp-"))
        try:
            _gzip_to(staging / "trace.txt.gz", result.trace)
            _gzip_to(staging / "console.log.gz", result.console)
            _write_csv(staging / "walks.csv", (*walks.COLUMNS, *trace_mod.EXTRA_COLUMNS),
                       parsed.walks)
            _write_csv(staging / "outcomes.csv", trace_mod.OUTCOME_COLUMNS, parsed.outcomes)
            manifest.write(staging, {
                "kind": "rmapwalk capture run",
                "kernel": provenance,
                "qemu": {"version": vm.qemu_version(result.command[0]),
                         "command": result.command, "accel": accel,
                         "accel_reason": accel_reason},
                "scenario": {"name": sc.name, "sha256": sc.sha256, "path": str(sc.path)},
                "replayer": {"program_sha256": hashlib.sha256(prog.encode()).hexdigest(),
                             "initramfs_base": initramfs.base_key()},
                "timing": {"host_boot_seconds": result.boot_seconds,
                           "host_wall_seconds": round(result.wall_seconds, 3),
                           "guest_replay_uptime": result.guest_replay},
                "ksm_merges": _ksm_merges(result.console),
                "trace": {"rmap_walk_events": parsed.events, "walk_rows": len(parsed.walks),
                          "walks_outside_pages": dict(parsed.outside),
                          "outcomes": len(parsed.outcomes)},
            })
            staging.rename(dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        boot = f"{result.boot_seconds:.1f} s" if result.boot_seconds is not None else "?"
        _say(f"{sc.name} on {kernel} run-{run}: boot {boot}, total {wall:.1f} s, "
             f"{len(parsed.walks)} walks in pages, {parsed.outside_total} outside -> {dest}")
        return dest


def run_capture(args: argparse.Namespace) -> int:
    try:
        sc = scenario_mod.load(paths.scenario_path(args.scenario))
        prog = program_mod.compile_program(sc)
    except scenario_mod.ScenarioError as e:
        print(f"capture: {e}", file=sys.stderr)
        return 2
    if args.repeat < 1:
        print("capture: --repeat must be >= 1", file=sys.stderr)
        return 2
    out_root = args.out if args.out is not None else paths.TRACES
    kernels = KERNELS if args.kernel == "all" else (args.kernel,)
    failures = 0
    for kernel in kernels:
        _say(f"kernel {kernel}: getting the image (a build can take a while)")
        try:
            image, provenance = _kernel(kernel, args.bzimage)
            paths.BUILD.mkdir(parents=True, exist_ok=True)
            accel, why = vm.choose_accel(args.accel, image,
                                         paths.BUILD / f"kvm-probe-{os.getpid()}")
        except RuntimeError as e:  # KernelBuildError, VMRunError of the KVM probe
            _say(f"kernel {kernel}: {e}")
            failures += 1
            continue
        _say(f"kernel {kernel}: {image}; accelerator {accel} ({why})")
        for r in range(args.repeat):
            _say(f"{sc.name} on {kernel}: boot {r + 1}/{args.repeat} "
                 f"(timeout {args.timeout:.0f} s)")
            if capture_one(sc, prog, kernel, image, provenance, accel, why, out_root,
                           args.timeout) is None:
                failures += 1
    return 1 if failures else 0


def run_verify(args: argparse.Namespace) -> int:
    root = args.dir if args.dir is not None else paths.TRACES
    problems = manifest.verify(root)
    for p in problems:
        print(p)
    n = len(list(Path(root).rglob(manifest.NAME))) if Path(root).exists() else 0
    print(f"verify: {n} manifest(s) under {root}, {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0
