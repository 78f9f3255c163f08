"""The model against the real kernels on the minimized regression scenarios.

Every scenario in ``data/scenarios/regressions/`` stands for one bug the model had
(``data/scenarios/regressions/README.md``) and is captured in the data set like every other
scenario (``data/dataset.yaml``: 6.12 baseline, patched = v4, naive = v1-v3, merged), runs in
``data/traces/<name>/6.12/<variant>/run-1/`` with manifests.  The runs are read through
:func:`rmapwalk.dataset.runs`, so only when they verify; the replay must give exactly the
kernel's walks, in order, with the four counters, and every page's outcome (the shared columns).
"""
from __future__ import annotations

import pytest

from rmapwalk import dataset, kernels, paths, scenario as sc
from rmapwalk.contract import COLUMNS, SHARED_OUTCOME_COLUMNS
from rmapwalk.simulate import replay

from .rows import csv_rows, model_rows

REGRESSIONS = paths.SCENARIOS / "regressions"
SCENARIOS = sorted(REGRESSIONS.glob("*.yaml"))
BASE = "6.12"
VARIANTS = [v for b, v in kernels.load().kernels() if b == BASE]
STRATEGY = kernels.strategy_of()


def _run(name: str, variant: str) -> dataset.Run:
    found = [r for r in dataset.runs(scenario=name) if (r.base, r.variant) == (BASE, variant)]
    assert found, f"no run of {name} on {BASE}/{variant} in {paths.TRACES} (data/dataset.yaml)"
    return found[0]


def test_every_regression_is_in_the_data_set():
    assert SCENARIOS, "no regression scenarios"
    planned = dataset.load_plan()
    for path in SCENARIOS:
        for variant in VARIANTS:
            assert planned.get((path.stem, BASE, variant), 0) >= 1, (path.stem, variant)


def test_regressions_are_listed_in_the_readme():
    readme = (REGRESSIONS / "README.md").read_text()
    for path in SCENARIOS:
        assert f"`{path.stem}`" in readme, path.stem


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_model_equals_kernel(path, variant):
    scn = sc.load(path)
    assert scn.name == path.stem
    run = _run(path.stem, variant)
    result = replay(scn, STRATEGY[variant])
    walks = csv_rows(run.folder / "walks.csv", COLUMNS)
    outcomes = csv_rows(run.folder / "outcomes.csv", SHARED_OUTCOME_COLUMNS)
    assert model_rows(result.outcomes, SHARED_OUTCOME_COLUMNS) == outcomes
    assert model_rows(result.walks, COLUMNS) == walks
