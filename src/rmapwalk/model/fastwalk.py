"""``rmap_walk_ksm`` counted from the tree's order instead of node by node.

The interval tree yields the nodes overlapping a query in order (``_iter_first`` /
``_iter_next`` return matches left to right), and in-order is sorted by ``vm_pgoff``.  So
for an rmap_item the loop's counters follow from three facts about its anon_vma's tree:

* how many nodes overlap the query (``[0, ULONG_MAX]``: all of them; ``[p, p]``: the nodes
  with ``vm_pgoff <= p`` minus those with ``last < p``, two binary searches);
* which nodes pass the address check (a VMA of some mm containing the address: at most one
  per mm, found by binary search over that mm's VMAs in the tree), and their positions;
* for an early exit (``done()``), how many overlapping nodes precede the exit node.

Only the nodes that pass the address check are visited one by one, so a baseline walk of
a 20,000-VMA tree costs O(mms log n) per rmap_item instead of O(n).  ``tests/`` hold this
equal to :func:`rmapwalk.model.ksm.rmap_walk_ksm` on random histories, counter by counter.
"""
from __future__ import annotations

import bisect
import weakref

import numpy as np

from .interval_tree import ULONG_MAX, IntervalTree

_views: "weakref.WeakKeyDictionary[IntervalTree, tuple[int, TreeView]]" = weakref.WeakKeyDictionary()


class TreeView:
    """An anon_vma tree flattened in order, with per-mm indexes by vm_start."""

    def __init__(self, tree: IntervalTree):
        nodes = tree.inorder()
        self.n = len(nodes)
        self.starts = [nd.start for nd in nodes]
        self.lasts = [nd.last for nd in nodes]
        self.lasts_sorted = sorted(nd.last for nd in nodes)
        self.start_arr = np.fromiter((min(s, 2**63 - 1) for s in self.starts), np.int64, self.n)
        self.last_arr = np.fromiter((min(nd.last, 2**63 - 1) for nd in nodes), np.int64, self.n)
        by_mm: dict = {}
        for pos, nd in enumerate(nodes):
            vma = nd.item.vma
            by_mm.setdefault(vma.vm_mm, []).append((vma.vm_start, vma.vm_end, pos, vma))
        self.by_mm = []
        for rows in by_mm.values():
            rows.sort(key=lambda r: r[0])
            self.by_mm.append(([r[0] for r in rows], [r[1] for r in rows],
                               [r[2] for r in rows], [r[3] for r in rows]))

    def count_overlap(self, qs: int, ql: int) -> int:
        if qs == 0 and ql >= ULONG_MAX:
            return self.n
        return bisect.bisect_right(self.starts, ql) - bisect.bisect_left(self.lasts_sorted, qs)

    def rank(self, pos: int, qs: int, ql: int) -> int:
        """Overlapping nodes at in-order positions 0..pos."""
        if qs == 0 and ql >= ULONG_MAX:
            return pos + 1
        qs, ql = min(qs, 2**63 - 1), min(ql, 2**63 - 1)
        s, e = self.start_arr[:pos + 1], self.last_arr[:pos + 1]
        return int(np.count_nonzero((s <= ql) & (e >= qs)))

    def containing(self, addr: int, qs: int, ql: int) -> list:
        """(pos, vma) of the overlapping nodes whose VMA contains ``addr``, in order."""
        hits = []
        for starts, ends, poss, vmas in self.by_mm:
            i = bisect.bisect_right(starts, addr) - 1
            if i >= 0 and ends[i] > addr:
                pos = poss[i]
                if self.starts[pos] <= ql and self.lasts[pos] >= qs:
                    hits.append((pos, vmas[i]))
        hits.sort(key=lambda h: h[0])
        return hits


def view_of(tree: IntervalTree) -> TreeView:
    cached = _views.get(tree)
    if cached is not None and cached[0] == tree.version:
        return cached[1]
    view = TreeView(tree)
    _views[tree] = (tree.version, view)
    return view


def rmap_walk_ksm_fast(folio, rwc, stats, strategy: str) -> None:
    """Same counters and the same rmap_one calls, in the same order, as ``rmap_walk_ksm``.
    (``touched`` is not computed here: the cost model uses the reference walk.)"""
    node = folio.stable_node
    if node is None:
        return
    pre = []
    for item in list(node.hlist):
        view = view_of(item.anon_vma.rb_root)
        qs, ql = item.query(strategy)
        pre.append((item, view, qs, ql, view.count_overlap(qs, ql),
                    view.containing(item.address, qs, ql)))
    for search_new_forks in (False, True):
        for item, view, qs, ql, k, hits in pre:
            skip_mm = 0
            for j, (pos, vma) in enumerate(hits):
                if (item.mm is vma.vm_mm) == search_new_forks:
                    skip_mm += 1
                    continue
                stats.rmap_one += 1
                if not rwc.rmap_one(folio, vma, item.address) or (
                        rwc.done is not None and rwc.done(folio)):
                    r = view.rank(pos, qs, ql)
                    _loop(stats, r, r - (j + 1), skip_mm)
                    return
            _loop(stats, k, k - len(hits), skip_mm)


def _loop(stats, iterations: int, skip_addr: int, skip_mm: int) -> None:
    """Add one loop's counters to the walk's (and to its per-loop maxima)."""
    stats.iterations += iterations
    stats.skip_addr += skip_addr
    stats.skip_mm += skip_mm
    stats.end_loop(iterations, skip_addr, skip_mm)
