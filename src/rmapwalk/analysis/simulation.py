"""Simulation runs kept in files, and the tables the book reads from them.

Replaying a scenario is the expensive step (building 100,000 VMAs and letting ksmd merge
them takes tens of seconds in Python), so :func:`run` writes each replay to files under
``build/analysis/`` (``<scenario>-<strategy>[-ref]-<sha12>.walks.csv`` with the shared
walks columns plus ``strategy``, ``missed``, ``touched``; ``.outcomes.csv`` with the shared
outcome columns, in the vocabulary of :data:`rmapwalk.contract.OUTCOMES`; ``.json`` with
the provenance: scenario sha256, a hash of the model's source, wall time) and reads them
back next time.  A file is reused only if the scenario text and the model source are the
ones that made it.  The sweep and the cost model write their tables as CSV files too; the
notebooks plot from those files.

Strategies are the kernels (the model's one list, :data:`rmapwalk.model.ksm.STRATEGIES`):
``baseline`` queries ``[0, ULONG_MAX]``, ``naive`` ``[address >> PAGE_SHIFT]`` (v1-v3),
``pgoff`` the stored page index (v4).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .. import paths
from .. import scenario as sc
from ..contract import COLUMNS, COUNTERS, SHARED_OUTCOME_COLUMNS, SIMULATED_COLUMNS, write_csv
from ..model.ksm import STRATEGIES
from ..simulate import outcome_rows, replay
from .params import check_choice
from .scenarios import split_region_scenario

# How migrations ended, as columns of the strategy and mremap tables: the results of a
# migrate outcome (contract.OUTCOMES), "error" being move_pages()' per-page status.
MIGRATE_RESULTS = ("moved", "stayed", "not-migrated", "error")
# Rows of the mremap table: pages of regions made by mremap, and the others.
PAGE_KINDS = ("mremapped", "in place")
CACHE = paths.BUILD / "analysis"
EXTRA = (*SIMULATED_COLUMNS, "touched")
_SRC = Path(__file__).resolve().parents[1]


def code_version() -> str:
    """sha256 (12 hex) of the sources a replay depends on: the model, the scenario reader
    and the replay loop.  Changing any of them invalidates every cached run."""
    h = hashlib.sha256()
    files = sorted((_SRC / "model").glob("*.py")) + [_SRC / "simulate.py", _SRC / "scenario.py",
                                                     _SRC / "contract.py"]
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def load_scenario(name: str, parameter: str = "scenario") -> sc.Scenario:
    """A scenario of ``data/scenarios/`` by name (or a path); ValueError names the parameter."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"parameter {parameter!r}: expected a scenario name, got {name!r}")
    path = paths.scenario_path(name)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in paths.SCENARIOS.glob("*.yaml")))
        raise ValueError(f"parameter {parameter!r}: unknown scenario {name!r} "
                         f"(no {path}); expected one of {known}")
    try:
        return sc.load(path)
    except sc.ScenarioError as e:
        raise ValueError(f"parameter {parameter!r}: {e}") from None


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def run_files(scn: sc.Scenario, strategy: str, *, fast: bool = True,
              cache_dir: Path | None = None) -> dict[str, Path]:
    """Where the replay of ``scn`` under ``strategy`` is kept (files may not exist yet)."""
    base = Path(cache_dir or CACHE) / f"{scn.name}-{strategy}{'' if fast else '-ref'}-{scn.sha256[:12]}"
    return {"walks": base.with_name(base.name + ".walks.csv"),
            "outcomes": base.with_name(base.name + ".outcomes.csv"),
            "meta": base.with_name(base.name + ".json")}


def _fresh(meta_path: Path, scn: sc.Scenario) -> bool:
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    return meta.get("sha256") == scn.sha256 and meta.get("code") == code_version()


def run(scn: sc.Scenario, strategy: str, *, fast: bool = True,
        cache_dir: Path | None = None) -> dict[str, Path]:
    """Replay ``scn`` under ``strategy`` unless its files are there and current; return them.
    ``fast=False`` uses the reference walk node by node, which fills ``touched`` (nodes of
    the interval tree the queries dereferenced) but costs O(chains) Python per rmap_item."""
    check_choice(strategy, "strategy", STRATEGIES)
    files = run_files(scn, strategy, fast=fast, cache_dir=cache_dir)
    if _fresh(files["meta"], scn):
        return files
    files["walks"].parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = replay(scn, strategy, fast=fast)
    wall = time.perf_counter() - t0
    write_csv(files["walks"], [{k: w[k] for k in (*COLUMNS, *EXTRA)} for w in result.walks],
              (*COLUMNS, *EXTRA))
    write_csv(files["outcomes"], outcome_rows(result), SHARED_OUTCOME_COLUMNS)
    meta = {"scenario": scn.name, "path": scn.path, "sha256": scn.sha256, "strategy": strategy,
            "fast": fast, "code": code_version(), "wall_s": round(wall, 3),
            "params": scn.params, "description": scn.description,
            "made_by": "rmapwalk.analysis.simulation.run"}
    _atomic_write(files["meta"], json.dumps(meta, indent=1) + "\n")   # written last: commit mark
    return files


def _run_job(job) -> None:
    scn, strategy, fast, cache_dir = job
    run(scn, strategy, fast=fast, cache_dir=cache_dir)


def run_all(jobs: list[tuple[sc.Scenario, str]], *, fast: bool = True,
            cache_dir: Path | None = None, workers: int | None = None) -> None:
    """Make sure every (scenario, strategy) run is in files, running the missing ones in
    ``workers`` processes (default: the CPUs), biggest first."""
    todo = [(s, st) for s, st in jobs if not _fresh(run_files(s, st, fast=fast, cache_dir=cache_dir)["meta"], s)]
    workers = workers or os.cpu_count() or 1
    if len(todo) <= 1 or workers == 1:
        for s, st in todo:
            run(s, st, fast=fast, cache_dir=cache_dir)
        return
    todo.sort(key=lambda j: -j[0].params.get("vmas", 0) * (1 + j[0].params.get("children", 0)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_run_job, [(s, st, fast, cache_dir) for s, st in todo]))


def read_walks(scn: sc.Scenario, strategy: str, *, fast: bool = True,
               cache_dir: Path | None = None) -> pd.DataFrame:
    files = run(scn, strategy, fast=fast, cache_dir=cache_dir)
    return pd.read_csv(files["walks"], dtype={"region": str})


def read_outcomes(scn: sc.Scenario, strategy: str, *, fast: bool = True,
                  cache_dir: Path | None = None) -> pd.DataFrame:
    files = run(scn, strategy, fast=fast, cache_dir=cache_dir)
    return pd.read_csv(files["outcomes"], dtype={"region": str, "errno": str},
                       keep_default_na=False)


def summarize(walks: pd.DataFrame) -> dict:
    """The counters of a walks table summed, with the skip ratio (address skips / iterations)
    and the iterations per walk."""
    out = {"walks": len(walks)}
    for key in (*COUNTERS, "missed"):
        out[key] = int(walks[key].sum()) if len(walks) else 0
    out["skip_ratio"] = out["skip_addr"] / out["iterations"] if out["iterations"] else 0.0
    out["iterations_per_walk"] = out["iterations"] / out["walks"] if out["walks"] else 0.0
    return out


def strategy_table(scn: sc.Scenario, strategies=STRATEGIES, *, cache_dir: Path | None = None,
                   workers: int | None = None) -> pd.DataFrame:
    """One row per strategy: summed counters, skip ratio, iterations per walk, and how the
    scenario's migrations ended (one column per result of :data:`MIGRATE_RESULTS`)."""
    strategies = [check_choice(s, "strategies", STRATEGIES) for s in strategies]
    run_all([(scn, s) for s in strategies], cache_dir=cache_dir, workers=workers)
    rows = []
    for s in strategies:
        row = {"strategy": s, **summarize(read_walks(scn, s, cache_dir=cache_dir))}
        out = read_outcomes(scn, s, cache_dir=cache_dir)
        mig = out[out["op"] == "migrate"]
        row.update(_migrate_counts(mig))
        rows.append(row)
    return pd.DataFrame(rows).set_index("strategy")


def _migrate_counts(mig: pd.DataFrame) -> dict[str, int]:
    return {r: int((mig["result"] == r).sum()) for r in MIGRATE_RESULTS}


def moved_regions(scn: sc.Scenario) -> set[str]:
    """Regions created by ``mremap`` (their VMAs keep the vm_pgoff of the old address)."""
    return {s["to"] for s in scn.steps if s.kind == "mremap"}


def mremap_table(scn: sc.Scenario, strategies=STRATEGIES, *, cache_dir: Path | None = None,
                 workers: int | None = None) -> pd.DataFrame:
    """Per strategy and page kind (``mremapped``: in a region made by mremap, or ``in place``):
    walks, mappings the
    walks missed, and how the migrations ended (one column per result of
    :data:`MIGRATE_RESULTS`)."""
    strategies = [check_choice(s, "strategies", STRATEGIES) for s in strategies]
    run_all([(scn, s) for s in strategies], cache_dir=cache_dir, workers=workers)
    moved = moved_regions(scn)
    rows = []
    for s in strategies:
        walks = read_walks(scn, s, cache_dir=cache_dir)
        out = read_outcomes(scn, s, cache_dir=cache_dir)
        for kind in PAGE_KINDS:
            in_kind = (lambda df: df["region"].isin(moved)) if kind == "mremapped" else \
                (lambda df: ~df["region"].isin(moved))
            w = walks[in_kind(walks)]
            o = out[in_kind(out) & (out["op"] == "migrate")]
            if not len(o) and not len(w):
                continue
            rows.append({"strategy": s, "pages": kind, "migrations": len(o), **_migrate_counts(o),
                         "walks": len(w), "missed": int(w["missed"].sum()),
                         "walks_missing": int((w["missed"] > 0).sum()),
                         "iterations": int(w["iterations"].sum())})
    return pd.DataFrame(rows).set_index(["strategy", "pages"])


def _table_path(kind: str, spec: dict, cache_dir: Path | None) -> Path:
    digest = hashlib.sha256(json.dumps({**spec, "code": code_version()}, sort_keys=True).encode())
    return Path(cache_dir or CACHE) / f"{kind}-{digest.hexdigest()[:12]}.csv"


def sweep(vmas: list[int], children: list[int], *, max_page_sharing: int = 256,
          cache_dir: Path | None = None, workers: int | None = None) -> Path:
    """The parameter-space map: for every (VMAs per anon_vma, forked children) cell, the
    seed-benchmark shape (:func:`split_region_scenario`, children merged again) and one full
    ``idle`` walk of page 0, under ``baseline`` and ``pgoff``.  Writes one row per cell to a
    CSV file and returns its path; runs only what is not in files yet.

    Columns: ``vmas``, ``children``, ``chains`` (anon_vma_chains in the parent's anon_vma:
    each child's VMAs are linked into it too), then per strategy the walk's counters
    (``baseline_iterations`` ...), ``skip_ratio`` (baseline address skips / iterations),
    ``ratio`` (baseline / pgoff iterations) and ``rmap_items`` (rmap_items of the walked KSM
    page, from the pgoff walk: each item visits its own mapping in one of the two passes).
    """
    spec = {"vmas": list(vmas), "children": list(children), "max_page_sharing": max_page_sharing}
    out = _table_path("sweep", spec, cache_dir)
    if out.exists():
        return out
    cells = [(n, c, split_region_scenario(n, c, max_page_sharing=max_page_sharing))
             for n in vmas for c in children]
    run_all([(s, st) for _, _, s in cells for st in ("baseline", "pgoff")],
            cache_dir=cache_dir, workers=workers)
    rows = []
    for n, c, scn in cells:
        row = {"vmas": n, "children": c, "chains": n * (c + 1)}
        for st in ("baseline", "pgoff"):
            w = read_walks(scn, st, cache_dir=cache_dir)
            if len(w) != 1:
                raise RuntimeError(f"{scn.name} {st}: expected one idle walk, got {len(w)}")
            for key in (*COUNTERS, "missed"):
                row[f"{st}_{key}"] = int(w[key].iloc[0])
        row["skip_ratio"] = row["baseline_skip_addr"] / row["baseline_iterations"]
        row["ratio"] = row["baseline_iterations"] / row["pgoff_iterations"]
        rows.append(row)
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out, pd.DataFrame(rows).to_csv(index=False))
    return out


def cost_model(vmas: list[int], children: list[int], *, sharers: int = 2,
               cache_dir: Path | None = None, workers: int | None = None) -> Path:
    """Nodes of the interval tree touched per query, by the reference walk (``fast=False``).

    Each cell is the split-region shape with ``sharers`` identical pages (one KSM page with
    ``sharers`` rmap_items of the parent) and ``children`` forks that are not merged again,
    so the walk makes exactly ``2 * sharers`` tree queries (two passes) and a ``pgoff``
    query matches ``k = children + 1`` chains (the parent's and each child's VMA carry the
    same vm_pgoff).  Writes one row per (cell, strategy) and returns the CSV path; columns
    ``vmas``, ``children``, ``chains``, ``k``, ``strategy``, ``queries``, ``touched``,
    ``iterations``, ``touched_per_query``."""
    spec = {"vmas": list(vmas), "children": list(children), "sharers": sharers}
    out = _table_path("cost", spec, cache_dir)
    if out.exists():
        return out
    cells = [(n, c, split_region_scenario(n, c, sharers=min(sharers, n), merge_children=False))
             for n in vmas for c in children if n >= 2]
    run_all([(s, st) for _, _, s in cells for st in ("baseline", "pgoff")], fast=False,
            cache_dir=cache_dir, workers=workers)
    rows = []
    for n, c, scn in cells:
        for st in ("baseline", "pgoff"):
            w = read_walks(scn, st, fast=False, cache_dir=cache_dir)
            queries = 2 * min(sharers, n)
            rows.append({"vmas": n, "children": c, "chains": n * (c + 1), "k": c + 1,
                         "strategy": st, "queries": queries, "touched": int(w["touched"].sum()),
                         "iterations": int(w["iterations"].sum()),
                         "touched_per_query": w["touched"].sum() / queries})
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out, pd.DataFrame(rows).to_csv(index=False))
    return out


def _lstsq(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares on relative errors (rows divided by y): the points span four decades,
    and plain least squares would fit the largest n only.  R^2 is the ordinary one."""
    coef, *_ = np.linalg.lstsq(X / y[:, None], np.ones_like(y), rcond=None)
    resid = y - X @ coef
    ss = float(((y - y.mean()) ** 2).sum())
    return coef, (1 - float((resid ** 2).sum()) / ss) if ss else 1.0


def fit_cost(table: pd.DataFrame) -> dict:
    """Least-squares fits (relative errors) of nodes touched per query: ``baseline = a*n + b`` and
    ``pgoff = a*log2(n) + b*k + c`` (the ``k`` term only when k varies), n = chains.
    Returns ``{strategy: {"coef": {...}, "r2": float}}``."""
    fits = {}
    b = table[table["strategy"] == "baseline"]
    coef, r2 = _lstsq(np.column_stack([b["chains"], np.ones(len(b))]).astype(float),
                      b["touched_per_query"].to_numpy(float))
    fits["baseline"] = {"coef": {"n": coef[0], "1": coef[1]}, "r2": r2}
    p = table[table["strategy"] == "pgoff"]
    cols, names = [np.log2(p["chains"].to_numpy(float))], ["log2n"]
    if p["k"].nunique() > 1:
        cols.append(p["k"].to_numpy(float))
        names.append("k")
    cols.append(np.ones(len(p)))
    names.append("1")
    coef, r2 = _lstsq(np.column_stack(cols), p["touched_per_query"].to_numpy(float))
    fits["pgoff"] = {"coef": dict(zip(names, coef)), "r2": r2}
    return fits


def predict_cost(fits: dict, strategy: str, chains: np.ndarray, k: np.ndarray | float = 1) -> np.ndarray:
    c = fits[strategy]["coef"]
    chains = np.asarray(chains, float)
    if strategy == "baseline":
        return c["n"] * chains + c["1"]
    return c["log2n"] * np.log2(chains) + c.get("k", 0.0) * np.asarray(k, float) + c["1"]


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def threshold_vmas(table: pd.DataFrame, level: float = 0.999) -> int | None:
    """The smallest VMAs per anon_vma in the sweep whose every cell reaches ``level``."""
    ok = table.groupby("vmas")["skip_ratio"].min()
    hit = ok[ok >= level]
    return int(hit.index.min()) if len(hit) else None


display_path = paths.shown   # ``path`` relative to the repository (captions), as notebooks call it


def walks_files(scn: sc.Scenario, strategies=STRATEGIES, *, fast: bool = True,
                cache_dir: Path | None = None) -> str:
    """The walks files of a scenario's runs, for a caption: ``dir/{a,b,c}`` style."""
    names = [run_files(scn, s, fast=fast, cache_dir=cache_dir)["walks"] for s in strategies]
    return ", ".join(display_path(n) for n in names)
