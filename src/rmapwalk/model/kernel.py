"""The model kernel: processes, KSM and files, with the system calls a scenario makes.

This is the model's front door.  Its methods stand for system calls and faults (mmap, a write
to a page, mprotect, madvise(MADV_MERGEABLE), fork, mremap, munmap, move_pages, a write to
/sys/kernel/mm/page_idle/bitmap) and for letting ksmd run; each rmap walk they cause is
appended to :attr:`Kernel.trace` the way the rmap_walk tracepoint records it on a real kernel
(mm/rmap.c ``rmap_walk``).  ``strategy`` picks the query of ``rmap_walk_ksm``, i.e. which
kernel is modelled: ``baseline`` (6.12), ``naive`` (v1-v3) or ``pgoff`` (v4).
"""
from __future__ import annotations

import dataclasses
import itertools

from ..contract import NOT_PRESENT
from . import mm as mmops
from .ksm import STRATEGIES, Ksm, StableNode, rmap_walk_ksm  # noqa: F401 (re-export)
from .mm import ModelError  # noqa: F401 (re-export: the model's one refusal)
from .swap import LruAddBatch
from .rmap import (AddressSpace, AnonVmaChain, Folio, RmapWalkControl, RmapWalkStats, anon_vma_prepare,
                   rmap_walk_anon, rmap_walk_file)

# mm/migrate.c: migrate_pages_sync() tries NR_MAX_MIGRATE_ASYNC_RETRY passes in async mode,
# then NR_MAX_MIGRATE_SYNC_RETRY in sync mode; every failed unmap is undone by a
# remove_migration_ptes() walk (migrate_folio_undo_src).
NR_MAX_MIGRATE_ASYNC_RETRY = 3
NR_MAX_MIGRATE_SYNC_RETRY = 7


@dataclasses.dataclass
class WalkRecord:
    """One rmap walk, as the tracepoint sees it, plus what only the model can know."""

    page_type: str
    reason: str
    iterations: int
    skip_addr: int
    skip_mm: int
    rmap_one: int
    missed: int
    touched: int
    loop_iterations_max: int = 0     # RmapWalkStats: the largest loop of the walk
    loop_skip_addr_max: int = 0
    loop_skip_mm_max: int = 0


class Kernel:
    def __init__(self, strategy: str = "baseline", max_page_sharing: int = 256,
                 fast: bool = True, chain_prune_millisecs: int = 2000):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
        self.strategy = strategy
        self.fast = fast
        self.lru = LruAddBatch()
        self.ksm = Ksm(max_page_sharing, strategy)
        self.ksm.lru = self.lru
        self.ksm.chain_prune_millisecs = chain_prune_millisecs
        self.procs: list[mmops.MmStruct] = [mmops.MmStruct()]
        self.files: dict[str, AddressSpace] = {}
        self.trace: list[WalkRecord] = []
        self._contents = itertools.count(1)
        self.generation = 0          # bumped by every change of state (walk memo key)
        self._memo: dict = {}

    # --- memory ----------------------------------------------------------------------
    def mmap(self, proc: int, addr: int, pages: int, file: str | None = None):
        self.generation += 1
        mapping = None
        if file is not None:
            mapping = self.files.setdefault(file, AddressSpace(file, pages))
        return mmops.do_mmap(self.procs[proc], addr, pages, file=mapping)

    def unique_content(self):
        return ("unique", next(self._contents))

    def write(self, proc: int, addr: int, content) -> None:
        """A store to the page at ``addr`` (handle_mm_fault with FAULT_FLAG_WRITE)."""
        self.generation += 1
        mm = self.procs[proc]
        vma = mm.find_vma(addr)
        if vma is None:
            raise ModelError("SIGSEGV", "faults: no VMA covers it",
                             "arch/x86/mm/fault.c do_user_addr_fault: no VMA", addr=addr)
        if not vma.vm_flags & mmops.VM_WRITE:
            raise ModelError("SIGSEGV", "faults: its VMA is not writable",
                             "arch/x86/mm/fault.c access_error", addr=addr)
        index = vma.linear_page_index(addr)
        if vma.vm_file is not None and vma.vm_file.size is not None and index >= vma.vm_file.size:
            # a file VMA grown in place (mremap_resize) beyond i_size: mm/shmem.c
            # shmem_get_folio_gfp() refuses an index past EOF, shmem_fault() -> VM_FAULT_SIGBUS
            raise ModelError("SIGBUS", "faults: past the end of its file",
                             "mm/shmem.c shmem_fault", addr=addr)
        if vma.vm_file is not None:
            folio = vma.vm_file.pages.get(index)
            if folio is None:
                folio = vma.vm_file.pages[index] = Folio(content, mapping=vma.vm_file, index=index)
                self.lru.folio_add_lru(folio)   # mm/shmem.c shmem_alloc_and_add_folio
            folio.content = content
            if mm.pte.get(addr) is not folio:
                mm.set_pte(addr, folio)
            return
        folio = mm.pte.get(addr)
        if folio is not None and folio.stable_node is None:
            if folio.exclusive:         # do_wp_page: PageAnonExclusive, reuse
                folio.content = content
                return
            # mm/memory.c wp_can_reuse_anon_folio(): refcount = mapcount, plus the LRU
            # batch's reference while the folio waits there; above 3 no reuse; else a folio
            # not on the LRU yet makes it lru_add_drain() first; reuse if only we map it.
            if folio.mapcount + self.lru.holds(folio) <= 3:
                if not folio.lru:
                    self.lru.lru_add_drain()
                if folio.mapcount == 1:     # folio_move_anon_rmap
                    folio.anon_vma = vma.anon_vma
                    folio.exclusive = True
                    folio.content = content
                    return
        anon_vma_prepare(vma)       # do_anonymous_page / wp_page_copy
        new = Folio(content, anon_vma=vma.anon_vma, index=index)
        mm.set_pte(addr, new)
        self.lru.folio_add_lru(new)     # folio_add_lru_vma

    def mprotect(self, proc: int, start: int, end: int, prot: str) -> None:
        self.generation += 1
        mmops.mprotect(self.procs[proc], start, end, prot)

    def madvise_mergeable(self, proc: int, start: int, end: int) -> None:
        """madvise(MADV_MERGEABLE): mm/madvise.c ``madvise_walk_vmas`` visits every VMA in
        the range and calls mm/ksm.c ``ksm_madvise``, which joins KSM and flags every
        ``vma_ksm_compatible`` VMA; a MAP_SHARED mapping (the replayer's tmpfs files:
        VM_SHARED|VM_MAYSHARE) is silently skipped ("just ignore the advice", return 0).
        Holes in the range do not stop the walk, but the call then fails with ENOMEM
        after the advice was applied around them (raised here last, like the kernel)."""
        self.generation += 1
        mm = self.procs[proc]
        hole = mmops.first_hole(mm, start, end)
        for vma in mm.vmas_in(start, end):
            if vma.vm_flags & (mmops.VM_MERGEABLE | mmops.VM_SHARED | mmops.VM_MAYSHARE):
                continue    # already mergeable; MAP_SHARED is not vma_ksm_compatible
            self.ksm.ksm_enter(mm)
            mmops.vma_modify_flags(mm, vma, max(start, vma.vm_start), min(end, vma.vm_end),
                                   vma.vm_flags | mmops.VM_MERGEABLE)
        if hole is not None:
            raise ModelError("ENOMEM", "has a hole (the advice was applied around it)",
                             "mm/madvise.c madvise_walk_vmas", addr=hole)

    def ksm_run(self, full_scans: int) -> None:
        self.generation += 1
        self.ksm.run_full_scans(full_scans, self)

    def fork(self, proc: int) -> int:
        self.generation += 1
        self.procs.append(mmops.dup_mmap(self.procs[proc], self.ksm))
        return len(self.procs) - 1

    def madvise_unmergeable(self, proc: int, start: int, end: int) -> None:
        """madvise(MADV_UNMERGEABLE): mm/madvise.c ``madvise_walk_vmas`` → mm/ksm.c
        ``ksm_madvise`` on every VMA of the range: one without VM_MERGEABLE is left alone
        ("just ignore the advice"); otherwise, if it has an anon_vma, ``unmerge_ksm_pages``
        copies every KSM page mapped in the range out of it (``break_ksm`` →
        ``handle_mm_fault(FAULT_FLAG_UNSHARE)`` → mm/memory.c ``do_wp_page`` →
        ``wp_page_copy``: KSM folios are never reused), then VM_MERGEABLE is cleared
        (``madvise_update_vma``: split or merge).  The rmap_items stay on their stable nodes
        until ksmd's next scan drops them.  Holes: ENOMEM after the advice was applied
        around them, like MADV_MERGEABLE."""
        self.generation += 1
        mm = self.procs[proc]
        hole = mmops.first_hole(mm, start, end)
        for vma in mm.vmas_in(start, end):
            if not vma.vm_flags & mmops.VM_MERGEABLE:
                continue
            s, e = max(start, vma.vm_start), min(end, vma.vm_end)
            if vma.anon_vma is not None:
                self.ksm.unmerge_range(mm, s, e)
            mmops.vma_modify_flags(mm, vma, s, e, vma.vm_flags & ~mmops.VM_MERGEABLE)
        if hole is not None:
            raise ModelError("ENOMEM", "has a hole (the advice was applied around it)",
                             "mm/madvise.c madvise_walk_vmas", addr=hole)

    def exit(self, proc: int) -> None:
        """The process exits (kernel/exit.c ``do_exit`` → ``exit_mm`` → ``mmput`` →
        kernel/fork.c ``__mmput``): mm/ksm.c ``ksm_exit`` first, then mm/mmap.c
        ``exit_mmap``, which starts with ``lru_add_drain()`` and unmaps everything.  The
        mm stays in :attr:`procs` (empty) so that process numbers keep their meaning."""
        self.generation += 1
        mm = self.procs[proc]
        self.ksm.ksm_exit(mm)
        self.lru.lru_add_drain()
        mmops.exit_mmap(mm)

    def mremap(self, proc: int, old: int, length: int, new: int) -> None:
        """mremap(MREMAP_MAYMOVE|MREMAP_FIXED) of [old, old + length) to ``new``
        (mm/mremap.c ``mremap_to``): what is mapped at the destination is unmapped first."""
        self.generation += 1
        mm = self.procs[proc]
        if mm.vmas_in(new, new + length) and mm.find_vma(old) is not None and \
                not (old + length > new and new + length > old):
            self.lru.lru_add_drain()    # the destination is unmapped: mm/vma.c vms_clear_ptes
        mmops.mremap_to(mm, old, length, new, ksm=self.ksm)
        self.lru.lru_add_drain()        # the old range is unmapped: mm/vma.c vms_clear_ptes

    def mremap_resize(self, proc: int, addr: int, old_len: int, new_len: int) -> None:
        """mremap(addr, old_len, new_len, 0): in place (mm/mremap.c); shrinking unmaps the
        tail (the LRU batch is drained if anything was mapped there)."""
        self.generation += 1
        mm = self.procs[proc]
        if new_len < old_len and mm.find_vma(addr) is not None and \
                mm.vmas_in(addr + new_len, addr + old_len):
            self.lru.lru_add_drain()    # mm/vma.c vms_clear_ptes
        mmops.mremap_resize(mm, addr, old_len, new_len)

    def munmap(self, proc: int, start: int, end: int) -> None:
        self.generation += 1
        if self.procs[proc].vmas_in(start, end):
            self.lru.lru_add_drain()    # mm/vma.c vms_clear_ptes (nothing mapped: no-op)
        mmops.do_munmap(self.procs[proc], start, end)

    # --- walks -------------------------------------------------------------------------
    def rmap_walk(self, folio: Folio, rwc: RmapWalkControl, targets: set) -> WalkRecord:
        """mm/rmap.c ``rmap_walk``, recording the walk like the tracepoint does.
        ``targets`` are the mappings the walk is meant to reach (for ``missed``)."""
        stats = RmapWalkStats()
        reached: set = set()
        inner = rwc.rmap_one

        def rmap_one(f, vma, addr):
            if (vma.vm_mm, addr) in targets:
                reached.add((vma.vm_mm, addr))
            return inner(f, vma, addr)

        tracked = RmapWalkControl(rmap_one, rwc.done, rwc.reason)
        page_type = folio.page_type
        if page_type == "ksm":
            if self.fast:
                from .fastwalk import rmap_walk_ksm_fast
                rmap_walk_ksm_fast(folio, tracked, stats, self.strategy)
            else:
                rmap_walk_ksm(folio, tracked, stats, self.strategy)
        elif page_type == "anon":
            rmap_walk_anon(folio, tracked, stats)
        else:
            rmap_walk_file(folio, tracked, stats)
        rec = WalkRecord(page_type, rwc.reason, stats.iterations, stats.skip_addr,
                         stats.skip_mm, stats.rmap_one, len(targets) - len(reached),
                         stats.touched, stats.loop_iterations_max,
                         stats.loop_skip_addr_max, stats.loop_skip_mm_max)
        self.trace.append(rec)
        return rec

    def move_page(self, proc: int, addr: int) -> tuple[str, str]:
        """move_pages(MPOL_MF_MOVE_ALL) of one page to the other node.  Returns the outcome
        as ``(result, errno)`` in the terms of :data:`rmapwalk.contract.OUTCOMES`:
        ``("moved", "")``, ``("not-migrated", "")`` when migrate_pages() gave up after its
        retries, or ``("error", errno)`` for the page's status: ``EFAULT`` if no VMA covers
        the address, ``ENOENT`` if no page is mapped there (mm/migrate.c
        ``do_pages_stat_array`` and ``add_folio_for_migration``: ``vma_lookup`` fails, or
        ``folio_walk_start`` finds nothing)."""
        mm = self.procs[proc]
        if mm.find_vma(addr) is None:
            return "error", "EFAULT"
        folio = mm.pte.get(addr)
        if folio is None:
            return "error", "ENOENT"
        self.generation += 1
        # mm/migrate.c do_pages_move(): lru_cache_disable() drains every CPU's batch, and
        # the folio migrated (or put back) goes straight to the LRU.
        self.lru.lru_add_drain()
        entries: set = set()

        def try_to_migrate_one(f, vma, address):
            if vma.vm_mm.pte.get(address) is f:
                vma.vm_mm.clear_pte(address)
                entries.add((vma.vm_mm, address))
            return True

        def remove_migration_pte(f, vma, address):
            if (vma.vm_mm, address) in entries:
                entries.discard((vma.vm_mm, address))
                vma.vm_mm.set_pte(address, f)
            return True

        unmap = RmapWalkControl(try_to_migrate_one, lambda f: f.mapcount == 0, "migrate_unmap")
        remap = RmapWalkControl(remove_migration_pte, None, "migrate_remap")
        for _ in range(NR_MAX_MIGRATE_ASYNC_RETRY + NR_MAX_MIGRATE_SYNC_RETRY):
            self.rmap_walk(folio, unmap, set(folio.maps))
            if folio.mapcount == 0:
                folio.nid = 1 - folio.nid      # the copy on the other node takes its place
                self.rmap_walk(folio, remap, set(entries))
                return "moved", ""
            self.rmap_walk(folio, remap, set(entries))
        # mm/migrate.c move_pages_and_store_status(): move_pages() returns the number of
        # pages not migrated, and the page stays where it was.
        return "not-migrated", ""

    def page_idle(self, proc: int, addr: int) -> tuple[str, str]:
        """Set the page's bit in /sys/kernel/mm/page_idle/bitmap (mm/page_idle.c
        ``page_idle_bitmap_write``): one read-only walk (``page_idle_clear_pte_refs``).
        Returns ``("ok", "")``, or ``("error", NOT_PRESENT)`` when no page is mapped at
        ``addr``: the replayer finds the pfn in /proc/self/pagemap, whose present bit is
        clear there (also for an address no VMA covers: fs/proc/task_mmu.c
        ``pagemap_pte_hole`` reports holes as not present)."""
        folio = self.procs[proc].pte.get(addr)
        if folio is None:
            return "error", NOT_PRESENT
        # The replayer drains the LRU batch before each page_idle write (madvise(MADV_COLD)
        # of a page of its own: mm/madvise.c madvise_cold -> lru_add_drain), because when the
        # batch fills up depends on its own faults; without that, a folio still in the batch
        # is not on the LRU and mm/page_idle.c page_idle_get_folio() returns NULL: the bit is
        # written, but there is no walk.
        self.lru.lru_add_drain()
        if not folio.lru:
            return "ok", ""
        key = (folio.id, self.generation)
        rec = self._memo.get(key)
        if rec is not None:     # nothing changed since the same walk: same counts
            self.trace.append(rec)
            return "ok", ""
        idle = RmapWalkControl(lambda f, v, a: True, None, "idle")
        self._memo = {key: self.rmap_walk(folio, idle, set(folio.maps))}
        return "ok", ""


class ModelInvariantError(AssertionError):
    """A cross-structure invariant of the model does not hold; ``invariant`` names it."""

    def __init__(self, invariant: str, detail: str):
        self.invariant = invariant
        super().__init__(f"{invariant}: {detail}")


def validate(kernel: Kernel) -> None:
    """Check every structure and the links between them (the rmap invariants):

    * ``vma-order``: an mm's VMAs are sorted and disjoint;
    * ``avc-key``: every anon_vma_chain sits in its anon_vma's tree keyed on the VMA's
      current ``[vm_pgoff, vm_pgoff + vma_pages - 1]``; ``avc-own``: a VMA with an anon_vma
      is linked into it; ``avc-dead``: no tree holds a chain of a VMA that is gone;
    * ``i_mmap-key``: a file VMA sits in i_mmap with its current key;
    * ``pte-maps``: page tables and ``folio.maps`` agree;
    * ``anon-findable``: an anonymous folio mapped at an address is reachable by
      rmap_walk_anon: the VMA is linked into the folio's anon_vma and its linear page index
      at that address equals ``folio.index``;
    * ``stable-node``: KSM folios and their stable nodes point at each other, rmap_items
      point at their stable node;
    and every interval tree's own invariants (IntervalTree.validate).
    """
    live = set()
    trees = {}
    for mm in kernel.procs:
        prev_end = -1
        for i, vma in enumerate(mm.vmas):
            live.add(vma)
            if vma.vm_start < prev_end or vma.vm_start >= vma.vm_end or mm._starts[i] != vma.vm_start:
                raise ModelInvariantError("vma-order", f"{vma!r} in {mm!r}")
            prev_end = vma.vm_end
            owns = False
            for avc in vma.anon_vma_chain:
                trees[id(avc.anon_vma.rb_root)] = avc.anon_vma.rb_root
                rb = avc.rb
                if avc.vma is not vma or rb is None or rb.start != vma.vm_pgoff or \
                        rb.last != vma.vm_pgoff + vma.pages - 1:
                    raise ModelInvariantError("avc-key", f"{avc!r} key does not match {vma!r}")
                owns |= avc.anon_vma is vma.anon_vma
            if vma.anon_vma is not None and not owns:
                raise ModelInvariantError("avc-own", f"{vma!r} is not linked into its anon_vma")
            if vma.vm_file is not None:
                rb = vma.shared_rb
                if rb is None or rb.start != vma.vm_pgoff or rb.last != vma.vm_pgoff + vma.pages - 1:
                    raise ModelInvariantError("i_mmap-key", f"{vma!r}")
                trees[id(vma.vm_file.i_mmap)] = vma.vm_file.i_mmap
    for tree in trees.values():
        tree.validate()
        for node in tree.inorder():
            vma = node.item.vma if isinstance(node.item, AnonVmaChain) else node.item
            if vma not in live:
                raise ModelInvariantError("avc-dead", f"a tree still holds {vma!r}")
    for mm in kernel.procs:
        for addr, folio in mm.pte.items():
            if (mm, addr) not in folio.maps:
                raise ModelInvariantError("pte-maps", f"{mm!r} {addr:#x} maps {folio!r} unrecorded")
            vma = mm.find_vma(addr)
            if vma is None:
                raise ModelInvariantError("pte-maps", f"{mm!r} {addr:#x} mapped outside any VMA")
            if folio.page_type == "anon":
                if not any(avc.anon_vma is folio.anon_vma for avc in vma.anon_vma_chain) or \
                        vma.linear_page_index(addr) != folio.index:
                    raise ModelInvariantError(
                        "anon-findable", f"{folio!r} at {mm!r} {addr:#x} unreachable from {vma!r}")
            if folio.stable_node is not None and folio.stable_node.folio is not folio:
                raise ModelInvariantError("stable-node", f"{folio!r}")
    for mm, items in kernel.ksm.rmap_list.items():
        for item in items:
            if item.head is not None and item not in item.head.hlist:
                raise ModelInvariantError("stable-node", f"{item!r} not on its stable node")
