"""Paths: reclaim, memory failure and the merged selftest's shape on every kernel variant
(issue 10, item 2).

Reads the run folders of ``data/paths/<path>/<base>/<variant>/run-<k>/`` (written by
``rmapwalk paths capture``, :mod:`rmapwalk.measure.paths`) only through
:func:`rmapwalk.dataset.runs` (manifests, checksums, places, and the plan
``data/paths/dataset.yaml``), so a changed or missing file is refused, naming it.  A table
that does not have the columns or values it should raises :class:`PathsDataError`, naming
the file.

What a mapping is (``mappings.csv``: one row per process and page of the region, the raw
``/proc/self/pagemap`` entries before and after the trigger, Documentation/admin-guide/mm/
pagemap.rst): a *mapping of the KSM page* is a present entry (bit 63) on the KSM page's pfn
before the trigger (the mover's hole left out).  It was *reached* by the trigger when after it

- reclaim, hwpoison: it is no longer present but a swap-type entry (bit 62): try_to_unmap()
  replaced it by a swap entry (reclaim) or a hwpoison entry (memory failure);
- selftest (migration): it is present on the migrated pfn, and the page did move.

A mapping not reached is *missed*.  Walks: the ``rmap:rmap_walk`` events of KSM folios inside
the trigger window (``events.csv.gz``); ``collect_procs_ksm``: the ``ksm:collect_procs_ksm``
events (``collect_procs.csv``).  The model is not compared here: it has no swap, no memory
failure and no collect_procs_ksm().
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from rmapwalk import dataset, kernels as kernel_list, paths
from rmapwalk.analysis import tables

ROOT = paths.DATA / "paths"
PATHS = ("reclaim", "hwpoison", "hwpoison-split", "selftest")
KERNELS = kernel_list.path_variants()   # kernel-config/kernels.yaml: the variants with fragments
PRESENT, SWAP, PFN_MASK = 1 << 63, 1 << 62, (1 << 55) - 1
MAPPING_COLUMNS = ("proc", "pid", "ppid", "page", "moved", "hole", "pre", "post", "sigbus",
                   "sigbus_code")
RESULT_COLUMNS = ("path", "op", "procs", "pages", "mover", "ksm_pfn", "result", "tries",
                  "node_before", "target", "node_after", "pfn_before", "pfn_after", "hog_mb",
                  "pswpout", "pgmigrate_success", "pageout_rc", "pageout_present", "errno",
                  "merge_seconds", "full_scans", "pages_shared", "pages_sharing")
COLLECT_COLUMNS = ("seq", "task_pid", "pfn", "rmap_items", "tasks", "iterations", "skip_mm",
                   "matched", "procs")
EVENT_COLUMNS = ("step", "op", "page_type", "reason", "iterations", "skip_addr", "skip_mm",
                 "rmap_one", "duration_ns", "pfn")
WHAT = {"reclaim": "swapped out under memory pressure: shrink_folio_list, try_to_unmap",
        "hwpoison": "MADV_HWPOISON: memory_failure, collect_procs_ksm, try_to_unmap",
        "hwpoison-split": "the same on the v4 benchmark's shape, 32 pages split by mprotect",
        "selftest": "the merged selftest's shape: move_pages, retried up to 100 times"}


class PathsDataError(ValueError):
    """A run's table without the columns or values it should have; the message names the file."""


def _table(path: Path, columns: tuple[str, ...], ints: tuple[str, ...] = ()) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, keep_default_na=False, dtype=str)
    except (OSError, ValueError, EOFError) as e:
        raise PathsDataError(f"{path}: cannot read the table: {e}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise PathsDataError(f"{path}: missing column(s) {', '.join(missing)}")
    for c in ints:
        try:
            df[c] = df[c].map(lambda x: int(x, 0))
        except ValueError:
            bad = next(x for x in df[c] if not _is_int(x))
            raise PathsDataError(f"{path}: column {c}: {bad!r} is not an integer") from None
    return df


def _is_int(x: str) -> bool:
    try:
        int(x, 0)
        return True
    except ValueError:
        return False


def load(root: str | Path = ROOT, *, include_unverified: bool = False) -> dict[str, pd.DataFrame]:
    """The verified runs as tables, each with path, base, kernel, run: ``runs`` (one row per
    run: the result and the merge), ``mappings`` (classified, see the module docstring),
    ``walks`` (KSM rmap_walk events inside the trigger), ``collect`` (collect_procs_ksm events)."""
    root = Path(root)
    found = dataset.runs(root, scenarios=None, include_unverified=include_unverified)
    if not found:
        raise dataset.DataIntegrityError([f"{root}: no runs of the paths"])
    runs, maps, walks, collect = [], [], [], []
    for r in found:
        key = {"path": r.scenario, "base": r.base, "kernel": r.variant, "run": r.run}
        res = _table(r.folder / "result.csv", RESULT_COLUMNS, RESULT_COLUMNS[2:18])
        if len(res) != 1 or res.loc[0, "path"] != r.scenario.split("-")[0]:
            raise PathsDataError(f"{r.folder / 'result.csv'}: expected one row of path "
                                 f"{r.scenario.split('-')[0]!r}, found {len(res)} row(s)")
        row = res.iloc[0].to_dict()
        m = _table(r.folder / "mappings.csv", MAPPING_COLUMNS, MAPPING_COLUMNS)
        if len(m) != row["procs"] * row["pages"]:
            raise PathsDataError(f"{r.folder / 'mappings.csv'}: {len(m)} rows, expected "
                                 f"{row['procs']} processes x {row['pages']} pages")
        maps.append(classify(m, row).assign(**key))
        ev = _table(r.folder / "events.csv.gz", EVENT_COLUMNS,
                    ("iterations", "skip_addr", "skip_mm", "rmap_one", "duration_ns", "pfn"))
        # the KSM walks of the path's own trigger (reclaim's MADV_PAGEOUT window is not one)
        walks.append(ev[(ev["op"] == row["op"]) & (ev["page_type"] == "ksm")].assign(**key))
        c = _table(r.folder / "collect_procs.csv", COLLECT_COLUMNS, COLLECT_COLUMNS)
        collect.append(c.assign(**key))
        man = dataset.read_manifest(r.folder)
        runs.append({**key, **{k: v for k, v in row.items() if k != "path"},
                     "folder": str(r.folder), "verified": r.verified,
                     "host_seconds": (man.get("timing") or {}).get("host_wall_seconds"),
                     "memory_failure_console": " | ".join(man.get("memory_failure_console")
                                                          or [])})
    return {"runs": pd.DataFrame(runs), "mappings": pd.concat(maps, ignore_index=True),
            "walks": pd.concat(walks, ignore_index=True),
            "collect": pd.concat(collect, ignore_index=True)}


def classify(m: pd.DataFrame, result: dict) -> pd.DataFrame:
    """Add ``of_ksm`` (a mapping of the KSM page before the trigger), ``state_after``
    (present, swap or none), ``pfn_after`` and ``reached`` to a run's mappings."""
    m = m.copy()
    pre = [int(x) for x in m["pre"]]           # 64-bit entries: Python ints, not int64
    post = [int(x) for x in m["post"]]
    m["of_ksm"] = [bool(e & PRESENT) and (e & PFN_MASK) == result["ksm_pfn"] and not h
                   for e, h in zip(pre, m["hole"])]
    m["state_after"] = ["present" if e & PRESENT else "swap" if e & SWAP else "none"
                        for e in post]
    m["pfn_after"] = [e & PFN_MASK if e & PRESENT else 0 for e in post]
    if result["path"] == "selftest":
        moved = result["result"] == 0 and result["pfn_after"] != result["pfn_before"]
        m["reached"] = m["of_ksm"] & (m["state_after"] == "present") & moved \
            & (m["pfn_after"] == result["pfn_after"])
    else:
        m["reached"] = m["of_ksm"] & (m["state_after"] == "swap")
    m["pre"], m["post"] = [hex(e) for e in pre], [hex(e) for e in post]
    return m


def _order(df: pd.DataFrame) -> pd.DataFrame:
    p = {k: i for i, k in enumerate(PATHS)}
    k = {n: i for i, n in enumerate(KERNELS)}
    return df.sort_values(["path", "kernel"], key=lambda s: s.map(p if s.name == "path" else k)
                          ).reset_index(drop=True)


def _same(values) -> str:
    """One value if every run agrees, else the values run by run."""
    vals = [str(v) for v in values]
    return vals[0] if len(set(vals)) == 1 else " / ".join(vals)


def per_run(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per run: mappings of the KSM page, reached, missed (the moved one among them?),
    the trigger's result, KSM walks and their iterations, collect_procs_ksm's."""
    rows = []
    for _, r in data["runs"].iterrows():
        sel = {k: r[k] for k in ("path", "base", "kernel", "run")}

        def part(df):
            return df[(df["path"] == sel["path"]) & (df["kernel"] == sel["kernel"])
                      & (df["base"] == sel["base"]) & (df["run"] == sel["run"])]
        m, w, c = part(data["mappings"]), part(data["walks"]), part(data["collect"])
        of = m[m["of_ksm"]]
        unmap = w[w["reason"].isin(("try_to_unmap_one", "migrate_unmap"))]
        rows.append({**sel, "mappings": len(of), "reached": int(of["reached"].sum()),
                     "missed": int((~of["reached"]).sum()),
                     "moved_missed": int((~of["reached"] & (of["moved"] == 1)).sum()),
                     "op": r["op"], "result": r["result"], "errno": r["errno"],
                     "tries": r["tries"],
                     "hog_mb": r["hog_mb"], "pageout_present": r["pageout_present"],
                     "walks": len(w),
                     "unmap_walks": len(unmap),
                     "unmap_rmap_one_max": int(unmap["rmap_one"].max()) if len(unmap) else 0,
                     "iterations": int(w["iterations"].sum()),
                     "iter_per_walk": float(w["iterations"].mean()) if len(w) else np.nan,
                     "iter_max": int(w["iterations"].max()) if len(w) else 0,
                     "collect_calls": len(c),
                     "collect_iterations": int(c["iterations"].sum()),
                     "collect_procs": int(c["procs"].sum()),
                     "sigbus_procs": int((m.groupby("proc")["sigbus"].max() > 0).sum())})
    return _order(pd.DataFrame(rows))


def matrix(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Path x kernel: runs, mappings reached / of the KSM page, missed, the moved mapping
    missed, the trigger's result, walks, iterations per walk, and collect_procs_ksm's
    iterations per call; a cell lists the runs' values when they differ."""
    pr = per_run(data)
    rows = []
    for (p, k), g in pr.groupby(["path", "kernel"], sort=False):
        rows.append({"path": p, "kernel": k.removesuffix("-paths"), "runs": len(g),
                     "reached / mappings": _same(f"{a}/{b}" for a, b in
                                                 zip(g["reached"], g["mappings"])),
                     "missed": _same(g["missed"]),
                     "moved mapping missed": _same(g["moved_missed"]),
                     "trigger": _same(_trigger(r) for _, r in g.iterrows()),
                     "KSM walks": _same(g["walks"]),
                     "iterations / walk": _same(f"{x:.1f}" if x == x else "-"
                                                for x in g["iter_per_walk"]),
                     "max iterations": _same(g["iter_max"]),
                     "collect_procs_ksm iterations": _same(
                         g["collect_iterations"] if p.startswith("hwpoison") else ["-"] * len(g)),
                     "processes collected": _same(
                         g["collect_procs"] if p.startswith("hwpoison") else ["-"] * len(g))})
    return pd.DataFrame(rows)


def _trigger(r) -> str:
    if r["op"] == "migrate":
        return (f"moved after {r['tries']} tr{'y' if r['tries'] == 1 else 'ies'}"
                if r["result"] == 0 else
                f"not moved in {r['tries']} tries (move_pages "
                f"{r['errno'] if r['errno'] != '0' else r['result']})")
    if r["op"] == "hwpoison":
        return "madvise 0" if r["result"] == 0 else f"madvise {r['errno']}"
    return "all swapped" if r["result"] == 0 else f"{r['result']} still mapped"


def memory_failure_messages(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """What mm/memory-failure.c printed on the console (kept in each run's manifest), per
    memory-failure path and kernel: each distinct message with the pfn and the pid taken out,
    and in how many runs it appeared."""
    rows = {}
    runs = data["runs"][data["runs"]["op"] == "hwpoison"]
    for _, r in runs.iterrows():
        seen = set()
        for msg in str(r["memory_failure_console"]).split(" | "):
            if not msg:
                continue
            msg = re.sub(r"0x[0-9a-f]+: ", "", msg)
            msg = re.sub(r"(\w+):\d+ ", r"\1:PID ", msg)
            seen.add(msg)
        for msg in seen:
            key = (r["path"], r["kernel"].removesuffix("-paths"), msg)
            rows[key] = rows.get(key, 0) + 1
    df = pd.DataFrame([{"path": p, "kernel": k, "message": m, "runs": n}
                       for (p, k, m), n in rows.items()])
    if df.empty:
        return df
    order = {k.removesuffix("-paths"): i for i, k in enumerate(KERNELS)}
    return df.sort_values(["path", "kernel", "message"],
                          key=lambda s: s.map(order) if s.name == "kernel" else s
                          ).reset_index(drop=True)


def findings(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per path and kernel: does the kernel lose a mapping (any run missed one)?"""
    pr = per_run(data)
    g = pr.groupby(["path", "kernel"], sort=False)
    return pd.DataFrame({"loses_mappings": g["missed"].max() > 0,
                         "moved_lost": g["moved_missed"].max() > 0,
                         "runs": g.size()}).reset_index()


def _kernels(names) -> str:
    names = [n.removesuffix("-paths") for n in names]
    return ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1] if names \
        else "none"


def _values(series) -> str:
    vals = sorted({round(float(v), 1) for v in series})
    return " / ".join(f"{v:g}" for v in vals)


def answer_text(data: dict[str, pd.DataFrame]) -> str:
    """The chapter's answer, one item per path, every number from the data."""
    pr = per_run(data)
    lines = []
    for p in PATHS:
        g = pr[pr["path"] == p]
        if g.empty:
            lines.append(f"- **{p}**: no runs.")
            continue
        kernels = [k for k in KERNELS if (g["kernel"] == k).any()]
        lose = [k for k in kernels if (g[g["kernel"] == k]["missed"] > 0).any()]
        keep = [k for k in kernels if k not in lose]
        parts = []
        for k in lose:
            gk = g[g["kernel"] == k]
            n_lost = int((gk["missed"] > 0).sum())
            moved = int((gk["moved_missed"] > 0).sum())
            if p == "selftest":
                parts.append(f"on {_kernels([k])} the page did not move in "
                             f"{_values(gk['tries'])} tries in {n_lost} of {len(gk)} runs, so "
                             f"none of its {_values(gk['mappings'])} mappings reached the "
                             "migrated pfn")
            else:
                parts.append(f"{_kernels([k])} misses {_values(gk['missed'])} of "
                             f"{_values(gk['mappings'])} mappings in {n_lost} of {len(gk)} "
                             f"runs, the moved one in {moved}")
        if keep:
            gk = g[g["kernel"].isin(keep)]
            parts.append(f"{_kernels(keep)} reach every mapping "
                         f"({_values(gk['mappings'])}) in every run")
        iters = "; ".join(f"{k.removesuffix('-paths')} {_values(g[g['kernel'] == k]['iter_per_walk'])}"
                          for k in kernels)
        line = (f"- **{p}** ({WHAT[p]}): " + "; ".join(parts) +
                f". Loop iterations per KSM walk: {iters}.")
        if p == "reclaim" and (g["pageout_present"] >= 0).all():
            line += (f" `madvise(MADV_PAGEOUT)` before the pressure left "
                     f"{_values(g['pageout_present'])} of {_values(g['mappings'])} mappings "
                     f"present on every kernel (it skips a shared folio).")
        if p.startswith("hwpoison"):
            ci = "; ".join(f"{k.removesuffix('-paths')} "
                           f"{_values(g[g['kernel'] == k]['collect_iterations'])}"
                           for k in kernels)
            line += f" `collect_procs_ksm()` iterations per call: {ci}."
        lines.append(line)
    return "\n".join(lines)


def figure(data: dict[str, pd.DataFrame]):
    """Three panels, paths along x, one dot per run coloured by kernel: mappings of the KSM
    page missed; loop iterations per KSM walk inside the trigger (log); and, for the memory
    failure paths, collect_procs_ksm()'s loop iterations per call (log)."""
    import matplotlib.pyplot as plt
    pr = per_run(data)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    import seaborn as sns
    colors = dict(zip(KERNELS, sns.color_palette("deep", len(KERNELS))))
    present = [p for p in PATHS if (pr["path"] == p).any()]
    for _, r in pr.iterrows():
        x = present.index(r["path"]) + (KERNELS.index(r["kernel"]) - (len(KERNELS) - 1) / 2) * 0.18 \
            + (r["run"] - 2) * 0.03
        c = colors.get(r["kernel"], "k")
        axes[0].scatter(x, r["missed"], color=c, s=18)
        if r["iter_per_walk"] == r["iter_per_walk"]:
            axes[1].scatter(x, r["iter_per_walk"], color=c, s=18)
        if r["collect_calls"]:
            axes[2].scatter(x, r["collect_iterations"] / r["collect_calls"], color=c, s=18)
    titles = ("mappings of the KSM page missed", "iterations per KSM rmap walk",
              "collect_procs_ksm() iterations per call")
    for ax, title in zip(axes, titles):
        ax.set_xticks(range(len(present)))
        ax.set_xticklabels(present, fontsize=8)
        ax.set_xlim(-0.6, len(present) - 0.4)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colors[k],
                          label=k.removesuffix("-paths")) for k in KERNELS
               if (pr["kernel"] == k).any()]
    axes[0].legend(handles=handles, fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def markdown(df: pd.DataFrame) -> str:
    """A pipe table of ``df`` as it is (:func:`rmapwalk.analysis.tables.markdown`)."""
    return tables.markdown(df)
