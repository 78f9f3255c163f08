"""Simulation: replay a scenario on the model kernel and collect one row per rmap walk.

Each strategy is its own kernel (``baseline`` = 6.12, ``naive`` = v1-v3, ``pgoff`` = v4), so
the scenario is replayed once per strategy: a walk that misses a mapping changes what
happens next (a migration that fails is retried, like on the real kernel).
"""
from __future__ import annotations

import dataclasses

from . import scenario as sc
from .model.kernel import Kernel, ModelError
from .model.ksm import STRATEGIES
from .walks import COLUMNS, COUNTERS

SUMMARY_KEYS = ("walks", "iterations", "skip_addr", "skip_mm", "rmap_one", "missed", "skip_ratio")


class SimulationError(RuntimeError):
    """The model kernel refused a step (the real kernel would fail the same way)."""


@dataclasses.dataclass
class SimulationResult:
    scenario: str
    strategy: str
    walks: list[dict]       # COLUMNS + strategy, missed, touched
    outcomes: list[dict]    # step, region, page, proc, op, result
    kernel: Kernel

    def summary(self) -> dict:
        out = {"walks": len(self.walks)}
        for key in (*COUNTERS, "missed"):
            out[key] = sum(w[key] for w in self.walks)
        out["skip_ratio"] = out["skip_addr"] / out["iterations"] if out["iterations"] else 0.0
        return out


def replay(scn: sc.Scenario, strategy: str, *, fast: bool = True) -> SimulationResult:
    kernel = Kernel(strategy, max_page_sharing=scn.max_page_sharing, fast=fast)
    bases = scn.region_addresses
    sizes = scn.regions
    walks: list[dict] = []
    outcomes: list[dict] = []

    def addr(region: str, page: int) -> int:
        return bases[region] + page * sc.PAGE_SIZE

    for step in scn.steps:
        p = step.proc
        try:
            k = step.kind
            if k == "mmap":
                kernel.mmap(p, bases[step["region"]], step["pages"],
                            file=step["region"] if step["backing"] == "file" else None)
            elif k == "fill":
                byte = step.get("byte")
                for page in range(step["start"], step["start"] + step["pages"]):
                    content = kernel.unique_content() if step["unique"] else ("byte", byte)
                    kernel.write(p, addr(step["region"], page), content)
            elif k == "mprotect":
                for s, e in sc.mprotect_ranges(step, sizes[step["region"]]):
                    kernel.mprotect(p, addr(step["region"], s), addr(step["region"], e), step["prot"])
            elif k == "mergeable":
                r = step["region"]
                kernel.madvise_mergeable(p, addr(r, 0), addr(r, sizes[r]))
            elif k == "ksm_merge":
                kernel.ksm_run(step["full_scans"])
            elif k == "fork":
                for _ in range(step["children"]):
                    kernel.fork(p)
            elif k == "mremap":
                r = step["region"]
                kernel.mremap(p, addr(r, step["start"]), step["pages"] * sc.PAGE_SIZE, bases[step["to"]])
            elif k == "munmap":
                r = step["region"]
                kernel.munmap(p, addr(r, step["start"]), addr(r, step["start"] + step["pages"]))
            elif k in ("migrate", "idle"):
                r = step["region"]
                for page in sc.page_list(step, sizes[r]):
                    first = len(kernel.trace)
                    if k == "migrate":
                        result = kernel.move_page(p, addr(r, page))
                    else:
                        result = kernel.page_idle(p, addr(r, page))
                    outcomes.append({"step": step.index, "region": r, "page": page, "proc": p,
                                     "op": k, "result": result})
                    for rec in kernel.trace[first:]:
                        walks.append({"step": step.index, "region": r, "page": page,
                                      "page_type": rec.page_type, "reason": rec.reason,
                                      "iterations": rec.iterations, "skip_addr": rec.skip_addr,
                                      "skip_mm": rec.skip_mm, "rmap_one": rec.rmap_one,
                                      "strategy": strategy, "missed": rec.missed,
                                      "touched": rec.touched})
            else:  # pragma: no cover - scenario.py rejects unknown steps
                raise AssertionError(k)
        except ModelError as e:
            raise SimulationError(f"{scn.path}: step {step.index} ({step.kind}): {e}") from None
    return SimulationResult(scn.name, strategy, walks, outcomes, kernel)


def simulate(scn: sc.Scenario, strategies=STRATEGIES, *, fast: bool = True) -> dict[str, SimulationResult]:
    return {s: replay(scn, s, fast=fast) for s in strategies}


def simulate_walks(scn: sc.Scenario, strategy: str) -> list[dict]:
    """The walks table of one strategy, with exactly the shared columns (for comparisons)."""
    return [{c: w[c] for c in COLUMNS} for w in replay(scn, strategy).walks]


KERNEL_STRATEGY = {"baseline": "baseline", "patched": "pgoff", "naive": "naive"}
