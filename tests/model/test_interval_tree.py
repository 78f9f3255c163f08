"""The interval tree against brute force, and one broken fixture per invariant."""
import random

import pytest
from hypothesis import given, settings, strategies as st

from rmapwalk.model.interval_tree import (ULONG_MAX, IntervalTree, IntervalTreeInvariantError,
                                          IntervalTreeNode)


def build(intervals):
    t = IntervalTree()
    nodes = []
    for i, (s, l) in enumerate(intervals):
        n = IntervalTreeNode(s, l, i)
        t.insert(n)
        nodes.append(n)
    return t, nodes


@pytest.mark.parametrize("seed", range(20))
def test_random_operations_match_brute_force(seed):
    rng = random.Random(seed)
    t, live = IntervalTree(), []
    order = []          # brute force: (start, insertion counter) is the kernel's order
    counter = 0
    for _ in range(600):
        if live and rng.random() < 0.45:
            n = live.pop(rng.randrange(len(live)))
            t.remove(n)
        else:
            s = rng.randrange(200)
            n = IntervalTreeNode(s, s + rng.randrange(30), counter)
            counter += 1
            t.insert(n)
            live.append(n)
        t.validate()
        qs = rng.randrange(230)
        ql = qs + rng.choice((0, 0, 5, 50))
        got = [n.item for n in t.foreach(qs, ql)]
        expected = sorted((n for n in live if n.start <= ql and n.last >= qs),
                          key=lambda n: (n.start, n.item))
        assert got == [n.item for n in expected]
    assert len(t) == len(live)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 10)), max_size=60),
       st.integers(0, 60), st.integers(0, 10))
def test_query_hypothesis(intervals, q, width):
    t, nodes = build([(s, s + w) for s, w in intervals])
    t.validate()
    got = [n.item for n in t.foreach(q, q + width)]
    assert got == [i for i, (s, w) in sorted(enumerate(intervals), key=lambda x: (x[1][0], x[0]))
                   if s <= q + width and s + w >= q]


def test_equal_starts_keep_insertion_order():
    t, _ = build([(5, 9)] * 10)
    assert [n.item for n in t.foreach(0, ULONG_MAX)] == list(range(10))


def test_point_query_touches_log_n_nodes():
    t, _ = build([(i, i) for i in range(4096)])
    t.touched = 0
    assert [n.item for n in t.foreach(1234, 1234)] == [1234]
    assert t.touched <= 3 * 13          # O(log n): a constant times the height
    t.touched = 0
    assert len(list(t.foreach(0, ULONG_MAX))) == 4096
    assert t.touched >= 4096            # the full query touches every node


# --- broken fixtures: one per invariant -----------------------------------------------------

def fresh():
    t, nodes = build([(i * 10, i * 10 + 5) for i in range(15)])
    t.validate()
    return t, nodes


def break_root_black(t, nodes):
    t.root.red = True


def break_red_red(t, nodes):
    n = t.root.left
    n.red = True
    (n.left or n.right).red = True


def break_black_height(t, nodes):
    leaf = t.leftmost
    leaf.red = not leaf.red
    if leaf.parent.red and leaf.red:
        leaf.parent.red = False


def break_subtree_last(t, nodes):
    t.root.subtree_last += 1


def break_order(t, nodes):
    nodes[-1].start = 0          # the last node in order now starts before all others


def break_parent_link(t, nodes):
    t.root.left.parent = None


def break_leftmost(t, nodes):
    t.leftmost = t.root


def break_count(t, nodes):
    t.count += 1


def break_interval(t, nodes):
    t.leftmost.start = t.leftmost.last + 1


@pytest.mark.parametrize("breaker, invariant", [
    (break_root_black, "root-black"), (break_red_red, "red-red"),
    (break_black_height, "black-height"), (break_subtree_last, "subtree-last"),
    (break_order, "order"), (break_parent_link, "parent-link"),
    (break_leftmost, "leftmost"), (break_count, "count"), (break_interval, "interval"),
])
def test_validate_names_the_broken_invariant(breaker, invariant):
    t, nodes = fresh()
    breaker(t, nodes)
    with pytest.raises(IntervalTreeInvariantError) as e:
        t.validate()
    assert e.value.invariant == invariant
