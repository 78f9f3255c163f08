"""manifest.verify catches a changed byte, a missing file, an extra file, an edited manifest."""
import json

from rmapwalk.measure import manifest


def make_run(root):
    run = root / "scen" / "baseline" / "run-1"
    run.mkdir(parents=True)
    (run / "walks.csv").write_text("step,region\n1,A\n")
    (run / "trace.txt.gz").write_bytes(b"\x1f\x8b some bytes")
    manifest.write(run, {"kernel": {"name": "baseline"}, "scenario": {"name": "scen"}})
    return run


def test_clean_tree_verifies(tmp_path):
    run = make_run(tmp_path)
    assert manifest.verify(tmp_path) == []
    doc = json.loads((run / "manifest.json").read_text())
    assert set(doc["files"]) == {"walks.csv", "trace.txt.gz"}
    assert doc["host"]["nproc"] and doc["program"]["version"]


def test_changed_byte(tmp_path):
    run = make_run(tmp_path)
    data = bytearray((run / "walks.csv").read_bytes())
    data[-2] ^= 1
    (run / "walks.csv").write_bytes(bytes(data))
    problems = manifest.verify(tmp_path)
    assert len(problems) == 1 and "walks.csv: sha256 differs" in problems[0]


def test_missing_file(tmp_path):
    run = make_run(tmp_path)
    (run / "trace.txt.gz").unlink()
    problems = manifest.verify(tmp_path)
    assert len(problems) == 1 and "trace.txt.gz: missing" in problems[0]


def test_extra_file(tmp_path):
    run = make_run(tmp_path)
    (run / "notes.txt").write_text("hi")
    problems = manifest.verify(tmp_path)
    assert len(problems) == 1 and "notes.txt: extra file" in problems[0]


def test_edited_manifest(tmp_path):
    run = make_run(tmp_path)
    doc = json.loads((run / "manifest.json").read_text())
    doc["kernel"]["name"] = "patched"
    (run / "manifest.json").write_text(json.dumps(doc))
    assert any("manifest itself was changed" in p for p in manifest.verify(tmp_path))


def test_empty_tree(tmp_path):
    assert manifest.verify(tmp_path) and "no manifest.json" in manifest.verify(tmp_path)[0]
