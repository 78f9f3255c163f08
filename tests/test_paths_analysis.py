"""rmapwalk.analysis.paths: reads path runs only through the verified reader, classifies the
pagemap entries as the module says, names the file of a bad table; the committed data/paths
verifies and gives every path x kernel cell."""
from __future__ import annotations

from pathlib import Path

import pytest

from rmapwalk import contract, dataset, paths
from rmapwalk.analysis import paths as A
from tests.test_programs_analysis import EVENT_COLUMNS, _csv

KSM, NEW = 0x1000, 0x2000


def _maps(path: str, missed_moved: bool):
    """3 processes x 2 pages; process 2 is the mover: page 0 a hole, page 1 moved."""
    rows = []
    for i in range(3):
        for k in range(2):
            hole, moved = int(i == 2 and k == 0), int(i == 2 and k == 1)
            pre = 0 if hole else (1 << 63) | KSM
            if hole:
                post = 0
            elif moved and missed_moved:
                post = (1 << 63) | KSM                      # still mapped: missed
            elif path == "selftest":
                post = (1 << 63) | (KSM if missed_moved else NEW)
            else:
                post = (1 << 62) | 7                        # a swap-type entry
            rows.append({"proc": i, "pid": 70 + i, "ppid": 69 + i, "page": k, "moved": moved,
                         "hole": hole, "pre": hex(pre), "post": hex(post), "sigbus": 0,
                         "sigbus_code": 0})
    return rows


def _run(root: Path, path: str, variant: str, run: int, missed: bool, result: int = 0,
         bad: dict | None = None) -> Path:
    folder = dataset.run_folder(root, path, "6.12", variant, run)
    folder.mkdir(parents=True)
    res = {c: 0 for c in A.RESULT_COLUMNS}
    program = path.split("-")[0]          # hwpoison-split runs the program's hwpoison
    res.update({"path": program, "op": {"selftest": "migrate"}.get(program, program), "procs": 3,
                "pages": 2, "mover": 2, "ksm_pfn": KSM, "result": result, "errno": "0",
                "pfn_before": KSM, "pfn_after": KSM if missed else NEW, "tries": 100 if missed
                else 1, "merge_before_fork_seconds": 0, "full_scans_before_fork": 0})
    _csv(folder / "result.csv", (*A.RESULT_COLUMNS, "merge_before_fork_seconds",
                                 "full_scans_before_fork"), [res])
    _csv(folder / "mappings.csv", A.MAPPING_COLUMNS, _maps(path, missed))
    ev = [{c: 0 for c in EVENT_COLUMNS} | {"step": 1, "op": res["op"], "page_type": "ksm",
                                             "reason": "try_to_unmap_one", "iterations": it,
                                             "skip_addr": it - 4, "rmap_one": 4 if missed else 5,
                                             "task": "paths", "timestamp": "1.0"}
          for it in (10, 30)]
    ev.append({c: 0 for c in EVENT_COLUMNS} | {"step": 0, "op": "pageout", "page_type": "ksm",
                                                 "reason": "x", "iterations": 555,
                                                 "task": "paths", "timestamp": "0.7"})
    ev.append({c: 0 for c in EVENT_COLUMNS} | {"step": "", "op": "", "page_type": "ksm",
                                                 "reason": "x", "iterations": 999,
                                                 "task": "ksmd", "timestamp": "0.5"})
    _csv(folder / "events.csv.gz", EVENT_COLUMNS, ev)
    _csv(folder / "collect_procs.csv", (*A.COLLECT_COLUMNS, "task", "timestamp", "index"),
         [{"seq": 0, "task_pid": 70, "pfn": KSM, "rmap_items": 5, "tasks": 15,
           "iterations": 40, "skip_mm": 30, "matched": 10, "procs": 3, "task": "paths",
           "timestamp": "1.0", "index": 1}] if program == "hwpoison" else [])
    if bad:
        name, text = next(iter(bad.items()))
        (folder / name).write_text(text)
    _csv(folder / "walks.csv", contract.MEASURED_WALK_COLUMNS, [])
    _csv(folder / "outcomes.csv", contract.OUTCOME_COLUMNS, [])
    for name in ("trace.txt.gz", "console.log.gz"):
        (folder / name).write_bytes(b"")
    dataset.write_manifest(folder, {"kernel": {"base": "6.12", "variant": variant},
                                    "scenario": {"name": path, "sha256": "x"},
                                    "timing": {"host_wall_seconds": 3.0},
                                    "memory_failure_console": ["0x1000: recovery action"]})
    return folder


@pytest.fixture
def root(tmp_path):
    for path in A.PATHS:
        _run(tmp_path, path, "naive-paths", 1, missed=True, result=-1 if path != "reclaim" else 1)
        _run(tmp_path, path, "merged-paths", 1, missed=False)
    return tmp_path


def test_matrix_says_naive_misses_the_moved_mapping(root):
    data = A.load(root)
    m = A.matrix(data).set_index(["path", "kernel"])
    for path in A.PATHS:
        assert m.loc[(path, "merged"), "missed"] == "0"
        assert m.loc[(path, "merged"), "reached / mappings"] == "5/5"
    for path in ("reclaim", "hwpoison"):
        assert m.loc[(path, "naive"), "reached / mappings"] == "4/5"
        assert m.loc[(path, "naive"), "moved mapping missed"] == "1"
    # migration is all or nothing: the page did not move, no mapping is on a new pfn
    assert m.loc[("selftest", "naive"), "reached / mappings"] == "0/5"
    assert m.loc[("selftest", "naive"), "trigger"].startswith("not moved in 100 tries")
    assert m.loc[("hwpoison", "naive"), "collect_procs_ksm iterations"] == "40"
    assert m.loc[("reclaim", "naive"), "collect_procs_ksm iterations"] == "-"
    assert m.loc[("reclaim", "merged"), "iterations / walk"] == "20.0"   # trigger walks only
    assert "`madvise(MADV_PAGEOUT)` before the pressure left 0 of 5" in A.answer_text(data)
    f = A.findings(data).set_index(["path", "kernel"])
    assert f.loc[("reclaim", "naive-paths"), "loses_mappings"]
    assert not f.loc[("reclaim", "merged-paths"), "loses_mappings"]
    text = A.answer_text(data)
    assert "naive misses 1 of 5 mappings in 1 of 1 runs, the moved one in 1" in text
    assert "merged reach every mapping (5) in every run" in text
    assert "on naive the page did not move in 100 tries in 1 of 1 runs" in text
    assert "`collect_procs_ksm()` iterations per call: naive 40; merged 40" in text


def test_memory_failure_messages_per_kernel(root):
    msgs = A.memory_failure_messages(A.load(root))
    assert set(msgs["path"]) == {"hwpoison", "hwpoison-split"}
    assert set(msgs["message"]) == {"recovery action"} and set(msgs["runs"]) == {1}


def test_classify_states():
    import pandas as pd
    m = pd.DataFrame(_maps("reclaim", True))
    for c in ("pre", "post"):
        m[c] = m[c].map(lambda x: int(x, 0))
    c = A.classify(m, {"path": "reclaim", "ksm_pfn": KSM})
    assert c["of_ksm"].sum() == 5 and c["reached"].sum() == 4
    assert set(c["state_after"]) == {"swap", "present", "none"}


def test_figure_draws(root):
    fig = A.figure(A.load(root))
    assert len(fig.axes) == 3


@pytest.mark.parametrize("name,text,message", [
    ("mappings.csv", "proc,pid\n0,1\n", "mappings.csv: missing column"),
    ("result.csv", ",".join(A.RESULT_COLUMNS) + "\n" + ",".join(["reclaim", "reclaim"]
     + ["x"] * (len(A.RESULT_COLUMNS) - 2)) + "\n", "result.csv: column procs: 'x' is not"),
    ("collect_procs.csv", ",".join(A.COLLECT_COLUMNS) + "\n" + "1,2,3,4,5,6,7,8,nine\n",
     "collect_procs.csv: column procs: 'nine'"),
])
def test_bad_table_names_the_file(tmp_path, name, text, message):
    folder = _run(tmp_path, "reclaim", "naive-paths", 1, missed=True, bad={name: text})
    with pytest.raises(A.PathsDataError, match=message) as e:
        A.load(tmp_path)
    assert str(folder / name) in str(e.value)


def test_a_changed_file_is_refused_naming_it(root):
    f = dataset.run_folder(root, "reclaim", "6.12", "naive-paths", 1) / "mappings.csv"
    f.write_text(f.read_text() + "\n")
    with pytest.raises(dataset.DataIntegrityError, match="mappings.csv"):
        A.load(root)


def test_committed_paths_data_verifies_and_fills_the_matrix():
    if not (paths.DATA / "paths" / "dataset.yaml").is_file():
        pytest.skip("no data/paths yet")
    data = A.load()
    m = A.matrix(data)
    assert set(m["path"]) <= set(A.PATHS) and len(m) >= 1
