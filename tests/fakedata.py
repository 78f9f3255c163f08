"""Run folders for tests, written the way the capture writes them (rmapwalk.dataset), with
a scenario file of their own: ``use_scenarios(monkeypatch, folder)`` makes the reader compare
the runs against that folder instead of data/scenarios."""
from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

from rmapwalk import contract, dataset, kernels, paths

SCENARIO_TEXT = "name: {name}\ndescription: a test scenario\nsteps:\n  - mmap: {{region: A, pages: 1}}\n"


def use_scenarios(monkeypatch, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(paths, "SCENARIOS", folder)
    return folder


def scenario_sha(scenarios: Path, name: str) -> str:
    f = scenarios / f"{name}.yaml"
    if not f.exists():
        f.write_text(SCENARIO_TEXT.format(name=name))
    return dataset.sha256_file(f)


def write_run(root: Path, scenario: str, variant: str, run: int, walks=(), outcomes=(),
              base: str | None = None, scenarios: Path | None = None) -> Path:
    base = base or kernels.load().default_base
    scenarios = scenarios or paths.SCENARIOS
    folder = dataset.run_folder(root, scenario, base, variant, run)
    folder.mkdir(parents=True)
    pd.DataFrame(list(walks), columns=contract.MEASURED_WALK_COLUMNS).to_csv(
        folder / "walks.csv", index=False)
    pd.DataFrame(list(outcomes), columns=contract.OUTCOME_COLUMNS).to_csv(
        folder / "outcomes.csv", index=False)
    (folder / "trace.txt.gz").write_bytes(gzip.compress(b"trace", mtime=0))
    (folder / "console.log.gz").write_bytes(gzip.compress(b"console", mtime=0))
    kl = kernels.load()
    package = kl.base(base).package
    try:                                # the series kernel-config gives it (dataset checks it)
        series = [{"file": p.name, "sha256": dataset.sha256_file(p)}
                  for p in kl.patches(base, variant, build=True)]
    except kernels.KernelListError:     # a kernel folder the test makes up
        series = [{"file": "0001-test.patch", "sha256": "00"}]
    dataset.write_manifest(folder, {
        "kind": "rmapwalk capture run",
        "kernel": {"name": variant, "base": base, "variant": variant,
                   "source": {"package": package, "version": "test"},
                   "patches": series,
                   "image_sha256": "ab" * 32},
        "qemu": {"version": "QEMU emulator version 7.2", "accel": "tcg",
                 "command": ["qemu-system-x86_64", "-kernel", "/x/bzImage"]},
        "scenario": {"name": scenario, "sha256": scenario_sha(scenarios, scenario)},
    })
    return folder


def reseal(folder: Path) -> None:
    """Write the run's manifest again over its files as they are now (a run whose capture
    itself wrote a bad table: it verifies, and the table's own checks must catch it)."""
    doc = dataset.read_manifest(folder)
    info = {k: v for k, v in doc.items()
            if k not in ("files", "manifest_sha256", "date", "host", "program", "format")}
    dataset.write_manifest(folder, info)
