"""The series' claims set beside the thread's figures, the model's walks and the kernels' walks.

The thread's figures live in one file, ``data/thread.yaml``, read (and validated) by
:func:`thread`.  Each ``claim_*`` function takes the measured walks and outcomes
(:func:`rmapwalk.analysis.traces.load`, :func:`~rmapwalk.analysis.traces.load_outcomes`) and
the simulated ones (:mod:`rmapwalk.analysis.simulation`, a dict keyed by ``(scenario,
strategy)``), and returns a :class:`Claim`: the numbers each side gives (:class:`Side`), whether
that side supports the claim, and a verdict.  :func:`summary_table` formats them, one row per
claim.  Kernel variants and their model strategies come from :mod:`rmapwalk.kernels`; outcome
values from :data:`rmapwalk.contract.OUTCOMES`.

Verdict rules (:func:`decide`).  Each claim names the sides that can test it (model, kernel, or
only the kernel).  A side *supports* the claim, *contradicts* it, or has *no data*; then

- ``no data``: no side has data;
- ``does not hold``: every side with data contradicts the claim;
- ``holds with a difference``: some side supports it and (a) another contradicts it, or (b) a
  side the claim needs has no data, or (c) the claim's own rule notes a difference from the
  thread (below);
- ``holds``: every side the claim needs supports it and no difference is noted.

What *supports* means, per claim:

- skip ratio: the baseline walks' summed address skips over summed iterations on the seed
  benchmark is at least the thread's share (``skip-ratio``).  Difference: the kernel's
  bootstrap interval reaches below that share.
- waste removed (v4 benchmark): on the seed benchmark every walk of the v4 query (model
  ``pgoff``, kernel ``patched``) makes no address skip and at most ``WALK_PASSES`` iterations per
  rmap_one call: rmap_walk_ksm() makes two passes over the rmap_items (``search_new_forks`` 0,
  1) and a waste-free loop visits only VMAs that map the page, each once per pass.  The kernel
  side also needs the patched migrations to be faster (the interval of the ratio of median
  durations per migration, unmap + remap walk summed, above 1); the milliseconds themselves
  are TCG time and are not compared with the thread's.  The thread's figures are per walk
  event (its 4 events: two migration attempts); beside them the kernel side gives the same
  statistics (longest walk, mean walk) as TCG ratios, shown and not judged.
- production (v1): as the previous rule on ``production-v1``, plus the baseline walks' skip
  ratio at least the thread's share.  The thread's figures are per
  ``anon_vma_interval_tree_foreach`` loop (one rmap_item and pass, each counter's maximum over
  walks): the model gives them on that unit too (``contract.LOOP_COLUMNS``), set beside the
  thread's; the tracepoint counts per walk only.  Difference: the kernel side is not on the
  thread's unit (any figure whose ``per`` is not ``walk`` is a difference).
- mremap: on ``ksm-and-mremap`` some migration under the naive query (v1-v3) does not end
  ``moved`` while every migration under baseline and the v4 query does.
- fork: on ``fork-fanout`` the v4 query calls rmap_one as often as the baseline (model: summed
  over the run, and no mapping missed; kernel: median over runs of the per-run sum).
- control (anon, file): per page type, the baseline/patched ratio of median durations per
  migration (the attempt's walks summed) has an interval that contains 1, or the ratio is within ``CONTROL_TOLERANCE`` of 1 (then a difference is noted:
  a small but resolved shift).  Not modelled (rmap_walk_anon/rmap_walk_file are unchanged).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from pathlib import Path

import numpy as np
import pandas as pd

from .. import kernels, paths, yamlfile
from ..contract import LOOP_COLUMNS, OUTCOMES, PAGE_TYPES
from ..model.ksm import STRATEGIES
from . import tables, traces as T

THREAD_FILE = paths.DATA / "thread.yaml"

HOLDS = "holds"
DIFFERENCE = "holds with a difference"
DOES_NOT_HOLD = "does not hold"
NO_DATA = "no data"
VERDICTS = (HOLDS, DIFFERENCE, DOES_NOT_HOLD, NO_DATA)

WALK_PASSES = 2            # rmap_walk_ksm(): search_new_forks 0, then 1 (mm/ksm.c)
CONTROL_TOLERANCE = 0.10   # |ratio - 1| accepted for the anon/file control
MISSING = "no runs yet"


def _member(name: str, known, what: str) -> str:
    """``name`` if the owning module still defines it: a renamed value fails at import."""
    if name not in known:
        raise ImportError(f"rmapwalk.analysis.claim expects {what} {name!r}; have {', '.join(known)}")
    return name


MOVED = _member("moved", OUTCOMES, "outcome")
KSM, ANON, FILE = (_member(t, PAGE_TYPES, "page type") for t in ("ksm", "anon", "file"))
BASELINE, NAIVE, PGOFF = (_member(s, STRATEGIES, "strategy") for s in ("baseline", "naive", "pgoff"))
MIGRATE = "migrate"        # contract.OUTCOME_OPS

SEED = "seed-benchmark"
PRODUCTION = "production-v1"
MREMAP = "ksm-and-mremap"
FORK = "fork-fanout"
CONTROLS = {ANON: "seed-benchmark-anon", FILE: "seed-benchmark-file"}
SCENARIOS = (SEED, PRODUCTION, MREMAP, FORK)   # the simulated scenarios the claims read


LABELS = {   # claim key -> a few words for the verdict table
    "skip-ratio": "99.9% of iterations wasted",
    "production-v1": "production waste gone (v1)",
    "v4-benchmark": "v4 removes the waste (benchmark)",
    "mremap": "v1–v3 miss mremap()ed pages",
    "fork": "fork: v4 finds every mapping",
    "control": "anon, file walks unchanged",
}


# --- the thread's figures ---------------------------------------------------------------
class ThreadFileError(ValueError):
    """data/thread.yaml is malformed or lacks a figure; the message names the file and key."""


VERSIONS = ("v1", "v4 cover", "v4 2/5", "v4 3/5", "v5/v7 cover", "v9")
PER = ("walk", "rmap_item loop", "loop iteration", "migration event", "benchmark run",
       "anon_vma", "test", "struct")
STATISTICS = ("max", "avg", "count", "share", "range", "setting")
FIELDS = ("description", "version", "setting", "per", "statistic", "unit", "source")


@dataclasses.dataclass(frozen=True)
class Figure:
    """One reported quantity: ``value``, or ``before``/``after`` the series.  A value is a
    number, a ``(low, high)`` range, or ``("<", x)`` for "below x"; None when not reported."""
    key: str
    description: str
    version: str
    setting: str
    per: str
    statistic: str
    unit: str
    source: str
    url: str | None
    value: object = None
    before: object = None
    after: object = None
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Thread:
    path: Path
    sources: dict
    figures: dict

    def __getitem__(self, key: str) -> Figure:
        if key not in self.figures:
            raise ThreadFileError(f"{self.path}: figures.{key}: missing (have "
                                  f"{', '.join(self.figures)})")
        return self.figures[key]


def _number(path, where: str, v):
    """A figure's value checked: number, [low, high] or {below: x}."""
    def num(x):
        if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x):
            raise ThreadFileError(f"{path}: {where}: expected a number, got {x!r}")
        return x
    if v is None or isinstance(v, numbers.Real) and not isinstance(v, bool):
        return v if v is None else num(v)
    if isinstance(v, list) and len(v) == 2:
        lo, hi = num(v[0]), num(v[1])
        if lo > hi:
            raise ThreadFileError(f"{path}: {where}: range [{lo}, {hi}] has low > high")
        return (lo, hi)
    if isinstance(v, dict) and set(v) == {"below"}:
        return ("<", num(v["below"]))
    raise ThreadFileError(f"{path}: {where}: expected a number, [low, high] or {{below: x}}, "
                          f"got {v!r}")


def parse_thread(path: Path) -> Thread:
    """Read and validate a thread file; every problem raises :class:`ThreadFileError` naming
    the file and the key."""
    path = Path(path)
    doc = yamlfile.load(path, ThreadFileError)
    if not isinstance(doc, dict) or not isinstance(doc.get("sources"), dict) \
            or not isinstance(doc.get("figures"), dict):
        raise ThreadFileError(f"{path}: expected a mapping with 'sources' and 'figures' mappings")
    sources = {}
    for k, s in doc["sources"].items():
        if not isinstance(s, dict) or "what" not in s or "url" not in s:
            raise ThreadFileError(f"{path}: sources.{k}: expected a mapping with 'what' and 'url'")
        if s["url"] is not None and not str(s["url"]).startswith("https://"):
            raise ThreadFileError(f"{path}: sources.{k}.url: expected https://... or null")
        sources[str(k)] = {"what": str(s["what"]), "url": s["url"]}
    figures = {}
    for k, f in doc["figures"].items():
        where = f"figures.{k}"
        if not isinstance(f, dict):
            raise ThreadFileError(f"{path}: {where}: expected a mapping")
        missing = [x for x in FIELDS if x not in f]
        if missing:
            raise ThreadFileError(f"{path}: {where}: missing {', '.join(missing)}")
        unknown = set(f) - {*FIELDS, "value", "before", "after", "note"}
        if unknown:
            raise ThreadFileError(f"{path}: {where}: unknown field(s) {', '.join(sorted(unknown))}")
        for field, allowed in (("version", VERSIONS), ("per", PER), ("statistic", STATISTICS),
                               ("source", tuple(sources))):
            if f[field] not in allowed:
                raise ThreadFileError(f"{path}: {where}.{field}: {f[field]!r} is not one of "
                                      f"{', '.join(allowed)}")
        vals = {x: _number(path, f"{where}.{x}", f.get(x)) for x in ("value", "before", "after")}
        if all(v is None for v in vals.values()):
            raise ThreadFileError(f"{path}: {where}: needs 'value' or 'before'/'after'")
        if vals["value"] is not None and (vals["before"] is not None or vals["after"] is not None):
            raise ThreadFileError(f"{path}: {where}: 'value' and 'before'/'after' exclude each other")
        figures[str(k)] = Figure(str(k), str(f["description"]), f["version"], str(f["setting"]),
                                 f["per"], f["statistic"], str(f["unit"]), f["source"],
                                 sources[f["source"]]["url"], note=str(f.get("note") or ""),
                                 **vals)
    return Thread(path, sources, figures)


def thread(path: str | Path | None = None) -> Thread:
    """The thread's figures from ``data/thread.yaml`` (or ``path``), validated."""
    return parse_thread(Path(path) if path else THREAD_FILE)


def _scalar(fig: Figure, which: str) -> float:
    v = getattr(fig, which)
    if not isinstance(v, numbers.Real):
        raise ThreadFileError(f"figures.{fig.key}.{which}: expected one number, got {v!r}")
    return float(v)


# --- verdicts ---------------------------------------------------------------------------
@dataclasses.dataclass
class Side:
    """What the model or the kernel gives for a claim: the numbers, whether they support the
    claim (None: no data), and the table cell built from them."""
    data: dict
    supports: bool | None
    text: str
    short: str = ""              # the front page's cell: a few words, details in ``text``


@dataclasses.dataclass
class Claim:
    key: str
    claim: str
    thread: dict                 # figure key -> Figure (the values quoted)
    thread_text: str
    model: Side | None           # None: the claim is not modelled
    kernel: Side
    differences: list
    verdict: str
    source: str
    needs: tuple = ("model", "kernel")
    thread_short: str = ""       # the front page's cell for the thread

    @property
    def label(self) -> str:
        """The claim in a few words (the front page's first column)."""
        return LABELS.get(self.key, self.claim)

    def reasons(self) -> list[str]:
        """Why the verdict is "holds with a difference": the noted differences, a needed
        side without data, a side that contradicts the claim."""
        if self.verdict != DIFFERENCE:
            return []
        sides = {"model": self.model, "kernel": self.kernel}
        out = list(self.differences)
        out += [f"no {s} data" for s in self.needs if sides[s] is None or sides[s].supports is None]
        out += [f"the {s} does not support it" for s in self.needs
                if sides[s] is not None and sides[s].supports is False]
        return out


def decide(model: bool | None, kernel: bool | None, *, differences=(),
           needs=("model", "kernel")) -> str:
    """The verdict from each side's support (True, False, None = no data); see the module
    docstring.  ``needs`` lists the sides the claim can be tested on."""
    sides = {"model": model, "kernel": kernel}
    have = [v for s, v in sides.items() if s in needs and v is not None]
    if not have:
        return NO_DATA
    if not any(have):
        return DOES_NOT_HOLD
    if not all(have) or len(have) < len(needs) or list(differences):
        return DIFFERENCE
    return HOLDS


def _no_data(what: str = MISSING) -> Side:
    return Side({}, None, what, what)


# --- helpers on walks tables ------------------------------------------------------------
def kernel_of(strategy: str) -> str:
    """The kernel variant whose walks the model strategy counts
    (:func:`rmapwalk.kernels.variant_of`: the first captured variant listed with it; later
    ones, e.g. the merged form, count the same walks but are not the claims' kernels)."""
    return kernels.variant_of(strategy)


def _measured(walks: pd.DataFrame, scenario: str, strategy: str, page_type: str = KSM):
    if not len(walks):
        return walks
    return walks[(walks["scenario"] == scenario) & (walks["kernel"] == kernel_of(strategy))
                 & (walks["page_type"] == page_type)]


def _simulated(model: dict, scenario: str, strategy: str):
    w = model.get((scenario, strategy))
    if w is None or not len(w):
        return None
    return w[w["page_type"] == KSM] if "page_type" in w else w


def waste(walks: pd.DataFrame) -> dict:
    """Per-walk waste figures: maximum address skips and maximum iterations per rmap_one call
    (``max(rmap_one, 1)``), and whether every walk is within the waste-free bound."""
    per_call = walks["iterations"] / walks["rmap_one"].clip(lower=1)
    return {"walks": len(walks),
            "iterations_per_walk": float(walks["iterations"].mean()),
            "iterations_max": int(walks["iterations"].max()),
            "skip_addr_max": int(walks["skip_addr"].max()),
            "iterations_per_call_max": float(per_call.max()),
            "waste_free": bool((walks["skip_addr"] == 0).all() and (per_call <= WALK_PASSES).all())}


def _ratio(walks: pd.DataFrame) -> float:
    it = walks["iterations"].sum()
    return float(walks["skip_addr"].sum() / it) if it else float("nan")


def _pct(x: float, digits: int = 3) -> str:
    return f"{100 * x:.{digits}f}%"


def _ms(ns: float, tcg: bool = True) -> str:
    ms = ns / 1e6
    return f"{ms:,.{2 if ms < 10 else 0}f} ms" + (" TCG" if tcg else "")


def _files(model_files: dict | None, scenario: str) -> str:
    """The simulated walks files of ``scenario`` for the source column (``build/analysis``
    when the caller does not name them)."""
    return (model_files or {}).get(scenario) or "build/analysis"


# --- the claims ---------------------------------------------------------------------------
def claim_skip_ratio(walks, model, th: Thread, *, level: float | None = None, data_dir="data/traces",
                     model_files=None, **opts) -> Claim:
    fig, it, sk = th["skip-ratio"], th["v1-iterations"], th["v1-skip-addr"]
    share = _scalar(fig, "value")
    level = share if level is None else level
    thread_text = (f"{_pct(share, 1)} of the iterations skipped ({fig.version}); v1: "
                   f"{_scalar(sk, 'before'):,.0f} of {_scalar(it, 'before'):,.0f} "
                   f"({_pct(_scalar(sk, 'before') / _scalar(it, 'before'))}) per {it.per}, production")
    s = _simulated(model, SEED, BASELINE)
    if s is None:
        ms = _no_data()
    else:
        r = _ratio(s)
        ms = Side({"skip_ratio": r, "walks": len(s), "iterations": int(s["iterations"].sum())},
                  r >= level, f"{_pct(r)} of {int(s['iterations'].sum()):,} iterations in "
                              f"{len(s):,} walks, {BASELINE}", _pct(r))
    m = _measured(walks, SEED, BASELINE)
    differences = []
    if not len(m):
        ks = _no_data()
    else:
        r = T.skip_ratio(m, **opts)
        ks = Side(r, r["skip_ratio"] >= level,
                  f"{_pct(r['skip_ratio'])} ({_pct(r['low'])}–{_pct(r['high'])}) of "
                  f"{r['iterations']:,} iterations in {r['walks']:,} walks, {kernel_of(BASELINE)}",
                  _pct(r['skip_ratio']))
        if ks.supports and r["low"] < level:
            differences.append(f"the kernel's interval reaches below {_pct(level, 1)}")
    return Claim("skip-ratio", f"at least {_pct(level, 1)} of the loop's iterations are skipped "
                 "by the address check",
                 {k: th[k] for k in ("skip-ratio", "v1-iterations", "v1-skip-addr")},
                 thread_text, ms, ks, differences,
                 decide(ms.supports, ks.supports, differences=differences),
                 f"skip-ratio.ipynb, kernel-traces.ipynb; {SEED}: {_files(model_files, SEED)}; "
                 f"{data_dir}/{SEED}/*/{kernel_of(BASELINE)}/run-*/walks.csv",
                 thread_short=_pct(share, 1))


def _before_after(before: pd.DataFrame | None, after: pd.DataFrame | None, level: float,
                  label: tuple[str, str], durations: bool) -> Side:
    """Per-walk maxima before (baseline) and after (v4 query), and the rule of the production
    claim: baseline skip ratio >= level, v4 walks waste-free."""
    if before is None or after is None or not len(before) or not len(after):
        return _no_data()
    b, a = waste(before), waste(after)
    data = {"before": {**b, "skip_ratio": _ratio(before),
                       "skip_mm_max": int(before["skip_mm"].max())},
            "after": {**a, "skip_mm_max": int(after["skip_mm"].max())}}
    text = (f"per walk, max of {b['walks']:,}: {b['iterations_max']:,} iterations, "
            f"{b['skip_addr_max']:,} address skips ({label[0]}) → {a['iterations_max']:,} "
            f"iterations, {a['skip_addr_max']:,} address skips, {data['after']['skip_mm_max']:,} mm "
            f"skips ({label[1]})")
    if durations:
        data["before"]["duration_max_ns"] = float(before["duration_ns"].max())
        data["after"]["duration_max_ns"] = float(after["duration_ns"].max())
        text += (f"; {_ms(data['before']['duration_max_ns'])} → "
                 f"{_ms(data['after']['duration_max_ns'])}")
    short = f"{b['iterations_max']:,} → {a['iterations_max']:,} per walk"
    return Side(data, bool(data["before"]["skip_ratio"] >= level and a["waste_free"]), text, short)


def _per_loop(before: pd.DataFrame, after: pd.DataFrame) -> dict | None:
    """The model's counters on the v1 report's unit: per ``anon_vma_interval_tree_foreach``
    loop, each counter's maximum over the walks (contract.LOOP_COLUMNS), before and after."""
    if not all(c in w for w in (before, after) for c in LOOP_COLUMNS):
        return None
    out = {k: {c.removeprefix("loop_").removesuffix("_max"): int(w[c].max()) for c in LOOP_COLUMNS}
           for k, w in (("before", before), ("after", after))}
    b, a = out["before"], out["after"]
    out["text"] = (f"per rmap_item loop, max over walks: {b['iterations']:,} iterations, "
                   f"{b['skip_addr']:,} address skips, {b['skip_mm']:,} mm skips → "
                   f"{a['iterations']:,} iterations, {a['skip_addr']:,} address skips, "
                   f"{a['skip_mm']:,} mm skips")
    out["short"] = f"{b['iterations']:,} → {a['iterations']:,} per loop"
    return out


def claim_production(walks, model, th: Thread, *, level: float | None = None,
                     data_dir="data/traces", model_files=None, **opts) -> Claim:
    it, sa, sm, lk = (th[k] for k in ("v1-iterations", "v1-skip-addr", "v1-skip-mm", "v1-lock-hold"))
    level = _scalar(th["skip-ratio"], "value") if level is None else level
    thread_text = (f"per {it.per}, {it.statistic} over walks ({it.version}, production): "
                   f"{_scalar(it, 'before'):,.0f} iterations, {_scalar(sa, 'before'):,.0f} address "
                   f"skips, {_scalar(sm, 'before'):,.0f} mm skips, {_scalar(lk, 'before'):,} ms → "
                   f"{_scalar(it, 'after'):,.0f} iterations, {_scalar(sa, 'after'):,.0f} address skips, "
                   f"{_scalar(sm, 'after'):,.0f} mm skips, {_scalar(lk, 'after'):,} ms")
    mb, ma = _simulated(model, PRODUCTION, BASELINE), _simulated(model, PRODUCTION, PGOFF)
    ms = _before_after(mb, ma, level, (BASELINE, PGOFF), durations=False)
    loops = _per_loop(mb, ma) if ms.supports is not None else None
    if loops is not None:    # the model also counts on the thread's unit
        ms = dataclasses.replace(ms, data={**ms.data, "per_loop": loops},
                                 text=f"{loops['text']}; {ms.text}", short=loops["short"])
    ks = _before_after(_measured(walks, PRODUCTION, BASELINE), _measured(walks, PRODUCTION, PGOFF),
                       level, (kernel_of(BASELINE), kernel_of(PGOFF)), durations=True)
    differences = [f"the kernel is not compared on the same unit: the thread's {f.version} "
                   f"figures are per {f.per} ({f.statistic} over walks), the tracepoint counts per "
                   f"walk" + ("" if loops else "; the model's walks carry no per-loop counters")
                   for f in (it, sa, sm, lk) if f.per != "walk"][:1]
    return Claim("production-v1", "production (v1): the walk's wasted iterations disappear",
                 {f.key: f for f in (it, sa, sm, lk)}, thread_text, ms, ks, differences,
                 decide(ms.supports, ks.supports, differences=differences),
                 f"model-vs-kernel.ipynb; {PRODUCTION}: {_files(model_files, PRODUCTION)}; "
                 f"{data_dir}/{PRODUCTION}/*/*/run-*/walks.csv",
                 thread_short=f"{_scalar(it, 'before'):,.0f} → {_scalar(it, 'after'):,.0f} "
                              f"per loop")


def claim_benchmark(walks, model, th: Thread, *, data_dir="data/traces", model_files=None,
                    **opts) -> Claim:
    """The v4 benchmark.  The thread's figures are per walk (one rmap/rmap_walk event; its 4
    events are two migration attempts of an unmap and a remap walk each): the maximum is the
    longest walk, the average is over the walks of whole migrations.  The book counts per
    migration (unmap + remap walk summed) and per walk kind, and sets beside the thread only
    the same statistics on the same unit: the longest walk, and the mean over the walks of
    whole migrations, as before/after ratios (the milliseconds here are TCG time)."""
    bmax, bavg, ev = th["v4-bench-max"], th["v4-bench-avg"], th["v4-bench-events"]
    amax, aavg = th["v5-bench-max"], th["v5-bench-avg"]
    before, after = _scalar(bmax, "before"), _scalar(amax, "after")
    avg_b, avg_a = _scalar(bavg, "before"), _scalar(aavg, "after")
    thread_text = (f"per {bmax.per} ({_scalar(ev, 'before'):,.0f} events, about two migrations): "
                   f"longest {before:,} ms, mean {avg_b:,} ms ({bmax.version}) → longest "
                   f"{after:,} ms, mean {avg_a:,} ms ({amax.version}): {before / after:,.0f}× "
                   f"(longest), {avg_b / avg_a:,.0f}× (mean)")
    thread_short = f"{before:,.0f} → {after:,} ms ({before / after:,.0f}×)"
    thread_data = {"max_ratio": before / after, "mean_ratio": avg_b / avg_a}
    sb, sp = _simulated(model, SEED, BASELINE), _simulated(model, SEED, PGOFF)
    if sb is None or sp is None:
        ms = _no_data()
    else:
        b, p = waste(sb), waste(sp)
        mb, mp = T.per_migration(sb), T.per_migration(sp)
        ib, ip = float(mb["iterations"].median()), float(mp["iterations"].median())
        ms = Side({"before": b, "after": p, "iterations_per_migration": (ib, ip),
                   "iterations_ratio": ib / max(ip, 1)}, p["waste_free"],
                  f"per migration (unmap + remap walk): {ib:,.0f} → {ip:,.0f} iterations "
                  f"({ib / max(ip, 1):,.0f}× fewer; at most {p['iterations_per_call_max']:,.0f} "
                  f"per rmap_one call, {p['skip_addr_max']:,} address skips), {BASELINE} → {PGOFF}",
                  f"{ib:,.0f} → {ip:,.0f} per migration")
    kb, kp = _measured(walks, SEED, BASELINE), _measured(walks, SEED, PGOFF)
    if not len(kb) or not len(kp):
        ks = _no_data()
    else:
        b, p = waste(kb), waste(kp)
        mb, mp = T.per_migration(kb), T.per_migration(kp)
        c = T.compare(mb["duration_ns"], mp["duration_ns"], **opts)
        ib, ip = float(mb["iterations"].median()), float(mp["iterations"].median())
        longest = float(kb["duration_ns"].max() / kp["duration_ns"].max())
        mean = float(kb["duration_ns"].mean() / kp["duration_ns"].mean())
        faster = bool(np.isfinite(c["ratio_low"]) and c["ratio_low"] > 1)
        ks = Side({"before": b, "after": p, "durations_per_migration": c, "migrations":
                   (len(mb), len(mp)), "iterations_per_migration": (ib, ip),
                   "longest_walk_ratio": longest, "mean_walk_ratio": mean},
                  p["waste_free"] and faster,
                  f"per migration ({len(mb):,} and {len(mp):,}): {ib:,.0f} → {ip:,.0f} iterations "
                  f"(at most {p['iterations_per_call_max']:,.0f} per rmap_one call, "
                  f"{p['skip_addr_max']:,} address skips); median {_ms(c['median_a'])} → "
                  f"{_ms(c['median_b'])}, {c['ratio']:,.0f}× ({c['ratio_low']:,.0f}–"
                  f"{c['ratio_high']:,.0f}); as the thread counts: longest walk {longest:,.0f}×, "
                  f"mean walk {mean:,.0f}× ({kernel_of(BASELINE)} → {kernel_of(PGOFF)}, TCG)",
                  f"{ib:,.0f} → {ip:,.0f} per migration; {longest:,.0f}× (TCG)")
    differences = []   # the speed-ups are TCG time against hardware: shown, not judged
    return Claim("v4-benchmark", f"the v4 benchmark's KSM walks: {before:,.0f} ms → under "
                 f"{math.ceil(after):,} ms, the loop's waste removed",
                 {f.key: f for f in (bmax, bavg, ev, amax, aavg)}, thread_text, ms, ks, differences,
                 decide(ms.supports, ks.supports, differences=differences),
                 f"skip-ratio.ipynb, kernel-traces.ipynb; {SEED}: "
                 f"{_files(model_files, SEED)}; {data_dir}/{SEED}/*/*/run-*/walks.csv",
                 thread_short=thread_short)


def _migrations(out: pd.DataFrame | None) -> dict | None:
    if out is None or not len(out):
        return None
    mig = out[out["op"] == MIGRATE]
    return {"migrations": len(mig), "moved": int((mig["result"] == MOVED).sum())}


def _mremap_side(counts: dict, names: dict) -> Side:
    """counts: strategy -> {migrations, moved} (or None)."""
    if any(counts.get(s) is None for s in (BASELINE, NAIVE, PGOFF)):
        return _no_data()
    ok = lambda c: c["migrations"] > 0 and c["moved"] == c["migrations"]   # noqa: E731
    supports = not ok(counts[NAIVE]) and ok(counts[BASELINE]) and ok(counts[PGOFF])
    text = ", ".join(f"{names[s]} {counts[s]['moved']:,}/{counts[s]['migrations']:,} {MOVED}"
                     for s in (NAIVE, PGOFF, BASELINE))
    short = ", ".join(f"{label} {counts[s]['moved']:,}/{counts[s]['migrations']:,}"
                      for s, label in ((NAIVE, "v1–v3"), (PGOFF, "v4"))) + " moved"
    return Side(dict(counts), supports, text, short)


def claim_mremap(outcomes, model_out, model, th: Thread, *, data_dir="data/traces",
                 model_files=None, **opts) -> Claim:
    counts = {s: _migrations(model_out.get((MREMAP, s))) for s in (BASELINE, NAIVE, PGOFF)}
    ms = _mremap_side(counts, {s: s for s in counts})
    w = model.get((MREMAP, NAIVE))
    if ms.supports is not None and w is not None:
        ms.data["naive_missed"] = int(w["missed"].sum())
        ms.text += f"; naive walks missed {ms.data['naive_missed']:,} mappings"
    mo = outcomes[outcomes["scenario"] == MREMAP] if len(outcomes) else outcomes
    kc = {s: _migrations(mo[mo["kernel"] == kernel_of(s)]) if len(mo) else None
          for s in (BASELINE, NAIVE, PGOFF)}
    ks = _mremap_side(kc, {s: kernel_of(s) for s in kc})
    return Claim("mremap", "v1–v3's query (address >> PAGE_SHIFT) misses a mremap()ed mapping, "
                 "so the KSM page cannot be migrated; v4's stored page offset finds it", {},
                 "Hugh Dickins on v3 (mremap-moved KSM pages not reclaimed); selftest ksm_and_mremap",
                 ms, ks, [], decide(ms.supports, ks.supports),
                 f"mremap-flaw.ipynb; {MREMAP}: {_files(model_files, MREMAP)}; "
                 f"{data_dir}/{MREMAP}/*/*/run-*/outcomes.csv",
                 thread_short="yes (Dickins, v3)")


def claim_fork(walks, model, th: Thread, *, data_dir="data/traces", model_files=None, **opts) -> Claim:
    fb, fp = _simulated(model, FORK, BASELINE), _simulated(model, FORK, PGOFF)
    if fb is None or fp is None:
        ms = _no_data()
    else:
        d = {"rmap_one_before": int(fb["rmap_one"].sum()), "rmap_one_after": int(fp["rmap_one"].sum()),
             "missed": int(fp["missed"].sum())}
        ms = Side(d, d["rmap_one_before"] == d["rmap_one_after"] and d["missed"] == 0,
                  f"rmap_one calls {d['rmap_one_before']:,} ({BASELINE}) vs {d['rmap_one_after']:,} "
                  f"({PGOFF}), {d['missed']:,} mappings missed",
                  f"rmap_one {d['rmap_one_before']:,} = {d['rmap_one_after']:,}")
    kb, kp = _measured(walks, FORK, BASELINE), _measured(walks, FORK, PGOFF)
    if not len(kb) or not len(kp):
        ks = _no_data()
    else:
        d = {"rmap_one_before": float(kb.groupby("run")["rmap_one"].sum().median()),
             "rmap_one_after": float(kp.groupby("run")["rmap_one"].sum().median()),
             "iterations_ratio": float(kb["iterations"].sum() / max(kp["iterations"].sum(), 1))}
        ks = Side(d, d["rmap_one_before"] == d["rmap_one_after"],
                  f"rmap_one calls per run {d['rmap_one_before']:,.0f} ({kernel_of(BASELINE)}) vs "
                  f"{d['rmap_one_after']:,.0f} ({kernel_of(PGOFF)}); {d['iterations_ratio']:,.0f}× "
                  "fewer iterations", f"rmap_one {d['rmap_one_before']:,.0f} = "
                                      f"{d['rmap_one_after']:,.0f}")
    return Claim("fork", "fork: the children's VMAs carry the parent's vm_pgoff, so the v4 query "
                 "still finds every mapping", {}, "review of v4 (fork); anon_vma_clone",
                 ms, ks, [], decide(ms.supports, ks.supports),
                 f"model-vs-kernel.ipynb; {FORK}: {_files(model_files, FORK)}; "
                 f"{data_dir}/{FORK}/*/*/run-*/walks.csv",
                 thread_short="review question")


def claim_control(walks, th: Thread, *, data_dir="data/traces", model_files=None, **opts) -> Claim:
    rows, supports, differences, texts = {}, [], [], []
    for page_type, scenario in CONTROLS.items():
        w = walks[(walks["scenario"] == scenario) & (walks["page_type"] == page_type)] \
            if len(walks) else walks
        # per migration (its walks summed), as the kernel-traces chapter: never the two walk
        # kinds pooled
        m = T.per_migration(w) if len(w) else w
        cc = T.kernel_comparison(m, by=["page_type"], a=kernel_of(BASELINE), b=kernel_of(PGOFF),
                                 **opts) if len(m) else None
        if cc is None or page_type not in cc.index:
            continue
        r = cc.loc[page_type]
        covered = bool(r["ratio_low"] <= 1 <= r["ratio_high"])
        close = bool(abs(r["ratio"] - 1) <= CONTROL_TOLERANCE)
        rows[page_type] = {"ratio": float(r["ratio"]), "low": float(r["ratio_low"]),
                           "high": float(r["ratio_high"]), "ci_contains_1": covered}
        supports.append(covered or close)
        if close and not covered:
            differences.append(f"{page_type}: a small resolved shift ({r['ratio']:.2f}×)")
        texts.append(f"{page_type}: duration ratio per migration {r['ratio']:.2f} "
                     f"({r['ratio_low']:.2f}–{r['ratio_high']:.2f})")
    ks = Side(rows, all(supports), "; ".join(texts) + f" ({kernel_of(BASELINE)}/"
              f"{kernel_of(PGOFF)}, TCG)", "ratio " + ", ".join(
                  f"{t} {r['ratio']:.2f}" for t, r in rows.items())) if rows else _no_data()
    ms = Side({}, None, "not modelled: rmap_walk_anon/rmap_walk_file query the page's index on "
                        "every kernel", "not modelled")
    return Claim("control", "walks of anonymous and file pages are not changed by the series "
                 "(control)", {}, "rmap_benchmark's anon and file cases", ms, ks, differences,
                 decide(None, ks.supports, differences=differences, needs=("kernel",)),
                 "kernel-traces.ipynb; " + ", ".join(f"{data_dir}/{s}/*/*/run-*/walks.csv"
                                                     for s in CONTROLS.values()), needs=("kernel",),
                 thread_short="benchmark's controls")


def evaluate(walks: pd.DataFrame, outcomes: pd.DataFrame, model: dict, model_out: dict, *,
             thread_file: str | Path | None = None, level: float | None = None,
             data_dir: str = "data/traces", model_files: dict | None = None,
             **opts) -> list[Claim]:
    """Every claim, in the book's order.  ``model``/``model_out``: simulated walks/outcomes by
    ``(scenario, strategy)``; ``level``: the skip ratio to test (default: the thread's);
    ``data_dir``/``model_files`` (scenario -> simulated walks files): how the source column
    names the files; ``opts``: confidence, resamples, seed of the bootstrap intervals."""
    th = thread(thread_file)
    kw = {"data_dir": data_dir, "model_files": model_files, **opts}
    return [claim_skip_ratio(walks, model, th, level=level, **kw),
            claim_production(walks, model, th, level=level, **kw),
            claim_benchmark(walks, model, th, **kw),
            claim_mremap(outcomes, model_out, model, th, **kw),
            claim_fork(walks, model, th, **kw),
            claim_control(walks, th, **kw)]


def summary_table(claims: list[Claim]) -> pd.DataFrame:
    """One row per claim: claim, thread, model, kernel, verdict (after a colon, why it holds
    only with a difference), source (notebook; files)."""
    rows = [{"claim": c.claim, "thread": c.thread_text,
             "model": c.model.text if c.model else "not modelled",
             "kernel": c.kernel.text,
             "verdict": c.verdict + (": " + "; ".join(c.reasons()) if c.reasons() else ""),
             "source": c.source} for c in claims]
    return pd.DataFrame(rows, columns=["claim", "thread", "model", "kernel", "verdict", "source"])


def verdict_table(claims: list[Claim]) -> pd.DataFrame:
    """The front page's table: one row per claim, a few words per cell (the claim, the
    verdict, then the thread's figure, the model's and the kernel's: the answer beside the
    claim, where a phone's first screen still shows it); :func:`summary_table` and
    :func:`details_markdown` carry the full numbers."""
    rows = [{"claim": c.label, "verdict": c.verdict, "thread": c.thread_short or c.thread_text,
             "model": (c.model.short or c.model.text) if c.model else "not modelled",
             "kernel (VM)": c.kernel.short or c.kernel.text}
            for c in claims]
    return pd.DataFrame(rows, columns=["claim", "verdict", "thread", "model", "kernel (VM)"])


def markdown_table(table: pd.DataFrame, bold: str | None = None) -> str:
    """A MyST (CommonMark pipe) table of ``table``'s strings; cells of column ``bold`` in
    bold (:func:`rmapwalk.analysis.tables.markdown`)."""
    return tables.markdown(table, bold=bold) + "\n"


def verdict_markdown(claims: list[Claim]) -> str:
    """:func:`verdict_table` as a MyST table, verdicts in bold."""
    return markdown_table(verdict_table(claims), bold="verdict")


def details_markdown(claims: list[Claim], level: int = 3) -> str:
    """Every claim in full: the thread's figures, the model's and the kernel's numbers, the
    verdict with its reasons, and where the numbers come from."""
    out = []
    for c in claims:
        reasons = c.reasons()
        out += [f"{'#' * level} {c.label}", "", f"*{c.claim}.*", "",
                f"- **Thread:** {c.thread_text}",
                f"- **Model:** {c.model.text if c.model else 'not modelled'}",
                f"- **Kernel (VM):** {c.kernel.text}",
                f"- **Verdict: {c.verdict}**" + (f" — {'; '.join(reasons)}" if reasons else ""),
                f"- **Source:** " + "; ".join(f"`{p.strip()}`" for p in c.source.split(";")), ""]
    return "\n".join(out)


def anon_vma_chains(scenario: str) -> int:
    """anon_vma_chains in the largest anon_vma once ``scenario`` has been replayed on the
    model (baseline): the number of chains one baseline ``anon_vma_interval_tree_foreach``
    loop over that anon_vma visits.  The tracepoint counts per walk, so the measured data
    cannot give it; the model can (its walks agree with the kernel's, model-vs-kernel)."""
    from .. import simulate   # noqa: PLC0415 (a replay, only when asked)
    from . import simulation as sim   # noqa: PLC0415
    k = simulate.replay(sim.load_scenario(scenario), BASELINE).kernel
    sizes = {id(avc.anon_vma): len(avc.anon_vma.rb_root)
             for mm in k.procs for vma in mm.vmas for avc in vma.anon_vma_chain}
    return max(sizes.values(), default=0)


def verdict_sentence(claims: list[Claim]) -> str:
    """One sentence for the front page: how many claims hold, hold with a difference, do not
    hold or lack data (the reasons are in the claim chapter)."""
    n = {v: sum(c.verdict == v for c in claims) for v in VERDICTS}
    parts = [f"**{n[HOLDS]} of the {len(claims)} claims hold** as stated"]
    if n[DIFFERENCE]:
        parts.append(f"{n[DIFFERENCE]} with a difference")
    for v in (DOES_NOT_HOLD, NO_DATA):
        if n[v]:
            parts.append(f"{n[v]}: {v}")
    if not n[DOES_NOT_HOLD]:
        parts.append("none fails")
    return "; ".join(parts) + "."
