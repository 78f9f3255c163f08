"""Real programs: the KSM rmap walks of javac, python3 -m compileall and nginx (issue 11).

Reads the run folders of ``data/programs/<workload>/<base>/<variant>/run-<k>/`` (written by
``rmapwalk programs capture``) only through :func:`rmapwalk.dataset.runs` with the workload
files ``data/workloads/*.yaml`` as the committed "scenarios", so a run whose files, manifest
or workload text changed is refused, naming the file.

What a run's tables say (see :mod:`rmapwalk.measure.programs`): ``events.csv.gz`` has every
``rmap:rmap_walk`` event with the trace line's task and the trigger it fell in (``op``
migrate or idle, target pid and comm); a *KSM walk* here is an event with ``page_type`` ksm
inside a trigger.  Its counters are summed over the KSM page's rmap_items and both passes of
``rmap_walk_ksm`` (own mm, then forks): the tracepoint has no per-rmap_item or per-anon_vma
counter, so the size of one anon_vma is only *estimated*, as
``iterations / (2 * rmap_one)`` on walks that run both passes to the end (``migrate_remap``
and ``idle``; ``migrate_unmap`` stops once the folio is unmapped) of the baseline kernel,
whose query covers the whole tree: the anon_vma_chains visited per mapping found.  Exact for
a page whose mappings are all in the rmap_items' own mm; with forked children (nginx
workers, Python's pool), ``rmap_one`` also counts the children's mappings and the estimate is
low.

The skip ratio is the project's (``rmapwalk.analysis.simulation.summarize``): address skips /
iterations.  Durations are TCG time (emulated): compare kernels, not with the thread's ms.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from rmapwalk import dataset, kernels as kernel_list, paths
from rmapwalk.analysis import claim, tables

PROGRAMS = paths.DATA / "programs"
WORKLOADS = paths.DATA / "workloads"
KERNELS = kernel_list.primary()   # kernels.yaml: one variant per model strategy (baseline, patched, naive)
FULL_WALKS = ("migrate_remap", "idle")      # walks that run both passes over every rmap_item


def load(root: str | Path = PROGRAMS, workloads: str | Path = WORKLOADS, *,
         include_unverified: bool = False) -> dict[str, pd.DataFrame]:
    """The verified runs as tables: ``runs`` (one row per run, with the manifest's summary),
    ``events`` (every rmap_walk event), ``triggers``, ``processes`` (the frozen tree with its
    VMA survey and ksm_stat).  Every table carries workload, base, kernel, run."""
    found = dataset.runs(Path(root), scenarios=Path(workloads), plan=None,
                         include_unverified=include_unverified)
    runs, events, triggers, procs = [], [], [], []
    for r in found:
        key = {"workload": r.scenario, "base": r.base, "kernel": r.variant, "run": r.run}
        man = dataset.read_manifest(r.folder)
        s = man.get("summary") or {}
        wl = man.get("workload") or {}
        runs.append({**key, "folder": str(r.folder), "verified": r.verified,
                     "packages": ", ".join(f"{p} {v}" for p, v in
                                           sorted((wl.get("debian_packages") or {}).items())),
                     "command": " ".join(wl.get("command") or []),
                     "pgmigrate_success": s.get("pgmigrate_success"),
                     "pgmigrate_fail": s.get("pgmigrate_fail"),
                     "not_migrated": s.get("migrate_not_migrated"),
                     "host_seconds": (man.get("timing") or {}).get("host_wall_seconds"),
                     "ksm_pages_shared": (s.get("ksm_before") or {}).get("pages_shared"),
                     "ksm_pages_sharing": (s.get("ksm_before") or {}).get("pages_sharing")})
        e = pd.read_csv(r.folder / "events.csv.gz", keep_default_na=False)
        events.append(e.assign(**key))
        t = pd.read_csv(r.folder / "triggers.csv", keep_default_na=False)
        triggers.append(t.assign(**key))
        for p in s.get("processes") or []:
            ks = p.get("ksm_stat") or {}
            procs.append({**key, "pid": p["pid"], "ppid": p["ppid"], "comm": p["comm"],
                          "vmas": p["vmas"], "anon_vmas": p["anon_vmas"],
                          "prot_runs": p["prot_runs"], "vmas_in_prot_runs": p["vmas_in_prot_runs"],
                          "longest_prot_run": p["longest_prot_run"],
                          "ksm_rmap_items": ks.get("ksm_rmap_items"),
                          "ksm_merging_pages": ks.get("ksm_merging_pages"),
                          "ksm_zero_pages": ks.get("ksm_zero_pages"),
                          "pages_node0_before": (p.get("numa_before") or {}).get("N0", 0),
                          "pages_node1_after": (p.get("numa_after") or {}).get("N1", 0)})
    if not runs:
        raise dataset.DataIntegrityError([f"{root}: no runs of real programs"])
    ev = pd.concat(events, ignore_index=True)
    for c in ("iterations", "skip_addr", "skip_mm", "rmap_one", "duration_ns"):
        ev[c] = pd.to_numeric(ev[c])
    return {"runs": pd.DataFrame(runs), "events": ev,
            "triggers": pd.concat(triggers, ignore_index=True), "processes": pd.DataFrame(procs)}


def ksm_walks(events: pd.DataFrame) -> pd.DataFrame:
    """The KSM walks the triggers made (events of page_type ksm inside a trigger)."""
    inside = events["op"].astype(str) != ""
    return events[inside & (events["page_type"] == "ksm")]


def _order(df: pd.DataFrame) -> pd.DataFrame:
    kern = {k: i for i, k in enumerate(KERNELS)}
    return df.sort_values(["workload", "kernel"], key=lambda s: s.map(kern) if s.name == "kernel"
                          else s).reset_index(drop=True)


def table(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per workload and kernel: runs, KSM walks per run, median and max iterations per KSM
    walk, skip ratio, mm skips, TCG ms of KSM walks per run, pages migrated (vmstat
    pgmigrate_success) and not migrated (migrate_pages' return) per run, and all walks."""
    ksm = ksm_walks(data["events"])
    inside = data["events"][data["events"]["op"].astype(str) != ""]
    rows = []
    for (w, k), runs in data["runs"].groupby(["workload", "kernel"]):
        kw = ksm[(ksm["workload"] == w) & (ksm["kernel"] == k)]
        n = len(runs)
        it = int(kw["iterations"].sum())
        alls = inside[(inside["workload"] == w) & (inside["kernel"] == k)]
        rows.append({
            "workload": w, "kernel": k, "runs": n,
            "ksm_walks": len(kw) / n,
            "iter_median": float(kw["iterations"].median()) if len(kw) else np.nan,
            "iter_p99": float(kw["iterations"].quantile(0.99)) if len(kw) else np.nan,
            "iter_max": int(kw["iterations"].max()) if len(kw) else 0,
            "iter_mean": it / len(kw) if len(kw) else np.nan,
            "skip_ratio": int(kw["skip_addr"].sum()) / it if it else np.nan,
            "mm_skip_ratio": int(kw["skip_mm"].sum()) / it if it else np.nan,
            "ksm_ms": kw["duration_ns"].sum() / 1e6 / n,
            "ksm_us_per_walk": kw["duration_ns"].mean() / 1e3 if len(kw) else np.nan,
            "iter_per_mapping": it / kw["rmap_one"].sum() if kw["rmap_one"].sum() else np.nan,
            "us_per_mapping": (kw["duration_ns"].sum() / 1e3 / kw["rmap_one"].sum()
                               if kw["rmap_one"].sum() else np.nan),
            "walks_no_mapping": int((kw["rmap_one"] == 0).sum()) / n,
            "all_walks": len(alls) / n,
            "all_ms": alls["duration_ns"].sum() / 1e6 / n,
            "migrated": pd.to_numeric(runs["pgmigrate_success"]).mean(),
            "not_migrated": pd.to_numeric(runs["not_migrated"]).mean(),
            "migrate_fail": pd.to_numeric(runs["pgmigrate_fail"]).mean(),
        })
    return _order(pd.DataFrame(rows))


def per_run(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per run: KSM walks, iterations, skip ratio, KSM walk ms, migrated/missed."""
    ksm = ksm_walks(data["events"])
    g = ksm.groupby(["workload", "kernel", "run"]).agg(
        ksm_walks=("iterations", "size"), iterations=("iterations", "sum"),
        skip_addr=("skip_addr", "sum"), iter_max=("iterations", "max"),
        ksm_ns=("duration_ns", "sum")).reset_index()
    out = data["runs"][["workload", "kernel", "run", "pgmigrate_success", "not_migrated",
                        "host_seconds", "ksm_pages_sharing"]].merge(
        g, on=["workload", "kernel", "run"], how="left").fillna(
        {"ksm_walks": 0, "iterations": 0, "skip_addr": 0, "iter_max": 0, "ksm_ns": 0})
    out["skip_ratio"] = out["skip_addr"] / out["iterations"].where(out["iterations"] > 0)
    out["ksm_ms"] = out["ksm_ns"] / 1e6
    return _order(out.drop(columns=["ksm_ns"]))


def savings(tab: pd.DataFrame, before: str = "baseline", after: str = "patched") -> pd.DataFrame:
    """Per workload: KSM walk iterations per walk and TCG ms per run on ``before`` and
    ``after``, the fraction of KSM walk time the series removes, and the KSM walk time as a
    share of all walk time the triggers caused on ``before`` (where the series cannot help)."""
    rows = []
    for w, t in tab.groupby("workload"):
        b, a = t[t["kernel"] == before], t[t["kernel"] == after]
        if b.empty or a.empty:
            continue
        b, a = b.iloc[0], a.iloc[0]
        rows.append({"workload": w, "ksm_walks": b["ksm_walks"],
                     f"iter_mean_{before}": b["iter_mean"], f"iter_mean_{after}": a["iter_mean"],
                     f"ksm_ms_{before}": b["ksm_ms"], f"ksm_ms_{after}": a["ksm_ms"],
                     "ksm_time_removed": 1 - a["ksm_ms"] / b["ksm_ms"] if b["ksm_ms"] else np.nan,
                     f"us_per_walk_{before}": b["ksm_us_per_walk"],
                     f"us_per_walk_{after}": a["ksm_us_per_walk"],
                     "per_walk_time_removed": 1 - a["ksm_us_per_walk"] / b["ksm_us_per_walk"],
                     f"iter_per_mapping_{before}": b["iter_per_mapping"],
                     f"iter_per_mapping_{after}": a["iter_per_mapping"],
                     f"us_per_mapping_{before}": b["us_per_mapping"],
                     f"us_per_mapping_{after}": a["us_per_mapping"],
                     "per_mapping_time_removed": 1 - a["us_per_mapping"] / b["us_per_mapping"],
                     "ksm_share_of_walk_time": b["ksm_ms"] / b["all_ms"] if b["all_ms"] else np.nan,
                     "walk_time_removed": 1 - a["all_ms"] / b["all_ms"] if b["all_ms"] else np.nan})
    cols = ["workload", "ksm_walks", f"iter_mean_{before}", f"iter_mean_{after}",
            f"ksm_ms_{before}", f"ksm_ms_{after}", "ksm_time_removed", f"us_per_walk_{before}",
            f"us_per_walk_{after}", "per_walk_time_removed", f"iter_per_mapping_{before}",
            f"iter_per_mapping_{after}", f"us_per_mapping_{before}", f"us_per_mapping_{after}",
            "per_mapping_time_removed", "ksm_share_of_walk_time",
            "walk_time_removed"]
    return pd.DataFrame(rows, columns=cols)


def anon_vma_estimate(data: dict[str, pd.DataFrame], kernel: str = "baseline") -> pd.DataFrame:
    """Per KSM walk that ran both passes to the end on ``kernel`` (whole-tree query): the
    anon_vma_chains visited per mapping found, ``iterations / (2 * rmap_one)`` (see the
    module docstring), with the walk's skip ratio."""
    k = ksm_walks(data["events"])
    k = k[(k["kernel"] == kernel) & k["reason"].isin(FULL_WALKS) & (k["rmap_one"] > 0)].copy()
    k["chains_per_mapping"] = k["iterations"] / (2 * k["rmap_one"])
    k["walk_skip_ratio"] = k["skip_addr"] / k["iterations"]
    return k[["workload", "run", "reason", "target_comm", "iterations", "rmap_one",
              "chains_per_mapping", "walk_skip_ratio"]]


def map_points(data: dict[str, pd.DataFrame], kernel: str = "baseline") -> pd.DataFrame:
    """Where each workload sits on the simulated map: its KSM walks' estimated anon_vma
    (chains per mapping) pooled (all iterations / (2 x all mappings): the *n* whose
    1 - 1/*n* is the pooled skip ratio when no fork maps the pages), median and largest, and
    its skip ratio on ``kernel``."""
    est = anon_vma_estimate(data, kernel)
    rows = []
    for w, e in est.groupby("workload"):
        rows.append({"workload": w, "walks": len(e),
                     "chains_pooled": float(e["iterations"].sum() / (2 * e["rmap_one"].sum())),
                     "chains_median": float(e["chains_per_mapping"].median()),
                     "chains_p90": float(e["chains_per_mapping"].quantile(0.9)),
                     "chains_max": float(e["chains_per_mapping"].max()),
                     "skip_ratio": float((e["walk_skip_ratio"] * e["iterations"]).sum()
                                         / e["iterations"].sum())})
    return pd.DataFrame(rows)


def vma_survey(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per workload and process name (first run of the baseline kernel, else any): processes,
    VMAs, anonymous VMAs, runs of adjacent anonymous VMAs differing only in protection (one
    mapping split by mprotect, which share one anon_vma), the longest run, and ksm_stat's
    rmap_items and merging pages."""
    p = data["processes"]
    if p.empty:
        return p
    first = p.sort_values(["kernel", "run"], key=lambda s: s.map({"baseline": 0}).fillna(1)
                          if s.name == "kernel" else s)
    first = first.groupby("workload", as_index=False).head(10**9)
    keep = first.groupby("workload")[["kernel", "run"]].first().reset_index()
    sel = first.merge(keep, on=["workload", "kernel", "run"])
    return sel.groupby(["workload", "comm"]).agg(
        processes=("pid", "size"), vmas=("vmas", "max"), anon_vmas=("anon_vmas", "max"),
        prot_runs=("prot_runs", "max"), longest_prot_run=("longest_prot_run", "max"),
        ksm_rmap_items=("ksm_rmap_items", "sum"),
        ksm_merging_pages=("ksm_merging_pages", "sum")).reset_index()


def map_figure(grid: pd.DataFrame | None, points: pd.DataFrame,
               walks: pd.DataFrame | None = None):
    """Skip ratio against anon_vma_chains per anon_vma: the simulated map's cells (the
    seed-benchmark shape, ``rmapwalk.analysis.simulation.sweep``), the real programs' KSM
    walks (``walks``: :func:`anon_vma_estimate`, one dot each) and each program pooled
    (large marker)."""
    import matplotlib.pyplot as plt  # noqa: PLC0415
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    if grid is not None and len(grid):
        for j, (c, g) in enumerate(grid.groupby("children")):
            g = g.sort_values("chains")
            ax.plot(g["chains"], g["skip_ratio"], marker=".", lw=1, alpha=0.6, color="0.5",
                    ls=("-", "--", ":", "-.")[j % 4], label=f"model, {c} forked children")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (_, r) in enumerate(points.iterrows()):
        col = colors[i % len(colors)]
        if walks is not None:
            w = walks[walks["workload"] == r["workload"]]
            ax.scatter(w["chains_per_mapping"], w["walk_skip_ratio"], s=6, alpha=0.25,
                       color=col, lw=0)
        ax.plot([r["chains_pooled"]], [r["skip_ratio"]], "o", ms=10, color=col, mec="k",
                label=f"{r['workload']} (measured, pooled)")
    ax.set_xscale("log")
    ax.set_xlabel("anon_vma_chains per anon_vma (real programs: estimated per KSM walk)")
    ax.set_ylabel("skip ratio (address skips / iterations)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def iterations_figure(data: dict[str, pd.DataFrame]):
    """Distribution of iterations per KSM walk, per workload and kernel (log scale)."""
    import matplotlib.pyplot as plt  # noqa: PLC0415
    k = ksm_walks(data["events"])
    wls = sorted(k["workload"].unique())
    fig, axes = plt.subplots(1, max(len(wls), 1), figsize=(4 * max(len(wls), 1), 3.4),
                             squeeze=False)
    for ax, w in zip(axes[0], wls):
        for kern in KERNELS:
            x = np.sort(k[(k["workload"] == w) & (k["kernel"] == kern)]["iterations"].to_numpy())
            if len(x):
                ax.step(np.maximum(x, 0.8), np.arange(1, len(x) + 1) / len(x), where="post",
                        label=kern)
        ax.set_xscale("log")
        ax.set_title(w, fontsize=10)
        ax.set_xlabel("iterations per KSM walk")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fraction of walks")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def markdown(df: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    """A markdown table; ``formats`` maps a column to a format spec."""
    return tables.markdown(df, formats)


def manifest_json(folder: str | Path) -> str:
    """The manifest of one run, pretty-printed (for the page's provenance cell)."""
    return json.dumps(dataset.read_manifest(Path(folder)), indent=1)[:4000]


# --- the chapter's tables and sentences ------------------------------------------------------
CLOSING_FORMATS = {"ksm_walks": ",.0f", "iter_median": ",.0f", "iter_max": ",.0f",
                   "skip_ratio": ".4f", "ksm_ms": ",.2f", "migrated": ",.0f",
                   "not_migrated": ",.0f", "migrate_fail": ",.1f", "missed": ",.1f"}
NAMES = {"ksm_walks": "KSM walks / run", "iter_median": "median iterations",
         "iter_max": "max iterations", "skip_ratio": "skip ratio", "ksm_ms": "KSM walk ms / run",
         "migrated": "pages migrated / run", "migrate_fail": "pages failed / run",
         "not_migrated": "migrate_pages() return / run",
         "missed": "KSM pages with a mapping not reached / run",
         "chains_pooled": "anon_vma chains per mapping (pooled)",
         "chains_max": "largest walk's chains per mapping",
         "iter_median_before": "median iterations, baseline",
         "iter_median_after": "median iterations, patched",
         "iter_mean_before": "mean iterations, baseline", "iter_mean_after": "mean iterations, patched",
         "iter_max_before": "max iterations, baseline", "iter_max_after": "max iterations, patched",
         "per_mapping_before": "iterations per mapping, baseline",
         "per_mapping_after": "iterations per mapping, patched",
         "work_removed": "work removed", "ksm_share": "KSM share of walk time"}


def closing_table(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The issue's closing table: workload x kernel, runs, KSM walks per run, median and max
    iterations per KSM walk, skip ratio, TCG ms of KSM walks per run, pages migrated
    (pgmigrate_success) and failed (pgmigrate_fail) per run, KSM pages per run whose walks
    reached fewer mappings than processes map them (``missed``, :func:`mapped_by`), and
    migrate_pages()' return (see :func:`matter_text`: it counts extra mappings of KSM pages,
    not pages left)."""
    t = table(data)
    m = mapped_by(data)
    short = (m[m["rmap_one_max"] < m["mappers"]].groupby(["workload", "kernel"]).size()
             .rename("short").reset_index())
    t = t.merge(short, on=["workload", "kernel"], how="left").fillna({"short": 0})
    t["missed"] = t["short"] / t["runs"]
    return t[["workload", "kernel", "runs", "ksm_walks", "iter_median", "iter_max",
              "skip_ratio", "ksm_ms", "migrated", "migrate_fail", "missed", "not_migrated"]]


def show(df: pd.DataFrame, formats: dict[str, str] | None = None):
    """A table formatted for the page (numbers with their formats, column names spelled out)."""
    formats = {**CLOSING_FORMATS, "iter_mean": ",.1f", "iter_p99": ",.0f",
               "mm_skip_ratio": ".4f", "all_ms": ",.1f", "all_walks": ",.0f",
               **{c: ",.2f" for c in df.columns if c.startswith(("ksm_ms_", "iter_mean_"))},
               "ksm_time_removed": ".1%", "ksm_share_of_walk_time": ".1%",
               "per_walk_time_removed": ".1%", "ksm_us_per_walk": ",.1f",
               "per_mapping_time_removed": ".1%", "iter_per_mapping": ",.1f",
               "us_per_mapping": ",.2f", "walks_no_mapping": ",.0f",
               **{c: ",.2f" for c in df.columns if c.startswith(("us_per_mapping_",
                                                                 "iter_per_mapping_"))},
               **{c: ",.1f" for c in df.columns if c.startswith("us_per_walk_")},
               "walk_time_removed": ".1%", **(formats or {})}
    fm = {NAMES.get(c, c): f for c, f in formats.items() if c in df.columns}
    return (df.rename(columns=NAMES).style.format({k: ("{:" + v + "}") for k, v in fm.items()},
                                                  na_rep="–").hide(axis="index"))


def workloads_table(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per workload: its Debian packages and versions and the exact command (manifests)."""
    r = data["runs"].groupby("workload").agg(packages=("packages", "first"),
                                             command=("command", "first"),
                                             runs=("run", "size")).reset_index()
    return r


def _row(tab: pd.DataFrame, w: str, k: str):
    t = tab[(tab["workload"] == w) & (tab["kernel"] == k)]
    return None if t.empty else t.iloc[0]


def walks_text(data: dict[str, pd.DataFrame]) -> str:
    """Sentences on the closing table, per workload, from the numbers."""
    tab = table(data)
    out = []
    for w in sorted(tab["workload"].unique()):
        b, p, n = (_row(tab, w, claim.kernel_of(s)) for s in (claim.BASELINE, claim.PGOFF, claim.NAIVE))
        if b is None:
            continue
        s = (f"**{w}**: {b['ksm_walks']:,.0f} KSM walks per run on baseline; the median walk "
             f"ran {b['iter_median']:,.0f} loop iterations and the longest {b['iter_max']:,.0f}, "
             f"with {b['skip_ratio']:.1%} of all iterations skipped by the address check")
        if p is not None:
            s += (f"; patched: median {p['iter_median']:,.0f}, longest {p['iter_max']:,.0f}, "
                  f"skip ratio {p['skip_ratio']:.1%}")
        if n is not None:
            s += f"; naive: median {n['iter_median']:,.0f}, longest {n['iter_max']:,.0f}"
            if n["walks_no_mapping"] > 0:
                s += (f", **{n['walks_no_mapping']:,.0f} KSM walks per run found no mapping** "
                      f"and {n['migrate_fail']:,.0f} pages per run failed to migrate "
                      f"(patched: {p['walks_no_mapping'] if p is not None else 0:,.0f} and "
                      f"{p['migrate_fail'] if p is not None else 0:,.0f})")
        out.append(s + ".")
    return "\n\n".join(out)


def map_text(points: pd.DataFrame, grid: pd.DataFrame | None = None, level: float = 0.999) -> str:
    """Where the programs sit: their estimated anon_vma sizes and skip ratios, against the
    size from which the model's walks reach the cover letter's ``level``."""
    parts = [f"{r['workload']} {r['chains_pooled']:,.1f} anon_vma_chains per mapping pooled "
             f"(median walk {r['chains_median']:,.1f}, largest {r['chains_max']:,.1f}) and a "
             f"skip ratio of {r['skip_ratio']:.1%}" for _, r in points.iterrows()]
    text = "On the baseline kernel, the KSM walks of the real programs show " + \
        "; ".join(parts) + "."
    if grid is not None and len(grid):
        from rmapwalk.analysis import simulation as sim  # noqa: PLC0415
        start = sim.threshold_vmas(grid, level)
        if start is not None:
            text += (f" The model's walks reach the cover letter's {level:.1%} from "
                     f"{start:,} VMAs per anon_vma on; a walk over *n* chains of which one "
                     "maps the address skips about 1 − 1/*n*, so at these sizes most of the "
                     "loop is still skipped, but the loop is short.")
    return text


def savings_text(sav: pd.DataFrame) -> str:
    out = []
    for _, r in sav.iterrows():
        out.append(f"**{r['workload']}**: the KSM walks took {r['ksm_ms_baseline']:,.2f} ms of "
                   f"TCG time per run on baseline and {r['ksm_ms_patched']:,.2f} ms on patched "
                   f"({-r['ksm_time_removed']:+.0%}; which pages merged, and how widely "
                   "shared, differs from run to run). Per mapping found — the unit that does "
                   "not depend on how widely the walked pages are shared — the loop ran "
                   f"{r['iter_per_mapping_baseline']:,.1f} → {r['iter_per_mapping_patched']:,.1f} "
                   f"iterations and took {r['us_per_mapping_baseline']:,.2f} → "
                   f"{r['us_per_mapping_patched']:,.2f} µs ({-r['per_mapping_time_removed']:+.0%}). "
                   "KSM walks were "
                   f"{r['ksm_share_of_walk_time']:.1%} of the time of all the walks the "
                   f"triggers caused on baseline (file and anonymous pages included); all "
                   f"their walk time differed by {-r['walk_time_removed']:+.0%} between the "
                   "kernels' runs, a difference made by what each run merged and by the "
                   "host's load, not by the series.")
    return "\n\n".join(out) + ("\n\nRuns differ in how far the program got before it was "
                               "frozen (TCG, a shared host), so per-run numbers vary; "
                               "the per-run table below shows the spread. Microsecond "
                               "walks under TCG on a loaded two-core host are noisy: the "
                               "same walk of the same page took 0.4 ms once and 2.7 ms "
                               "another time in one run. The iterations are exact.")


def matter_text(data: dict[str, pd.DataFrame], tab: pd.DataFrame,
                production_iterations: float | None = None) -> str:
    """Where the series does not matter, from the numbers: small anon_vmas, few KSM walks
    next to many other walks, and what migrate_pages()' return counts.
    ``production_iterations``: the thread's longest production loop (data/thread.yaml)."""
    sav = savings(tab)
    small = sav[sav["ksm_share_of_walk_time"] < 0.2]["workload"].tolist()
    b = tab[tab["kernel"] == "baseline"]
    parts = []
    if small:
        parts.append("For " + ", ".join(small) + " the KSM walks are a small part of what a "
                     "whole-process migration or idle scan costs: the file and anonymous pages "
                     "around them are walked too, by `rmap_walk_file()` and `rmap_walk_anon()`, "
                     "which the series does not touch and which already query one index.")
    if len(b):
        parts.append(f"The longest KSM walk of any run on baseline ran {int(b['iter_max'].max()):,} "
                     "iterations" + (f", against {production_iterations:,.0f} in one loop "
                                     "of the thread's production report" if production_iterations
                                     else "") + ": these programs' anon_vmas hold a "
                     "few VMAs, so even the baseline's whole-tree query is short. The saving "
                     "per walk grows with the anon_vma; here it stays small in absolute terms.")
    runs = data["runs"]
    nm = pd.to_numeric(runs["not_migrated"]).sum()
    if nm:
        parts.append(f"`migrate_pages()` returned {nm:,.0f} 'not migrated' over all runs while "
                     f"`pgmigrate_fail` counted {pd.to_numeric(runs['pgmigrate_fail']).sum():,.0f}: "
                     "its count is mostly the further mappings of KSM folios already isolated "
                     "by the same call (`migrate_folio_add()` fails when `folio_isolate_lru()` "
                     "does), not pages left on the old node.")
    return "\n\n".join(parts)


def _file_vmas(folder: Path) -> list[tuple[int, int, str]]:
    """(first pgoff, last pgoff, path) of the private file mappings in a run's info/maps-*."""
    out = []
    for m in sorted((folder / "info").glob("maps-*.txt")):
        for line in m.read_text().splitlines():
            parts = line.split(None, 5)
            if len(parts) < 6 or not parts[5].startswith("/") or parts[1][3] != "p":
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            first = int(parts[2], 16) >> 12
            out.append((first, first + ((end - start) >> 12) - 1,
                        parts[5].strip().removeprefix("/newroot")))
    return out


def missed_pages(data: dict[str, pd.DataFrame], kernel: str = "naive") -> pd.DataFrame:
    """The KSM pages whose walks found no mapping on ``kernel`` (per run, distinct pfn), and
    where they are: a page whose index (the linear page index of the page that
    became the KSM page) falls in the file-offset range of a private file mapping of the
    process (a library's or the executable's data segment, copied on write) is in a VMA
    whose vm_pgoff is a file offset, which ``address >> PAGE_SHIFT`` never equals."""
    k = ksm_walks(data["events"])
    k = k[(k["kernel"] == kernel) & (k["rmap_one"] == 0)]
    rows = []
    for (w, r), g in k.groupby(["workload", "run"]):
        folder = Path(data["runs"].query("workload == @w and kernel == @kernel and run == @r")
                      ["folder"].iloc[0])
        vmas = _file_vmas(folder)
        for pfn, pg in g.groupby("pfn"):
            idx = int(pd.to_numeric(pg["index"]).iloc[0])
            where = next((path for a, b, path in vmas if a <= idx <= b), None)
            rows.append({"workload": w, "run": r, "pfn": pfn, "index": idx,
                         "mapping": where or "anonymous (or moved)", "walks": len(pg)})
    df = pd.DataFrame(rows, columns=["workload", "run", "pfn", "index", "mapping", "walks"])
    return df


def missed_summary(data: dict[str, pd.DataFrame], kernel: str = "naive") -> pd.DataFrame:
    """Per workload and mapping: KSM pages per run whose walks on ``kernel`` found no
    mapping (see :func:`missed_pages`)."""
    m = missed_pages(data, kernel)
    if m.empty:
        return pd.DataFrame(columns=["workload", "mapping", "pages_per_run"])
    runs = data["runs"][data["runs"]["kernel"] == kernel].groupby("workload").size()
    out = m.groupby(["workload", "mapping"]).size().rename("pages").reset_index()
    out["pages_per_run"] = out["pages"] / out["workload"].map(runs)
    return out.drop(columns=["pages"]).sort_values(["workload", "pages_per_run"],
                                                   ascending=[True, False]).reset_index(drop=True)


def missed_text(data: dict[str, pd.DataFrame], tab: pd.DataFrame) -> str:
    """What the naive kernel missed, per workload, against patched and baseline."""
    out = []
    naive = missed_summary(data, "naive")
    base = missed_summary(data, "baseline")
    for w in sorted(tab["workload"].unique()):
        n, p, b = (_row(tab, w, k) for k in ("naive", "patched", "baseline"))
        if n is None:
            continue
        pages = naive[naive["workload"] == w]["pages_per_run"].sum()
        files = naive[(naive["workload"] == w) & naive["mapping"].str.startswith("/")]
        if not pages:
            out.append(f"**{w}**: the naive kernel found every mapping of every walked KSM page.")
            continue
        s = (f"**{w}**: on the naive kernel {pages:,.0f} KSM pages per run had walks that found "
             f"no mapping ({files['pages_per_run'].sum():,.0f} of them in "
             + ", ".join(f"`{m}`" for m in files["mapping"]) + "), so "
             f"{n['migrate_fail']:,.0f} page migrations per run failed (`pgmigrate_fail`; each "
             "process's `migrate_pages()` tries a page it maps again) and the idle scan could "
             "not clear their accessed bits")
        s += (f"; patched: {p['migrate_fail']:,.0f} failed" if p is not None else "")
        bpages = base[base["workload"] == w]["pages_per_run"].sum()
        if b is not None:
            s += (f", baseline: {b['migrate_fail']:,.0f}" +
                  (f" ({bpages:,.1f} pages per run with walks that found no mapping there too, "
                   "with no loop iteration at all: not the query)" if bpages else ""))
        out.append(s + ".")
    return "\n\n".join(out)


def stuck_pages(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """KSM pages the migration could not move, on every kernel: a page whose
    ``migrate_unmap`` walk ran more than once in one ``migrate_pages()`` call was retried
    (``migrate_pages()`` retries a folio still mapped after ``try_to_migrate()``, up to 10
    times).  Per run and page: its index and the mapping the index falls in, how many
    mappings the walks found (``rmap_one``, the most any walk of it found) and the
    iterations of one walk."""
    k = ksm_walks(data["events"])
    k = k[k["reason"] == "migrate_unmap"]
    rows = []
    for (w, kern, r), g in k.groupby(["workload", "kernel", "run"]):
        tries = g.groupby(["step", "pfn"]).size()
        stuck = sorted({pfn for (_, pfn), n in tries.items() if n > 1})
        if not stuck:
            continue
        folder = Path(data["runs"].query("workload == @w and kernel == @kern and run == @r")
                      ["folder"].iloc[0])
        vmas = _file_vmas(folder)
        for pfn in stuck:
            pg = g[g["pfn"] == pfn]
            idx = int(pd.to_numeric(pg["index"]).iloc[0])
            rows.append({"workload": w, "kernel": kern, "run": r, "pfn": pfn, "index": idx,
                         "mapping": next((p for a, b, p in vmas if a <= idx <= b),
                                         "anonymous (or moved)"),
                         "mappings_found": int(pg["rmap_one"].max()),
                         "iterations": int(pg["iterations"].max()),
                         "unmap_walks": len(pg)})
    return pd.DataFrame(rows, columns=["workload", "kernel", "run", "pfn", "index", "mapping",
                                       "mappings_found", "iterations", "unmap_walks"])


def stuck_summary(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per workload, kernel and run with stuck KSM pages: how many, where, and how many
    mappings their walks found (see :func:`stuck_pages`); runs without any are left out."""
    s = stuck_pages(data)
    if s.empty:
        return pd.DataFrame(columns=["workload", "kernel", "run", "mapping", "pages",
                                     "mappings_found"])
    out = s.groupby(["workload", "kernel", "run", "mapping"]).agg(
        pages=("pfn", "size"), mappings_found=("mappings_found", "max")).reset_index()
    return _order(out)


def stuck_text(stuck: pd.DataFrame, data: dict[str, pd.DataFrame]) -> str:
    """Sentences on :func:`stuck_summary`, per kernel, from the numbers."""
    if stuck.empty:
        return "No KSM page stayed behind on any kernel."
    runs = data["runs"].groupby(["workload", "kernel"]).size()
    out = []
    for kern, g in stuck.groupby("kernel", sort=False):
        parts = []
        for w, gw in g.groupby("workload"):
            maps = ", ".join(f"`{m}`" for m in sorted(gw["mapping"].unique()))
            parts.append(f"{w} {int(gw['pages'].sum())} page(s) in {gw['run'].nunique()} of "
                         f"{int(runs.get((w, kern), 0))} runs ({maps}), whose walks found at "
                         f"most {int(gw['mappings_found'].max())} mapping(s)")
        out.append(f"**{kern}**: " + "; ".join(parts) + ".")
    naive = stuck[stuck["kernel"] == "naive"]
    if len(naive) and naive["mapping"].str.startswith("/").all():
        n_runs = len(data["runs"][(data["runs"]["kernel"] == "naive") &
                                  data["runs"]["workload"].isin(naive["workload"].unique())])
        out.append(f"On the naive kernel it happened in {naive.groupby(['workload', 'run']).ngroups}"
                   f" of those workloads' {n_runs} runs (a run without any had merged few pages when "
                   "it was frozen), and every such page is a "
                   "copied-on-write page of an executable's data segment (a private file "
                   "mapping) that the parent and its forked children map: `address >> "
                   "PAGE_SHIFT` is not the file offset the tree is keyed by.")
    zero = stuck[(stuck["kernel"] != "naive") & (stuck["mappings_found"] == 0)]
    if len(zero):
        out.append(f"On the other kernels, {int(zero['pages'].sum())} page(s) in "
                   f"{len(zero)} run(s) were stuck with walks that found no mapping and ran no "
                   "loop iteration at all, on the baseline kernel too, whose query covers the "
                   "whole tree: their stable node listed no rmap_item whose anon_vma held a "
                   "VMA at that moment. That is not the query's doing and is not explained "
                   "here.")
    partial = stuck[(stuck["kernel"] != "naive") & (stuck["mappings_found"] > 0)]
    for _, r in partial.iterrows():
        out.append(f"Once ({r['workload']}, {r['kernel']} run {r['run']}) {int(r['pages'])} "
                   f"page(s) in `{r['mapping']}` were stuck with walks that found "
                   f"only {int(r['mappings_found'])} rmap_one calls, fewer than processes map "
                   "them: see *A mapping no walk reached* below.")
    return "\n\n".join(out)


# --- mappings a walk did not reach -----------------------------------------------------------
# Which processes map a KSM page is known without the walk: migrate_pages(2) of a pid queues
# only pages its page tables map (mm/mempolicy.c queue_folios_pte_range()), and the idle scan
# of a pid visits only its present pages (pagemap).  So the targets of the trigger steps that
# walked a pfn map it, and a walk whose rmap_one calls are fewer than they did not reach them
# all.  rmap_one counts calls, not mappings found (a VMA that passes the checks but does not
# map the page still calls it), so fewer calls than mapping processes is a lower bound.
SIGNATURE = ("iterations", "skip_addr", "skip_mm", "rmap_one")


def mapped_by(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per run and KSM page (pfn) walked by a trigger: the processes that map it (targets of
    the steps that walked it), how many walks, the most rmap_one calls any walk made, the
    counters of its idle walks (the most common; they change no mapping; else of any walk)
    and whether every walk of one kind (reason) counted the same."""
    keys = ["workload", "kernel", "run", "pfn"]
    k = ksm_walks(data["events"]).copy()
    k["target_pid"] = pd.to_numeric(k["target_pid"]).astype(int)
    k["index"] = pd.to_numeric(k["index"])
    g = k.groupby(keys)
    out = g.agg(index=("index", "first"), mappers=("target_pid", "nunique"),
                walks=("iterations", "size"), rmap_one_max=("rmap_one", "max"))
    out["pids"] = g["target_pid"].agg(lambda s: tuple(sorted(set(s))))
    sig = (k.assign(idle=k["op"] == "idle").groupby([*keys, "idle", *SIGNATURE]).size()
           .rename("n").reset_index().sort_values(["idle", "n"], ascending=False)
           .drop_duplicates(keys).set_index(keys)[list(SIGNATURE)])
    out = out.join(sig)
    same = k.groupby([*keys, "reason"])[list(SIGNATURE)].nunique().max(axis=1)
    out["same_counters"] = same.groupby(level=keys).max() == 1
    out = out.reset_index()
    return out[["workload", "kernel", "run", "pfn", "index", "pids", "mappers", "walks",
                "rmap_one_max", *SIGNATURE, "same_counters"]]


def lost_mappings(data: dict[str, pd.DataFrame], *, exclude: tuple[str, ...] = ("naive",)
                  ) -> pd.DataFrame:
    """KSM pages whose every walk made fewer rmap_one calls than processes map the page
    (:func:`mapped_by`), on every kernel but ``exclude`` (the naive query's misses are
    :func:`missed_pages`), with the mapping their index falls in (``info/maps-*.txt``)."""
    m = mapped_by(data)
    m = m[(m["rmap_one_max"] < m["mappers"]) & ~m["kernel"].isin(exclude)].copy()
    where = []
    for _, r in m.iterrows():
        folder = Path(data["runs"].query("workload == @r.workload and kernel == @r.kernel "
                                         "and run == @r.run")["folder"].iloc[0])
        where.append(next((p for a, b, p in _file_vmas(folder) if a <= r["index"] <= b),
                          "anonymous (or moved)"))
    m["mapping"] = where
    return _order(m.reset_index(drop=True))


def found_in_full(data: dict[str, pd.DataFrame], workload: str, kernel: str, run: int,
                  mappers: int, index_range: tuple[int, int] | None = None) -> tuple | None:
    """The most common counters (:data:`SIGNATURE`, :func:`mapped_by`) of the KSM pages of
    one run that ``mappers`` processes map and whose walks reached at least as many mappings
    (and whose index lies in ``index_range``: one mapping), and how many such pages: what a
    complete walk of such a page counts on that kernel."""
    m = mapped_by(data)
    m = m[(m["workload"] == workload) & (m["kernel"] == kernel) & (m["run"] == run)
          & (m["mappers"] == mappers) & (m["rmap_one_max"] >= mappers)]
    if index_range is not None:
        m = m[m["index"].between(*index_range)]
    if m.empty:
        return None
    counts = m[list(SIGNATURE)].value_counts()
    return (*(int(x) for x in counts.index[0]), int(counts.iloc[0]))


def _numa_after(folder: Path, pid: int, index: int) -> str | None:
    """The node counts (N0=.. N1=..) after the triggers of the VMA of ``pid`` whose file
    range holds ``index`` (``info/numa_maps-after-<pid>.txt`` beside ``maps-<pid>.txt``)."""
    maps, numa = folder / "info" / f"maps-{pid}.txt", folder / "info" / f"numa_maps-after-{pid}.txt"
    if not maps.is_file() or not numa.is_file():
        return None
    for line in maps.read_text().splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6 or not parts[5].startswith("/"):
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        first = int(parts[2], 16) >> 12
        if first <= index < first + ((end - start) >> 12):
            for n in numa.read_text().splitlines():
                if n.startswith(f"{start:08x} ") or n.startswith(f"{start:x} "):
                    return " ".join(t for t in n.split() if t[:1] == "N" and "=" in t)
    return None


def lost_text(data: dict[str, pd.DataFrame]) -> str:
    """What the walks that did not reach every mapping (:func:`lost_mappings`) were, from
    the numbers: which run, pages, processes, counters, against a complete walk of the same
    kind of page, and what the counters allow to conclude."""
    lost = lost_mappings(data)
    lost = lost[lost["rmap_one_max"] > 0]       # walks with no call at all: stuck_text()
    if lost.empty:
        return ("Apart from walks that made no loop iteration at all (above), every walk of a "
                "KSM page on the baseline, patched and merged kernels made at least as many "
                "rmap_one calls as processes map the page.")
    procs = data["processes"]
    out = []
    for (w, kern, r), g in lost.groupby(["workload", "kernel", "run"]):
        runs = data["runs"]
        folder = Path(runs.query("workload == @w and kernel == @kern and run == @r")
                      ["folder"].iloc[0])
        n = int(g["mappers"].max())
        pids = sorted({p for ps in g["pids"] for p in ps})
        tree = procs[(procs["workload"] == w) & (procs["kernel"] == kern) & (procs["run"] == r)]
        roots = [int(p) for p, pp in zip(tree["pid"], tree["ppid"]) if pp not in set(tree["pid"])]
        sig = g[list(SIGNATURE)].drop_duplicates()
        one = sig.iloc[0] if len(sig) == 1 else None
        idx = sorted(g["index"].tolist())
        maps = ", ".join(f"`{m}`" for m in sorted(g["mapping"].unique()))
        s = (f"**{w}, {kern} run {r}**: {len(g)} KSM page(s) (page index "
             + ", ".join(str(i) for i in idx) + f", in {maps}) that all {n} processes of the "
             f"tree map (pids {', '.join(map(str, pids))}: the triggers on each of them reached "
             f"these pages) had {int(g['walks'].sum())} walks")
        if one is not None and g["same_counters"].all():
            s += (f", every one counting the same: {one['iterations']} iterations, "
                  f"{one['skip_addr']} address skips, {one['skip_mm']} mm skips, "
                  f"{one['rmap_one']} rmap_one calls")
        s += "."
        span = next(((a, b) for a, b, p in _file_vmas(folder) if a <= idx[0] <= b), None)
        full = found_in_full(data, w, kern, r, n, span)
        base = [found_in_full(data, w, "baseline", rr, n, span)
                for rr in sorted(runs[(runs["workload"] == w) &
                                      (runs["kernel"] == "baseline")]["run"])]
        base = next((b for b in base if b is not None), None)
        if full is not None:
            s += (f" In the same run, {full[4]} other KSM pages of that mapping that {n} "
                  f"processes map, whose walks reached all {n}, counted {full[0]}, "
                  f"{full[1]}, {full[2]}, {full[3]}")
            s += (f" (baseline: {base[0]}, {base[1]}, {base[2]}, {base[3]})." if base
                  else ".")
        others = mapped_by(data)
        others = others[(others["workload"] == w) & others["index"].isin(idx)
                        & ~((others["kernel"] == kern) & (others["run"] == r))]
        s += (" No other run of the workload had a KSM page at these indexes."
              if others.empty else "")
        if (one is not None and full is not None and len(roots) == 1
                and full[0] == 2 * (n + (n - 1)) and one["iterations"] == 2 * (n - 1)
                and one["skip_mm"] == n - 1 and one["rmap_one"] == n - 1):
            s += (f"\n\n*What the counters say.* `rmap_walk_ksm()` runs its loop once per "
                  f"rmap_item of the stable node, in two passes. A forked child's rmap_item "
                  f"points to the child's own anon_vma, which holds only the child's VMA: one "
                  f"iteration per pass (an rmap_one call in the first, an mm skip in the "
                  f"second). The parent's rmap_item points to the parent's anon_vma, into which "
                  f"`anon_vma_clone()` linked the children's VMAs at fork: {n} iterations per "
                  f"pass. A complete walk is 2 × ({n} + {n - 1}) = {full[0]}, as measured. "
                  f"{one['iterations']} = 2 × {n - 1}: the children's {n - 1} rmap_items each did "
                  f"their part and the parent's contributed no iteration at all, so the mapping "
                  f"not reached is the parent's (pid {roots[0]}). Either the parent's rmap_item "
                  f"was not on the stable node's list, or its query `[index, index]` matched no "
                  f"VMA of its anon_vma.")
        frozen = (folder / "info" / "merge.txt")
        if frozen.is_file():
            kv = dict(t.split("=", 1) for t in frozen.read_text().split() if "=" in t)
            if {"full_scans_at_freeze", "full_scans"} <= set(kv):
                s += (f"\n\n*What it is not.* Not the program: it was stopped (SIGSTOP) before "
                      f"ksmd's last {int(kv['full_scans']) - int(kv['full_scans_at_freeze'])} "
                      f"full scans and the triggers, and the idle walks, which change no "
                      f"mapping, counted the same as the migration walks. Not a migration that "
                      f"failed for another reason: the unmap walk ran "
                      f"{lost_unmap_walks(data, g)} times per page and "
                      f"`migrate_pages()` call (its retries of a folio still mapped after "
                      f"`try_to_migrate()`)")
                numa = [_numa_after(folder, p, idx[0]) for p in pids]
                if all(numa):
                    s += (", and after the triggers the VMA holding these pages reads "
                          + "; ".join(f"{x} (pid {p})" for p, x in zip(pids, numa))
                          + " in `numa_maps`")
                s += "."
        out.append(s)
    return "\n\n".join(out)


def lost_unmap_walks(data: dict[str, pd.DataFrame], lost: pd.DataFrame) -> int:
    """The most ``migrate_unmap`` walks one ``migrate_pages()`` call (trigger step) made of
    one of the ``lost`` pages."""
    k = ksm_walks(data["events"])
    k = k[(k["reason"] == "migrate_unmap") & k["pfn"].isin(lost["pfn"])
          & k["workload"].isin(lost["workload"]) & k["kernel"].isin(lost["kernel"])
          & k["run"].isin(lost["run"])]
    return int(k.groupby(["run", "step", "pfn"]).size().max()) if len(k) else 0


# --- the claim chapter's answer to "how real-worldish?" --------------------------------------
def realworld_table(data: dict[str, pd.DataFrame], before: str = "baseline",
                    after: str = "patched") -> pd.DataFrame:
    """Per workload: KSM walks per run on ``before``, its anon_vma estimate (chains per
    mapping pooled and the largest walk's, :func:`map_points`), the skip ratio on ``before``,
    iterations per KSM walk (median, mean, max) on both kernels, iterations per mapping found
    on both and the share of that work the series removes, and the KSM walks' share of the
    time of all walks the triggers caused on ``before``."""
    tab = table(data)
    pts = map_points(data, before).set_index("workload")
    sav = savings(tab, before, after).set_index("workload")
    rows = []
    for w in sav.index:
        b, a = _row(tab, w, before), _row(tab, w, after)
        rows.append({"workload": w, "ksm_walks": b["ksm_walks"],
                     "chains_pooled": pts.loc[w, "chains_pooled"] if w in pts.index else np.nan,
                     "chains_max": pts.loc[w, "chains_max"] if w in pts.index else np.nan,
                     "skip_ratio": b["skip_ratio"],
                     "iter_median_before": b["iter_median"], "iter_median_after": a["iter_median"],
                     "iter_mean_before": b["iter_mean"], "iter_mean_after": a["iter_mean"],
                     "iter_max_before": b["iter_max"], "iter_max_after": a["iter_max"],
                     "per_mapping_before": b["iter_per_mapping"],
                     "per_mapping_after": a["iter_per_mapping"],
                     "work_removed": 1 - a["iter_per_mapping"] / b["iter_per_mapping"],
                     "ksm_share": sav.loc[w, "ksm_share_of_walk_time"]})
    return pd.DataFrame(rows)


def realworld_text(data: dict[str, pd.DataFrame], *, production_vmas: float,
                   production_iterations: float, level: float) -> str:
    """The answer, from the numbers: where the real programs' anon_vmas sit against the
    benchmark's and the production report's, how much of their KSM walk work the series
    removes, and how little that is of what their walks cost."""
    rw = realworld_table(data)
    if rw.empty:
        return "No real program has runs on both the baseline and the patched kernel."
    runs = data["runs"]
    per = runs[runs["kernel"].isin(["baseline", "patched"])].groupby(
        ["workload", "kernel"]).size()
    names = ", ".join(rw["workload"])
    lo, hi = rw["chains_pooled"].min(), rw["chains_pooled"].max()
    return (
        f"Measured on {len(rw)} real programs ({names}; {per.min()}–{per.max()} runs per "
        f"kernel), the KSM walks search small anon_vmas: {lo:,.1f} to {hi:,.1f} "
        f"anon_vma_chains per mapping found, pooled over each program's walks, "
        f"{rw['chains_max'].max():,.0f} in the largest single walk — against the production "
        f"report's about {production_vmas:,.0f} VMAs in one anon_vma, which the benchmark "
        f"rebuilds. The longest baseline KSM walk of any run made "
        f"{rw['iter_max_before'].max():,.0f} iterations in all (two passes over every "
        f"rmap_item); the production report's longest single loop made "
        f"{production_iterations:,.0f}. Within these small trees the whole-tree query still "
        f"wastes most of the loop: {rw['skip_ratio'].min():.0%} to {rw['skip_ratio'].max():.0%} "
        f"of the baseline iterations are address skips (the cover letter: {level:.1%}), and "
        f"the v4 query makes none. Per mapping found, the loop ran "
        + "; ".join(f"{r['per_mapping_before']:,.1f} → {r['per_mapping_after']:,.1f} "
                    f"iterations for {r['workload']} ({-r['work_removed']:+.0%})"
                    for _, r in rw.iterrows())
        + f". In absolute terms that is little: the median KSM walk ran "
        + "; ".join(f"{r['iter_median_before']:,.0f} → {r['iter_median_after']:,.0f} "
                    f"({r['workload']})" for _, r in rw.iterrows())
        + " iterations, and KSM walks were "
        + ", ".join(f"{r['ksm_share']:.0%}" for _, r in rw.iterrows())
        + " (same order) of the time of all the rmap walks a whole-process migration and idle "
          "scan of these programs caused on baseline; the rest are anonymous and file walks, "
          "which the series does not change. So the benchmark's shape is not what these "
          "programs build: the series removes most of their KSM walk work, and that work is "
          "small.")


def realworld_points(data: dict[str, pd.DataFrame], kernel: str = "baseline",
                     **opts) -> pd.DataFrame:
    """The real programs as points of the claim chapter's map
    (:func:`rmapwalk.analysis.traces.realworld_figure`): per workload, ``scenario`` (its name,
    marked as a real program), ``chains`` (the pooled anon_vma estimate of
    :func:`map_points`) and the skip ratio of the same walks (the ones that ran both passes
    to the end on ``kernel``) with its bootstrap interval (``opts``: confidence, resamples,
    seed)."""
    from rmapwalk.analysis import traces as T  # noqa: PLC0415
    k = ksm_walks(data["events"])
    k = k[(k["kernel"] == kernel) & k["reason"].isin(FULL_WALKS) & (k["rmap_one"] > 0)]
    pts = map_points(data, kernel).set_index("workload")
    rows = [{"scenario": f"{w} (real program)", "chains": float(pts.loc[w, "chains_pooled"]),
             **T.skip_ratio(g, **opts)} for w, g in k.groupby("workload")]
    return pd.DataFrame(rows, columns=["scenario", "chains", "walks", "skip_addr",
                                       "iterations", "skip_ratio", "low", "high"])


def claim_lost_text(data: dict[str, pd.DataFrame], kernel: str = "patched") -> str:
    """One paragraph for the claim chapter: did ``kernel``'s walks of real programs reach every
    mapping the processes have (:func:`lost_mappings`)."""
    runs = data["runs"]
    n = int((runs["kernel"] == kernel).sum())
    lost = lost_mappings(data)
    part = lost[(lost["kernel"] == kernel) & (lost["rmap_one_max"] > 0)]
    none = lost[lost["rmap_one_max"] == 0]
    text = (f"On the {kernel} (v4) kernel, {n - part.groupby(['workload', 'run']).ngroups} of "
            f"{n} runs of real programs had every walked KSM page reached in every mapping the "
            "processes have (as many rmap_one calls as processes map the page).")
    for (w, r), g in part.groupby(["workload", "run"]):
        text += (f" In {w} run {r}, {len(g)} pages' walks missed one of "
                 f"{int(g['mappers'].max())} mappings, every walk alike; the counters place "
                 "the missing mapping at an rmap_item that contributed no iteration; the "
                 "chapter *Real programs* traces it (*A mapping no walk reached*).")
    if len(none):
        text += (f" Walks that reached no mapping with no loop iteration at all "
                 f"({len(none)} pages) occur on "
                 + ", ".join(sorted(none["kernel"].unique()))
                 + " alike: not the query.")
    return text
