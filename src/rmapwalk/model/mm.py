"""mm_struct and vm_area_struct with the VMA operations of mm/mmap.c, mm/vma.c, mm/mprotect.c,
mm/mremap.c and kernel/fork.c that change which anon_vma_chains exist and where they sit.

Addresses are bytes, page offsets are pages (PAGE_SHIFT 12).  An anonymous private mapping
gets ``vm_pgoff = addr >> PAGE_SHIFT`` (mm/mmap.c ``do_mmap``); a split keeps the lower part's
pgoff and advances the upper part's; mremap keeps the moved range's pgoff (mm/mremap.c
``move_vma``: ``new_pgoff = vma->vm_pgoff + ((old_addr - vma->vm_start) >> PAGE_SHIFT)``).
Page tables are a dict per mm from page address to :class:`Folio`.
"""
from __future__ import annotations

import bisect
import itertools

from ..contract import PAGE_SHIFT, PAGE_SIZE
from . import rmap
from .interval_tree import IntervalTreeNode
from .rmap import AnonVma, Folio

# include/linux/mm.h
VM_READ, VM_WRITE, VM_EXEC, VM_SHARED = 0x1, 0x2, 0x4, 0x8
VM_MAYREAD, VM_MAYWRITE, VM_MAYSHARE = 0x10, 0x20, 0x80
VM_ACCOUNT = 0x00100000
VM_MERGEABLE = 0x80000000
VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC
PROT_FLAGS = {"none": 0, "r": VM_READ, "rw": VM_READ | VM_WRITE}

_mm_ids = itertools.count(0)


class ModelError(RuntimeError):
    """A system call the real kernel refuses, or an access it answers with a signal.

    ``errno`` is the kernel's name for the failure (``ENOMEM``, ``EFAULT``, or ``SIGSEGV``
    for a fault), ``reason`` says what is wrong with the range (a predicate: "has a hole"), ``source`` is the
    Linux 6.12 function that refuses, and ``addr`` the address where it went wrong (if one)."""

    def __init__(self, errno: str, reason: str, source: str, addr: int | None = None):
        self.errno, self.reason, self.source, self.addr = errno, reason, source, addr
        at = f" at {addr:#x}" if addr is not None else ""
        super().__init__(f"{errno} ({reason}{at}; {source})")


def first_hole(mm: "MmStruct", start: int, end: int) -> int | None:
    """The lowest address of [start, end) that no VMA covers, or None if VMAs cover it all."""
    tmp = start
    for vma in mm.vmas_in(start, end):
        if vma.vm_start > tmp:
            return tmp
        tmp = vma.vm_end
    return tmp if tmp < end else None


class VmAreaStruct:
    """``struct vm_area_struct`` (the fields the rmap cares about)."""

    __slots__ = ("vm_mm", "vm_start", "vm_end", "vm_pgoff", "vm_flags", "anon_vma",
                 "anon_vma_chain", "vm_file", "shared_rb")

    def __init__(self, mm, start, end, pgoff, flags, vm_file=None):
        self.vm_mm, self.vm_start, self.vm_end, self.vm_pgoff = mm, start, end, pgoff
        self.vm_flags, self.vm_file = flags, vm_file
        self.anon_vma: AnonVma | None = None
        self.anon_vma_chain: list = []
        self.shared_rb: IntervalTreeNode | None = None

    @property
    def pages(self) -> int:
        return (self.vm_end - self.vm_start) >> PAGE_SHIFT

    def linear_page_index(self, addr: int) -> int:
        return self.vm_pgoff + ((addr - self.vm_start) >> PAGE_SHIFT)

    def __repr__(self) -> str:
        return (f"vma(mm{self.vm_mm.id} {self.vm_start:#x}-{self.vm_end:#x} "
                f"pgoff={self.vm_pgoff:#x})")


def vm_area_dup(vma: VmAreaStruct, mm=None) -> VmAreaStruct:
    new = VmAreaStruct(mm or vma.vm_mm, vma.vm_start, vma.vm_end, vma.vm_pgoff,
                       vma.vm_flags, vma.vm_file)
    new.anon_vma = vma.anon_vma
    return new


# --- the file side: i_mmap is a vma_interval_tree ------------------------------------------

def vma_interval_tree_insert(vma: VmAreaStruct) -> None:
    vma.shared_rb = IntervalTreeNode(vma.vm_pgoff, vma.vm_pgoff + vma.pages - 1, vma)
    vma.vm_file.i_mmap.insert(vma.shared_rb)


def vma_interval_tree_remove(vma: VmAreaStruct) -> None:
    vma.vm_file.i_mmap.remove(vma.shared_rb)
    vma.shared_rb = None


def vma_interval_tree_insert_after(node: VmAreaStruct, prev: VmAreaStruct) -> None:
    """mm/interval_tree.c: place ``node`` right after ``prev`` in order (fork keeps the
    child's file VMA next to the parent's)."""
    tree = prev.vm_file.i_mmap
    last = node.vm_pgoff + node.pages - 1
    new = IntervalTreeNode(node.vm_pgoff, last, node)
    parent = prev.shared_rb
    if parent.right is None:
        link_left = False
    else:
        parent = parent.right
        if parent.subtree_last < last:
            parent.subtree_last = last
        while parent.left is not None:
            parent = parent.left
            if parent.subtree_last < last:
                parent.subtree_last = last
        link_left = True
    new.subtree_last = last
    new.parent = parent
    if link_left:
        parent.left = new
    else:
        parent.right = new
    tree._insert_color(new)
    tree.count += 1
    tree.version += 1
    node.shared_rb = new


class MmStruct:
    """``struct mm_struct``: the VMAs in address order and the page tables."""

    def __init__(self) -> None:
        self.id = next(_mm_ids)
        self.vmas: list[VmAreaStruct] = []
        self._starts: list[int] = []
        self.pte: dict[int, Folio] = {}
        self.mmf_vm_mergeable = False   # MMF_VM_MERGEABLE: registered with KSM

    def __repr__(self) -> str:
        return f"mm{self.id}"

    # maple tree stand-in
    def find_vma(self, addr: int) -> VmAreaStruct | None:
        """The VMA containing ``addr``, or None (vma_lookup)."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and self.vmas[i].vm_end > addr:
            return self.vmas[i]
        return None

    def vmas_in(self, start: int, end: int) -> list[VmAreaStruct]:
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        out = []
        while i < len(self.vmas) and self.vmas[i].vm_start < end:
            if self.vmas[i].vm_end > start:
                out.append(self.vmas[i])
            i += 1
        return out

    def find_vma_after(self, vma):
        i = bisect.bisect_left(self._starts, vma.vm_start)
        return self.vmas[i + 1] if i + 1 < len(self.vmas) else None

    def find_vma_before(self, vma):
        i = bisect.bisect_left(self._starts, vma.vm_start)
        return self.vmas[i - 1] if i > 0 else None

    def vma_link(self, vma: VmAreaStruct) -> None:
        i = bisect.bisect_left(self._starts, vma.vm_start)
        if i < len(self.vmas) and self.vmas[i].vm_start < vma.vm_end or \
                i > 0 and self.vmas[i - 1].vm_end > vma.vm_start:
            raise ValueError(f"{vma!r} overlaps an existing VMA")
        self._starts.insert(i, vma.vm_start)
        self.vmas.insert(i, vma)

    def vma_unlink(self, vma: VmAreaStruct) -> None:
        i = bisect.bisect_left(self._starts, vma.vm_start)
        assert self.vmas[i] is vma
        del self._starts[i], self.vmas[i]

    def _restart(self, vma, old_start) -> None:
        i = bisect.bisect_left(self._starts, old_start)
        assert self.vmas[i] is vma
        self._starts[i] = vma.vm_start

    # --- page tables ---
    def set_pte(self, addr: int, folio: Folio) -> None:
        old = self.pte.get(addr)
        if old is not None:
            old.maps.discard((self, addr))
        self.pte[addr] = folio
        folio.maps.add((self, addr))

    def clear_pte(self, addr: int) -> Folio | None:
        old = self.pte.pop(addr, None)
        if old is not None:
            old.maps.discard((self, addr))
        return old

    def zap_range(self, start: int, end: int) -> None:
        for addr in range(start, end, PAGE_SIZE):
            self.clear_pte(addr)


# --- vma_prepare / vma_complete: the interval tree side of a boundary change -------------

def _prepare(vmas) -> None:
    """mm/vma.c ``vma_prepare``: ``vmas`` is ``[vp->vma]`` or ``[vp->vma, vp->adj_next]``;
    the anon_vma side (pre_update of vma, then adj_next), then the i_mmap removals."""
    for v in vmas:
        rmap.anon_vma_interval_tree_pre_update_vma(v)
    for v in vmas:
        if v.vm_file is not None:
            vma_interval_tree_remove(v)


def _complete(vmas) -> None:
    """mm/vma.c ``vma_complete``: i_mmap inserts adj_next first, then vma; then the
    anon_vma side re-inserts vma, then adj_next."""
    for v in reversed(vmas):
        if v.vm_file is not None:
            vma_interval_tree_insert(v)
    for v in vmas:
        rmap.anon_vma_interval_tree_post_update_vma(v)


def _set_bounds(mm, vma, start, end, pgoff) -> None:
    old = vma.vm_start
    vma.vm_start, vma.vm_end, vma.vm_pgoff = start, end, pgoff
    if old != start:
        mm._restart(vma, old)


def split_vma(mm: MmStruct, vma: VmAreaStruct, addr: int, new_below: bool) -> VmAreaStruct:
    """mm/vma.c ``__split_vma``: the new VMA is cloned (its chains inserted first), then the old
    VMA's nodes are removed and re-inserted with its new bounds.  Returns the new VMA."""
    assert vma.vm_start < addr < vma.vm_end
    new = vm_area_dup(vma)
    if new_below:
        new.vm_end = addr
    else:
        new.vm_start = addr
        new.vm_pgoff += (addr - vma.vm_start) >> PAGE_SHIFT
    # vm_area_dup() copied vma->anon_vma, so anon_vma_clone() never reuses an anon_vma here
    # and counts the new VMA in anon_vma->num_active_vmas (mm/rmap.c anon_vma_clone).
    rmap.anon_vma_clone(new, vma)
    if new.vm_file is not None:
        vma_interval_tree_insert(new)  # __vma_link_file in vma_prepare
    _prepare([vma])
    if new_below:
        _set_bounds(mm, vma, addr, vma.vm_end, vma.vm_pgoff + ((addr - new.vm_start) >> PAGE_SHIFT))
    else:
        vma.vm_end = addr
    _complete([vma])
    mm.vma_link(new)
    return new


def _is_mergeable_anon_vma(av1, av2, vma) -> bool:
    """mm/vma.c ``is_mergeable_anon_vma``: ``vma`` is the existing neighbour (prev or next)
    or None; ``list_is_singular`` is exactly one chain (an empty list is not singular)."""
    if (av1 is None or av2 is None) and (vma is None or len(vma.anon_vma_chain) == 1):
        return True
    return av1 is av2


def _dup_anon_vma(dst, src) -> None:
    """mm/vma.c ``dup_anon_vma``: the expanding VMA takes the shrinking one's anon_vma
    (set before ``anon_vma_clone``, which then counts it in num_active_vmas)."""
    if src.anon_vma is not None and dst.anon_vma is None:
        dst.anon_vma = src.anon_vma
        rmap.anon_vma_clone(dst, src)


def _remove_vma(mm, vma) -> None:
    """Unlink a VMA absorbed by a merge (vma_complete's ``anon_vma_merge`` + removal)."""
    rmap.unlink_anon_vmas(vma)
    if vma.vm_file is not None and vma.shared_rb is not None:
        vma_interval_tree_remove(vma)
    mm.vma_unlink(vma)


def vma_modify_flags(mm: MmStruct, vma: VmAreaStruct, start: int, end: int, flags: int) -> VmAreaStruct:
    """mm/vma.c ``vma_modify``: merge with a neighbour if the range touches one that will have
    the same flags (``vma_merge_existing_range``), else split off the parts outside
    [start, end) and set the flags."""
    if flags == vma.vm_flags:
        return vma
    # VMG_VMA_STATE: the proposed VMA has vma's anon_vma and file, the new flags, and the
    # page offset of ``start`` in vma.
    left_side, right_side = start == vma.vm_start, end == vma.vm_end
    prev, nxt = mm.find_vma_before(vma), mm.find_vma_after(vma)
    pgoff = vma.linear_page_index(start)
    pglen = (end - start) >> PAGE_SHIFT
    # vma_merge_existing_range(): can_vma_merge_left() = prev adjacent and
    # can_vma_merge_after(); can_vma_merge_right() = next adjacent and can_vma_merge_before(),
    # and, when merging left too, are_anon_vmas_compatible(prev, next).
    merge_left = (left_side and prev is not None and prev.vm_end == start
                  and prev.vm_flags == flags and prev.vm_file is vma.vm_file
                  and _is_mergeable_anon_vma(vma.anon_vma, prev.anon_vma, prev)
                  and prev.vm_pgoff + prev.pages == pgoff)
    merge_right = (right_side and nxt is not None and nxt.vm_start == end
                   and nxt.vm_flags == flags and nxt.vm_file is vma.vm_file
                   and _is_mergeable_anon_vma(vma.anon_vma, nxt.anon_vma, nxt)
                   and nxt.vm_pgoff == pgoff + pglen
                   and (not merge_left
                        or _is_mergeable_anon_vma(prev.anon_vma, nxt.anon_vma, None)))
    probe_pgoff = pgoff
    if merge_left or merge_right:
        delete_vma = left_side and right_side
        if merge_left and merge_right:
            _dup_anon_vma(prev, nxt if nxt.anon_vma is not None else vma)
            _prepare([prev])
            _set_bounds(mm, prev, prev.vm_start, nxt.vm_end, prev.vm_pgoff)
            _complete([prev])
            _remove_vma(mm, vma)
            _remove_vma(mm, nxt)
            return prev
        if merge_left:
            _dup_anon_vma(prev, vma)
            adjust = None if delete_vma else vma
            _prepare([prev] + ([adjust] if adjust else []))
            # Shrink vma first so the maple-tree stand-in never holds overlapping ranges.
            if adjust is not None:
                _set_bounds(mm, vma, end, vma.vm_end, vma.linear_page_index(end))
            _set_bounds(mm, prev, prev.vm_start, end, prev.vm_pgoff)
            _complete([prev] + ([adjust] if adjust else []))
            if delete_vma:
                _remove_vma(mm, vma)
            return prev
        _dup_anon_vma(nxt, vma)
        # merge_right: when vma is only shrunk, vp->vma is vma and adj_next is next;
        # when vma goes, vp->vma is next (expanded) and vma is vp->remove.
        order = [nxt] if delete_vma else [vma, nxt]
        _prepare(order)
        if not delete_vma:
            _set_bounds(mm, vma, vma.vm_start, start, vma.vm_pgoff)
        else:
            vma.vm_end = vma.vm_start  # about to be removed; keep lookups sane
        _set_bounds(mm, nxt, start, nxt.vm_end, probe_pgoff)
        _complete(order)
        if delete_vma:
            vma.vm_end = end
            _remove_vma(mm, vma)    # still before nxt in the list: same start, lower index
        return nxt
    if vma.vm_start < start:
        split_vma(mm, vma, start, True)
    if vma.vm_end > end:
        split_vma(mm, vma, end, False)
    vma.vm_flags = flags
    return vma


def mprotect(mm: MmStruct, start: int, end: int, prot: str) -> None:
    """mm/mprotect.c ``do_mprotect_pkey`` → ``mprotect_fixup`` for each VMA in the range.

    A hole refuses the call with ENOMEM: none is applied if ``start`` itself is unmapped
    (``vma->vm_start > start``), else every VMA below the hole keeps its new protection
    (``vma->vm_start != tmp`` breaks out of the loop; ``tmp < end`` at the end)."""
    want = PROT_FLAGS[prot]
    hole = first_hole(mm, start, end)
    for vma in mm.vmas_in(start, end):
        if hole is not None and vma.vm_start >= hole:
            break
        flags = (vma.vm_flags & ~VM_ACCESS_FLAGS) | want
        vma_modify_flags(mm, vma, max(start, vma.vm_start), min(end, vma.vm_end), flags)
    if hole is not None:
        raise ModelError("ENOMEM", "has a hole", "mm/mprotect.c do_mprotect_pkey",
                         addr=hole)


def _prev_next(mm: MmStruct, start: int, end: int):
    """The VMAs around the empty range [start, end): ``find_vma_prev`` and ``vma_next``."""
    i = bisect.bisect_left(mm._starts, start)
    prev = mm.vmas[i - 1] if i > 0 else None
    nxt = mm.vmas[i] if i < len(mm.vmas) else None
    assert (prev is None or prev.vm_end <= start) and (nxt is None or nxt.vm_start >= end)
    return prev, nxt


def vma_merge_new_range(mm: MmStruct, prev, nxt, start: int, end: int, pgoff: int, flags: int,
                        file, anon_vma) -> VmAreaStruct | None:
    """mm/vma.c ``vma_merge_new_range``: can the new range [start, end) with these flags,
    file, anon_vma and page offset extend ``prev`` (``can_vma_merge_left`` →
    ``can_vma_merge_after``) and/or ``nxt`` (``can_vma_merge_right`` →
    ``can_vma_merge_before``, plus ``are_anon_vmas_compatible(prev, next)`` when both)?
    Then ``vma_expand``: the surviving VMA (prev if it merges, else next) takes the whole
    range; when both merge, next is removed after ``dup_anon_vma(prev, next)``.  Returns the
    expanded VMA, or None (no merge).  Flags compare exactly (is_mergeable_vma ignores only
    VM_SOFTDIRTY, which the model does not have)."""
    pglen = (end - start) >> PAGE_SHIFT
    left = (prev is not None and prev.vm_end == start and prev.vm_flags == flags
            and prev.vm_file is file and _is_mergeable_anon_vma(anon_vma, prev.anon_vma, prev)
            and prev.vm_pgoff + prev.pages == pgoff)
    right = (nxt is not None and nxt.vm_start == end and nxt.vm_flags == flags
             and nxt.vm_file is file and _is_mergeable_anon_vma(anon_vma, nxt.anon_vma, nxt)
             and nxt.vm_pgoff == pgoff + pglen
             and (not left or _is_mergeable_anon_vma(prev.anon_vma, nxt.anon_vma, None)))
    if left:
        vma = prev
        new_end = nxt.vm_end if right else end
        if right:       # vma_expand(): remove_next, dup_anon_vma(vma, next)
            _dup_anon_vma(prev, nxt)
        _prepare([prev])
        if right:       # vma_complete(): vp->remove
            _remove_vma_links(nxt)
            mm.vma_unlink(nxt)
        _set_bounds(mm, prev, prev.vm_start, new_end, prev.vm_pgoff)
        _complete([prev])
        return vma
    if right:           # vma_expand() of next down to start
        _prepare([nxt])
        _set_bounds(mm, nxt, start, nxt.vm_end, nxt.vm_pgoff - pglen)
        _complete([nxt])
        return nxt
    return None


def _remove_vma_links(vma) -> None:
    """vma_complete() for ``vp->remove``: ``anon_vma_merge`` (unlink_anon_vmas) and the
    i_mmap removal of a VMA absorbed by a merge."""
    rmap.unlink_anon_vmas(vma)
    if vma.vm_file is not None and vma.shared_rb is not None:
        vma_interval_tree_remove(vma)


def do_mmap(mm: MmStruct, addr: int, pages: int, *, file=None) -> VmAreaStruct:
    """mm/mmap.c ``do_mmap`` → ``__mmap_region`` with MAP_FIXED_NOREPLACE: EEXIST if anything
    is mapped in the range; an anonymous private RW mapping (pgoff = addr >> PAGE_SHIFT), or
    MAP_SHARED of a shmem file from offset 0.  The new range first tries to extend a
    neighbour (mm/vma.c ``vma_merge_new_range`` with no anon_vma): only a region placed
    right after another (``after``) has one."""
    end = addr + pages * PAGE_SIZE
    if mm.vmas_in(addr, end):
        raise ModelError("EEXIST", "is already mapped (MAP_FIXED_NOREPLACE)",
                         "mm/mmap.c do_mmap", addr=mm.vmas_in(addr, end)[0].vm_start)
    if file is None:
        flags = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_ACCOUNT
        pgoff = addr >> PAGE_SHIFT
    else:
        flags = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_SHARED | VM_MAYSHARE
        pgoff = 0
    prev, nxt = _prev_next(mm, addr, end)
    merged = vma_merge_new_range(mm, prev, nxt, addr, end, pgoff, flags, file, None)
    if merged is not None:
        return merged
    vma = VmAreaStruct(mm, addr, end, pgoff, flags, vm_file=file)
    if file is not None:
        vma_interval_tree_insert(vma)
    mm.vma_link(vma)
    return vma


def exit_mmap(mm: MmStruct) -> None:
    """mm/mmap.c ``exit_mmap`` (from kernel/fork.c ``__mmput`` after ``ksm_exit``): every
    page unmapped (``unmap_vmas``), then ``free_pgtables`` unlinks every VMA from its
    anon_vmas (``unlink_anon_vmas``) and from i_mmap (``unlink_file_vma``), and the VMAs go."""
    for addr in list(mm.pte):
        mm.clear_pte(addr)
    for vma in list(mm.vmas):
        _remove_vma_links(vma)
    mm.vmas.clear()
    mm._starts.clear()


def do_munmap(mm: MmStruct, start: int, end: int) -> None:
    """mm/vma.c ``do_vmi_align_munmap``: split at both ends (new above each time), zap the
    pages, unlink the VMAs' chains."""
    vmas = mm.vmas_in(start, end)
    if not vmas:
        return
    first = vmas[0]
    if first.vm_start < start:
        split_vma(mm, first, start, False)
        vmas = mm.vmas_in(start, end)
    last = vmas[-1]
    if last.vm_end > end:
        split_vma(mm, last, end, False)
        vmas = mm.vmas_in(start, end)
    mm.zap_range(start, end)
    for vma in vmas:
        rmap.unlink_anon_vmas(vma)
        if vma.vm_file is not None:
            vma_interval_tree_remove(vma)
        mm.vma_unlink(vma)


def mremap_to(mm: MmStruct, old_addr: int, length: int, new_addr: int, ksm=None) -> VmAreaStruct:
    """mremap(MREMAP_MAYMOVE|MREMAP_FIXED, same length): the syscall's ``vma_lookup`` of the
    source first (EFAULT, nothing changed); then mm/mremap.c ``mremap_to``: EINVAL if the old
    and new ranges overlap; whatever is mapped at the destination is unmapped (``do_munmap``)
    *before* ``vma_to_resize`` checks the source range (EFAULT if it crosses the end of its
    VMA, with the destination already gone), and ``move_vma`` moves the range."""
    if mm.find_vma(old_addr) is None:
        raise ModelError("EFAULT", "starts where nothing is mapped", "mm/mremap.c "
                         "vma_to_resize (vma_lookup: the mremap syscall makes it first)",
                         addr=old_addr)
    if old_addr + length > new_addr and new_addr + length > old_addr:
        raise ModelError("EINVAL", "overlaps its destination", "mm/mremap.c mremap_to",
                         addr=new_addr)
    do_munmap(mm, new_addr, new_addr + length)
    return move_vma(mm, old_addr, length, new_addr, ksm=ksm)


def copy_vma(mm: MmStruct, vma: VmAreaStruct, addr: int, length: int, pgoff: int) -> VmAreaStruct:
    """mm/vma.c ``copy_vma``: a never-faulted anonymous VMA takes ``pgoff = addr >>
    PAGE_SHIFT`` ("to increase its chance of merging"); the new range first tries to extend
    its neighbours (``vma_merge_new_range`` with vma's flags, file and anon_vma: possible when
    the destination touches another VMA, e.g. MREMAP_FIXED into an existing region), else
    ``vm_area_dup`` + ``anon_vma_clone``: the copy keeps vma->anon_vma and is counted in its
    num_active_vmas."""
    if vma.vm_file is None and vma.anon_vma is None:
        pgoff = addr >> PAGE_SHIFT
    prev, nxt = _prev_next(mm, addr, addr + length)
    new = vma_merge_new_range(mm, prev, nxt, addr, addr + length, pgoff, vma.vm_flags,
                              vma.vm_file, vma.anon_vma)
    if new is not None:
        return new
    new = VmAreaStruct(mm, addr, addr + length, pgoff, vma.vm_flags, vma.vm_file)
    new.anon_vma = vma.anon_vma
    rmap.anon_vma_clone(new, vma)
    if new.vm_file is not None:
        vma_interval_tree_insert(new)
    mm.vma_link(new)
    return new


def move_vma(mm: MmStruct, old_addr: int, length: int, new_addr: int, ksm=None) -> VmAreaStruct:
    """mm/mremap.c ``move_vma`` for a range inside one VMA: KSM pages in the range are broken
    first (``ksm_madvise(MADV_UNMERGEABLE)`` without changing the flags), ``copy_vma``
    clones the VMA at the new address keeping the page offset, the page tables move, and the
    old range is unmapped."""
    # mm/mremap.c vma_to_resize(): vma_lookup(addr) fails -> EFAULT (the range was moved
    # away or unmapped); "We can't remap across vm area boundaries" -> EFAULT.
    vma = mm.find_vma(old_addr)
    if vma is None:
        raise ModelError("EFAULT", "starts where nothing is mapped", "mm/mremap.c vma_to_resize",
                         addr=old_addr)
    if length > vma.vm_end - old_addr:
        raise ModelError("EFAULT", "crosses the end of its VMA",
                         "mm/mremap.c vma_to_resize", addr=vma.vm_end)
    if ksm is not None and vma.vm_flags & VM_MERGEABLE:
        ksm.unmerge_range(mm, old_addr, old_addr + length)
    new = copy_vma(mm, vma, new_addr, length, vma.linear_page_index(old_addr))
    for off in range(0, length, PAGE_SIZE):     # move_page_tables
        folio = mm.pte.get(old_addr + off)
        if folio is not None:
            mm.clear_pte(old_addr + off)
            mm.set_pte(new_addr + off, folio)
    do_munmap(mm, old_addr, old_addr + length)
    return new


def mremap_resize(mm: MmStruct, addr: int, old_len: int, new_len: int) -> None:
    """mremap(addr, old_len, new_len, 0): resize in place (mm/mremap.c, the syscall).
    ``vma_lookup(addr)`` fails: EFAULT.  Shrinking (or equal) always succeeds: the tail
    ``[addr + new_len, addr + old_len)`` is unmapped (``do_vmi_munmap``).  Growing:
    ``vma_to_resize`` refuses a range crossing the end of its VMA (EFAULT); if the range ends
    its VMA and nothing is mapped in the next ``new_len - old_len`` bytes
    (``vma_expandable``), ``vma_merge_extend`` expands the VMA there (and merges with the next
    VMA if it now touches a compatible one); otherwise, without MREMAP_MAYMOVE, ENOMEM."""
    vma = mm.find_vma(addr)
    if vma is None:
        raise ModelError("EFAULT", "starts where nothing is mapped", "mm/mremap.c mremap "
                         "(vma_lookup)", addr=addr)
    if new_len <= old_len:
        if new_len < old_len:
            do_munmap(mm, addr + new_len, addr + old_len)
        return
    if old_len > vma.vm_end - addr:
        raise ModelError("EFAULT", "crosses the end of its VMA", "mm/mremap.c vma_to_resize",
                         addr=vma.vm_end)
    delta = new_len - old_len
    if old_len != vma.vm_end - addr or mm.vmas_in(vma.vm_end, vma.vm_end + delta):
        raise ModelError("ENOMEM", "cannot grow in place (the range does not end its VMA, or "
                         "the pages after it are mapped) and may not move",
                         "mm/mremap.c mremap (vma_expandable, no MREMAP_MAYMOVE)", addr=vma.vm_end)
    # vma_merge_extend(): VMG_VMA_STATE(vma, vma, end, end + delta), prev = vma itself
    start = vma.vm_end
    _, nxt = _prev_next(mm, start, start + delta)
    merged = vma_merge_new_range(mm, vma, nxt, start, start + delta,
                                 vma.linear_page_index(start), vma.vm_flags, vma.vm_file,
                                 vma.anon_vma)
    assert merged is vma


def dup_mmap(oldmm: MmStruct, ksm=None) -> MmStruct:
    """kernel/fork.c ``dup_mmap``: copy every VMA; anonymous ones go through ``anon_vma_fork``,
    file ones are inserted right after the parent's in i_mmap.  Page tables are copied only
    where mm/memory.c ``vma_needs_copy`` says so: a VMA with an anon_vma (its present PTEs are
    shared, the child maps the same folios, including KSM ones); a MAP_SHARED file VMA has
    none, so the child maps its file pages only when it faults them itself."""
    mm = MmStruct()
    if ksm is not None and oldmm.mmf_vm_mergeable:
        ksm.ksm_fork(mm)
    for mpnt in oldmm.vmas:
        tmp = vm_area_dup(mpnt, mm)
        tmp.anon_vma_chain = []
        rmap.anon_vma_fork(tmp, mpnt)
        if tmp.vm_file is not None:
            vma_interval_tree_insert_after(tmp, mpnt)
        mm.vma_link(tmp)
    for addr, folio in list(oldmm.pte.items()):
        vma = oldmm.find_vma(addr)
        if vma is None or vma.anon_vma is None:     # copy_page_range: !vma_needs_copy()
            continue
        mm.set_pte(addr, folio)
        folio.exclusive = False   # copy_present_pte: the anon page is now shared
    return mm
