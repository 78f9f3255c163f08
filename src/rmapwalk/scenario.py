"""Scenario files: the one reader of ``data/scenarios/*.yaml``.

A scenario describes a memory-management history step by step (docs/scenarios.md).  Both the simulator and the VM replayer execute the objects this module
returns; neither reads YAML itself.  Validation is static: every step is checked for known
kind, required fields and types, known regions and page ranges before anything runs, and
a problem is reported as one line naming the file, the step number (1-based, as a person
counts), the YAML line and what was expected.  Duplicate keys, text that is not UTF-8 and
scenarios larger than :data:`LIMITS` are refused the same way, before anything runs.

:data:`STEP_KINDS` is the one table of step kinds: every executor (the simulator, the
replayer's program compiler) dispatches through a table with exactly these keys, and
``tests/test_step_contract.py`` runs every kind through every executor.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

import yaml

from . import yamlfile
from .contract import PAGE_SIZE

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
PROTS = ("r", "rw", "none")
BACKINGS = ("anon", "file")
DEFAULT_MAX_PAGE_SHARING = 256  # mm/ksm.c: ksm_max_page_sharing = 256
# /sys/kernel/mm/ksm/stable_node_chains_prune_millisecs (mm/ksm.c stable_node_dup: a chain is
# pruned when this long passed since its last prune; the kernel default is 2000).  Time is
# not deterministic, so a scenario runs with 0 (prune at every search) or with a value no
# capture lasts (never prune); the default is the latter, and the model does the same.
DEFAULT_CHAIN_PRUNE_MS = 3_600_000
MIN_NEVER_PRUNE_MS = 600_000

# Where regions live: part of the contract between the two executions.  Region k (the k-th
# region created, by ``mmap`` or as an ``mremap`` target, counting from 0) is placed at
# REGION_BASE + k * REGION_STRIDE (the replayer uses MAP_FIXED_NOREPLACE / MREMAP_FIXED).
# Anonymous vm_pgoff is the address >> PAGE_SHIFT (mm/mmap.c do_mmap), and the naive query
# uses addresses too, so both sides must use the same addresses; regions 1 TiB apart never
# touch, so no VMA merge happens across regions -- except a region mmap'ed with
# ``after: R``: it starts right where region R's pages end (R's address + R's pages), so the
# two can merge into one VMA (mm/vma.c vma_merge_new_range) and share R's anon_vma; its own
# slot k is left unused.
REGION_BASE = 0x100000000000    # 16 TiB
REGION_STRIDE = 0x10000000000   # 1 TiB
# Regions from REGION_BASE up to 112 TiB, below the 128 TiB x86_64 user address space top.
MAX_REGIONS = (0x7000_0000_0000 - REGION_BASE) // REGION_STRIDE


class ScenarioError(ValueError):
    """A scenario that cannot be executed; ``str()`` is the one-line message for the user."""

    def __init__(self, path: str, step: int | None, message: str, line: int | None = None):
        self.path, self.step, self.line, self.message = path, step, line, message
        where = path
        if line is not None:
            where += f":{line}"
        if step is not None:
            where += f": step {step}"
        super().__init__(f"{where}: {message}")


@dataclasses.dataclass(frozen=True)
class Step:
    """One step: ``kind`` is the step name (``mmap``, ``fill``, ...); ``args`` its fields."""

    index: int  # 1-based position in ``steps``
    kind: str
    args: dict[str, Any]
    proc: int = 0
    line: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self.args[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.args.get(key, default)


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    steps: tuple[Step, ...]
    max_page_sharing: int = DEFAULT_MAX_PAGE_SHARING
    path: str = "<string>"
    stable_node_chains_prune_millisecs: int = DEFAULT_CHAIN_PRUNE_MS
    sha256: str = ""
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def region_addresses(self) -> dict[str, int]:
        """Region name -> its fixed start address (see REGION_BASE): slot k, or right after
        the region named by the mmap's ``after``."""
        sizes = self.regions
        after = {s["region"]: s["after"] for s in self.steps if s.kind == "mmap" and "after" in s.args}
        out: dict[str, int] = {}
        for k, name in enumerate(sizes):
            if name in after:
                out[name] = out[after[name]] + sizes[after[name]] * PAGE_SIZE
            else:
                out[name] = REGION_BASE + k * REGION_STRIDE
        return out

    @property
    def regions(self) -> dict[str, int]:
        """Region name -> pages as mapped (mmap) or as created (mremap ``to``)."""
        out: dict[str, int] = {}
        for s in self.steps:
            if s.kind == "mmap":
                out[s["region"]] = s["pages"]
            elif s.kind == "mremap" and s["to"] not in out:
                out[s["to"]] = s["pages"]
        return out


# field name -> (type checker description, required)
_INT = ("a non-negative integer", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0)
_POS = ("a positive integer", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0)
_STR = ("a region name (string)", lambda v: isinstance(v, str) and v != "")
_BYTE = ("a byte value 0..255", lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255)
_BOOL = ("true or false", lambda v: isinstance(v, bool))
_PROT = (f"one of {', '.join(PROTS)}", lambda v: v in PROTS)
_BACK = (f"one of {', '.join(BACKINGS)}", lambda v: v in BACKINGS)
_PAGES = ("a list of page numbers or 'all'",
          lambda v: v == "all" or (isinstance(v, list) and len(v) > 0
                                   and all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in v)))


@dataclasses.dataclass(frozen=True)
class StepKind:
    """One kind of step: its fields (name -> ((what, check), required)), what it does in one
    line, and the Linux 6.12 function it exercises."""

    fields: dict[str, tuple[tuple, bool]]
    doc: str
    kernel: str


# The one table of step kinds.  Every executor has a handler per key (simulate.HANDLERS,
# measure.program.COMPILERS, and the ops of replayer.c); tests/test_step_contract.py checks it.
STEP_KINDS: dict[str, StepKind] = {
    "mmap": StepKind(
        {"region": (_STR, True), "pages": (_POS, True), "backing": (_BACK, False),
         "after": (_STR, False)},
        "map a new region: MAP_PRIVATE|MAP_ANONYMOUS, or MAP_SHARED of a tmpfs file (backing: "
        "file); 'after: R' places it right after region R's pages (EEXIST if mapped), where an "
        "anonymous region may merge with R's VMA and share its anon_vma",
        "mm/mmap.c do_mmap, __mmap_region, mm/vma.c vma_merge_new_range"),
    "fill": StepKind(
        {"region": (_STR, True), "byte": (_BYTE, False), "unique": (_BOOL, False),
         "start": (_INT, False), "pages": (_POS, False)},
        "write every page of the range: the fault gives the VMA its anon_vma",
        "mm/memory.c do_anonymous_page / do_wp_page"),
    "mprotect": StepKind(
        {"region": (_STR, True), "start": (_INT, True), "pages": (_POS, True),
         "stride": (_POS, False), "prot": (_PROT, True)},
        "mprotect of [start + k*stride, +pages) for every k that fits; splits VMAs",
        "mm/mprotect.c do_mprotect_pkey"),
    "mergeable": StepKind(
        {"region": (_STR, True)},
        "madvise(MADV_MERGEABLE) on the whole region (ENOMEM over holes, applied around them)",
        "mm/madvise.c madvise_walk_vmas, mm/ksm.c ksm_madvise"),
    "ksm_merge": StepKind(
        {"full_scans": (_POS, True)},
        "let ksmd run until full_scans more full scans completed, then stop it (run=0)",
        "mm/ksm.c ksm_do_scan"),
    "fork": StepKind(
        {"children": (_POS, True)},
        "fork children that keep every mapping",
        "kernel/fork.c dup_mmap"),
    "mremap": StepKind(
        {"region": (_STR, True), "start": (_INT, True), "pages": (_POS, True), "to": (_STR, True),
         "to_page": (_INT, False)},
        "mremap(MREMAP_MAYMOVE|MREMAP_FIXED) of the range to a new region 'to', or onto page "
        "'to_page' of an existing region 'to' (what is mapped there is unmapped first; EINVAL "
        "if the two ranges overlap)",
        "mm/mremap.c mremap_to, vma_to_resize, move_vma"),
    "mremap_resize": StepKind(
        {"region": (_STR, True), "start": (_INT, True), "pages": (_POS, True),
         "new_pages": (_POS, True)},
        "mremap(flags 0) of the range to new_pages in place: shrinking unmaps the tail; growing "
        "expands the VMA if the range ends its VMA and the following pages are free (else ENOMEM)",
        "mm/mremap.c vma_to_resize, vma_expandable, mm/vma.c vma_merge_extend, do_vmi_munmap"),
    "unmergeable": StepKind(
        {"region": (_STR, True)},
        "madvise(MADV_UNMERGEABLE) on the whole region: KSM pages copied out, VM_MERGEABLE cleared "
        "(ENOMEM over holes, applied around them)",
        "mm/ksm.c ksm_madvise, unmerge_ksm_pages, break_ksm"),
    "exit": StepKind(
        {},
        "the process (a forked child without live children) exits: its mm is torn down; its "
        "rmap_items stay on KSM's lists until ksmd's next scan",
        "kernel/exit.c do_exit, mm/mmap.c exit_mmap, mm/ksm.c __ksm_exit"),
    "munmap": StepKind(
        {"region": (_STR, True), "start": (_INT, True), "pages": (_POS, True)},
        "munmap of the range",
        "mm/vma.c do_vmi_munmap"),
    "migrate": StepKind(
        {"region": (_STR, True), "pages": (_PAGES, True)},
        "move_pages(MPOL_MF_MOVE_ALL) of each page to the other NUMA node",
        "mm/migrate.c do_pages_move, migrate_pages"),
    "idle": StepKind(
        {"region": (_STR, True), "pages": (_PAGES, True)},
        "set each page's bit in /sys/kernel/mm/page_idle/bitmap: one read-only rmap walk",
        "mm/page_idle.c page_idle_clear_pte_refs"),
}

# Size limits, checked by loads() before anything runs (both executions read scenarios here).
# Generous: the committed scenarios stay far below (the biggest maps 20,000 pages).
LIMITS: dict[str, int] = {
    "bytes": 1 << 20,               # scenario text, checked before the YAML parser runs
    "pages_per_region": 1 << 20,    # pages of one mmap (4 GiB)
    "total_pages": 1 << 22,         # pages mapped by all mmap steps together (16 GiB)
    "processes": 4096,              # process 0 and every fork child (the replayer's limit)
    "page_mappings": 1 << 24,       # mapped pages times processes: the model's page tables
    "regions": MAX_REGIONS,         # the region layout above
    "steps": 10_000,
    "step_pages": 1 << 16,          # pages listed in one migrate or idle step ('all' is free)
}


def _limit(path, step, line, name, value, what):
    if value > LIMITS[name]:
        raise ScenarioError(path, step, f"{what} is {value:,}, above the limit "
                            f"LIMITS[{name!r}] = {LIMITS[name]:,} (rmapwalk/scenario.py)", line=line)


def _step_lines(text: str) -> list[int | None]:
    """YAML line (1-based) of each item of ``steps``, for error messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if getattr(key, "value", None) == "steps" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _parse_yaml(text: str, path: str):
    try:
        return yamlfile.parse(text)
    except yamlfile.YamlProblem as e:
        raise ScenarioError(path, None, e.message, line=e.line) from None


def loads(text: str, path: str = "<string>") -> Scenario:
    """Parse and validate scenario text; raise ScenarioError naming what is wrong."""
    _limit(path, None, None, "bytes", len(text.encode("utf-8", "surrogatepass")),
           "the scenario's size in bytes")
    doc = _parse_yaml(text, path)
    if not isinstance(doc, dict):
        raise ScenarioError(path, None, "expected a mapping with keys name, description, steps")
    unknown = set(doc) - {"name", "description", "ksm", "steps", "params"}
    if unknown:
        raise ScenarioError(path, None, f"unknown top-level key(s) {sorted(map(str, unknown))}; "
                            "expected name, description, ksm, steps, params")
    name = doc.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ScenarioError(path, None, f"'name' must match [a-z0-9-]+, got {name!r}")
    desc = doc.get("description")
    if not isinstance(desc, str) or not desc.strip():
        raise ScenarioError(path, None, "'description' is required: one paragraph for the book")
    ksm = doc.get("ksm") or {}
    if not isinstance(ksm, dict) or set(ksm) - {"max_page_sharing",
                                                "stable_node_chains_prune_millisecs"}:
        raise ScenarioError(path, None, "'ksm' may only hold max_page_sharing and "
                            "stable_node_chains_prune_millisecs")
    prune = ksm.get("stable_node_chains_prune_millisecs", DEFAULT_CHAIN_PRUNE_MS)
    if not (isinstance(prune, int) and not isinstance(prune, bool)
            and (prune == 0 or MIN_NEVER_PRUNE_MS <= prune < 2**32)):
        # a value in between makes which dup a page joins depend on timing
        raise ScenarioError(path, None, "ksm.stable_node_chains_prune_millisecs must be 0 "
                            f"(prune at every search) or >= {MIN_NEVER_PRUNE_MS} (never within "
                            f"a scenario), got {prune!r}")
    mps = ksm.get("max_page_sharing", DEFAULT_MAX_PAGE_SHARING)
    if not (isinstance(mps, int) and not isinstance(mps, bool) and mps >= 2):
        # mm/ksm.c max_page_sharing_store(): knob < 2 is -EINVAL
        raise ScenarioError(path, None, f"ksm.max_page_sharing must be an integer >= 2, got {mps!r}")
    params = doc.get("params") or {}
    if not isinstance(params, dict):
        raise ScenarioError(path, None, "'params' must be a mapping")
    raw_steps = doc.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ScenarioError(path, None, "'steps' must be a non-empty list")
    _limit(path, None, None, "steps", len(raw_steps), "the number of steps")
    lines = _step_lines(text)
    steps = []
    regions: dict[str, int] = {}
    nprocs = 1
    total = 0
    parents: list[int | None] = [None]     # parent of each process
    exited: set[int] = set()
    for i, raw in enumerate(raw_steps, start=1):
        line = lines[i - 1] if i - 1 < len(lines) else None
        step = _parse_step(path, i, line, raw, regions, nprocs, exited)
        if step.kind == "fork":
            nprocs += step["children"]
            parents += [step.proc] * step["children"]
            _limit(path, i, line, "processes", nprocs, "the number of processes")
        elif step.kind == "exit":
            if step.proc == 0:
                raise ScenarioError(path, i, "exit: process 0 cannot exit (only a forked child)",
                                    line=line)
            alive = [c for c in range(nprocs) if parents[c] == step.proc and c not in exited]
            if alive:
                raise ScenarioError(path, i, f"exit: process {step.proc} still has live "
                                    f"children {alive} (they exit first)", line=line)
            exited.add(step.proc)
        elif step.kind == "mmap":
            total += step["pages"]
            _limit(path, i, line, "total_pages", total, "the pages mapped by all mmap steps")
        _limit(path, i, line, "page_mappings", total * nprocs,
               "pages mapped times processes")
        steps.append(step)
    return Scenario(name=name, description=" ".join(desc.split()), steps=tuple(steps),
                    max_page_sharing=mps, path=path, stable_node_chains_prune_millisecs=prune,
                    sha256=hashlib.sha256(text.encode()).hexdigest(), params=params)


def _parse_step(path, i, line, raw, regions, nprocs, exited=frozenset()) -> Step:
    def fail(msg):
        raise ScenarioError(path, i, msg, line=line)

    if not isinstance(raw, dict) or len(raw) != 1:
        fail(f"expected one step as '- KIND: {{fields}}' with KIND one of {', '.join(STEP_KINDS)}")
    (kind, fields), = raw.items()
    if kind not in STEP_KINDS:
        fail(f"unknown step {kind!r}; expected one of {', '.join(STEP_KINDS)}")
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        fail(f"{kind}: expected a mapping of fields, got {type(fields).__name__}")
    fields = dict(fields)
    proc = fields.pop("proc", 0)
    if not (isinstance(proc, int) and not isinstance(proc, bool) and 0 <= proc < nprocs):
        fail(f"{kind}: 'proc' must be 0..{nprocs - 1} (processes existing at this step), got {proc!r}")
    if proc in exited:
        fail(f"{kind}: process {proc} has exited (an earlier exit step)")
    spec = STEP_KINDS[kind].fields
    for key in fields:
        if key not in spec:
            fail(f"{kind}: unknown field {key!r}; expected {', '.join(spec)} (and proc)")
    for key, ((what, ok), required) in spec.items():
        if key not in fields:
            if required:
                fail(f"{kind}: missing field {key!r} ({what})")
            continue
        if not ok(fields[key]):
            fail(f"{kind}: field {key!r} must be {what}, got {fields[key]!r}")
    if kind == "fill" and ("byte" in fields) == bool(fields.get("unique", False)):
        fail("fill: give exactly one of 'byte: N' or 'unique: true'")
    if isinstance(fields.get("pages"), list):
        _limit(path, i, line, "step_pages", len(fields["pages"]), f"{kind}: the pages listed")
    if kind == "mmap":
        if fields["region"] in regions:
            fail(f"mmap: region {fields['region']!r} already exists")
        if "after" in fields and fields["after"] not in regions:
            known = ", ".join(sorted(regions)) or "none yet"
            fail(f"mmap: unknown region {fields['after']!r} for 'after' (regions so far: {known})")
        _limit(path, i, line, "pages_per_region", fields["pages"], "mmap: the region's pages")
        regions[fields["region"]] = fields["pages"]
        _limit(path, i, line, "regions", len(regions), "the number of regions")
        fields.setdefault("backing", "anon")
        return Step(i, kind, fields, proc, line)
    if "region" in fields:
        region = fields["region"]
        if region not in regions:
            known = ", ".join(sorted(regions)) or "none yet"
            fail(f"{kind}: unknown region {region!r} (regions so far: {known})")
        size = regions[region]
        start = fields.get("start", 0)
        npages = fields.get("pages") if isinstance(fields.get("pages"), int) else None
        if kind == "fill" and npages is None:
            npages = size - start
        if start >= size:
            fail(f"{kind}: start {start} out of range for region {region!r} of {size} pages")
        if npages is not None and start + npages > size:
            fail(f"{kind}: pages [{start}, {start + npages}) out of range for region {region!r} "
                 f"of {size} pages")
        if isinstance(fields.get("pages"), list):
            bad = [p for p in fields["pages"] if p >= size]
            if bad:
                fail(f"{kind}: page {bad[0]} out of range for region {region!r} of {size} pages")
    if kind == "fill":
        fields.setdefault("start", 0)
        fields.setdefault("pages", regions[fields["region"]] - fields["start"])
        fields.setdefault("unique", False)
    if kind == "mprotect":
        fields.setdefault("stride", 0)
        if fields["stride"] and fields["stride"] < fields["pages"]:
            fail(f"mprotect: stride {fields['stride']} must be >= pages {fields['pages']}")
    if kind == "mremap":
        to = fields["to"]
        if to in regions:
            # MREMAP_FIXED onto an existing region: the destination must lie inside it
            fields.setdefault("to_page", 0)
            if fields["to_page"] + fields["pages"] > regions[to]:
                fail(f"mremap: destination pages [{fields['to_page']}, {fields['to_page'] + fields['pages']}) "
                     f"out of range for region {to!r} of {regions[to]} pages")
        else:
            if fields.get("to_page", 0):
                fail(f"mremap: 'to_page' needs an existing target region ({to!r} is new)")
            regions[to] = fields["pages"]
            _limit(path, i, line, "regions", len(regions), "the number of regions")
    if kind == "mremap_resize":
        if fields["start"] + fields["new_pages"] > regions[fields["region"]]:
            fail(f"mremap_resize: pages [{fields['start']}, {fields['start'] + fields['new_pages']}) "
                 f"out of range for region {fields['region']!r} of {regions[fields['region']]} pages "
                 "(a region does not grow beyond its mapped size)")
    return Step(i, kind, fields, proc, line)


def load(path: str | Path) -> Scenario:
    """Read and validate a scenario file (UTF-8)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ScenarioError(str(p), None, f"cannot read: {e.strerror}") from None
    try:
        text = yamlfile.decode(data)
    except yamlfile.YamlProblem as e:
        raise ScenarioError(str(p), None, e.message, line=e.line) from None
    return loads(text, str(p))


def mprotect_ranges(step: Step, region_pages: int) -> list[tuple[int, int]]:
    """The [start, end) page ranges an ``mprotect`` step changes: start + k*stride for every k
    that fits entirely in the region (docs/scenarios.md)."""
    start, pages, stride = step["start"], step["pages"], step["stride"]
    if not stride:
        return [(start, start + pages)]
    return [(s, s + pages) for s in range(start, region_pages - pages + 1, stride)]


def page_list(step: Step, region_pages: int) -> list[int]:
    pages = step["pages"]
    return list(range(region_pages)) if pages == "all" else list(pages)
