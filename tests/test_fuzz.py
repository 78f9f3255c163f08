"""rmapwalk fuzz: the generator (reproducible, valid, every step kind, refusals only where
meant), the comparison, the minimizer on a fake kernel, the command line with a stubbed
capture; the batch stream split and the replayer's error marker.  The small campaign on
the real kernels is tests/measure/test_fuzz_ci.py."""
import dataclasses
import json
import re
import subprocess
import sys

import pytest

from rmapwalk import cli, kernels, scenario as sc, simulate
from rmapwalk.fuzz import differ, generate as gen, minimize as mz, run as fuzz_run
from rmapwalk.measure import initramfs, trace as trace_mod

LAST_LINE = re.compile(r"^fuzz: (\d+) scenarios, (\d+) walks compared, (\d+) disagreements$")


# --- the generator ---------------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_text():
    for seed in (0, 1, 12345):
        for i in range(5):
            assert gen.generate(seed, i) == gen.generate(seed, i)
    assert gen.generate(1, 0) != gen.generate(2, 0)
    assert gen.generate(1, 0) != gen.generate(1, 1)


def test_same_seed_same_bytes_in_another_process():
    code = "from rmapwalk.fuzz.generate import generate; print(generate(3, 7), end='')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123"}).stdout
    assert out == gen.generate(3, 7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generated_scenarios_are_valid_small_and_refused_only_where_meant(seed):
    for i in range(80):
        text = gen.generate(seed, i)
        scn = sc.loads(text, f"<{seed}:{i}>")
        assert scn.name == gen.scenario_name(seed, i)
        mmaps = [s for s in scn.steps if s.kind == "mmap"]
        assert len(mmaps) <= gen.MAX_MMAP_REGIONS
        assert all(s["pages"] <= gen.MAX_PAGES for s in mmaps)
        assert len(scn.steps) <= gen.MAX_STEPS
        assert 1 + sum(s["children"] for s in scn.steps if s.kind == "fork") <= gen.MAX_PROCS
        ref = scn.params["refusal"]
        if ref:
            assert ref["step"] == len(scn.steps), "a refused step must be the last one"
        for strategy in simulate.STRATEGIES:
            try:
                simulate.replay(scn, strategy)
            except simulate.StepRefused as e:
                assert ref, f"{seed}:{i} {strategy}: refused a step not meant to be: {e}"
                assert e.step == ref["step"], f"{seed}:{i}: {e}"
                if ref["certain"]:
                    assert e.errno == ref["errno"], f"{seed}:{i}: {e}"
            else:
                assert not (ref and ref["certain"]), \
                    f"{seed}:{i} {strategy}: the model accepted a step the kernel refuses: {ref}"


def test_every_step_kind_is_generated():
    seen, refused = set(), set()
    for i in range(200):
        scn = sc.loads(gen.generate(0, i))
        seen |= {s.kind for s in scn.steps}
        if scn.params["refusal"]:
            refused.add((scn.params["refusal"]["kind"], scn.params["refusal"]["errno"]))
    assert seen == set(sc.STEP_KINDS), f"never generated: {set(sc.STEP_KINDS) - seen}"
    assert {k for k, _ in refused} == set(gen.REFUSABLE)


def test_new_step_options_and_ksm_cow_are_generated():
    """Issue 7 part 2: regions placed after another, mremap onto an existing region, and a
    write to a page KSM may have merged (fill of a VM_MERGEABLE written page after a
    ksm_merge: the copy-on-write of mm/memory.c do_wp_page); the new refusals too."""
    after = onto = cow = 0
    refused = set()
    for i in range(200):
        scn = sc.loads(gen.generate(0, i))
        merged = False
        for s in scn.steps:
            after += s.kind == "mmap" and "after" in s.args
            onto += s.kind == "mremap" and "to_page" in s.args
            merged |= s.kind == "ksm_merge"
            cow += merged and s.kind == "fill" and s["pages"] == 1
        if scn.params["refusal"]:
            refused.add(scn.params["refusal"]["errno"])
    assert after and onto and cow > 20
    assert {"EINVAL", "ENOMEM", "EFAULT"} <= refused


def test_generator_history_features():
    """What the brief asks the histories to mix: file regions, unique and partial fills,
    strided and undone mprotects, nested forks, several merges, small max_page_sharing."""
    texts = [gen.generate(0, i) for i in range(100)]
    joined = "\n".join(texts)
    for needle in ("backing: file", "unique: true", "stride:", "prot: rw", "pages: all",
                   "max_page_sharing: 2", "max_page_sharing: 4"):
        assert needle in joined, needle
    assert any(re.search(r"- fork: \{children: \d, proc: [1-3]\}", t) for t in texts)
    assert any(t.count("ksm_merge") >= 2 for t in texts)
    assert any(re.search(r"- mremap: .*\n(.*\n)*.*ksm_merge", t) for t in texts)


def test_a_new_step_kind_needs_a_maker(monkeypatch):
    kinds = dict(sc.STEP_KINDS)
    kinds["new_kind"] = sc.STEP_KINDS["idle"]
    monkeypatch.setattr(gen, "STEP_KINDS", kinds)
    with pytest.raises(gen.GeneratorError, match="new_kind"):
        gen.generate(0, 0)


# --- the comparison --------------------------------------------------------------------

def side_of(scn, strategy="pgoff"):
    return differ.model_side(scn, strategy)


def test_model_against_itself_agrees_and_counts_walks():
    scn = sc.loads(gen.generate(0, 3))
    model = side_of(scn)
    walks, dis = differ.compare(model, model)
    assert dis == [] and walks == len(model.walks)


def test_same_refusal_agrees_other_errno_does_not():
    a = differ.Side([], [], {"step": 4, "errno": "ENOMEM"})
    assert differ.compare(a, a)[1] == []
    b = differ.Side([], [], {"step": 4, "errno": "EFAULT"})
    (d,) = differ.compare(a, b)[1]
    assert d.cls == "refusal" and "kernel ENOMEM at step 4, model EFAULT at step 4" in d.what


def test_walk_field_side_and_outcome_disagreements():
    walk = {"step": 3, "region": "A", "page": 0, "page_type": "ksm", "reason": "idle",
            "iterations": 4, "skip_addr": 2, "skip_mm": 0, "rmap_one": 2}
    out = {"step": 3, "region": "A", "page": 0, "proc": 0, "op": "idle", "result": "ok",
           "errno": ""}
    kernel = differ.Side([walk, {**walk, "page": 1}], [out])
    model = differ.Side([{**walk, "iterations": 5}],
                        [{**out, "result": "error", "errno": "not-present"}])
    walks, dis = differ.compare(kernel, model)
    assert walks == 2
    assert {d.cls for d in dis} == {"walk:iterations", "walk:kernel-only", "outcome"}
    line = dis[0].line("x.yaml", "patched")
    assert line.startswith("x.yaml: patched: step 3: walk A/0 idle #0: iterations kernel 4 model 5")


def test_walk_order_is_compared():
    w = {"step": 3, "region": "A", "page": 0, "page_type": "anon", "reason": "idle",
         "iterations": 1, "skip_addr": 0, "skip_mm": 0, "rmap_one": 1}
    v = {**w, "page": 1}
    (d,) = differ.compare(differ.Side([w, v], []), differ.Side([v, w], []))[1]
    assert d.cls == "order"


# --- a fake kernel: the model, except for a planted difference ---------------------------

@dataclasses.dataclass
class FakeRun:
    walks: list
    outcomes: list
    refused: dict | None = None
    failure: str | None = None
    folder: object = None


def planted(scn, strategy):
    """The kernel of these tests: the model, but walks of pages of a region created by
    mremap count one iteration more."""
    m = differ.model_side(scn, strategy)
    targets = {s["to"] for s in scn.steps if s.kind == "mremap"}
    walks = [{**w, "iterations": w["iterations"] + (w["region"] in targets)} for w in m.walks]
    return FakeRun(walks, m.outcomes, m.refused)


class StubCapture:
    """Stands in for run.VMCapture: no VM, the fake kernel above (or the model itself)."""

    calls = 0
    captured = 0

    def __init__(self, base, batch, plant=True):
        self.base, self.batch, self.plant = base, batch, plant

    def available(self, variant):
        return None

    def __call__(self, scenarios, variant, out_root):
        type(self).calls += 1
        type(self).captured += len(scenarios)
        strategy = kernels.strategy_of()[variant]
        if self.plant:
            return [planted(s, strategy) for s in scenarios]
        m = [differ.model_side(s, strategy) for s in scenarios]
        return [FakeRun(x.walks, x.outcomes, x.refused) for x in m]


NOISY = """name: noisy
description: twenty steps, four of which matter
ksm: {max_page_sharing: 3}
steps:
  - mmap: {region: A, pages: 8}
  - mmap: {region: B, pages: 16}
  - fill: {region: B, byte: 0x11}
  - fill: {region: A, byte: 0x5a}
  - mprotect: {region: B, start: 0, pages: 1, stride: 2, prot: r}
  - fork: {children: 2}
  - mergeable: {region: B}
  - idle: {region: B, pages: [3]}
  - mmap: {region: C, pages: 4}
  - fill: {region: C, unique: true}
  - ksm_merge: {full_scans: 2}
  - migrate: {region: B, pages: [1, 2]}
  - mremap: {region: A, start: 2, pages: 2, to: M1}
  - munmap: {region: C, start: 1, pages: 1}
  - idle: {region: C, pages: all, proc: 1}
  - mprotect: {region: B, start: 0, pages: 16, prot: rw, proc: 2}
  - ksm_merge: {full_scans: 1}
  - idle: {region: B, pages: [0], proc: 2}
  - migrate: {region: M1, pages: [0, 1]}
  - idle: {region: A, pages: [0]}
"""


def test_minimizer_shrinks_to_the_steps_that_matter(tmp_path):
    path = tmp_path / "noisy.yaml"
    path.write_text(NOISY)
    scn = sc.load(path)
    assert len(scn.steps) == 20
    strategy = kernels.strategy_of()["patched"]
    _, dis = differ.compare(differ.kernel_side(planted(scn, strategy)),
                            differ.model_side(scn, strategy))
    assert dis and all(d.cls == "walk:iterations" for d in dis)
    StubCapture.calls = StubCapture.captured = 0
    result = fuzz_run._minimize(scn, "patched", dis, StubCapture("6.12", 20), strategy,
                                tmp_path, budget=30)
    assert result["steps_before"] == 20 and result["captures"] <= 31
    assert StubCapture.captured <= 31
    small = sc.load(result["file"])
    kinds = [s.kind for s in small.steps]
    assert kinds == ["mmap", "fill", "mremap", "migrate"], small.steps
    assert small.steps[-1]["pages"] in ([0], [1])
    walks = (tmp_path / "minimized" / "noisy-min-patched.patched.walks.csv").read_text()
    assert walks.startswith("step,region,page,page_type,reason,")
    assert result["disagreements"], "the minimized scenario must still disagree"


def test_remove_steps_takes_dependents_and_renumbers_processes():
    steps = [("mmap", {"region": "A", "pages": 4}), ("fork", {"children": 2}),
             ("fill", {"region": "A", "byte": 1, "proc": 2}),
             ("fork", {"children": 1, "proc": 2}),
             ("idle", {"region": "A", "pages": [0], "proc": 3}),
             ("mremap", {"region": "A", "start": 0, "pages": 1, "to": "M1", "proc": 1}),
             ("idle", {"region": "M1", "pages": [0], "proc": 1})]
    assert mz.remove_steps(steps, {0}) == [("fork", {"children": 2}),
                                           ("fork", {"children": 1, "proc": 2})]
    assert mz.remove_steps(steps, {5})[-1] == ("idle", {"region": "A", "pages": [0], "proc": 3})
    one_child = mz._drop_child(steps, 1)
    assert ("fill", {"region": "A", "byte": 1, "proc": 2}) not in one_child
    assert one_child[-1] == ("idle", {"region": "M1", "pages": [0], "proc": 1})


# --- the command line with a stubbed capture ---------------------------------------------

def run_cli(argv, capsys):
    rc = cli.main(argv)
    out = capsys.readouterr().out.splitlines()
    return rc, out


def test_cli_agreement_exits_0(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fuzz_run, "CAPTURE",
                        lambda base, batch: StubCapture(base, batch, plant=False))
    rc, out = run_cli(["fuzz", "--seed", "5", "--count", "4", "--kernel", "all",
                       "--out", str(tmp_path / "f")], capsys)
    m = LAST_LINE.match(out[-1])
    assert m and m.group(1) == "4" and m.group(3) == "0", out
    assert int(m.group(2)) > 0 and rc == 0 and len(out) == 1
    assert len(list((tmp_path / "f" / "scenarios").glob("*.yaml"))) == 4
    summary = json.loads((tmp_path / "f" / "summary.json").read_text())
    assert summary["disagreements"] == 0


def test_cli_disagreement_exits_1_with_a_line_each_and_minimizes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fuzz_run, "CAPTURE", StubCapture)
    rc, out = run_cli(["fuzz", "--seed", "1", "--count", "12", "--kernel", "patched",
                       "--out", str(tmp_path / "f"), "--minimize", "1"], capsys)
    m = LAST_LINE.match(out[-1])
    assert m, out[-1]
    d = int(m.group(3))
    assert d == len(out) - 1
    if d == 0:
        pytest.skip("no generated scenario walked a mremap target with this seed")
    assert rc == 1
    assert all(re.match(r"^\S+\.yaml: patched: step \d+: walk ", l) for l in out[:-1]), out
    assert list((tmp_path / "f" / "minimized").glob("*-min-patched.yaml"))


def test_cli_refuses_bad_options_and_an_old_campaign(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fuzz_run, "CAPTURE", StubCapture)
    assert cli.main(["fuzz", "--seed", "1", "--count", "0", "--out", str(tmp_path)]) == 2
    (tmp_path / "old" / "runs").mkdir(parents=True)
    assert cli.main(["fuzz", "--seed", "1", "--count", "1", "--out", str(tmp_path / "old")]) == 2
    assert "earlier campaign" in capsys.readouterr().err


# --- the measurement side of batches ------------------------------------------------------

def test_error_marker_carries_the_errno():
    text = "\n".join([
        initramfs.BEGIN_MARK,
        "# entries-in-buffer/entries-written: 2/2   #P:1",
        " replayer-70 [000] ..... 1.000000: tracing_mark_write: rmapwalk step step=1 kind=mprotect proc=0 begin",
        " replayer-70 [000] ..... 1.000001: tracing_mark_write: rmapwalk error step=1 errno=ENOMEM",
        f"{initramfs.END_MARK} lines=3", ""])
    with pytest.raises(trace_mod.TraceError, match="reported an error"):
        trace_mod.parse(text)
    t = trace_mod.parse(text, allow_error=True)
    assert t.error == {"step": 1, "errno": "ENOMEM"} and not t.done


def test_split_batch_per_program():
    import base64
    import gzip

    def block(k, body):
        data = base64.b64encode(gzip.compress(body.encode())).decode()
        n = body.count("\n")
        return (f"{initramfs.PROGRAM_MARK} {k}\n{initramfs.BEGIN_MARK} {initramfs.ENCODING}\n"
                f"{data}\n{initramfs.END_MARK} lines={n}\n")
    raw = block(0, "a\nb\n") + block(1, "c\n")
    console = ("booted\nRMAPWALK-PROGRAM-BEGIN 0 x\nout0\nRMAPWALK-PROGRAM-END 0 status=0\n"
               "RMAPWALK-PROGRAM-BEGIN 1 x\nout1\nRMAPWALK-PROGRAM-END 1 status=1\n"
               "RMAPWALK-PROGRAM-BEGIN 2 x\npanic\n")
    parts = initramfs.split_batch(raw, console)
    assert sorted(parts) == [0, 1, 2]
    assert parts[0][0].rstrip("\n") == f"{initramfs.BEGIN_MARK}\na\nb\n{initramfs.END_MARK} lines=2"
    assert "out1" in parts[1][1] and "out0" not in parts[1][1] and parts[1][2] == 1
    assert parts[2][2] is None


def test_batch_init_resets_between_programs():
    init = initramfs.INIT
    for needle in ("echo 2 > $K/run", "echo 0 > $K/run", "umount /run/rmapwalk",
                   "echo > $T/trace", '"(replayer)"', initramfs.PROGRAM_MARK):
        assert needle in init, needle
