"""Every step kind of the one table (scenario.STEP_KINDS) runs through every executor: the
simulator (simulate.HANDLERS), the replayer's program compiler (program.COMPILERS) and the C
replayer (the op names replayer.c parses and runs).  A kind an executor lacks fails here,
naming the kind and the executor; so does a kind an executor handles that the table lacks.
(The VM end-to-end test, tests/measure/test_vm_e2e.py, runs the replayer on real kernels.)"""
import re

import pytest

from rmapwalk import scenario as sc
from rmapwalk import simulate
from rmapwalk.measure import initramfs, program

# kind -> the steps of a minimal valid scenario whose last step is of that kind
MINIMAL = {
    # 'after': the new region extends region A's VMA (mm/vma.c vma_merge_new_range)
    "mmap": ["mmap: {region: A, pages: 2}", "fill: {region: A, byte: 1}",
             "mmap: {region: B, pages: 2, after: A}"],
    "fill": ["mmap: {region: A, pages: 2}", "fill: {region: A, byte: 1}"],
    "mprotect": ["mmap: {region: A, pages: 2}", "mprotect: {region: A, start: 0, pages: 1, prot: r}"],
    "mergeable": ["mmap: {region: A, pages: 2}", "mergeable: {region: A}"],
    "ksm_merge": ["mmap: {region: A, pages: 2}", "fill: {region: A, byte: 1}",
                  "mergeable: {region: A}", "ksm_merge: {full_scans: 2}"],
    "fork": ["mmap: {region: A, pages: 2}", "fork: {children: 1}"],
    # to a new region, then MREMAP_FIXED of page 2 onto page 1 (mm/mremap.c mremap_to)
    "mremap": ["mmap: {region: A, pages: 3}", "fill: {region: A, byte: 1}",
               "mremap: {region: A, start: 0, pages: 1, to: B}",
               "mremap: {region: A, start: 2, pages: 1, to: A, to_page: 1}"],
    # shrink, then grow back in place (mm/mremap.c vma_merge_extend)
    "mremap_resize": ["mmap: {region: A, pages: 4}", "fill: {region: A, byte: 1}",
                      "mremap_resize: {region: A, start: 0, pages: 4, new_pages: 2}",
                      "mremap_resize: {region: A, start: 0, pages: 2, new_pages: 3}"],
    "unmergeable": ["mmap: {region: A, pages: 2}", "fill: {region: A, byte: 1}",
                    "mergeable: {region: A}", "ksm_merge: {full_scans: 2}",
                    "unmergeable: {region: A}"],
    "exit": ["mmap: {region: A, pages: 2}", "fill: {region: A, byte: 1}",
             "fork: {children: 1}", "exit: {proc: 1}"],
    "munmap": ["mmap: {region: A, pages: 2}", "munmap: {region: A, start: 1, pages: 1}"],
    "migrate": ["mmap: {region: A, pages: 2}", "fill: {region: A, byte: 1}",
                "migrate: {region: A, pages: [0]}"],
    # the munmap drains the LRU batch (mm/vma.c vms_clear_ptes): a folio still in it is not
    # on the LRU and page_idle does not walk it (mm/page_idle.c page_idle_get_folio)
    "idle": ["mmap: {region: A, pages: 2}", "fill: {region: A, byte: 1}",
             "munmap: {region: A, start: 1, pages: 1}", "idle: {region: A, pages: all}"],
}

REPLAYER_C = (initramfs.REPLAYER_DIR / "replayer.c").read_text()


def replayer_ops() -> set[str]:
    """The op names replayer.c parses (its op_names table), checked against its enum and the
    cases of run_op() that run them."""
    names = re.search(r"op_names\[\]\s*=\s*\{([^}]*)\}", REPLAYER_C)
    enum = re.search(r"enum op_kind\s*\{([^}]*)\}", REPLAYER_C)
    run_op = re.search(r"static int run_op\(.*?\n\}", REPLAYER_C, re.S)
    assert names and enum and run_op, "replayer.c: op_names, enum op_kind or run_op() not found"
    ops = re.findall(r'"([a-z_]+)"', names.group(1))
    kinds = re.findall(r"\bOP_[A-Z_]+", enum.group(1))
    assert [f"OP_{o.upper()}" for o in ops] == kinds, "replayer.c: op_names and enum op_kind differ"
    missing = [k for k in kinds if f"case {k}:" not in run_op.group(0)]
    assert not missing, f"replayer.c: run_op() has no case for {missing}"
    return set(ops)


def minimal(kind: str) -> sc.Scenario:
    assert kind in MINIMAL, f"tests/test_step_contract.py: no minimal scenario for step kind {kind!r}"
    body = "".join(f"  - {s}\n" for s in MINIMAL[kind])
    scn = sc.loads(f"name: contract-{kind.replace('_', '-')}\ndescription: one {kind} step\n"
                   f"steps:\n{body}", f"<{kind}>")
    assert scn.steps[-1].kind == kind
    return scn


def step_ops(text: str, index: int) -> list[str]:
    """The op names of step ``index`` in a compiled program."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(f"step {index} "))
    ops = []
    for line in lines[start + 1:]:
        if line.startswith("step ") or line == "end":
            break
        ops.append(line.split()[0])
    return ops


@pytest.mark.parametrize("kind", sorted(sc.STEP_KINDS))
def test_simulator_runs_every_kind(kind):
    assert kind in simulate.HANDLERS, f"the simulator (simulate.HANDLERS) has no handler for step kind {kind!r}"
    result = simulate.replay(minimal(kind), "baseline")
    if kind in ("migrate", "idle"):
        assert {o["op"] for o in result.outcomes} == {kind} and result.walks


@pytest.mark.parametrize("kind", sorted(sc.STEP_KINDS))
def test_program_compiler_and_replayer_run_every_kind(kind):
    assert kind in program.COMPILERS, \
        f"the program compiler (measure.program.COMPILERS) has no compiler for step kind {kind!r}"
    scn = minimal(kind)
    ops = step_ops(program.compile_program(scn), scn.steps[-1].index)
    assert ops, f"the program compiler emits no op for step kind {kind!r}"
    unknown = set(ops) - replayer_ops()
    assert not unknown, f"the replayer (replayer.c) has no op {sorted(unknown)} for step kind {kind!r}"


def test_every_kind_is_documented():
    for kind, spec in sc.STEP_KINDS.items():
        assert spec.doc and re.match(r"(mm|kernel|fs|arch)/\S+\.c \w+", spec.kernel), kind


def test_executors_handle_no_kind_the_table_lacks():
    table = set(sc.STEP_KINDS)
    assert not set(simulate.HANDLERS) - table, \
        f"the simulator handles kinds not in scenario.STEP_KINDS: {sorted(set(simulate.HANDLERS) - table)}"
    assert not set(program.COMPILERS) - table, \
        f"the program compiler handles kinds not in scenario.STEP_KINDS: {sorted(set(program.COMPILERS) - table)}"
    emitted = {op for kind in table for op in step_ops(program.compile_program(minimal(kind)),
                                                       len(MINIMAL[kind]))}
    extra = replayer_ops() - emitted
    assert not extra, f"replayer.c parses ops no step kind of scenario.STEP_KINDS emits: {sorted(extra)}"
    assert not set(MINIMAL) - table, f"MINIMAL has kinds the table lacks: {sorted(set(MINIMAL) - table)}"


def test_the_spec_documents_every_kind_and_limit():
    from rmapwalk import paths
    doc = (paths.ROOT / "docs" / "scenarios.md").read_text()
    for kind, spec in sc.STEP_KINDS.items():
        assert f"| `{kind}` |" in doc, f"docs/scenarios.md has no row for step kind {kind!r}"
    for limit in sc.LIMITS:
        assert f"| `{limit}` |" in doc, f"docs/scenarios.md does not list the limit {limit!r}"
