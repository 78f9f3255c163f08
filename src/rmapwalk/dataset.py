"""The measured data set: run folders, their manifests, and the one reader that verifies them.

Layout (part of the data contract, :mod:`rmapwalk.contract`)::

    data/traces/<scenario>/<base>/<variant>/run-<k>/
        walks.csv  outcomes.csv  trace.txt.gz  console.log.gz  manifest.json

``<base>`` and ``<variant>`` name the kernel (``kernel-config/kernels.yaml``, e.g. ``6.12`` and
``patched``), so runs of two kernel versions live side by side without mixing.

``manifest.json`` says how a run folder was made (kernel provenance, QEMU command line,
scenario name and sha256, host, program version) and lists the sha256 and size of every other
file; ``manifest_sha256`` covers the manifest itself.  The capture writes it through
:func:`write_manifest`; nothing else writes one.

A run is *verified* when its manifest is intact, every file matches it and no file is extra,
its place agrees with its manifest (scenario, base and variant), and its scenario's sha256 is
that of the committed scenario file.  :func:`verify` checks a whole tree, and also against
the declared data set (``data/dataset.yaml``): a run missing, a run too many, a folder that is
not a run.  :func:`runs` is the only way the analysis gets at run folders: it refuses,
naming the file, anything that does not verify, unless the caller asks for unverified runs,
which then carry their problems so the page can say so.
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import os
import platform
import re
import subprocess
from pathlib import Path


from . import kernels as kernel_list, paths, yamlfile

MANIFEST = "manifest.json"
FORMAT = 1
RUN_FILES = ("walks.csv", "outcomes.csv", "trace.txt.gz", "console.log.gz")
RUN_RE = re.compile(r"^run-([1-9][0-9]*)$")
DATASET_FILE = paths.DATA / "dataset.yaml"


class DataIntegrityError(ValueError):
    """A run that does not verify; ``problems`` lists them, each starting with the file."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        head = "\n  ".join(self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{len(self.problems)} data integrity problem(s) (rmapwalk verify):"
                         f"\n  {head}{more}")


# --- manifests ---------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _canonical(doc: dict) -> bytes:
    return json.dumps({k: v for k, v in doc.items() if k != "manifest_sha256"},
                      sort_keys=True, separators=(",", ":")).encode()


def host_facts() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    u = platform.uname()
    return {"uname": f"{u.system} {u.node} {u.release} {u.version} {u.machine}",
            "cpu_model": cpu, "nproc": os.cpu_count()}


def program_version() -> dict:
    from rmapwalk import __version__ as version  # noqa: PLC0415 (package metadata)
    commit = dirty = None
    try:
        commit = subprocess.run(["git", "-C", str(paths.ROOT), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=30).stdout.strip() or None
        status = subprocess.run(["git", "-C", str(paths.ROOT), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True,
                                timeout=30).stdout
        dirty = bool(status.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {"version": version, "git_commit": commit, "git_dirty": dirty}


def _files(folder: Path) -> dict[str, dict]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            out[p.relative_to(folder).as_posix()] = {"sha256": sha256_file(p),
                                                     "size": p.stat().st_size}
    return out


def write_manifest(folder: Path, info: dict) -> Path:
    """Write ``folder/manifest.json``: ``info`` plus date, host, program and file checksums."""
    doc = {"format": FORMAT,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "host": host_facts(), "program": program_version(), **info,
           "files": _files(folder)}
    doc["manifest_sha256"] = hashlib.sha256(_canonical(doc)).hexdigest()
    path = folder / MANIFEST
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(folder: Path) -> dict:
    """The manifest of a run or published folder as a dict; DataIntegrityError naming the
    file if it is missing or unreadable."""
    path = Path(folder) / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataIntegrityError([f"{folder}: folder without {MANIFEST} (every run folder and "
                                  f"published data folder has one)"]) from None
    except (OSError, ValueError) as e:
        raise DataIntegrityError([f"{path}: unreadable manifest: {e}"]) from None
    if not isinstance(doc, dict):
        raise DataIntegrityError([f"{path}: expected a JSON object"])
    return doc


def check_manifest(folder: Path, required: tuple[str, ...] = RUN_FILES) -> list[str]:
    """The manifest is intact and every file of the folder matches it, none extra; the
    ``required`` files (a run's, by default) are listed."""
    manifest = folder / MANIFEST
    try:
        doc = read_manifest(folder)
    except DataIntegrityError as e:
        return e.problems
    problems = []
    if doc.get("manifest_sha256") != hashlib.sha256(_canonical(doc)).hexdigest():
        problems.append(f"{manifest}: the manifest itself was changed (manifest_sha256)")
    listed = doc.get("files")
    if not isinstance(listed, dict):
        return problems + [f"{manifest}: no 'files' table"]
    present = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*")
               if p.is_file() and p.name != MANIFEST}
    for name, want in sorted(listed.items()):
        p = present.get(name)
        if p is None:
            problems.append(f"{folder / name}: missing (listed in {manifest})")
            continue
        size = p.stat().st_size
        if size != want.get("size"):
            problems.append(f"{p}: size {size}, manifest says {want.get('size')}")
        elif sha256_file(p) != want.get("sha256"):
            problems.append(f"{p}: sha256 differs from {manifest}")
    for name in sorted(set(present) - set(listed)):
        problems.append(f"{folder / name}: extra file, not in {manifest}")
    for name in required:
        if name not in listed:
            need = "a run folder needs it" if required is RUN_FILES else "required here"
            problems.append(f"{folder / name}: {need}; {manifest} lists none")
    return problems


# --- the layout --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Run:
    """One run folder and what is known of it."""

    scenario: str
    base: str
    variant: str
    run: int
    folder: Path
    problems: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return not self.problems

    @property
    def kernel(self) -> str:
        """The variant: the analysis's ``kernel`` column (baseline, patched, naive)."""
        return self.variant


def run_folder(root: Path, scenario: str, base: str, variant: str, run: int) -> Path:
    return Path(root) / scenario / base / variant / f"run-{run}"


def kernel_folder(root: Path, scenario: str, base: str, variant: str) -> Path:
    return Path(root) / scenario / base / variant


def _scan(root: Path) -> tuple[list[tuple[str, str, str, int, Path]], list[str]]:
    """Run folders at their place, and every other entry of the tree as a problem."""
    found, problems = [], []
    levels = ("scenario", "base", "variant")

    def walk(folder: Path, names: tuple[str, ...]):
        for p in sorted(folder.iterdir()):
            depth = len(names)
            if depth == 0 and p.is_file() and p.name == "dataset.yaml":
                continue                          # the tree's own plan (see _default_plan)
            if depth == 0 and p.is_file():
                problems.append(f"{p}: stray file at the top of the data set (expected "
                                f"<scenario>/<base>/<variant>/run-<k>/)")
                continue
            if p.name.startswith("."):
                problems.append(f"{p}: leftover from an interrupted capture (delete it)")
                continue
            if depth < 3:
                if not p.is_dir():
                    problems.append(f"{p}: expected a {levels[depth]} folder, found a file")
                else:
                    walk(p, (*names, p.name))
                continue
            m = RUN_RE.match(p.name)
            if not (p.is_dir() and m):
                problems.append(f"{p}: not a run folder (expected run-<k>/ under "
                                f"{'/'.join(names)})")
                continue
            found.append((*names, int(m.group(1)), p))
    walk(root, ())
    return found, problems


def _identity(folder: Path, scenario: str, base: str, variant: str, scenarios: Path | None,
              kl: kernel_list.KernelList) -> list[str]:
    """The run's place agrees with its manifest; its scenario text with the committed one."""
    try:
        doc = read_manifest(folder)
    except DataIntegrityError as e:
        return e.problems
    manifest = folder / MANIFEST
    problems = []
    sc = doc.get("scenario") or {}
    if sc.get("name") != scenario:
        problems.append(f"{manifest}: a run of scenario {sc.get('name')!r} filed under "
                        f"{scenario!r}")
    m_base, m_variant = kl.identify(doc.get("kernel") or {})
    if (m_base, m_variant) != (base, variant):
        problems.append(f"{manifest}: a run of kernel {m_base or '?'}/{m_variant or '?'} filed "
                        f"under {base}/{variant}")
    if base not in kl.bases or variant not in kl.variants:
        problems.append(f"{folder}: kernel {base}/{variant} is not in {kl.path}")
    else:
        problems += _series_problems(manifest, doc.get("kernel") or {}, kl, base, variant)
    if scenarios is not None:
        committed = paths.scenario_file(scenario, scenarios)
        if not committed.is_file():
            problems.append(f"{manifest}: scenario {scenario!r} has no committed file {committed}")
        elif sha256_file(committed) != sc.get("sha256"):
            problems.append(f"{manifest}: captured from another text of {committed} (scenario "
                            f"sha256 {str(sc.get('sha256'))[:12]}, the file now "
                            f"{sha256_file(committed)[:12]}): capture it again")
    return problems


def _series_problems(manifest: Path, kernel: dict, kl: kernel_list.KernelList, base: str,
                     variant: str) -> list[str]:
    """The patch series the run's kernel was built with (when its manifest records one) is
    the series kernel-config gives its base and variant now: a patch edited after the capture
    makes the run a measurement of another kernel."""
    then = kernel.get("patches")
    if not isinstance(then, list):
        return []                       # not built by rmapwalk.measure.kernel (--bzimage)
    try:
        series = kl.patches(base, variant, build=True)
    except kernel_list.KernelListError as e:
        return [f"{manifest}: {e}"]
    now = [(p.name, _patch_sha256(p)) for p in series]
    then = [(p.get("file"), p.get("sha256")) for p in then if isinstance(p, dict)]
    if now == then:
        return []
    names = sorted({str(n) for n, _ in set(now) ^ set(then)}) or ["the order"]
    return [f"{manifest}: built from another patch series of {base}/{variant} than "
            f"{kl.path} gives now (differs: {', '.join(names)}): capture it again"]


def _patch_sha256(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "(missing)"
    return _sha256_cached(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _sha256_cached(path: Path, mtime_ns: int, size: int) -> str:
    return sha256_file(path)


def load_plan(path: Path = DATASET_FILE) -> dict[tuple[str, str, str], int]:
    """``data/dataset.yaml``: (scenario, base, variant) -> runs expected."""
    doc = yamlfile.load(path, lambda message: DataIntegrityError([message]))
    plan: dict[tuple[str, str, str], int] = {}
    entries = doc.get("captures") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise DataIntegrityError([f"{path}: expected 'captures: [{{scenarios, bases, "
                                  "variants, runs}}, ...]'"])
    for i, e in enumerate(entries, 1):
        ok = (isinstance(e, dict) and set(e) == {"scenarios", "bases", "variants", "runs"}
              and all(isinstance(e[k], list) and e[k] for k in ("scenarios", "bases", "variants"))
              and isinstance(e["runs"], int) and e["runs"] >= 1)
        if not ok:
            raise DataIntegrityError([f"{path}: capture {i}: expected scenarios, bases, "
                                      "variants (non-empty lists) and runs (>= 1)"])
        for s in e["scenarios"]:
            for b in e["bases"]:
                for v in e["variants"]:
                    key = (str(s), str(b), str(v))
                    if key in plan:
                        raise DataIntegrityError([f"{path}: capture {i}: {'/'.join(key)} is "
                                                  "declared twice"])
                    plan[key] = e["runs"]
    return plan


def _plan_problems(root: Path, found, plan: dict[tuple[str, str, str], int],
                   plan_path: Path) -> list[str]:
    have: dict[tuple[str, str, str], set[int]] = {}
    for s, b, v, r, _ in found:
        have.setdefault((s, b, v), set()).add(r)
    problems = []
    for key, n in sorted(plan.items()):
        missing = sorted(set(range(1, n + 1)) - have.get(key, set()))
        for r in missing:
            problems.append(f"{run_folder(root, *key, r)}: missing ({plan_path} declares "
                            f"{n} run(s))")
    for key, rs in sorted(have.items()):
        n = plan.get(key, 0)
        for r in sorted(x for x in rs if x > n):
            why = f"declares {n} run(s)" if n else "does not declare this scenario and kernel"
            problems.append(f"{run_folder(root, *key, r)}: extra run ({plan_path} {why})")
    return problems


def _default_plan(root: Path) -> Path | None:
    """The committed data set is checked against data/dataset.yaml; any other tree only
    against its own ``dataset.yaml`` if it has one."""
    own = Path(root) / "dataset.yaml"
    if own.is_file():
        return own
    try:
        if Path(root).resolve() == paths.TRACES.resolve() and DATASET_FILE.is_file():
            return DATASET_FILE
    except OSError:
        pass
    return None


_UNSET = object()


def _not_a_folder(root: Path) -> str:
    return (f"{root}: a file, expected a data folder" if root.exists()
            else f"{root}: no such data folder")


def verify(root: str | Path | None = None, *, scenarios: str | Path | None = _UNSET,
           plan: str | Path | None = _UNSET) -> list[str]:
    """Every problem of the tree ``root`` (default data/traces), each naming its file:
    manifests and files, places against manifests, scenario text against the committed
    scenario (``scenarios``, default data/scenarios; None skips), and runs against the
    declared data set (``plan``, default: see :func:`_default_plan`; None skips)."""
    root = Path(root) if root is not None else paths.TRACES
    if not root.is_dir():
        return [_not_a_folder(root)]
    scenarios = paths.SCENARIOS if scenarios is _UNSET else scenarios
    plan = _default_plan(root) if plan is _UNSET else plan
    kl = kernel_list.load()
    found, problems = _scan(root)
    if not found and not problems:
        problems.append(f"{root}: no run folders (<scenario>/<base>/<variant>/run-<k>/)")
    for s, b, v, r, folder in found:
        problems += check_manifest(folder)
        problems += _identity(folder, s, b, v, scenarios, kl)
    if plan is not None:
        problems += _plan_problems(root, found, load_plan(Path(plan)), Path(plan))
    return problems


def runs(root: str | Path | None = None, *, scenario: str | None = None,
         include_unverified: bool = False, scenarios: str | Path | None = _UNSET,
         plan: str | Path | None = _UNSET) -> list[Run]:
    """The runs under ``root`` (default data/traces), optionally of one scenario, each
    verified (see :func:`verify`; the data set's missing and extra runs and stray folders are
    checked too).  Any problem raises :class:`DataIntegrityError` naming the files, unless
    ``include_unverified``: then every run is returned with its ``problems``."""
    root = Path(root) if root is not None else paths.TRACES
    if not root.is_dir():
        raise DataIntegrityError([_not_a_folder(root)])
    scenarios = paths.SCENARIOS if scenarios is _UNSET else scenarios
    plan = _default_plan(root) if plan is _UNSET else plan
    kl = kernel_list.load()
    found, tree_problems = _scan(root)
    if plan is not None:
        tree_problems += _plan_problems(root, found, load_plan(Path(plan)), Path(plan))
    out, problems = [], list(tree_problems)
    for s, b, v, r, folder in sorted(found):
        if scenario is not None and s != scenario:
            continue
        p = tuple(check_manifest(folder) + _identity(folder, s, b, v, scenarios, kl))
        problems += p
        out.append(Run(s, b, v, r, folder, p))
    if problems and not include_unverified:
        raise DataIntegrityError(problems)
    return out


def digest(root: str | Path | None = None) -> str:
    """sha256 (16 hex) over every file of every run (path and content hash): one string
    that names the data set; any change to any file changes it."""
    root = Path(root) if root is not None else paths.TRACES
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(f"{p.relative_to(root).as_posix()}:{sha256_file(p)}\n".encode())
    return h.hexdigest()[:16]
