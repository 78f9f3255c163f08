"""The walks table: one row per rmap walk, the same columns on both sides (SCENARIOS.md).

The simulator writes it per strategy, the VM capture per kernel and run; analysis reads both.
This module is the only place that names the columns.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import tempfile
from pathlib import Path

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


@dataclasses.dataclass
class Walk:
    step: int
    region: str
    page: int
    page_type: str
    reason: str
    iterations: int = 0
    skip_addr: int = 0
    skip_mm: int = 0
    rmap_one: int = 0

    def row(self) -> dict:
        return dataclasses.asdict(self)


def write_csv(dest, rows: list[dict], extra: tuple[str, ...] = ()) -> None:
    """Write rows with the walks columns first, then ``extra`` columns.

    ``dest`` is an open text stream or a path; a path is written atomically (a temporary
    file beside it, then rename), so a failed run never leaves a partial table."""
    fields = (*COLUMNS, *extra)
    if hasattr(dest, "write"):
        w = csv.DictWriter(dest, fieldnames=fields, extrasaction="raise", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return
    path = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="raise")
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
