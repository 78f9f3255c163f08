"""Seeded random histories on the model kernel, and a brute-force oracle for every walk."""
from __future__ import annotations

import random

from rmapwalk.model import kernel as K
from rmapwalk.model.interval_tree import ULONG_MAX
from rmapwalk.contract import LOOP_COLUMNS, PAGE_SIZE
from rmapwalk.scenario import REGION_BASE, REGION_STRIDE

OPS = ("mmap", "fill", "fill", "mprotect", "mergeable", "ksm", "fork", "mremap", "munmap",
       "idle", "migrate", "migrate")


def brute_force_walk(kern: K.Kernel, folio, reason: str) -> dict:
    """The counters of a walk computed without the interval tree's pruning: every chain of
    the anon_vma (or i_mmap) in order, filtered by the query, the checks done by hand; for
    an unmap walk, the early exit once no mapping is left.  Also the per-loop maxima
    (contract.LOOP_COLUMNS): one loop per rmap_item and pass, or the one anon/file loop."""
    c = dict.fromkeys(("iterations", "skip_addr", "skip_mm", "rmap_one", *LOOP_COLUMNS), 0)
    mapped = set(folio.maps)
    unmap = reason == "migrate_unmap"

    def end_loop(loop):
        for key, n in loop.items():
            c[key] += n
            c[f"loop_{key}_max"] = max(c[f"loop_{key}_max"], n)

    if folio.page_type == "ksm":
        for search_new_forks in (False, True):
            for item in list(folio.stable_node.hlist):
                qs, ql = item.query(kern.strategy)
                loop = dict.fromkeys(("iterations", "skip_addr", "skip_mm"), 0)
                for node in item.anon_vma.rb_root.inorder():
                    if not (node.start <= ql and node.last >= qs):
                        continue
                    loop["iterations"] += 1
                    vma = node.item.vma
                    if not vma.vm_start <= item.address < vma.vm_end:
                        loop["skip_addr"] += 1
                        continue
                    if (item.mm is vma.vm_mm) == search_new_forks:
                        loop["skip_mm"] += 1
                        continue
                    c["rmap_one"] += 1
                    if unmap:
                        mapped.discard((vma.vm_mm, item.address))
                        if not mapped:
                            end_loop(loop)
                            return c
                end_loop(loop)
        return c
    tree = folio.anon_vma.rb_root if folio.page_type == "anon" else folio.mapping.i_mmap
    loop = dict.fromkeys(("iterations", "skip_addr", "skip_mm"), 0)
    for node in tree.inorder():
        if node.start <= folio.index <= node.last:
            loop["iterations"] += 1
            c["rmap_one"] += 1
            vma = node.item.vma if folio.page_type == "anon" else node.item
            if unmap:
                mapped.discard((vma.vm_mm, vma.vm_start + ((folio.index - vma.vm_pgoff) << 12)))
                if not mapped:
                    break
    end_loop(loop)
    return c


class CheckedKernel(K.Kernel):
    """A Kernel that checks every walk against the brute-force oracle before it runs."""

    def rmap_walk(self, folio, rwc, targets):
        expected = brute_force_walk(self, folio, rwc.reason)
        rec = super().rmap_walk(folio, rwc, targets)
        got = {k: getattr(rec, k) for k in expected}
        assert got == expected, f"{self.strategy} {rwc.reason} walk of {folio!r}: {got} != {expected}"
        self.checked += 1
        return rec


def random_history(seed: int, strategy: str, steps: int = 60, fast: bool = True,
                   checked: bool = True, validate_each: bool = True, max_page_sharing: int = 3):
    """Run a seeded random history; returns (kernel, log of operations)."""
    rng = random.Random(seed)
    cls = CheckedKernel if checked else K.Kernel
    kern = cls(strategy, max_page_sharing=max_page_sharing, fast=fast)
    kern.checked = 0
    regions: list[tuple[int, int]] = []     # (base, pages)
    log = []

    def some_page(proc):
        mm = kern.procs[proc]
        addrs = list(mm.pte)
        return rng.choice(addrs) if addrs else None

    for _ in range(steps):
        op = rng.choice(OPS) if regions else "mmap"
        proc = rng.randrange(len(kern.procs))
        mm = kern.procs[proc]
        try:
            if op == "mmap":
                base = REGION_BASE + len(regions) * REGION_STRIDE
                pages = rng.randint(1, 12)
                kern.mmap(proc, base, pages, file=f"f{len(regions)}" if rng.random() < 0.2 else None)
                regions.append((base, pages))
                log.append((op, proc, base, pages))
            elif op == "fill" and mm.vmas:
                vma = rng.choice(mm.vmas)
                content = kern.unique_content() if rng.random() < 0.2 else ("byte", rng.randint(1, 2))
                for addr in range(vma.vm_start, vma.vm_end, PAGE_SIZE):
                    if rng.random() < 0.7:
                        kern.write(proc, addr, content)
                log.append((op, proc, vma.vm_start))
            elif op == "mprotect":
                base, pages = rng.choice(regions)
                s = rng.randrange(pages)
                e = rng.randint(s + 1, pages)
                kern.mprotect(proc, base + s * PAGE_SIZE, base + e * PAGE_SIZE, rng.choice(("r", "rw", "none")))
                log.append((op, proc, base, s, e))
            elif op == "mergeable":
                base, pages = rng.choice(regions)
                kern.madvise_mergeable(proc, base, base + pages * PAGE_SIZE)
                log.append((op, proc, base))
            elif op == "ksm":
                kern.ksm_run(rng.randint(1, 2))
                log.append((op,))
            elif op == "fork" and len(kern.procs) < 4:
                kern.fork(proc)
                log.append((op, proc))
            elif op == "mremap" and mm.vmas:
                vma = rng.choice(mm.vmas)
                n = vma.pages
                s = rng.randrange(n)
                e = rng.randint(s + 1, n)
                new = REGION_BASE + len(regions) * REGION_STRIDE
                old = vma.vm_start + s * PAGE_SIZE
                kern.mremap(proc, old, (e - s) * PAGE_SIZE, new)
                regions.append((new, e - s))
                log.append((op, proc, old, e - s, new))
            elif op == "munmap":
                base, pages = rng.choice(regions)
                s = rng.randrange(pages)
                kern.munmap(proc, base + s * PAGE_SIZE, base + rng.randint(s + 1, pages) * PAGE_SIZE)
                log.append((op, proc, base, s))
            elif op in ("idle", "migrate"):
                addr = some_page(proc)
                if addr is not None:
                    if op == "idle":
                        kern.page_idle(proc, addr)
                    else:
                        kern.move_page(proc, addr)
                    log.append((op, proc, addr))
        except K.ModelError:
            log.append((op, proc, "refused"))
        if validate_each:
            K.validate(kern)
    return kern, log
