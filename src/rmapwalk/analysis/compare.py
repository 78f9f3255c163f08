"""The model against the kernel, walk by walk (ARCHITECTURE.md: they meet only in the
walks tables).

For one scenario and one kernel, every run's measured walks are lined up with the walks the
simulator produced under the same kernel's strategy (``kernel-config/kernels.yaml``, read by
:func:`rmapwalk.kernels.strategy_of`: baseline -> ``baseline``, patched -> ``pgoff``, naive ->
``naive``).  Walks are matched on
``(step, region, page, reason, n)``, n counting repeats of that key in order (a migration
that is retried walks again).  Each matched walk is compared counter by counter and on
``page_type``; a walk on one side only is a disagreement of every field.  Nothing is
filtered out: the table counts every walk of every run.
"""
from __future__ import annotations

import pandas as pd

from ..contract import COUNTERS
from ..kernels import strategy_of

KEY = ("step", "region", "page", "reason", "n")
FIELDS = ("page_type", *COUNTERS)


def _keyed(walks: pd.DataFrame) -> pd.DataFrame:
    w = walks.copy()
    w["region"] = w["region"].astype(str)
    w["n"] = w.groupby(["step", "region", "page", "reason"], sort=False).cumcount()
    return w[[*KEY, *FIELDS]]


def match(kernel_walks: pd.DataFrame, model_walks: pd.DataFrame) -> pd.DataFrame:
    """One row per walk of either side: the key, ``<field>_kernel``, ``<field>_model``,
    ``side`` (``both``, ``kernel only``, ``model only``) and ``<field>_agree``."""
    m = _keyed(kernel_walks).merge(_keyed(model_walks), on=list(KEY), how="outer",
                                   suffixes=("_kernel", "_model"), indicator=True)
    m["side"] = m.pop("_merge").map({"both": "both", "left_only": "kernel only",
                                     "right_only": "model only"}).astype(str)
    for f in FIELDS:
        m[f"{f}_agree"] = (m["side"] == "both") & (m[f"{f}_kernel"] == m[f"{f}_model"])
    return m.sort_values(list(KEY), kind="stable").reset_index(drop=True)


def compare_runs(measured: pd.DataFrame, model_walks: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every run of ``measured`` (one scenario; columns kernel, run and the walks columns)
    matched with ``model_walks[kernel]``: the rows of :func:`match` with kernel, strategy and
    run in front.  A kernel without model walks is left out."""
    frames = []
    for (kernel, run), g in measured.groupby(["kernel", "run"], sort=True):
        if kernel not in model_walks:
            continue
        m = match(g, model_walks[kernel])
        m.insert(0, "run", run)
        m.insert(0, "strategy", strategy_of()[kernel])
        m.insert(0, "kernel", kernel)
        frames.append(m)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def agreement(matched: pd.DataFrame, by=("kernel",)) -> pd.DataFrame:
    """Per group of ``by`` and field: walks compared (every walk of either side), agreeing,
    disagreeing, and of the disagreements how many are walks on one side only."""
    rows = []
    if matched.empty:
        return pd.DataFrame(columns=[*by, "field", "walks", "agree", "disagree",
                                     "kernel_only", "model_only"]).set_index([*by, "field"])
    for key, g in matched.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        for f in FIELDS:
            agree = int(g[f"{f}_agree"].sum())
            rows.append({**dict(zip(by, key)), "field": f, "walks": len(g), "agree": agree,
                         "disagree": len(g) - agree,
                         "kernel_only": int((g["side"] == "kernel only").sum()),
                         "model_only": int((g["side"] == "model only").sum())})
    return pd.DataFrame(rows).set_index([*by, "field"])


def disagreements(matched: pd.DataFrame) -> pd.DataFrame:
    """The walks where any field differs or that one side lacks, with both values."""
    if matched.empty:
        return matched
    ok = matched[[f"{f}_agree" for f in FIELDS]].all(axis=1)
    cols = [c for c in matched.columns if not c.endswith("_agree")]
    return matched.loc[~ok, cols].reset_index(drop=True)


def agreement_figure(table: pd.DataFrame):
    """Heat map of the share of walks that agree, rows ``scenario / kernel``, columns the
    fields, each cell annotated ``agree/walks``."""
    import matplotlib.pyplot as plt   # noqa: PLC0415 (plotting only when asked)
    import seaborn as sns             # noqa: PLC0415
    from .traces import empty_figure  # noqa: PLC0415
    if table.empty:
        return empty_figure("no runs to compare")
    t = table.reset_index()
    t["row"] = t["scenario"] + " / " + t["kernel"]
    share = t.pivot(index="row", columns="field", values="agree") / \
        t.pivot(index="row", columns="field", values="walks")
    annot = t.assign(a=t["agree"].astype(str) + "/" + t["walks"].astype(str)) \
        .pivot(index="row", columns="field", values="a")
    cols = [f for f in FIELDS if f in share.columns]
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.38 * len(share)))
    sns.heatmap(share[cols], annot=annot[cols], fmt="", vmin=0, vmax=1, cmap="RdYlGn",
                cbar_kws={"label": "share of walks that agree"}, ax=ax, annot_kws={"fontsize": 8})
    ax.set_xlabel("field compared")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig
