"""Versions: the kernel matrix (Linux 6.1 and 6.12 x the variants of the series) and the
kernel's own selftests on every variant (issue 10, items 3, 4 and 6).

Reads two committed folders, each only after it verified against its manifests
(:func:`rmapwalk.dataset.check_manifest`: checksums, sizes, no file missing or extra), so a
changed or missing file raises :class:`rmapwalk.dataset.DataIntegrityError` naming it:

- ``data/kernels/`` (``rmapwalk kernel report``, :mod:`rmapwalk.measure.matrix`):
  ``matrix.csv`` (per base and variant: ``struct ksm_rmap_item`` from pahole, Berkeley
  ``size`` text of mm/rmap.o, mm/ksm.o, vmlinux and vmlinux's text symbols from ``nm -S``),
  ``text-deltas.csv`` (the pairs of :data:`rmapwalk.measure.matrix.COMPARISONS`),
  ``captures-check.csv`` (captured runs against the model), per variant
  ``ksm_rmap_item.pahole.txt``, per base ``bloat-o-meter/<old>..<new>.<object>.txt``;
- ``data/selftests/`` (``rmapwalk kernel selftests``, :mod:`rmapwalk.measure.selftests`):
  ``summary.csv`` and, per kernel, ``<base>/<variant>/`` with its own manifest and the TAP
  files.  The summary is read back through :func:`rmapwalk.measure.selftests.summary` (from
  the per-kernel manifests) and must equal ``summary.csv``; findings are
  :func:`rmapwalk.measure.selftests.findings`.

A table without the columns it should have raises :class:`VersionsDataError`, naming the file.
The model is not used here: the matrix is about builds, and captures-check.csv already holds
the comparison with the model that ``kernel report --captures`` made.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from rmapwalk import dataset, kernels, paths
from rmapwalk.measure import matrix, selftests

KERNELS_ROOT = paths.DATA / "kernels"
SELFTESTS_ROOT = paths.DATA / "selftests"
KERNELS_REQUIRED = ("matrix.csv", "text-deltas.csv", "captures-check.csv")
SELFTESTS_REQUIRED = ("summary.csv",)
# what the figure and the tables show per object: Berkeley text for the objects, the text
# symbols (nm -S) for vmlinux, whose .text is padded to 2 MiB (matrix.py's docstring)
TEXT_COLUMN = {"mm/rmap.o": "delta_text", "mm/ksm.o": "delta_text",
               "vmlinux": "delta_text_symbols"}
TRACEPOINT = ("baseline-notrace", "baseline")
OPTIMISATION = ("baseline-notrace", "merged-notrace")


class VersionsDataError(ValueError):
    """A table of data/kernels or data/selftests without what it should have; names the file."""


def variants() -> list[str]:
    """The variants of the matrix, in kernels.yaml's order (the path variants left out)."""
    kl = kernels.load()
    return [v for v in kl.variants if not kl.variants[v].fragments]


def verified(folder: str | Path, required: tuple[str, ...]) -> Path:
    """``folder`` if its manifest verifies and lists ``required``; else DataIntegrityError
    naming each file that does not."""
    folder = Path(folder)
    if not folder.is_dir():
        raise dataset.DataIntegrityError([f"{folder}: no such folder"])
    problems = dataset.check_manifest(folder, required)
    if problems:
        raise dataset.DataIntegrityError(problems)
    return folder


def _csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise VersionsDataError(f"{path}: cannot read the table: {e}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise VersionsDataError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def _ints(df: pd.DataFrame, path: Path, columns) -> pd.DataFrame:
    for c in columns:
        bad = [x for x in df[c] if not re.fullmatch(r"-?\d+", x)]
        if bad:
            raise VersionsDataError(f"{path}: column {c}: {bad[0]!r} is not an integer")
        df[c] = df[c].astype(int)
    return df


def load_kernels(root: str | Path = KERNELS_ROOT) -> dict:
    """data/kernels, verified: ``matrix``, ``deltas``, ``captures`` (DataFrames), ``pahole``
    ((base, variant) -> text) and ``root``."""
    root = verified(root, KERNELS_REQUIRED)
    m = _csv(root / "matrix.csv", matrix.MATRIX_COLUMNS)
    m = _ints(m, root / "matrix.csv", [c for c in matrix.MATRIX_COLUMNS if c.startswith(
        ("struct_size", "struct_cachelines", "struct_holes", "struct_members", "rmap_o_",
         "ksm_o_", "vmlinux_"))])
    d = _csv(root / "text-deltas.csv", matrix.DELTA_COLUMNS)
    d = _ints(d, root / "text-deltas.csv", [c for c in matrix.DELTA_COLUMNS
                                           if "text" in c])
    c = _csv(root / "captures-check.csv", matrix.CHECK_COLUMNS)
    c = _ints(c, root / "captures-check.csv", ("run", "walks_measured", "walks_model",
                                               "walks_differing"))
    for col in ("verified", "agree"):
        bad = [x for x in c[col] if x not in ("True", "False")]
        if bad:
            raise VersionsDataError(f"{root / 'captures-check.csv'}: column {col}: "
                                    f"{bad[0]!r} is not True or False")
        c[col] = c[col] == "True"
    pahole = {}
    for b, v in zip(m["base"], m["variant"]):
        f = root / b / v / "ksm_rmap_item.pahole.txt"
        if not f.is_file():
            raise VersionsDataError(f"{f}: missing (matrix.csv has {b}/{v})")
        pahole[(b, v)] = f.read_text()
    return {"root": root, "matrix": m, "deltas": d, "captures": c, "pahole": pahole}


def load_selftests(root: str | Path = SELFTESTS_ROOT) -> dict:
    """data/selftests, verified (the top-level manifest and every kernel's): ``summary``
    (one row per base, variant, test), ``rounds`` (ksm_tests: per invocation, rounds failed),
    ``kernels`` ((base, variant) -> its manifest's kernel provenance) and ``root``."""
    root = verified(root, SELFTESTS_REQUIRED)
    folders = sorted(p.parent for p in root.glob(f"*/*/{dataset.MANIFEST}"))
    for f in folders:
        verified(f, ())
    s = _csv(root / "summary.csv", selftests.SUMMARY_COLUMNS)
    s = _ints(s, root / "summary.csv", ("pass", "fail", "skip"))
    again = selftests.summary(root)
    if [(r["base"], r["variant"], r["test"], r["pass"], r["fail"], r["skip"]) for r in again] \
            != sorted(zip(s["base"], s["variant"], s["test"], s["pass"], s["fail"], s["skip"])):
        raise VersionsDataError(f"{root / 'summary.csv'}: differs from the kernels' manifests "
                                f"under {root} (rmapwalk kernel selftests --summary-only)")
    provenance, rounds = {}, []
    for f in folders:
        doc = dataset.read_manifest(f)
        provenance[(doc["base"], doc["variant"])] = doc.get("kernel") or {}
        tap = f / "ksm_tests.tap"
        if tap.is_file():
            rounds += [{"base": doc["base"], "variant": doc["variant"], **r}
                       for r in invocation_rounds(tap.read_text())]
    return {"root": root, "summary": s, "findings": selftests.findings(again),
            "rounds": pd.DataFrame(rounds), "kernels": provenance}


_ROUND = re.compile(r"^(not ok|ok) \d+ (.+?) \[round (\d+)\]", re.M)


def invocation_rounds(tap: str) -> list[dict]:
    """ksm_tests' TAP (one line per invocation and round): per invocation, rounds and failed."""
    out: dict[str, dict] = {}
    for status, label, _ in _ROUND.findall(tap):
        r = out.setdefault(label, {"invocation": label, "rounds": 0, "failed": 0})
        r["rounds"] += 1
        r["failed"] += status == "not ok"
    return list(out.values())


# --- the matrix ---------------------------------------------------------------------------

def _order(df: pd.DataFrame, base="base", variant="variant") -> pd.DataFrame:
    vs = {v: i for i, v in enumerate(variants())}
    return df.sort_values([base, variant], key=lambda s: s.map(vs) if s.name == variant
                          else s.map(lambda b: tuple(int(x) for x in b.split(".")))
                          ).reset_index(drop=True)


def union_partners(pahole: str) -> list[str]:
    """The members that share the union with the stable-tree index (``vm_pgoff`` or
    ``linear_page_index``) in a pahole of ``struct ksm_rmap_item``; [] without one."""
    m = re.search(r"union \{((?:(?!union \{).)*?)\b(vm_pgoff|linear_page_index);", pahole,
                  re.S)
    return re.findall(r"(\w+);", m.group(1)) if m else []


def variant_table(kd: dict) -> pd.DataFrame:
    """One row per variant: what it changes (kernels.yaml's summary), its patches on each base
    and what ``rmap_walk_ksm()`` queries."""
    kl = kernels.load()
    m = kd["matrix"]
    rows = []
    for v in variants():
        per = {b: m[(m["base"] == b) & (m["variant"] == v)] for b in sorted(set(m["base"]))}
        rows.append({"variant": v,
                     "role": "captured" if kl.variants[v].capture else "build-only",
                     **{f"patches on {b}": (p["patches"].iloc[0] or "none") if len(p) else "-"
                        for b, p in per.items()},
                     "model strategy": kl.variants[v].strategy,
                     "what it changes": " ".join(kl.variants[v].summary.split())})
    return pd.DataFrame(rows)


def base_differences(kd: dict) -> list[str]:
    """Where a variant's series differs between the bases (from matrix.csv's patches)."""
    m = kd["matrix"]
    out = []
    for v in variants():
        p = {b: set(m[(m["base"] == b) & (m["variant"] == v)]["patches"].str.split().sum()
                    or []) for b in sorted(set(m["base"]))}
        if len(p) == 2 and len(set(map(frozenset, p.values()))) == 2:
            (b1, s1), (b2, s2) = p.items()
            only = [f"{' '.join(sorted(a - b))} only on {base}"
                    for base, a, b in ((b1, s1, s2), (b2, s2, s1)) if a - b]
            out.append(f"{v}: " + "; ".join(only))
    return out


def struct_table(kd: dict) -> pd.DataFrame:
    """``struct ksm_rmap_item`` per base and variant: size, cachelines, members, holes, the
    index field and what it shares its union with."""
    m = _order(kd["matrix"])
    return pd.DataFrame({
        "base": m["base"], "variant": m["variant"],
        "size (bytes)": m["struct_size"], "cachelines": m["struct_cachelines"],
        "members": m["struct_members"], "holes": m["struct_holes"],
        "index field": [f or "-" for f in m["struct_union_field"]],
        "shares the union with": [", ".join(union_partners(kd["pahole"][(b, v)])) or "-"
                                  for b, v in zip(m["base"], m["variant"])]})


def delta_table(kd: dict) -> pd.DataFrame:
    """Text-size differences per base and comparison (bytes): the objects' Berkeley text,
    vmlinux's Berkeley text and its text symbols."""
    d = kd["deltas"]
    rows = []
    for (b, old, new, what), g in d.groupby(["base", "old", "new", "what"], sort=False):
        o = g.set_index("object")
        rows.append({"base": b, "comparison": f"{old} → {new}", "what it shows": what,
                     "mm/rmap.o text": o.loc["mm/rmap.o", "delta_text"],
                     "mm/ksm.o text": o.loc["mm/ksm.o", "delta_text"],
                     "vmlinux text (size)": o.loc["vmlinux", "delta_text"],
                     "vmlinux text symbols (nm)": o.loc["vmlinux", "delta_text_symbols"]})
    return pd.DataFrame(rows)


def delta(kd: dict, base: str, old: str, new: str, obj: str) -> int:
    """One text-size difference as the figure and the tables show it (see TEXT_COLUMN)."""
    d = kd["deltas"]
    sel = d[(d["base"] == base) & (d["old"] == old) & (d["new"] == new) & (d["object"] == obj)]
    if len(sel) != 1:
        raise VersionsDataError(f"{kd['root'] / 'text-deltas.csv'}: {len(sel)} rows for "
                                f"{base} {old} -> {new} {obj}, expected one")
    return int(sel[TEXT_COLUMN[obj]].iloc[0])


def bloat_functions(kd: dict, old: str, new: str, obj: str = "mm/ksm.o") -> pd.DataFrame:
    """bloat-o-meter's functions per base for one comparison: function x base -> delta."""
    cols = {}
    for b in sorted(set(kd["matrix"]["base"])):
        f = kd["root"] / b / "bloat-o-meter" / f"{old}..{new}.{obj.replace('/', '_')}.txt"
        if not f.is_file():
            raise VersionsDataError(f"{f}: missing")
        rows = re.findall(r"^(\S+)\s+(\d+|-)\s+(\d+|-)\s+([+-]\d+)$", f.read_text(), re.M)
        cols[f"{b} (bytes)"] = {name: int(dl) for name, _, _, dl in rows}
    return pd.DataFrame(cols).fillna(0).astype(int).rename_axis("function").reset_index()


def captures_table(kd: dict) -> pd.DataFrame:
    """Scenario x kernel: per captured (base, variant), the runs and whether they agree with
    the model walk by walk ("9/9 walks" or "differs in 4 of 4"); "-" where nothing was captured."""
    c = kd["captures"]
    cells = {}
    for (s, b, v), g in c.groupby(["scenario", "base", "variant"]):
        n = f" ({len(g)} runs)" if len(g) > 1 else ""
        if g["agree"].all() and g["verified"].all():
            cells[(s, b, v)] = f"agrees, {g['walks_measured'].iloc[0]} walks{n}"
        else:
            cells[(s, b, v)] = (f"differs in {g['walks_differing'].max()} of "
                                f"{g['walks_measured'].max()} walks{n}")
    cols = [bv for bv in _order(pd.DataFrame(sorted({(b, v) for _, b, v in cells}),
                                             columns=["base", "variant"])).itertuples(index=False)]
    scen = list(dict.fromkeys(c["scenario"]))
    return pd.DataFrame([{"scenario": s, **{f"{b} {v}": cells.get((s, b, v), "-")
                                            for b, v in cols}} for s in scen])


def model_differences(kd: dict) -> pd.DataFrame:
    """The captured runs that differ from the model, with the first difference."""
    c = kd["captures"]
    bad = c[~c["agree"] | ~c["verified"]]
    return _order(bad)[["scenario", "base", "variant", "run", "walks_measured",
                        "walks_differing", "first_difference"]].rename(columns={
                            "walks_measured": "walks", "walks_differing": "walks differing",
                            "first_difference": "first difference"})


# --- the selftests ------------------------------------------------------------------------

def selftest_table(sd: dict) -> pd.DataFrame:
    """Test x kernel: "pass/fail/skip"; "-" where the base has no such test."""
    s = _order(sd["summary"])
    kernels_ = list(dict.fromkeys(zip(s["base"], s["variant"])))
    cell = {(b, v, t): f"{p}/{f}/{k}" for b, v, t, p, f, k in
            zip(s["base"], s["variant"], s["test"], s["pass"], s["fail"], s["skip"])}
    return pd.DataFrame([{"test": t, **{f"{b} {v}": cell.get((b, v, t), "-")
                                        for b, v in kernels_}}
                         for t in sorted(set(s["test"]))])


def failures_table(sd: dict) -> pd.DataFrame:
    """Per base and test: which cases fail, and on which variants (all of them, or a list)."""
    s = sd["summary"]
    rows = []
    for (b, t), g in s.groupby(["base", "test"]):
        by_case: dict[str, list[str]] = {}
        for v, failed in zip(g["variant"], g["failed"]):
            for case in filter(None, failed.split("; ")):
                by_case.setdefault(case, []).append(v)
        for case, vs in by_case.items():
            rows.append({"base": b, "test": t, "failing case": case,
                         "variants": "all " + str(len(g)) if len(vs) == len(g)
                         else ", ".join(sorted(vs, key=variants().index))})
    return pd.DataFrame(rows, columns=["base", "test", "failing case", "variants"])


def rounds_table(sd: dict, label: str) -> pd.DataFrame:
    """One ksm_tests invocation: rounds failed of rounds, per base and variant."""
    r = sd["rounds"]
    r = _order(r[r["invocation"] == label]) if len(r) else r
    return pd.DataFrame({"base": r["base"], "variant": r["variant"],
                         "rounds failed": [f"{f}/{n}" for f, n in zip(r["failed"], r["rounds"])]})


def flaky(sd: dict) -> list[str]:
    """ksm_tests invocations that failed in at least one round on some kernel."""
    r = sd["rounds"]
    if r.empty:
        return []
    return sorted(set(r[r["failed"] > 0]["invocation"]))


def same_builds(kd: dict, sd: dict) -> list[str]:
    """Kernels whose selftests ran on another build than the matrix measured (cache keys)."""
    m = kd["matrix"]
    keys = dict(zip(zip(m["base"], m["variant"]), m["key"]))
    return [f"{b}/{v}" for (b, v), prov in sorted(sd["kernels"].items())
            if keys.get((b, v)) != prov.get("key")]


# --- the figure ---------------------------------------------------------------------------

FIGURE_PAIRS = (("baseline-notrace", "baseline", "tracepoint (0001) alone"),
                ("merged-notrace", "merged", "tracepoint on the merged form"),
                ("baseline-notrace", "merged-notrace", "merged form alone (no tracepoint)"),
                ("baseline", "patched", "v4 as posted"),
                ("baseline", "naive", "v1–v3"),
                ("baseline", "merged", "merged form"))


def figure(kd: dict):
    """Text-size deltas (bytes), one panel per object (each its own linear scale), one bar
    per comparison of :data:`FIGURE_PAIRS` and base."""
    import matplotlib.pyplot as plt
    bases = sorted(set(kd["matrix"]["base"]), key=lambda b: tuple(map(int, b.split("."))))
    colors = dict(zip(bases, ("#dd8452", "#4c72b0", "#55a868")))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
    h = 0.8 / len(bases)
    for ax, obj in zip(axes, TEXT_COLUMN):
        lo, top = 0, 0
        for j, b in enumerate(bases):
            vals = [delta(kd, b, o, n, obj) for o, n, _ in FIGURE_PAIRS]
            y = [i + (j - (len(bases) - 1) / 2) * h for i in range(len(FIGURE_PAIRS))]
            ax.barh(y, vals, height=h, color=colors[b], label=f"Linux {b}")
            for yy, v in zip(y, vals):
                ax.text(v, yy, f" {v:+d}", va="center", fontsize=7)
            lo, top = min(lo, *vals), max(top, *vals)
        ax.set_xlim(lo * 1.3, top * 1.25 or 1)      # linear: each panel has its own scale
        ax.set_title(obj + (" (text symbols, nm)" if obj == "vmlinux" else " (text, size)"),
                     fontsize=10)
        ax.set_xlabel("bytes of text added")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(FIGURE_PAIRS)))
    axes[0].set_yticklabels([f"{w}\n{o} → {n}" for o, n, w in FIGURE_PAIRS], fontsize=8)
    axes[0].invert_yaxis()
    axes[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


# --- the answer ---------------------------------------------------------------------------

def _join(items) -> str:
    items = list(items)
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + items[-1] if items \
        else "none"


def answer_text(kd: dict, sd: dict) -> str:
    """The chapter's answer, every number from the data."""
    m, c = kd["matrix"], kd["captures"]
    bases = sorted(set(m["base"]), key=lambda b: tuple(map(int, b.split("."))))
    sizes = sorted(set(m["struct_size"]))
    lines = []
    st = struct_table(kd)
    partners = {b: _join(sorted(set(st[(st["base"] == b) & (st["index field"] != "-")]
                                    ["shares the union with"]))) for b in bases}
    lines.append(
        f"- **struct ksm_rmap_item** is {_join(f'{s} bytes' for s in sizes)} "
        f"({_join(str(x) for x in sorted(set(m['struct_cachelines'])))} cacheline) on all "
        f"{len(m)} kernels ({len(bases)} bases × {m['variant'].nunique()} variants): "
        + ("unchanged by every version of the series. " if len(sizes) == 1 else "it changes. ")
        + "The stored index shares its union with "
        + "; ".join(f"{partners[b]} on {b}" for b in bases) + ".")
    diffs = base_differences(kd)
    lines.append("- **6.1 against 6.12**: the same variants and patch files"
                 + (", except " + "; ".join(diffs) if diffs else "") + ". "
                 + _captures_sentence(c, bases))
    tp = {b: {o: delta(kd, b, *TRACEPOINT, o) for o in TEXT_COLUMN} for b in bases}
    opt = {b: {o: delta(kd, b, *OPTIMISATION, o) for o in TEXT_COLUMN} for b in bases}
    lines.append(
        "- **The tracepoint costs** (baseline-notrace → baseline) "
        + "; ".join(f"{b}: mm/rmap.o {tp[b]['mm/rmap.o']:+d}, mm/ksm.o {tp[b]['mm/ksm.o']:+d}, "
                    f"vmlinux {tp[b]['vmlinux']:+d} bytes of text" for b in bases)
        + ". **The optimisation alone** (merged form, baseline-notrace → merged-notrace): "
        + "; ".join(f"{b}: mm/rmap.o {opt[b]['mm/rmap.o']:+d}, mm/ksm.o "
                    f"{opt[b]['mm/ksm.o']:+d}, vmlinux {opt[b]['vmlinux']:+d}" for b in bases)
        + ". Against the baseline: v4 as posted "
        + ", ".join(f"{delta(kd, b, 'baseline', 'patched', 'mm/ksm.o'):+d} ({b})" for b in bases)
        + ", v1–v3 "
        + ", ".join(f"{delta(kd, b, 'baseline', 'naive', 'mm/ksm.o'):+d} ({b})" for b in bases)
        + " bytes of mm/ksm.o.")
    lines.append("- **The kernel's selftests**: " + _selftest_sentence(sd))
    return "\n".join(lines)


def _captures_sentence(c: pd.DataFrame, bases) -> str:
    parts = []
    for b in bases:
        g = c[c["base"] == b]
        ok = g[g["agree"] & g["verified"]]
        bad = g[~(g["agree"] & g["verified"])]
        s = (f"on {b}, {len(ok)} of {len(g)} captured runs ({g['scenario'].nunique()} "
             f"scenarios) agree with the model walk by walk")
        if len(bad):
            s += " (" + "; ".join(
                f"`{sc}` differs on {_join(sorted(gg['variant'], key=variants().index))}"
                for sc, gg in bad.groupby("scenario")) + ")"
        parts.append(s)
    return "Against the model (which follows 6.12): " + "; ".join(parts) + "."


def _selftest_sentence(sd: dict) -> str:
    s = sd["summary"]
    n = s.groupby(["base", "variant"]).ngroups
    found = sd["findings"]
    text = (f"{len(set(s['test']))} tests on {n} kernels; "
            + ("**no variant fails a case that its base's baseline passes every time**. "
               if not found else "**findings**: " + "; ".join(found) + ". "))
    fails = failures_table(sd)
    same = fails[fails["variants"].str.startswith("all")]
    if len(same):
        text += ("Failing on every variant of a base alike (the configuration or the test): "
                 + "; ".join(f"{b} `{t}` {case}" for b, t, case in
                             zip(same["base"], same["test"], same["failing case"])) + ". ")
    for label in flaky(sd):
        r = rounds_table(sd, label)
        hit = r[~r["rounds failed"].str.startswith("0/")]
        text += (f"`{label}` fails in some rounds: "
                 + ", ".join(f"{b} {v} {f}" for b, v, f in
                             zip(hit["base"], hit["variant"], hit["rounds failed"]))
                 + f" rounds, none on {_join(sorted(set(r['base']) - set(hit['base'])))}"
                 + ("; plain Debian (baseline-notrace) fails it too, so it is not the series'"
                    if (hit["variant"] == "baseline-notrace").any() else "") + ". ")
    return text


def model_text(kd: dict) -> str:
    """Where the captured runs differ from the model: bases, scenarios, variants, and whether
    each first difference is a KSM page where the model has an anonymous one."""
    c = kd["captures"]
    bad = c[~(c["agree"] & c["verified"])]
    if bad.empty:
        return f"Every one of the {len(c)} captured runs agrees with the model walk by walk."
    ksm = bad["first_difference"].str.contains("page_type measured ksm model anon")
    scen = "; ".join(f"`{s}` on {_join(sorted(set(g['variant']), key=variants().index))} "
                     f"({_join(sorted(set(g['base'])))})" for s, g in bad.groupby("scenario"))
    clean = sorted(set(c["scenario"]) - set(bad["scenario"]))
    return (f"{len(bad)} of {len(c)} captured runs differ from the model, all on "
            f"{_join(sorted(set(bad['base'])))}, in {bad['scenario'].nunique()} scenarios: "
            f"{scen}. "
            + (f"In every one the first differing walk is of a KSM page where the model has "
               f"an anonymous page (so the kernel walks more mappings than the model). "
               if ksm.all() else
               f"In {int(ksm.sum())} of them the first differing walk is of a KSM page where "
               f"the model has an anonymous page. ")
            + f"The other {len(clean)} scenarios agree on every kernel they were captured on.")
