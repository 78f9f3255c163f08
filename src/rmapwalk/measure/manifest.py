"""manifest.json: how a run folder was made, and a checksum of every file in it.

Each capture run folder carries one manifest: the kernel's provenance (source package and
version, sha256 of every patch and of the final .config), the QEMU version and full command
line, the accelerator, the scenario (name, sha256), host facts, the date, this program's
version and git commit, and ``files``: sha256 and size of every other file in the folder.
``manifest_sha256`` covers the manifest itself (its canonical JSON without that key), so an
edit of the manifest is caught too.  :func:`verify` checks every manifest under a tree.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path

from rmapwalk import paths

NAME = "manifest.json"
FORMAT = 1


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
        if p.is_file() and p.name != NAME:
            out[p.relative_to(folder).as_posix()] = {"sha256": sha256_file(p),
                                                     "size": p.stat().st_size}
    return out


def write(folder: Path, info: dict) -> Path:
    """Write ``folder/manifest.json``: ``info`` plus date, host, program and file checksums."""
    doc = {"format": FORMAT,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "host": host_facts(), "program": program_version(), **info,
           "files": _files(folder)}
    doc["manifest_sha256"] = hashlib.sha256(_canonical(doc)).hexdigest()
    path = folder / NAME
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path


def verify_one(manifest: Path) -> list[str]:
    folder = manifest.parent
    try:
        doc = json.loads(manifest.read_text())
    except (OSError, ValueError) as e:
        return [f"{manifest}: unreadable manifest: {e}"]
    problems = []
    if doc.get("manifest_sha256") != hashlib.sha256(_canonical(doc)).hexdigest():
        problems.append(f"{manifest}: the manifest itself was changed (manifest_sha256)")
    listed = doc.get("files")
    if not isinstance(listed, dict):
        return problems + [f"{manifest}: no 'files' table"]
    present = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*")
               if p.is_file() and p.name != NAME}
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
    return problems


def verify(root: str | Path) -> list[str]:
    """Check every manifest.json under ``root``; return the problems found (empty: all good)."""
    root = Path(root)
    if not root.exists():
        return [f"{root}: does not exist"]
    manifests = sorted(root.rglob(NAME))
    if not manifests:
        return [f"{root}: no {NAME} anywhere below"]
    problems = []
    for m in manifests:
        problems += verify_one(m)
    return problems
