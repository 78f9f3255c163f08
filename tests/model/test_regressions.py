"""The model against the real kernels on the minimized regression scenarios.

Every scenario in ``data/scenarios/regressions/`` was captured on the three kernels (6.12
baseline, patched = v4, naive = v1-v3); the kernel's walks and outcomes, in the shared columns,
are stored next to this file as ``regressions/<name>.<variant>.{walks,outcomes}.csv``.  Each
scenario stands for one bug the model had (``data/scenarios/regressions/README.md``): the
replay must give exactly the kernel's walks, in order, with the four counters, and every
page's outcome.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from rmapwalk import scenario as sc
from rmapwalk.contract import COLUMNS, SHARED_OUTCOME_COLUMNS
from rmapwalk.simulate import KERNEL_STRATEGY, replay

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "data" / "scenarios" / "regressions").glob("*.yaml"))
EXPECTED = Path(__file__).parent / "regressions"


def _rows(path: Path, cols) -> list[tuple]:
    with open(path, newline="") as f:
        return [tuple(r[c] for c in cols) for r in csv.DictReader(f)]


def _model(rows: list[dict], cols) -> list[tuple]:
    return [tuple("" if r[c] is None else str(r[c]) for c in cols) for r in rows]


def test_every_regression_has_expectations():
    assert SCENARIOS, "no regression scenarios"
    for path in SCENARIOS:
        for variant in KERNEL_STRATEGY:
            for kind in ("walks", "outcomes"):
                assert (EXPECTED / f"{path.stem}.{variant}.{kind}.csv").exists(), (path.stem, variant, kind)


def test_regressions_are_listed_in_the_readme():
    readme = (ROOT / "data" / "scenarios" / "regressions" / "README.md").read_text()
    for path in SCENARIOS:
        assert f"`{path.stem}`" in readme, path.stem


@pytest.mark.parametrize("variant", list(KERNEL_STRATEGY))
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_model_equals_kernel(path, variant):
    scn = sc.load(path)
    assert scn.name == path.stem
    result = replay(scn, KERNEL_STRATEGY[variant])
    walks = _rows(EXPECTED / f"{path.stem}.{variant}.walks.csv", COLUMNS)
    outcomes = _rows(EXPECTED / f"{path.stem}.{variant}.outcomes.csv", SHARED_OUTCOME_COLUMNS)
    assert _model(result.outcomes, SHARED_OUTCOME_COLUMNS) == outcomes
    assert _model(result.walks, COLUMNS) == walks
