"""rmapwalk.analysis.programs: reads real-program runs only through the verified reader, and
its tables say what the events say; the committed data/programs verifies; the chapter's
notebook runs on it."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rmapwalk import contract, dataset, paths
from rmapwalk.analysis import programs as P

EVENT_COLUMNS = ("seq", "task", "task_pid", "cpu", "timestamp", "step", "op", "target_pid",
                 "target_comm", "page_type", "reason", "rmap_one_fn", "iterations",
                 "skip_addr", "skip_mm", "rmap_one", "duration_ns", "pfn", "index")


def _csv(path: Path, columns, rows):
    import gzip
    with (gzip.open(path, "wt", newline="") if path.suffix == ".gz" else
          open(path, "w", newline="")) as f:
        w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _ev(op, kind, reason, it, sa, sm, calls, ns, seq=0):
    return {"seq": seq, "task": "launcher", "task_pid": 9, "cpu": 0, "timestamp": "1.0",
            "step": 0 if op else "", "op": op, "target_pid": 70 if op else "",
            "target_comm": "java" if op else "", "page_type": kind, "reason": reason,
            "rmap_one_fn": "x", "iterations": it, "skip_addr": sa, "skip_mm": sm,
            "rmap_one": calls, "duration_ns": ns, "pfn": 1, "index": 2}


def _run(root: Path, wl: Path, variant: str, run: int, events: list[dict]) -> Path:
    from rmapwalk import kernels
    kl = kernels.load()
    folder = dataset.run_folder(root, "toy", kl.default_base, variant, run)
    folder.mkdir(parents=True)
    _csv(folder / "events.csv.gz", EVENT_COLUMNS, events)
    _csv(folder / "walks.csv", contract.MEASURED_WALK_COLUMNS, [])
    _csv(folder / "outcomes.csv", contract.OUTCOME_COLUMNS, [])
    _csv(folder / "triggers.csv", ("step", "op", "pid", "comm", "result", "errno", "pages",
                                   "seconds", "walks", "ksm_walks"),
         [{"step": 0, "op": "migrate", "pid": 70, "comm": "java", "result": 5, "errno": "0",
           "pages": 0, "seconds": 0.1, "walks": len(events), "ksm_walks": 1}])
    for name in ("trace.txt.gz", "console.log.gz"):
        (folder / name).write_bytes(b"")
    dataset.write_manifest(folder, {
        "kernel": {"base": kl.default_base, "variant": variant},
        "scenario": {"name": "toy", "sha256": dataset.sha256_file(wl)},
        "workload": {"command": ["/usr/bin/java"], "debian_packages": {"openjdk": "17"}},
        "timing": {"host_wall_seconds": 10.0},
        "summary": {"pgmigrate_success": 100, "pgmigrate_fail": 0, "migrate_not_migrated": 5,
                    "ksm_before": {"pages_shared": 1, "pages_sharing": 5},
                    "processes": [{"pid": 70, "ppid": 1, "comm": "java", "vmas": 10,
                                   "anon_vmas": 6, "prot_runs": 1, "vmas_in_prot_runs": 3,
                                   "longest_prot_run": 3, "ksm_stat": {"ksm_rmap_items": 9},
                                   "numa_before": {"N0": 50}, "numa_after": {"N1": 50}}]}})
    return folder


@pytest.fixture
def tree(tmp_path):
    wl = tmp_path / "workloads"
    wl.mkdir()
    (wl / "toy.yaml").write_text("name: toy\ncommand: [/usr/bin/java]\nwarmup_seconds: 1\n")
    root = tmp_path / "programs"
    # baseline: a KSM walk over a 4-VMA anon_vma, 2 mappings, both passes: 16 iterations
    _run(root, wl / "toy.yaml", "baseline", 1, [
        _ev("migrate", "ksm", "migrate_remap", 16, 12, 2, 2, 4000),
        _ev("migrate", "anon", "migrate_remap", 1, 0, 0, 1, 1000, 1),
        _ev("", "anon", "migrate_unmap", 1, 0, 0, 1, 500, 2)])
    _run(root, wl / "toy.yaml", "patched", 1, [
        _ev("migrate", "ksm", "migrate_remap", 4, 0, 2, 2, 1000),
        _ev("migrate", "anon", "migrate_remap", 1, 0, 0, 1, 1000, 1)])
    return root, wl


def test_tables_from_events(tree):
    root, wl = tree
    data = P.load(root, wl)
    t = P.table(data).set_index("kernel")
    assert list(t.index) == ["baseline", "patched"]
    assert t.loc["baseline", "ksm_walks"] == 1 and t.loc["baseline", "iter_max"] == 16
    assert t.loc["baseline", "skip_ratio"] == pytest.approx(12 / 16)
    assert t.loc["patched", "skip_ratio"] == 0
    assert t.loc["baseline", "all_walks"] == 2          # the walk outside a trigger is not counted
    assert t.loc["baseline", "migrated"] == 100 and t.loc["baseline", "not_migrated"] == 5
    sav = P.savings(P.table(data)).iloc[0]
    assert sav["ksm_time_removed"] == pytest.approx(0.75)
    assert sav["ksm_share_of_walk_time"] == pytest.approx(0.8)
    est = P.anon_vma_estimate(data)
    assert est["chains_per_mapping"].tolist() == [4.0]
    pts = P.map_points(data)
    assert pts.iloc[0]["chains_median"] == 4.0
    survey = P.vma_survey(data)
    assert survey.iloc[0]["longest_prot_run"] == 3
    closing = P.closing_table(data)
    assert {"ksm_walks", "iter_median", "iter_max", "skip_ratio", "migrated",
            "not_migrated"} <= set(closing.columns)
    assert "toy" in P.walks_text(data) and "not migrated" in P.matter_text(data, P.table(data))


def test_tampered_or_edited_runs_are_refused(tree):
    root, wl = tree
    f = next(p for p in root.rglob("triggers.csv") if "baseline" in str(p))
    f.write_text(f.read_text().replace(",5,", ",6,"))
    with pytest.raises(dataset.DataIntegrityError, match="triggers.csv"):
        P.load(root, wl)
    assert P.load(root, wl, include_unverified=True)["runs"]["verified"].tolist().count(False) == 1


def test_edited_workload_is_refused(tree):
    root, wl = tree
    (wl / "toy.yaml").write_text("name: toy\ncommand: [/usr/bin/java, -X]\nwarmup_seconds: 1\n")
    with pytest.raises(dataset.DataIntegrityError, match="another text"):
        P.load(root, wl)


COMMITTED = paths.DATA / "programs"


@pytest.mark.skipif(not COMMITTED.is_dir(), reason="no data/programs")
def test_committed_programs_verify_and_have_ksm_walks():
    assert dataset.verify(COMMITTED, scenarios=paths.DATA / "workloads", plan=None) == []
    data = P.load(COMMITTED)
    t = P.table(data)
    assert (t["ksm_walks"] > 0).all(), t
    for _, r in data["runs"].iterrows():
        man = dataset.read_manifest(Path(r["folder"]))
        assert man["workload"]["debian_packages"], r["folder"]


@pytest.mark.slow
@pytest.mark.skipif(not COMMITTED.is_dir(), reason="no data/programs")
def test_notebook_runs_on_committed_data(tmp_path):
    import papermill as pm
    out = tmp_path / "real-programs.ipynb"
    pm.execute_notebook(str(paths.NOTEBOOKS / "real-programs.ipynb"), str(out),
                        parameters={"vmas": [1, 3, 10, 100], "children": [0, 2]},
                        kernel_name="python3", cwd=str(paths.NOTEBOOKS), progress_bar=False)
    text = json.dumps(json.loads(out.read_text()))
    assert "KSM walks per run on baseline" in text


def test_notebook_rejects_a_bad_parameter(tmp_path):
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError, match="vmas"):
        pm.execute_notebook(str(paths.NOTEBOOKS / "real-programs.ipynb"),
                            str(tmp_path / "out.ipynb"), parameters={"vmas": [10, -5]},
                            kernel_name="python3", cwd=str(paths.NOTEBOOKS),
                            progress_bar=False)


def test_stuck_and_missed_pages(tmp_path):
    wl = tmp_path / "workloads"
    wl.mkdir()
    (wl / "toy.yaml").write_text("name: toy\ncommand: [/usr/bin/java]\nwarmup_seconds: 1\n")
    root = tmp_path / "programs"
    retried = [{**_ev("migrate", "ksm", "migrate_unmap", 0, 0, 0, 0, 100, i), "pfn": 7,
                "index": 0x547} for i in range(3)]
    folder = _run(root, wl / "toy.yaml", "naive", 1, retried)
    # the index falls in the executable's data segment (a private file mapping)
    manifest = dataset.read_manifest(folder)
    (folder / "info").mkdir()
    (folder / "info" / "maps-70.txt").write_text(
        "00946000-00a85000 rw-p 00545000 00:0e 521625   /newroot/usr/bin/python3.11\n")
    dataset.write_manifest(folder, {k: v for k, v in manifest.items()
                                    if k not in ("files", "manifest_sha256", "format", "date",
                                                 "host", "program")})
    data = P.load(root, wl)
    stuck = P.stuck_pages(data)
    assert stuck[["mapping", "mappings_found", "unmap_walks"]].values.tolist() == [
        ["/usr/bin/python3.11", 0, 3]]
    missed = P.missed_summary(data, "naive")
    assert missed[["mapping", "pages_per_run"]].values.tolist() == [["/usr/bin/python3.11", 1.0]]
    assert "python3.11" in P.stuck_text(P.stuck_summary(data), data)


def test_lost_mapping_located_and_explained(tmp_path):
    """A page three processes map whose walks make 2 rmap_one calls (the children's
    rmap_items only, 1 iteration per pass each) beside one found in full (parent 3 + 1 + 1
    per pass): the lost mapping is the parent's, and the text says so from the counters."""
    wl = tmp_path / "workloads"
    wl.mkdir()
    (wl / "toy.yaml").write_text("name: toy\ncommand: [/usr/bin/java]\nwarmup_seconds: 1\n")
    root = tmp_path / "programs"
    events, seq = [], 0
    for step, pid in enumerate((70, 71, 72)):
        for pfn, (it, sa, sm, calls) in ((5, (4, 0, 2, 2)), (6, (10, 0, 5, 5))):
            for op, reason in (("migrate", "migrate_unmap"), ("migrate", "migrate_unmap"),
                               ("idle", "idle")):
                events.append({**_ev(op, "ksm", reason, it, sa, sm, calls, 100, seq),
                               "step": step, "target_pid": pid, "pfn": pfn,
                               "index": 0x547 + pfn})
                seq += 1
    folder = _run(root, wl / "toy.yaml", "patched", 1, events)
    manifest = dataset.read_manifest(folder)
    manifest["summary"]["processes"] = [
        {**manifest["summary"]["processes"][0], "pid": p, "ppid": 70 if p != 70 else 1}
        for p in (70, 71, 72)]
    (folder / "info").mkdir()
    for p in (70, 71, 72):
        (folder / "info" / f"maps-{p}.txt").write_text(
            "00946000-00a85000 rw-p 00545000 00:0e 521625   /newroot/usr/bin/python3.11\n")
        (folder / "info" / f"numa_maps-after-{p}.txt").write_text(
            "00946000 default file=/newroot/usr/bin/python3.11 anon=2 N0=1 N1=1\n")
    (folder / "info" / "merge.txt").write_text("full_scans_at_freeze=10 full_scans=12 x=1\n")
    dataset.write_manifest(folder, {k: v for k, v in manifest.items()
                                    if k not in ("files", "manifest_sha256", "format", "date",
                                                 "host", "program")})
    data = P.load(root, wl)
    m = P.mapped_by(data).set_index("pfn")
    assert m.loc[5, "pids"] == (70, 71, 72) and m.loc[5, "walks"] == 9
    lost = P.lost_mappings(data)
    assert lost[["pfn", "mappers", "rmap_one_max", "iterations", "mapping"]].values.tolist() == [
        [5, 3, 2, 4, "/usr/bin/python3.11"]]
    assert P.found_in_full(data, "toy", "patched", 1, 3) == (10, 0, 5, 5, 1)
    text = P.lost_text(data)
    for words in ("4 iterations, 0 address skips, 2 mm skips, 2 rmap_one calls",
                  "2 × (3 + 2) = 10", "the parent's (pid 70)", "last 2 full scans",
                  "ran 2 times", "N0=1 N1=1 (pid 71)"):
        assert words in text, (words, text)
    closing = P.closing_table(data).set_index("kernel")
    assert closing.loc["patched", "missed"] == 1
    assert "1 of 1 runs" not in P.claim_lost_text(data)
    assert "0 of 1 runs" in P.claim_lost_text(data)


def test_realworld_answer_from_numbers(tree):
    root, wl = tree
    data = P.load(root, wl)
    rw = P.realworld_table(data).iloc[0]
    assert rw["skip_ratio"] == pytest.approx(12 / 16)
    assert rw["per_mapping_before"] == 8 and rw["per_mapping_after"] == 2
    assert rw["work_removed"] == pytest.approx(0.75)
    assert rw["chains_pooled"] == 4.0
    text = P.realworld_text(data, production_vmas=20000, production_iterations=22169,
                            level=0.999)
    for words in ("4.0 to 4.0", "about 20,000 VMAs", "22,169", "75% to 75%",
                  "8.0 → 2.0 iterations for toy (-75%)", "80%"):
        assert words in text, (words, text)
    pts = P.realworld_points(data, resamples=100)
    assert pts.iloc[0]["scenario"] == "toy (real program)"
    assert pts.iloc[0]["skip_ratio"] == pytest.approx(0.75)
    assert "22,169" in P.matter_text(data, P.table(data), 22169)
