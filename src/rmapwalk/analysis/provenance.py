"""Provenance: what the measured data and the book were made from.

Reads the ``manifest.json`` of every verified capture run (through :mod:`rmapwalk.dataset`:
kernel source and version, patch sha256s, QEMU version and command line, accelerator, file
checksums), the kernel list ``kernel-config/kernels.yaml`` with its ``git format-patch``
files, and writes what ``make book`` adds to the executed notebooks:

- ``build-info OUT.md [EXECUTED_DIR]``: the build information the provenance appendix
  includes (commit, data digest, the data archive and its sha256, every notebook's parameters);
- ``verdict OUT.md CLAIM.ipynb``: the front page's verdict (a sentence and a table), taken from
  what the executed claim notebook glued (``verdict_sentence``, ``verdict_md``), so the front
  page shows the claim chapter's numbers and computes nothing itself;
- ``archive OUT.tar.gz``: the data set (:data:`ARCHIVE_MEMBERS`: the capture runs, the
  scenarios, the thread's figures, and the published conditions, paths, kernel matrix,
  selftests and fuzz campaign; the real programs' runs are left out for their size) as a
  deterministic archive: sorted members,
  mtime 0, owner 0, mode 0644/0755, gzip without a name or time stamp, so the same data gives
  the same sha256.
"""
from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
import tarfile
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
    """Patches named by the manifests with their sha256, against the files of the run's base
    in ``kernel-config/`` now (``matches``: False when the committed file changed; a run
    whose series changed does not verify, see :mod:`rmapwalk.dataset`).  Each base has its own
    patch folder: a 6.1 run's patches are compared with 6.1's, not the default base's."""
    kl = kernel_list.load()
    seen = {}
    for _, k, _, folder in run_folders(root):
        for p in read_manifest(folder).get("kernel", {}).get("patches", []):
            seen.setdefault((k.split("/")[0], p["file"], p["sha256"]), set()).add(k)
    rows = []
    for (base, name, sha), ks in sorted(seen.items()):
        f = kl.base(base).patch_dir / name
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


ARCHIVE = "rmapwalk-data.tar.gz"
# Every data set the chapters read, but the real programs' runs (data/programs, 46 MB: in
# the repository only, ARCHIVE_LEFT_OUT), with their manifests.
ARCHIVE_MEMBERS = ("data/dataset.yaml", "data/thread.yaml", "data/scenarios", "data/traces",
                   "data/fuzz", "data/conditions", "data/paths", "data/kernels", "data/selftests",
                   "data/workloads")
ARCHIVE_LEFT_OUT = {"data/programs": "the real programs' runs, 46 MB: in the repository only"}


def archive(out: Path, root: Path | None = None) -> str:
    """Write the data set under ``root`` (default: the repository) to ``out`` as a
    deterministic .tar.gz (see the module docstring); returns its sha256."""
    root = Path(root or paths.ROOT)
    files = []
    for m in ARCHIVE_MEMBERS:
        p = root / m
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files += [f for f in p.rglob("*") if f.is_file()]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in sorted(files, key=lambda f: f.relative_to(root).as_posix()):
            info = tarfile.TarInfo("rmapwalk-data/" + f.relative_to(root).as_posix())
            data = f.read_bytes()
            info.size, info.mtime, info.uid, info.gid = len(data), 0, 0, 0
            info.uname = info.gname = ""
            info.mode = 0o755 if f.stat().st_mode & 0o111 else 0o644
            tar.addfile(info, io.BytesIO(data))
    out = Path(out)
    tmp = out.with_name(f".{out.name}.part")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buf.getvalue())
    tmp.replace(out)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def glued(nb: Path, name: str, mime: str = "text/markdown") -> str:
    """What an executed notebook glued under ``name`` (myst_nb/scrapbook), as ``mime``."""
    doc = json.loads(Path(nb).read_text())
    for c in doc.get("cells", []):
        for o in c.get("outputs", []):
            book = o.get("metadata", {}).get("scrapbook", {})
            if book.get("name") == name:
                v = o.get("data", {}).get(book.get("mime_prefix", "") + mime)
                if v is not None:
                    return v if isinstance(v, str) else "".join(v)
    raise KeyError(f"{nb}: nothing glued as {name!r} ({mime})")


def verdict(claim_notebook: Path) -> str:
    """The front page's verdict: the sentence and the table the executed claim notebook
    glued."""
    nb = Path(claim_notebook)
    return (f"{glued(nb, 'verdict_sentence')}\n\n{glued(nb, 'verdict_md')}\n")


def build_info(executed: Path, traces: Path | None = None, data: Path | None = None) -> str:
    """Markdown for the provenance appendix: commit, date, data set, the data archive (when
    ``executed`` holds it) and the notebooks' parameters.  Besides the capture runs' digest,
    one over every file of ``data`` (default data/): the chapters also read the real
    programs, conditions, paths, kernel matrix, selftests and fuzz campaign, which the
    archive and the runs' digest leave out."""
    traces = Path(traces or paths.TRACES)
    data = Path(data or paths.DATA)
    commit = _git("rev-parse", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    n_runs = len(run_folders(traces))
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rel = paths.shown(traces)
    arc = Path(executed) / ARCHIVE
    lines = ["```{admonition} How this book was built", ":class: note", "",
             f"- commit `{commit[:12]}`" + (" with uncommitted changes" if dirty else "")
             + f", built {when}",
             f"- measured data: `{rel}/`, {n_runs} capture runs"
             + (f", data digest `{data_digest(traces)}` (sha256 over every file)"
                if n_runs else " (none yet: the measurement chapters say so)"),
             f"- every data file the chapters read: `{paths.shown(data)}/`, digest "
             f"`{dataset.digest(data)}` (sha256 over every file)"]
    if arc.is_file():
        sha = hashlib.sha256(arc.read_bytes()).hexdigest()
        lines.append(f"- the data set as one archive: {{download}}`{ARCHIVE} <{ARCHIVE}>` "
                     f"({arc.stat().st_size / 1e6:,.1f} MB: {', '.join(ARCHIVE_MEMBERS)}; "
                     f"left out: " + "; ".join(f"{k} ({v})" for k, v in ARCHIVE_LEFT_OUT.items())
                     + f"), sha256 `{sha}`")
    lines += ["- notebook parameters (papermill; the defaults unless overridden):", ""]
    for nb in sorted(Path(executed).glob("*.ipynb")):
        params = "; ".join(_parameters(nb)) or "none"
        lines.append(f"  - `{nb.stem}`: {params.replace('`', '')}")
    lines += ["```", ""]
    return "\n".join(lines)


def kernels_table(base: str | None = None) -> str:
    """A MyST table of the kernels of one base (``kernel-config/kernels.yaml``): variant, its
    patches (by number), the model strategy its walks count like, and its summary."""
    kl = kernel_list.load()
    b = kl.base(base)
    rows = ["| kernel | patches | counts like (model) | what it is |", "|---|---|---|---|"]
    for v, files in b.series.items():
        var = kl.variants[v]
        nums = ", ".join(f.split("-", 1)[0] for f in files) or "none"
        summary = " ".join(str(var.summary).split()).replace("|", "/")
        rows.append(f"| `{v}` | {nums} | `{var.strategy}` | {summary} |")
    return (f"Base {b.name}, the kernels and their patches (`kernel-config/kernels.yaml`):\n\n"
            + "\n".join(rows) + "\n")


USAGE = ("usage: python -m rmapwalk.analysis.provenance build-info OUT.md [EXECUTED_DIR]\n"
         "       python -m rmapwalk.analysis.provenance kernels OUT.md\n"
         "       python -m rmapwalk.analysis.provenance verdict OUT.md CLAIM.ipynb\n"
         "       python -m rmapwalk.analysis.provenance archive OUT.tar.gz")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cmd, args = (argv[0], argv[1:]) if argv else ("", [])
    if cmd == "build-info" and len(args) in (1, 2):
        out = Path(args[0])
        out.write_text(build_info(Path(args[1]) if len(args) == 2 else out.parent))
    elif cmd == "verdict" and len(args) == 2:
        Path(args[0]).write_text(verdict(Path(args[1])))
    elif cmd == "kernels" and len(args) == 1:
        Path(args[0]).write_text(kernels_table())
    elif cmd == "archive" and len(args) == 1:
        print(f"{archive(Path(args[0]))}  {args[0]}")
    else:
        print(USAGE, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
