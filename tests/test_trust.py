"""rmapwalk.analysis.trust: the campaign's tables from a published campaign (stubbed kernel),
and the bug table read from the regressions README, refusing what it cannot read."""
import json

import pytest

from rmapwalk import cli, dataset, scenario as sc
from rmapwalk.analysis import trust as TR
from rmapwalk.fuzz import run as fuzz_run
from tests.test_fuzz import StubCapture
from tests.test_fuzz_campaign import plan_file


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trust")
    mp = pytest.MonkeyPatch()
    mp.setattr(fuzz_run, "CAPTURE", lambda base, batch: StubCapture(base, batch, plant=False))
    try:
        assert cli.main(["fuzz-campaign", "--plan", str(plan_file(tmp)), "--work",
                         str(tmp / "w"), "--publish", "--to", str(tmp / "d")]) == 0
    finally:
        mp.undo()
    return tmp / "d"


def test_tables_add_up(published):
    c = TR.load("t-campaign", published)
    size = TR.size_table(c)
    assert list(size.index) == ["baseline", "patched", "all"]
    assert size.loc["all", "walks compared"] == c["summary"]["walks_compared"]
    assert size.loc["all", "scenarios"] == 2 * c["summary"]["scenarios"]
    mix = TR.step_mix(c)
    assert list(mix.index) == list(sc.STEP_KINDS)
    assert mix["steps"].sum() == sum(c["summary"]["step_mix"].values())
    assert "0 disagreements" in TR.verdict_text(c)
    assert "minutes" in TR.time_text(c)
    TR.figure(c)


def test_verdict_says_disagreements(published):
    c = TR.load("t-campaign", published)
    c["summary"] = {**c["summary"], "disagreements": 3}
    assert "**3 disagreements" in TR.verdict_text(c)


def test_a_changed_campaign_is_refused(published, tmp_path):
    import shutil
    folder = tmp_path / "t-campaign"
    shutil.copytree(published / "t-campaign", folder)
    s = json.loads((folder / "summary.json").read_text())
    s["walks_compared"] += 1
    (folder / "summary.json").write_text(json.dumps(s))
    with pytest.raises(dataset.DataIntegrityError, match="summary.json"):
        TR.load("t-campaign", tmp_path)


def test_the_committed_bug_table_reads():
    b = TR.bugs()
    assert list(b.columns) == list(TR.BUG_COLUMNS) and len(b) >= 12
    assert all((TR.REGRESSIONS / f"{n}.yaml").is_file() for n in b["scenario"])
    assert TR.bug_areas(b)["bugs"].sum() >= len(b)


@pytest.mark.parametrize("text,message", [
    ("| a | b |\n|---|---|\n", "expected the columns"),
    ("| scenario | what differed | kernel function | fix |\n|---|---|---|---|\n| `x` | y |\n",
     ":3: expected 4 cells"),
    ("| scenario | what differed | kernel function | fix |\n|---|---|---|---|\n"
     "| `nope` | y | mm/ksm.c `f` | z |\n", ":3: no scenario file nope.yaml"),
    ("no table\n", "no table"),
])
def test_a_bad_bug_table_names_the_file_and_line(tmp_path, text, message):
    p = tmp_path / "README.md"
    p.write_text(text)
    with pytest.raises(TR.RegressionTableError, match=message) as e:
        TR.bugs(p)
    assert str(p) in str(e.value)


def test_campaign_parameter_names_the_published_ones(published):
    assert TR.check_campaign("t-campaign", published) == "t-campaign"
    with pytest.raises(ValueError, match=r"parameter 'campaign'.*one of: t-campaign\), got 'x'"):
        TR.check_campaign("x", published)
