"""The kernel matrix: per base and variant, the layout of ``struct ksm_rmap_item`` and the text
size of mm/rmap.o, mm/ksm.o and vmlinux, and what the tracepoint and the optimisation cost.

``rmapwalk kernel report [--base B|all] [--out data/kernels]`` reads the cached kernels
(:mod:`rmapwalk.measure.kernel`; a kernel that is not built is an error naming the build
command; objects missing from an older cache entry are made with
:func:`rmapwalk.measure.kernel.ensure_objects`) and writes:

``<out>/matrix.csv``
    one row per base and variant: its role (capture or build-only), tracepoint or not, the
    patches, the cache key, ``struct ksm_rmap_item``'s size, cachelines, holes and members
    (pahole), the Berkeley ``size`` text/data/bss of mm/rmap.o, mm/ksm.o and vmlinux and the
    sum of their text symbols (``nm -S``, types t/T: vmlinux's .text is padded to 2 MiB, so
    its Berkeley text does not move), and the build's seconds.
``<out>/text-deltas.csv``
    for each base and each pair of :data:`COMPARISONS`, per object: the text sizes and their
    difference (bytes).
``<out>/<base>/<variant>/``
    ``ksm_rmap_item.pahole.txt``, ``size.txt`` (``size`` of the three files, as printed) and
    ``build.json`` (the cache entry's provenance).
``<out>/<base>/bloat-o-meter/<old>..<new>.<object>.txt``
    ``scripts/bloat-o-meter`` of the base's own tree, per comparison and object.
``<out>/captures-check.csv`` (with ``--captures DIR``)
    per captured run under DIR (``<scenario>/<base>/<variant>/run-k``, e.g. a
    ``rmapwalk capture ... --out DIR`` of data/scenarios/ci-small.yaml): does it verify, how
    many walks it has and the model (the variant's strategy) has, whether they agree walk by
    walk on the simulator's columns, and the first difference.
``<out>/manifest.json``
    :func:`rmapwalk.dataset.write_manifest` over all of it (every file's sha256), with the
    kernels' provenance.
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rmapwalk import dataset, kernels as kernel_list, outputs, paths
from rmapwalk.measure import kernel

OBJECTS = ("mm/rmap.o", "mm/ksm.o", "vmlinux")
# (old, new, what it shows): the bloat-o-meter and text-delta pairs
COMPARISONS = (
    ("baseline-notrace", "baseline", "the tracepoint patch (0001) alone"),
    ("merged-notrace", "merged", "the tracepoint on top of the merged form"),
    ("baseline-notrace", "merged-notrace", "the optimisation alone (merged form, no tracepoint)"),
    ("baseline", "patched", "v4 as posted, both with the tracepoint"),
    ("baseline", "naive", "v1-v3, both with the tracepoint"),
    ("baseline", "merged", "the merged form, both with the tracepoint"),
    ("baseline-notrace", "patched", "v4 as posted with its tracepoint, against plain Debian"),
)
MATRIX_COLUMNS = (
    "base", "variant", "role", "tracepoint", "strategy", "patches", "key",
    "struct_size", "struct_cachelines", "struct_holes", "struct_members", "struct_union_field",
    *(f"{o.replace('mm/', '').replace('.o', '_o')}_{f}" for o in OBJECTS
      for f in ("text", "data", "bss", "text_symbols")),
    "build_seconds")
DELTA_COLUMNS = ("base", "old", "new", "what", "object", "old_text", "new_text", "delta_text",
                 "old_text_symbols", "new_text_symbols", "delta_text_symbols")


CHECK_COLUMNS = ("scenario", "base", "variant", "run", "strategy", "verified", "walks_measured",
                 "walks_model", "agree", "walks_differing", "first_difference",
                 "manifest_sha256")


class ReportError(RuntimeError):
    """The report cannot be written; the message says which kernel or file."""


def parse_pahole(text: str) -> dict[str, object]:
    """size, cachelines, members and holes of a ``pahole -C`` struct, and the stable-tree
    index field in the union (``vm_pgoff``, ``linear_page_index`` or empty)."""
    m = re.search(r"/\*\s*size:\s*(\d+),\s*cachelines:\s*(\d+),\s*members:\s*(\d+)\s*\*/", text)
    if not m:
        raise ReportError("pahole output without a '/* size: N, cachelines: N, members: N */' "
                          "line")
    holes = re.search(r"/\*\s*sum members:.*?holes:\s*(\d+)", text)
    field = re.search(r"\b(vm_pgoff|linear_page_index);", text)
    return {"struct_size": int(m.group(1)), "struct_cachelines": int(m.group(2)),
            "struct_members": int(m.group(3)), "struct_holes": int(holes.group(1)) if holes else 0,
            "struct_union_field": field.group(1) if field else ""}


def parse_size(text: str) -> dict[str, dict[str, int]]:
    """Berkeley ``size`` output -> file name -> text, data, bss."""
    out = {}
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) >= 6 and f[0].isdigit():
            out[f[5]] = {"text": int(f[0]), "data": int(f[1]), "bss": int(f[2])}
    return out


def object_paths(art: kernel.KernelArtifact) -> dict[str, Path]:
    """The three files of a cache entry; ReportError naming what is missing."""
    files = {o: art.object(o) for o in OBJECTS[:2]}
    files["vmlinux"] = art.vmlinux
    missing = [o for o, p in files.items() if p is None]
    if missing:
        raise ReportError(f"{art.directory}: no {', '.join(missing)} in the cache entry")
    return files


def sizes(files: dict[str, Path]) -> tuple[str, dict[str, dict[str, int]]]:
    """``size`` of the files (run in a temporary directory of links named like the objects,
    so the printed names are mm/rmap.o, mm/ksm.o, vmlinux, not cache paths)."""
    with tempfile.TemporaryDirectory() as td:
        for name, p in files.items():
            (Path(td) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(td) / name).symlink_to(p)
        r = subprocess.run(["size", *files], cwd=td, capture_output=True, text=True)
    if r.returncode != 0:
        raise ReportError(f"size failed: {r.stderr.strip()}")
    parsed = parse_size(r.stdout)
    return r.stdout, {name: {**parsed[name], "text_symbols": text_symbols(p)}
                      for name, p in files.items()}


def text_symbols(path: Path) -> int:
    """Sum of the sizes of the text symbols (``nm -S`` types t/T).  For vmlinux this is the
    measure that moves: its .text section is padded to 2 MiB, so Berkeley ``text`` hides a
    change of a few hundred bytes."""
    r = subprocess.run(["nm", "-S", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        raise ReportError(f"nm -S {path}: {r.stderr.strip()}")
    total = 0
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) == 4 and f[2] in ("t", "T"):
            total += int(f[1], 16)
    return total


def bloat_o_meter(script: Path, old: Path, new: Path) -> str:
    r = subprocess.run([sys.executable, str(script), str(old), str(new)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise ReportError(f"{script} {old} {new}: {r.stderr.strip()}")
    return r.stdout


def _bloat_script(base: str, source: str | None) -> Path | None:
    """scripts/bloat-o-meter of the base's own source: the unpacked cache tree, else the
    tarball (extracted once into a temporary file)."""
    try:
        src = kernel.find_source(source, install=False, base=base)
    except kernel.KernelBuildError:
        return None
    tree = kernel.kernels_dir() / "src" / src.ident / "linux"
    if (tree / "scripts/bloat-o-meter").is_file():
        return tree / "scripts/bloat-o-meter"
    if src.path.is_dir():
        p = src.path / "scripts/bloat-o-meter"
        return p if p.is_file() else None
    return None


def scenario_file(name: str, sha256: str | None) -> Path:
    """The committed scenario file of a captured run: ``data/scenarios/<name>.yaml`` or one in
    a subfolder (``regressions/``), the one with the captured text's sha256 first."""
    found = [paths.SCENARIOS / f"{name}.yaml", *sorted(paths.SCENARIOS.rglob(f"{name}.yaml"))]
    found = [p for p in found if p.is_file()]
    if not found:
        raise ReportError(f"no scenario file {name}.yaml under {paths.SCENARIOS}")
    return next((p for p in found if dataset.sha256_file(p) == sha256), found[0])


def check_captures(root: Path) -> list[dict]:
    """Each captured run under ``root`` against the model, walk by walk (the simulator's
    columns, :data:`rmapwalk.contract.COLUMNS`), the way tests/measure/test_vm_e2e.py does."""
    from rmapwalk import contract, scenario as scenario_mod, simulate
    kl = kernel_list.load()
    rows = []
    for run in dataset.runs(root, include_unverified=True, plan=None, scenarios=None):
        doc = dataset.read_manifest(run.folder)
        sc_file = scenario_file(run.scenario, (doc.get("scenario") or {}).get("sha256"))
        with open(run.folder / "walks.csv") as f:
            measured = [{c: r[c] for c in contract.COLUMNS} for r in csv.DictReader(f)]
        strategy = kl.strategy(run.variant)
        model = [{c: str(v) for c, v in w.items()}
                 for w in simulate.simulate_walks(scenario_mod.load(sc_file), strategy)]
        differing = [i for i, (a, b) in enumerate(zip(measured, model)) if a != b]
        first = ""
        if differing:
            i = differing[0]
            first = f"walk {i}: " + ", ".join(
                f"{c} measured {measured[i][c]} model {model[i][c]}"
                for c in contract.COLUMNS if measured[i][c] != model[i][c])
        elif len(measured) != len(model):
            first = f"walk {min(len(measured), len(model))}: only in the " + \
                ("kernel" if len(measured) > len(model) else "model")
        same_text = dataset.sha256_file(sc_file) == (doc.get("scenario") or {}).get("sha256")
        rows.append({"scenario": run.scenario, "base": run.base, "variant": run.variant,
                     "run": run.run, "strategy": strategy,
                     "verified": not run.problems and same_text,
                     "walks_measured": len(measured), "walks_model": len(model),
                     "agree": not differing and len(measured) == len(model),
                     "walks_differing": len(differing) + abs(len(measured) - len(model)),
                     "first_difference": first,
                     "manifest_sha256": doc.get("manifest_sha256", "")})
    return rows


def collect(base: str, variant: str, *, source: str | None = None) -> kernel.KernelArtifact:
    art = kernel.kernel_image(variant, base=base, build=False, source=source)
    return kernel.ensure_objects(art, source=source)


def write(out: Path, arts: dict[tuple[str, str], kernel.KernelArtifact],
          bloat: dict[str, Path | None], checks: list[dict] | None = None) -> list[dict]:
    """Write the report of ``arts`` ((base, variant) -> cache entry) into ``out`` (replaced
    as a whole, via a temporary folder next to it); return the matrix rows."""
    kl = kernel_list.load()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        rows, text = [], {}
        for (base, variant), art in sorted(arts.items()):
            folder = tmp / base / variant
            folder.mkdir(parents=True)
            pahole_file = art.directory / "ksm_rmap_item.pahole.txt"
            if not pahole_file.is_file():
                raise ReportError(f"{art.directory}: no ksm_rmap_item.pahole.txt (pahole "
                                  "missing at build time? install dwarves, rebuild --force)")
            shutil.copy2(pahole_file, folder / "ksm_rmap_item.pahole.txt")
            shutil.copy2(art.directory / "build.json", folder / "build.json")
            printed, sz = sizes(object_paths(art))
            (folder / "size.txt").write_text(printed)
            text[(base, variant)] = sz
            v = kl.variants.get(variant)
            row = {"base": base, "variant": variant,
                   "role": "capture" if v is None or v.capture else "build-only",
                   "tracepoint": "" if v is None else str(v.tracepoint).lower(),
                   "strategy": "" if v is None else v.strategy,
                   "patches": " ".join(p["file"][:4] for p in art.provenance["patches"]),
                   "key": art.key, **parse_pahole(pahole_file.read_text()),
                   "build_seconds": art.provenance.get("build_seconds", "")}
            for o in OBJECTS:
                stem = o.replace("mm/", "").replace(".o", "_o")
                for f in ("text", "data", "bss", "text_symbols"):
                    row[f"{stem}_{f}"] = sz[o][f]
            rows.append(row)
        deltas = []
        for base in sorted({b for b, _ in arts}):
            for old, new, what in COMPARISONS:
                if (base, old) not in arts or (base, new) not in arts:
                    continue
                for o in OBJECTS:
                    a, b = text[(base, old)][o], text[(base, new)][o]
                    deltas.append({"base": base, "old": old, "new": new, "what": what,
                                   "object": o, "old_text": a["text"], "new_text": b["text"],
                                   "delta_text": b["text"] - a["text"],
                                   "old_text_symbols": a["text_symbols"],
                                   "new_text_symbols": b["text_symbols"],
                                   "delta_text_symbols": b["text_symbols"] - a["text_symbols"]})
                    script = bloat.get(base)
                    if script is None:
                        continue
                    files_old, files_new = (object_paths(arts[(base, x)]) for x in (old, new))
                    d = tmp / base / "bloat-o-meter"
                    d.mkdir(exist_ok=True)
                    name = o.replace("/", "_")
                    (d / f"{old}..{new}.{name}.txt").write_text(
                        bloat_o_meter(script, files_old[o], files_new[o]))
        _write_csv(tmp / "matrix.csv", MATRIX_COLUMNS, rows)
        _write_csv(tmp / "text-deltas.csv", DELTA_COLUMNS, deltas)
        if checks is not None:
            _write_csv(tmp / "captures-check.csv", CHECK_COLUMNS, checks)
        (tmp / "README.md").write_text(
            "# data/kernels: the kernel matrix\n\nWritten by `rmapwalk kernel report` "
            "(src/rmapwalk/measure/matrix.py); do not edit, regenerate.\n\n"
            + "\n".join(line[4:] if line.startswith("    ") else line
                        for line in __doc__.splitlines()) + "\n\n## Tables\n\n"
            + markdown(rows, tmp / "text-deltas.csv"))
        dataset.write_manifest(tmp, {
            "kind": "kernel-matrix",
            "command": "rmapwalk kernel report --out " + str(out),
            "kernels_yaml_sha256": dataset.sha256_file(kl.path),
            "kernels": {f"{b}/{v}": a.provenance for (b, v), a in sorted(arts.items())},
            "bloat_o_meter": {b: str(s) if s else None for b, s in sorted(bloat.items())}})
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rows


def verify(folder: Path) -> list[str]:
    """The folder's manifest is intact and lists exactly its files, with their checksums
    (:func:`rmapwalk.dataset.check_manifest` without the files only a run folder needs)."""
    folder = Path(folder)
    run_only = tuple(f"{folder / name}: a run folder needs it" for name in dataset.RUN_FILES)
    return [p for p in dataset.check_manifest(folder) if not p.startswith(run_only)]


def _write_csv(path: Path, columns, rows) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue())


def markdown(rows: list[dict], deltas_csv: Path | None = None) -> str:
    lines = ["| base | variant | role | struct size | union field | rmap.o text | ksm.o text "
             "| vmlinux text symbols |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['base']} | {r['variant']} | {r['role']} | {r['struct_size']} "
                     f"| {r['struct_union_field'] or '-'} | {r['rmap_o_text']} "
                     f"| {r['ksm_o_text']} | {r['vmlinux_text_symbols']} |")
    if deltas_csv and deltas_csv.is_file():
        lines += ["", "| base | old -> new | object | text (size) | text symbols (nm) |",
                  "|---|---|---|---|---|"]
        with open(deltas_csv) as f:
            for d in csv.DictReader(f):
                lines.append(f"| {d['base']} | {d['old']} -> {d['new']} | {d['object']} "
                             f"| {int(d['delta_text']):+d} | {int(d['delta_text_symbols']):+d} |")
    return "\n".join(lines) + "\n"


# --- command line ------------------------------------------------------------

def add_arguments(sub) -> None:
    kl = kernel_list.load()
    p = sub.add_parser("report", help="write the kernel matrix (pahole of ksm_rmap_item, "
                       "text sizes, bloat-o-meter) of the built kernels")
    p.add_argument("--base", choices=(*kl.bases, "all"), default="all")
    p.add_argument("--out", default=str(paths.ROOT / "data" / "kernels"),
                   help="data folder, replaced as a whole (default data/kernels)")
    p.add_argument("--source", help="kernel tree or tarball (default: the base's package)")
    p.add_argument("--captures", action="append", default=[],
                   help="a capture folder (<scenario>/<base>/<variant>/run-k) to check against "
                   "the model into captures-check.csv (repeatable)")


def check_out(path: str | Path) -> Path:
    """``--out`` before any work: a folder that can be written and, since it is replaced as a
    whole, one that is new, empty or an earlier report (its manifest says kernel-matrix): a
    slip like ``--out data`` would otherwise delete every other data folder."""
    out = outputs.check_output_dir(path, "--out")
    if out.is_dir() and any(out.iterdir()):
        try:
            kind = dataset.read_manifest(out).get("kind")
        except dataset.DataIntegrityError:
            kind = None
        if kind != "kernel-matrix":
            raise outputs.UsageError(f"--out {path}: holds files that are not a kernel report "
                                     f"(no {dataset.MANIFEST} of kind kernel-matrix); it would be "
                                     "replaced as a whole: give a new or empty folder")
    return out


def run(args) -> int:
    kl = kernel_list.load()
    bases = tuple(kl.bases) if args.base == "all" else (args.base,)
    check_out(args.out)
    for d in args.captures:
        if not Path(d).is_dir():
            raise outputs.UsageError(f"--captures {d}: no such folder")
    try:
        arts = {(b, v): collect(b, v, source=args.source)
                for b, v in kl.builds() if b in bases}
        bloat = {b: _bloat_script(b, args.source) for b in bases}
        checks = [c for d in args.captures for c in check_captures(Path(d))] \
            if args.captures else None
        rows = write(Path(args.out), arts, bloat, checks)
    except (ReportError, kernel.KernelBuildError) as e:
        print(f"rmapwalk kernel report: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(markdown(rows, Path(args.out) / "text-deltas.csv"))
    for c in checks or []:
        print(f"{c['scenario']} {c['base']}/{c['variant']} run-{c['run']}: "
              f"{c['walks_measured']} walks, model {c['walks_model']}: "
              f"{'agree' if c['agree'] else 'DIFFER: ' + c['first_difference']}")
    return 0
