"""Random histories: invariants after every step, every walk against brute force."""
import pytest

from rmapwalk.model import kernel as K
from rmapwalk.contract import COUNTERS, LOOP_COLUMNS
from rmapwalk.model.ksm import STRATEGIES

from .histories import random_history

SEEDS = range(40)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_walks_match_brute_force_and_invariants_hold(seed, strategy):
    kern, log = random_history(seed, strategy)
    K.validate(kern)


def test_histories_exercise_the_interesting_paths():
    """A test that cannot fail is no test: make sure the seeds reach KSM walks, forks,
    mremaps and early exits."""
    kinds = set()
    walks = 0
    for seed in SEEDS:
        kern, log = random_history(seed, "baseline", validate_each=False)
        kinds |= {entry[0] for entry in log if entry[-1] != "refused"}
        walks += kern.checked
        kinds |= {("walk", r.page_type, r.reason) for r in kern.trace}
    assert {"fork", "mremap", "munmap", "mprotect", "ksm"} <= kinds
    assert ("walk", "ksm", "migrate_unmap") in kinds and ("walk", "ksm", "idle") in kinds
    assert ("walk", "file", "migrate_remap") in kinds and ("walk", "anon", "idle") in kinds
    assert walks > 300


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fast_path_equals_reference(seed, strategy):
    fast, _ = random_history(seed, strategy, fast=True, checked=False, validate_each=False)
    ref, _ = random_history(seed, strategy, fast=False, checked=False, validate_each=False)
    fields = ("page_type", "reason", *COUNTERS, "missed", *LOOP_COLUMNS)
    assert [tuple(getattr(r, f) for f in fields) for r in fast.trace] == \
        [tuple(getattr(r, f) for f in fields) for r in ref.trace]


def test_pgoff_never_misses_and_naive_does_after_mremap():
    naive_missed = 0
    for seed in SEEDS:
        kern, log = random_history(seed, "pgoff", validate_each=False, checked=False)
        assert all(r.missed == 0 for r in kern.trace), seed
        base, _ = random_history(seed, "baseline", validate_each=False, checked=False)
        assert all(r.missed == 0 for r in base.trace), seed
        naive, nlog = random_history(seed, "naive", validate_each=False, checked=False)
        if any(r.missed for r in naive.trace):
            assert any(e[0] == "mremap" and e[-1] != "refused" for e in nlog), seed
        naive_missed += sum(r.missed for r in naive.trace)
    assert naive_missed > 0
