"""Measured walks: the capture runs under ``data/traces/`` read into pandas, and the
statistics the book quotes from them.

A capture run folder is ``<root>/<scenario>/<base>/<variant>/run-<k>/`` with ``walks.csv``
(:data:`rmapwalk.contract.MEASURED_WALK_COLUMNS`: one row per ``rmap:rmap_walk`` event inside a
page window), ``outcomes.csv`` and ``manifest.json``.  Runs are only read through
:func:`rmapwalk.dataset.runs`, which verifies each against its manifest, its place and the
committed scenario, and refuses (naming the file) what does not verify.  The ``kernel``
column is the variant of ``kernel-config/kernels.yaml`` (``baseline``: query
``[0, ULONG_MAX]``; ``patched``: v4, stored page index; ``naive``: v1-v3,
``address >> PAGE_SHIFT``), the ``base`` column its Linux version; one base is read at a time.

Durations are the tracepoint's ``duration_ns`` inside a QEMU TCG guest: emulated time,
many times slower than a real CPU and not comparable with the thread's milliseconds.  The
statistics therefore report ratios and per-iteration costs next to the medians.

Every interval is a ``scipy.stats.bootstrap`` interval (percentile method, seeded); tests
are ``scipy.stats.mannwhitneyu``; the shift is the Hodges-Lehmann estimator (median of all
pairwise differences) and the effect size Cliff's delta (equal to the rank-biserial
correlation ``2U/(n_a n_b) - 1``).
"""
from __future__ import annotations

import functools
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .. import dataset, kernels as kernel_list, paths
from ..contract import COUNTERS, MEASURED_COLUMNS, MEASURED_WALK_COLUMNS, OUTCOME_COLUMNS, PAGE_TYPES

WALK_COLUMNS = MEASURED_WALK_COLUMNS
INT_COLUMNS = ("step", "page", *COUNTERS, *MEASURED_COLUMNS)
KERNELS = kernel_list.variants()
DataIntegrityError = dataset.DataIntegrityError


class TraceDataError(ValueError):
    """A run folder's file is missing or malformed; the message starts with the file."""


def runs(root: str | Path | None = None, scenario: str | None = None, *,
         base: str | None = None, include_unverified: bool = False) -> list[dataset.Run]:
    """The verified runs of one base (default: kernels.yaml's default) under ``root``
    (default data/traces); see :func:`rmapwalk.dataset.runs`."""
    root = Path(root) if root not in (None, "") else paths.TRACES
    base = base or kernel_list.load().default_base
    return [r for r in dataset.runs(root, scenario=scenario, include_unverified=include_unverified)
            if r.base == base]


def integrity_note(root: str | Path | None = None) -> str:
    """Markdown for a page that was asked to include unverified runs: what does not verify
    (empty when everything does)."""
    root = Path(root) if root not in (None, "") else paths.TRACES
    problems = dataset.verify(root)
    if not problems:
        return ""
    lines = "\n".join(f"- `{p}`" for p in problems[:20])
    more = f"\n- ... and {len(problems) - 20} more" if len(problems) > 20 else ""
    return (f"```{{warning}}\nThis page includes **unverified** runs ({len(problems)} "
            f"problem(s) found by `rmapwalk verify`); its numbers are not the published ones.\n"
            f"```\n\n{lines}{more}\n")


def reader(include_unverified: bool = False) -> types.SimpleNamespace:
    """``load``, ``load_outcomes`` and ``inventory`` with ``include_unverified`` bound, and
    ``note(root)``: the page's warning when unverified runs are included (else "").  A
    notebook's parameter decides once; every later call reads the same way."""
    return types.SimpleNamespace(
        load=functools.partial(load, include_unverified=include_unverified),
        load_outcomes=functools.partial(load_outcomes, include_unverified=include_unverified),
        inventory=functools.partial(inventory, include_unverified=include_unverified),
        note=(integrity_note if include_unverified else lambda root=None: ""),
        include_unverified=include_unverified)


def inventory(root: str | Path | None = None, *, include_unverified: bool = False) -> pd.DataFrame:
    """Runs per scenario and kernel (a scenario x kernel table of counts)."""
    rows = [{"scenario": r.scenario, "kernel": r.kernel, "run": r.run}
            for r in runs(root, include_unverified=include_unverified)]
    if not rows:
        return pd.DataFrame(columns=list(KERNELS)).rename_axis("scenario")
    t = pd.DataFrame(rows).pivot_table(index="scenario", columns="kernel", values="run",
                                       aggfunc="count", fill_value=0)
    return t[[k for k in KERNELS if k in t.columns] + [k for k in t.columns if k not in KERNELS]]


def _read_csv(path: Path, required: tuple[str, ...], ints: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise TraceDataError(f"{path}: missing (every run folder needs it)")
    try:
        df = pd.read_csv(path, dtype={"region": str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise TraceDataError(f"{path}: not a readable CSV table: {e}") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise TraceDataError(f"{path}: lacks column(s) {', '.join(missing)}; "
                             f"expected {', '.join(required)}")
    for c in ints:
        if c not in df.columns:
            continue
        v = pd.to_numeric(df[c], errors="coerce")
        bad = v.isna() | (v < 0) | (v != v.round())
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise TraceDataError(f"{path}:{i + 2}: column {c!r} must be a non-negative integer, "
                                 f"got {df[c].iloc[i]!r}")
        df[c] = v.astype("int64")
    return df


def read_walks_csv(path: str | Path) -> pd.DataFrame:
    """One run's walks.csv, validated: columns, integer counters, known page types, and
    ``iterations = skip_addr + skip_mm + rmap_one + (the iterations rmap_one's caller
    stopped early)`` at least as large as the skips plus calls."""
    path = Path(path)
    df = _read_csv(path, WALK_COLUMNS, INT_COLUMNS)
    bad = ~df["page_type"].isin(PAGE_TYPES)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise TraceDataError(f"{path}:{i + 2}: page_type {df['page_type'].iloc[i]!r}, expected "
                             f"one of {', '.join(PAGE_TYPES)}")
    over = df["skip_addr"] + df["skip_mm"] + df["rmap_one"] > df["iterations"]
    if over.any():
        i = int(np.flatnonzero(over.to_numpy())[0])
        raise TraceDataError(f"{path}:{i + 2}: skip_addr + skip_mm + rmap_one exceeds iterations")
    return df


def load(root: str | Path | None = None, scenario: str | None = None,
         kernels=KERNELS, *, base: str | None = None,
         include_unverified: bool = False) -> pd.DataFrame:
    """All walks of every verified run under ``root`` (default ``data/traces``), optionally
    of one scenario, as one table with ``scenario``, ``kernel``, ``run`` and ``walk`` (the
    row's position in its run) in front of the walks columns.  A run that does not verify
    raises :class:`DataIntegrityError`, a malformed walks.csv :class:`TraceDataError`, each
    naming the file."""
    frames = []
    for run in runs(root, scenario, base=base, include_unverified=include_unverified):
        if run.kernel not in kernels:
            continue
        df = read_walks_csv(run.folder / "walks.csv")
        df.insert(0, "walk", np.arange(len(df)))
        df.insert(0, "run", run.run)
        df.insert(0, "kernel", run.kernel)
        df.insert(0, "scenario", run.scenario)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["scenario", "kernel", "run", "walk", *WALK_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def load_outcomes(root: str | Path | None = None, scenario: str | None = None, *,
                  base: str | None = None, include_unverified: bool = False) -> pd.DataFrame:
    """Every verified run's outcomes.csv (how each migration or idle step ended), with
    scenario, kernel and run in front."""
    frames = []
    for run in runs(root, scenario, base=base, include_unverified=include_unverified):
        df = _read_csv(run.folder / "outcomes.csv", OUTCOME_COLUMNS, ("step", "page", "proc"))
        df.insert(0, "run", run.run)
        df.insert(0, "kernel", run.kernel)
        df.insert(0, "scenario", run.scenario)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["scenario", "kernel", "run", *OUTCOME_COLUMNS])
    return pd.concat(frames, ignore_index=True)


# --- statistics ------------------------------------------------------------------------
def _bootstrap(data, statistic, confidence: float, resamples: int, seed: int,
               paired: bool = False) -> tuple[float, float]:
    """Percentile bootstrap interval; (nan, nan) when a sample has fewer than two values,
    and the point itself when every resample gives the same value."""
    if any(len(d) < 2 for d in data):
        return float("nan"), float("nan")
    if all(np.all(d == d[0]) for d in data):
        v = float(statistic(*data, axis=-1))
        return v, v
    with warnings.catch_warnings():   # a degenerate resample distribution is reported as is
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(data, statistic, confidence_level=confidence, n_resamples=resamples,
                              method="percentile", paired=paired, vectorized=True,
                              rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _median(x, axis=-1):
    return np.median(x, axis=axis)


def _median_ratio(a, b, axis=-1):
    return np.median(a, axis=axis) / np.median(b, axis=axis)


def median_ci(x, *, confidence: float = 0.95, resamples: int = 9999, seed: int = 0) -> dict:
    """Median of ``x`` with its bootstrap interval: ``{"n", "median", "low", "high"}``."""
    x = np.asarray(x, float)
    low, high = _bootstrap((x,), _median, confidence, resamples, seed)
    return {"n": len(x), "median": float(np.median(x)) if len(x) else float("nan"),
            "low": low, "high": high}


def ratio_ci(a, b, *, confidence: float = 0.95, resamples: int = 9999, seed: int = 0) -> dict:
    """median(a) / median(b) with a bootstrap interval (the two samples resampled apart)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    point = float(np.median(a) / np.median(b)) if len(a) and len(b) else float("nan")
    low, high = _bootstrap((a, b), _median_ratio, confidence, resamples, seed)
    return {"ratio": point, "low": low, "high": high}


def hodges_lehmann(a, b) -> float:
    """The Hodges-Lehmann shift: the median of all pairwise differences a_i - b_j."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.median(np.subtract.outer(a, b))) if len(a) and len(b) else float("nan")


def cliffs_delta(a, b) -> float:
    """P(a > b) - P(a < b) over all pairs, in [-1, 1]; equals the rank-biserial correlation
    of the Mann-Whitney U test, 2U/(n_a n_b) - 1."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not len(a) or not len(b):
        return float("nan")
    d = np.subtract.outer(a, b)
    return float((np.sign(d)).mean())


def compare(a, b, *, confidence: float = 0.95, resamples: int = 9999, seed: int = 0) -> dict:
    """Two samples (e.g. baseline and patched durations): medians with intervals, the
    median ratio a/b with its interval, Mann-Whitney U (two-sided), Hodges-Lehmann shift
    and Cliff's delta."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ma = median_ci(a, confidence=confidence, resamples=resamples, seed=seed)
    mb = median_ci(b, confidence=confidence, resamples=resamples, seed=seed)
    r = ratio_ci(a, b, confidence=confidence, resamples=resamples, seed=seed)
    if len(a) and len(b):
        u = stats.mannwhitneyu(a, b, alternative="two-sided")
        U, p = float(u.statistic), float(u.pvalue)
    else:
        U = p = float("nan")
    return {"n_a": ma["n"], "median_a": ma["median"], "low_a": ma["low"], "high_a": ma["high"],
            "n_b": mb["n"], "median_b": mb["median"], "low_b": mb["low"], "high_b": mb["high"],
            "ratio": r["ratio"], "ratio_low": r["low"], "ratio_high": r["high"],
            "U": U, "p": p, "hl_shift": hodges_lehmann(a, b), "cliffs_delta": cliffs_delta(a, b)}


def kernel_comparison(walks: pd.DataFrame, value: str = "duration_ns", *, a: str = "baseline",
                      b: str = "patched", by=("page_type",), confidence: float = 0.95,
                      resamples: int = 9999, seed: int = 0) -> pd.DataFrame:
    """:func:`compare` of ``value`` between kernels ``a`` and ``b``, one row per group of
    ``by`` (e.g. page type, or page type and reason).  Groups one kernel lacks are left out
    (the notebook reports the inventory next to it)."""
    by = list(by)
    rows = []
    for key, g in walks.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        xa = g.loc[g["kernel"] == a, value].to_numpy(float)
        xb = g.loc[g["kernel"] == b, value].to_numpy(float)
        if not len(xa) or not len(xb):
            continue
        rows.append({**dict(zip(by, key)), **compare(xa, xb, confidence=confidence,
                                                      resamples=resamples, seed=seed)})
    cols = [*by, "n_a", "median_a", "low_a", "high_a", "n_b", "median_b", "low_b", "high_b",
            "ratio", "ratio_low", "ratio_high", "U", "p", "hl_shift", "cliffs_delta"]
    return pd.DataFrame(rows, columns=cols).set_index(by)


def skip_ratio(walks: pd.DataFrame, *, confidence: float = 0.95, resamples: int = 9999,
               seed: int = 0) -> dict:
    """The measured skip ratio: summed skip_addr over summed iterations, with a bootstrap
    interval that resamples whole walks (skip_addr and iterations kept together)."""
    s = walks["skip_addr"].to_numpy(float)
    it = walks["iterations"].to_numpy(float)
    total = it.sum()
    point = float(s.sum() / total) if total else float("nan")
    low, high = _bootstrap((s, it), lambda x, y, axis=-1: x.sum(axis=axis) / y.sum(axis=axis),
                           confidence, resamples, seed, paired=True)
    return {"walks": len(walks), "skip_addr": int(s.sum()), "iterations": int(total),
            "skip_ratio": point, "low": low, "high": high}


def skip_ratios(walks: pd.DataFrame, by=("kernel", "page_type"), **kw) -> pd.DataFrame:
    """:func:`skip_ratio` per group."""
    by = list(by)
    rows = [{**dict(zip(by, key if isinstance(key, tuple) else (key,))), **skip_ratio(g, **kw)}
            for key, g in walks.groupby(by, sort=True)]
    return pd.DataFrame(rows, columns=[*by, "walks", "skip_addr", "iterations", "skip_ratio",
                                       "low", "high"]).set_index(by)


def counters_per_walk(walks: pd.DataFrame, by=("kernel", "page_type", "reason")) -> pd.DataFrame:
    """Median and max of each counter per walk, per group."""
    by = list(by)
    agg = walks.groupby(by)[list(COUNTERS)].agg(["median", "max"])
    agg.columns = [f"{c}_{s}" for c, s in agg.columns]
    agg.insert(0, "walks", walks.groupby(by).size())
    return agg


# --- scaling: walk cost against loop iterations (the vma-sweep scenarios) -----------------
# The thread's numbers come from data/thread.yaml (rmapwalk.analysis.claim.thread()).


def sweep_walks(walks: pd.DataFrame, prefix: str = "vma-sweep-") -> pd.DataFrame:
    """The walks of the ``vma-sweep-<n>`` scenarios with a ``vmas`` column (n)."""
    w = walks[walks["scenario"].str.startswith(prefix)].copy()
    w["vmas"] = pd.to_numeric(w["scenario"].str[len(prefix):], errors="coerce")
    return w[w["vmas"].notna()].astype({"vmas": "int64"})


def fit_cost(walks: pd.DataFrame, *, confidence: float = 0.95, resamples: int = 9999,
             seed: int = 0) -> dict:
    """Least-squares line ``duration_ns = slope * iterations + intercept`` over walks, by
    ``scipy.stats.linregress``; the slope (ns per loop iteration) gets both the t interval
    of linregress and a bootstrap interval that resamples walks."""
    x = walks["iterations"].to_numpy(float)
    y = walks["duration_ns"].to_numpy(float)
    out = {"walks": len(x), "slope": float("nan"), "intercept": float("nan"), "r2": float("nan"),
           "slope_low": float("nan"), "slope_high": float("nan"),
           "slope_boot_low": float("nan"), "slope_boot_high": float("nan"),
           "intercept_low": float("nan"), "intercept_high": float("nan")}
    if len(x) < 3 or np.ptp(x) == 0:
        return out
    lr = stats.linregress(x, y)
    t = stats.t.ppf(0.5 + confidence / 2, len(x) - 2)
    out.update(slope=float(lr.slope), intercept=float(lr.intercept), r2=float(lr.rvalue ** 2),
               slope_low=float(lr.slope - t * lr.stderr), slope_high=float(lr.slope + t * lr.stderr),
               intercept_low=float(lr.intercept - t * lr.intercept_stderr),
               intercept_high=float(lr.intercept + t * lr.intercept_stderr))
    slope = lambda xs, ys, axis=-1: _slope(xs, ys, axis)   # noqa: E731 (bootstrap statistic)
    out["slope_boot_low"], out["slope_boot_high"] = _bootstrap(
        (x, y), slope, confidence, resamples, seed, paired=True)
    return out


def _slope(x, y, axis=-1):
    xm = x - x.mean(axis=axis, keepdims=True)
    ym = y - y.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xm * ym).sum(axis=axis) / (xm * xm).sum(axis=axis)


def rate(walks: pd.DataFrame, *, confidence: float = 0.95, resamples: int = 9999,
         seed: int = 0) -> dict:
    """Cost per loop iteration as a ratio estimator, summed duration over summed
    iterations (ns per iteration, a line through the origin), with a bootstrap interval
    that resamples whole walks.  Unlike the free line of :func:`fit_cost`, whose intercept
    is fixed by walks of millions of iterations, it can be scaled down to short walks."""
    d = walks["duration_ns"].to_numpy(float)
    it = walks["iterations"].to_numpy(float)
    point = float(d.sum() / it.sum()) if it.sum() else float("nan")
    low, high = _bootstrap((d, it), lambda x, y, axis=-1: x.sum(axis=axis) / y.sum(axis=axis),
                           confidence, resamples, seed, paired=True)
    return {"walks": len(d), "ns_per_iteration": point, "low": low, "high": high}


def predict(r: dict, iterations: float) -> dict:
    """Duration (ms) of a walk of ``iterations`` at the cost per iteration ``r`` of
    :func:`rate`, with the interval carried over."""
    return {"iterations": float(iterations), "ms": r["ns_per_iteration"] * iterations / 1e6,
            "low_ms": r["low"] * iterations / 1e6, "high_ms": r["high"] * iterations / 1e6}


def per_vmas(walks: pd.DataFrame, *, confidence: float = 0.95, resamples: int = 9999,
             seed: int = 0) -> pd.DataFrame:
    """Per kernel, sweep size and walk kind (``reason``; the kinds differ about twice in
    iterations, so they are never pooled): walks, median iterations, median ns per iteration
    and median duration (with its interval) of the sweep's walks."""
    rows = []
    for (k, n, reason), g in walks.groupby(["kernel", "vmas", "reason"], sort=True):
        m = median_ci(g["duration_ns"], confidence=confidence, resamples=resamples, seed=seed)
        rows.append({"kernel": k, "vmas": n, "reason": reason, "walks": len(g),
                     "runs": g["run"].nunique(),
                     "iterations_median": float(g["iterations"].median()),
                     "ns_per_iteration": float((g["duration_ns"] / g["iterations"]).median()),
                     "duration_ms_median": m["median"] / 1e6, "low_ms": m["low"] / 1e6,
                     "high_ms": m["high"] / 1e6})
    return pd.DataFrame(rows, columns=["kernel", "vmas", "reason", "walks", "runs",
                                       "iterations_median", "ns_per_iteration",
                                       "duration_ms_median", "low_ms", "high_ms"])


# --- figures (matplotlib/seaborn; the notebooks glue them and write the captions) --------
# One colour per captured variant of kernels.yaml, in its order (a variant added there gets
# the next colour, so no figure breaks on a kernel it has not seen).
_PALETTE = ("#c0392b", "#2471a3", "#7f8c8d", "#27ae60", "#8e44ad", "#d68910", "#17a589")
KERNEL_COLORS = {k: _PALETTE[i % len(_PALETTE)] for i, k in enumerate(KERNELS)}


def empty_figure(what: str):
    """A small figure that says the data is not there (a chapter still renders)."""
    import matplotlib.pyplot as plt   # noqa: PLC0415
    fig, ax = plt.subplots(figsize=(7, 1.2))
    ax.text(0.5, 0.5, f"no data: {what}", ha="center", va="center", fontsize=11)
    ax.set_axis_off()
    return fig


def latency_figure(walks: pd.DataFrame):
    """Per page type: ECDF of walk duration per kernel (left) and box plot with every walk
    drawn (right); log time axis, milliseconds of TCG guest time."""
    import matplotlib.pyplot as plt   # noqa: PLC0415 (plotting only when a figure is asked for)
    import seaborn as sns             # noqa: PLC0415
    if walks.empty:
        return empty_figure("no measured walks of these scenarios")
    w = walks.assign(duration_ms=walks["duration_ns"] / 1e6)
    types = [t for t in PAGE_TYPES if t in set(w["page_type"])]
    kernels = [k for k in KERNELS if k in set(w["kernel"])]
    pal = {k: KERNEL_COLORS[k] for k in kernels}
    fig, axes = plt.subplots(len(types), 2, figsize=(11, 2.6 * len(types)), squeeze=False)
    for row, t in zip(axes, types):
        g = w[w["page_type"] == t]
        sns.ecdfplot(g, x="duration_ms", hue="kernel", hue_order=kernels, palette=pal,
                     log_scale=True, ax=row[0])
        row[0].set_title(f"{t} pages: ECDF of walk duration", fontsize=10)
        sns.boxplot(g, x="duration_ms", y="kernel", order=kernels, hue="kernel", palette=pal,
                    log_scale=True, ax=row[1], fliersize=0, legend=False)
        sns.stripplot(g, x="duration_ms", y="kernel", order=kernels, color="black", size=3,
                      ax=row[1])
        row[1].set_title(f"{t} pages: every walk", fontsize=10)
        for ax in row:
            ax.set_xlabel("walk duration, ms of TCG guest time (log)")
    fig.tight_layout()
    return fig


def counters_figure(walks: pd.DataFrame):
    """Loop iterations and address skips per walk, per kernel and page type (symlog)."""
    import matplotlib.pyplot as plt   # noqa: PLC0415
    import seaborn as sns             # noqa: PLC0415
    if walks.empty:
        return empty_figure("no measured walks of these scenarios")
    kernels = [k for k in KERNELS if k in set(walks["kernel"])]
    long = walks.melt(id_vars=["kernel", "page_type"], value_vars=["iterations", "skip_addr"],
                      var_name="counter", value_name="per walk")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharey=True)
    for ax, c in zip(axes, ("iterations", "skip_addr")):
        sns.stripplot(long[long["counter"] == c], x="per walk", y="page_type", hue="kernel",
                      hue_order=kernels, palette=KERNEL_COLORS, dodge=True, ax=ax, size=5)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_title(f"{c} per walk (symlog)", fontsize=10)
    fig.tight_layout()
    return fig


def scaling_figure(walks: pd.DataFrame, rates: dict):
    """Walk duration against loop iterations, log-log, one colour per kernel, with each
    kernel's cost-per-iteration line (through the origin)."""
    import matplotlib.pyplot as plt   # noqa: PLC0415
    if walks.empty:
        return empty_figure("no measured walks of the sweep")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for k, g in walks.groupby("kernel"):
        ax.scatter(g["iterations"], g["duration_ns"] / 1e6, s=14, color=KERNEL_COLORS.get(k),
                   label=k, alpha=0.8)
        r = rates.get(k)
        if r and np.isfinite(r["ns_per_iteration"]):
            xs = np.geomspace(max(1, g["iterations"].min()), g["iterations"].max(), 50)
            ax.plot(xs, r["ns_per_iteration"] * xs / 1e6, color=KERNEL_COLORS.get(k), lw=1,
                    label=f"{k}: {r['ns_per_iteration']:.0f} ns/iteration")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("loop iterations in the walk")
    ax.set_ylabel("walk duration, ms of TCG guest time")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def sweep_useful_at(sweep: pd.DataFrame, chains: float, children: int = 0) -> float:
    """The simulated sweep's share of baseline iterations not skipped (1 - skip ratio) at
    ``chains`` anon_vma_chains per anon_vma, interpolated log-log along the line of
    ``children`` forked children (nan outside the sweep)."""
    g = sweep[sweep["children"] == children].sort_values("chains")
    if len(g) < 2 or not g["chains"].min() <= chains <= g["chains"].max():
        return float("nan")
    return float(np.exp(np.interp(np.log(chains), np.log(g["chains"].to_numpy(float)),
                                  np.log((1 - g["skip_ratio"]).to_numpy(float)))))


def realworld_figure(sweep: pd.DataFrame, measured: pd.DataFrame, level: float,
                     production: tuple[float, float] | None = None):
    """How real-worldish: the share of baseline loop iterations not skipped by the address
    check (1 - skip ratio, log) against anon_vma_chains per anon_vma (the anon_vma's size,
    log).  Lines: the simulated sweep (``chains`` column, one line per number of forked
    children); squares: the measured baseline KSM walks of each captured scenario
    (``measured``: scenario, chains = the largest anon_vma of the scenario, skip_ratio, low,
    high); star: ``production`` = (chains, share not skipped) of the v1 report's loop."""
    import matplotlib.pyplot as plt   # noqa: PLC0415
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for c, g in sweep.groupby("children"):
        g = g.sort_values("chains")
        ax.plot(g["chains"], 1 - g["skip_ratio"], "-o", ms=3, lw=1, alpha=0.7,
                label=f"simulated sweep, {c} forked children")
    placed: list[tuple[float, float]] = []
    for _, r in measured.sort_values("chains").iterrows():
        y = 1 - r["skip_ratio"]
        err = np.array([[max(r["high"] - r["skip_ratio"], 0)], [max(r["skip_ratio"] - r["low"], 0)]])
        ax.errorbar(r["chains"], y, yerr=err if np.isfinite(err).all() else None, fmt="s",
                    color="black", ms=5)
        # labels of points close on the log axes (within a factor of 2) are stacked, not
        # drawn over each other: the k-th neighbour's label goes k lines down
        lx, ly = np.log10(max(r["chains"], 1e-9)), np.log10(max(y, 1e-12))
        near = sum(abs(lx - px) < 0.3 and abs(ly - py) < 0.3 for px, py in placed)
        placed.append((lx, ly))
        ax.annotate(r["scenario"], (r["chains"], y), fontsize=7, textcoords="offset points",
                    xytext=(5, 4 - 9 * near))
    if measured is not None and len(measured):
        ax.plot([], [], "s", color="black", ms=5, label="measured baseline walks (VM)")
    if production is not None:
        ax.plot([production[0]], [production[1]], "*", color="#c0392b", ms=13,
                label="v1 report: one loop, production")
    ax.axhline(1 - level, color="grey", ls="--", lw=1)
    ax.annotate(f"skip ratio {100 * level:g}%", xy=(0.01, (1 - level) * 1.15), fontsize=8,
                xycoords=("axes fraction", "data"), color="grey")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("anon_vma_chains per anon_vma (the anon_vma's size)")
    ax.set_ylabel("1 − skip ratio (share not skipped)")
    ax.legend(fontsize=7, frameon=False, loc="lower left")
    fig.tight_layout()
    return fig


# --- like-for-like units: walks per kind, walks summed per migration ----------------------
# A migration attempt of one page (move_pages() -> migrate_pages()) makes an unmap walk
# (try_to_migrate(), which stops once the page is unmapped) and a remap walk
# (remove_migration_ptes(), two full passes); a failed attempt is retried by mm/migrate.c
# and walks again.  The two kinds differ by about 2x in iterations, so a median over pooled
# kinds is a value no walk had: the book reports per kind, or per migration (summed).
MIGRATE_KINDS = ("migrate_unmap", "migrate_remap")
MIGRATION_KEYS = ("scenario", "kernel", "strategy", "run", "step", "region", "page", "proc",
                  "page_type")


def per_migration(walks: pd.DataFrame) -> pd.DataFrame:
    """One row per migration of one page: the walks of the attempt (unmap + remap, and the
    retries) summed.  Columns: the keys present among :data:`MIGRATION_KEYS`, ``walks``,
    ``unmap_walks``, ``remap_walks``, the counters and (measured walks) ``duration_ns``,
    ``unmap_ns`` and ``remap_ns``."""
    w = walks[walks["reason"].isin(MIGRATE_KINDS)]
    keys = [k for k in MIGRATION_KEYS if k in w.columns]
    values = [c for c in (*COUNTERS, "duration_ns") if c in w.columns]
    cols = [*keys, "walks", "unmap_walks", "remap_walks", *values]
    if "duration_ns" in values:
        cols += ["unmap_ns", "remap_ns"]
    if not len(w):
        return pd.DataFrame(columns=cols)
    w = w.assign(unmap_walks=(w["reason"] == MIGRATE_KINDS[0]).astype("int64"),
                 remap_walks=(w["reason"] == MIGRATE_KINDS[1]).astype("int64"), walks=1)
    if "duration_ns" in values:
        w = w.assign(unmap_ns=w["duration_ns"].where(w["unmap_walks"] == 1, 0),
                     remap_ns=w["duration_ns"].where(w["remap_walks"] == 1, 0))
    out = w.groupby(keys, sort=True, dropna=False)[cols[len(keys):]].sum().reset_index()
    return out[cols]


def per_kind(walks: pd.DataFrame, by=("kernel", "page_type"), *, confidence: float = 0.95,
             resamples: int = 9999, seed: int = 0) -> pd.DataFrame:
    """Per group of ``by`` and walk kind (``reason``: migrate_unmap, migrate_remap, idle),
    and per migration (the attempt's walks summed, ``reason`` = "per migration"): walks,
    median and maximum iterations and address skips, and (measured walks) the median
    duration with its bootstrap interval and the maximum, in ms."""
    by = list(by)
    mig = per_migration(walks).assign(reason="per migration")
    frames = [walks, mig] if len(mig) else [walks]
    rows = []
    for frame in frames:
        for key, g in frame.groupby([*by, "reason"], sort=True):
            key = key if isinstance(key, tuple) else (key,)
            row = {**dict(zip([*by, "reason"], key)), "n": len(g),
                   "iterations_median": float(g["iterations"].median()),
                   "iterations_max": float(g["iterations"].max()),
                   "skip_addr_median": float(g["skip_addr"].median())}
            if "duration_ns" in g:
                m = median_ci(g["duration_ns"], confidence=confidence, resamples=resamples, seed=seed)
                row.update(ms_median=m["median"] / 1e6, ms_low=m["low"] / 1e6,
                           ms_high=m["high"] / 1e6, ms_max=float(g["duration_ns"].max()) / 1e6)
            rows.append(row)
    cols = [*by, "reason", "n", "iterations_median", "iterations_max", "skip_addr_median"]
    if "duration_ns" in walks:
        cols += ["ms_median", "ms_low", "ms_high", "ms_max"]
    order = {r: i for i, r in enumerate((*MIGRATE_KINDS, "idle", "per migration"))}
    t = pd.DataFrame(rows, columns=cols)
    if len(t):
        t = t.sort_values([*by, "reason"], key=lambda s: s.map(order) if s.name == "reason" else s)
    return t.reset_index(drop=True)


def rates(walks: pd.DataFrame, **opts) -> pd.DataFrame:
    """:func:`rate` (TCG ns per loop iteration, summed duration over summed iterations) for
    each kernel separately: the emulator's cost is not the same for the two kernels' walks."""
    rows = [{"kernel": k, **rate(g, **opts), "iterations": int(g["iterations"].sum())}
            for k, g in walks.groupby("kernel", sort=True)]
    return pd.DataFrame(rows, columns=["kernel", "walks", "iterations", "ns_per_iteration", "low",
                                       "high"])


# --- tables as the book shows them ------------------------------------------------------
def show(table: pd.DataFrame, formats: dict | None = None, *, empty: str = "no rows",
         index: bool = True, caption: str | None = None):
    """A table formatted for the book: thousands separators, integers as integers, every
    float with a fixed number of decimals (``formats``: column -> format string or callable;
    the default is ``{:,.0f}`` for integral columns and ``{:,.2f}`` otherwise), NaN as "–".
    An empty table becomes one italic sentence (``empty``) instead of an empty frame."""
    from IPython.display import Markdown   # noqa: PLC0415 (notebook display only)
    if table is None or not len(table):
        return Markdown(f"*{empty}.*")
    formats = dict(formats or {})
    for c in table.columns:
        if c in formats:
            continue
        s = table[c]
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            continue
        v = s.dropna().to_numpy(float)
        formats[c] = "{:,.0f}" if len(v) and np.all(v == np.round(v)) else "{:,.2f}"
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])
               and not pd.api.types.is_bool_dtype(table[c])]
    st = (table.style.format(formats, na_rep="–")
          .set_table_attributes('class="dataframe"')     # the theme's table style
          .set_properties(subset=numeric, **{"text-align": "right"}))
    if not index:
        st = st.hide(axis="index")
    if caption:
        st = st.set_caption(caption)
    return st


def _with_interval(point: float, low: float, high: float, fmt: str) -> str:
    if not np.isfinite(point):
        return "–"
    ci = f" ({fmt.format(low)}–{fmt.format(high)})" if np.isfinite(low) and np.isfinite(high) else ""
    return fmt.format(point) + ci


def comparison_table(comp: pd.DataFrame, unit: str = "migrations", a: str = "baseline",
                     b: str = "patched") -> pd.DataFrame:
    """A :func:`kernel_comparison` table narrow enough for the page: per row, the counts,
    each median in TCG ms with its interval in brackets, the ratio with its interval, and
    Cliff's delta."""
    comp = comp.dropna(how="all")
    rows = []
    for key, r in comp.iterrows():
        fmt = "{:,.0f}" if r["median_a"] >= 1e8 else "{:,.2f}"
        rows.append({f"{unit} ({a}, {b})": f"{r['n_a']:,.0f}, {r['n_b']:,.0f}",
                     f"{a} ms TCG": _with_interval(r["median_a"] / 1e6, r["low_a"] / 1e6,
                                                   r["high_a"] / 1e6, fmt),
                     f"{b} ms TCG": _with_interval(r["median_b"] / 1e6, r["low_b"] / 1e6,
                                                   r["high_b"] / 1e6, "{:,.2f}"),
                     f"ratio {a}/{b}": _with_interval(r["ratio"], r["ratio_low"], r["ratio_high"],
                                                      "{:,.0f}" if r["ratio"] >= 10 else "{:,.2f}"),
                     "Cliff's δ": f"{r['cliffs_delta']:.2f}"})
    return pd.DataFrame(rows, index=comp.index)
