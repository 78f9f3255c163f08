"""Provenance: what the measured data and the book were made from.

Reads the ``manifest.json`` of every verified capture run (through :mod:`rmapwalk.dataset`:
kernel source and version, patch sha256s, QEMU version and command line, accelerator, file
checksums), the kernel list ``kernel-config/kernels.yaml`` with its ``git format-patch``
files, and writes the build information the front page includes
(``python -m rmapwalk.analysis.provenance build-info OUT.md``, run by ``make book``).
"""
from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from .. import dataset, kernels as kernel_list, paths
from ..dataset import read_manifest


def run_folders(root: str | Path) -> list[tuple[str, str, int, Path]]:
    """(scenario, kernel, run, folder) of every verified run of every base, sorted; the
    kernel is ``<base>/<variant>``.  Raises DataIntegrityError naming what does not verify."""
    return [(r.scenario, f"{r.base}/{r.variant}", r.run, r.folder)
            for r in dataset.runs(Path(root))]


def runs(root: str | Path) -> pd.DataFrame:
    """One row per run: scenario, kernel, run, date, kernel source version, patches (file
    names), accelerator, QEMU version, host CPU, program commit, and the manifest's sha256."""
    rows = []
    for s, k, r, folder in run_folders(root):
        d = read_manifest(folder)
        kern, qemu = d.get("kernel", {}), d.get("qemu", {})
        rows.append({"scenario": s, "kernel": k, "run": r, "date": d.get("date", ""),
                     "linux": kern.get("source", {}).get("version", ""),
                     "patches": " ".join(p["file"][:4] for p in kern.get("patches", [])),
                     "accel": qemu.get("accel", ""),
                     "qemu": qemu.get("version", "").replace("QEMU emulator version ", ""),
                     "cpu": d.get("host", {}).get("cpu_model", ""),
                     "commit": (d.get("program", {}).get("git_commit") or "")[:12],
                     "manifest_sha256": d.get("manifest_sha256", "")[:16]})
    return pd.DataFrame(rows, columns=["scenario", "kernel", "run", "date", "linux", "patches",
                                       "accel", "qemu", "cpu", "commit", "manifest_sha256"])


def kernels(root: str | Path) -> pd.DataFrame:
    """One row per distinct kernel image used: name, source version, compiler, config and
    image sha256, and the runs that used it."""
    rows = {}
    for s, k, r, folder in run_folders(root):
        kern = read_manifest(folder).get("kernel", {})
        key = (k, kern.get("image_sha256", ""))
        row = rows.setdefault(key, {"kernel": k, "linux": kern.get("source", {}).get("version", ""),
                                    "compiler": kern.get("compiler", ""),
                                    "config_sha256": kern.get("config_sha256", "")[:16],
                                    "image_sha256": kern.get("image_sha256", "")[:16], "runs": 0})
        row["runs"] += 1
    return pd.DataFrame(list(rows.values()), columns=["kernel", "linux", "compiler",
                                                      "config_sha256", "image_sha256", "runs"])


def patch_hashes(root: str | Path) -> pd.DataFrame:
    """Patches named by the manifests with their sha256, against the files in
    ``kernel-config/patches/`` now (``matches``: False when the committed file changed)."""
    seen = {}
    for _, k, _, folder in run_folders(root):
        for p in read_manifest(folder).get("kernel", {}).get("patches", []):
            seen.setdefault((p["file"], p["sha256"]), set()).add(k)
    rows = []
    for (name, sha), ks in sorted(seen.items()):
        f = kernel_list.load().base().patch_dir / name
        now = dataset.sha256_file(f) if f.is_file() else ""
        rows.append({"patch": name, "sha256": sha, "kernels": ", ".join(sorted(ks)),
                     "matches": now == sha})
    return pd.DataFrame(rows, columns=["patch", "sha256", "kernels", "matches"])


def qemu_commands(root: str | Path) -> pd.DataFrame:
    """Distinct QEMU command lines (the per-run paths replaced by ``...``) with the
    accelerator and why it was chosen."""
    rows = {}
    for s, k, r, folder in run_folders(root):
        q = read_manifest(folder).get("qemu", {})
        cmd = " ".join("…/" + Path(a).name if a.startswith("/") else
                       "file:…/" + Path(a).name if a.startswith("file:/") else a
                       for a in q.get("command", []))
        row = rows.setdefault(cmd, {"command": cmd, "accel": q.get("accel", ""),
                                    "accel_reason": q.get("accel_reason", ""),
                                    "version": q.get("version", ""), "runs": 0})
        row["runs"] += 1
    return pd.DataFrame(list(rows.values()), columns=["command", "accel", "accel_reason",
                                                      "version", "runs"])


def checksums(root: str | Path) -> pd.DataFrame:
    """sha256 and size of every file the manifests list, per run."""
    rows = []
    for s, k, r, folder in run_folders(root):
        for name, f in sorted(read_manifest(folder).get("files", {}).items()):
            rows.append({"scenario": s, "kernel": k, "run": r, "file": name,
                         "size": f.get("size"), "sha256": f.get("sha256", "")})
    return pd.DataFrame(rows, columns=["scenario", "kernel", "run", "file", "size", "sha256"])


def verify(root: str | Path) -> list[str]:
    """Every problem ``rmapwalk verify`` finds in the tree (empty: all good)."""
    return dataset.verify(root)


def data_digest(root: str | Path) -> str:
    """sha256 (16 hex) over every file of the data set: names it in one string."""
    return dataset.digest(root)


def series(base: str | None = None) -> dict:
    """The kernels of one base (kernels.yaml): variant -> ordered patch files, and each
    patch's text and sha256."""
    b = kernel_list.load().base(base)
    patches = {}
    for f in sorted({p for files in b.series.values() for p in files}):
        path = b.patch_dir / f
        patches[f] = {"sha256": dataset.sha256_file(path), "text": path.read_text(errors="replace")}
    return {"kernels": {v: list(files) for v, files in b.series.items()}, "patches": patches}


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(paths.ROOT), *args], capture_output=True,
                              text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _parameters(nb: Path) -> list[str]:
    """The parameter assignments a notebook ran with: its ``parameters`` cell, overridden
    by papermill's ``injected-parameters`` cell when there is one."""
    doc = json.loads(nb.read_text())
    found = {}
    for c in doc.get("cells", []):
        tags = c.get("metadata", {}).get("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            for line in "".join(c.get("source", "")).splitlines():
                line = line.split("#", 1)[0].rstrip()
                if "=" in line and not line.startswith(" "):
                    name = line.split("=", 1)[0].split(":")[0].strip()
                    found[name] = line.split("=", 1)[1].strip()
    return [f"{k} = {v}" for k, v in found.items()]


def build_info(executed: Path, traces: Path | None = None) -> str:
    """Markdown for the front page: commit, date, data set and the notebooks' parameters."""
    traces = Path(traces or paths.TRACES)
    commit = _git("rev-parse", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    n_runs = len(run_folders(traces))
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rel = traces.relative_to(paths.ROOT) if traces.is_relative_to(paths.ROOT) else traces
    lines = ["```{admonition} How this book was built", ":class: note", "",
             f"- commit `{commit[:12]}`" + (" with uncommitted changes" if dirty else "")
             + f", built {when}",
             f"- measured data: `{rel}/`, {n_runs} capture runs"
             + (f", data digest `{data_digest(traces)}` (sha256 over every file)"
                if n_runs else " (none yet: the measurement chapters say so)"),
             "- notebook parameters (papermill; the defaults unless overridden):", ""]
    for nb in sorted(Path(executed).glob("*.ipynb")):
        params = "; ".join(_parameters(nb)) or "none"
        lines.append(f"  - `{nb.stem}`: {params.replace('`', '')}")
    lines += ["```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3) or argv[0] != "build-info":
        print("usage: python -m rmapwalk.analysis.provenance build-info OUT.md [EXECUTED_DIR]",
              file=sys.stderr)
        return 2
    out = Path(argv[1])
    executed = Path(argv[2]) if len(argv) == 3 else out.parent
    out.write_text(build_info(executed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
