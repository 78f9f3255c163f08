"""The claims table of rmapwalk.analysis.claim: the thread file's validation, and every verdict
rule on small synthetic walks and outcomes tables with known answers."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from rmapwalk.analysis import claim as C
from rmapwalk.contract import LOOP_COLUMNS, OUTCOMES

OPTS = {"resamples": 200, "seed": 1}
FAILED = next(k for k in OUTCOMES if k != C.MOVED)   # any result but moved


def measured(scenario, strategy, counters, *, runs=4, duration=1e6, page_type=C.KSM, spread=0.02):
    """``runs`` walks of ``scenario`` on the kernel that ``strategy`` models, each with the
    given (iterations, skip_addr, skip_mm, rmap_one) and a duration around ``duration`` ns."""
    it, sa, sm, ro = counters
    rng = np.random.default_rng(len(scenario) + len(strategy))
    return pd.DataFrame([{"scenario": scenario, "kernel": C.kernel_of(strategy), "run": r + 1,
                          "page_type": page_type, "reason": "migrate_remap", "iterations": it,
                          "skip_addr": sa, "skip_mm": sm, "rmap_one": ro,
                          "duration_ns": duration * np.exp(rng.normal(0, spread))}
                         for r in range(runs)])


def simulated(counters, missed=0):
    it, sa, sm, ro = counters
    return pd.DataFrame([{"page_type": C.KSM, "reason": "migrate_remap", "iterations": it,
                          "skip_addr": sa, "skip_mm": sm, "rmap_one": ro, "missed": missed}])


WASTEFUL = (40_000, 39_744, 0, 256)     # baseline: 99.36% skipped
TIGHT = (100_000, 99_990, 0, 10)        # baseline: 99.99% skipped
CLEAN = (512, 0, 256, 256)              # v4: 2 iterations per rmap_one call, no address skip


@pytest.fixture(scope="module")
def th():
    return C.thread()


# --- the thread file ----------------------------------------------------------------------
def test_thread_file_has_the_figures_the_claims_use(th):
    assert th["skip-ratio"].value == pytest.approx(0.999)
    v1 = th["v1-iterations"]
    assert v1.per == "rmap_item loop" and v1.before > v1.after
    assert th["v9-latency"].before == (200, 700) and th["v9-latency"].after == ("<", 1)
    assert all(f.url is None or f.url.startswith("https://") for f in th.figures.values())


@pytest.mark.parametrize("edit, expect", [
    (lambda d: d["figures"]["v1-iterations"].pop("per"), "figures.v1-iterations: missing per"),
    (lambda d: d["figures"]["v1-iterations"].update(version="v99"), "figures.v1-iterations.version"),
    (lambda d: d["figures"]["v1-iterations"].update(before="many"), "figures.v1-iterations.before"),
    (lambda d: d["figures"]["skip-ratio"].update(before=1), "exclude each other"),
    (lambda d: d["figures"]["v1-skip-mm"].update(source="nowhere"), "figures.v1-skip-mm.source"),
    (lambda d: d["figures"]["v1-skip-mm"].update(colour="red"), "unknown field(s) colour"),
    (lambda d: d["sources"]["v1"].update(url="lkml.iu.edu"), "sources.v1.url"),
    (lambda d: d["figures"]["v9-latency"].update(before=[700, 200]), "low > high"),
])
def test_malformed_thread_file_names_file_and_key(tmp_path, edit, expect):
    doc = yaml.safe_load(C.THREAD_FILE.read_text())
    edit(doc)
    bad = tmp_path / "thread.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(C.ThreadFileError) as e:
        C.thread(bad)
    assert str(bad) in str(e.value) and expect in str(e.value)


def test_not_yaml_and_missing_figure(tmp_path):
    bad = tmp_path / "thread.yaml"
    bad.write_text("figures: [unclosed\n")
    with pytest.raises(C.ThreadFileError, match="not valid YAML"):
        C.thread(bad)
    doc = yaml.safe_load(C.THREAD_FILE.read_text())
    del doc["figures"]["v4-bench-max"]
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(C.ThreadFileError, match=r"figures\.v4-bench-max: missing"):
        C.evaluate(pd.DataFrame(), pd.DataFrame(), {}, {}, thread_file=bad, **OPTS)


def test_rows_read_the_figures_from_the_file(tmp_path):
    """Change figures in a copy of the file: the thread cells and the skip-ratio verdict follow."""
    copy = tmp_path / "thread.yaml"
    shutil.copy(C.THREAD_FILE, copy)
    walks = measured("seed-benchmark", C.BASELINE, WASTEFUL)
    model = {("seed-benchmark", C.BASELINE): simulated(WASTEFUL)}
    args = (walks, pd.DataFrame(), model, {})
    assert C.evaluate(*args, thread_file=copy, **OPTS)[0].verdict == C.DOES_NOT_HOLD   # 99.36%
    doc = yaml.safe_load(copy.read_text())
    doc["figures"]["v1-iterations"]["before"] = 12345
    doc["figures"]["skip-ratio"]["value"] = 0.99
    copy.write_text(yaml.safe_dump(doc))
    claims = C.evaluate(*args, thread_file=copy, **OPTS)
    assert claims[0].verdict == C.HOLDS
    assert "99.0%" in claims[0].claim
    table = C.summary_table(claims)
    assert "12,345 iterations" in table.loc[1, "thread"]
    assert "22,169" not in table.to_string()


# --- the verdict rules ------------------------------------------------------------------------
def test_decide_reaches_every_verdict():
    assert C.decide(True, True) == C.HOLDS
    assert C.decide(True, False) == C.DIFFERENCE
    assert C.decide(True, None) == C.DIFFERENCE                        # a needed side lacks data
    assert C.decide(True, True, differences=["unit"]) == C.DIFFERENCE
    assert C.decide(False, None) == C.DOES_NOT_HOLD
    assert C.decide(None, None) == C.NO_DATA
    assert C.decide(None, True, needs=("kernel",)) == C.HOLDS


@pytest.mark.parametrize("model_c, kernel_c, verdict", [
    (TIGHT, TIGHT, C.HOLDS),
    (WASTEFUL, WASTEFUL, C.DOES_NOT_HOLD),
    (TIGHT, WASTEFUL, C.DIFFERENCE),
    (None, None, C.NO_DATA),
])
def test_skip_ratio_against_the_thread_share(th, model_c, kernel_c, verdict):
    walks = measured("seed-benchmark", C.BASELINE, kernel_c) if kernel_c else pd.DataFrame()
    model = {("seed-benchmark", C.BASELINE): simulated(model_c)} if model_c else {}
    c = C.claim_skip_ratio(walks, model, th, **OPTS)
    assert c.verdict == verdict
    if kernel_c:
        assert c.kernel.data["skip_ratio"] == pytest.approx(kernel_c[1] / kernel_c[0])


def test_benchmark_waste_bound(th):
    def run(after, faster=True):
        walks = pd.concat([measured("seed-benchmark", C.BASELINE, TIGHT, duration=4e8, runs=8),
                           measured("seed-benchmark", C.PGOFF, after, runs=8,
                                    duration=1e6 if faster else 4e8)])
        model = {("seed-benchmark", C.BASELINE): simulated(TIGHT),
                 ("seed-benchmark", C.PGOFF): simulated(after)}
        return C.claim_benchmark(walks, model, th, **OPTS)
    good = run(CLEAN)
    assert good.verdict == C.HOLDS
    assert good.kernel.data["after"]["iterations_per_call_max"] == C.WALK_PASSES
    assert "ms TCG" in good.kernel.text
    assert run((600, 0, 256, 256)).verdict == C.DOES_NOT_HOLD          # 2.3 iterations per call
    assert run((512, 1, 255, 256)).verdict == C.DOES_NOT_HOLD          # an address skip
    assert run(CLEAN, faster=False).verdict == C.DIFFERENCE            # model holds, kernel not faster
    assert C.claim_benchmark(pd.DataFrame(), {}, th).verdict == C.NO_DATA


def with_loops(walks, loops):
    """Simulated walks with the per-loop maxima (contract.LOOP_COLUMNS) the model adds."""
    return walks.assign(**dict(zip(LOOP_COLUMNS, loops)))


def test_production_model_on_the_thread_unit_kernel_per_walk(th):
    walks = pd.concat([measured("production-v1", C.BASELINE, TIGHT),
                       measured("production-v1", C.PGOFF, (20, 0, 10, 10))])
    model = {("production-v1", C.BASELINE): with_loops(simulated(TIGHT), (25_000, 24_997, 2)),
             ("production-v1", C.PGOFF): with_loops(simulated((20, 0, 10, 10)), (3, 0, 2))}
    c = C.claim_production(walks, model, th, **OPTS)
    assert c.model.supports and c.kernel.supports
    assert c.verdict == C.DIFFERENCE
    assert "kernel is not compared on the same unit" in c.differences[0]
    assert c.model.short == "25,000 → 3 per loop" and c.kernel.short.endswith("per walk")
    assert c.model.data["per_loop"]["after"] == {"iterations": 3, "skip_addr": 0, "skip_mm": 2}
    assert "24,997 address skips" in c.model.text
    # without the per-loop columns the model is per walk too, and the difference says so
    bare = {k: simulated(v) for k, v in (((("production-v1", C.BASELINE)), TIGHT),
                                         ((("production-v1", C.PGOFF)), (20, 0, 10, 10)))}
    c = C.claim_production(walks, bare, th, **OPTS)
    assert c.model.short.endswith("per walk") and "no per-loop counters" in c.differences[0]
    assert C.claim_production(walks.iloc[:0], {}, th).verdict == C.NO_DATA


def outcome_rows(results: dict, kernel_names: bool) -> pd.DataFrame:
    return pd.DataFrame([{"scenario": "ksm-and-mremap",
                          "kernel": C.kernel_of(s) if kernel_names else s, "op": C.MIGRATE,
                          "result": r} for s, rs in results.items() for r in rs])


@pytest.mark.parametrize("naive, patched, verdict", [
    ([FAILED, FAILED], [C.MOVED, C.MOVED], C.HOLDS),
    ([C.MOVED, C.MOVED], [C.MOVED, C.MOVED], C.DOES_NOT_HOLD),     # naive did not miss
    ([FAILED, FAILED], [C.MOVED, FAILED], C.DOES_NOT_HOLD),        # v4 misses too
])
def test_mremap(th, naive, patched, verdict):
    results = {C.NAIVE: naive, C.PGOFF: patched, C.BASELINE: [C.MOVED, C.MOVED]}
    out = outcome_rows(results, True)
    model_out = {("ksm-and-mremap", s): g for s, g in outcome_rows(results, False).groupby("kernel")}
    c = C.claim_mremap(out, model_out, {}, th)
    assert c.verdict == verdict
    assert c.kernel.data[C.NAIVE]["moved"] == naive.count(C.MOVED)
    assert C.claim_mremap(out.iloc[:0], {}, {}, th).verdict == C.NO_DATA


@pytest.mark.parametrize("after_calls, missed, verdict", [
    (256, 0, C.HOLDS), (200, 0, C.DOES_NOT_HOLD), (256, 3, C.DIFFERENCE)])
def test_fork_finds_every_mapping(th, after_calls, missed, verdict):
    walks = pd.concat([measured("fork-fanout", C.BASELINE, WASTEFUL),
                       measured("fork-fanout", C.PGOFF, (after_calls, 0, 0, after_calls))])
    model = {("fork-fanout", C.BASELINE): simulated(WASTEFUL),
             ("fork-fanout", C.PGOFF): simulated((after_calls, 0, 0, after_calls), missed)}
    assert C.claim_fork(walks, model, th).verdict == verdict


@pytest.mark.parametrize("factor, spread, verdict", [
    (1.0, 0.3, C.HOLDS),            # interval contains 1
    (1.05, 0.005, C.DIFFERENCE),    # resolved, but within CONTROL_TOLERANCE
    (2.0, 0.005, C.DOES_NOT_HOLD),  # resolved and large
])
def test_control_ratio(th, factor, spread, verdict):
    walks = pd.concat([measured(s, st, (1, 0, 0, 1), runs=16, page_type=t, spread=spread,
                                duration=1e5 * (factor if st == C.BASELINE else 1))
                       for t, s in C.CONTROLS.items() for st in (C.BASELINE, C.PGOFF)])
    c = C.claim_control(walks, th, **OPTS)
    assert c.verdict == verdict
    assert c.model.supports is None
    assert C.claim_control(walks.iloc[:0], th).verdict == C.NO_DATA


def test_summary_table_columns(th):
    claims = C.evaluate(pd.DataFrame(), pd.DataFrame(), {}, {}, **OPTS)
    t = C.summary_table(claims)
    assert list(t.columns) == ["claim", "thread", "model", "kernel", "verdict", "source"]
    assert set(t["verdict"]) == {C.NO_DATA}
    assert set(c.verdict for c in claims) <= set(C.VERDICTS)


def test_difference_says_why(th):
    walks = measured("seed-benchmark", C.BASELINE, TIGHT)
    c = C.claim_skip_ratio(walks, {}, th, **OPTS)
    assert c.verdict == C.DIFFERENCE and c.reasons() == ["no model data"]
    assert C.summary_table([c]).loc[0, "verdict"] == f"{C.DIFFERENCE}: no model data"


# --- the front page's verdict and like-for-like units ------------------------------------
def test_verdict_table_is_short_and_says_each_verdict(th):
    walks = pd.concat([measured("seed-benchmark", C.BASELINE, TIGHT, duration=4e8, runs=8),
                       measured("seed-benchmark", C.PGOFF, CLEAN, runs=8)])
    model = {("seed-benchmark", C.BASELINE): simulated(TIGHT),
             ("seed-benchmark", C.PGOFF): simulated(CLEAN)}
    claims = C.evaluate(walks, pd.DataFrame(), model, {}, **OPTS)
    t = C.verdict_table(claims)
    assert list(t.columns) == ["claim", "verdict", "thread", "model", "kernel (VM)"]
    assert list(t["verdict"]) == [c.verdict for c in claims]
    assert t.map(len).to_numpy().max() <= 60, "a verdict cell is too long for the front page"
    md = C.verdict_markdown(claims)
    assert md.count("\n") == len(claims) + 2 and "**holds**" in md
    s = C.verdict_sentence(claims)
    assert s.startswith(f"**{sum(c.verdict == C.HOLDS for c in claims)} of the {len(claims)} claims")
    assert "### " in C.details_markdown(claims)


def test_benchmark_compares_per_migration_and_on_the_thread_unit(th):
    """Two walks per migration (unmap, remap): the per-migration iterations are their sum, and
    the longest-walk and mean-walk ratios are the thread's statistics."""
    def mig(strategy, unmap, remap, d_unmap, d_remap):
        rows = []
        for r in range(1, 7):
            for reason, (it, sa, sm, ro), d in (("migrate_unmap", unmap, d_unmap),
                                               ("migrate_remap", remap, d_remap)):
                rows.append({"scenario": "seed-benchmark", "kernel": C.kernel_of(strategy),
                             "run": r, "step": 6, "region": "A", "page": 1, "proc": 0,
                             "page_type": C.KSM, "reason": reason, "iterations": it,
                             "skip_addr": sa, "skip_mm": sm, "rmap_one": ro,
                             "duration_ns": d * (1 + 0.01 * r)})
        return pd.DataFrame(rows)
    walks = pd.concat([mig(C.BASELINE, (50_000, 49_744, 0, 256), (100_000, 99_488, 256, 256), 2e8, 4e8),
                       mig(C.PGOFF, (256, 0, 0, 256), (512, 0, 256, 256), 1e6, 2e6)])
    c = C.claim_benchmark(walks, {}, th, **OPTS)
    assert c.kernel.data["iterations_per_migration"] == (150_000, 768)
    assert c.kernel.data["longest_walk_ratio"] == pytest.approx(200)
    assert c.kernel.data["mean_walk_ratio"] == pytest.approx(200)
    assert c.kernel.data["migrations"] == (6, 6)
    assert "per migration" in c.kernel.short and "TCG" in c.kernel.short


def test_kernel_of_takes_the_first_captured_variant_of_a_strategy(tmp_path):
    from rmapwalk import kernels
    kl = kernels.load()
    first = {}
    for v in kl.captured:
        first.setdefault(kl.strategy(v), v)
    assert all(C.kernel_of(st) == v for st, v in first.items())
    assert kl.primary == tuple(first.values())
    with pytest.raises(kernels.KernelListError, match="no captured variant with strategy"):
        C.kernel_of("nonsense")