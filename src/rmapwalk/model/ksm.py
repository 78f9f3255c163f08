"""KSM as mm/ksm.c does it: rmap_items, the stable and unstable trees, ksmd's scan, and
``rmap_walk_ksm`` with the three queries this project compares.

The scan (``scan_get_next_rmap_item`` + ``cmp_and_merge_page``) is replayed page by page in
the kernel's order: mm_slots in list order (a forked mm is inserted just behind the scan
cursor, ``__ksm_enter``), VMAs in address order, present anonymous pages in address order.
A page goes to the stable tree if an identical KSM page with room exists; otherwise, once
its checksum is unchanged since the previous scan, to the unstable tree (reset at the start
of every scan), where the second identical page makes a new KSM page.  A KSM page takes at
most ``max_page_sharing`` rmap_items; more identical pages make further KSM pages chained
under one stable node (``stable_node_chain``); a process forked after the merge joins its
parent's KSM page over the limit (``max_page_sharing_bypass``).  Trees are keyed by page
content: only equality matters for which pages merge.

``rmap_walk_ksm`` visits ``stable_node->hlist`` (newest first, ``hlist_add_head``) twice
(``search_new_forks`` 0 then 1) and for each rmap_item iterates its anon_vma's interval tree
over a query that depends on the strategy:

* ``baseline``: ``[0, ULONG_MAX]`` (Linux 6.12);
* ``naive``: ``[address >> PAGE_SHIFT]`` (v1-v3; wrong after mremap);
* ``pgoff``: the page index stored in the rmap_item at merge time (v4).
"""
from __future__ import annotations

import itertools

from ..contract import PAGE_SHIFT, PAGE_SIZE
from .interval_tree import ULONG_MAX
from .rmap import Folio, RmapWalkControl, RmapWalkStats

# The kernels this project compares, by the query rmap_walk_ksm() makes: the one list of
# strategies (the simulator, the analysis and the command line take it from here).
STRATEGIES = ("baseline", "naive", "pgoff")
_ids = itertools.count(1)


class KsmRmapItem:
    """``struct ksm_rmap_item``.  ``vm_pgoff`` is the v4 field (valid while stable)."""

    __slots__ = ("id", "mm", "address", "anon_vma", "head", "oldchecksum", "age",
                 "remaining_skips", "vm_pgoff", "unstable_content")

    def __init__(self, mm, address: int):
        self.id = next(_ids)
        self.mm, self.address = mm, address
        self.anon_vma = None
        self.head: StableNode | None = None
        self.oldchecksum = None   # the kernel starts from 0; no real page sums to None
        self.age = 0
        self.remaining_skips = 0
        self.vm_pgoff = None
        self.unstable_content = None

    def query(self, strategy: str) -> tuple[int, int]:
        """The [start, last] that ``rmap_walk_ksm`` passes to the interval tree."""
        if strategy == "baseline":
            return 0, ULONG_MAX
        if strategy == "naive":
            p = self.address >> PAGE_SHIFT
            return p, p
        if strategy == "pgoff":
            return self.vm_pgoff, self.vm_pgoff
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")

    def __repr__(self) -> str:
        return f"rmap_item(mm{self.mm.id} {self.address:#x})"


class StableNode:
    """A ``struct ksm_stable_node`` that owns a KSM folio (a "dup" when chained)."""

    __slots__ = ("id", "hlist", "folio", "content", "chain")

    def __init__(self, folio: Folio, content):
        self.id = next(_ids)
        self.hlist: list[KsmRmapItem] = []   # index 0 is hlist->first
        self.folio, self.content, self.chain = folio, content, None

    @property
    def rmap_hlist_len(self) -> int:
        return len(self.hlist)


class StableNodeChain:
    """A stable node chain: the dups of one content, ``hlist`` order (head first)."""

    __slots__ = ("dups",)

    def __init__(self, dups):
        self.dups = list(dups)


class Ksm:
    """The KSM state: ``ksm_mm_head`` and the scan cursor, the trees, and the knobs."""

    def __init__(self, max_page_sharing: int = 256, strategy: str = "baseline"):
        self.max_page_sharing = max_page_sharing
        # v4 (kernel-config/patches/0002): vm_pgoff shares its space with oldchecksum, age
        # and remaining_skips, which rmap_item_reset_unstable() zeroes when an item leaves the
        # stable tree; should_skip_rmap_item() leaves items still in the stable tree alone.
        self.pgoff_union = strategy == "pgoff"
        self.mm_slots: list = []            # ksm_mm_head list, in order
        self.rmap_list: dict = {}           # mm -> its rmap_items in address order
        self.stable_tree: dict = {}         # content -> StableNode or StableNodeChain
        self.unstable_tree: dict = {}       # content -> rmap_item (this scan only)
        self.seqnr = 0                      # ksm_scan.seqnr == full_scans
        self.lru = None                     # the LRU batch (model/swap.py), if any
        # /sys/kernel/mm/ksm/stable_node_chains_prune_millisecs (kernel default 2000)
        self.chain_prune_millisecs = 2000

    # --- joining -----------------------------------------------------------------------
    def ksm_enter(self, mm) -> None:
        """``__ksm_enter``: insert just behind the scanning cursor.  Steps run between scans,
        when the cursor is ``ksm_mm_head``, so that is the end of the list."""
        if mm.mmf_vm_mergeable:
            return
        mm.mmf_vm_mergeable = True
        self.rmap_list[mm] = []
        self.mm_slots.append(mm)

    def ksm_fork(self, mm) -> None:
        self.ksm_enter(mm)

    def ksm_exit(self, mm) -> None:
        """mm/ksm.c ``__ksm_exit`` (kernel/fork.c ``__mmput``, before ``exit_mmap``): an mm
        slot without rmap_items is freed at once ("easy_to_free"); one with rmap_items is
        ``list_move``d right behind the scan cursor -- between steps that is ``ksm_mm_head``,
        so to the front of the list -- and stays there with its rmap_items (still on their
        stable nodes) until ksmd's next scan reaches it: ``scan_get_next_rmap_item`` sees
        ``ksm_test_exit``, ``remove_trailing_rmap_items`` drops every item and the slot is
        freed (``_scan_mm`` of an mm without VMAs does exactly that)."""
        if not mm.mmf_vm_mergeable:
            return                          # mm_slot_lookup() finds no slot
        self.mm_slots.remove(mm)
        if not self.rmap_list[mm]:
            del self.rmap_list[mm]
            mm.mmf_vm_mergeable = False
            return
        self.mm_slots.insert(0, mm)

    # --- the scan ------------------------------------------------------------------------
    def run_full_scans(self, n: int, kernel) -> None:
        """Let ksmd run until ``n`` more full scans have completed, then stop it (``run=0``):
        each scan starts at ``ksm_mm_head``, which is where ksmd's batch ends a scan."""
        target = self.seqnr + n
        while self.seqnr < target:
            if not self.mm_slots:
                # scan_get_next_rmap_item(): "if (list_empty(&ksm_mm_head.slot.mm_node))
                # return NULL" before the scan starts: full_scans never grows, and the
                # replayer's ksm_merge gives up after its timeout.
                from .mm import ModelError
                raise ModelError("ETIMEDOUT", "finds no process registered with KSM (no "
                                 "mergeable VMA), so no full scan completes",
                                 "mm/ksm.c scan_get_next_rmap_item")
            self._scan(kernel)

    def _scan(self, kernel) -> None:
        if self.mm_slots and self.lru is not None:
            self.lru.lru_add_drain()        # scan_get_next_rmap_item: lru_add_drain_all()
        self.unstable_tree = {}             # root_unstable_tree[nid] = RB_ROOT
        for mm in list(self.mm_slots):
            self._scan_mm(mm, kernel)
        for item in self.unstable_tree.values():
            item.unstable_content = None
        self.seqnr += 1

    def _scan_mm(self, mm, kernel) -> None:
        from .mm import VM_MERGEABLE
        old = self.rmap_list[mm]
        new_list: list[KsmRmapItem] = []
        j = 0
        any_mergeable = False
        for vma in list(mm.vmas):
            if not vma.vm_flags & VM_MERGEABLE:
                continue
            any_mergeable = True    # ksm_scan.address = vma->vm_start: no longer 0
            if vma.anon_vma is None:
                continue
            for addr in range(vma.vm_start, vma.vm_end, PAGE_SIZE):
                folio = mm.pte.get(addr)
                if folio is None or folio.mapping is not None:
                    continue
                # get_next_rmap_item: drop items for addresses no longer scanned
                while j < len(old) and old[j].address < addr:
                    self.remove_rmap_item_from_tree(old[j])
                    j += 1
                if j < len(old) and old[j].address == addr:
                    item = old[j]
                    j += 1
                else:
                    item = KsmRmapItem(mm, addr)
                new_list.append(item)
                if self._should_skip_rmap_item(folio, item):
                    continue
                self.cmp_and_merge_page(kernel, mm, vma, addr, folio, item)
        for item in old[j:]:                # remove_trailing_rmap_items
            self.remove_rmap_item_from_tree(item)
        self.rmap_list[mm] = new_list
        if not any_mergeable:
            # scan_get_next_rmap_item(): "if (ksm_scan.address == 0)": an mm without any
            # VM_MERGEABLE VMA leaves ksm_mm_head and loses MMF_VM_MERGEABLE; a later
            # madvise(MADV_MERGEABLE) __ksm_enter()s it again, at the tail.
            self.mm_slots.remove(mm)
            del self.rmap_list[mm]
            mm.mmf_vm_mergeable = False

    def _should_skip_rmap_item(self, folio, item) -> bool:
        """``should_skip_rmap_item`` (smart scan, on by default since 6.7)."""
        if folio.stable_node is not None:
            return False
        if self.pgoff_union and item.head is not None:
            return False    # v4: "if (rmap_item->address & STABLE_FLAG) return false;"
        age = item.age
        if age != 255:
            item.age += 1
        if age < 3:
            return False
        if not item.remaining_skips:
            item.remaining_skips = 1 if age <= 3 else 2 if age <= 5 else 4 if age <= 8 else 8
            return False
        item.remaining_skips -= 1
        self.remove_rmap_item_from_tree(item)
        return True

    def remove_rmap_item_from_tree(self, item: KsmRmapItem) -> None:
        node = item.head
        if node is not None:
            node.hlist.remove(item)
            self._leave_stable_tree(item)
            if not node.hlist and node.folio.mapcount == 0:
                self._free_stable_node(node)
        if item.unstable_content is not None:
            if self.unstable_tree.get(item.unstable_content) is item:
                del self.unstable_tree[item.unstable_content]
            item.unstable_content = None

    def _leave_stable_tree(self, item: KsmRmapItem) -> None:
        """What remove_rmap_item_from_tree() and remove_node_from_stable_tree() do to an item
        leaving the stable tree: put_anon_vma, clear STABLE_FLAG; v4 also
        rmap_item_reset_unstable() (the union's oldchecksum/age/remaining_skips read 0, so the
        item starts again like a new one: one checksum round, a fresh smart-scan age)."""
        item.head = None
        item.anon_vma = None
        item.vm_pgoff = None
        if self.pgoff_union:
            item.oldchecksum = None     # 0 in the kernel: no page's checksum
            item.age = 0
            item.remaining_skips = 0

    def _free_stable_node(self, node: StableNode) -> None:
        # remove_node_from_stable_tree(): every rmap_item still listed leaves the tree
        for item in node.hlist:
            self._leave_stable_tree(item)
        node.hlist = []
        entry = self.stable_tree.get(node.content)
        if entry is node:
            del self.stable_tree[node.content]
        elif isinstance(entry, StableNodeChain) and node in entry.dups:
            entry.dups.remove(node)
            if len(entry.dups) == 1:
                self.stable_tree[node.content] = entry.dups[0]
                entry.dups[0].chain = None
            elif not entry.dups:
                del self.stable_tree[node.content]
        node.folio.stable_node = None

    def is_page_sharing_candidate(self, node: StableNode, offset: int = 0) -> bool:
        """mm/ksm.c ``__is_page_sharing_candidate``: at least one rmap_item still maps the
        page ("otherwise there's no much point to merge and share with this stable_node"),
        and ``offset`` more stay below max_page_sharing."""
        return 0 < node.rmap_hlist_len and node.rmap_hlist_len + offset < self.max_page_sharing

    def _stable_node_dup(self, entry):
        """``chain_prune`` → ``__stable_node_chain`` → ``stable_node_dup``.

        Without pruning: the first live dup that is a sharing candidate (stop there), else
        the first live dup.  When ``stable_node_chains_prune_millisecs`` have passed since the
        chain's last prune, every dup is looked at (stale ones freed) and the candidate with
        the most rmap_items wins.  Time is not modelled: the model prunes at every search
        when the knob is 0, and never otherwise (a scenario runs well within the kernel
        default of 2,000 ms between two searches of one chain; see docs/scenarios.md).  The
        found dup moves to the head of the chain if it can take one more
        (``__is_page_sharing_candidate(found, 1)``)."""
        if isinstance(entry, StableNode):
            if entry.folio.mapcount == 0:      # ksm_get_folio: the KSM page is gone
                self._free_stable_node(entry)
                return None
            return entry
        prune = self.chain_prune_millisecs == 0
        found = None
        for dup in list(entry.dups):
            if dup.folio.mapcount == 0:        # ksm_get_folio() drops a stale dup
                self._free_stable_node(dup)
                continue
            if found is None or (self.is_page_sharing_candidate(dup) and (
                    not self.is_page_sharing_candidate(found)
                    or dup.rmap_hlist_len > found.rmap_hlist_len)):
                found = dup
                if not prune and self.is_page_sharing_candidate(found):
                    break
        if found is None:
            return None
        entry = found.chain
        if entry is None:                      # the chain collapsed to this one dup
            return found
        if found is not entry.dups[0] and self.is_page_sharing_candidate(found, 1):
            entry.dups.remove(found)
            entry.dups.insert(0, found)
        return found

    def stable_tree_search(self, folio: Folio):
        if folio.stable_node is not None:
            return folio                     # a KSM page forked or already merged
        entry = self.stable_tree.get(folio.content)
        if entry is None:
            return None
        dup = self._stable_node_dup(entry)
        if dup is None:
            return None
        return dup.folio if self.is_page_sharing_candidate(dup) else None

    def stable_tree_insert(self, kfolio: Folio) -> StableNode:
        node = StableNode(kfolio, kfolio.content)
        kfolio.stable_node = node
        entry = self.stable_tree.get(kfolio.content)
        if entry is None:
            self.stable_tree[kfolio.content] = node
        else:
            if isinstance(entry, StableNode):
                entry = StableNodeChain([entry])
                entry.dups[0].chain = entry
                self.stable_tree[kfolio.content] = entry
            entry.dups.insert(0, node)       # stable_node_chain_add_dup: hlist_add_head
            node.chain = entry
        return node

    def stable_tree_append(self, item: KsmRmapItem, node: StableNode) -> None:
        item.head = node
        node.hlist.insert(0, item)           # hlist_add_head

    def try_to_merge_with_ksm_page(self, kernel, item, addr, folio, kfolio) -> bool:
        """Map ``kfolio`` at ``item``'s address (or make ``folio`` itself a KSM page when
        ``kfolio`` is None); record the VMA's anon_vma and (v4) the page index."""
        mm = item.mm
        vma = mm.find_vma(addr)
        from .mm import VM_MERGEABLE
        if vma is None or not vma.vm_flags & VM_MERGEABLE or vma.anon_vma is None:
            return False
        if kfolio is not None and kfolio is not folio:
            mm.set_pte(addr, kfolio)         # replace_page: this mm's PTE only
        self.remove_rmap_item_from_tree(item)
        item.anon_vma = vma.anon_vma
        item.vm_pgoff = vma.linear_page_index(addr)
        return True

    def cmp_and_merge_page(self, kernel, mm, vma, addr, folio: Folio, item: KsmRmapItem) -> None:
        node = folio.stable_node
        bypass = False
        if node is not None:
            if item.head is node:
                return
            if not self.is_page_sharing_candidate(node):
                bypass = True
        else:
            self.remove_rmap_item_from_tree(item)
            checksum = folio.content
            if item.oldchecksum != checksum:
                item.oldchecksum = checksum
                return
        kfolio = self.stable_tree_search(folio)
        if kfolio is folio and item.head is node and node is not None:
            return
        self.remove_rmap_item_from_tree(item)
        if kfolio is not None:
            if self.try_to_merge_with_ksm_page(kernel, item, addr, folio, kfolio):
                self.stable_tree_append(item, kfolio.stable_node)
            return
        tree_item = self.unstable_tree.get(folio.content)
        if tree_item is None:
            self.unstable_tree[folio.content] = item
            item.unstable_content = folio.content
            return
        tree_folio = tree_item.mm.pte.get(tree_item.address)
        if tree_folio is None or tree_folio.content != folio.content or tree_folio is folio:
            return
        # try_to_merge_two_pages: this page becomes the KSM page, the tree page maps it
        del self.unstable_tree[folio.content]
        tree_item.unstable_content = None
        if not self.try_to_merge_with_ksm_page(kernel, item, addr, folio, None):
            return
        if not self.try_to_merge_with_ksm_page(kernel, tree_item, tree_item.address,
                                               tree_folio, folio):
            return  # the kernel break_cow()s the first page; not reached in our histories
        node = self.stable_tree_insert(folio)
        self.stable_tree_append(tree_item, node)
        self.stable_tree_append(item, node)

    # --- leaving -------------------------------------------------------------------------
    def unmerge_range(self, mm, start: int, end: int) -> None:
        """``unmerge_ksm_pages`` (MADV_UNMERGEABLE, and mremap before moving): every KSM page
        mapped in the range is copied (break_ksm → COW); rmap_items stay until the next scan."""
        for addr in range(start, end, PAGE_SIZE):
            folio = mm.pte.get(addr)
            if folio is not None and folio.stable_node is not None:
                vma = mm.find_vma(addr)
                copy = Folio(folio.content, anon_vma=vma.anon_vma, index=vma.linear_page_index(addr))
                mm.set_pte(addr, copy)
                if self.lru is not None:
                    self.lru.folio_add_lru(copy)    # wp_page_copy: folio_add_lru_vma


def rmap_walk_ksm(folio: Folio, rwc: RmapWalkControl, stats: RmapWalkStats, strategy: str) -> None:
    """mm/ksm.c ``rmap_walk_ksm``, node by node (the reference implementation)."""
    node = folio.stable_node
    if node is None:
        return
    for search_new_forks in (False, True):
        for item in list(node.hlist):
            tree = item.anon_vma.rb_root
            start, last = item.query(strategy)
            addr = item.address
            before = tree.touched
            first = (stats.iterations, stats.skip_addr, stats.skip_mm)
            stop = False
            for tnode in tree.foreach(start, last):
                stats.iterations += 1
                vma = tnode.item.vma
                if addr < vma.vm_start or addr >= vma.vm_end:
                    stats.skip_addr += 1
                    continue
                if (item.mm is vma.vm_mm) == search_new_forks:
                    stats.skip_mm += 1
                    continue
                stats.rmap_one += 1
                if not rwc.rmap_one(folio, vma, addr) or (rwc.done is not None and rwc.done(folio)):
                    stop = True
                    break
            stats.touched += tree.touched - before
            stats.end_loop(stats.iterations - first[0], stats.skip_addr - first[1],
                           stats.skip_mm - first[2])
            if stop:
                return
