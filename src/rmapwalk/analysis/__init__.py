"""Analysis: the library behind the notebooks (ARCHITECTURE.md, "analysis").

It builds scenarios in the shared YAML format (:mod:`.scenarios`), runs the simulator and
keeps what it produced in files under ``build/analysis/`` (:mod:`.simulation`: expensive work
writes files, analysis reads them), reduces walks tables to the numbers the book quotes, and
draws the figures (:mod:`.figures`).  It reads walks tables; it never reaches into the
model's data structures.
"""
from .params import check_choice, check_fraction, check_int, check_int_list, check_path
from .scenarios import random_mremap_scenario, split_region_scenario

__all__ = ["check_choice", "check_fraction", "check_int", "check_int_list", "check_path",
           "random_mremap_scenario", "split_region_scenario"]
