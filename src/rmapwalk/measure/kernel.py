"""Build and cache the kernels of the comparison.

The kernels are the one list ``kernel-config/kernels.yaml`` (:mod:`rmapwalk.kernels`): a
base (Linux source package and version) plus a variant (its patch series): ``baseline`` is
the rmap:rmap_walk tracepoint (patch 0001), ``patched`` adds the v4 change (vm_pgoff in
struct ksm_rmap_item, queried by rmap_walk_ksm()), ``naive`` the v1-v3 query
``address >> PAGE_SHIFT`` instead.  The config is ``make tinyconfig`` plus
``kernel-config/rmapwalk.config``.

One unpacked source tree and one build directory (``O=``) per base are shared by
its variants: switching kernel reverses and applies only the patches that differ,
so kbuild recompiles mm/ksm.c and little else.  Each finished kernel is
cached under ``$RMAPWALK_CACHE/kernels/<base>-<variant>-<key>/`` (bzImage, .config,
vmlinux, build.log, build.json with its provenance), where ``key`` hashes the
source version, that kernel's patches and the fragment.  A cached entry is
used without touching the source.

Besides ``baseline``, ``patched`` and ``naive``: ``merged`` (the merged form of the series,
linear_page_index, plus the collect_procs_ksm query), and two build-only variants
(``capture: false`` in kernels.yaml): ``merged-notrace`` (the optimisation without the
tracepoint) and ``baseline-notrace`` (the plain source).  Each cache entry also keeps
``objects/mm/rmap.o`` and ``objects/mm/ksm.o`` (:data:`KEPT_OBJECTS`) for the kernel matrix
(:mod:`rmapwalk.measure.matrix`).

The path variants (``baseline-paths`` ...; ``fragment: [paths.config]`` in kernels.yaml) add
config fragments after ``rmapwalk.config``: their bytes go into the cache key
(:func:`kernel_inputs`) and the variant builds in ``build/<source-id>+paths/``
(:func:`build_dir_name`), so the two configurations never rebuild each other from scratch.

Command line: ``rmapwalk kernel build [--base B] [--kernel VARIANT|all] [--jobs N]
[--source PATH]``, ``rmapwalk kernel list`` (base, variant, strategy, package, capture,
build-only or paths), ``rmapwalk kernel report`` (:mod:`rmapwalk.measure.matrix`),
``rmapwalk kernel selftests`` (:mod:`rmapwalk.measure.selftests`) or
``python -m rmapwalk.measure.kernel ...``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

from rmapwalk import kernels as kernel_list, paths

CONFIG_DIR = paths.KERNEL_CONFIG
FRAGMENT = CONFIG_DIR / "rmapwalk.config"

_OPTION_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_OPTION_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


class KernelBuildError(RuntimeError):
    """A kernel could not be found, configured, patched or built."""


@dataclasses.dataclass(frozen=True)
class KernelArtifact:
    """A built kernel in the cache and where it came from."""

    name: str
    key: str
    directory: Path
    provenance: dict

    @property
    def bzimage(self) -> Path:
        return self.directory / "bzImage"

    @property
    def config(self) -> Path:
        return self.directory / ".config"

    @property
    def vmlinux(self) -> Path | None:
        p = self.directory / "vmlinux"
        return p if p.exists() else None

    def object(self, rel: str) -> Path | None:
        """A kept object file of the build (``mm/rmap.o``, ``mm/ksm.o``), if kept."""
        p = self.directory / "objects" / rel
        return p if p.is_file() else None


# Object files kept in each cache entry (under objects/), for `rmapwalk kernel report`:
# the variants of a base share one O= directory, so the next build overwrites them.
KEPT_OBJECTS = ("mm/rmap.o", "mm/ksm.o")


def _keep_objects(build_dir: Path, dest: Path) -> None:
    for rel in KEPT_OBJECTS:
        if (build_dir / rel).is_file():
            (dest / "objects" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(build_dir / rel, dest / "objects" / rel)


@dataclasses.dataclass(frozen=True)
class Source:
    """Where the Linux source comes from: a Debian package or KERNEL_SRC."""

    path: Path            # a .tar.xz tarball or an unpacked tree
    version: str          # goes into the cache key
    provenance: dict

    @property
    def ident(self) -> str:
        return hashlib.sha256(self.version.encode()).hexdigest()[:12]


# --- the series and the fragment -------------------------------------------

def parse_config(text: str) -> dict[str, str]:
    """Options of a .config or fragment: name -> value, ``n`` for 'is not set'."""
    options = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _OPTION_SET.match(line):
            options[m.group(1)] = m.group(2)
        elif m := _OPTION_UNSET.match(line):
            options[m.group(1)] = "n"
    return options


def options_without_reason(text: str) -> list[str]:
    """Options of a fragment not directly preceded by a reason comment."""
    missing, previous = [], ""
    for line in text.splitlines():
        line = line.strip()
        is_option = _OPTION_SET.match(line) or _OPTION_UNSET.match(line)
        if is_option:
            prev_is_reason = (previous.startswith("#") and previous.strip("# ")
                              and not _OPTION_UNSET.match(previous))
            if not prev_is_reason:
                missing.append(is_option.group(1))
        previous = line
    return missing


def missing_options(fragment: str, config: str) -> list[str]:
    """Fragment options that did not survive into ``config``, one message each."""
    want, have = parse_config(fragment), parse_config(config)
    problems = []
    for name, value in want.items():
        got = have.get(name)
        if value == "n":
            if got not in (None, "n"):
                problems.append(f"{name}: fragment says 'is not set', .config has {got}")
        elif got != value:
            problems.append(f"{name}: fragment says {value}, .config has "
                            f"{'nothing' if got is None else got}")
    return problems


def check_config(fragment: str, config: str, where: str = ".config") -> None:
    """Raise naming every fragment option lost by merge_config/olddefconfig."""
    problems = missing_options(fragment, config)
    if problems:
        raise KernelBuildError(
            f"{where}: {len(problems)} option(s) of the fragment(s) did not survive "
            "(an unmet dependency?):\n  " + "\n  ".join(problems))


# --- cache key -------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_key(source_version: str, patches: list[tuple[str, bytes]], fragment: bytes) -> str:
    """sha256 of (source version, the kernel's patches in order, fragment)[:16]."""
    h = hashlib.sha256()
    h.update(b"source\0" + source_version.encode() + b"\0")
    for name, data in patches:
        h.update(b"patch\0" + name.encode() + b"\0" + _sha256(data).encode() + b"\0")
    h.update(b"fragment\0" + _sha256(fragment).encode())
    return h.hexdigest()[:16]


def fragment_files(variant: str) -> list[Path]:
    """rmapwalk.config, then the variant's own fragments (kernels.yaml ``fragment:``)."""
    try:
        return [FRAGMENT, *kernel_list.load().fragments(variant)]
    except kernel_list.KernelListError as e:
        raise KernelBuildError(str(e)) from None


def kernel_inputs(base: str, variant: str) -> tuple[list[tuple[str, bytes]], bytes]:
    """The variant's patches on ``base`` (name, bytes) in order, and the fragment: the bytes
    of :func:`fragment_files` concatenated (just rmapwalk.config for the kernels of the
    comparison, so their keys do not change)."""
    try:
        files = kernel_list.load().patches(base, variant, build=True)
    except kernel_list.KernelListError as e:
        raise KernelBuildError(str(e)) from None
    fragment = b"".join(f.read_bytes() for f in fragment_files(variant))
    return [(p.name, p.read_bytes()) for p in files], fragment


def build_dir_name(source_ident: str, variant: str) -> str:
    """The shared O= directory of a base: ``<source-ident>``, or for a variant with fragments
    of its own ``<source-ident>+<fragment stems>``, so that its configuration does not
    rebuild the comparison's kernels from scratch (and the other way round)."""
    extra = fragment_files(variant)[1:]
    return source_ident + "".join(f"+{f.stem}" for f in extra)


def kernels_dir() -> Path:
    return paths.CACHE / "kernels"


# --- the source --------------------------------------------------------------

def _makefile_version(makefile_text: str) -> str:
    fields = dict(re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(\S*)",
                             makefile_text, re.M))
    return "{}.{}.{}{}".format(fields.get("VERSION", "?"), fields.get("PATCHLEVEL", "?"),
                               fields.get("SUBLEVEL", "?"), fields.get("EXTRAVERSION", ""))


def _tarball_makefile(tarball: Path) -> str:
    with tarfile.open(tarball) as tf:
        for member in tf:
            if member.name.count("/") == 1 and member.name.endswith("/Makefile"):
                return tf.extractfile(member).read().decode()
    raise KernelBuildError(f"{tarball}: no top-level Makefile")


def _dpkg_version(package: str) -> str | None:
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", package],
                           capture_output=True, text=True)
    except FileNotFoundError:      # not a Debian system
        return None
    if r.returncode != 0 or "install ok installed" not in r.stdout:
        return None
    return r.stdout.split("\t")[1]


def find_source(option: str | None = None, *, install: bool = True,
                base: str | None = None) -> Source:
    """KERNEL_SRC (option or environment), else the base's Debian package (kernels.yaml)."""
    b = kernel_list.load().base(base)
    package, tarball = b.package, b.tarball
    given = option or os.environ.get("KERNEL_SRC")
    if given:
        p = Path(given).expanduser().resolve()
        if p.is_dir() and (p / "Makefile").is_file():
            version = _makefile_version((p / "Makefile").read_text())
        elif p.is_file() and p.name.endswith((".tar.xz", ".tar.gz", ".tar")):
            version = _makefile_version(_tarball_makefile(p))
        else:
            raise KernelBuildError(f"KERNEL_SRC={given}: not a kernel tree (no Makefile) "
                                   "nor a .tar.xz/.tar.gz tarball")
        return Source(p, f"KERNEL_SRC={p} {version}",
                      {"KERNEL_SRC": str(p), "kernel_version": version})
    version = _dpkg_version(package)
    if version is None and install and os.geteuid() == 0:
        print(f"rmapwalk: installing {package} with apt-get", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", "-y", package], env=env).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, check=True)
            subprocess.run(["apt-get", "install", "-y", package], env=env, check=True)
        version = _dpkg_version(package)
    if version is None or not tarball.is_file():
        raise KernelBuildError(
            f"no kernel source: set KERNEL_SRC=/path/to/linux (tree or tarball), pass "
            f"--source, or install {package} (apt-get install {package})")
    return Source(tarball, f"{package} {version}",
                  {"package": package, "version": version,
                   "tarball": str(tarball)})


def _unpacked_tree(source: Source) -> Path:
    """The shared tree for this source, unpacked (or copied) once."""
    base = kernels_dir() / "src" / source.ident
    tree = base / "linux"
    if (base / "unpacked").exists():
        return tree
    shutil.rmtree(base, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=kernels_dir()))
    print(f"rmapwalk: unpacking {source.path} into {tree}", file=sys.stderr)
    if source.path.is_dir():
        shutil.copytree(source.path, tmp / "linux", symlinks=True,
                        ignore=shutil.ignore_patterns(".git"))
    else:
        subprocess.run(["tar", "xf", str(source.path), "-C", str(tmp)], check=True)
        (top,) = [p for p in tmp.iterdir() if p.is_dir()]
        top.rename(tmp / "linux")
    (tmp / "applied.json").write_text("[]\n")
    (tmp / "unpacked").write_text(source.version + "\n")
    base.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(base)
    return tree


# --- patching ----------------------------------------------------------------

def _git_apply(tree: Path, patch: Path, *, reverse: bool = False, check: bool = False) -> None:
    cmd = ["git", "apply", "--whitespace=nowarn"]
    cmd += ["-R"] * reverse + ["--check"] * check + [str(patch)]
    r = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
    if r.returncode != 0:
        what = "reverse" if reverse else "apply"
        raise KernelBuildError(f"{patch.name}: git {what} failed in {tree}:\n{r.stderr}")


def _switch_series(tree: Path, patches: list[tuple[str, bytes]], patch_dir: Path) -> None:
    """Bring the tree to exactly ``patches``, touching only what differs.

    The common prefix of the applied series and the wanted one stays (so
    include/linux/rmap.h, touched by 0001, keeps its mtime and kbuild does
    not rebuild the world); the rest is reversed, newest first, and the
    remaining wanted patches are applied.
    """
    state_file = tree.parent / "applied.json"
    applied = json.loads(state_file.read_text())   # [{"name", "sha256", "text"}]
    wanted = [{"name": n, "sha256": _sha256(d), "text": d.decode()} for n, d in patches]
    common = 0
    while (common < min(len(applied), len(wanted))
           and applied[common]["sha256"] == wanted[common]["sha256"]):
        common += 1
    with tempfile.TemporaryDirectory() as td:
        for entry in reversed(applied[common:]):
            p = Path(td) / entry["name"]
            p.write_text(entry["text"])
            _git_apply(tree, p, reverse=True)
            applied.pop()
            state_file.write_text(json.dumps(applied))
            print(f"rmapwalk: reversed {entry['name']}", file=sys.stderr)
    for entry in wanted[common:]:
        _git_apply(tree, patch_dir / entry["name"])
        applied.append(entry)
        state_file.write_text(json.dumps(applied))
        print(f"rmapwalk: applied {entry['name']}", file=sys.stderr)


# --- building ------------------------------------------------------------------

def _run(cmd: list[str], cwd: Path, log, *, echo: bool = True) -> None:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    tail = []
    for line in proc.stdout:
        log.write(line)
        tail = (tail + [line])[-40:]
        if echo:
            sys.stderr.write(line)
    if proc.wait() != 0:
        raise KernelBuildError(f"{' '.join(cmd[:3])}... failed (exit {proc.returncode}) in "
                               f"{cwd}; last lines:\n{''.join(tail)}")


def _make_config(tree: Path, config_dir: Path, log,
                 fragments: list[Path] | None = None) -> str:
    """tinyconfig + merge_config.sh -m fragment(s) + olddefconfig, checked."""
    fragments = fragments or [FRAGMENT]
    config_dir.mkdir(parents=True, exist_ok=True)
    make = ["make", f"O={config_dir}"]
    _run(make + ["tinyconfig"], tree, log, echo=False)
    _run(["scripts/kconfig/merge_config.sh", "-m", "-O", str(config_dir),
          str(config_dir / ".config"), *map(str, fragments)], tree, log, echo=False)
    _run(make + ["olddefconfig"], tree, log, echo=False)
    config = (config_dir / ".config").read_text()
    check_config("".join(f.read_text() for f in fragments), config,
                 where=str(config_dir / ".config"))
    return config


def _pahole(build_dir: Path, tree: Path, out: Path, log) -> None:
    """pahole of struct ksm_rmap_item from mm/ksm.c compiled once more with -g."""
    if not shutil.which("pahole"):
        return
    with tempfile.TemporaryDirectory() as td:
        obj = Path(td) / "ksm.o"
        # The kbuild command line of mm/ksm.o, with -g and another output file.
        cmd_file = build_dir / "mm" / ".ksm.o.cmd"
        line = cmd_file.read_text().splitlines()[0].split(":=", 1)[1]
        line = re.sub(r"-Wp,-MMD,\S+", "", line)    # leave kbuild's dep file alone
        line = re.sub(r"-o mm/ksm\.o", f"-g -o {obj}", line)
        r = subprocess.run(line, shell=True, cwd=build_dir, capture_output=True, text=True)
        if r.returncode != 0:
            log.write(f"pahole: recompiling mm/ksm.c with -g failed:\n{r.stderr}\n")
            return
        r = subprocess.run(["pahole", "-C", "ksm_rmap_item", str(obj)],
                           capture_output=True, text=True)
        if r.returncode == 0 and r.stdout:
            out.write_text(r.stdout)


def _git_head() -> str | None:
    r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.ROOT, capture_output=True,
                       text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def _build(base: str, name: str, key: str, source: Source, patches: list[tuple[str, bytes]],
           fragment: bytes, jobs: int) -> KernelArtifact:
    root = kernels_dir()
    patch_dir = kernel_list.load().base(base).patch_dir
    final = root / f"{base}-{name}-{key}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{base}-{name}-{key}-", dir=root))
    try:
        started = time.monotonic()
        with open(tmp / "build.log", "w") as log:
            tree = _unpacked_tree(source)
            try:
                _switch_series(tree, patches, patch_dir)
            except KernelBuildError as e:
                # Someone edited the shared tree: start again from the source.
                print(f"rmapwalk: {e}\nrmapwalk: unpacking the source again", file=sys.stderr)
                shutil.rmtree(tree.parent)
                tree = _unpacked_tree(source)
                _switch_series(tree, patches, patch_dir)
            build_name = build_dir_name(source.ident, name)
            build_dir = root / "build" / build_name
            config = _make_config(tree, root / "build" / f"{build_name}-config", log,
                                  fragment_files(name))
            build_dir.mkdir(parents=True, exist_ok=True)
            old = build_dir / ".config"
            if not old.exists() or old.read_text() != config:
                (build_dir / ".config").write_text(config)
            print(f"rmapwalk: building {name} ({key}) with -j{jobs} in {build_dir}",
                  file=sys.stderr)
            _run(["make", f"O={build_dir}", f"-j{jobs}", "bzImage"], tree, log)
            seconds = round(time.monotonic() - started, 1)
            shutil.copy2(build_dir / "arch/x86/boot/bzImage", tmp / "bzImage")
            shutil.copy2(build_dir / ".config", tmp / ".config")
            if (build_dir / "vmlinux").exists():
                shutil.copy2(build_dir / "vmlinux", tmp / "vmlinux")
            _pahole(build_dir, tree, tmp / "ksm_rmap_item.pahole.txt", log)
            _keep_objects(build_dir, tmp)
        cc = subprocess.run(["gcc", "--version"], capture_output=True, text=True)
        provenance = {
            "name": name,
            "base": base,
            "variant": name,
            "key": key,
            "source": source.provenance,
            "patches": [{"file": n, "sha256": _sha256(d)} for n, d in patches],
            "fragment": {"file": str(FRAGMENT.relative_to(paths.ROOT)),
                         "sha256": _sha256(fragment)},
            **({"extra_fragments": [{"file": str(f.relative_to(paths.ROOT)),
                                     "sha256": _sha256(f.read_bytes())}
                                    for f in fragment_files(name)[1:]]}
               if fragment_files(name)[1:] else {}),
            "config_sha256": _sha256((tmp / ".config").read_bytes()),
            "bzimage_sha256": _sha256((tmp / "bzImage").read_bytes()),
            "build_seconds": seconds,
            "jobs": jobs,
            "compiler": cc.stdout.splitlines()[0] if cc.stdout else None,
            "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "rmapwalk_commit": _git_head(),
        }
        (tmp / "build.json").write_text(json.dumps(provenance, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"rmapwalk: {name} built in {seconds} s -> {final}", file=sys.stderr)
    return KernelArtifact(name, key, final, provenance)


def _cached(directory: Path) -> KernelArtifact | None:
    try:
        provenance = json.loads((directory / "build.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not (directory / "bzImage").is_file():
        return None
    return KernelArtifact(provenance["name"], provenance["key"], directory, provenance)


def _cached_without_source(base: str, name: str, patches,
                           fragment: bytes) -> KernelArtifact | None:
    """Without a source, an entry built from the same patches and fragment."""
    want = [_sha256(d) for _, d in patches]
    found = []
    for d in kernels_dir().glob(f"{base}-{name}-*"):
        art = _cached(d)
        if (art and [p["sha256"] for p in art.provenance["patches"]] == want
                and art.provenance["fragment"]["sha256"] == _sha256(fragment)):
            found.append(art)
    return max(found, key=lambda a: a.provenance["built_at"], default=None)


def kernel_image(name: str, *, base: str | None = None, build: bool = True,
                 source: str | None = None, jobs: int | None = None,
                 force: bool = False) -> KernelArtifact:
    """The cached kernel: variant ``name`` (kernels.yaml) on ``base`` (default: the list's
    default base), built if missing."""
    base = base or kernel_list.load().default_base
    patches, fragment = kernel_inputs(base, name)
    try:
        src = find_source(source, install=build, base=base)
    except KernelBuildError:
        if not force and (art := _cached_without_source(base, name, patches, fragment)):
            return art
        raise
    key = cache_key(src.version, patches, fragment)
    directory = kernels_dir() / f"{base}-{name}-{key}"
    if not force and (art := _cached(directory)):
        return art
    if not build:
        raise KernelBuildError(f"kernel {name} ({key}) is not in {kernels_dir()}; "
                               f"run: rmapwalk kernel build --base {base} --kernel {name}")
    kernels_dir().mkdir(parents=True, exist_ok=True)
    with open(kernels_dir() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # one kernel build at a time
        if not force and (art := _cached(directory)):
            return art
        return _build(base, name, key, src, patches, fragment, jobs or os.cpu_count() or 1)


def ensure_objects(art: KernelArtifact, *, source: str | None = None,
                   jobs: int | None = None) -> KernelArtifact:
    """Add the kept objects (KEPT_OBJECTS) to a cache entry built before they were kept:
    under the build lock, bring the shared tree to the entry's series and make just those
    objects in the shared build directory (same source, fragment and .config: the same
    inputs as the entry's own build).  The entry's bzImage, vmlinux and build.json are left
    alone; ``objects/objects.json`` says the objects were made afterwards."""
    if all(art.object(rel) for rel in KEPT_OBJECTS):
        return art
    base, name = art.provenance.get("base"), art.provenance["variant"]
    patches, fragment = kernel_inputs(base, name)
    if [_sha256(d) for _, d in patches] != [p["sha256"] for p in art.provenance["patches"]]:
        raise KernelBuildError(f"{art.directory}: its patches are no longer kernels.yaml's "
                               f"{base}/{name}; rebuild it (--force)")
    src = find_source(source, base=base)
    with open(kernels_dir() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tree = _unpacked_tree(src)
        _switch_series(tree, patches, kernel_list.load().base(base).patch_dir)
        build_dir = kernels_dir() / "build" / build_dir_name(src.ident, name)
        config = (art.directory / ".config").read_text()
        if not (build_dir / ".config").is_file() or \
                (build_dir / ".config").read_text() != config:
            (build_dir / ".config").parent.mkdir(parents=True, exist_ok=True)
            (build_dir / ".config").write_text(config)
        with open(art.directory / "objects.log", "w") as log:
            _run(["make", f"O={build_dir}", f"-j{jobs or os.cpu_count() or 1}",
                  *KEPT_OBJECTS], tree, log)
            if not (art.directory / "ksm_rmap_item.pahole.txt").exists():
                _pahole(build_dir, tree, art.directory / "ksm_rmap_item.pahole.txt", log)
        _keep_objects(build_dir, art.directory)
        (art.directory / "objects" / "objects.json").write_text(json.dumps({
            "made_after_the_build": True,
            "made_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "objects": list(KEPT_OBJECTS)}, indent=2) + "\n")
    return art


# --- command line ------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands of ``rmapwalk kernel``: ``build``, ``show`` and ``list``."""
    kl = kernel_list.load()
    sub = parser.add_subparsers(dest="kernel_command", required=True)
    b = sub.add_parser("build", help="build (or find cached) kernels")
    s = sub.add_parser("show", help="print the cached kernels' directories")
    for p in (b, s):
        p.add_argument("--base", choices=tuple(kl.bases), default=kl.default_base,
                       help=f"kernel source base (default {kl.default_base})")
        p.add_argument("--kernel", choices=(*kl.variants, "all"), default="all",
                       help="which variant (default: all of the base, build-only ones "
                       "included, one after the other)")
        p.add_argument("--source", help="kernel tree or tarball (default: $KERNEL_SRC, "
                       "else the base's Debian package)")
    b.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="make -j (default: number of CPUs)")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    sub.add_parser("list", help="print every base and variant of kernel-config/kernels.yaml: "
                   "base, variant, model strategy, package, capture|build-only|paths")
    from . import matrix
    matrix.add_arguments(sub)
    from . import selftests
    selftests.add_arguments(sub)


def run(args) -> int:
    kl = kernel_list.load()
    if args.kernel_command == "list":
        for base, variant in kl.builds(with_fragments=True):
            v = kl.variants[variant]
            role = "capture" if v.capture else "paths" if v.fragments else "build-only"
            print(f"{base}\t{variant}\t{kl.strategy(variant)}\t{kl.base(base).package}\t{role}")
        return 0
    if args.kernel_command == "report":
        from . import matrix
        return matrix.run(args)
    if args.kernel_command == "selftests":
        from . import selftests
        return selftests.run(args)
    names = tuple(v for b, v in kl.builds() if b == args.base) if args.kernel == "all" \
        else (args.kernel,)
    try:
        for name in names:
            if args.kernel_command == "build":
                art = kernel_image(name, base=args.base, source=args.source, jobs=args.jobs,
                                   force=args.force)
            else:
                art = kernel_image(name, base=args.base, build=False, source=args.source)
            print(f"{args.base}\t{name}\t{art.key}\t{art.provenance['build_seconds']} s\t"
                  f"{art.bzimage}")
    except KernelBuildError as e:
        print(f"rmapwalk kernel: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rmapwalk.measure.kernel",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
