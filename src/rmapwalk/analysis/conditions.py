"""Conditions: the v4 benchmark as posted against the reproduction's own setup (issue 10).

Reads the run folders ``data/conditions/runs/<setup>/<base>/<variant>/run-<k>/`` (written by
``rmapwalk conditions capture``) only through :func:`rmapwalk.dataset.runs`, with the setup
files ``data/conditions/<setup>.yaml`` as the committed "scenarios" and
``runs/dataset.yaml`` as the plan, so a run whose files, manifest or setup text changed is
refused, naming the file.

One boot runs the setup's rounds; each round is one benchmark run and ends in one *trigger*:
``move_pages(MPOL_MF_MOVE_ALL)`` of one KSM page, between trace markers.  Inside a trigger:

- an *attempt* is one ``try_to_migrate()`` walk (``rmap_one`` = ``try_to_migrate_one``,
  reason ``migrate_unmap``): mm/migrate.c ``migrate_folio_unmap()`` replaces the page's
  mappings by migration entries;
- it is followed by one ``remove_migration_ptes()`` walk (``remove_migration_pte``,
  ``migrate_remap``): on the *new* folio when the copy succeeded (``migrate_folio_move()``;
  another pfn), or on the *old* folio when the attempt failed and the mappings are put back
  (``migrate_folio_undo_src()``; the same pfn): a *failed attempt*, which migrate_pages()
  retries (its MIGRATE_ASYNC batch, then synchronously: ``migrate_pages_sync()``) and then
  gives up (move_pages() returns the number of pages not migrated);
- a failed attempt either *could not unmap* the folio or *could not copy* it.
  ``rmap_walk_ksm()`` ends a ``try_to_migrate()`` walk as soon as the folio is unmapped
  (``rwc->done``), inside its first pass; a walk that reached the second pass
  (``search_new_forks``, where every VMA of the rmap_item's own mm is an mm skip) found the
  folio still mapped after visiting every rmap_item: some mapping of the KSM page had no
  rmap_item on its stable node.  So: ``skip_mm > 0`` on the unmap walk of a single-process
  benchmark = *unmap incomplete*; otherwise the copy failed (the folio was unmapped, then
  ``move_to_new_folio()`` failed, e.g. on an unexpected reference count).

The events the posted benchmark printed are the ``page_type=ksm`` rmap_walk lines of its
trace; here, the KSM events of a trigger window (the window closes after the same 100 ms
sleep).  Durations are the tracepoint's ``duration_ns`` under QEMU TCG (emulated time):
compare kernels and setups, not milliseconds with the thread.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rmapwalk import dataset, kernels as kernel_list, paths
from rmapwalk.analysis import claim, tables

CONDITIONS = paths.DATA / "conditions"
RUNS = CONDITIONS / "runs"
KERNELS = kernel_list.variants()   # kernel-config/kernels.yaml: the captured variants, in order
# (setup, split after run=1?, ksmd running through the trigger?): posted first, own last
SETUPS = {"posted-benchmark": ("after run=1", "running"),
          "posted-split-ksmd-parked": ("after run=1", "parked (run=0)"),
          "own-split-ksmd-running": ("before MADV_MERGEABLE", "running"),
          "own-benchmark": ("before MADV_MERGEABLE", "parked (run=0)")}
POSTED, OWN = "posted-benchmark", "own-benchmark"
UNMAP, REMAP = "try_to_migrate_one", "remove_migration_pte"
EVENT_COLUMNS = ("seq", "step", "page_type", "rmap_one_fn", "iterations", "skip_addr",
                 "skip_mm", "rmap_one", "duration_ns", "pfn")
ROUND_COLUMNS = ("round", "full_scans_before", "full_scans_after", "pages_shared",
                 "pages_sharing", "move_pages", "node_before", "target", "node_after",
                 "pfn_before", "pfn_after", "pgmigrate_success", "pgmigrate_fail", "ksm_run")


def thread_figures() -> dict:
    """The posted benchmark's figures (v4 2/5: its KSM events, their max and avg in ms) from
    data/thread.yaml, the one file of the thread's numbers (rmapwalk.analysis.claim.thread)."""
    th = claim.thread()
    return {"events": int(th["v4-bench-events"].before), "max_ms": th["v4-bench-max"].before,
            "avg_ms": th["v4-bench-avg"].before}


def _read(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, keep_default_na=False)
    except (OSError, ValueError, EOFError) as e:
        raise dataset.DataIntegrityError([f"{path}: unreadable table: {e}"]) from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise dataset.DataIntegrityError([f"{path}: missing column(s) {', '.join(missing)}"])
    return df


def _numbers(df: pd.DataFrame, columns: tuple[str, ...], path: Path) -> pd.DataFrame:
    for c in columns:
        v = pd.to_numeric(df[c].replace("", np.nan), errors="coerce")
        bad = v.isna() & (df[c].astype(str) != "")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise dataset.DataIntegrityError([f"{path}: row {i + 2}: {c}={df[c].iloc[i]!r} is "
                                              "not a number"])
        df[c] = v
    return df


def load(root: str | Path = RUNS, setups: str | Path = CONDITIONS, *,
         include_unverified: bool = False) -> dict[str, pd.DataFrame]:
    """The verified runs as tables, each carrying setup, base, kernel, run: ``runs`` (one row
    a boot), ``events`` (every rmap_walk event; ``round`` is the trigger it fell in, NaN
    outside), ``rounds`` (what the program printed per round).  No runs at all is an empty
    ``runs`` table (the page says so)."""
    found = dataset.runs(Path(root), scenarios=Path(setups),
                         include_unverified=include_unverified)
    runs, events, rounds = [], [], []
    for r in found:
        key = {"setup": r.scenario, "base": r.base, "kernel": r.variant, "run": r.run}
        man = dataset.read_manifest(r.folder)
        runs.append({**key, "folder": str(r.folder), "verified": r.verified,
                     "host_seconds": (man.get("timing") or {}).get("host_wall_seconds")})
        p = r.folder / "events.csv.gz"
        e = _numbers(_read(p, EVENT_COLUMNS), ("seq", "step", "iterations", "skip_addr",
                                               "skip_mm", "rmap_one", "duration_ns", "pfn"), p)
        events.append(e.rename(columns={"step": "round"}).assign(**key))
        p = r.folder / "rounds.csv"
        rounds.append(_numbers(_read(p, ROUND_COLUMNS), ROUND_COLUMNS, p).assign(**key))
    if not runs:
        return {"runs": pd.DataFrame(columns=["setup", "base", "kernel", "run", "folder",
                                              "verified"]),
                "events": pd.DataFrame(columns=[*(c if c != "step" else "round"
                                                    for c in EVENT_COLUMNS),
                                                  "setup", "kernel", "run"]),
                "rounds": pd.DataFrame(columns=[*ROUND_COLUMNS, "setup", "kernel", "run"])}
    return {"runs": pd.DataFrame(runs), "events": pd.concat(events, ignore_index=True),
            "rounds": pd.concat(rounds, ignore_index=True)}


def attempts(events: pd.DataFrame) -> pd.DataFrame:
    """One row per migration attempt (a try_to_migrate walk of a KSM folio in a trigger) with
    the remove_migration_ptes walk that ended it: ``outcome`` ``moved`` (on another pfn: the
    new folio), ``restored`` (on the same pfn: the old mappings are put back) or ``open``
    (no remap walk followed in the trigger); ``unmapped`` False when the unmap walk reached
    its second pass (the folio stayed mapped: see the module docstring), ``found`` the
    mappings it found."""
    k = events[(events["page_type"] == "ksm") & events["round"].notna()]
    rows = []
    for key, g in k.sort_values("seq").groupby(["setup", "kernel", "run", "round"], sort=True):
        pending = None
        n = 0
        for e in g.itertuples():
            if e.rmap_one_fn == UNMAP:
                if pending is not None:
                    rows.append({**pending, "outcome": "open"})
                n += 1
                pending = {"setup": key[0], "kernel": key[1], "run": key[2],
                           "round": int(key[3]), "attempt": n, "pfn": int(e.pfn),
                           "unmap_iterations": int(e.iterations), "found": int(e.rmap_one),
                           "unmapped": int(e.skip_mm) == 0, "unmap_ms": e.duration_ns / 1e6}
            elif e.rmap_one_fn == REMAP and pending is not None:
                rows.append({**pending, "outcome": "moved" if int(e.pfn) != pending["pfn"]
                             else "restored", "remap_iterations": int(e.iterations),
                             "remap_ms": e.duration_ns / 1e6})
                pending = None
        if pending is not None:
            rows.append({**pending, "outcome": "open"})
    return pd.DataFrame(rows, columns=["setup", "kernel", "run", "round", "attempt", "pfn",
                                       "unmap_iterations", "found", "unmapped", "unmap_ms",
                                       "outcome",
                                       "remap_iterations", "remap_ms"])


def triggers(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per trigger (round): KSM walks by reason, attempts (failed, moved), what
    move_pages() returned and the page's node after, and what the posted benchmark's method
    prints: the count, maximum and average of the trigger's KSM events (TCG ms)."""
    ev = data["events"]
    k = ev[(ev["page_type"] == "ksm") & ev["round"].notna()]
    att = attempts(ev)
    keys = ["setup", "kernel", "run", "round"]
    out = data["rounds"][[*keys, "move_pages", "node_after", "target", "pgmigrate_success",
                          "pgmigrate_fail", "pages_sharing"]].copy()
    walks = k.groupby(keys).agg(
        ksm_events=("duration_ns", "size"), max_ms=("duration_ns", "max"),
        avg_ms=("duration_ns", "mean"),
        unmap_walks=("rmap_one_fn", lambda s: int((s == UNMAP).sum())),
        remap_walks=("rmap_one_fn", lambda s: int((s == REMAP).sum()))).reset_index()
    walks["max_ms"] /= 1e6
    walks["avg_ms"] /= 1e6
    a = att.assign(failed=att["outcome"] == "restored", moved=att["outcome"] == "moved",
                   unmap_incomplete=(att["outcome"] == "restored") & ~att["unmapped"]
                   .astype(bool)) \
        .groupby(keys).agg(attempts=("attempt", "size"), failed=("failed", "sum"),
                           unmap_incomplete=("unmap_incomplete", "sum"),
                           moved=("moved", "sum")).reset_index()
    out = out.merge(walks, on=keys, how="left").merge(a, on=keys, how="left")
    for c in ("ksm_events", "unmap_walks", "remap_walks", "attempts", "failed",
              "unmap_incomplete", "moved"):
        out[c] = out[c].fillna(0).astype(int)
    out["copy_failed"] = out["failed"] - out["unmap_incomplete"]
    out["migrated"] = (out["move_pages"] == 0) & (out["node_after"] == out["target"])
    return _order(out, keys)


def _order(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    rank = {"setup": {s: i for i, s in enumerate(SETUPS)},
            "kernel": {k: i for i, k in enumerate(KERNELS)}}
    return df.sort_values(keys, key=lambda s: s.map(rank[s.name]) if s.name in rank else s) \
        .reset_index(drop=True)


def table(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per setup and kernel: runs (boots), triggers, attempts and failed attempts (restored),
    triggers migrated / not migrated (move_pages() > 0), KSM walks, iterations per walk by
    reason (mean), the events the posted method prints per trigger (the counts seen), and
    the TCG ms of those events (max, average)."""
    t = triggers(data)
    att = attempts(data["events"])
    ev = data["events"]
    k = ev[(ev["page_type"] == "ksm") & ev["round"].notna()]
    rows = []
    for (s, kern), g in t.groupby(["setup", "kernel"]):
        kw = k[(k["setup"] == s) & (k["kernel"] == kern)]
        counts = g["ksm_events"].value_counts().sort_index()
        rows.append({
            "setup": s, "kernel": kern, "runs": g["run"].nunique(), "triggers": len(g),
            "attempts": int(g["attempts"].sum()), "failed": int(g["failed"].sum()),
            "copy_failed": int(g["copy_failed"].sum()),
            "unmap_incomplete": int(g["unmap_incomplete"].sum()),
            "migrated": int(g["migrated"].sum()),
            "not_migrated": int((g["move_pages"] > 0).sum()),
            "walks": len(kw),
            "iter_unmap": kw[kw["rmap_one_fn"] == UNMAP]["iterations"].mean(),
            "iter_remap": kw[kw["rmap_one_fn"] == REMAP]["iterations"].mean(),
            "events": ", ".join(f"{int(n)}×{c}" for n, c in counts.items()),
            "max_ms": kw["duration_ns"].max() / 1e6 if len(kw) else np.nan,
            "avg_ms": kw["duration_ns"].mean() / 1e6 if len(kw) else np.nan,
            "walks_per_migration": len(kw) / g["migrated"].sum() if g["migrated"].sum()
            else np.nan,
            "ms_per_trigger": kw["duration_ns"].sum() / 1e6 / len(g),
            "pgmigrate_fail": int(g["pgmigrate_fail"].sum()),
            "min_found": int(a["found"].min()) if len(a := att[(att["setup"] == s)
                                                               & (att["kernel"] == kern)]) else 0,
            "open": int(((att["setup"] == s) & (att["kernel"] == kern)
                         & (att["outcome"] == "open")).sum()),
        })
    cols = ["setup", "kernel", "runs", "triggers", "attempts", "failed", "copy_failed",
            "unmap_incomplete", "migrated", "not_migrated", "walks", "iter_unmap", "iter_remap",
            "events", "max_ms", "avg_ms", "walks_per_migration", "ms_per_trigger",
            "pgmigrate_fail", "min_found", "open"]
    return _order(pd.DataFrame(rows, columns=cols), ["setup", "kernel"])


def setups_table(tab: pd.DataFrame) -> pd.DataFrame:
    """The setups side by side, per kernel: when the region is split, ksmd at the trigger,
    and per trigger the attempts, failed attempts, migrations and KSM events."""
    t = tab.copy()
    t.insert(1, "split", t["setup"].map(lambda s: SETUPS.get(s, ("?", "?"))[0]))
    t.insert(2, "ksmd at trigger", t["setup"].map(lambda s: SETUPS.get(s, ("?", "?"))[1]))
    for c in ("attempts", "failed", "migrated", "walks"):
        t[f"{c}_per_trigger"] = t[c] / t["triggers"]
    return t[["setup", "split", "ksmd at trigger", "kernel", "triggers", "attempts_per_trigger",
              "failed_per_trigger", "migrated_per_trigger", "walks_per_trigger", "events",
              "iter_unmap", "iter_remap", "max_ms", "avg_ms"]]


def attempt_counts(trig: pd.DataFrame) -> pd.DataFrame:
    """Per setup and kernel: how many triggers made 1, 2, ... migration attempts."""
    if trig.empty:
        return pd.DataFrame(columns=["setup", "kernel"])
    c = trig.groupby(["setup", "kernel", "attempts"]).size().unstack(fill_value=0)
    c.columns = [f"{n} attempt{'s' if n != 1 else ''}" for n in c.columns]
    return _order(c.reset_index(), ["setup", "kernel"])


FORMATS = {"walks_per_migration": ",.1f", "ms_per_trigger": ",.1f", "iter_unmap": ",.0f", "iter_remap": ",.0f", "max_ms": ",.2f", "avg_ms": ",.2f",
           "attempts_per_trigger": ".2f", "failed_per_trigger": ".2f",
           "migrated_per_trigger": ".2f", "walks_per_trigger": ".2f"}
NAMES = {"iter_unmap": "iterations / try_to_migrate walk",
         "iter_remap": "iterations / remove_migration_ptes walk",
         "events": "KSM events per trigger (count×triggers)", "max_ms": "TCG ms max",
         "avg_ms": "TCG ms avg", "not_migrated": "move_pages() > 0",
         "failed": "failed attempts", "pgmigrate_fail": "pgmigrate_fail",
         "copy_failed": "failed: copy", "unmap_incomplete": "failed: unmap incomplete",
         "min_found": "fewest mappings an unmap walk found",
         "walks_per_migration": "KSM walks per migration",
         "ms_per_trigger": "TCG ms of KSM walks per trigger"}


def markdown(df: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    """A markdown table with the page's column names and number formats."""
    return tables.markdown(df, {**FORMATS, **(formats or {})}, NAMES)


def show(df: pd.DataFrame):
    """A table formatted for the page."""
    fm = {NAMES.get(c, c): "{:" + f + "}" for c, f in FORMATS.items() if c in df.columns}
    return df.rename(columns=NAMES).style.format(fm, na_rep="–").hide(axis="index")


def _cell(tab: pd.DataFrame, setup: str, kernel: str):
    t = tab[(tab["setup"] == setup) & (tab["kernel"] == kernel)]
    return t.iloc[0] if len(t) else None


def answer_text(tab: pd.DataFrame, trig: pd.DataFrame) -> str:
    """The chapter's answer, every number from the tables."""
    if tab.empty:
        return "No runs: no data under the conditions folder, nothing to say."
    b, o = _cell(tab, POSTED, "baseline"), _cell(tab, OWN, "baseline")
    thread = thread_figures()
    parts = []
    if b is not None:
        t = trig[(trig["setup"] == POSTED) & (trig["kernel"] == "baseline")]
        four = t[t["ksm_events"] == thread["events"]]
        parts.append(
            f"Under the posted conditions the baseline kernel migrated the page in "
            f"{b['migrated']} of {b['triggers']} triggers: {b['failed']} of its "
            f"{b['attempts']} attempts failed and move_pages() returned 1 ({b['not_migrated']} "
            f"times), which the posted benchmark ignores. {len(four)} of the "
            f"{b['triggers']} triggers printed {thread['events']} KSM events, the thread's count, "
            f"and in {int((four['moved'] == 0).sum())} of those {len(four)} the {thread['events']} "
            "events were "
            "two failed attempts, not a failed and a successful one.")
    others = [f"{k} {r['migrated']} of {r['triggers']} ({r['failed']} failed attempts)"
              for k in KERNELS[1:] if (r := _cell(tab, POSTED, k)) is not None]
    if others:
        parts.append("Same conditions, triggers migrated: " + ", ".join(others) + ".")
    if o is not None:
        parts.append(
            f"Under the reproduction's own setup (split first, ksmd parked) the baseline "
            f"migrated in {o['migrated']} of {o['triggers']} triggers, each in one attempt "
            f"({o['events']} events, count×triggers).")
    return " ".join(parts)


def events_text(tab: pd.DataFrame, events: pd.DataFrame | None = None) -> str:
    """How many events the posted benchmark's method prints on each kernel under the posted
    setup, and why: two walks per attempt, so twice the attempts of the trigger.  With
    ``events``, also how many KSM events fell outside every trigger window (the posted
    benchmark read its whole trace)."""
    rows = tab[tab["setup"] == POSTED]
    if rows.empty:
        return "No runs of the posted setup."
    parts = []
    for _, r in rows.iterrows():
        per = r["attempts"] / r["triggers"]
        parts.append(f"{r['kernel']}: {r['events']} (count×triggers), {r['attempts']} attempts "
                     f"in {r['triggers']} triggers ({per:.2f} per trigger), "
                     f"{r['failed']} failed")
    return ("The KSM events the posted method would print, per kernel under the posted "
            "conditions — " + "; ".join(parts) + ". Each attempt is two walks (try_to_migrate, "
            "then remove_migration_ptes on the new folio, or on the old one to put the "
            "mappings back), so a trigger prints twice its attempts: 2 when the first attempt "
            "moves the page, 4 when migrate_pages() tries twice (its MIGRATE_ASYNC pass, then "
            "the synchronous one) and both fail." + _outside(events))


def _outside(events: pd.DataFrame | None) -> str:
    if events is None or events.empty:
        return ""
    k = events[(events["page_type"] == "ksm") & events["setup"].eq(POSTED)]
    n = int(k["round"].isna().sum())
    return (f" Outside the trigger windows the posted setup's traces hold {n} KSM events, so "
            "reading the whole trace, as the posted benchmark did, prints the same counts."
            if n == 0 else f" Outside the trigger windows the posted setup's traces hold {n} "
            "KSM events more, which reading the whole trace would add.")


def race_text(tab: pd.DataFrame) -> str:
    """What ksmd running through the trigger does, per setup and kernel: failed attempts,
    triggers not migrated; and which of the two differences between the setups does it."""
    if tab.empty:
        return "No runs."
    parts = []
    for s in SETUPS:
        rows = tab[tab["setup"] == s]
        if rows.empty:
            continue
        split, ksmd = SETUPS[s]
        cells = "; ".join(f"{r['kernel']} {r['failed']} of {r['attempts']} attempts failed "
                          f"({r['copy_failed']} copy, {r['unmap_incomplete']} unmap "
                          f"incomplete), {r['not_migrated']} of {r['triggers']} triggers not "
                          "migrated" for _, r in rows.iterrows())
        parts.append(f"*{s}* (split {split}, ksmd {ksmd}): {cells}.")
    return " ".join(parts)


def thread_text(tab: pd.DataFrame, att: pd.DataFrame) -> str:
    """The thread's 4 events beside the posted setup on the baseline kernel: read as two
    attempts, the short walk's share of the long one in the thread, and here the
    iterations and TCG durations of the attempts whose unmap walk completed (TCG and the
    thread's hardware differ in speed, not in which walk is longer)."""
    b = att[(att["setup"] == POSTED) & (att["kernel"] == "baseline")]
    row = _cell(tab, POSTED, "baseline")
    if row is None or b.empty:
        return "No baseline runs of the posted setup: nothing to set beside the thread."
    c = b[b["unmapped"].astype(bool) & b["remap_ms"].notna()]
    thread = thread_figures()
    t_x = 2 * thread["avg_ms"] - thread["max_ms"]
    if c.empty:
        return (f"The thread: x = {t_x:.0f} ms; no attempt here unmapped the folio, so there "
                "is no pair of walks to set beside it.")
    it = c["unmap_iterations"].mean() / c["remap_iterations"].mean()
    ms = (c["unmap_ms"] / c["remap_ms"]).median()
    return (
        f"The thread reported {thread['events']} events, max {thread['max_ms']} ms, avg "
        f"{thread['avg_ms']} ms. Read as two attempts of two walks each, (x + "
        f"{thread['max_ms']}) / 2 = {thread['avg_ms']} gives x = {t_x:.0f} ms: the short walk "
        f"takes {t_x / thread['max_ms']:.2f} of the long one. Here, in the {len(c)} attempts on "
        f"the baseline under the posted conditions whose try_to_migrate walk unmapped the "
        f"folio (it stops at the page's last mapping, inside its first pass), that walk made "
        f"{it:.2f} of the iterations of the remove_migration_ptes walk that followed it (two "
        f"full passes), and took {ms:.2f} of its TCG time (median): the thread's two lengths "
        f"are an unmap walk and a remap walk, and its 4 events two attempts.")


def tcg_text(events: pd.DataFrame) -> str:
    """How much TCG time one and the same walk takes from boot to boot: the baseline's
    remove_migration_ptes walks with the most iterations (every rmap_item, both passes),
    fastest and slowest, over all setups."""
    k = events[(events["page_type"] == "ksm") & events["round"].notna()
               & (events["kernel"] == "baseline") & (events["rmap_one_fn"] == REMAP)]
    if k.empty:
        return ""
    same = k[k["iterations"] == k["iterations"].max()]
    lo, hi = same["duration_ns"].min() / 1e6, same["duration_ns"].max() / 1e6
    return (f"The same walk — the baseline's remove_migration_ptes walk over every rmap_item, "
            f"{int(same['iterations'].iloc[0]):,} iterations, {len(same)} times — took from "
            f"{lo:,.0f} to {hi:,.0f} TCG ms ({hi / lo:.1f}×): TCG time follows the host's load "
            "(other VMs ran beside these boots), so the chapter compares counts, and durations "
            "only within one trigger.")


def figure(trig: pd.DataFrame, att: pd.DataFrame):
    """Left: attempts per trigger, failed and successful, per setup and kernel.  Right: TCG
    ms of each KSM walk in the triggers of the posted setup, by kernel and walk (log)."""
    import matplotlib.pyplot as plt  # noqa: PLC0415
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    labels, failed, moved, other, unmap = [], [], [], [], []
    for s in SETUPS:
        for k in KERNELS:
            g = trig[(trig["setup"] == s) & (trig["kernel"] == k)]
            if g.empty:
                continue
            labels.append(f"{s}\n{k}")
            failed.append(g["copy_failed"].mean())
            unmap.append(g["unmap_incomplete"].mean())
            moved.append(g["moved"].mean())
            other.append((g["attempts"] - g["failed"] - g["moved"]).mean())
    x = np.arange(len(labels))
    ax.bar(x, moved, color="tab:green", label="moved the page")
    ax.bar(x, failed, bottom=moved, color="tab:red", label="failed: copy (mappings restored)")
    ax.bar(x, unmap, bottom=np.add(moved, failed), color="tab:orange",
           label="failed: unmap incomplete")
    ax.bar(x, other, bottom=np.add(np.add(moved, failed), unmap), color="tab:gray",
           label="no remap walk")
    ax.set_xticks(x, labels, rotation=90, fontsize=7)
    ax.set_ylabel("attempts per trigger (mean)")
    ax.margins(y=0.12)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    p = att[att["setup"] == POSTED]
    for i, k in enumerate(KERNELS):
        g = p[p["kernel"] == k]
        for dx, col, c in ((-0.15, "unmap_ms", "tab:blue"), (0.15, "remap_ms", "tab:orange")):
            v = g[col].dropna().to_numpy()
            bx.scatter(np.full(len(v), i + dx), v, s=12, color=c,
                       label=(("try_to_migrate", "remove_migration_ptes")[dx > 0]
                              if i == 0 else None))
    if len(p) and (p[["unmap_ms", "remap_ms"]].to_numpy(dtype=float) > 0).any():
        bx.set_yscale("log")
    bx.set_xticks(range(len(KERNELS)), KERNELS)
    bx.set_ylabel("TCG ms per KSM walk (posted setup)")
    bx.legend(fontsize=7)
    bx.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    """``python -m rmapwalk.analysis.conditions [RUNS]``: print the per-setup table."""
    import sys  # noqa: PLC0415
    argv = sys.argv[1:] if argv is None else argv
    data = load(Path(argv[0]) if argv else RUNS)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    print(table(data).to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
