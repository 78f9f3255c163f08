"""rmapwalk fuzz-campaign: the plan's checks, resuming, the published summary and its
manifest, and the reader refusing a changed file.  The kernel is stubbed (tests/test_fuzz.py's
StubCapture: the model itself, or the model with a planted difference)."""
import json
import tarfile

import pytest
import yaml

from rmapwalk import cli, dataset
from rmapwalk.fuzz import campaign, generate as gen, run as fuzz_run
from tests.test_fuzz import StubCapture


def plan_file(tmp_path, **over):
    doc = {"name": "t-campaign", "base": "6.12", "kernels": ["baseline", "patched"],
           "batch": 3, "seeds": [{"seed": 41, "count": 3}, {"seed": 42, "count": 2}],
           "ci": {"seed": 7, "count": 2}}
    doc.update(over)
    p = tmp_path / "campaign.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


@pytest.fixture
def agreeing(monkeypatch):
    monkeypatch.setattr(fuzz_run, "CAPTURE",
                        lambda base, batch: StubCapture(base, batch, plant=False))
    StubCapture.captured = 0


def test_the_committed_plan_is_valid_and_has_500_scenarios():
    plan = campaign.load_plan()
    assert sum(e["count"] for e in plan["seeds"]) >= 500
    assert 10 <= plan["ci"]["count"] <= 30


@pytest.mark.parametrize("over,message", [
    ({"name": "Bad Name"}, "name"),
    ({"base": "5.10"}, "base '5.10'"),
    ({"kernels": ["baseline", "nope"]}, "kernels"),
    ({"batch": 0}, "batch: expected an integer >= 1"),
    ({"seeds": []}, "seeds: expected a list"),
    ({"seeds": [{"seed": 1, "count": 0}]}, r"seeds\[0\].count"),
    ({"seeds": [{"seed": -1, "count": 2}]}, r"seeds\[0\].seed"),
    ({"seeds": [{"seed": 1, "count": 2}, {"seed": 1, "count": 3}]}, "listed twice"),
    ({"ci": {"seed": 1}}, "ci: expected"),
    ({"extra": 1}, "unknown key"),
])
def test_bad_plans_name_the_file_and_the_field(tmp_path, over, message):
    p = plan_file(tmp_path, **over)
    with pytest.raises(campaign.PlanError, match=message) as e:
        campaign.load_plan(p)
    assert str(p) in str(e.value)


def test_bad_plan_exits_2(tmp_path, capsys):
    p = plan_file(tmp_path, batch="x")
    assert cli.main(["fuzz-campaign", "--plan", str(p), "--work", str(tmp_path / "w")]) == 2
    assert str(p) in capsys.readouterr().err


def test_campaign_publishes_a_verified_summary_and_resumes(tmp_path, agreeing, capsys):
    p = plan_file(tmp_path)
    work, to = tmp_path / "w", tmp_path / "data"
    assert cli.main(["fuzz-campaign", "--plan", str(p), "--work", str(work), "--publish",
                     "--to", str(to)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("fuzz-campaign t-campaign: 5 scenarios, ")
    assert " 0 disagreements on baseline, patched " in out[-1]
    c = campaign.load(to / "t-campaign")
    s = c["summary"]
    assert s["scenarios"] == 5 and s["disagreements"] == 0 and s["seeds"] == [41, 42]
    assert s["generator_version"] == gen.VERSION
    assert s["walks_compared"] == int(c["results"]["walks"].sum()) > 0
    assert set(c["results"]["kernel"]) == {"baseline", "patched"} and len(c["results"]) == 10
    assert sum(s["step_mix"].values()) == int(c["steps"]["count"].sum())
    assert s["step_mix"]["mmap"] > 0
    with tarfile.open(to / "t-campaign" / "scenarios.tar.gz") as tar:
        names = sorted(m.name for m in tar.getmembers())
    assert names == sorted(f"scenarios/{gen.scenario_name(sd, i)}.yaml"
                           for sd, n in ((41, 3), (42, 2)) for i in range(n))
    assert c["manifest"]["plan"]["seeds"] == [{"seed": 41, "count": 3}, {"seed": 42, "count": 2}]
    # resuming: nothing captured again
    StubCapture.captured = 0
    assert cli.main(["fuzz-campaign", "--plan", str(p), "--work", str(work)]) == 0
    assert StubCapture.captured == 0
    # a seed interrupted (no summary) is run again, the other one is not
    (work / "42" / "summary.json").unlink()
    assert cli.main(["fuzz-campaign", "--plan", str(p), "--work", str(work)]) == 0
    assert StubCapture.captured == 2 * 2


def test_disagreements_are_published_and_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fuzz_run, "CAPTURE", StubCapture)     # mremap targets count one more
    p = plan_file(tmp_path, seeds=[{"seed": 1, "count": 12}], kernels=["patched"])
    rc = cli.main(["fuzz-campaign", "--plan", str(p), "--work", str(tmp_path / "w"),
                   "--publish", "--to", str(tmp_path / "d")])
    c = campaign.load(tmp_path / "d" / "t-campaign")
    if c["summary"]["disagreements"] == 0:
        pytest.skip("no generated scenario walked a mremap target with this seed")
    assert rc == 1
    assert len(c["disagreements"]) == c["summary"]["disagreements"]
    assert int(c["results"]["disagreements"].sum()) == c["summary"]["disagreements"]


def test_a_changed_file_is_refused_naming_it(tmp_path, agreeing):
    p = plan_file(tmp_path, seeds=[{"seed": 41, "count": 2}])
    assert cli.main(["fuzz-campaign", "--plan", str(p), "--work", str(tmp_path / "w"),
                     "--publish", "--to", str(tmp_path / "d")]) == 0
    folder = tmp_path / "d" / "t-campaign"
    s = json.loads((folder / "summary.json").read_text())
    s["disagreements"] = 0 if s["disagreements"] else 1
    (folder / "summary.json").write_text(json.dumps(s, indent=2) + "\n")
    with pytest.raises(dataset.DataIntegrityError, match="summary.json"):
        campaign.load(folder)
    (folder / "results.csv").unlink()
    with pytest.raises(dataset.DataIntegrityError, match="results.csv: missing"):
        campaign.load(folder)


def test_publishing_again_replaces_atomically_and_only_publish_needs_every_seed(
        tmp_path, agreeing, capsys):
    p = plan_file(tmp_path, seeds=[{"seed": 41, "count": 2}])
    w, d = tmp_path / "w", tmp_path / "d"
    assert cli.main(["fuzz-campaign", "--plan", str(p), "--work", str(w), "--publish",
                     "--to", str(d)]) == 0
    assert cli.main(["fuzz-campaign", "--plan", str(p), "--work", str(w), "--only-publish",
                     "--to", str(d)]) == 0
    assert sorted(x.name for x in d.iterdir()) == ["t-campaign"]     # no temporary left
    campaign.load(d / "t-campaign")
    p2 = plan_file(tmp_path, seeds=[{"seed": 41, "count": 2}, {"seed": 43, "count": 1}])
    capsys.readouterr()
    assert cli.main(["fuzz-campaign", "--plan", str(p2), "--work", str(w), "--only-publish",
                     "--to", str(d)]) == 2
    assert "seed 43: not run yet" in capsys.readouterr().err
    campaign.load(d / "t-campaign")       # the published one is untouched


def test_publish_destination_is_checked_before_the_campaign_runs(tmp_path, monkeypatch, capsys):
    """--to used to be tried only after every seed had run (about ten minutes of VMs)."""
    monkeypatch.setattr(campaign, "run_seed", lambda *a: pytest.fail("a seed ran"))
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert cli.main(["fuzz-campaign", "--plan", str(plan_file(tmp_path)), "--work",
                     str(tmp_path / "w"), "--publish", "--to", str(not_a_folder)]) == 2
    assert f"--to {not_a_folder}: is a file, expected a folder" in capsys.readouterr().err
