"""The step kinds and options of issue 7 (part 2) against the real kernels.

Each scenario in ``tests/model/steps/`` exercises ``exit``, ``unmergeable``,
``mremap_resize``, ``mremap`` onto an existing region (``to_page``), ``mmap`` with ``after``
or a write that breaks a KSM page (``fill`` after ``ksm_merge``: mm/memory.c do_wp_page ->
wp_page_copy), or one of the refusals they bring (EEXIST, EINVAL, ENOMEM, EFAULT, SIGBUS).
Each was captured on the 6.12 kernels (baseline, patched = v4, naive = v1-v3); the kernel's
walks and outcomes, in the shared columns, are stored beside it as
``<name>.<variant>.{walks,outcomes}.csv`` (as for ``tests/model/regressions/``), and a
scenario the kernel refused says so in ``params.kernel_refused: {step, errno}``: the model
must refuse the same step with the same errno, after the same walks.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rmapwalk import kernels, scenario as sc
from rmapwalk.contract import COLUMNS, SHARED_OUTCOME_COLUMNS
from rmapwalk.simulate import StepRefused, replay

from .rows import csv_rows, model_rows

HERE = Path(__file__).parent / "steps"
SCENARIOS = sorted(HERE.glob("*.yaml"))
# The variants whose walks the fixtures hold (<scenario>.<variant>.walks.csv), each replayed
# under the model strategy kernel-config/kernels.yaml gives it.
VARIANTS = sorted({p.name.split(".")[1] for p in HERE.glob("*.walks.csv")})
STRATEGY = kernels.strategy_of()


def test_every_new_kind_and_option_is_exercised():
    seen = set()
    for path in SCENARIOS:
        for s in sc.load(path).steps:
            seen.add(s.kind)
            if s.kind == "mmap" and "after" in s.args:
                seen.add("mmap after")
            if s.kind == "mremap" and "to_page" in s.args:
                seen.add("mremap onto")
    assert {"exit", "unmergeable", "mremap_resize", "mmap after", "mremap onto"} <= seen


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_model_equals_kernel(path, variant):
    scn = sc.load(path)
    assert scn.name == path.stem
    refused = scn.params.get("kernel_refused")
    if refused:
        with pytest.raises(StepRefused) as e:
            replay(scn, STRATEGY[variant])
        assert (e.value.step, e.value.errno) == (refused["step"], refused["errno"])
        # the walks and outcomes before the refused step
        scn = dataclasses.replace(scn, steps=scn.steps[:refused["step"] - 1])
    result = replay(scn, STRATEGY[variant])
    walks = csv_rows(HERE / f"{path.stem}.{variant}.walks.csv", COLUMNS)
    outcomes = csv_rows(HERE / f"{path.stem}.{variant}.outcomes.csv", SHARED_OUTCOME_COLUMNS)
    assert model_rows(result.outcomes, SHARED_OUTCOME_COLUMNS) == outcomes
    assert model_rows(result.walks, COLUMNS) == walks


def test_a_write_breaks_a_ksm_page():
    """fill after ksm_merge: the page written becomes an anonymous page of the writer (the
    KSM folio is never reused), the other mappings keep the KSM page."""
    result = replay(sc.load(HERE / "cow.yaml"), "baseline")
    step8 = {w["page"]: w["page_type"] for w in result.walks if w["step"] == 8}
    assert step8 == {0: "ksm", 1: "anon", 2: "ksm", 3: "ksm"}


def test_exit_unlinks_vmas_at_once_and_items_at_the_next_scan():
    """kernel/fork.c __mmput: mm/mmap.c exit_mmap unlinks the child's VMAs from every
    anon_vma tree at once (fewer iterations right after the exit, as on the kernel), while
    mm/ksm.c __ksm_exit leaves its rmap_items on the stable nodes (their anon_vma trees now
    empty: no iterations) until the next scan frees them (scan_get_next_rmap_item,
    remove_trailing_rmap_items)."""
    scn = sc.load(HERE / "exit-ksm.yaml")
    result = replay(scn, "baseline")
    it = {(w["step"], w["page"]): w["iterations"] for w in result.walks if w["reason"] == "idle"}
    assert it[(7, 0)] > it[(9, 0)] > it[(12, 0)] == it[(14, 0)]
    before_scan = replay(dataclasses.replace(scn, steps=scn.steps[:12]), "baseline").kernel
    child = before_scan.procs[1]
    assert not child.vmas and before_scan.ksm.rmap_list[child]     # items stay
    # each exit list_move()s its slot right behind the cursor (ksm_mm_head): the front
    assert before_scan.ksm.mm_slots[:2] == [before_scan.procs[2], child]
    after_scan = replay(dataclasses.replace(scn, steps=scn.steps[:13]), "baseline").kernel
    assert after_scan.procs[1] not in after_scan.ksm.rmap_list
