"""``rmapwalk capture`` and ``rmapwalk verify``: run a scenario on real kernels, keep the walks.

For each kernel (a base and a variant of ``kernel-config/kernels.yaml``) and run, capture
boots the cached kernel image in QEMU with the scenario's replayer program, parses the trace,
and writes the run folder (the layout of :mod:`rmapwalk.dataset`)::

    OUT/<scenario>/<base>/<variant>/run-<k>/
        trace.txt.gz     the ttyS1 stream: ftrace text with the replayer's markers
        console.log.gz   the guest console
        walks.csv        contract.MEASURED_WALK_COLUMNS (one row per walk)
        outcomes.csv     contract.OUTCOME_COLUMNS (one row per page of a migrate/idle step)
        manifest.json    provenance and checksums (rmapwalk.dataset.write_manifest)

Runs of a scenario whose text changed since the runs already in its folder were captured are
refused: they would mix two scenarios under one name (``verify`` would report it anyway).

A run folder appears whole or not at all: it is built in a temporary folder beside its
destination and renamed into place.  A failed run writes nothing under OUT; its console log
is kept under ``build/failed/<scenario>-<base>-<variant>-<time>-<pid>/`` and the path is
printed.  Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
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

from rmapwalk import contract, dataset, kernels as kernel_list, outputs, paths
from rmapwalk import scenario as scenario_mod
from rmapwalk.measure import initramfs, program as program_mod, trace as trace_mod, vm

DEFAULT_TIMEOUT = 3600.0


def add_capture_arguments(parser: argparse.ArgumentParser) -> None:
    kl = kernel_list.load()
    parser.add_argument("scenario", help="scenario file or name under data/scenarios/")
    parser.add_argument("--kernel", choices=(*kl.variants, "all"), default="all",
                        help="which variant to boot (default: all of the base's)")
    parser.add_argument("--base", choices=tuple(kl.bases), default=kl.default_base,
                        help=f"kernel source base (default {kl.default_base})")
    parser.add_argument("--run", type=int, default=None, metavar="K",
                        help="write exactly run-K (an error if it exists); the workflow "
                             "(workflow/Snakefile) captures one run folder per job this way")
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
    parser.add_argument("--plan", type=Path, default=None,
                        help="the data set the tree must hold exactly (default: "
                             f"{dataset.DATASET_FILE} for {paths.TRACES}, else DIR/dataset.yaml "
                             "if there is one)")
    parser.add_argument("--scenarios", type=Path, default=None,
                        help=f"the committed scenario files (default {paths.SCENARIOS})")


def _say(msg: str) -> None:
    print(f"capture: {msg}", file=sys.stderr, flush=True)


def _kernel(base: str, name: str, bzimage: Path | None) -> tuple[Path, dict]:
    """The kernel image and its provenance (rmapwalk.measure.kernel builds and caches it)."""
    if bzimage is not None:
        return bzimage, {"name": name, "base": base, "variant": name, "image": str(bzimage),
                         "image_sha256": dataset.sha256_file(bzimage),
                         "note": "given with --bzimage; not built by rmapwalk.measure.kernel"}
    from rmapwalk.measure import kernel  # noqa: PLC0415 (imports the build machinery)
    img = kernel.kernel_image(name, base=base, build=True)
    prov = dict(img.provenance)
    prov["image_sha256"] = dataset.sha256_file(img.bzimage)
    return img.bzimage, prov


def _next_run(folder: Path) -> int:
    taken = [int(p.name[4:]) for p in folder.glob("run-*") if p.name[4:].isdigit()]
    return max(taken, default=0) + 1


def check_scenario_folder(out_root: Path, sc) -> None:
    """Refuse to add runs of ``sc`` to a scenario folder whose runs were captured from
    another text of the scenario (their manifests' scenario sha256)."""
    folder = Path(out_root) / sc.name
    for m in sorted(folder.glob(f"*/*/run-*/{dataset.MANIFEST}")):
        try:
            sha = (dataset.read_manifest(m.parent).get("scenario") or {}).get("sha256")
        except dataset.DataIntegrityError:
            continue            # verify reports it; it is not ours to judge here
        if sha != sc.sha256:
            raise outputs.UsageError(
                f"--out {out_root}: {m} was captured from another text of scenario "
                f"{sc.name!r} (sha256 {str(sha)[:12]}, {sc.path} now {sc.sha256[:12]}); "
                "capture the changed scenario into a fresh folder or remove the old runs")


def _gzip_to(path: Path, text: str) -> None:
    path.write_bytes(gzip.compress(text.encode(), compresslevel=6, mtime=0))


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="raise")
        w.writeheader()
        w.writerows(rows)


def _keep_failure(sc_name: str, kernel: str, workdir: Path, reason: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    (paths.BUILD / "failed").mkdir(parents=True, exist_ok=True)
    # unique even for two failures in the same second (pid and a random suffix)
    dest = Path(tempfile.mkdtemp(prefix=f"{sc_name}-{kernel}-{stamp}-{os.getpid()}-",
                                 dir=paths.BUILD / "failed"))
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


def _write_run(sc, prog: str, base: str, kernel: str, provenance: dict, accel: str,
               accel_reason: str, out_root: Path, trace_text: str, console: str,
               parsed: trace_mod.Trace, command: list[str], timing: dict,
               extra: dict | None = None, run: int | None = None) -> Path:
    """Write run folder ``run`` (default: the next number) atomically (built beside its
    place, then renamed); its path."""
    folder = dataset.kernel_folder(out_root, sc.name, base, kernel)
    folder.mkdir(parents=True, exist_ok=True)
    run = _next_run(folder) if run is None else run
    dest = folder / f"run-{run}"
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".run-{run}.tmp-"))
    try:
        _gzip_to(staging / "trace.txt.gz", trace_text)
        _gzip_to(staging / "console.log.gz", console)
        _write_csv(staging / "walks.csv", contract.MEASURED_WALK_COLUMNS, parsed.walks)
        _write_csv(staging / "outcomes.csv", contract.OUTCOME_COLUMNS, parsed.outcomes)
        dataset.write_manifest(staging, {
            "kind": "rmapwalk capture run",
            "kernel": provenance,
            "qemu": {"version": vm.qemu_version(command[0]),
                     "command": command, "accel": accel,
                     "accel_reason": accel_reason},
            "scenario": {"name": sc.name, "sha256": sc.sha256, "path": str(sc.path)},
            "replayer": {"program_sha256": hashlib.sha256(prog.encode()).hexdigest(),
                         "initramfs_base": initramfs.base_key()},
            "timing": timing,
            "ksm_merges": _ksm_merges(console),
            "trace": {"rmap_walk_events": parsed.events, "walk_rows": len(parsed.walks),
                      "walks_outside_pages": dict(parsed.outside),
                      "outcomes": len(parsed.outcomes)},
            **(extra or {}),
        })
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def capture_one(sc, prog: str, base: str, kernel: str, image: Path, provenance: dict,
                accel: str, accel_reason: str, out_root: Path, timeout: float,
                run: int | None = None) -> Path | None:
    """One boot into run folder ``run`` (default: the next number); returns the run folder,
    or None after a failure (reported on stderr)."""
    paths.BUILD.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paths.BUILD, prefix="vm-") as tmp:
        workdir = Path(tmp)
        t0 = time.monotonic()
        try:
            result = vm.run(image, prog, workdir, timeout, accel)
            parsed = trace_mod.parse(result.trace, f"{sc.name}/{kernel}/trace.txt")
        except (vm.VMRunError, trace_mod.TraceError) as e:
            reason = getattr(e, "reason", None) or str(e)
            kept = _keep_failure(sc.name, f"{base}-{kernel}", workdir, str(e))
            _say(f"{sc.name} on {kernel}: FAILED: {reason}")
            _say(f"console log kept in {kept}/console.log; nothing written under {out_root}")
            return None
        wall = time.monotonic() - t0
        dest = _write_run(sc, prog, base, kernel, provenance, accel, accel_reason, out_root,
                          result.trace, result.console, parsed, result.command, {
                              "host_boot_seconds": result.boot_seconds,
                              "host_wall_seconds": round(result.wall_seconds, 3),
                              "guest_replay_uptime": result.guest_replay}, run=run)
        boot = f"{result.boot_seconds:.1f} s" if result.boot_seconds is not None else "?"
        _say(f"{sc.name} on {base}/{kernel} {dest.name}: boot {boot}, total {wall:.1f} s, "
             f"{len(parsed.walks)} walks in pages, {parsed.outside_total} outside -> {dest}")
        return dest


def _prepare_out(out: Path | None) -> Path:
    """The output root, checked before any kernel is built or booted."""
    return outputs.check_output_dir(out if out is not None else paths.TRACES, "--out")


def capture(sc, base: str, variants: tuple[str, ...], repeat: int, out_root: Path,
            timeout: float, accel_wanted: str, bzimage: Path | None,
            run: int | None = None) -> int:
    """``repeat`` boots of each variant on ``base`` (or one boot into run folder ``run``);
    returns the number of failed runs."""
    check_scenario_folder(out_root, sc)
    if run is not None:
        for kernel in variants:
            taken = dataset.run_folder(out_root, sc.name, base, kernel, run)
            if taken.exists():
                raise outputs.UsageError(f"--run {run}: {taken} exists already")
    prog = program_mod.compile_program(sc)
    failures = 0
    for kernel in variants:
        _say(f"kernel {base}/{kernel}: getting the image (a build can take a while)")
        try:
            image, provenance = _kernel(base, kernel, bzimage)
            paths.BUILD.mkdir(parents=True, exist_ok=True)
            accel, why = vm.choose_accel(accel_wanted, image,
                                         paths.BUILD / f"kvm-probe-{os.getpid()}")
        except RuntimeError as e:  # KernelBuildError, VMRunError of the KVM probe
            _say(f"kernel {base}/{kernel}: {e}")
            failures += 1
            continue
        _say(f"kernel {base}/{kernel}: {image}; accelerator {accel} ({why})")
        for r in range(repeat):
            _say(f"{sc.name} on {base}/{kernel}: boot {r + 1}/{repeat} "
                 f"(timeout {timeout:.0f} s)")
            if capture_one(sc, prog, base, kernel, image, provenance, accel, why, out_root,
                           timeout, run) is None:
                failures += 1
    return failures


def run_capture(args: argparse.Namespace) -> int:
    try:
        if args.repeat < 1:
            raise outputs.UsageError(f"--repeat {args.repeat}: expected an integer >= 1")
        outputs.check_seconds(args.timeout, "--timeout")
        run = args.run
        if run is not None and (run < 1 or args.repeat != 1):
            raise outputs.UsageError(f"--run {run}: expected an integer >= 1, with --repeat 1")
        out_root = _prepare_out(args.out)
        sc = scenario_mod.load(paths.scenario_path(args.scenario))
        kl = kernel_list.load()
        variants = tuple(v for b, v in kl.kernels() if b == args.base) \
            if args.kernel == "all" else (args.kernel,)
        for v in variants:
            kl.patches(args.base, v)        # KernelListError: no series for it on that base
        return 1 if capture(sc, args.base, variants, args.repeat, out_root, args.timeout,
                            args.accel, args.bzimage, run) else 0
    except (scenario_mod.ScenarioError, outputs.UsageError, kernel_list.KernelListError) as e:
        print(f"capture: {e}", file=sys.stderr)
        return 2


def run_verify(args: argparse.Namespace) -> int:
    root = args.dir if args.dir is not None else paths.TRACES
    try:
        kw = {k: v for k, v in (("plan", args.plan), ("scenarios", args.scenarios)) if v}
        problems = dataset.verify(root, **kw)
    except dataset.DataIntegrityError as e:      # the plan itself is unreadable
        problems = e.problems
    for p in problems:
        print(p)
    n = len(list(Path(root).rglob(dataset.MANIFEST))) if Path(root).exists() else 0
    print(f"verify: {n} manifest(s) under {root}, {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


# --- batches: many programs per boot (rmapwalk fuzz) ---------------------------------------

BATCH_BOOT_SECONDS = 120.0          # a batch's timeout: this plus PROGRAM_SECONDS per program
PROGRAM_SECONDS = 60.0


@dataclasses.dataclass
class BatchRun:
    """What one program of a batch boot gave: its run folder and what the replayer did."""

    scenario: object                 # scenario.Scenario
    folder: Path | None              # the run folder, None if the capture failed
    refused: dict | None = None      # {step, errno}: the replayer stopped at a failed step
    failure: str | None = None       # why nothing could be captured (panic, timeout, ...)
    walks: list = dataclasses.field(default_factory=list)       # MEASURED_WALK_COLUMNS
    outcomes: list = dataclasses.field(default_factory=list)    # OUTCOME_COLUMNS


@dataclasses.dataclass
class BatchTiming:
    boots: int = 0
    boot_seconds: float = 0.0        # host seconds from QEMU start to /init's first line
    wall_seconds: float = 0.0        # host seconds of the whole boots


def _batch_boot(scenarios: list, programs: list[str], base: str, kernel: str, image: Path,
                provenance: dict, accel: str, accel_reason: str, out_root: Path,
                timing: BatchTiming, qemu: str | None = None) -> dict[int, BatchRun]:
    """One boot running ``programs``; the results of the programs it got through."""
    paths.BUILD.mkdir(parents=True, exist_ok=True)
    timeout = BATCH_BOOT_SECONDS + PROGRAM_SECONDS * len(programs)
    out: dict[int, BatchRun] = {}
    with tempfile.TemporaryDirectory(dir=paths.BUILD, prefix="vm-batch-") as tmp:
        workdir = Path(tmp)
        initrd = initramfs.batch_initramfs_for(programs, workdir / "initramfs.cpio.gz")
        t0 = time.monotonic()
        cmd: list[str] = []
        booted = None
        problem = None
        try:
            _, cmd, booted, _ = vm.boot(image, initrd, workdir, timeout, accel, qemu=qemu)
        except vm.VMRunError as e:
            problem, cmd = e.reason, e.command
        wall = time.monotonic() - t0
        timing.boots += 1
        timing.boot_seconds += booted or 0.0
        timing.wall_seconds += wall
        console = vm._read(workdir / "console.log")
        raw = vm._read(workdir / "ttyS1.log")
        if problem is None and vm.PANIC_RE.search(console):
            problem = "kernel panic or oops: " + next(
                l for l in console.splitlines() if vm.PANIC_RE.search(l)).strip()
        if problem is None:
            err = re.search(r"RMAPWALK-ERROR (.*)", console)
            if err:
                problem = f"/init failed: {err.group(1).strip()}"
        parts = initramfs.split_batch(raw, console)
        for k, (trace_text, part, status) in sorted(parts.items()):
            sc = scenarios[k]
            if status is None:          # the boot ended inside this program
                reason = problem or "the boot ended inside this program"
                kept = _keep_failure(sc.name, f"{base}-{kernel}", workdir, reason)
                out[k] = BatchRun(sc, None, failure=f"{reason} (console kept in {kept})")
                continue
            try:
                parsed = trace_mod.parse(trace_text, f"{sc.name}/{kernel}/trace.txt",
                                         allow_error=True)
            except trace_mod.TraceError as e:
                kept = _keep_failure(sc.name, f"{base}-{kernel}", workdir, str(e))
                (kept / "program-console.log").write_text(part)
                out[k] = BatchRun(sc, None, failure=f"trace: {e} (console kept in {kept})")
                continue
            if status != 0 and parsed.error is None:
                kept = _keep_failure(sc.name, f"{base}-{kernel}", workdir, f"status {status}")
                (kept / "program-console.log").write_text(part)
                out[k] = BatchRun(sc, None, failure=f"the replayer exited with status {status} "
                                  f"without an error marker (console kept in {kept})")
                continue
            replay = re.search(r"RMAPWALK-REPLAYED seconds=(\S+)", part)
            extra = {"batch": {"index": k, "programs": len(programs),
                               "boot": {"host_boot_seconds": booted,
                                        "host_wall_seconds": round(wall, 3)}},
                     "replayer_exit": {"status": status, "refused": parsed.error}}
            dest = _write_run(sc, programs[k], base, kernel, provenance, accel, accel_reason,
                              out_root, trace_text, part, parsed, cmd,
                              {"host_boot_seconds": None, "host_wall_seconds": None,
                               "guest_replay_uptime": replay.group(1) if replay else None},
                              extra)
            out[k] = BatchRun(sc, dest, refused=parsed.error, walks=parsed.walks,
                              outcomes=parsed.outcomes)
        if problem and not parts:
            kept = _keep_failure(scenarios[0].name, f"{base}-{kernel}-batch", workdir, problem)
            _say(f"batch on {base}/{kernel}: {problem} (console kept in {kept})")
    return out


def capture_batch(scenarios: list, base: str, kernel: str, image: Path, provenance: dict,
                  out_root: Path, accel: str = "tcg", accel_reason: str = "asked for tcg",
                  timing: BatchTiming | None = None, qemu: str | None = None,
                  programs: list[str] | None = None) -> list[BatchRun]:
    """Replay ``scenarios`` on one kernel, all in one boot (a new boot goes on after a
    program that ended the boot); one :class:`BatchRun` per scenario, in order, each with its
    run folder ``out_root/<scenario>/<base>/<kernel>/run-<k>/`` (the usual files and a
    manifest whose ``batch`` says which boot and place)."""
    timing = timing if timing is not None else BatchTiming()
    programs = programs if programs is not None else \
        [program_mod.compile_program(sc) for sc in scenarios]
    results: dict[int, BatchRun] = {}
    todo = list(range(len(scenarios)))
    while todo:
        got = _batch_boot([scenarios[k] for k in todo], [programs[k] for k in todo], base,
                          kernel, image, provenance, accel, accel_reason, out_root, timing, qemu)
        if not got:              # nothing at all: every remaining program fails alike
            for k in todo:
                results[k] = BatchRun(scenarios[k], None, failure="the batch boot produced "
                                      "nothing (see build/failed/)")
            break
        done = {todo[j]: r for j, r in got.items()}
        results.update(done)
        todo = [k for k in todo if k not in done]
    return [results[k] for k in range(len(scenarios))]
