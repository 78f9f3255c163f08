"""anon_vma, anon_vma_chain and the rmap walks of mm/rmap.c.

``struct anon_vma`` holds an interval tree (``rb_root``) of ``anon_vma_chain`` nodes, one per
VMA that may map pages of that anon_vma; ``vma.anon_vma_chain`` lists a VMA's chains, most
recently linked first (``list_add`` in ``anon_vma_chain_assign``).  The functions keep the
kernel's names and orders: ``anon_vma_clone`` walks the source list in reverse,
``anon_vma_fork`` links the child into every anon_vma of the parent's chain and then into its
own, and VMA boundary changes remove and re-insert a VMA's nodes around the change
(``anon_vma_interval_tree_pre_update_vma`` / ``_post_update_vma``) so equal starts keep the
kernel's order.

``rmap_walk_anon`` and ``rmap_walk_file`` are the non-KSM walks; ``rmap_walk_ksm`` lives in
``ksm.py``.  Every walk fills a :class:`RmapWalkStats` with the counters of docs/scenarios.md.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Callable

from .interval_tree import IntervalTree, IntervalTreeNode

_ids = itertools.count(1)


class AnonVma:
    """``struct anon_vma``."""

    __slots__ = ("id", "root", "parent", "rb_root", "num_children", "num_active_vmas")

    def __init__(self) -> None:
        self.id = next(_ids)
        self.root: AnonVma = self
        self.parent: AnonVma = self
        self.rb_root = IntervalTree()
        self.num_children = 0
        self.num_active_vmas = 0

    def __repr__(self) -> str:
        return f"AnonVma({self.id}, {len(self.rb_root)} avcs)"


class AnonVmaChain:
    """``struct anon_vma_chain``: links one VMA into one anon_vma's interval tree."""

    __slots__ = ("vma", "anon_vma", "rb")

    def __init__(self, vma, anon_vma: AnonVma):
        self.vma, self.anon_vma, self.rb = vma, anon_vma, None

    def __repr__(self) -> str:
        return f"avc({self.vma!r} in {self.anon_vma.id})"


def avc_start_pgoff(vma) -> int:
    return vma.vm_pgoff


def avc_last_pgoff(vma) -> int:
    """mm/interval_tree.c: ``vma->vm_pgoff + vma_pages(vma) - 1``."""
    return vma.vm_pgoff + vma.pages - 1


def anon_vma_interval_tree_insert(avc: AnonVmaChain) -> None:
    avc.rb = IntervalTreeNode(avc_start_pgoff(avc.vma), avc_last_pgoff(avc.vma), avc)
    avc.anon_vma.rb_root.insert(avc.rb)


def anon_vma_interval_tree_remove(avc: AnonVmaChain) -> None:
    avc.anon_vma.rb_root.remove(avc.rb)
    avc.rb = None


def anon_vma_chain_assign(vma, avc: AnonVmaChain) -> None:
    vma.anon_vma_chain.insert(0, avc)  # list_add(&avc->same_vma, &vma->anon_vma_chain)


def anon_vma_chain_link(vma, anon_vma: AnonVma) -> AnonVmaChain:
    avc = AnonVmaChain(vma, anon_vma)
    anon_vma_chain_assign(vma, avc)
    anon_vma_interval_tree_insert(avc)
    return avc


def anon_vma_interval_tree_pre_update_vma(vma) -> None:
    for avc in vma.anon_vma_chain:
        anon_vma_interval_tree_remove(avc)


def anon_vma_interval_tree_post_update_vma(vma) -> None:
    for avc in vma.anon_vma_chain:
        anon_vma_interval_tree_insert(avc)


def anon_vma_compatible(a, b) -> bool:
    """mm/vma.c: adjacent, same file, flags equal but for access bits, pgoff contiguous."""
    from .mm import VM_ACCESS_FLAGS
    return (a.vm_end == b.vm_start and a.vm_file is b.vm_file
            and not ((a.vm_flags ^ b.vm_flags) & ~VM_ACCESS_FLAGS)
            and b.vm_pgoff == a.vm_pgoff + ((b.vm_start - a.vm_start) >> 12))


def reusable_anon_vma(old, a, b):
    if anon_vma_compatible(a, b) and old.anon_vma is not None and len(old.anon_vma_chain) == 1:
        return old.anon_vma
    return None


def find_mergeable_anon_vma(vma):
    """mm/vma.c ``find_mergeable_anon_vma``: try next first, then prev."""
    nxt = vma.vm_mm.find_vma_after(vma)
    if nxt is not None:
        av = reusable_anon_vma(nxt, vma, nxt)
        if av is not None:
            return av
    prev = vma.vm_mm.find_vma_before(vma)
    if prev is not None:
        return reusable_anon_vma(prev, prev, vma)
    return None


def anon_vma_prepare(vma) -> AnonVma:
    """``__anon_vma_prepare``: on the first fault, give the VMA an anon_vma (a neighbour's if
    reusable, else a new root) and link it."""
    if vma.anon_vma is not None:
        return vma.anon_vma
    anon_vma = find_mergeable_anon_vma(vma)
    if anon_vma is None:
        anon_vma = AnonVma()
        anon_vma.num_children += 1  # self-parent link for new root
    vma.anon_vma = anon_vma
    anon_vma_chain_link(vma, anon_vma)
    anon_vma.num_active_vmas += 1
    return anon_vma


def anon_vma_clone(dst, src) -> None:
    """mm/rmap.c ``anon_vma_clone``: link ``dst`` into every anon_vma ``src`` is linked to,
    walking src's list in reverse so dst's list ends in the same order."""
    for pavc in reversed(src.anon_vma_chain):
        anon_vma = pavc.anon_vma
        anon_vma_chain_link(dst, anon_vma)
        # Reuse an anon_vma with no VMAs left and at most one child (fork reuse).
        if (dst.anon_vma is None and src.anon_vma is not None
                and anon_vma.num_children < 2 and anon_vma.num_active_vmas == 0):
            dst.anon_vma = anon_vma
    if dst.anon_vma is not None:
        dst.anon_vma.num_active_vmas += 1


def anon_vma_fork(vma, pvma) -> None:
    """mm/rmap.c ``anon_vma_fork``: the child's VMA joins the parent's anon_vmas, then gets its
    own anon_vma (whose root is the parent's root) for the pages it will COW."""
    if pvma.anon_vma is None:
        return
    vma.anon_vma = None
    anon_vma_clone(vma, pvma)
    if vma.anon_vma is not None:
        return
    anon_vma = AnonVma()
    anon_vma.num_active_vmas += 1
    anon_vma.root = pvma.anon_vma.root
    anon_vma.parent = pvma.anon_vma
    vma.anon_vma = anon_vma
    anon_vma_chain_link(vma, anon_vma)
    anon_vma.parent.num_children += 1


def unlink_anon_vmas(vma) -> None:
    """mm/rmap.c ``unlink_anon_vmas``."""
    for avc in list(vma.anon_vma_chain):
        anon_vma_interval_tree_remove(avc)
        if len(avc.anon_vma.rb_root) == 0:
            avc.anon_vma.parent.num_children -= 1
    if vma.anon_vma is not None:
        vma.anon_vma.num_active_vmas -= 1
    vma.anon_vma_chain.clear()


# --- folios and walks -------------------------------------------------------------------

class Folio:
    """An order-0 ``struct folio``: anonymous, KSM or page cache.

    ``index`` is folio->index (the linear page index for anon pages); ``anon_vma`` is
    folio->mapping for anon pages; ``stable_node`` marks a KSM folio; ``mapping`` is the
    AddressSpace of a file folio.  ``maps`` holds the (mm, address) of every PTE that maps
    it; ``exclusive`` is PageAnonExclusive; ``lru`` is PG_lru.
    """

    __slots__ = ("id", "content", "anon_vma", "index", "mapping", "stable_node", "maps",
                 "nid", "exclusive", "lru")

    def __init__(self, content, *, anon_vma=None, index=0, mapping=None):
        self.id = next(_ids)
        self.content = content
        self.anon_vma, self.index, self.mapping = anon_vma, index, mapping
        self.stable_node = None
        self.maps: set = set()
        self.nid = 0
        self.exclusive = True
        self.lru = True     # PG_lru; a new folio waits in the LRU batch first (model/swap.py)

    @property
    def mapcount(self) -> int:
        return len(self.maps)

    @property
    def page_type(self) -> str:
        if self.stable_node is not None:
            return "ksm"
        return "file" if self.mapping is not None else "anon"

    def __repr__(self) -> str:
        return f"Folio({self.id}, {self.page_type}, index={self.index:#x})"


class AddressSpace:
    """``struct address_space`` of a shmem file: ``i_mmap`` and the page cache."""

    def __init__(self, name: str, size: int | None = None):
        self.name = name
        self.size = size        # i_size in pages (the replayer ftruncate()s to the region)
        self.i_mmap = IntervalTree()
        self.pages: dict[int, Folio] = {}


@dataclasses.dataclass
class RmapWalkStats:
    """The counters of one walk (docs/scenarios.md), plus ``touched``: tree nodes dereferenced,
    and the maxima over the walk's loops (``loop_*_max``).

    A *loop* is one ``anon_vma_interval_tree_foreach`` (or ``vma_interval_tree_foreach``)
    loop: ``rmap_walk_ksm`` makes one per rmap_item and pass, ``rmap_walk_anon`` and
    ``rmap_walk_file`` one per walk.  The v1 report counted per loop (its livepatch kept each
    counter's maximum); the tracepoint counts per walk, so only the model gives both."""

    iterations: int = 0
    skip_addr: int = 0
    skip_mm: int = 0
    rmap_one: int = 0
    touched: int = 0
    loop_iterations_max: int = 0
    loop_skip_addr_max: int = 0
    loop_skip_mm_max: int = 0

    def end_loop(self, iterations: int, skip_addr: int, skip_mm: int) -> None:
        """One loop ended (run out, or the walk stopped inside it) with these counters."""
        self.loop_iterations_max = max(self.loop_iterations_max, iterations)
        self.loop_skip_addr_max = max(self.loop_skip_addr_max, skip_addr)
        self.loop_skip_mm_max = max(self.loop_skip_mm_max, skip_mm)


@dataclasses.dataclass
class RmapWalkControl:
    """``struct rmap_walk_control``.

    ``rmap_one(folio, vma, address) -> bool`` (False stops the walk) and optional
    ``done(folio) -> bool``; ``reason`` says why the kernel walks (see walks.REASONS).
    """

    rmap_one: Callable
    done: Callable | None = None
    reason: str = "other"


def vma_address(vma, pgoff: int) -> int:
    return vma.vm_start + ((pgoff - vma.vm_pgoff) << 12)


def _rmap_walk_pgoff(tree, folio: Folio, vma_of, rwc: RmapWalkControl, stats: RmapWalkStats) -> None:
    """The loop rmap_walk_anon and rmap_walk_file share: the tree queried at the folio's
    index, rmap_one on every VMA found, stop when rmap_one or done() says so."""
    pgoff = folio.index
    before, first = tree.touched, stats.iterations
    for node in tree.foreach(pgoff, pgoff):
        stats.iterations += 1
        vma = vma_of(node)
        stats.rmap_one += 1
        if not rwc.rmap_one(folio, vma, vma_address(vma, pgoff)):
            break
        if rwc.done is not None and rwc.done(folio):
            break
    stats.touched += tree.touched - before
    stats.end_loop(stats.iterations - first, 0, 0)


def rmap_walk_anon(folio: Folio, rwc: RmapWalkControl, stats: RmapWalkStats) -> None:
    """mm/rmap.c ``rmap_walk_anon``: query the folio's anon_vma at its index."""
    _rmap_walk_pgoff(folio.anon_vma.rb_root, folio, lambda node: node.item.vma, rwc, stats)


def rmap_walk_file(folio: Folio, rwc: RmapWalkControl, stats: RmapWalkStats) -> None:
    """mm/rmap.c ``rmap_walk_file``: query the mapping's i_mmap at the folio's index."""
    _rmap_walk_pgoff(folio.mapping.i_mmap, folio, lambda node: node.item, rwc, stats)
