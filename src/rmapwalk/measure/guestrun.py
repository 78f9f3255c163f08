"""What the drivers of the guest programs share: ``rmapwalk conditions``, ``rmapwalk paths``
and ``rmapwalk programs``.

The conditions and paths programs run from the replayer's guest
(:mod:`rmapwalk.measure.initramfs`) in place of the replayer: a second cpio archive puts the
program at ``/replayer`` and its parameters at ``/program.txt`` (the kernel unpacks the archives
in order, the later file replaces the earlier).  The launcher of ``rmapwalk programs`` is built
the same way.  This module owns, once for all of them:

- the static guest program, built by :func:`rmapwalk.measure.initramfs.build_static` and cached
  under ``paths.CACHE`` by the sha256 of its sources (:func:`source_key`: the program, its
  Makefile and the common ``guest-common/guest.h`` and ``guest.mk``);
- the overlay archive and one boot, checked: a panic, a missing or non-zero exit status or a
  truncated trace stream raise the driver's :class:`GuestRunError`;
- a failed boot's console kept under ``build/failed/`` (nothing written under the output);
- a run folder staged beside its place and renamed whole (:func:`new_run`);
- setup files read as YAML mappings (:func:`read_mapping`), the capture loop and the command
  line's checks, error messages and exit statuses.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from rmapwalk import dataset, kernels as kernel_list, outputs, paths, yamlfile
from rmapwalk.measure import capture as capture_mod, initramfs, vm

COMMON_DIR = Path(__file__).resolve().parent / "guest-common"
COMMON_FILES = ("guest.h", "guest.mk")    # in every guest program's build
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
TCG_ONLY = "TCG only: durations are TCG time"
REPLAYED_RE = re.compile(r"RMAPWALK-REPLAYED seconds=(\S+)")
GUEST_ERROR_RE = re.compile(r"(?:rmapwalk-replayer: error|RMAPWALK-ERROR):? (.*)")


class GuestRunError(RuntimeError):
    """A boot that did not give a complete result; ``console`` is the guest's console and the
    message ends with its last ``TAIL_LINES`` lines."""

    TAIL_LINES = 15

    def __init__(self, reason: str, console: str = ""):
        self.reason, self.console = reason, console
        tail = "\n".join(console.splitlines()[-self.TAIL_LINES:])
        super().__init__(f"{reason}\n--- last console lines ---\n{tail}" if tail else reason)


# --- setup files ---------------------------------------------------------------------------
def named_file(name_or_path: str, folder: Path) -> Path:
    """A path as given (a ``.yaml`` name or an existing file), else ``folder/<name>.yaml``."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return folder / f"{name_or_path}.yaml"


def read_mapping(path: Path, error: type[Exception], what: str,
                 keys: set[str]) -> tuple[bytes, dict]:
    """The file's bytes and its YAML mapping; ``error`` names the file (and line) when it
    cannot be read, is not UTF-8 YAML (rmapwalk.yamlfile: duplicate keys too) or not a mapping
    (of ``keys``)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise error(f"{path}: cannot read the {what}: {e.strerror}") from None
    try:
        doc = yamlfile.parse(yamlfile.decode(raw))
    except yamlfile.YamlProblem as e:
        raise error(e.where(path)) from None
    if not isinstance(doc, dict):
        raise error(f"{path}: expected a mapping of {sorted(keys)}")
    return raw, doc


def check_name(path: Path, name, error: type[Exception]) -> None:
    """The file's ``name:`` must be its stem, in lower case, digits and '-'."""
    if name != path.stem or not NAME_RE.match(str(name)):
        raise error(f"{path}: name {name!r} must equal the file's stem {path.stem!r} "
                    "(lower case, digits, '-')")


# --- the guest program ---------------------------------------------------------------------
def source_key(source_dir: Path, source: str) -> str:
    """sha256 over what builds the program: ``source``, its Makefile and the common
    ``guest.h`` and ``guest.mk``."""
    h = hashlib.sha256()
    for path in (source_dir / source, source_dir / "Makefile",
                 *(COMMON_DIR / name for name in COMMON_FILES)):
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def cached_binary(source_dir: Path, source: str, name: str) -> Path:
    """The cached static program (built on first use), named by :func:`source_key`."""
    target = paths.CACHE / name / f"{name}-{source_key(source_dir, source)[:16]}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            os.replace(initramfs.build_static(source_dir, Path(tmp) / name), target)
    return target


def overlay_initramfs(binary: Path, program: str, dest: Path) -> Path:
    """The replayer's base archive, then one that replaces /replayer by ``binary`` and holds
    ``program`` as /program.txt."""
    overlay = initramfs.cpio_archive([
        ("replayer", stat.S_IFREG | 0o755, binary.read_bytes()),
        ("program.txt", stat.S_IFREG | 0o644, program.encode())])
    dest.write_bytes(initramfs.base_initramfs().read_bytes() + overlay)
    return dest


def exit_status(console: str, workdir: Path, error: type[GuestRunError]) -> str:
    """The guest's exit status as /init printed it; a panic or oops on the console, or no
    status (QEMU's own output quoted), raise ``error``."""
    if vm.PANIC_RE.search(console):
        line = next(l for l in console.splitlines() if vm.PANIC_RE.search(l))
        raise error(f"kernel panic or oops: {line.strip()}", console)
    m = re.search(re.escape(initramfs.EXIT_MARK) + r"(\d+)", console)
    if not m:
        raise error("the guest ended without printing its exit status: "
                    + vm._read(workdir / "qemu.out").strip()[-300:], console)
    return m.group(1)


def boot(image: Path, initrd: Path, workdir: Path, timeout: float, error: type[GuestRunError],
         program: str, append_extra: str = "",
         qemu: str | None = None) -> tuple[str, str, list[str], float, float | None]:
    """One boot (TCG); (console, decoded ttyS1 stream, QEMU command, wall seconds, boot
    seconds).  A panic, a missing exit status, a failed ``program`` or a truncated stream raise
    ``error``."""
    _, cmd, booted, wall = vm.boot(image, initrd, workdir, timeout, "tcg",
                                   append_extra=append_extra, qemu=qemu)
    console = vm._read(workdir / "console.log")
    status = exit_status(console, workdir, error)
    if status != "0":
        errors = GUEST_ERROR_RE.findall(console)
        raise error(f"the {program} failed (exit status {status}): "
                    + ("; ".join(errors) or "no message"), console)
    stream = initramfs.decode_stream(vm._read(workdir / "ttyS1.log"))
    if initramfs.END_MARK not in stream:
        raise error("the trace stream on ttyS1 has no end marker (truncated)", console)
    return console, stream, cmd, wall, booted


# --- one run -------------------------------------------------------------------------------
def kernel_image(base: str, variant: str, build: bool = False) -> tuple[Path, dict]:
    """The cached kernel image and its provenance; builds only with ``build``."""
    from rmapwalk.measure import kernel  # noqa: PLC0415 (imports the build machinery)
    img = kernel.kernel_image(variant, base=base, build=build)
    prov = dict(img.provenance)
    prov["image_sha256"] = dataset.sha256_file(img.bzimage)
    return img.bzimage, prov


def boot_or_keep(tool: str, label: str, failed_as: str, kernel: str, out_root: Path,
                 say: Callable[[str], None], attempt: Callable[[Path], tuple]) -> tuple | None:
    """``attempt(workdir)`` in a fresh ``build/vm-<tool>-*`` folder; after a failed boot
    (:class:`vm.VMRunError`, :class:`GuestRunError`) its console is kept under
    ``build/failed/``, ``say`` tells where, and the result is None."""
    paths.BUILD.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paths.BUILD, prefix=f"vm-{tool}-") as tmp:
        workdir = Path(tmp)
        try:
            return attempt(workdir)
        except (vm.VMRunError, GuestRunError) as e:
            kept = capture_mod._keep_failure(failed_as, kernel, workdir, str(e))
            say(f"{label}: FAILED: {getattr(e, 'reason', e)}; console kept in {kept}; "
                f"nothing written under {out_root}")
            return None


def timing(console: str, wall: float, booted: float | None) -> dict:
    """The manifest's ``timing``: host seconds and the guest program's uptime at its end."""
    guest = REPLAYED_RE.search(console)
    return {"host_boot_seconds": booted, "host_wall_seconds": round(wall, 3),
            "guest_program_uptime": guest.group(1) if guest else None}


def qemu_manifest(cmd: list[str], accel_reason: str = TCG_ONLY) -> dict:
    """The manifest's ``qemu``: version, command line, TCG and why."""
    return {"version": vm.qemu_version(cmd[0]), "command": cmd, "accel": "tcg",
            "accel_reason": accel_reason}


@contextlib.contextmanager
def new_run(out_root: Path, scenario: str, base: str, variant: str,
            run: int | None = None) -> Iterator[tuple[Path, Path]]:
    """(staging folder, run folder ``run``, default the next number): what is written into
    the staging folder appears at the run folder whole, or nothing does."""
    folder = dataset.kernel_folder(out_root, scenario, base, variant)
    folder.mkdir(parents=True, exist_ok=True)
    run = capture_mod._next_run(folder) if run is None else run
    dest = folder / f"run-{run}"
    if dest.exists():
        raise outputs.UsageError(f"{dest} exists already")
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".run-{run}.tmp-"))
    try:
        yield staging, dest
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def capture(names: list, base: str, variants: tuple[str, ...], runs: int, out_root: Path,
            timeout: float, qemu: str | None, only_missing: bool, say: Callable[[str], None],
            kernel_image: Callable, capture_one: Callable) -> int:
    """``runs`` boots of each of ``names`` (setups or paths, named by ``.name`` or
    themselves) on each variant (``only_missing``: just the run numbers 1..runs not yet in
    ``out_root``); returns the number of failed boots."""
    failures = 0
    for variant in variants:
        image, provenance = kernel_image(base, variant)
        for item in names:
            name = getattr(item, "name", item)
            for k in range(1, runs + 1):
                if only_missing and dataset.run_folder(out_root, name, base, variant,
                                                       k).exists():
                    continue
                say(f"{name} on {base}/{variant}: run {k}/{runs} (timeout {timeout:.0f} s)")
                if capture_one(item, base, variant, image, provenance, out_root, timeout,
                               k if only_missing else None, qemu) is None:
                    failures += 1
    return failures


# --- command line --------------------------------------------------------------------------
def verify(root: Path, scenarios: Path | None, say: Callable[[str], None]) -> int:
    """``<tool> verify``: print every problem of the data folder; 1 if there is one."""
    problems = dataset.verify(root, scenarios=scenarios)
    for p in problems:
        print(p)
    say(f"{root}: {len(problems)} problem(s)")
    return 1 if problems else 0


def check_capture_args(args: argparse.Namespace) -> None:
    if args.runs < 1:
        raise outputs.UsageError(f"--runs {args.runs}: expected an integer >= 1")
    outputs.check_seconds(args.timeout, "--timeout")


def run_command(tool: str, body: Callable[[argparse.Namespace], int], args: argparse.Namespace,
                errors: tuple[type[Exception], ...] = ()) -> int:
    """``body(args)``; a usage, kernel list, data or kernel build error (RuntimeError: a
    kernel not in the cache) is printed as ``<tool>: <message>`` with exit status 2."""
    try:
        return body(args)
    except (*errors, outputs.UsageError, kernel_list.KernelListError,
            dataset.DataIntegrityError, RuntimeError) as e:
        print(f"{tool}: {e}", file=sys.stderr)
        return 2


def main(tool: str, doc: str, add_arguments: Callable[[argparse.ArgumentParser], None],
         argv: list[str] | None = None) -> int:
    """``python -m rmapwalk.measure.<tool>``; SIGINT (or SIGTERM during a VM run) exits with
    128 + the signal's number."""
    parser = argparse.ArgumentParser(prog=f"python -m rmapwalk.measure.{tool}",
                                     description=doc.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt as e:      # SIGINT, or SIGTERM during a VM run (vm.Interrupted)
        print(f"{tool}: {e or 'interrupted'}", file=sys.stderr)
        return 128 + getattr(e, "signum", 2)
