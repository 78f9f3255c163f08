"""The augmented red-black interval tree of include/linux/interval_tree_generic.h.

mm/interval_tree.c instantiates it for ``struct anon_vma_chain`` nodes keyed on
``[avc->vma->vm_pgoff, vm_pgoff + vma_pages(vma) - 1]`` (``anon_vma_interval_tree_*``) and
for VMAs in a file's ``i_mmap`` (``vma_interval_tree_*``).  This module mirrors the C code:
insertion and erasure are lib/rbtree.c's ``__rb_insert`` and ``__rb_erase_augmented`` /
``____rb_erase_color`` with the RB_DECLARE_CALLBACKS_MAX callbacks maintaining
``subtree_last`` (the kernel's ``rb_subtree_last``), and the query is ``_iter_first`` /
``_iter_next`` with the kernel's pruning.  Because the shape follows the kernel's rotations
exactly, the number of nodes a query touches is the kernel's, and equal starts keep the
kernel's order: ``_insert`` descends right on ``start >= parent.start``, so among equal
starts the later insertion comes later in order.

Each query counts the nodes it dereferences in :attr:`IntervalTree.touched` (cost model).
:meth:`IntervalTree.validate` checks every invariant and raises
:class:`IntervalTreeInvariantError` naming the broken one.
"""
from __future__ import annotations

from typing import Any, Iterator

ULONG_MAX = (1 << 64) - 1


class IntervalTreeInvariantError(AssertionError):
    """An invariant of the tree does not hold; ``invariant`` names it."""

    def __init__(self, invariant: str, detail: str):
        self.invariant = invariant
        super().__init__(f"{invariant}: {detail}")


class IntervalTreeNode:
    """``struct anon_vma_chain``'s ``rb`` + ``rb_subtree_last`` (or a VMA's ``shared.rb``).

    ``start``/``last`` are ITSTART/ITLAST, fixed while the node is in a tree (the kernel
    removes and reinserts a node around any change of vm_pgoff/vm_start/vm_end).
    ``item`` is the object the node belongs to (the anon_vma_chain).
    """

    __slots__ = ("parent", "left", "right", "red", "start", "last", "subtree_last", "item")

    def __init__(self, start: int, last: int, item: Any = None):
        if start > last:
            raise ValueError(f"interval [{start}, {last}] has start > last")
        self.parent = self.left = self.right = None
        self.red = True
        self.start, self.last, self.subtree_last, self.item = start, last, last, item

    def __repr__(self) -> str:
        return f"IntervalTreeNode([{self.start}, {self.last}], {self.item!r})"


def _compute_max(node: IntervalTreeNode, exit: bool) -> bool:
    """RB_DECLARE_CALLBACKS_MAX's ``_compute_max``: True means "unchanged, stop"."""
    m = node.last
    if node.left is not None and node.left.subtree_last > m:
        m = node.left.subtree_last
    if node.right is not None and node.right.subtree_last > m:
        m = node.right.subtree_last
    if exit and node.subtree_last == m:
        return True
    node.subtree_last = m
    return False


def _propagate(rb, stop) -> None:
    while rb is not stop:
        if _compute_max(rb, True):
            break
        rb = rb.parent


def _rotate(old, new) -> None:
    new.subtree_last = old.subtree_last
    _compute_max(old, False)


class IntervalTree:
    """``struct rb_root_cached`` holding interval nodes.

    Runtime complexity: insert and remove O(log n); ``foreach(start, last)`` O(log n + k)
    for k matches (O(n) for ``[0, ULONG_MAX]``).
    """

    def __init__(self) -> None:
        self.root: IntervalTreeNode | None = None
        self.leftmost: IntervalTreeNode | None = None
        self.count = 0
        self.touched = 0    # nodes dereferenced by queries since the last reset
        self.version = 0    # bumped by every insert/remove (lets callers cache views)

    def __len__(self) -> int:
        return self.count

    # -- rbtree plumbing (lib/rbtree.c) -------------------------------------------------
    def _change_child(self, old, new, parent) -> None:
        if parent is not None:
            if parent.left is old:
                parent.left = new
            else:
                parent.right = new
        else:
            self.root = new

    def _rotate_set_parents(self, old, new, red: bool) -> None:
        parent = old.parent
        new.parent, new.red = old.parent, old.red
        old.parent, old.red = new, red
        self._change_child(old, new, parent)

    def _insert_color(self, node) -> None:
        """lib/rbtree.c ``__rb_insert`` with the augment rotate callback."""
        parent = node.parent
        while True:
            if parent is None:
                node.red = False
                break
            if not parent.red:
                break
            gparent = parent.parent
            tmp = gparent.right
            if parent is not tmp:  # parent == gparent.left
                if tmp is not None and tmp.red:
                    tmp.red = False
                    parent.red = False
                    node = gparent
                    parent = node.parent
                    node.red = True
                    continue
                tmp = parent.right
                if node is tmp:
                    tmp = node.left
                    parent.right = tmp
                    node.left = parent
                    if tmp is not None:
                        tmp.parent, tmp.red = parent, False
                    parent.parent, parent.red = node, True
                    _rotate(parent, node)
                    parent = node
                    tmp = node.right
                gparent.left = tmp
                parent.right = gparent
                if tmp is not None:
                    tmp.parent, tmp.red = gparent, False
                self._rotate_set_parents(gparent, parent, True)
                _rotate(gparent, parent)
                break
            else:
                tmp = gparent.left
                if tmp is not None and tmp.red:
                    tmp.red = False
                    parent.red = False
                    node = gparent
                    parent = node.parent
                    node.red = True
                    continue
                tmp = parent.left
                if node is tmp:
                    tmp = node.right
                    parent.left = tmp
                    node.right = parent
                    if tmp is not None:
                        tmp.parent, tmp.red = parent, False
                    parent.parent, parent.red = node, True
                    _rotate(parent, node)
                    parent = node
                    tmp = node.left
                gparent.right = tmp
                parent.left = gparent
                if tmp is not None:
                    tmp.parent, tmp.red = gparent, False
                self._rotate_set_parents(gparent, parent, True)
                _rotate(gparent, parent)
                break

    def _erase_color(self, parent) -> None:
        """lib/rbtree.c ``____rb_erase_color``."""
        node = None
        while True:
            sibling = parent.right
            if node is not sibling:  # node == parent.left
                if sibling.red:
                    tmp1 = sibling.left
                    parent.right = tmp1
                    sibling.left = parent
                    tmp1.parent, tmp1.red = parent, False
                    self._rotate_set_parents(parent, sibling, True)
                    _rotate(parent, sibling)
                    sibling = tmp1
                tmp1 = sibling.right
                if tmp1 is None or not tmp1.red:
                    tmp2 = sibling.left
                    if tmp2 is None or not tmp2.red:
                        sibling.parent, sibling.red = parent, True
                        if parent.red:
                            parent.red = False
                        else:
                            node = parent
                            parent = node.parent
                            if parent is not None:
                                continue
                        break
                    tmp1 = tmp2.right
                    sibling.left = tmp1
                    tmp2.right = sibling
                    parent.right = tmp2
                    if tmp1 is not None:
                        tmp1.parent, tmp1.red = sibling, False
                    _rotate(sibling, tmp2)
                    tmp1 = sibling
                    sibling = tmp2
                tmp2 = sibling.left
                parent.right = tmp2
                sibling.left = parent
                tmp1.parent, tmp1.red = sibling, False
                if tmp2 is not None:
                    tmp2.parent = parent
                self._rotate_set_parents(parent, sibling, False)
                _rotate(parent, sibling)
                break
            else:
                sibling = parent.left
                if sibling.red:
                    tmp1 = sibling.right
                    parent.left = tmp1
                    sibling.right = parent
                    tmp1.parent, tmp1.red = parent, False
                    self._rotate_set_parents(parent, sibling, True)
                    _rotate(parent, sibling)
                    sibling = tmp1
                tmp1 = sibling.left
                if tmp1 is None or not tmp1.red:
                    tmp2 = sibling.right
                    if tmp2 is None or not tmp2.red:
                        sibling.parent, sibling.red = parent, True
                        if parent.red:
                            parent.red = False
                        else:
                            node = parent
                            parent = node.parent
                            if parent is not None:
                                continue
                        break
                    tmp1 = tmp2.left
                    sibling.right = tmp1
                    tmp2.left = sibling
                    parent.left = tmp2
                    if tmp1 is not None:
                        tmp1.parent, tmp1.red = sibling, False
                    _rotate(sibling, tmp2)
                    tmp1 = sibling
                    sibling = tmp2
                tmp2 = sibling.right
                parent.left = tmp2
                sibling.right = parent
                tmp1.parent, tmp1.red = sibling, False
                if tmp2 is not None:
                    tmp2.parent = parent
                self._rotate_set_parents(parent, sibling, False)
                _rotate(parent, sibling)
                break

    # -- interval_tree_generic.h ------------------------------------------------------
    def insert(self, node: IntervalTreeNode) -> None:
        """``ITPREFIX_insert``: equal starts descend right."""
        link_parent, go_left, leftmost = None, False, True
        cur = self.root
        start, last = node.start, node.last
        while cur is not None:
            link_parent = cur
            if cur.subtree_last < last:
                cur.subtree_last = last
            if start < cur.start:
                go_left, cur = True, cur.left
            else:
                go_left, cur, leftmost = False, cur.right, False
        node.subtree_last = last
        node.parent, node.left, node.right, node.red = link_parent, None, None, True
        if link_parent is None:
            self.root = node
        elif go_left:
            link_parent.left = node
        else:
            link_parent.right = node
        if leftmost:
            self.leftmost = node
        self._insert_color(node)
        self.count += 1
        self.version += 1

    def remove(self, node: IntervalTreeNode) -> None:
        """``ITPREFIX_remove`` = ``rb_erase_augmented_cached``."""
        if self.leftmost is node:
            self.leftmost = rb_next(node)
        child, tmp = node.right, node.left
        if tmp is None:
            parent = node.parent
            self._change_child(node, child, parent)
            if child is not None:
                child.parent, child.red = node.parent, node.red
                rebalance = None
            else:
                rebalance = parent if not node.red else None
            tmp = parent
        elif child is None:
            tmp.parent, tmp.red = node.parent, node.red
            parent = node.parent
            self._change_child(node, tmp, parent)
            rebalance = None
            tmp = parent
        else:
            successor = child
            tmp = child.left
            if tmp is None:
                parent = successor
                child2 = successor.right
                successor.subtree_last = node.subtree_last  # augment->copy
            else:
                while tmp is not None:
                    parent = successor
                    successor = tmp
                    tmp = tmp.left
                child2 = successor.right
                parent.left = child2
                successor.right = child
                child.parent = successor
                successor.subtree_last = node.subtree_last  # augment->copy
                _propagate(parent, successor)
            tmp = node.left
            successor.left = tmp
            tmp.parent = successor
            self._change_child(node, successor, node.parent)
            if child2 is not None:
                child2.parent, child2.red = parent, False
                rebalance = None
            else:
                rebalance = parent if not successor.red else None
            successor.parent, successor.red = node.parent, node.red
            tmp = successor
        _propagate(tmp, None)
        if rebalance is not None:
            self._erase_color(rebalance)
        node.parent = node.left = node.right = None
        self.count -= 1
        self.version += 1

    def _subtree_search(self, node, start: int, last: int):
        while True:
            self.touched += 1
            left = node.left
            if left is not None and start <= left.subtree_last:
                node = left
                continue
            if node.start <= last:                 # Cond1
                if start <= node.last:             # Cond2
                    return node
                right = node.right
                if right is not None:
                    node = right
                    if start <= node.subtree_last:
                        continue
            return None

    def iter_first(self, start: int, last: int):
        """``ITPREFIX_iter_first``: the leftmost node overlapping [start, last]."""
        node = self.root
        if node is None:
            return None
        self.touched += 1
        if node.subtree_last < start:
            return None
        if self.leftmost.start > last:
            return None
        return self._subtree_search(node, start, last)

    def iter_next(self, node, start: int, last: int):
        """``ITPREFIX_iter_next``: the next overlapping node in order."""
        rb = node.right
        while True:
            if rb is not None:
                self.touched += 1
                if start <= rb.subtree_last:
                    return self._subtree_search(rb, start, last)
            while True:
                rb = node.parent
                if rb is None:
                    return None
                self.touched += 1
                prev, node = node, rb
                rb = node.right
                if prev is not rb:
                    break
            if last < node.start:
                return None
            if start <= node.last:
                return node

    def foreach(self, start: int, last: int) -> Iterator[IntervalTreeNode]:
        """``anon_vma_interval_tree_foreach(avc, root, start, last)``."""
        node = self.iter_first(start, last)
        while node is not None:
            yield node
            node = self.iter_next(node, start, last)

    # -- inspection ------------------------------------------------------------------
    def inorder(self) -> list[IntervalTreeNode]:
        out, stack, node = [], [], self.root
        while stack or node is not None:
            while node is not None:
                stack.append(node)
                node = node.left
            node = stack.pop()
            out.append(node)
            node = node.right
        return out

    def height(self) -> int:
        def h(n):
            return 0 if n is None else 1 + max(h(n.left), h(n.right))
        return h(self.root)

    def validate(self) -> None:
        """Check every invariant; raise IntervalTreeInvariantError naming the first broken one."""
        if self.root is None:
            if self.count or self.leftmost is not None:
                raise IntervalTreeInvariantError("count", f"empty tree but count={self.count}")
            return
        if self.root.parent is not None:
            raise IntervalTreeInvariantError("root-parent", "root has a parent")
        if self.root.red:
            raise IntervalTreeInvariantError("root-black", "root is red")

        def check(node, lo):
            """Returns (black height, subtree max last, count, max start)."""
            if node is None:
                return 1, -1, 0
            for child in (node.left, node.right):
                if child is not None and child.parent is not node:
                    raise IntervalTreeInvariantError(
                        "parent-link", f"{child!r} does not point back to its parent {node!r}")
            if node.red and ((node.left is not None and node.left.red)
                             or (node.right is not None and node.right.red)):
                raise IntervalTreeInvariantError("red-red", f"red {node!r} has a red child")
            if node.start > node.last:
                raise IntervalTreeInvariantError("interval", f"{node!r} has start > last")
            lbh, lmax, lcount = check(node.left, lo)
            rbh, rmax, rcount = check(node.right, lo)
            if lbh != rbh:
                raise IntervalTreeInvariantError(
                    "black-height", f"{node!r}: left black height {lbh} != right {rbh}")
            m = max(node.last, lmax, rmax)
            if node.subtree_last != m:
                raise IntervalTreeInvariantError(
                    "subtree-last", f"{node!r} has subtree_last {node.subtree_last}, "
                    f"its subtree's largest last is {m}")
            return lbh + (0 if node.red else 1), m, lcount + rcount + 1

        _, _, count = check(self.root, None)
        order = self.inorder()
        for a, b in zip(order, order[1:]):
            if b.start < a.start:
                raise IntervalTreeInvariantError(
                    "order", f"{b!r} follows {a!r} in order but starts earlier")
        if count != self.count:
            raise IntervalTreeInvariantError("count", f"tree holds {count} nodes, count={self.count}")
        if self.leftmost is not order[0]:
            raise IntervalTreeInvariantError(
                "leftmost", f"cached leftmost {self.leftmost!r} is not the first node {order[0]!r}")


def rb_next(node):
    """lib/rbtree.c ``rb_next``."""
    if node.right is not None:
        node = node.right
        while node.left is not None:
            node = node.left
        return node
    parent = node.parent
    while parent is not None and node is parent.right:
        node, parent = parent, parent.parent
    return parent
