"""The one reader of measured runs: every way a run can fail to verify is caught, named by
its file, by ``rmapwalk verify`` and by the analysis's reader, and the committed data set
verifies."""
from __future__ import annotations

import json
import shutil

import pytest

from rmapwalk import dataset, paths
from rmapwalk.analysis import traces as T
from rmapwalk.cli import main
from tests.fakedata import use_scenarios, write_run

PLAN = """captures:
  - scenarios: [scen]
    bases: ["6.12"]
    variants: [baseline, patched]
    runs: 2
"""


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A clean data set: scen on 6.12 baseline and patched, two runs each, with a plan."""
    use_scenarios(monkeypatch, tmp_path / "scenarios")
    root = tmp_path / "traces"
    for v in ("baseline", "patched"):
        for r in (1, 2):
            write_run(root, "scen", v, r)
    (root / "dataset.yaml").write_text(PLAN)
    assert dataset.verify(root) == []
    return root


def only(problems, *words):
    assert len(problems) == 1, problems
    for w in words:
        assert w in problems[0], problems[0]
    return problems[0]


def test_committed_data_set_verifies():
    assert dataset.verify(paths.TRACES) == []
    assert len(dataset.runs(paths.TRACES)) == sum(dataset.load_plan().values())


def test_truncated_walks_csv(tree):
    f = tree / "scen/6.12/baseline/run-1/walks.csv"
    f.write_bytes(f.read_bytes()[:-5])
    only(dataset.verify(tree), str(f), "size")
    with pytest.raises(dataset.DataIntegrityError, match="walks.csv"):
        T.load(tree)


def test_edited_byte_same_size(tree):
    f = tree / "scen/6.12/patched/run-2/outcomes.csv"
    data = bytearray(f.read_bytes())
    data[0] ^= 0x20
    f.write_bytes(bytes(data))
    only(dataset.verify(tree), str(f), "sha256")


def test_edited_manifest(tree):
    m = tree / "scen/6.12/patched/run-1/manifest.json"
    doc = json.loads(m.read_text())
    doc["kernel"]["name"] = "naive"
    m.write_text(json.dumps(doc))
    assert any("manifest itself was changed" in p for p in dataset.verify(tree))


def test_run_without_manifest(tree):
    fake = tree / "scen/6.12/baseline/run-3"
    shutil.copytree(tree / "scen/6.12/baseline/run-1", fake)
    (fake / "manifest.json").unlink()
    problems = dataset.verify(tree)
    assert any(str(fake) in p and "without manifest.json" in p for p in problems), problems
    assert any(str(fake) in p and "extra run" in p for p in problems), problems
    with pytest.raises(dataset.DataIntegrityError, match="run-3"):
        T.load(tree)


def test_patched_run_copied_into_baseline(tree):
    dest = tree / "scen/6.12/baseline/run-9"
    shutil.copytree(tree / "scen/6.12/patched/run-1", dest)
    problems = dataset.verify(tree)
    assert any(str(dest) in p and "filed under 6.12/baseline" in p for p in problems), problems


def test_run_of_another_scenario_filed_here(tree, monkeypatch):
    write_run(tree, "other", "baseline", 1)
    src, dest = tree / "other/6.12/baseline/run-1", tree / "scen/6.12/baseline/run-3"
    shutil.move(src, dest)
    problems = dataset.verify(tree)
    assert any("scenario 'other' filed under 'scen'" in p for p in problems), problems


def test_missing_run(tree):
    shutil.rmtree(tree / "scen/6.12/patched/run-2")
    only(dataset.verify(tree), "scen/6.12/patched/run-2", "missing")


def test_scenario_edited_after_capture(tree):
    f = paths.SCENARIOS / "scen.yaml"
    f.write_text(f.read_text() + "# edited\n")
    problems = dataset.verify(tree)
    assert len(problems) == 4 and all("another text of" in p for p in problems), problems


def test_patch_edited_after_capture(tree, tmp_path, monkeypatch):
    """A run's manifest records the patch series its kernel was built from; a patch edited
    since (say the v4 query) makes the run a measurement of another kernel.  It verified."""
    from rmapwalk import kernels
    config = tmp_path / "kernel-config"
    shutil.copytree(paths.KERNEL_CONFIG, config)
    monkeypatch.setattr(kernels, "KERNELS_FILE", config / "kernels.yaml")
    assert dataset.verify(tree) == []
    kl = kernels.load()
    patch = kl.patches(kl.default_base, "patched")[-1]
    assert patch not in kl.patches(kl.default_base, "baseline")
    patch.write_text(patch.read_text() + "\n")
    problems = dataset.verify(tree)
    assert len(problems) == 2, problems          # the two patched runs, not the baseline ones
    assert all("scen/6.12/patched/run-" in p and "another patch series of 6.12/patched" in p
               and patch.name in p for p in problems), problems


def test_stray_entries(tree):
    (tree / "scen/6.12/baseline/notes.txt").write_text("x")
    (tree / "scen/6.12/baseline/.run-3.tmp-abc").mkdir()
    problems = dataset.verify(tree)
    assert any("notes.txt: not a run folder" in p for p in problems), problems
    assert any(".run-3.tmp-abc: leftover" in p for p in problems), problems


def test_unknown_kernel_folder(tree):
    shutil.copytree(tree / "scen/6.12/baseline", tree / "scen/5.4/baseline")
    problems = dataset.verify(tree)
    assert any("5.4/baseline is not in" in p for p in problems), problems


def test_include_unverified_returns_the_problems(tree):
    f = tree / "scen/6.12/baseline/run-1/walks.csv"
    f.write_text(f.read_text() + "\n")
    runs = dataset.runs(tree, include_unverified=True)
    bad = [r for r in runs if not r.verified]
    assert len(bad) == 1 and str(f) in bad[0].problems[0]
    assert "unverified" in T.integrity_note(tree)
    assert T.integrity_note(tree).count(str(f)) == 1


def test_digest_covers_every_file(tree):
    before = dataset.digest(tree)
    f = tree / "scen/6.12/baseline/run-1/console.log.gz"
    f.write_bytes(f.read_bytes() + b"\0")
    assert dataset.digest(tree) != before


def test_verify_command_fails_naming_the_file(tree, capsys):
    f = tree / "scen/6.12/baseline/run-2/walks.csv"
    f.write_bytes(f.read_bytes()[:10])
    assert main(["verify", str(tree)]) == 1
    assert str(f) in capsys.readouterr().out


def test_scenario_names_are_unique_across_folders():
    """paths.scenario_file finds a name in data/scenarios/ or a folder under it (regressions/):
    a name in two places would make a run's scenario ambiguous."""
    from collections import Counter
    names = Counter(p.stem for p in paths.SCENARIOS.rglob("*.yaml"))
    assert [n for n, k in names.items() if k > 1] == []
    for name in names:
        assert paths.scenario_file(name).stem == name


def test_scenario_file_finds_regressions_and_names_the_missing(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text("x")
    (tmp_path / "sub" / "b.yaml").write_text("x")
    assert paths.scenario_file("a", tmp_path) == tmp_path / "a.yaml"
    assert paths.scenario_file("b", tmp_path) == tmp_path / "sub" / "b.yaml"
    assert paths.scenario_file("c", tmp_path) == tmp_path / "c.yaml"     # named in messages


def test_make_book_verifies_every_run_tree_first():
    """make book's first step checks every tree of run folders the chapters read (a tampered
    data/programs run failed the build only inside the claim notebook, after a traceback)."""
    import subprocess
    r = subprocess.run(["make", "-n", "verify-data"], capture_output=True, text=True,
                       cwd=paths.ROOT)
    assert r.returncode == 0, r.stderr
    for command in ("rmapwalk verify data/traces",
                    "rmapwalk verify data/programs --scenarios data/workloads",
                    "rmapwalk conditions verify", "rmapwalk paths verify"):
        assert command in r.stdout, r.stdout


def test_root_that_is_not_a_folder_is_named(tmp_path):
    f = tmp_path / "walks.csv"
    f.write_text("x\n")
    assert dataset.verify(f) == [f"{f}: a file, expected a data folder"]
    assert dataset.verify(tmp_path / "absent") == [f"{tmp_path / 'absent'}: no such data folder"]
    with pytest.raises(dataset.DataIntegrityError, match="a file, expected a data folder"):
        dataset.runs(f)
