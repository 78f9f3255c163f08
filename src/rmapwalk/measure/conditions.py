"""``rmapwalk conditions``: the v4 benchmark under the conditions it was posted with (issue 10).

The reproduction's own benchmark (``data/scenarios/seed-benchmark.yaml``) splits the region
before MADV_MERGEABLE and parks ksmd (``run=0``) before it migrates, so every migration is
one unmap and one remap walk.  The posted ``rmap_benchmark`` (../shared/reference/FACTS.md,
"The v4 benchmark's exact conditions") splits *after* ``run=1`` and triggers with ksmd still
scanning at ``sleep_millisecs=0``, ``pages_to_scan=10000``; it reported 4 events.  This
module measures both setups with one guest program, on every captured kernel variant:

- a setup is a file ``data/conditions/<name>.yaml`` (``posted-benchmark``: as posted;
  ``own-benchmark``: the reproduction's order), checked by :func:`load_spec`;
- the guest program is ``conditions-guest/conditions.c``, a static binary built like the
  replayer (:func:`rmapwalk.measure.initramfs.build_static`), cached by its sources' sha256;
- one run is one boot of the replayer's guest (:mod:`rmapwalk.measure.initramfs`: the same
  /init, tracing setup and ttyS1 stream; :func:`rmapwalk.measure.vm.boot`), with a second cpio
  archive that puts the conditions program at ``/replayer`` and its parameters at
  ``/program.txt`` (the kernel unpacks the archives in order, the later file replaces the
  earlier);
- every ``rmap:rmap_walk`` event is kept, filed by the program's trigger markers
  (:func:`rmapwalk.measure.programs.parse_trace`, the launcher's marker vocabulary).

Because ksmd runs concurrently, what the trigger meets (ksmd holding a reference to or the
lock of the folio, a scan under way) is not deterministic: this is a kernel-only measurement,
like the real programs, and imports nothing of the model.

The run folder (:mod:`rmapwalk.dataset` layout; verify with ``rmapwalk conditions verify``)::

    data/conditions/runs/<setup>/<base>/<variant>/run-<k>/
        walks.csv      contract.MEASURED_WALK_COLUMNS: every walk inside a trigger window
                       (step = round, region A, page = the migrated page)
        outcomes.csv   contract.OUTCOME_COLUMNS: one row per round (moved, stayed,
                       not-migrated, error)
        events.csv.gz  every rmap_walk event of the boot (programs.EVENT_COLUMNS)
        rounds.csv     ROUND_COLUMNS: what the program printed per round (KSM counters,
                       full_scans, move_pages' result, pfns, pgmigrate deltas)
        trace.txt.gz  console.log.gz  manifest.json

A run folder appears whole or not at all (built beside its place, then renamed); a failed
boot writes nothing there and keeps its console under ``build/failed/``.  ``capture --plan``
captures ``runs/dataset.yaml`` into ``build/conditions.new/`` (resuming: finished runs are
kept), verifies it, and only then replaces ``data/conditions/runs``.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import gzip
import hashlib
import io
import os
import re
import shutil
import sys
import time
from pathlib import Path

from rmapwalk import contract, dataset, kernels as kernel_list, outputs, paths
from rmapwalk.measure import capture as capture_mod, guestrun, initramfs, programs, vm

SPECS = paths.DATA / "conditions"
RUNS = SPECS / "runs"
NEW = paths.BUILD / "conditions.new"
GUEST_DIR = Path(__file__).resolve().parent / "conditions-guest"
DEFAULT_TIMEOUT = 900.0
NAME_RE = guestrun.NAME_RE
KSM_KEYS = ("sleep_millisecs", "pages_to_scan", "full_scans", "poll_ms", "max_seconds")
# key -> (lowest, highest) allowed, as the guest program checks them too
LIMITS = {"pages": (2, 1 << 20), "byte": (0, 255), "page": (0, (1 << 20) - 1),
          "rounds": (1, 100), "sleep_millisecs": (0, 100000), "pages_to_scan": (1, 1 << 20),
          "full_scans": (0, 100), "poll_ms": (1, 60000), "max_seconds": (1, 3600),
          "settle_ms": (0, 60000)}
SWITCHES = ("split_before_merge", "stop_before_trigger")
SPEC_KEYS = {"name", "description", "pages", "byte", "page", "rounds", "ksm", "settle_ms",
             *SWITCHES}
ROUND_MARK = "RMAPWALK-CONDITIONS"
DONE_MARK = "RMAPWALK-CONDITIONS-DONE"
ROUND_INTS = ("round", "full_scans_before", "full_scans_after", "polls", "merge_timeout",
              "pages_shared", "pages_sharing", "stable_node_chains", "stable_node_dups",
              "node_before", "target", "move_pages", "status", "node_after", "pfn_before",
              "pfn_after", "pgmigrate_success", "pgmigrate_fail", "full_scans_end", "ksm_run")
ROUND_COLUMNS = (*ROUND_INTS, "errno", "merge_seconds", "move_seconds", "walks", "ksm_walks")


class SpecError(ValueError):
    """A setup file that cannot be used; the message names the file and the key."""


class ConditionsRunError(guestrun.GuestRunError):
    """A boot that did not give a complete result; ``console`` is the guest's console."""


# --- setup files ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    path: Path
    sha256: str
    params: dict            # the guest program's key=value parameters (ints)


def spec_path(name_or_path: str) -> Path:
    return guestrun.named_file(name_or_path, SPECS)


def load_spec(name_or_path: str) -> Spec:
    """Read and check a setup file; :class:`SpecError` names the file and the key."""
    path = spec_path(name_or_path)
    raw, doc = guestrun.read_mapping(path, SpecError, "setup", SPEC_KEYS)
    unknown = sorted(set(doc) - SPEC_KEYS)
    missing = sorted(SPEC_KEYS - {"description"} - set(doc))
    if unknown or missing:
        raise SpecError(f"{path}: unknown key(s) {unknown}, missing key(s) {missing}")
    name = doc["name"]
    guestrun.check_name(path, name, SpecError)
    ksm = doc["ksm"]
    if not isinstance(ksm, dict) or set(ksm) != set(KSM_KEYS):
        raise SpecError(f"{path}: ksm: expected exactly {', '.join(KSM_KEYS)}")
    params = {}
    for key, value in [*((k, doc[k]) for k in ("pages", "byte", "page", "rounds", "settle_ms")),
                       *((k, ksm[k]) for k in KSM_KEYS)]:
        lo, hi = LIMITS[key]
        where = f"ksm.{key}" if key in KSM_KEYS else key
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise SpecError(f"{path}: {where}: expected an integer in [{lo}, {hi}], got {value!r}")
        params[key] = value
    if params["page"] >= params["pages"]:
        raise SpecError(f"{path}: page: {params['page']} is not in the region of "
                        f"{params['pages']} pages")
    for key in SWITCHES:
        if not isinstance(doc[key], bool):
            raise SpecError(f"{path}: {key}: expected true or false, got {doc[key]!r}")
        params[key] = int(doc[key])
    return Spec(str(name), path, hashlib.sha256(raw).hexdigest(), params)


def program_text(spec: Spec) -> str:
    """``/program.txt`` for the guest program: its parameters as key=value lines."""
    return "".join(f"{k}={v}\n" for k, v in spec.params.items())


# --- the guest -----------------------------------------------------------------------------
def guest_key() -> str:
    """sha256 of the guest program's sources (conditions.c, its Makefile, guest.h)."""
    return guestrun.source_key(GUEST_DIR, "conditions.c")


def guest_binary() -> Path:
    """The cached static guest program (built on first use), named by its sources' sha256."""
    return guestrun.cached_binary(GUEST_DIR, "conditions.c", "conditions")


def guest_initramfs(spec: Spec, dest: Path) -> Path:
    """The replayer's base archive, then one that replaces /replayer by the conditions
    program and holds its /program.txt."""
    return guestrun.overlay_initramfs(guest_binary(), program_text(spec), dest)


def boot_guest(image: Path, spec: Spec, workdir: Path, timeout: float,
               qemu: str | None = None) -> tuple[str, str, list[str], float, float | None]:
    """One boot; (console, decoded ttyS1 stream, QEMU command, wall seconds, boot seconds).
    A panic, a missing exit status, a failed program or a truncated stream raise
    :class:`ConditionsRunError`."""
    workdir.mkdir(parents=True, exist_ok=True)
    initrd = guest_initramfs(spec, workdir / "initramfs.cpio.gz")
    return guestrun.boot(image, initrd, workdir, timeout, ConditionsRunError,
                         "conditions program", qemu=qemu)


# --- what came back ------------------------------------------------------------------------
def parse_rounds(console: str, rounds: int, where: str = "<console>") -> list[dict]:
    """The program's ``RMAPWALK-CONDITIONS`` lines, one per round 1..``rounds``, checked:
    every field there and well-formed, no round missing or twice, the final line seen."""
    out: dict[int, dict] = {}
    for lineno, line in enumerate(console.replace("\r", "").split("\n"), 1):
        line = line.strip()
        if not line.startswith(ROUND_MARK + " "):
            continue
        kv = dict(t.split("=", 1) for t in line.split()[1:] if "=" in t)
        row: dict = {}
        for key in ROUND_INTS:
            if not re.fullmatch(r"-?\d+", kv.get(key, "")):
                raise ConditionsRunError(f"{where}:{lineno}: {ROUND_MARK} line: {key} missing "
                                         f"or not an integer: {line[:200]!r}")
            row[key] = int(kv[key])
        for key in ("merge_seconds", "move_seconds"):
            try:
                row[key] = float(kv[key])
            except (KeyError, ValueError):
                raise ConditionsRunError(f"{where}:{lineno}: {ROUND_MARK} line: {key} missing "
                                         f"or not a number: {line[:200]!r}") from None
        if "errno" not in kv:
            raise ConditionsRunError(f"{where}:{lineno}: {ROUND_MARK} line: errno missing")
        row["errno"] = kv["errno"]
        if row["round"] in out:
            raise ConditionsRunError(f"{where}:{lineno}: round {row['round']} reported twice")
        out[row["round"]] = row
    if sorted(out) != list(range(1, rounds + 1)):
        raise ConditionsRunError(f"{where}: expected rounds 1..{rounds}, the program reported "
                                 f"{sorted(out) or 'none'}")
    if not re.search(rf"^{re.escape(DONE_MARK)} rounds={rounds}\s*$", console, flags=re.M):
        raise ConditionsRunError(f"{where}: no '{DONE_MARK} rounds={rounds}' line: the program "
                                 "did not finish")
    return [out[r] for r in sorted(out)]


def outcome(row: dict, page: int) -> dict:
    """contract.OUTCOME_COLUMNS for one round, in move_pages' terms (contract.OUTCOMES)."""
    rc = row["move_pages"]
    if rc < 0:
        result = "error"
    elif rc > 0:
        result = "not-migrated"
    else:
        result = "moved" if row["node_after"] == row["target"] else "stayed"
    return {"step": row["round"], "region": "A", "page": page, "proc": 0, "op": "migrate",
            "result": result, "errno": row["errno"] if row["errno"] != "0" else "",
            "from_node": row["node_before"], "to_node": row["target"], "pfn": row["pfn_after"]}


def summarize(events: list[dict], rounds: list[dict]) -> dict:
    """The run's counts for the manifest (the analysis recomputes everything from the
    tables): rmap_walk events inside and outside the trigger windows, per round and reason."""
    per_round = {}
    for r in rounds:
        inside = [e for e in events if e["step"] == r["round"]]
        ksm = [e for e in inside if e["page_type"] == "ksm"]
        per_round[str(r["round"])] = {
            "events": len(inside), "ksm_events": len(ksm),
            "by_reason": {k: sum(1 for e in ksm if e["rmap_one_fn"] == k)
                          for k in sorted({e["rmap_one_fn"] for e in ksm})},
            "ksm_ms_max": round(max((e["duration_ns"] for e in ksm), default=0) / 1e6, 3),
            "move_pages": r["move_pages"], "node_after": r["node_after"]}
    return {"events": len(events), "ksm_events": sum(e["page_type"] == "ksm" for e in events),
            "outside_triggers": sum(e["step"] == "" for e in events), "rounds": per_round}


# --- one run -------------------------------------------------------------------------------
def _say(msg: str) -> None:
    print(f"conditions: {msg}", file=sys.stderr, flush=True)


def kernel_image(base: str, variant: str) -> tuple[Path, dict]:
    """The cached kernel image and its provenance; never builds (``rmapwalk kernel build``)."""
    return guestrun.kernel_image(base, variant, build=False)


def _gzip_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="raise", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path.write_bytes(gzip.compress(buf.getvalue().encode(), 6, mtime=0))


def write_run(spec: Spec, base: str, variant: str, provenance: dict, out_root: Path,
              console: str, trace_text: str, parsed, rounds: list[dict], cmd: list[str],
              timing: dict, run: int | None = None) -> Path:
    """Write run folder ``run`` (default: the next number) atomically; its path."""
    page = spec.params["page"]
    walks = [{**{k: w[k] for k in contract.MEASURED_WALK_COLUMNS}, "region": "A", "page": page}
             for w in parsed.walks]
    per_round = {r["round"]: (sum(1 for e in parsed.events if e["step"] == r["round"]),
                              sum(1 for e in parsed.events if e["step"] == r["round"]
                                  and e["page_type"] == "ksm")) for r in rounds}
    round_rows = [{**r, "walks": per_round[r["round"]][0], "ksm_walks": per_round[r["round"]][1]}
                  for r in rounds]
    with guestrun.new_run(out_root, spec.name, base, variant, run) as (staging, dest):
        capture_mod._gzip_to(staging / "trace.txt.gz", trace_text)
        capture_mod._gzip_to(staging / "console.log.gz", console)
        contract.write_csv(staging / "walks.csv", walks, contract.MEASURED_WALK_COLUMNS)
        contract.write_csv(staging / "outcomes.csv", [outcome(r, page) for r in rounds],
                           contract.OUTCOME_COLUMNS)
        contract.write_csv(staging / "rounds.csv", round_rows, ROUND_COLUMNS)
        _gzip_csv(staging / "events.csv.gz", programs.EVENT_COLUMNS, parsed.events)
        dataset.write_manifest(staging, {
            "kind": "rmapwalk conditions run",
            "kernel": provenance,
            "qemu": guestrun.qemu_manifest(cmd),
            "scenario": {"name": spec.name, "sha256": spec.sha256,
                         "path": os.path.relpath(spec.path, paths.ROOT)
                         if spec.path.is_absolute() else str(spec.path)},
            "guest": {"program": program_text(spec),
                      "conditions_sha256": dataset.sha256_file(guest_binary()),
                      "conditions_source_sha256": guest_key(),
                      "initramfs_base": initramfs.base_key()},
            "timing": timing,
            "summary": summarize(parsed.events, rounds),
        })
    return dest


def capture_one(spec: Spec, base: str, variant: str, image: Path, provenance: dict,
                out_root: Path, timeout: float, run: int | None = None,
                qemu: str | None = None) -> Path | None:
    """One boot into run folder ``run`` (default: the next); None after a failure (its
    console kept under build/failed/, nothing written under ``out_root``)."""
    where = f"{spec.name}/{base}/{variant}"

    def attempt(workdir: Path) -> tuple:
        console, trace_text, cmd, wall, booted = boot_guest(image, spec, workdir, timeout, qemu)
        parsed = programs.parse_trace(trace_text, f"{where}/trace.txt")
        rounds = parse_rounds(console, spec.params["rounds"], f"{where}/console.log")
        return console, trace_text, cmd, wall, booted, parsed, rounds

    got = guestrun.boot_or_keep("conditions", f"{spec.name} on {base}/{variant}", spec.name,
                                f"{base}-{variant}", out_root, _say, attempt)
    if got is None:
        return None
    console, trace_text, cmd, wall, booted, parsed, rounds = got
    dest = write_run(spec, base, variant, provenance, out_root, console, trace_text, parsed,
                     rounds, cmd, guestrun.timing(console, wall, booted), run)
    ksm = [e for e in parsed.events if e["page_type"] == "ksm" and e["step"] != ""]
    _say(f"{spec.name} on {base}/{variant} {dest.name}: {wall:.0f} s, {len(rounds)} rounds, "
         f"{len(ksm)} KSM walks in triggers ({', '.join(str(r['move_pages']) for r in rounds)}"
         f" from move_pages) -> {dest}")
    return dest


def capture(specs: list[Spec], base: str, variants: tuple[str, ...], runs: int,
            out_root: Path, timeout: float, qemu: str | None = None,
            only_missing: bool = False) -> int:
    """``runs`` boots of each setup on each variant (``only_missing``: just the run numbers
    1..runs not yet in ``out_root``); returns the number of failed boots."""
    return guestrun.capture(specs, base, variants, runs, out_root, timeout, qemu,
                            only_missing, _say, kernel_image, capture_one)


def capture_plan(plan: Path, dest: Path, timeout: float, new: Path = NEW) -> int:
    """Capture the plan (``runs/dataset.yaml``) into ``new`` (runs already there are kept),
    verify it, then replace ``dest`` by it; ``dest`` is left alone if anything fails."""
    todo = dataset.load_plan(plan)
    new.mkdir(parents=True, exist_ok=True)
    shutil.copy2(plan, new / "dataset.yaml")
    failures = 0
    for (name, base, variant), n in sorted(todo.items()):
        failures += capture([load_spec(name)], base, (variant,), n, new, timeout,
                            only_missing=True)
    if failures:
        _say(f"{failures} boot(s) failed; {new} kept (run again to resume), {dest} unchanged")
        return 1
    problems = dataset.verify(new, scenarios=SPECS)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        _say(f"{new} does not verify; {dest} unchanged")
        return 1
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    new.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    _say(f"{dest}: replaced by the verified capture")
    return 0


# --- command line --------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="conditions_command", required=True)
    kl = kernel_list.load()
    c = sub.add_parser("capture", help="boot kernels with the benchmark under a setup of "
                                       "data/conditions/, record every rmap_walk")
    c.add_argument("setup", nargs="*", help="setup names under data/conditions/ or paths "
                                            "(with --plan: none)")
    c.add_argument("--kernel", default="all", metavar="V|all",
                   help="variant(s), comma-separated, or all captured variants of the base")
    c.add_argument("--base", choices=tuple(kl.bases), default=kl.default_base)
    c.add_argument("--runs", type=int, default=1, metavar="N", help="boots per setup and kernel")
    c.add_argument("--out", type=Path, default=None, help=f"output root (default {RUNS})")
    c.add_argument("--plan", action="store_true",
                   help=f"capture {RUNS}/dataset.yaml into {NEW}, verify, then replace {RUNS}")
    c.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"seconds one boot may take (default {DEFAULT_TIMEOUT:.0f})")
    c.set_defaults(func=run)
    v = sub.add_parser("verify", help="check a conditions data folder (manifests, setups, plan)")
    v.add_argument("dir", nargs="?", type=Path, default=None, help=f"default {RUNS}")
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return guestrun.run_command("conditions", _run, args, (SpecError,))


def _run(args: argparse.Namespace) -> int:
    if args.conditions_command == "verify":
        return guestrun.verify(args.dir if args.dir is not None else RUNS, SPECS, _say)
    guestrun.check_capture_args(args)
    if args.plan:
        if args.setup or args.out is not None:
            raise outputs.UsageError("--plan takes no setup and no --out")
        return capture_plan(RUNS / "dataset.yaml", RUNS, args.timeout)
    if not args.setup:
        raise outputs.UsageError("give a setup (e.g. posted-benchmark) or --plan")
    out_root = outputs.check_output_dir(args.out if args.out is not None else RUNS, "--out")
    specs = [load_spec(s) for s in args.setup]
    kl = kernel_list.load()
    variants = tuple(v for b, v in kl.kernels() if b == args.base) \
        if args.kernel == "all" else tuple(v for v in args.kernel.split(",") if v)
    for v in variants:
        kl.patches(args.base, v)        # KernelListError: unknown or build-only
    t0 = time.monotonic()
    failures = capture(specs, args.base, variants, args.runs, out_root, args.timeout)
    _say(f"done in {time.monotonic() - t0:.0f} s, {failures} failed boot(s)")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    return guestrun.main("conditions", __doc__, add_arguments, argv)


if __name__ == "__main__":
    sys.exit(main())
