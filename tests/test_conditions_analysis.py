"""rmapwalk.analysis.conditions: reads the conditions runs only through the verified reader,
refuses bad input naming the file, and its attempts, failures and event counts say what the
events say; the committed data/conditions verifies; the chapter's notebook runs on it."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from rmapwalk import contract, dataset, kernels, paths
from rmapwalk.analysis import conditions as C
from tests.test_programs_analysis import EVENT_COLUMNS, _csv

ROUND_COLUMNS = ("round", "full_scans_before", "full_scans_after", "polls", "merge_timeout",
                 "pages_shared", "pages_sharing", "stable_node_chains", "stable_node_dups",
                 "node_before", "target", "move_pages", "status", "node_after", "pfn_before",
                 "pfn_after", "pgmigrate_success", "pgmigrate_fail", "full_scans_end",
                 "ksm_run", "errno", "merge_seconds", "move_seconds", "walks", "ksm_walks")


def _ev(seq, rnd, fn, pfn, it=100, skip_mm=0, found=4, ns=2_000_000, kind="ksm"):
    return {"seq": seq, "task": "replayer", "task_pid": 43, "cpu": 0, "timestamp": "1.0",
            "step": rnd, "op": "migrate" if rnd != "" else "", "target_pid": 43,
            "target_comm": "conditions", "page_type": kind,
            "reason": contract.REASONS[fn], "rmap_one_fn": fn, "iterations": it,
            "skip_addr": it - found, "skip_mm": skip_mm, "rmap_one": found,
            "duration_ns": ns, "pfn": pfn, "index": 7}


def _round(r, moved):
    return {"round": r, "full_scans_before": 0, "full_scans_after": 30, "polls": 1,
            "merge_timeout": 0, "pages_shared": 1, "pages_sharing": 3, "stable_node_chains": 0,
            "stable_node_dups": 0, "node_before": 0, "target": 1,
            "move_pages": 0 if moved else 1, "status": 1 if moved else -1,
            "node_after": 1 if moved else 0, "pfn_before": 10, "pfn_after": 99 if moved else 10,
            "pgmigrate_success": int(moved), "pgmigrate_fail": int(not moved),
            "full_scans_end": 31, "ksm_run": 1, "errno": "0", "merge_seconds": 1.0,
            "move_seconds": 0.5, "walks": 0, "ksm_walks": 0}


def _run(root: Path, setups: Path, setup: str, variant: str, run: int, events, rounds) -> Path:
    kl = kernels.load()
    folder = dataset.run_folder(root, setup, kl.default_base, variant, run)
    folder.mkdir(parents=True)
    _csv(folder / "events.csv.gz", EVENT_COLUMNS, events)
    _csv(folder / "rounds.csv", ROUND_COLUMNS, rounds)
    _csv(folder / "walks.csv", contract.MEASURED_WALK_COLUMNS, [])
    _csv(folder / "outcomes.csv", contract.OUTCOME_COLUMNS, [])
    for name in ("trace.txt.gz", "console.log.gz"):
        (folder / name).write_bytes(b"")
    dataset.write_manifest(folder, {
        "kernel": {"base": kl.default_base, "variant": variant},
        "scenario": {"name": setup, "sha256": dataset.sha256_file(setups / f"{setup}.yaml")},
        "timing": {"host_wall_seconds": 10.0}})
    return folder


U, R = C.UNMAP, C.REMAP


@pytest.fixture
def tree(tmp_path):
    setups = tmp_path / "setups"
    setups.mkdir()
    (setups / "posted-benchmark.yaml").write_text("name: posted-benchmark\n")
    root = tmp_path / "runs"
    # baseline, round 1: two attempts whose copies failed (remap on the old pfn 10), not
    # migrated; round 2: an attempt whose unmap walk reached its second pass (skip_mm > 0),
    # then one that moved the page (remap on pfn 99); plus a walk outside the triggers
    _run(root, setups, "posted-benchmark", "baseline", 1, [
        _ev(0, 1, U, 10, ns=3_000_000), _ev(1, 1, R, 10, ns=7_000_000),
        _ev(2, 1, U, 10, ns=3_000_000), _ev(3, 1, R, 10, ns=7_000_000),
        _ev(4, 2, U, 10, skip_mm=3, found=3), _ev(5, 2, R, 10, found=3),
        _ev(6, 2, U, 10), _ev(7, 2, R, 99), _ev(8, "", U, 5, kind="anon")],
        [_round(1, False), _round(2, True)])
    _run(root, setups, "posted-benchmark", "patched", 1, [
        _ev(0, 1, U, 10, it=4), _ev(1, 1, R, 99, it=8)], [_round(1, True)])
    return root, setups


def test_attempts_failures_and_events_from_the_walks(tree):
    data = C.load(*tree)
    att = C.attempts(data["events"])
    b = att[att["kernel"] == "baseline"]
    assert b["outcome"].tolist() == ["restored", "restored", "restored", "moved"]
    assert b["unmapped"].tolist() == [True, True, False, True]
    t = C.table(data).set_index("kernel")
    assert list(t.index) == ["baseline", "patched"]          # kernels.yaml order
    assert t.loc["baseline", "attempts"] == 4 and t.loc["baseline", "failed"] == 3
    assert t.loc["baseline", "copy_failed"] == 2 and t.loc["baseline", "unmap_incomplete"] == 1
    assert t.loc["baseline", "migrated"] == 1 and t.loc["baseline", "not_migrated"] == 1
    assert t.loc["baseline", "walks"] == 8                   # the walk outside is not counted
    assert t.loc["baseline", "events"] == "4×2"
    assert t.loc["baseline", "min_found"] == 3
    assert t.loc["baseline", "max_ms"] == pytest.approx(7.0)
    assert t.loc["patched", "events"] == "2×1" and t.loc["patched", "failed"] == 0
    assert t.loc["patched", "iter_unmap"] == 4 and t.loc["patched", "iter_remap"] == 8
    trig = C.triggers(data)
    first = trig[(trig["kernel"] == "baseline") & (trig["round"] == 1)].iloc[0]
    assert first["ksm_events"] == 4 and first["avg_ms"] == pytest.approx(5.0)
    assert not first["migrated"]
    text = C.events_text(C.table(data))
    assert "baseline: 4×2" in text and "patched: 2×1" in text
    assert "traces hold 0 KSM events" in C.events_text(C.table(data), data["events"])
    assert "3 of 4 attempts failed (2 copy, 1 unmap incomplete)" in C.race_text(C.table(data))
    th = C.thread_text(C.table(data), att)
    assert "4 events" in th and "x = 359 ms" in th and "made 1.00 of the iterations" in th
    ans = C.answer_text(C.table(data), trig)
    assert "baseline kernel migrated the page in 1 of 2 triggers: 3 of its 4 attempts" in ans
    assert "2 of the 2 triggers printed 4 KSM events" in ans and "in 1 of those 2" in ans
    assert "patched 1 of 1 (0 failed attempts)" in ans
    shown = C.setups_table(C.table(data))
    assert shown.iloc[0]["ksmd at trigger"] == "running"
    assert "| setup |" in C.markdown(shown)


def test_tampered_run_is_refused_naming_the_file(tree):
    root, setups = tree
    f = next(p for p in root.rglob("rounds.csv") if "patched" in str(p))
    f.write_text(f.read_text().replace("\n1,0,", "\n2,0,"))
    with pytest.raises(dataset.DataIntegrityError, match=str(f)):
        C.load(root, setups)
    assert C.load(root, setups, include_unverified=True)["runs"]["verified"].tolist() \
        .count(False) == 1


@pytest.mark.parametrize("edit, words", [
    (lambda t: t.replace("round,", "rnd,", 1), "missing column(s) round"),
    (lambda t: t.replace("\n1,0,30,", "\nx,0,30,"), "row 2: round='x' is not a number"),
    (lambda t: "", "unreadable table"),
])
def test_bad_tables_name_the_file(tree, edit, words):
    root, setups = tree
    f = next(p for p in root.rglob("rounds.csv") if "patched" in str(p))
    f.write_text(edit(f.read_text()))
    with pytest.raises(dataset.DataIntegrityError) as err:
        C.load(root, setups, include_unverified=True)
    assert str(f) in str(err.value) and words in str(err.value)


def test_bad_events_name_the_file(tree):
    root, setups = tree
    f = next(p for p in root.rglob("events.csv.gz") if "patched" in str(p))
    f.write_bytes(gzip.compress(b"seq,step\n0,1\n"))
    with pytest.raises(dataset.DataIntegrityError, match=f"{f}: missing column"):
        C.load(root, setups, include_unverified=True)


def test_edited_setup_is_refused(tree):
    root, setups = tree
    (setups / "posted-benchmark.yaml").write_text("name: posted-benchmark\npages: 3\n")
    with pytest.raises(dataset.DataIntegrityError, match="another text"):
        C.load(root, setups)


def test_no_runs_give_empty_tables_and_say_so(tmp_path):
    (tmp_path / "runs").mkdir()
    data = C.load(tmp_path / "runs", tmp_path)
    tab, trig = C.table(data), C.triggers(data)
    assert tab.empty and trig.empty
    assert "No runs" in C.answer_text(tab, trig)
    assert "No runs" in C.events_text(tab) and "No runs" in C.race_text(tab)
    assert "No baseline runs" in C.thread_text(tab, C.attempts(data["events"]))
    C.figure(trig, C.attempts(data["events"]))


def test_committed_data_verifies_and_counts_two_walks_per_attempt():
    if not (C.RUNS / "dataset.yaml").is_file():
        pytest.skip("no committed conditions data")
    assert dataset.verify(C.RUNS, scenarios=C.CONDITIONS) == []
    data = C.load()
    trig = C.triggers(data)
    assert len(trig) and (trig["ksm_events"] == 2 * trig["attempts"]).all()
    assert (C.attempts(data["events"])["outcome"] != "open").all()
    # a trigger migrated exactly when one attempt moved the page (the walks agree with
    # move_pages() and the node the page is on afterwards)
    assert (trig["migrated"] == (trig["moved"] == 1)).all()
    tab = C.table(data)
    assert set(tab["setup"]) == set(C.SETUPS) and set(tab["kernel"]) == set(C.KERNELS)


@pytest.mark.slow
def test_the_notebook_runs_on_the_committed_data(tmp_path):
    import papermill as pm
    out = tmp_path / "conditions.ipynb"
    pm.execute_notebook(str(paths.NOTEBOOKS / "conditions.ipynb"), str(out),
                        kernel_name="python3", cwd=str(paths.NOTEBOOKS), progress_bar=False)
    glued = {}
    for cell in json.loads(out.read_text())["cells"]:
        for o in cell.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                glued[name] = o
    assert {"answer", "events_text", "thread_text", "race_text", "fig_conditions"} <= set(glued)


@pytest.mark.slow
def test_the_notebook_names_a_bad_parameter(tmp_path):
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(paths.NOTEBOOKS / "conditions.ipynb"),
                            str(tmp_path / "out.ipynb"), kernel_name="python3",
                            cwd=str(paths.NOTEBOOKS), progress_bar=False,
                            parameters={"conditions": str(tmp_path / "no-such-folder")})
    assert "parameter 'conditions'" in err.value.evalue


def test_the_thread_figures_come_from_thread_yaml(tmp_path, monkeypatch):
    """The chapter's 4 events, 705.12 ms max and 532.04 ms avg were typed in the module a
    second time; they are read from data/thread.yaml like every other figure of the thread."""
    from rmapwalk.analysis import claim
    assert C.thread_figures() == {"events": 4, "max_ms": 705.12, "avg_ms": 532.04}
    copy = tmp_path / "thread.yaml"
    text = claim.THREAD_FILE.read_text()
    assert text.count("before: 705.12\n") == 1
    copy.write_text(text.replace("before: 705.12\n", "before: 800\n"))
    monkeypatch.setattr(claim, "THREAD_FILE", copy)
    assert C.thread_figures()["max_ms"] == 800
    data = C.load()
    out = C.thread_text(C.table(data), C.attempts(data["events"]))
    assert "max 800 ms" in out and f"x = {2 * 532.04 - 800:.0f} ms" in out
