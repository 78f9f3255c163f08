"""Shrink a scenario that disagrees on a kernel to the few steps that matter.

A candidate is ``(steps, max_page_sharing)`` (steps as ``[(kind, fields)]``, fields with
``proc`` when not 0).  :func:`minimize` asks ``check(candidates) -> [bool]`` whether each
candidate still disagrees (one call per round, so that the caller can capture a whole round in
one VM boot), and stops after ``budget`` candidates were checked.  Candidates that do not
load through :func:`rmapwalk.scenario.loads` are never checked (they cost nothing).

Rounds, cheapest first:

1. cut the steps after the first disagreeing step (walks at step S depend only on steps <= S);
2. remove one step at a time (each with what depends on it: the steps of a region whose
   ``mmap`` or creating ``mremap`` goes -- also those moving onto it (``to``) or mapping after
   it (``after``) --, the steps of the processes whose ``fork`` goes, later processes
   renumbered), all in one round; then all the removable steps together, or half of them;
3. shrink: one page per walk step, one child per fork, one full scan per ``ksm_merge``,
   regions cut to the pages the steps use, ``max_page_sharing`` 2;

and again from 2 while a round made progress and budget is left.
"""
from __future__ import annotations

from typing import Callable

from rmapwalk import scenario as sc

Steps = list           # [(kind, fields)]
Candidate = tuple      # (steps, max_page_sharing or None)


def remove_steps(steps: Steps, drop: set[int]) -> Steps:
    """``steps`` without the indexes in ``drop`` (0-based) and what depends on them."""
    drop = set(drop)
    while True:
        before = len(drop)
        dead_procs: set[int] = set()
        dead_regions: set[str] = set()
        created: set[str] = set()
        next_old = 1
        for i, (kind, f) in enumerate(steps):
            if f.get("proc", 0) in dead_procs or dead_regions & {
                    f.get("region"), f.get("to"), f.get("after")}:
                drop.add(i)
            if kind == "fork":
                ids = set(range(next_old, next_old + f["children"]))
                next_old += f["children"]
                if i in drop:
                    dead_procs |= ids
            creates = f["region"] if kind == "mmap" else \
                f["to"] if kind == "mremap" and f["to"] not in created else None
            if creates is not None:
                created.add(creates)
                if i in drop:
                    dead_regions.add(creates)
        if len(drop) == before:
            break
    mapping = {0: 0}
    next_old = next_new = 1
    for i, (kind, f) in enumerate(steps):
        if kind == "fork":
            for j in range(f["children"]):
                if i not in drop:
                    mapping[next_old + j] = next_new
                    next_new += 1
            next_old += f["children"]
    out = []
    for i, (kind, f) in enumerate(steps):
        if i in drop:
            continue
        f = dict(f)
        p = mapping[f.pop("proc", 0)]
        if p:
            f["proc"] = p
        out.append((kind, f))
    return out


def _drop_child(steps: Steps, i: int) -> Steps:
    """Fork step ``i`` makes one child fewer: the last one goes, with its steps (a fork of k
    children is a fork of k-1 then a fork of 1 by the same process: same numbering)."""
    kind, f = steps[i]
    split = [*steps[:i], (kind, {**f, "children": f["children"] - 1}),
             (kind, {**f, "children": 1}), *steps[i + 1:]]
    return remove_steps(split, {i + 1})


def _regions_used(steps: Steps) -> dict[str, int]:
    """Region -> pages the steps name explicitly (1 + the highest page); a whole-region
    ``fill``, ``pages: all`` and the repeats of a strided ``mprotect`` follow the region's
    size, so they need only one page."""
    used: dict[str, int] = {}
    for kind, f in steps:
        r = f.get("region")
        if r is None or kind == "mmap":
            continue
        if isinstance(f.get("pages"), list):
            top = max(f["pages"]) + 1
        elif f.get("pages") == "all" or (kind == "fill" and "pages" not in f):
            top = f.get("start", 0) + 1
        else:
            top = f.get("start", 0) + max(f.get("pages", 1), f.get("new_pages", 0))
        used[r] = max(used.get(r, 0), top)
        if kind == "mremap" and "to_page" in f:     # onto an existing region
            used[f["to"]] = max(used.get(f["to"], 0), f["to_page"] + f["pages"])
    return used


def shrink_candidates(steps: Steps, mps, focus: dict | None) -> list[Candidate]:
    """One-change shrinks of ``steps`` (see the module docstring)."""
    out: list[Candidate] = []
    for i, (kind, f) in enumerate(steps):
        if kind in ("migrate", "idle"):
            pages = f["pages"]
            want = None
            if focus and focus.get("region") == f["region"] and i + 1 == focus.get("step"):
                want = [focus["page"]]
            if pages == "all" or (isinstance(pages, list) and len(pages) > 1):
                one = want or ([pages[0]] if isinstance(pages, list) else [0])
                out.append(([*steps[:i], (kind, {**f, "pages": one}), *steps[i + 1:]], mps))
        elif kind == "fork" and f["children"] > 1:
            out.append((_drop_child(steps, i), mps))
        elif kind == "ksm_merge" and f["full_scans"] > 1:
            out.append(([*steps[:i], (kind, {**f, "full_scans": 1}), *steps[i + 1:]], mps))
    used = _regions_used(steps)
    for i, (kind, f) in enumerate(steps):
        need = max(1, used.get(f.get("region"), 1))
        if kind == "mmap" and need < f["pages"]:
            for n in sorted({need, max(need, f["pages"] // 2)}):
                out.append(([*steps[:i], (kind, {**f, "pages": n}), *steps[i + 1:]], mps))
    if mps not in (None, 2):
        out.append((steps, 2))
    return out


def minimize(steps: Steps, mps, check: Callable[[list[Candidate]], list[bool]],
             valid: Callable[[Candidate], bool], first_step: int | None = None,
             focus: dict | None = None, budget: int = 30) -> tuple[Candidate, int]:
    """The smallest candidate found that still disagrees, and the checks spent."""
    spent = 0
    best: Candidate = (list(steps), mps)

    def run(cands: list[Candidate]) -> list[tuple[Candidate, bool]]:
        nonlocal spent
        ok = [c for c in cands if valid(c)][:max(0, budget - spent)]
        if not ok:
            return []
        spent += len(ok)
        return list(zip(ok, check(ok)))

    def size(c: Candidate) -> tuple:
        pages = sum(f.get("pages", 0) for k, f in c[0] if k == "mmap")
        walk_pages = sum(len(f["pages"]) if isinstance(f["pages"], list) else 64
                         for k, f in c[0] if k in ("migrate", "idle"))
        return (len(c[0]), pages + walk_pages, c[1] or 256)

    if first_step is not None and first_step < len(best[0]):
        cut = (best[0][:first_step], best[1])
        for c, bad in run([cut]):
            if bad:
                best = c
    progress = True
    while progress and spent < budget:
        progress = False
        steps_now, m = best
        singles = {}
        for i in range(len(steps_now) - 1):       # the last step is where it disagrees
            c = (remove_steps(steps_now, {i}), m)
            if c[0] and c[0][-1] == steps_now[-1] and valid(c):
                singles[i] = c
        results = run(list(singles.values()))
        removable = [i for (i, c), (_, bad) in zip(singles.items(), results) if bad]
        good = [c for c, bad in results if bad]
        if removable and len(removable) > 1 and spent < budget:
            trial = [(remove_steps(steps_now, set(removable)), m)]
            half = removable[:len(removable) // 2], removable[len(removable) // 2:]
            trial += [(remove_steps(steps_now, set(h)), m) for h in half if len(h) > 1]
            trial = [c for c in trial if c[0] and c[0][-1] == steps_now[-1]]
            good += [c for c, bad in run(trial) if bad]
        if good:
            cand = min(good, key=size)
            if size(cand) < size(best):
                best, progress = cand, True
        if spent < budget:
            shrinks = shrink_candidates(best[0], best[1], focus)
            good = [c for c, bad in run(shrinks) if bad]
            if good:
                cand = min(good, key=size)
                if size(cand) < size(best):
                    best, progress = cand, True
    return best, spent


def loads_ok(text: str) -> bool:
    try:
        sc.loads(text)
    except sc.ScenarioError:
        return False
    return True
