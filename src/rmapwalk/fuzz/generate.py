"""Random scenario histories for differential testing (``rmapwalk fuzz``).

:func:`generate` turns ``(seed, index)`` into the text of a valid scenario file
(docs/scenarios.md), the same bytes for the same arguments on every machine: the random
source is ``random.Random("<seed>:<index>")`` (seeded through sha512 of the string) and the
text is rendered by hand, not by a YAML emitter.  Every kind of
:data:`rmapwalk.scenario.STEP_KINDS` has a step maker in :data:`MAKERS`; a kind without one
is refused with a message naming it (``tests/test_fuzz.py`` checks that every kind is
produced over a few seeds).

The generator keeps a shadow of what each process has mapped (page by page: unmapped, or
its protection), which pages were written, and where a VMA boundary may lie (every edge of
an ``mprotect``, ``munmap`` or ``mremap``, and every change of protection).  It uses that
shadow, never the model, to decide what the kernel accepts, so that the model cannot steer the
histories it is tested on.  Sizes stay small (<= 4 mapped regions of <= 64 pages, <= 4
processes, <= 25 steps) so that one scenario replays in seconds under TCG.

Steps the kernel refuses are generated on purpose with probability :data:`P_REFUSAL`, always
as the last step (the replayer stops there): ``mprotect`` over a hole (ENOMEM), ``mremap`` of
a range that starts in a hole or crosses a boundary that surely exists (EFAULT), a ``fill``
of a page that is unmapped or not writable (SIGSEGV).  A step whose fate depends on whether
the kernel merged two VMAs back (an ``mremap`` across the edge of an ``mprotect`` that was
undone) is a *maybe*: also last.  ``params.refusal`` records it: ``{step, kind, errno,
certain}``.
"""
from __future__ import annotations

import copy
import dataclasses
import random
from typing import Callable

from rmapwalk.scenario import STEP_KINDS

VERSION = 6
MAX_MMAP_REGIONS = 4
MAX_TARGETS = 3               # regions created by mremap
MAX_PAGES = 64
MAX_PROCS = 4
MAX_STEPS = 25
MIN_STEPS = 8
P_REFUSAL = 0.2
SIZES = (1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32, 48, 64)
BYTES = (0x11, 0x22, 0x5a, 0xaa, 0x00)
PROTS = ("r", "rw", "none")
# How often each kind is drawn for the middle of a history (a kind of STEP_KINDS missing
# here is an error: see check_kinds()).
WEIGHTS = {"mmap": 3, "fill": 6, "mprotect": 5, "mergeable": 5, "ksm_merge": 3, "fork": 2,
           "mremap": 3, "munmap": 2, "migrate": 4, "idle": 4, "mremap_resize": 2,
           "unmergeable": 2, "exit": 3}


class GeneratorError(RuntimeError):
    """The generator lacks a step kind of scenario.STEP_KINDS (or the reverse)."""


@dataclasses.dataclass
class Proc:
    pages: dict[str, list] = dataclasses.field(default_factory=dict)     # None | prot
    written: dict[str, list] = dataclasses.field(default_factory=dict)   # bool per page
    edges: dict[str, set] = dataclasses.field(default_factory=dict)      # possible boundaries
    merge: dict[str, list] = dataclasses.field(default_factory=dict)     # VM_MERGEABLE per page
    alive: bool = True                  # False after its exit step
    parent: int | None = None


@dataclasses.dataclass
class History:
    """The steps generated so far and the shadow of the kernel's state."""

    rng: random.Random
    steps: list = dataclasses.field(default_factory=list)      # (kind, fields) with proc
    procs: list = dataclasses.field(default_factory=lambda: [Proc()])
    sizes: dict = dataclasses.field(default_factory=dict)      # region -> pages
    backing: dict = dataclasses.field(default_factory=dict)
    bytes_used: dict = dataclasses.field(default_factory=dict)  # region -> bytes written
    mprotects: list = dataclasses.field(default_factory=list)   # (proc, region, start, pages)
    refusal: dict | None = None
    after_used: set = dataclasses.field(default_factory=set)   # regions something was placed after

    # --- shadow helpers -------------------------------------------------------------
    def regions_of(self, proc: int) -> list[str]:
        return [r for r in self.procs[proc].pages] if self.procs[proc].alive else []

    def live(self) -> list[int]:
        return [p for p, q in enumerate(self.procs) if q.alive]

    def mapped(self, proc: int, region: str) -> list[int]:
        return [i for i, p in enumerate(self.procs[proc].pages[region]) if p is not None]

    def sure_edge(self, proc: int, region: str, x: int) -> bool:
        """A VMA boundary surely lies between pages x-1 and x (a hole or another prot)."""
        pg = self.procs[proc].pages[region]
        return pg[x - 1] != pg[x] or pg[x] is None

    def scanned(self) -> bool:
        """Some process has a VM_MERGEABLE VMA: ksmd keeps scanning (mm/ksm.c: an mm whose
        scan finds no VM_MERGEABLE VMA leaves ksm_mm_head, scan_get_next_rmap_item; with no
        mm left ksmd_should_run() is false and no full scan completes)."""
        return any(f and pg[i] is not None for p in self.procs for r, pg in p.pages.items()
                   for i, f in enumerate(p.merge[r]))

    def maybe_edge(self, proc: int, region: str, x: int) -> bool:
        return x in self.procs[proc].edges[region] or self.sure_edge(proc, region, x)

    def add(self, kind: str, fields: dict, proc: int = 0) -> None:
        f = dict(fields)
        if proc:
            f["proc"] = proc
        self.steps.append((kind, f))

    def new_region_name(self, target: bool) -> str:
        names = [r for r in self.sizes]
        if target:
            k = sum(1 for r in names if r.startswith("M"))
            return f"M{k + 1}"
        k = sum(1 for r in names if not r.startswith("M"))
        return "ABCD"[k]

    def pick_proc_with_region(self, pred=None):
        """(proc, region) with the region present in the process (and pred true)."""
        pairs = [(p, r) for p in range(len(self.procs)) for r in self.regions_of(p)
                 if pred is None or pred(p, r)]
        return self.rng.choice(pairs) if pairs else None


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    kinds = sorted(weights)
    return rng.choices(kinds, weights=[weights[k] for k in kinds])[0]


# --- step makers: each returns True if it added a step ------------------------------------

def _mmap(h: History, refuse: bool = False) -> bool:
    if sum(1 for r in h.sizes if not r.startswith("M")) >= MAX_MMAP_REGIONS:
        return False
    rng = h.rng
    name = h.new_region_name(False)
    pages = rng.choice(SIZES)
    proc = 0 if rng.random() < 0.8 else rng.choice(h.live())
    backing = "file" if rng.random() < 0.15 else "anon"
    # right after an existing region's pages (mm/vma.c vma_merge_new_range): never twice
    # after the same region, which would be EEXIST (MAP_FIXED_NOREPLACE)
    free = [r for r in h.sizes if r not in h.after_used]
    after = rng.choice(free) if free and rng.random() < 0.35 else None
    h.sizes[name], h.backing[name] = pages, backing
    p = h.procs[proc]
    p.pages[name], p.written[name], p.edges[name] = ["rw"] * pages, [False] * pages, set()
    p.merge[name] = [False] * pages
    fields = {"region": name, "pages": pages}
    if backing == "file" or rng.random() < 0.1:
        fields["backing"] = backing
    if after is not None:
        fields["after"] = after
        h.after_used.add(after)
    h.add("mmap", fields, proc)
    return True


def _writable_run(h: History, proc: int, region: str) -> tuple[int, int] | None:
    """A random range of pages that are all mapped read-write."""
    pg = h.procs[proc].pages[region]
    ok = [i for i, p in enumerate(pg) if p == "rw"]
    if not ok:
        return None
    start = h.rng.choice(ok)
    end = start
    limit = start + h.rng.choice((1, 2, 4, 8, 64))
    while end < len(pg) and end < limit and pg[end] == "rw":
        end += 1
    return start, end - start


def _fill(h: History, refuse: bool = False) -> bool:
    rng = h.rng
    if refuse:
        pick = h.pick_proc_with_region(lambda p, r: any(x != "rw" for x in h.procs[p].pages[r]))
        if pick is None:
            return False
        proc, region = pick
        bad = [i for i, x in enumerate(h.procs[proc].pages[region]) if x != "rw"]
        page = rng.choice(bad)
        h.add("fill", {"region": region, "byte": rng.choice(BYTES), "start": page, "pages": 1},
              proc)
        h.refusal = {"kind": "fill", "errno": "SIGSEGV", "certain": True}
        return True
    def cow(p, r):      # written, VM_MERGEABLE, writable: maybe a KSM page (do_wp_page)
        q = h.procs[p]
        return [i for i, (x, w, m) in enumerate(zip(q.pages[r], q.written[r], q.merge[r]))
                if x == "rw" and w and m]
    if rng.random() < 0.3:
        pick = h.pick_proc_with_region(lambda p, r: bool(cow(p, r)))
        if pick is not None:    # a write that breaks a KSM page: copy-on-write
            proc, region = pick
            page = rng.choice(cow(proc, region))
            used = h.bytes_used.setdefault(region, [])
            byte = rng.choice(used) if used and rng.random() < 0.5 else rng.choice(BYTES)
            used.append(byte)
            h.add("fill", {"region": region, "byte": byte, "start": page, "pages": 1}, proc)
            return True
    pick = h.pick_proc_with_region(lambda p, r: "rw" in h.procs[p].pages[r])
    if pick is None:
        return False
    proc, region = pick
    pg = h.procs[proc].pages[region]
    whole = all(x == "rw" for x in pg) and rng.random() < 0.5
    start, n = (0, len(pg)) if whole else _writable_run(h, proc, region)
    fields: dict = {"region": region}
    used = h.bytes_used.setdefault(region, [])
    if rng.random() < 0.12:
        fields["unique"] = True
    else:
        byte = rng.choice(used) if used and rng.random() < 0.4 else rng.choice(BYTES)
        used.append(byte)
        fields["byte"] = byte
    if not whole:
        if start or rng.random() < 0.5:
            fields["start"] = start
        fields["pages"] = n
    for i in range(start, start + n):
        h.procs[proc].written[region][i] = True
    h.add("fill", fields, proc)
    return True


def _mprotect_ranges(start: int, pages: int, stride: int, size: int) -> list[tuple[int, int]]:
    if not stride:
        return [(start, start + pages)]
    return [(s, s + pages) for s in range(start, size - pages + 1, stride)]


def _mprotect(h: History, refuse: bool = False) -> bool:
    rng = h.rng
    if refuse:
        pick = h.pick_proc_with_region(lambda p, r: None in h.procs[p].pages[r])
        if pick is None:
            return False
        proc, region = pick
        pg = h.procs[proc].pages[region]
        hole = rng.choice([i for i, x in enumerate(pg) if x is None])
        start = rng.randrange(0, hole + 1)
        end = rng.randrange(hole + 1, len(pg) + 1)
        h.add("mprotect", {"region": region, "start": start, "pages": end - start,
                           "prot": rng.choice(PROTS)}, proc)
        h.refusal = {"kind": "mprotect", "errno": "ENOMEM", "certain": True}
        return True
    # undo an earlier mprotect of the same process: back to rw, VMAs may merge back
    undo = [m for m in h.mprotects if all(
        h.procs[m[0]].pages.get(m[1]) and h.procs[m[0]].pages[m[1]][i] is not None
        for i in range(m[2], m[2] + m[3]))]
    if undo and rng.random() < 0.3:
        proc, region, start, n = rng.choice(undo)
        stride = 0
        prot = "rw"
    else:
        pick = h.pick_proc_with_region(lambda p, r: bool(h.mapped(p, r)))
        if pick is None:
            return False
        proc, region = pick
        size = h.sizes[region]
        start = rng.choice(h.mapped(proc, region))
        n = rng.randint(1, max(1, min(size - start, rng.choice((1, 2, 4, size)))))
        stride = 0
        if rng.random() < 0.3 and size >= 2 * n + 1:
            stride = rng.randint(n + 1, min(size - n, n + 3))
        prot = rng.choice(PROTS)
    pg = h.procs[proc].pages[region]
    ranges = _mprotect_ranges(start, n, stride, h.sizes[region])
    if any(pg[i] is None for s, e in ranges for i in range(s, e)):
        return False        # would be refused: only on purpose, as the last step
    for s, e in ranges:
        for i in range(s, e):
            pg[i] = prot
        h.procs[proc].edges[region] |= {s, e}
        h.mprotects.append((proc, region, s, e - s))
    fields = {"region": region, "start": start, "pages": n, "prot": prot}
    if stride:
        fields["stride"] = stride
    h.add("mprotect", fields, proc)
    return True


def _mergeable(h: History, refuse: bool = False, register: bool = False) -> bool:
    """madvise(MADV_MERGEABLE): an anonymous region with a VMA left registers the process's
    mm with KSM (mm/ksm.c __ksm_enter); file regions are ignored (vma_ksm_compatible)."""
    def registers(p, r):
        return h.backing[r] == "anon" and bool(h.mapped(p, r))
    pick = h.pick_proc_with_region(registers if register else None)
    if pick is None:
        return False
    proc, region = pick
    if h.backing[region] == "anon":      # file regions: the advice is ignored
        p = h.procs[proc]
        p.merge[region] = [x is not None for x in p.pages[region]]
    h.add("mergeable", {"region": region}, proc)
    return True


def _ksm_merge(h: History, refuse: bool = False) -> bool:
    # ksmd scans only while some process has a VM_MERGEABLE VMA (History.scanned): without
    # one no full scan ever completes and the replayer's ksm_merge times out.
    if not h.scanned():
        return False
    h.add("ksm_merge", {"full_scans": h.rng.choice((1, 2, 2, 3, 3))})
    return True


def _fork(h: History, refuse: bool = False) -> bool:
    room = MAX_PROCS - len(h.procs)
    if room <= 0:
        return False
    children = h.rng.randint(1, min(room, 2))
    proc = h.rng.choice(h.live())
    for _ in range(children):
        h.procs.append(copy.deepcopy(h.procs[proc]))
        h.procs[-1].parent = proc
    h.add("fork", {"children": children}, proc)
    return True


def _source_run(h: History, proc: int, region: str) -> tuple[int, int]:
    """A random range of mapped pages surely inside one VMA (no possible boundary inside)."""
    rng = h.rng
    pg = h.procs[proc].pages[region]
    size = len(pg)
    start = rng.choice(h.mapped(proc, region))
    end = start + 1
    limit = start + rng.choice((1, 2, 4, size))
    while end < size and end < limit and pg[end] is not None \
            and not h.maybe_edge(proc, region, end):
        end += 1
    return start, end - start


def _mremap_onto(h: History, refuse: bool) -> bool:
    """MREMAP_FIXED onto a page of an existing region of the same backing (mm/mremap.c
    mremap_to unmaps the destination first); refused: onto an overlapping range (EINVAL)."""
    rng = h.rng
    pick = h.pick_proc_with_region(lambda p, r: bool(h.mapped(p, r)))
    if pick is None:
        return False
    proc, region = pick
    start, n = _source_run(h, proc, region)
    p = h.procs[proc]
    if refuse:
        lo, hi = max(0, start - n + 1), min(start + n - 1, h.sizes[region] - n)
        to_page = rng.randint(lo, hi)       # overlaps [start, start + n)
        h.add("mremap", {"region": region, "start": start, "pages": n, "to": region,
                         "to_page": to_page}, proc)
        h.refusal = {"kind": "mremap", "errno": "EINVAL", "certain": True}
        return True
    targets = [r for r in h.sizes if h.backing[r] == h.backing[region] and h.sizes[r] >= n]
    target = rng.choice(targets)
    spots = [t for t in range(h.sizes[target] - n + 1)
             if target != region or t + n <= start or start + n <= t]   # no overlap: EINVAL
    if not spots:
        return False
    to_page = rng.choice(spots)
    moved = [(p.pages[region][i], p.written[region][i], p.merge[region][i])
             for i in range(start, start + n)]
    for i in range(start, start + n):
        p.pages[region][i] = None
        p.merge[region][i] = False
    p.edges[region] |= {start, start + n}
    if target not in p.pages:       # created by another process: all hole here
        p.pages[target] = [None] * h.sizes[target]
        p.written[target] = [False] * h.sizes[target]
        p.merge[target] = [False] * h.sizes[target]
        p.edges[target] = set()
    for k, (x, w, m) in enumerate(moved):
        p.pages[target][to_page + k] = x
        p.written[target][to_page + k] = w
        p.merge[target][to_page + k] = m
    p.edges[target] |= {to_page, to_page + n}
    h.add("mremap", {"region": region, "start": start, "pages": n, "to": target,
                     "to_page": to_page}, proc)
    return True


def _mremap(h: History, refuse: bool = False) -> bool:
    rng = h.rng
    if rng.random() < (0.3 if refuse else 0.4):
        return _mremap_onto(h, refuse)
    if sum(1 for r in h.sizes if r.startswith("M")) >= MAX_TARGETS:
        return False
    pick = h.pick_proc_with_region(lambda p, r: bool(h.mapped(p, r)))
    if pick is None:
        return False
    proc, region = pick
    pg = h.procs[proc].pages[region]
    size = len(pg)
    if refuse:
        # EFAULT for sure: the range starts in a hole, or crosses a sure boundary
        holes = [i for i, x in enumerate(pg) if x is None]
        crossing = [x for x in range(1, size) if h.sure_edge(proc, region, x) and pg[x - 1]]
        maybe = [x for x in range(1, size) if pg[x - 1] is not None and pg[x] is not None
                 and not h.sure_edge(proc, region, x) and h.maybe_edge(proc, region, x)]
        choices = [("hole", holes), ("cross", crossing), ("maybe", maybe)]
        choices = [(w, c) for w, c in choices if c]
        if not choices:
            return False
        why, xs = rng.choice(choices)
        x = rng.choice(xs)
        if why == "hole":
            start, n = x, rng.randint(1, size - x)
        else:
            start = rng.randrange(0, x)
            n = rng.randint(x - start + 1, size - start)
        target = h.new_region_name(True)
        h.sizes[target] = n
        h.add("mremap", {"region": region, "start": start, "pages": n, "to": target}, proc)
        h.refusal = {"kind": "mremap", "errno": "EFAULT", "certain": why != "maybe"}
        return True
    start, n = _source_run(h, proc, region)
    end = start + n
    target = h.new_region_name(True)
    h.sizes[target] = n
    h.backing[target] = h.backing[region]
    p = h.procs[proc]
    p.pages[target] = pg[start:end]
    p.written[target] = p.written[region][start:end]
    p.edges[target] = set()
    p.merge[target] = p.merge[region][start:end]
    for i in range(start, end):
        pg[i] = None
        p.merge[region][i] = False
    p.edges[region] |= {start, end}
    h.add("mremap", {"region": region, "start": start, "pages": n, "to": target}, proc)
    return True


def _munmap(h: History, refuse: bool = False) -> bool:
    rng = h.rng
    pick = h.pick_proc_with_region()
    if pick is None:
        return False
    proc, region = pick
    size = h.sizes[region]
    if rng.random() < 0.15:
        start, n = 0, size
    else:
        start = rng.randrange(size)
        n = rng.randint(1, max(1, min(size - start, rng.choice((1, 2, 3)))))
    pg = h.procs[proc].pages[region]
    for i in range(start, start + n):
        pg[i] = None
        h.procs[proc].merge[region][i] = False
    h.procs[proc].edges[region] |= {start, start + n}
    h.add("munmap", {"region": region, "start": start, "pages": n}, proc)
    return True


def _mremap_resize(h: History, refuse: bool = False) -> bool:
    """mremap in place of an anonymous range (file VMAs grown past the file's size would
    SIGBUS on a write): shrink (unmaps the tail), or grow into unmapped pages right after a
    range that surely ends its VMA (the page after it is a hole).  Refused: growing a range
    whose next page is mapped (ENOMEM, no MREMAP_MAYMOVE), or a range starting in a hole
    (EFAULT)."""
    rng = h.rng
    pick = h.pick_proc_with_region(lambda p, r: h.backing[r] == "anon" and bool(h.mapped(p, r)))
    if pick is None:
        return False
    proc, region = pick
    p = h.procs[proc]
    pg = p.pages[region]
    size = len(pg)
    if refuse:
        holes = [i for i, x in enumerate(pg) if x is None]
        if holes and rng.random() < 0.3:
            start = rng.choice(holes)
            h.add("mremap_resize", {"region": region, "start": start, "pages": 1,
                                    "new_pages": rng.randint(1, size - start)}, proc)
            h.refusal = {"kind": "mremap_resize", "errno": "EFAULT", "certain": True}
            return True
        start, n = _source_run(h, proc, region)
        if start + n >= size or pg[start + n] is None:
            return False
        h.add("mremap_resize", {"region": region, "start": start, "pages": n,
                                "new_pages": rng.randint(n + 1, size - start)}, proc)
        h.refusal = {"kind": "mremap_resize", "errno": "ENOMEM", "certain": True}
        return True
    start, n = _source_run(h, proc, region)
    free = 0
    while start + n + free < size and pg[start + n + free] is None:
        free += 1
    if free and rng.random() < 0.6:         # grow in place (vma_merge_extend)
        new = n + rng.randint(1, free)
        for i in range(start + n, start + new):
            pg[i] = pg[start + n - 1]
            p.written[region][i] = False
            p.merge[region][i] = p.merge[region][start + n - 1]
        p.edges[region] |= {start + new}
    elif n > 1:                             # shrink: the tail is unmapped
        new = rng.randint(1, n - 1)
        for i in range(start + new, start + n):
            pg[i] = None
            p.merge[region][i] = False
        p.edges[region] |= {start + new, start + n}
    else:
        return False
    h.add("mremap_resize", {"region": region, "start": start, "pages": n, "new_pages": new},
          proc)
    return True


def _unmergeable(h: History, refuse: bool = False) -> bool:
    """madvise(MADV_UNMERGEABLE): KSM pages of the region in that process copied out."""
    pick = h.pick_proc_with_region(lambda p, r: any(h.procs[p].merge[r]))
    if pick is None or h.rng.random() < 0.2:
        pick = h.pick_proc_with_region()
    if pick is None:
        return False
    proc, region = pick
    p = h.procs[proc]
    p.merge[region] = [False] * h.sizes[region]
    h.add("unmergeable", {"region": region}, proc)
    return True


def _exit(h: History, refuse: bool = False) -> bool:
    """A forked child without live children exits (its rmap_items stay until the next scan)."""
    leaves = [c for c in h.live() if c and not any(
        q.alive and q.parent == c for q in h.procs)]
    if not leaves:
        return False
    proc = h.rng.choice(leaves)
    p = h.procs[proc]
    p.alive = False
    for r in p.pages:
        p.pages[r] = [None] * h.sizes[r]
        p.merge[r] = [False] * h.sizes[r]
    h.add("exit", {}, proc)
    return True


def _walk(kind: str) -> Callable[[History, bool], bool]:
    def make(h: History, refuse: bool = False) -> bool:
        rng = h.rng

        def ksm_candidates(p, r):      # written pages KSM may have merged
            q = h.procs[p]
            return [i for i, (w, m) in enumerate(zip(q.written[r], q.merge[r])) if w and m]
        pick = None
        if rng.random() < 0.7:         # mostly pages KSM may have merged: rmap_walk_ksm
            pick = h.pick_proc_with_region(lambda p, r: bool(ksm_candidates(p, r)))
        pick = pick or h.pick_proc_with_region()
        if pick is None:
            return False
        proc, region = pick
        size = h.sizes[region]
        merged = ksm_candidates(proc, region)
        if size <= 8 and rng.random() < 0.15:
            pages: object = "all"
        elif merged and rng.random() < 0.7:
            pages = sorted(rng.sample(merged, min(len(merged), rng.choice((1, 1, 2, 3)))))
        else:
            written = [i for i, w in enumerate(h.procs[proc].written[region]) if w]
            pool = written if written and rng.random() < 0.8 else list(range(size))
            pages = sorted(rng.sample(pool, min(len(pool), rng.choice((1, 1, 2, 3)))))
        h.add(kind, {"region": region, "pages": pages}, proc)
        return True
    return make


# One maker per kind of scenario.STEP_KINDS (check_kinds() and tests/test_fuzz.py check it).
MAKERS: dict[str, Callable[[History, bool], bool]] = {
    "mmap": _mmap,
    "fill": _fill,
    "mprotect": _mprotect,
    "mergeable": _mergeable,
    "ksm_merge": _ksm_merge,
    "fork": _fork,
    "mremap": _mremap,
    "mremap_resize": _mremap_resize,
    "unmergeable": _unmergeable,
    "exit": _exit,
    "munmap": _munmap,
    "migrate": _walk("migrate"),
    "idle": _walk("idle"),
}
REFUSABLE = ("fill", "mprotect", "mremap", "mremap_resize")


def check_kinds() -> None:
    """Every step kind of the scenario format has a maker and a weight, and nothing else."""
    for table, name in ((MAKERS, "MAKERS"), (WEIGHTS, "WEIGHTS")):
        missing = [k for k in STEP_KINDS if k not in table]
        extra = [k for k in table if k not in STEP_KINDS]
        if missing or extra:
            raise GeneratorError(
                f"rmapwalk/fuzz/generate.py {name}: no entry for step kind(s) {missing} of "
                f"scenario.STEP_KINDS" if missing else
                f"rmapwalk/fuzz/generate.py {name}: kind(s) {extra} not in scenario.STEP_KINDS")


def _history(seed: int, index: int) -> History:
    check_kinds()
    rng = random.Random(f"{seed}:{index}")
    h = History(rng)
    nsteps = rng.randint(MIN_STEPS, MAX_STEPS)
    for _ in range(rng.randint(1, 2)):
        MAKERS["mmap"](h)
    MAKERS["fill"](h)
    refuse = rng.random() < P_REFUSAL
    # the middle: kinds drawn by weight until room is left for a merge and walks
    while len(h.steps) < nsteps - 6:      # the end adds at most 6 steps
        kind = _weighted(rng, WEIGHTS)
        MAKERS[kind](h)
    kinds = [k for k, _ in h.steps]
    if not h.scanned() or rng.random() < 0.5:
        _mergeable(h, register=not h.scanned())
    if "ksm_merge" not in kinds[-4:]:
        MAKERS["ksm_merge"](h)
    for _ in range(rng.randint(1, 3)):
        MAKERS[rng.choice(("migrate", "idle"))](h)
    if refuse:
        for kind in rng.sample(REFUSABLE, len(REFUSABLE)):
            if MAKERS[kind](h, True):
                h.refusal["step"] = len(h.steps)
                break
    return h


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    return str(v)


def _flow(fields: dict) -> str:
    out = []
    for k, v in fields.items():
        out.append(f"{k}: {v:#04x}" if k == "byte" else f"{k}: {_scalar(v)}")
    return "{" + ", ".join(out) + "}"


def render(name: str, description: str, steps: list, max_page_sharing: int | None,
           params: dict, prune_ms: int | None = None) -> str:
    """Scenario text of ``steps`` ([(kind, fields)], fields with ``proc`` if not 0);
    ``max_page_sharing`` and ``prune_ms`` (ksm.stable_node_chains_prune_millisecs) are left
    out when None (the reader's defaults)."""
    lines = [f"name: {name}", "description: >", f"  {description}"]
    knobs = [(k, v) for k, v in (("max_page_sharing", max_page_sharing),
                                  ("stable_node_chains_prune_millisecs", prune_ms))
             if v is not None]
    if knobs:
        lines += ["ksm:"] + [f"  {k}: {v}" for k, v in knobs]
    if params:
        lines.append("params: " + _flow_params(params))
    lines.append("steps:")
    lines += [f"  - {kind}: {_flow(f)}" for kind, f in steps]
    return "\n".join(lines) + "\n"


def _flow_params(params: dict) -> str:
    def val(v):
        if v is None:
            return "null"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {val(x)}" for k, x in v.items()) + "}"
        return _scalar(v)
    return val(params)


def scenario_name(seed: int, index: int) -> str:
    return f"fuzz-{seed}-{index:04d}"


def generate(seed: int, index: int) -> str:
    """The text of generated scenario ``index`` of ``seed``."""
    if seed < 0 or index < 0:
        raise ValueError("seed and index must be >= 0")
    h = _history(seed, index)
    rng = h.rng
    mps = rng.choice((2, 2, 3, 4, None))
    # chains pruned at every search (0), or never (the reader's default): both deterministic
    prune = 0 if rng.random() < 0.3 else None
    params = {"generator": "rmapwalk.fuzz", "version": VERSION, "seed": seed, "index": index,
              "refusal": h.refusal}
    desc = (f"Generated by rmapwalk fuzz (seed {seed}, scenario {index}): a random history "
            "for differential testing of the model against the kernel.")
    return render(scenario_name(seed, index), desc, h.steps, mps, params, prune)
