"""The walks table: one row per rmap walk, the same columns on both sides (SCENARIOS.md).

The simulator writes it per strategy, the VM capture per kernel and run; analysis reads both.
This module is the only place that names the columns.
"""
from __future__ import annotations

import csv
import dataclasses
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


def write_csv(path: str | Path, rows: list[dict], extra: tuple[str, ...] = ()) -> None:
    """Write rows with the walks columns first, then ``extra`` columns."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=(*COLUMNS, *extra), extrasaction="raise")
        w.writeheader()
        w.writerows(rows)
