"""Simulation: replay a scenario on the model kernel and collect one row per rmap walk.

Each strategy is its own kernel (``baseline`` = 6.12, ``naive`` = v1-v3, ``pgoff`` = v4), so
the scenario is replayed once per strategy: a walk that misses a mapping changes what
happens next (a migration that fails is retried, like on the real kernel).

Every step kind of :data:`rmapwalk.scenario.STEP_KINDS` has its handler in :data:`HANDLERS`.
Where the kernel's system call would fail, the model's does too and the replay stops with
:class:`StepRefused` (one line: file, YAML line, step, errno, the 6.12 function that
refuses); the per-page failures of ``migrate`` and ``idle`` are outcome rows instead, in the
vocabulary of :data:`rmapwalk.contract.OUTCOMES`, as the replayer reports them.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from . import scenario as sc
from .contract import COLUMNS, COUNTERS, LOOP_COLUMNS, PAGE_SIZE, SHARED_OUTCOME_COLUMNS
from .model.kernel import Kernel, ModelError
from .model.ksm import STRATEGIES

SUMMARY_KEYS = ("walks", "iterations", "skip_addr", "skip_mm", "rmap_one", "missed", "skip_ratio")


class StepRefused(sc.ScenarioError):
    """The model kernel refused a step where the real kernel refuses it, with the same errno.

    ``step`` is the 1-based step index, ``line`` its YAML line, ``errno`` the kernel's name
    of the failure (``ENOMEM``, ``EFAULT``; ``SIGSEGV`` for a faulting write)."""

    def __init__(self, path: str, step: int, line: int | None, kind: str, errno: str, detail: str):
        self.kind, self.errno, self.detail = kind, errno, detail
        super().__init__(path, step, f"{kind}: {errno} ({detail})", line=line)



@dataclasses.dataclass
class SimulationResult:
    scenario: str
    strategy: str
    walks: list[dict]       # COLUMNS + SIMULATED_COLUMNS + touched
    outcomes: list[dict]    # contract.SHARED_OUTCOME_COLUMNS
    kernel: Kernel

    def summary(self) -> dict:
        out = {"walks": len(self.walks)}
        for key in (*COUNTERS, "missed"):
            out[key] = sum(w[key] for w in self.walks)
        out["skip_ratio"] = out["skip_addr"] / out["iterations"] if out["iterations"] else 0.0
        return out


@dataclasses.dataclass
class _Replay:
    """What the handlers share while one scenario is replayed under one strategy."""

    scn: sc.Scenario
    strategy: str
    kernel: Kernel
    walks: list[dict] = dataclasses.field(default_factory=list)
    outcomes: list[dict] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self.bases = self.scn.region_addresses
        self.sizes = self.scn.regions

    def addr(self, region: str, page: int) -> int:
        return self.bases[region] + page * PAGE_SIZE

    def where(self, addr: int) -> str:
        """An address in scenario terms: page N of region R (the region whose pages hold it,
        else the one whose slot does: regions placed ``after`` another share its slot)."""
        for name, base in self.bases.items():
            if base <= addr < base + self.sizes[name] * PAGE_SIZE:
                return f"page {(addr - base) // PAGE_SIZE} of region {name}"
        for name, base in self.bases.items():
            if base <= addr < base + sc.REGION_STRIDE:
                return f"page {(addr - base) // PAGE_SIZE} of region {name}"
        return f"address {addr:#x}"

    def refuse(self, step: sc.Step, e: ModelError, subject: str, at: bool = True) -> StepRefused:
        at = f" at {self.where(e.addr)}" if at and e.addr is not None else ""
        return StepRefused(self.scn.path, step.index, step.line, step.kind, e.errno,
                           f"{subject} {e.reason}{at}; {e.source}")


def _range(step: sc.Step, start: int, end: int) -> str:
    return f"the range [{start}, {end}) of region {step['region']}"


def _mmap(r: _Replay, step: sc.Step) -> None:
    try:
        r.kernel.mmap(step.proc, r.bases[step["region"]], step["pages"],
                      file=step["region"] if step["backing"] == "file" else None)
    except ModelError as e:     # MAP_FIXED_NOREPLACE over a mapping (a region placed 'after')
        raise r.refuse(step, e, f"the range of region {step['region']}") from None


def _fill(r: _Replay, step: sc.Step) -> None:
    region, byte = step["region"], step.get("byte")
    for page in range(step["start"], step["start"] + step["pages"]):
        content = r.kernel.unique_content() if step["unique"] else ("byte", byte)
        try:
            r.kernel.write(step.proc, r.addr(region, page), content)
        except ModelError as e:   # the replayer dies of the signal
            raise r.refuse(step, e, f"the write to page {page} of region {region}", at=False) from None


def _mprotect(r: _Replay, step: sc.Step) -> None:
    region = step["region"]
    for s, e in sc.mprotect_ranges(step, r.sizes[region]):
        try:
            r.kernel.mprotect(step.proc, r.addr(region, s), r.addr(region, e), step["prot"])
        except ModelError as err:
            raise r.refuse(step, err, _range(step, s, e)) from None


def _madvise(r: _Replay, step: sc.Step, call) -> None:
    """``mergeable`` and ``unmergeable``: madvise over the whole region."""
    region = step["region"]
    try:
        call(step.proc, r.addr(region, 0), r.addr(region, r.sizes[region]))
    except ModelError as e:
        # mm/madvise.c madvise_walk_vmas(): holes (pages moved away by mremap or unmapped)
        # give ENOMEM after the advice was applied to every VMA around them; the replayer
        # expects exactly that for a region with holes (program.py, the HOLES flag).
        if e.errno != "ENOMEM":
            raise r.refuse(step, e, f"region {region}") from None


def _mergeable(r: _Replay, step: sc.Step) -> None:
    _madvise(r, step, r.kernel.madvise_mergeable)


def _unmergeable(r: _Replay, step: sc.Step) -> None:
    _madvise(r, step, r.kernel.madvise_unmergeable)


def _exit(r: _Replay, step: sc.Step) -> None:
    r.kernel.exit(step.proc)


def _ksm_merge(r: _Replay, step: sc.Step) -> None:
    r.kernel.ksm_run(step["full_scans"])


def _fork(r: _Replay, step: sc.Step) -> None:
    for _ in range(step["children"]):
        r.kernel.fork(step.proc)


def _mremap(r: _Replay, step: sc.Step) -> None:
    region, start, pages = step["region"], step["start"], step["pages"]
    try:
        r.kernel.mremap(step.proc, r.addr(region, start), pages * PAGE_SIZE,
                        r.addr(step["to"], step.get("to_page", 0)))
    except ModelError as e:
        raise r.refuse(step, e, _range(step, start, start + pages)) from None


def _mremap_resize(r: _Replay, step: sc.Step) -> None:
    region, start, pages = step["region"], step["start"], step["pages"]
    try:
        r.kernel.mremap_resize(step.proc, r.addr(region, start), pages * PAGE_SIZE,
                               step["new_pages"] * PAGE_SIZE)
    except ModelError as e:
        raise r.refuse(step, e, _range(step, start, start + pages)) from None


def _munmap(r: _Replay, step: sc.Step) -> None:
    # mm/vma.c do_vmi_munmap: unmapping a range with nothing in it is not an error.
    start = step["start"]
    r.kernel.munmap(step.proc, r.addr(step["region"], start),
                    r.addr(step["region"], start + step["pages"]))


def _walk_pages(r: _Replay, step: sc.Step) -> None:
    """``migrate`` and ``idle``: one outcome row per page, the walks it caused."""
    region, op = step["region"], step.kind
    call = r.kernel.move_page if op == "migrate" else r.kernel.page_idle
    for page in sc.page_list(step, r.sizes[region]):
        first = len(r.kernel.trace)
        result, errno = call(step.proc, r.addr(region, page))
        r.outcomes.append({"step": step.index, "region": region, "page": page, "proc": step.proc,
                           "op": op, "result": result, "errno": errno})
        for rec in r.kernel.trace[first:]:
            r.walks.append({"step": step.index, "region": region, "page": page,
                            "page_type": rec.page_type, "reason": rec.reason,
                            "iterations": rec.iterations, "skip_addr": rec.skip_addr,
                            "skip_mm": rec.skip_mm, "rmap_one": rec.rmap_one,
                            "strategy": r.strategy, "missed": rec.missed,
                            "touched": rec.touched,
                            **{c: getattr(rec, c) for c in LOOP_COLUMNS}})


# One handler per kind of scenario.STEP_KINDS (tests/test_step_contract.py checks both ways).
HANDLERS: dict[str, Callable[[_Replay, sc.Step], None]] = {
    "mmap": _mmap,
    "fill": _fill,
    "mprotect": _mprotect,
    "mergeable": _mergeable,
    "ksm_merge": _ksm_merge,
    "fork": _fork,
    "mremap": _mremap,
    "mremap_resize": _mremap_resize,
    "unmergeable": _unmergeable,
    "exit": _exit,
    "munmap": _munmap,
    "migrate": _walk_pages,
    "idle": _walk_pages,
}


def replay(scn: sc.Scenario, strategy: str, *, fast: bool = True) -> SimulationResult:
    """Replay ``scn`` on a fresh model kernel of ``strategy``; raise StepRefused at the first
    step the kernel would refuse."""
    r = _Replay(scn, strategy, Kernel(strategy, max_page_sharing=scn.max_page_sharing, fast=fast,
                                      chain_prune_millisecs=scn.stable_node_chains_prune_millisecs))
    for step in scn.steps:
        handler = HANDLERS.get(step.kind)
        if handler is None:
            raise sc.ScenarioError(scn.path, step.index, f"the simulator has no handler for "
                                   f"step kind {step.kind!r}", line=step.line)
        try:
            handler(r, step)
        except ModelError as e:     # a refusal without a handler-specific subject
            raise r.refuse(step, e, f"{step.kind}") from None
    return SimulationResult(scn.name, strategy, r.walks, r.outcomes, r.kernel)


def simulate(scn: sc.Scenario, strategies=STRATEGIES, *, fast: bool = True) -> dict[str, SimulationResult]:
    return {s: replay(scn, s, fast=fast) for s in strategies}


def simulate_walks(scn: sc.Scenario, strategy: str) -> list[dict]:
    """The walks table of one strategy, with exactly the shared columns (for comparisons)."""
    return [{c: w[c] for c in COLUMNS} for w in replay(scn, strategy).walks]


def outcome_rows(result: SimulationResult) -> list[dict]:
    """The outcomes table of a replay with exactly the shared outcome columns."""
    return [{c: o[c] for c in SHARED_OUTCOME_COLUMNS} for o in result.outcomes]

