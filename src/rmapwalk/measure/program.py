"""Compile a validated scenario into the replayer's program: the VM side of docs/scenarios.md.

The C replayer (``replayer/replayer.c``) runs inside the guest and must not parse YAML, so
this module turns a :class:`rmapwalk.scenario.Scenario` into a small line-based text that the
replayer reads with ``sscanf``.  The program is the exact list of system calls to make; the
replayer adds nothing of its own.

Format (version 1), one record per line, fields separated by one space, ``#`` starts a
comment line::

    rmapwalk-program 1
    scenario NAME
    procs P                          # processes the scenario creates (0 .. P-1)
    parent ID PARENT                 # for ID 1..P-1: which process forks it
    nodes 2                          # NUMA nodes; migrate moves a page to (node + 1) % nodes
    ksm MAX_PAGE_SHARING PAGES_TO_SCAN TIMEOUT_S CHAIN_PRUNE_MS
    region RID NAME PAGES BASE BACKING   # NAME percent-encoded, BASE hex, BACKING anon|file
    step INDEX PROC KIND             # a scenario step (1-based INDEX); ops follow
    OP ...                           # ops of the step, run in order by process PROC
    end

Ops (RID is a region number, pages are indexes into the region as it was mapped):

=====================================  ===================================================
``mmap RID``                           mmap of the region at BASE (MAP_FIXED_NOREPLACE)
``fill RID START PAGES BYTE``          write pages; BYTE 0..255, or ``-1``: unique pages
``mprotect RID START PAGES PROT``      one range; PROT ``r``, ``rw`` or ``none``
``mergeable RID HOLES``                madvise(MADV_MERGEABLE) on the whole region;
                                       HOLES=1: the region has unmapped holes, so the
                                       kernel's ENOMEM (advice applied around them) is
                                       expected
``ksm_merge FULL_SCANS``               run ksmd until full_scans grew by FULL_SCANS, stop
``fork FIRST COUNT``                   fork COUNT children, ids FIRST .. FIRST+COUNT-1
``mremap RID START PAGES TO_RID [TO_PAGE]``
                                       mremap(MAYMOVE|FIXED) of the range to TO_RID's BASE
                                       (+ TO_PAGE pages: onto an existing region, whose
                                       pages there are unmapped first)
``mremap_resize RID START PAGES NEW``  mremap(flags 0) of the range to NEW pages in place
``unmergeable RID HOLES``              madvise(MADV_UNMERGEABLE) on the whole region; HOLES
                                       as for ``mergeable``
``exit``                               the process exits (no reply: the controller reads
                                       EOF on its reply pipe once exit_mm() is done)
``munmap RID START PAGES``             munmap of the range
``migrate RID PAGE``                   move_pages(MPOL_MF_MOVE_ALL) of one page
``idle RID PAGE``                      set the page's bit in page_idle/bitmap
=====================================  ===================================================

Every region gets a fixed address (``BASE``, scenario.Scenario.region_addresses): 1 TiB
from every other region, so no two regions' VMAs are adjacent -- and the kernel's
``find_mergeable_anon_vma()`` (mm/vma.c) never hands a region a neighbour's anon_vma --
unless the scenario places a region right after another (``mmap`` with ``after``), or moves
pages onto an existing region (``mremap`` with an existing ``to``).  The markers the replayer writes to ``trace_marker`` are
documented in :mod:`rmapwalk.measure.trace`.
"""
from __future__ import annotations

import dataclasses
from typing import Callable
from urllib.parse import quote, unquote

# Region addresses are part of the scenario contract (scenario.REGION_BASE/REGION_STRIDE):
# the model places the regions at the same addresses, which matters to the naive query.
from rmapwalk.contract import PAGE_SIZE
from rmapwalk.scenario import (LIMITS, MAX_REGIONS, REGION_BASE, REGION_STRIDE, Scenario,
                               ScenarioError, Step, mprotect_ranges, page_list)

VERSION = 1
NODES = 2
PAGES_TO_SCAN = 100_000
KSM_TIMEOUT_S = 120
MAX_PROCS = 4096    # replayer.c read_program(): 'procs P' with 1 <= P <= 4096
# The scenario reader's limits keep every scenario inside the replayer's layout.
assert LIMITS["pages_per_region"] * PAGE_SIZE <= REGION_STRIDE
assert LIMITS["processes"] <= MAX_PROCS


def encode_name(name: str) -> str:
    """Region names go into the program and the trace markers percent-encoded (no spaces)."""
    return quote(name, safe="")


def decode_name(token: str) -> str:
    return unquote(token)


def region_ids(scenario: Scenario) -> dict[str, int]:
    """Region name -> region number, in order of creation (mmap or mremap ``to``)."""
    return {name: rid for rid, name in enumerate(scenario.regions)}


def process_parents(scenario: Scenario) -> dict[int, int]:
    """Process id -> id of the process that forked it (docs/scenarios.md: children numbered in
    creation order)."""
    parents: dict[int, int] = {}
    nprocs = 1
    for s in scenario.steps:
        if s.kind == "fork":
            for _ in range(s["children"]):
                parents[nprocs] = s.proc
                nprocs += 1
    return parents


@dataclasses.dataclass
class _Program:
    """What the compilers share while one scenario is compiled."""

    rids: dict[str, int]
    sizes: dict[str, int]
    holes: set = dataclasses.field(default_factory=set)   # (proc, region) with unmapped ranges
    next_child: int = 1
    created: set = dataclasses.field(default_factory=set)  # regions created so far


def _not_mapped_elsewhere(p: _Program, s: Step, region: str) -> None:
    """A region created by one process (mmap, or an mremap target) is all hole in the processes
    that exist already: madvise over it fails with ENOMEM there (mm/madvise.c)."""
    p.holes |= {(q, region) for q in range(p.next_child) if q != s.proc}


def _mmap(p: _Program, s: Step) -> list[str]:
    _not_mapped_elsewhere(p, s, s["region"])
    p.created.add(s["region"])
    return [f"mmap {p.rids[s['region']]}"]


def _fill(p: _Program, s: Step) -> list[str]:
    byte = -1 if s["unique"] else s["byte"]
    return [f"fill {p.rids[s['region']]} {s['start']} {s['pages']} {byte}"]


def _mprotect(p: _Program, s: Step) -> list[str]:
    rid = p.rids[s["region"]]
    return [f"mprotect {rid} {start} {end - start} {s['prot']}"
            for start, end in mprotect_ranges(s, p.sizes[s["region"]])]


def _mergeable(p: _Program, s: Step) -> list[str]:
    # mm/madvise.c madvise_walk_vmas(): ENOMEM when the range has holes; HOLES says whether
    # this process has unmapped (munmap) or moved (mremap) part of the region before.
    return [f"mergeable {p.rids[s['region']]} {int((s.proc, s['region']) in p.holes)}"]


def _ksm_merge(p: _Program, s: Step) -> list[str]:
    return [f"ksm_merge {s['full_scans']}"]


def _fork(p: _Program, s: Step) -> list[str]:
    first = p.next_child
    p.next_child += s["children"]
    for child in range(first, p.next_child):
        p.holes |= {(child, r) for q, r in p.holes if q == s.proc}
    return [f"fork {first} {s['children']}"]


def _mremap(p: _Program, s: Step) -> list[str]:
    p.holes.add((s.proc, s["region"]))
    op = f"mremap {p.rids[s['region']]} {s['start']} {s['pages']} {p.rids[s['to']]}"
    if s["to"] in p.created:        # onto an existing region (MREMAP_FIXED unmaps it first)
        return [f"{op} {s.get('to_page', 0)}"]
    if s["pages"] != p.sizes[s["to"]]:
        raise AssertionError("scenario.regions and mremap disagree")
    _not_mapped_elsewhere(p, s, s["to"])
    p.created.add(s["to"])
    return [op]


def _mremap_resize(p: _Program, s: Step) -> list[str]:
    if s["new_pages"] < s["pages"]:     # the tail is unmapped
        p.holes.add((s.proc, s["region"]))
    return [f"mremap_resize {p.rids[s['region']]} {s['start']} {s['pages']} {s['new_pages']}"]


def _unmergeable(p: _Program, s: Step) -> list[str]:
    return [f"unmergeable {p.rids[s['region']]} {int((s.proc, s['region']) in p.holes)}"]


def _exit(p: _Program, s: Step) -> list[str]:
    return ["exit"]


def _munmap(p: _Program, s: Step) -> list[str]:
    p.holes.add((s.proc, s["region"]))
    return [f"munmap {p.rids[s['region']]} {s['start']} {s['pages']}"]


def _walk_pages(p: _Program, s: Step) -> list[str]:
    rid = p.rids[s["region"]]
    return [f"{s.kind} {rid} {page}" for page in page_list(s, p.sizes[s["region"]])]


# One compiler per kind of scenario.STEP_KINDS (tests/test_step_contract.py checks both ways,
# and that replayer.c parses every op a compiler emits).
COMPILERS: dict[str, Callable[[_Program, Step], list[str]]] = {
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


def compile_program(scenario: Scenario) -> str:
    """The replayer program for ``scenario`` (see the module docstring for the format)."""
    rids = region_ids(scenario)
    if len(rids) > MAX_REGIONS:
        raise ScenarioError(scenario.path, None,
                            f"{len(rids)} regions; the replayer lays out at most {MAX_REGIONS}")
    sizes = scenario.regions
    parents = process_parents(scenario)
    nprocs = 1 + len(parents)
    backing: dict[str, str] = {}
    lines = [f"rmapwalk-program {VERSION}", f"scenario {scenario.name}", f"procs {nprocs}"]
    lines += [f"parent {child} {parent}" for child, parent in sorted(parents.items())]
    lines.append(f"nodes {NODES}")
    # One ksmd batch must cover a whole scan (ksm_do_scan stops at the end of a scan), so
    # every pass of the replayer's scan protocol is exactly one full scan.
    pages_to_scan = max(PAGES_TO_SCAN, sum(sizes.values()) * nprocs + 1)
    lines.append(f"ksm {scenario.max_page_sharing} {pages_to_scan} {KSM_TIMEOUT_S} "
                 f"{scenario.stable_node_chains_prune_millisecs}")
    for s in scenario.steps:
        if s.kind == "mmap":
            backing[s["region"]] = s.get("backing", "anon")
        elif s.kind == "mremap":
            backing.setdefault(s["to"], backing[s["region"]])
    addresses = scenario.region_addresses
    for name, rid in rids.items():
        if sizes[name] * PAGE_SIZE > REGION_STRIDE:
            raise ScenarioError(scenario.path, None,
                                f"region {name!r} of {sizes[name]} pages exceeds the replayer's "
                                f"{REGION_STRIDE // PAGE_SIZE} pages per region")
        lines.append(f"region {rid} {encode_name(name)} {sizes[name]} "
                     f"{addresses[name]:#x} {backing[name]}")

    prog = _Program(rids, sizes)
    for s in scenario.steps:
        compiler = COMPILERS.get(s.kind)
        if compiler is None:
            raise ScenarioError(scenario.path, s.index, f"the replayer's program compiler has "
                                f"no compiler for step kind {s.kind!r}", line=s.line)
        lines.append(f"step {s.index} {s.proc} {s.kind}")
        lines += compiler(prog, s)
    lines.append("end")
    return "\n".join(lines) + "\n"
