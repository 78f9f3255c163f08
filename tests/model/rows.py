"""Walks and outcomes as comparable tuples: a CSV the kernel gave, and the model's rows."""
from __future__ import annotations

import csv
from pathlib import Path


def csv_rows(path: Path, cols) -> list[tuple]:
    """The ``cols`` of every row of the CSV ``path``, as strings."""
    with open(path, newline="") as f:
        return [tuple(r[c] for c in cols) for r in csv.DictReader(f)]


def model_rows(rows: list[dict], cols) -> list[tuple]:
    """The ``cols`` of the model's rows, written as the CSV would hold them."""
    return [tuple("" if r[c] is None else str(r[c]) for c in cols) for r in rows]
