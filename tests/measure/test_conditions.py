"""rmapwalk.measure.conditions: setup files are checked (naming the file and key), the guest
program builds and refuses bad parameters, the console lines are parsed and checked, a run
folder appears whole or not at all; and (``-m vm``) one boot under the posted conditions."""
from __future__ import annotations

import csv
import shutil
import subprocess

import pytest

from rmapwalk import contract, dataset, kernels
from rmapwalk.measure import conditions as C
from rmapwalk.measure import programs

SETUPS = ("posted-benchmark", "own-benchmark", "posted-split-ksmd-parked",
          "own-split-ksmd-running")


def test_committed_setups_load_and_differ_only_in_the_two_switches():
    specs = {s: C.load_spec(s) for s in SETUPS}
    posted = specs["posted-benchmark"].params
    assert posted["split_before_merge"] == 0 and posted["stop_before_trigger"] == 0
    assert posted["sleep_millisecs"] == 0 and posted["pages_to_scan"] == 10000
    assert posted["pages"] == 20000 and posted["byte"] == 0xaa and posted["full_scans"] == 2
    for s, spec in specs.items():
        rest = {k: v for k, v in spec.params.items() if k not in C.SWITCHES}
        assert rest == {k: v for k, v in posted.items() if k not in C.SWITCHES}, s
    assert specs["own-benchmark"].params["split_before_merge"] == 1
    assert specs["own-benchmark"].params["stop_before_trigger"] == 1
    text = C.program_text(specs["posted-benchmark"])
    assert "pages=20000\n" in text and "split_before_merge=0\n" in text


def test_the_plan_names_committed_setups_and_captured_kernels():
    plan = dataset.load_plan(C.RUNS / "dataset.yaml")
    kl = kernels.load()
    for setup, base, variant in plan:
        assert (C.SPECS / f"{setup}.yaml").is_file(), setup
        kl.patches(base, variant)


GOOD = (C.SPECS / "posted-benchmark.yaml").read_text()


@pytest.mark.parametrize("edit, words", [
    (lambda s: s.replace("pages: 20000", "pages: -3"), "pages: expected an integer"),
    (lambda s: s.replace("pages_to_scan: 10000", "pages_to_scan: many"), "ksm.pages_to_scan"),
    (lambda s: s.replace("page: 1 ", "page: 20000 "), "page: 20000 is not in the region"),
    (lambda s: s.replace("name: posted-benchmark", "name: other"), "must equal the file's stem"),
    (lambda s: s + "colour: blue\n", "unknown key(s) ['colour']"),
    (lambda s: s.replace("split_before_merge: false", "split_before_merge: 0"),
     "split_before_merge: expected true or false"),
    (lambda s: s.replace("  poll_ms: 1000\n", ""), "ksm: expected exactly"),
    (lambda s: "- a list\n", "expected a mapping"),
    (lambda s: "name: [unclosed\n", "not valid YAML"),
])
def test_bad_setups_name_the_file_and_key(tmp_path, edit, words):
    p = tmp_path / "posted-benchmark.yaml"
    p.write_text(edit(GOOD))
    with pytest.raises(C.SpecError) as err:
        C.load_spec(str(p))
    assert str(p) in str(err.value) and words in str(err.value)


def test_missing_setup_is_named(tmp_path):
    with pytest.raises(C.SpecError, match="no-such.yaml: cannot read"):
        C.load_spec(str(tmp_path / "no-such.yaml"))


def _line(r: int, **over) -> str:
    kv = {"round": r, "full_scans_before": 0, "full_scans_after": 32, "merge_seconds": "1.003",
          "polls": 1, "merge_timeout": 0, "pages_shared": 79, "pages_sharing": 19921,
          "stable_node_chains": 1, "stable_node_dups": 79, "node_before": 0, "target": 1,
          "move_pages": 1, "errno": "0", "status": -1, "node_after": 0, "pfn_before": 6112,
          "pfn_after": 6112, "pgmigrate_success": 0, "pgmigrate_fail": 1,
          "move_seconds": "3.26", "full_scans_end": 37, "ksm_run": 1, **over}
    return C.ROUND_MARK + " " + " ".join(f"{k}={v}" for k, v in kv.items() if v is not None)


def test_round_lines_are_parsed():
    console = "\n".join(["noise", _line(1), _line(2, move_pages=0, node_after=1),
                         f"{C.DONE_MARK} rounds=2", ""])
    rows = C.parse_rounds(console, 2)
    assert [r["round"] for r in rows] == [1, 2]
    assert rows[0]["move_pages"] == 1 and rows[0]["merge_seconds"] == pytest.approx(1.003)
    assert C.outcome(rows[0], 1)["result"] == "not-migrated"
    assert C.outcome(rows[1], 1)["result"] == "moved"
    assert C.outcome({**rows[1], "node_after": 0}, 1)["result"] == "stayed"
    assert C.outcome({**rows[1], "move_pages": -1, "errno": "ENOMEM"}, 1)["errno"] == "ENOMEM"
    assert set(C.outcome(rows[0], 1)) == set(contract.OUTCOME_COLUMNS)


@pytest.mark.parametrize("console, words", [
    (_line(1, pfn_after="x") + f"\n{C.DONE_MARK} rounds=1\n", "where:1: RMAPWALK-CONDITIONS line: pfn_after"),
    (_line(1, move_pages=None) + f"\n{C.DONE_MARK} rounds=1\n", "move_pages missing"),
    (_line(1) + f"\n{C.DONE_MARK} rounds=2\n", "expected rounds 1..2"),
    (_line(1) + "\n" + _line(1) + "\n", "round 1 reported twice"),
    (_line(1) + "\n", "did not finish"),
    ("", "the program reported none"),
])
def test_bad_round_lines_are_refused(console, words):
    rounds = 2 if "rounds=2" in console else 1
    with pytest.raises(C.ConditionsRunError) as err:
        C.parse_rounds(console, rounds, "where")
    assert words in str(err.value)


TRACE = """@@RMAPWALK-TRACE-BEGIN@@
# tracer: nop
# entries-in-buffer/entries-written: 4/4   #P:1
        replayer-43      [000] .....     3.0: tracing_mark_write: rmapwalk-programs trigger step=1 op=migrate pid=43 comm=conditions begin
        replayer-43      [000] .....     3.36: rmap_walk: folio=00000000a pfn=0x17e0 index=0x7f0000001 rwc=00000000b rmap_one=try_to_migrate_one type=ksm locked=0 duration_ns=585966526 iterations=5100001 skip_addr=5099745 skip_mm=0 rmap_one_calls=256
        replayer-43      [000] .....     4.45: rmap_walk: folio=00000000a pfn=0x17e0 index=0x7f0000001 rwc=00000000c rmap_one=remove_migration_pte type=ksm locked=0 duration_ns=1094827046 iterations=10240000 skip_addr=10239488 skip_mm=256 rmap_one_calls=256
        replayer-43      [000] .....     6.1: tracing_mark_write: rmapwalk-programs trigger step=1 op=migrate pid=43 comm=conditions end result=1 errno=0 pages=1
@@RMAPWALK-TRACE-END@@ lines=6
"""


def test_write_run_is_atomic_and_verifies(tmp_path):
    spec = C.load_spec("posted-benchmark")
    spec = C.Spec(spec.name, spec.path, spec.sha256, {**spec.params, "rounds": 1})
    parsed = programs.parse_trace(TRACE, "t")
    rounds = C.parse_rounds(_line(1) + f"\n{C.DONE_MARK} rounds=1\n", 1)
    kl = kernels.load()
    prov = {"base": kl.default_base, "variant": "baseline"}
    args = (spec, kl.default_base, "baseline", prov, tmp_path, "console", TRACE, parsed,
            rounds, ["qemu-system-x86_64"], {"host_wall_seconds": 1.0})
    dest = C.write_run(*args)
    assert dest.name == "run-1"
    assert dataset.verify(tmp_path, scenarios=C.SPECS, plan=None) == []
    walks = list(csv.DictReader(open(dest / "walks.csv")))
    assert [w["reason"] for w in walks] == ["migrate_unmap", "migrate_remap"]
    assert walks[0]["region"] == "A" and walks[0]["page"] == "1"
    man = dataset.read_manifest(dest)
    assert man["summary"]["rounds"]["1"]["by_reason"] == {"remove_migration_pte": 1,
                                                          "try_to_migrate_one": 1}
    # a failure while writing leaves nothing behind, not even the staging folder
    bad = list(args)
    bad[8] = [{**rounds[0], "unexpected": 1}]
    with pytest.raises(ValueError):
        C.write_run(*bad)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["run-1"]
    with pytest.raises(Exception, match="exists already"):
        C.write_run(*args, run=1)


def test_cli_refuses_bad_options(capsys):
    assert C.main(["capture", "posted-benchmark", "--runs", "0"]) == 2
    assert "--runs 0" in capsys.readouterr().err
    assert C.main(["capture", "no-such-setup"]) == 2
    assert "no-such-setup.yaml: cannot read" in capsys.readouterr().err
    assert C.main(["capture", "posted-benchmark", "--kernel", "merged-notrace"]) == 2
    assert C.main(["capture"]) == 2
    assert "--plan" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
def test_guest_builds_and_refuses_bad_parameters(tmp_path):
    from rmapwalk.measure import initramfs
    exe = initramfs.build_static(C.GUEST_DIR, tmp_path / "conditions")
    bad = tmp_path / "p.txt"
    bad.write_text("pages=20000\nbogus=1\n")
    r = subprocess.run([str(exe), str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown key 'bogus'" in r.stdout
    good = C.program_text(C.load_spec("posted-benchmark"))
    bad.write_text(good.replace("pages=20000", "pages=1"))
    r = subprocess.run([str(exe), str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "pages=1 out of" in r.stdout
    bad.write_text(good.replace("rounds=3\n", ""))
    r = subprocess.run([str(exe), str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "missing key 'rounds'" in r.stdout


@pytest.mark.vm
@pytest.mark.slow
def test_posted_conditions_boot_end_to_end(tmp_path):
    """One boot of the patched kernel under the posted conditions (one round): the run
    verifies, the trigger's KSM walks are an unmap walk and a remap walk, ksmd was running."""
    if shutil.which(C.vm.default_qemu()) is None:
        pytest.skip("no QEMU")
    from tests.measure.test_vm_e2e import kernel_cached
    why = kernel_cached("patched")
    if why:
        pytest.skip(f"patched kernel not built: {why}")
    spec = tmp_path / "setups" / "posted-benchmark.yaml"
    spec.parent.mkdir()
    spec.write_text(GOOD.replace("rounds: 3 ", "rounds: 1 "))
    s = C.load_spec(str(spec))
    base = kernels.load().default_base
    assert C.capture([s], base, ("patched",), 1, tmp_path / "runs", timeout=300.0) == 0
    assert dataset.verify(tmp_path / "runs", scenarios=spec.parent, plan=None) == []
    run = dataset.run_folder(tmp_path / "runs", "posted-benchmark", base, "patched", 1)
    rounds = list(csv.DictReader(open(run / "rounds.csv")))
    assert len(rounds) == 1 and rounds[0]["ksm_run"] == "1"      # ksmd still running
    assert int(rounds[0]["pages_sharing"]) > 0
    walks = list(csv.DictReader(open(run / "walks.csv")))
    ksm = [w for w in walks if w["page_type"] == "ksm"]
    assert {w["reason"] for w in ksm} == {"migrate_unmap", "migrate_remap"}


def test_rmapwalk_command_line_has_the_subcommand(capsys):
    from rmapwalk import cli
    assert cli.main(["conditions", "capture", "--runs", "0", "posted-benchmark"]) == 2
    assert "--runs 0" in capsys.readouterr().err
