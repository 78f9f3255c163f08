"""rmapwalk.measure.paths: the guest's parameters, parsing what a boot brings back, run folders
(fast); and one boot of the merged selftest's shape on two path variants (vm, slow)."""
from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest

from rmapwalk import dataset
from rmapwalk.measure import initramfs, paths as P, programs

GUEST = Path(P.__file__).parent / "paths-guest" / "paths.c"
KSM_PFN = 0x1234


def test_program_text_gives_the_guest_every_key_it_reads():
    c_keys = set(re.findall(r'\{ "(\w+)", &P\.', GUEST.read_text()))
    for name in P.PATHS:
        text = P.program_text(name)
        kv = dict(line.split("=", 1) for line in text.splitlines())
        assert kv.pop("path") == P.PROGRAM_PATH.get(name, name)
        assert set(kv) == c_keys, name
        assert all(re.fullmatch(r"-?\d+", v) for v in kv.values())
    with pytest.raises(P.outputs.UsageError, match="no path 'swap'"):
        P.program_text("swap")


def test_paths_have_the_shapes_of_the_thread():
    hugh, st = P.PATHS["reclaim"], P.PATHS["selftest"]
    assert (hugh["pages"], hugh["move_src"], hugh["move_dst"]) == (3, 0, 1)   # page 1 onto 2
    assert hugh["merge_before_fork"] == 1 and hugh["prctl"] == 0
    assert (st["pages"], st["byte"], st["move_src"], st["move_dst"]) == (2, 0x77, 1, 0)
    assert st["prctl"] == 1 and st["retries"] == 100 and st["merge_before_fork"] == 0
    assert P.PATHS["hwpoison"]["early_kill"] == 1
    assert P.APPEND["reclaim"].startswith("mem=")
    # the mover is a leaf of the complete tree
    for spec in P.PATHS.values():
        n = sum(spec["fanout"] ** d for d in range(spec["depth"] + 1))
        assert spec["fanout"] * spec["mover"] + 1 >= n > spec["mover"]


def _console(path="hwpoison", procs=3, pages=3, result=0, errno="0", drop=None, extra=""):
    lines = ["RMAPWALK-BOOTED uptime=1.0",
             f"RMAPWALK-PATHS-MERGED procs={procs} merge_seconds=1.5 full_scans=2 "
             "merge_before_fork_seconds=0.7 full_scans_before_fork=2 pages_shared=1 "
             f"pages_sharing={procs * pages - 2} ksm_pfn={KSM_PFN}"]
    for i in range(procs):
        for k in range(pages):
            if (i, k) == drop:
                continue
            hole = int(i == procs - 1 and k == 0)
            moved = int(i == procs - 1 and k == 1)
            pre = 0 if hole else (1 << 63) | KSM_PFN
            post = 0 if hole else ((1 << 63) | KSM_PFN if moved else (1 << 62) | 5)
            lines.append(f"RMAPWALK-PATHS-MAP proc={i} pid={70 + i} ppid={69 + i} page={k} "
                         f"moved={moved} hole={hole} pre={pre:#x} post={post:#x} sigbus=1 "
                         "sigbus_code=5")
    op = P.OPS[path]
    lines.append(f"RMAPWALK-PATHS-RESULT path={path} op={op} procs={procs} pages={pages} "
                 f"mover={procs - 1} ksm_pfn={KSM_PFN} result={result} errno={errno} tries=0 "
                 "node_before=0 target=0 node_after=0 pfn_before=4660 pfn_after=0 hog_mb=0 "
                 "pswpout=0 pgmigrate_success=0 pageout_rc=0 pageout_present=-1")
    lines += [extra, f"RMAPWALK-PATHS-DONE path={path}", "RMAPWALK-EXIT status=0"]
    return "\n".join(lines) + "\n"


def test_parse_console_reads_mappings_and_the_result():
    rows, res = P.parse_console(_console(result=-1, errno="EBUSY"), "hwpoison")
    assert len(rows) == 9 and set(rows[0]) == set(P.MAPPING_COLUMNS)
    assert res["result"] == -1 and res["errno"] == "EBUSY" and res["ksm_pfn"] == KSM_PFN
    assert res["merge_seconds"] == 1.5 and res["pages_sharing"] == 7
    assert list(res) == list(P.RESULT_COLUMNS)
    s = P.summarize("hwpoison", rows, res, [], [])
    assert (s["mappings"], s["found"], s["missed"]) == (8, 7, 1)   # the moved one is missed


@pytest.mark.parametrize("console,message", [
    (_console().replace("RMAPWALK-PATHS-DONE path=hwpoison", ""), "did not finish"),
    (_console(drop=(1, 2)), "mapping lines for 8 .* expected 9"),
    (_console(extra="RMAPWALK-PATHS-MAP proc=0 pid=70 ppid=69 page=0 moved=0 hole=0 pre=0x1 "
                    "post=0x1 sigbus=0 sigbus_code=0"), "process 0 page 0 reported twice"),
    (_console().replace("sigbus=1 sigbus_code=5", "sigbus=x sigbus_code=5", 1),
     r"<where>:\d+: sigbus missing or not an integer"),
    (_console(path="reclaim").replace("DONE path=reclaim", "DONE path=hwpoison"),
     "a result of path 'reclaim'"),
    (_console().replace(" merge_seconds=1.5", ""), "merge_seconds missing"),
])
def test_parse_console_names_what_is_wrong(console, message):
    with pytest.raises(P.PathsRunError, match=message):
        P.parse_console(console, "hwpoison", "<where>")


COLLECT_LINE = ("           paths-70     [000] .....    12.500000: collect_procs_ksm: pfn=0x1234 "
                "index=0x7f00 rmap_items=20 tasks=160 iterations=4000 skip_mm=3800 "
                "matched=200 procs=8")


def _stream(extra=()):
    body = ["# tracer: nop", *extra,
            "           paths-70     [000] .....    12.400000: tracing_mark_write: "
            "rmapwalk-programs trigger step=1 op=hwpoison pid=70 comm=paths begin",
            COLLECT_LINE,
            "           paths-70     [000] .....    12.600000: rmap_walk: folio=(____ptrval____) "
            "pfn=0x1234 index=0x7f00 rwc=(____ptrval____) rmap_one=try_to_unmap_one type=ksm "
            "locked=0 duration_ns=100 iterations=40 skip_addr=20 skip_mm=0 rmap_one_calls=20",
            "           paths-70     [000] .....    12.700000: tracing_mark_write: "
            "rmapwalk-programs trigger step=1 op=hwpoison pid=70 comm=paths end result=0 "
            "errno=0 pages=1"]
    return "\n".join([initramfs.BEGIN_MARK, *body, f"{initramfs.END_MARK} lines={len(body)}"])


def test_parse_trace_and_collect_procs_ksm_events():
    text = _stream()
    parsed = programs.parse_trace(text, "t")
    assert len(parsed.events) == 1 and parsed.events[0]["op"] == "hwpoison"
    assert parsed.events[0]["reason"] == "try_to_unmap_one"
    (c,) = P.parse_collect(text, "t")
    assert (c["iterations"], c["skip_mm"], c["matched"], c["procs"], c["pfn"]) == \
        (4000, 3800, 200, 8, 0x1234)
    assert set(c) == set(P.COLLECT_COLUMNS)


def test_malformed_collect_procs_ksm_event_names_the_line():
    bad = COLLECT_LINE.replace(" procs=8", "")
    with pytest.raises(P.PathsRunError, match=r"t:3: malformed collect_procs_ksm event"):
        P.parse_collect(_stream([bad]), "t")


def test_outcome_per_path():
    _, res = P.parse_console(_console(result=-1, errno="EBUSY"), "hwpoison")
    o = P.outcome("hwpoison", res)
    assert (o["op"], o["result"], o["errno"], o["pfn"]) == ("hwpoison", "error", "EBUSY",
                                                              KSM_PFN)
    res = {**res, "path": "reclaim", "result": 1, "errno": "0"}
    assert P.outcome("reclaim", res)["errno"] == "mapped"
    res = {**res, "result": 0, "node_after": 1, "target": 1, "pfn_after": 9}
    assert P.outcome("selftest", res)["result"] == "moved"
    assert P.outcome("selftest", {**res, "result": 1})["result"] == "not-migrated"


def test_write_run_is_atomic_and_verifies(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "guest_binary", lambda: GUEST)
    monkeypatch.setattr(P.vm, "qemu_version", lambda q: "QEMU fake")
    text = _stream()
    console = _console()
    rows, res = P.parse_console(console, "hwpoison")
    parsed = programs.parse_trace(text, "t")
    prov = {"base": "6.12", "variant": "naive-paths", "name": "naive-paths"}
    dest = P.write_run("hwpoison", "6.12", "naive-paths", prov, tmp_path, console, text, parsed,
                       P.parse_collect(text), rows, res, ["qemu"], {"host_wall_seconds": 1})
    assert dest == tmp_path / "hwpoison" / "6.12" / "naive-paths" / "run-1"
    assert dataset.verify(tmp_path, scenarios=None, plan=None) == []
    man = dataset.read_manifest(dest)
    assert man["summary"]["missed"] == 1 and man["scenario"]["program"].startswith("path=")
    # a failure while writing leaves nothing at the place, nor a staging folder
    monkeypatch.setattr(P.contract, "write_csv", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        P.write_run("hwpoison", "6.12", "naive-paths", prov, tmp_path, console, text, parsed,
                    [], rows, res, ["qemu"], {})
    assert sorted(p.name for p in dest.parent.iterdir()) == ["run-1"]


def test_capture_refuses_a_variant_that_is_not_a_path_variant(capsys):
    from rmapwalk import cli
    assert cli.main(["paths", "capture", "--kernel", "patched"]) == 2
    assert "not a path variant" in capsys.readouterr().err
    assert cli.main(["paths", "capture", "nope"]) == 2


def _built(variant):
    from rmapwalk.measure import kernel
    try:
        return kernel.kernel_image(variant, build=False)
    except kernel.KernelBuildError:
        return None


@pytest.mark.vm
@pytest.mark.slow
def test_selftest_shape_on_naive_and_merged(tmp_path):
    """One boot each: the naive kernel cannot migrate the page the worker moved (its unmap
    walk misses that mapping), the merged form migrates it and every mapping follows."""
    import shutil
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("no qemu-system-x86_64")
    arts = {v: _built(v) for v in ("naive-paths", "merged-paths")}
    if not all(arts.values()):
        pytest.skip("path kernels not built: rmapwalk kernel build --kernel naive-paths "
                    "(and merged-paths)")
    got = {}
    for v, art in arts.items():
        image, prov = P.kernel_image("6.12", v)
        dest = P.capture_one("selftest", "6.12", v, image, prov, tmp_path, 600)
        assert dest is not None, v
        got[v] = dataset.read_manifest(dest)["summary"]
    assert got["merged-paths"]["missed"] == 0 and got["merged-paths"]["found"] > 1
    assert got["naive-paths"]["found"] == 0 and got["naive-paths"]["result"] != 0
    assert dataset.verify(tmp_path, scenarios=None, plan=None) == []
    counts = collections.Counter(v["mappings"] for v in got.values())
    assert len(counts) == 1          # the same tree on both kernels
