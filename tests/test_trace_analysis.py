"""The statistics of rmapwalk.analysis.traces and the model-vs-kernel matching of
rmapwalk.analysis.compare, on synthetic walks tables with known answers."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from rmapwalk.analysis import compare as C
from rmapwalk.analysis import provenance as P
from rmapwalk.analysis import traces as T
from rmapwalk.contract import COLUMNS
from tests.fakedata import reseal, use_scenarios, write_run

RATIO = 400.0


def synthetic(seed: int = 1, n: int = 40) -> pd.DataFrame:
    """Baseline and patched KSM walks whose durations are lognormal with medians 400 ms
    and 1 ms: a median ratio of 400."""
    rng = np.random.default_rng(seed)
    rows = []
    for kernel, median, iters, skip in (("baseline", RATIO * 1e6, 40_000, 39_744),
                                        ("patched", 1e6, 256, 0)):
        for i, d in enumerate(median * np.exp(rng.normal(0, 0.2, n))):
            rows.append({"scenario": "synthetic", "kernel": kernel, "run": i // 2 + 1,
                         "step": 6, "region": "A", "page": 1, "page_type": "ksm",
                         "reason": "migrate_unmap" if i % 2 == 0 else "migrate_remap",
                         "iterations": iters, "skip_addr": skip, "skip_mm": 0, "rmap_one": 256,
                         "duration_ns": int(d), "pfn": 0, "index": 0, "proc": 0})
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def scenarios(tmp_path, monkeypatch):
    """Synthetic runs are checked against scenario files of their own."""
    return use_scenarios(monkeypatch, tmp_path / "scenarios")


def test_known_ratio_recovered_and_covered():
    w = synthetic()
    t = T.kernel_comparison(w, by=["page_type"], resamples=2000, seed=3)
    r = t.loc["ksm"]
    assert r["ratio"] == pytest.approx(RATIO, rel=0.1)
    assert r["ratio_low"] < RATIO < r["ratio_high"]
    assert r["low_a"] <= r["median_a"] <= r["high_a"]
    assert r["cliffs_delta"] == 1.0                      # every baseline walk is slower
    assert r["p"] < 1e-6
    assert r["hl_shift"] == pytest.approx((RATIO - 1) * 1e6, rel=0.1)


def test_ci_coverage_of_the_median_ratio():
    """Over independent synthetic data sets the 90% interval covers the true ratio in
    roughly 90% of them (a loose band: 40 repetitions)."""
    hits = 0
    for s in range(40):
        r = T.ratio_ci(*(synthetic(seed=100 + s, n=30).groupby("kernel")["duration_ns"]
                         .apply(np.asarray)[["baseline", "patched"]]),
                       confidence=0.9, resamples=999, seed=s)
        hits += r["low"] <= RATIO <= r["high"]
    assert 28 <= hits <= 40


def test_hodges_lehmann_and_cliffs_delta():
    a, b = np.array([3.0, 4.0, 5.0]), np.array([1.0, 2.0])
    assert T.hodges_lehmann(a, b) == 2.5                 # median of {2,1,3,2,4,3}
    assert T.cliffs_delta(a, b) == 1.0
    assert T.cliffs_delta(b, a) == -1.0
    assert T.cliffs_delta(a, a) == 0.0


def test_skip_ratio_with_interval():
    r = T.skip_ratio(synthetic().query("kernel == 'baseline'"), resamples=999)
    assert r["skip_ratio"] == pytest.approx(39_744 / 40_000)
    assert r["low"] <= r["skip_ratio"] <= r["high"]


def test_rate_and_prediction():
    w = synthetic()
    w = w[w["kernel"] == "baseline"].copy()
    w["iterations"] = np.arange(1, len(w) + 1) * 1000
    w["duration_ns"] = w["iterations"] * 250                   # 250 ns per iteration exactly
    r = T.rate(w, resamples=999)
    assert r["ns_per_iteration"] == pytest.approx(250)
    assert T.predict(r, 22_169)["ms"] == pytest.approx(22_169 * 250 / 1e6)
    assert T.fit_cost(w, resamples=999)["slope"] == pytest.approx(250)


def test_comparison_reports_a_planted_disagreement():
    w = synthetic(n=4)
    model = w[w["kernel"] == "patched"][list(COLUMNS)].drop_duplicates(
        ["step", "region", "page", "reason"]).reset_index(drop=True)
    kernel = w[(w["kernel"] == "patched") & (w["run"] == 1)].copy()
    kernel.loc[kernel.index[1], "skip_mm"] = 7             # planted
    extra = kernel.iloc[[0]].assign(step=99)               # a walk the model never made
    m = C.compare_runs(pd.concat([kernel, extra]), {"patched": model})
    table = C.agreement(m)
    assert table.loc[("patched", "skip_mm"), "disagree"] == 2
    assert table.loc[("patched", "iterations"), "disagree"] == 1
    assert table.loc[("patched", "iterations"), "kernel_only"] == 1
    wrong = C.disagreements(m)
    assert len(wrong) == 2
    assert set(wrong["side"]) == {"both", "kernel only"}
    assert 7 in set(wrong["skip_mm_kernel"])


def test_load_reads_every_run(tmp_path):
    w = synthetic(n=4)
    for (k, r), g in w.groupby(["kernel", "run"]):
        write_run(tmp_path / "traces", "synthetic", k, r,
                  g[list(T.WALK_COLUMNS)].to_dict("records"))
    got = T.load(tmp_path / "traces")
    assert len(got) == len(w)
    assert T.inventory(tmp_path / "traces").loc["synthetic", "baseline"] == 2
    with pytest.raises(T.DataIntegrityError, match="absent: no such data folder"):
        T.load(tmp_path / "absent")


@pytest.mark.parametrize("damage,expected", [
    (lambda df: df.drop(columns=["skip_addr"]), "lacks column(s) skip_addr"),
    (lambda df: df.assign(iterations="many"), "column 'iterations' must be a non-negative integer"),
    (lambda df: df.assign(page_type="huge"), "page_type 'huge'"),
    (lambda df: df.assign(skip_addr=10**9), "exceeds iterations"),
])
def test_malformed_walks_csv_names_the_file(tmp_path, damage, expected):
    rows = synthetic(n=2)[list(T.WALK_COLUMNS)]
    folder = write_run(tmp_path / "traces", "synthetic", "baseline", 1, rows.to_dict("records"))
    damage(rows).to_csv(folder / "walks.csv", index=False)
    reseal(folder)
    with pytest.raises(T.TraceDataError) as err:
        T.load(tmp_path / "traces")
    assert str(folder / "walks.csv") in str(err.value)
    assert expected in str(err.value)


def test_missing_walks_csv_names_the_file(tmp_path):
    folder = write_run(tmp_path / "traces", "synthetic", "patched", 1, [])
    (folder / "walks.csv").unlink()
    reseal(folder)
    with pytest.raises(T.DataIntegrityError, match=str(folder / "walks.csv") + ": a run folder needs it"):
        T.load(tmp_path / "traces")


def test_unreadable_csv_names_the_file(tmp_path):
    folder = write_run(tmp_path / "traces", "synthetic", "patched", 1, [])
    (folder / "walks.csv").write_bytes(b"")
    reseal(folder)
    with pytest.raises(T.TraceDataError, match="walks.csv: not a readable CSV"):
        T.load(tmp_path / "traces")


def test_provenance_reads_manifests(tmp_path):
    root = tmp_path / "traces"
    write_run(root, "synthetic", "baseline", 1, [])
    runs = P.runs(root)
    assert runs.loc[0, "linux"] == "test" and runs.loc[0, "accel"] == "tcg"
    assert runs.loc[0, "kernel"] == "6.12/baseline"
    assert P.qemu_commands(root).loc[0, "command"] == "qemu-system-x86_64 -kernel …/bzImage"
    # the committed series of the run's own base (6.1's patches are not 6.12's); a run whose
    # series changed does not verify at all (tests/test_dataset.py)
    write_run(root, "synthetic", "baseline", 1, [], base="6.1")
    hashes = P.patch_hashes(root)
    assert len(hashes) == 2 and hashes["matches"].all(), hashes
    assert P.verify(root) == []


def test_build_info_digest_covers_every_data_file(tmp_path):
    """The appendix's digest named only data/traces: an edit under data/programs (or
    conditions, paths, kernels, selftests, fuzz), which chapters read, left it unchanged."""
    data = tmp_path / "data"
    write_run(data / "traces", "synthetic", "baseline", 1, [])
    other = data / "programs" / "x.csv"
    other.parent.mkdir()
    other.write_text("a\n1\n")
    executed = tmp_path / "executed"
    executed.mkdir()

    def digests():
        text = P.build_info(executed, data / "traces", data)
        return re.findall(r"digest `([0-9a-f]{16})`", text)
    runs_before, all_before = digests()
    other.write_text("a\n2\n")
    runs_after, all_after = digests()
    assert runs_after == runs_before and all_after != all_before
