"""Figures of the book, drawn from the tables of :mod:`.simulation` (matplotlib/seaborn).

Each function takes a table (as read from its file) and returns a matplotlib Figure; the
notebooks glue the figure and write its caption.
"""
from __future__ import annotations

import matplotlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .simulation import predict_cost

COLORS = {"baseline": "#c0392b", "naive": "#7f8c8d", "pgoff": "#2471a3"}
LABELS = {"baseline": "baseline [0, ULONG_MAX]", "naive": "naive address >> PAGE_SHIFT",
          "pgoff": "v4 stored vm_pgoff"}
matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100})


def strategy_bars(table: pd.DataFrame, per: float | None = None,
                  unit: str = "per walk") -> plt.Figure:
    """Loop iterations for each strategy, and what became of them (address skips, mm skips,
    rmap_one calls), as grouped bars on a log axis (never stacked: stacked lengths do not add
    on a log scale).  The table's totals are divided by ``per`` (e.g. the number of
    migrations, ``unit="per migration"``), by default by its walks.  A zero is written, not
    drawn."""
    parts = [("iterations", "all iterations", "#34495e"),
             ("skip_addr", "skipped: address check", "#c0392b"),
             ("skip_mm", "skipped: mm check", "#f39c12"),
             ("rmap_one", "rmap_one (useful)", "#27ae60")]
    fig, ax = plt.subplots(figsize=(7, 0.6 + 1.1 * len(table)))
    walks = table["walks"].to_numpy(float) if per is None else np.full(len(table), float(per))
    h = 0.8 / len(parts)
    top = 1.0
    for i, (key, label, color) in enumerate(parts):
        vals = table[key].to_numpy(float) / walks
        y = np.arange(len(table)) + (i - (len(parts) - 1) / 2) * h
        ax.barh(y, np.where(vals > 0, vals, np.nan), height=h, color=color, label=label)
        for yi, v in zip(y, vals):
            ax.text(max(v, 1) * 1.1, yi, f"{v:,.0f}", va="center", fontsize=7)
        top = max(top, float(np.nanmax(vals)) if len(vals) else 1.0)
    ax.set_xscale("log")
    ax.set_xlim(0.8, top * 30)
    ax.set_yticks(np.arange(len(table)), [LABELS.get(s, s) for s in table.index], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel(f"loop iterations {unit} (log scale; a 0 is written, not drawn)")
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def _useful_label(v: float) -> str:
    """1 - skip ratio as a short percentage with two significant digits."""
    if not np.isfinite(v):
        return ""
    return f"{100 * v:.2g}%"


def sweep_heatmaps(table: pd.DataFrame, level: float = 0.999) -> plt.Figure:
    """Two maps over (VMAs per anon_vma, forked children), both on log colour scales: the
    share of baseline iterations *not* skipped by the address check (1 - skip ratio; the
    cells whose skip ratio reaches ``level`` outlined), and baseline / v4 iterations per
    walk."""
    from matplotlib.colors import LogNorm   # noqa: PLC0415
    useful = 1 - table.pivot(index="children", columns="vmas", values="skip_ratio")
    ratio = table.pivot(index="children", columns="vmas", values="ratio")
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 2.4 + 1.1 * len(useful)))
    pos = useful[useful > 0]
    sns.heatmap(useful, ax=axes[0], cmap="rocket", norm=LogNorm(vmin=float(pos.min().min()),
                                                                 vmax=float(pos.max().max())),
                annot=useful.map(_useful_label), fmt="", annot_kws={"fontsize": 9},
                cbar_kws={"label": "1 − skip ratio (log)"})
    for (i, j), v in np.ndenumerate(useful.to_numpy()):
        if 1 - v >= level:
            axes[0].add_patch(plt.Rectangle((j, i), 1, 1, fill=False, lw=2, ec="#2471a3"))
    axes[0].set_title(f"baseline: share of iterations not skipped; outlined: skip ratio ≥ "
                      f"{100 * level:g}%", fontsize=10)
    sns.heatmap(ratio, ax=axes[1], cmap="mako_r", norm=LogNorm(),
                annot=ratio.map(lambda v: f"{v:,.0f}×"), fmt="", annot_kws={"fontsize": 9},
                cbar_kws={"label": "baseline / v4 (log)"})
    axes[1].set_title("iterations per walk: baseline / v4 query", fontsize=10)
    for ax in axes:
        ax.set_xlabel("VMAs per anon_vma (region pages, split by mprotect)")
        ax.set_xticklabels([f"{int(t.get_text()):,}" for t in ax.get_xticklabels()], rotation=0,
                           fontsize=8)
        ax.set_ylabel("forked children")
    fig.tight_layout()
    return fig


def cost_plot(table: pd.DataFrame, fits: dict) -> plt.Figure:
    """Interval-tree nodes touched per query against anon_vma_chains n, log-log, with the
    fitted ``a*n + b`` (baseline) and ``a*log2(n) + b*k + c`` (pgoff)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    markers = ["o", "s", "^", "D", "v"]
    for ax, logy in zip(axes, (True, False)):
        for st in ("baseline", "pgoff"):
            if not logy and st == "baseline":
                continue
            part = table[table["strategy"] == st]
            for m, (k, g) in zip(markers, part.groupby("k")):
                g = g.sort_values("chains")
                ax.plot(g["chains"], g["touched_per_query"], markers[0] if m is None else m,
                        color=COLORS[st], label=f"{st}, k={k}")
                xs = np.geomspace(g["chains"].min(), g["chains"].max(), 100)
                ax.plot(xs, predict_cost(fits, st, xs, k), "-", color=COLORS[st], alpha=0.5, lw=1)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("anon_vma_chains in the anon_vma (n)")
        ax.set_ylabel("tree nodes touched per query")
        ax.legend(fontsize=8, frameon=False)
    axes[0].set_title("baseline O(n) vs v4 O(log n + k), log-log", fontsize=10)
    axes[1].set_title("v4 alone (linear y): straight in log n", fontsize=10)
    fig.tight_layout()
    return fig


def mremap_bars(table: pd.DataFrame) -> plt.Figure:
    """How migrations ended (contract.OUTCOMES: moved, stayed, not-migrated, error), per
    strategy and page kind (mremapped or in place), stacked."""
    t = table.reset_index()
    t["label"] = t["strategy"] + "\n" + t["pages"]
    fig, ax = plt.subplots(figsize=(7, 3))
    x = np.arange(len(t))
    bottom = np.zeros(len(t))
    for result, color, label in (("moved", "#27ae60", "moved"),
                                 ("stayed", "#f1c40f", "stayed (other node than asked)"),
                                 ("not-migrated", "#c0392b", "not migrated (page stuck)"),
                                 ("error", "#7f8c8d", "error (per-page status)")):
        if result not in t or not t[result].any():
            continue
        ax.bar(x, t[result], bottom=bottom, color=color, label=label)
        bottom += t[result].to_numpy()
    ax.set_xticks(x, t["label"], fontsize=8)
    ax.set_ylabel("move_pages() of one page")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
