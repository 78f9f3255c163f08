"""The data contract between the two executions and the analysis: one module, one owner.

The model (through :mod:`rmapwalk.simulate`) and the measurement (through
:mod:`rmapwalk.measure.capture`) write the same tables; the analysis reads them.  Everything
that names a column, a value of a column, or how a run folder is laid out and verified lives
here, and nowhere else:

- the page size both sides use (``PAGE_SHIFT``);
- the walks table (``COLUMNS``, ``COUNTERS``, ``PAGE_TYPES``, ``REASONS``) and the columns only
  a real kernel can give (``MEASURED_COLUMNS``);
- the outcomes table (``OUTCOME_COLUMNS``) and its vocabulary (``OUTCOMES``): what happened to
  one page of a ``migrate`` or ``idle`` step, in the kernel's own terms;
- the run folder layout ``<root>/<scenario>/<base>/<variant>/run-<k>/`` and its manifest
  (``manifest.json``: provenance and the sha256 of every file), with the one reader that
  verifies a run before anything uses it (:func:`runs`), in :mod:`rmapwalk.dataset`.
"""
from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

# include/asm-generic/page.h, arch/x86/include/asm/page_types.h: 4 KiB pages on x86_64.
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT

# --- walks: one row per rmap walk (SCENARIOS.md) ------------------------------------------
COLUMNS = ("step", "region", "page", "page_type", "reason",
           "iterations", "skip_addr", "skip_mm", "rmap_one")
COUNTERS = ("iterations", "skip_addr", "skip_mm", "rmap_one")
PAGE_TYPES = ("ksm", "anon", "file")
# Why the kernel walked, from the rmap_one callback of the rmap_walk_control.
REASONS = {
    "try_to_migrate_one": "migrate_unmap",      # mm/rmap.c try_to_migrate()
    "remove_migration_pte": "migrate_remap",    # mm/migrate.c remove_migration_ptes()
    "page_idle_clear_pte_refs_one": "idle",     # mm/page_idle.c page_idle_clear_pte_refs()
}
WALK_KINDS = tuple(REASONS.values())
# Only the real kernel has these: the tracepoint's duration (TCG time), the folio's pfn and
# index, and which scenario process made the step.
MEASURED_COLUMNS = ("duration_ns", "pfn", "index", "proc")
MEASURED_WALK_COLUMNS = (*COLUMNS, *MEASURED_COLUMNS)
# The simulator adds which strategy counted the walk, how many mappings it missed, and the
# counters of the walk's largest loop (one anon_vma_interval_tree_foreach loop: per rmap_item
# and pass in rmap_walk_ksm), each maximised on its own: the unit of the v1 report's
# livepatch counters, which the per-walk tracepoint cannot give.
LOOP_COLUMNS = ("loop_iterations_max", "loop_skip_addr_max", "loop_skip_mm_max")
SIMULATED_COLUMNS = ("strategy", "missed", *LOOP_COLUMNS)

# --- outcomes: one row per page of a migrate or idle step --------------------------------
OUTCOME_COLUMNS = ("step", "region", "page", "proc", "op", "result", "errno",
                   "from_node", "to_node", "pfn")
# The columns both sides fill; the rest only the real kernel knows.
SHARED_OUTCOME_COLUMNS = ("step", "region", "page", "proc", "op", "result", "errno")
OUTCOME_OPS = ("migrate", "idle")
# result -> what it means, in the terms of the system call the replayer makes.
OUTCOMES = {
    "moved": "move_pages() put the page on the target node",                       # migrate
    "stayed": "move_pages() returned 0 but the page is on another node than asked",  # migrate
    "not-migrated": "migrate_pages() gave up after its retries (move_pages() > 0)",  # migrate
    "ok": "the page's bit was set in /sys/kernel/mm/page_idle/bitmap",              # idle
    "error": "the call failed for this page; errno says why (ENOENT, EFAULT, ...)",
}
# errno values an ``error`` outcome may carry besides the kernel's: the page is not present
# in the process's page table (pagemap bit 63 clear), so there is nothing to mark idle.
NOT_PRESENT = "not-present"


def write_csv(dest, rows: list[dict], columns: tuple[str, ...]) -> None:
    """Write ``rows`` with exactly ``columns``.

    ``dest`` is an open text stream or a path; a path is written atomically (a temporary
    file beside it, then rename), so a failed run never leaves a partial table."""
    if hasattr(dest, "write"):
        w = csv.DictWriter(dest, fieldnames=columns, extrasaction="raise", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return
    path = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns, extrasaction="raise", lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
