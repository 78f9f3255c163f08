"""Scenarios built by program, in the same YAML format as ``data/scenarios/*.yaml``.

Each builder writes scenario text and hands it to :func:`rmapwalk.scenario.loads`, the one
reader of the format, so a generated scenario is validated like a file and could be saved
next to the others and replayed in the VM unchanged.  The arguments a builder was called
with are kept in the scenario's ``params`` (they are part of its text, so of its sha256).
"""
from __future__ import annotations

import random

import yaml

from .. import scenario as sc
from .params import check_int


def _text(name: str, description: str, steps: list[dict], *, params: dict,
          max_page_sharing: int | None = None) -> str:
    doc = {"name": name, "description": description}
    if max_page_sharing is not None:
        doc["ksm"] = {"max_page_sharing": max_page_sharing}
    doc["params"] = params
    head = yaml.safe_dump(doc, sort_keys=False, width=100)
    # one flow mapping per step, as in the hand-written files
    body = "".join(f"  - {k}: {yaml.safe_dump(v, default_flow_style=True, width=10**6).strip()}\n"
                   for step in steps for k, v in step.items())
    return head + "steps:\n" + body


def split_region_scenario(vmas: int, children: int = 0, *, walk: str = "idle",
                          pages: tuple[int, ...] = (0,), sharers: int | None = None,
                          merge_children: bool = True,
                          max_page_sharing: int = sc.DEFAULT_MAX_PAGE_SHARING) -> sc.Scenario:
    """The seed-benchmark shape at any size: one region of ``vmas`` pages, every other page
    mprotect(PROT_READ) so that it becomes ``vmas`` VMAs sharing one anon_vma, merged by KSM;
    then ``children`` forks (each child's VMAs join the parent's anon_vma: kernel/fork.c
    dup_mmap → anon_vma_fork), merged again when ``merge_children`` so the children get
    rmap_items of their own; then one ``walk`` step (``idle``: one full walk per page,
    ``migrate``: the benchmark's move_pages) on ``pages`` of the parent's region.

    ``sharers=None`` fills every page with one byte value (the benchmark); an integer fills
    only the first ``sharers`` pages alike and the rest uniquely, so the walked KSM page has
    exactly ``sharers`` rmap_items of the parent (at most ``max_page_sharing``).
    """
    vmas = check_int(vmas, "vmas", minimum=1)
    children = check_int(children, "children", minimum=0)
    if walk not in ("idle", "migrate"):
        raise ValueError(f"parameter 'walk': expected idle or migrate, got {walk!r}")
    steps: list[dict] = [{"mmap": {"region": "A", "pages": vmas}}]
    if sharers is None:
        steps.append({"fill": {"region": "A", "byte": 0xaa}})
        shape = "every page filled with 0xaa"
    else:
        sharers = check_int(sharers, "sharers", minimum=2, maximum=min(vmas, max_page_sharing))
        steps.append({"fill": {"region": "A", "unique": True}})
        steps.append({"fill": {"region": "A", "start": 0, "pages": sharers, "byte": 0xaa}})
        shape = f"the first {sharers} pages filled with 0xaa, the others unique"
    if vmas > 1:
        steps.append({"mprotect": {"region": "A", "start": 0, "pages": 1, "stride": 2, "prot": "r"}})
    steps += [{"mergeable": {"region": "A"}}, {"ksm_merge": {"full_scans": 2}}]
    if children:
        steps.append({"fork": {"children": children}})
        if merge_children:
            steps.append({"ksm_merge": {"full_scans": 2}})
    steps.append({walk: {"region": "A", "pages": list(pages)}})
    name = f"split-{vmas}-c{children}" + ("" if sharers is None else f"-s{sharers}") + \
        ("" if merge_children or not children else "-nomerge") + f"-{walk}"
    desc = (f"The seed-benchmark shape at {vmas:,} pages: {shape}, every other page "
            f"mprotect(PROT_READ) so the region is {vmas:,} VMAs in one anon_vma, merged by KSM"
            + (f", then {children} forked children" + (" merged again" if merge_children else "")
               if children else "")
            + f"; then {walk} of page(s) {', '.join(map(str, pages))}.")
    params = {"builder": "split_region_scenario", "vmas": vmas, "children": children,
              "walk": walk, "pages": list(pages), "sharers": sharers,
              "merge_children": merge_children, "max_page_sharing": max_page_sharing}
    text = _text(name, desc, steps, params=params,
                 max_page_sharing=None if max_page_sharing == sc.DEFAULT_MAX_PAGE_SHARING
                 else max_page_sharing)
    return sc.loads(text, f"<{name}>")


def random_mremap_scenario(pages: int = 64, moves: int = 8, seed: int = 0, *, max_len: int = 4,
                           values: int = 4, unmoved: int = 8) -> sc.Scenario:
    """ksm-and-mremap at random: ``pages`` pages holding ``values`` different byte values
    (chosen at random, so pages with equal bytes merge into a KSM page together), ``moves``
    non-overlapping ranges of 1..``max_len`` pages at random offsets each moved by mremap to
    a region of their own (M0, M1, ...) before KSM merges; then every moved page and
    ``unmoved`` random pages that stayed are migrated.  The moved VMAs keep the vm_pgoff of
    their old address (mm/mremap.c move_vma → copy_vma), which is what the naive query
    misses.  Seeded: the same arguments give the same text."""
    pages = check_int(pages, "pages", minimum=2)
    # each move makes a region, besides A (scenario.LIMITS["regions"])
    moves = check_int(moves, "moves", minimum=1, maximum=sc.LIMITS["regions"] - 1)
    seed = check_int(seed, "seed", minimum=0)
    max_len = check_int(max_len, "max_len", minimum=1)
    values = check_int(values, "values", minimum=1, maximum=255)
    unmoved = check_int(unmoved, "unmoved", minimum=0)
    rng = random.Random(seed)
    content = [rng.randrange(values) + 1 for _ in range(pages)]
    taken = [False] * pages
    ranges: list[tuple[int, int]] = []
    for _ in range(100 * moves):
        if len(ranges) == moves:
            break
        n = rng.randint(1, max_len)
        s = rng.randrange(0, pages - n + 1)
        # keep a page between ranges so that each move is a range of its own
        if any(taken[max(0, s - 1):min(pages, s + n + 1)]):
            continue
        for p in range(s, s + n):
            taken[p] = True
        ranges.append((s, n))
    if len(ranges) < moves:
        raise ValueError(f"parameter 'moves': cannot place {moves} separate ranges of up to "
                         f"{max_len} pages in {pages} pages (placed {len(ranges)})")
    stay = [p for p in range(pages) if not taken[p]]
    sample = sorted(rng.sample(stay, min(unmoved, len(stay))))
    steps: list[dict] = [{"mmap": {"region": "A", "pages": pages}}]
    run_start = 0
    for p in range(1, pages + 1):          # one fill per run of equal bytes
        if p == pages or content[p] != content[run_start]:
            steps.append({"fill": {"region": "A", "start": run_start, "pages": p - run_start,
                                   "byte": content[run_start]}})
            run_start = p
    for i, (s, n) in enumerate(ranges):
        steps.append({"mremap": {"region": "A", "start": s, "pages": n, "to": f"M{i}"}})
    steps.append({"mergeable": {"region": "A"}})
    steps += [{"mergeable": {"region": f"M{i}"}} for i in range(len(ranges))]
    steps.append({"ksm_merge": {"full_scans": 2}})
    steps += [{"migrate": {"region": f"M{i}", "pages": "all"}} for i in range(len(ranges))]
    if sample:
        steps.append({"migrate": {"region": "A", "pages": sample}})
    name = f"random-mremap-p{pages}-m{moves}-s{seed}"
    desc = (f"ksm-and-mremap at random (seed {seed}): {pages} pages holding {values} byte "
            f"values, {moves} ranges moved by mremap before the merge, then every moved page "
            f"and {len(sample)} unmoved pages migrated.")
    params = {"builder": "random_mremap_scenario", "pages": pages, "moves": moves, "seed": seed,
              "max_len": max_len, "values": values, "unmoved": unmoved,
              "ranges": [[s, n] for s, n in ranges], "content": content}
    return sc.loads(_text(name, desc, steps, params=params), f"<{name}>")
