"""Real programs (rmapwalk.measure.programs): workload files, the guest script, the launcher,
the trace and maps parsers, the committed data set; and one short real-program capture in
QEMU (``-m vm``)."""
import gzip
import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from rmapwalk import contract, dataset, paths
from rmapwalk.measure import initramfs, programs


def test_committed_workloads_load():
    names = sorted(p.stem for p in programs.WORKLOADS.glob("*.yaml"))
    assert {"jvm-javac", "python-compileall", "nginx-prefork", "ci-python"} <= set(names)
    for n in names:
        wl = programs.load_workload(n)
        assert wl.command[0].startswith("/")
        assert wl.packages, f"{n}: names no Debian package"
        script = programs.workload_script(wl)
        r = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True)
        assert r.returncode == 0, (n, r.stderr)


@pytest.mark.parametrize("text, words", [
    ("name: x\ncommand: [/bin/true]\nwarmup_seconds: 5\nbogus: 1\n", "unknown key"),
    ("name: other\ncommand: [/bin/true]\nwarmup_seconds: 5\n", "must equal the file's stem"),
    ("name: x\ncommand: [true]\nwarmup_seconds: 5\n", "absolute path"),
    ("name: x\ncommand: [/bin/true]\nwarmup_seconds: 0\n", "warmup_seconds"),
    ("name: x\ncommand: [/bin/true]\nwarmup_seconds: 5\ntrigger: [reclaim]\n", "trigger"),
    ("name: x\ncommand: /bin/true\nwarmup_seconds: 5\n", "command"),
])
def test_bad_workloads_are_refused(tmp_path, text, words):
    p = tmp_path / "x.yaml"
    p.write_text(text)
    with pytest.raises(programs.WorkloadError, match=words):
        programs.load_workload(str(p))


def test_guest_init_is_valid_shell():
    r = subprocess.run(["sh", "-n"], input=programs.INIT, text=True, capture_output=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
def test_launcher_builds_and_refuses_bad_use(tmp_path):
    exe = programs.build_launcher(tmp_path / "launcher")
    r = subprocess.run([str(exe), "migrate", "x", "1"], capture_output=True, text=True)
    assert r.returncode == 2 and "STEP" in r.stderr
    r = subprocess.run([str(exe)], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr


def _event(task, pid, ts, kind, rmap_one, it, sa, sm, calls, ns=1000):
    return (f"  {task}-{pid}  [000] .....  {ts}: rmap_walk: folio=(____ptrval____) pfn=0x1234 "
            f"index=0x10 rwc=(____ptrval____) rmap_one={rmap_one} type={kind} locked=0 "
            f"duration_ns={ns} iterations={it} skip_addr={sa} skip_mm={sm} "
            f"rmap_one_calls={calls}")


def _mark(pid, ts, text):
    return f"  launcher-{pid}  [000] .....  {ts}: tracing_mark_write: {text}"


def _trace(lines):
    return "\n".join([initramfs.BEGIN_MARK, *lines, f"{initramfs.END_MARK} lines={len(lines)}"])


def test_parse_trace_attributes_walks_to_triggers():
    lines = [
        "# tracer: nop",
        _event("kcompactd0", 30, "1.0", "anon", "try_to_migrate_one", 1, 0, 0, 1),
        _mark(50, "2.0", "rmapwalk-programs trigger step=0 op=migrate pid=77 comm=java begin"),
        _event("launcher", 50, "2.1", "ksm", "try_to_migrate_one", 900, 898, 0, 2),
        _event("launcher", 50, "2.2", "ksm", "remove_migration_pte", 1800, 1796, 2, 2),
        _event("launcher", 50, "2.3", "file", "remove_migration_pte", 1, 0, 0, 1),
        _mark(50, "2.4", "rmapwalk-programs trigger step=0 op=migrate pid=77 comm=java end "
              "result=3 errno=0 pages=0"),
        _mark(51, "3.0", "rmapwalk-programs trigger step=1 op=idle pid=77 comm=java begin"),
        _event("launcher", 51, "3.1", "ksm", "page_idle_clear_pte_refs_one", 1800, 1796, 2, 2),
        _mark(51, "3.2", "rmapwalk-programs trigger step=1 op=idle pid=77 comm=java end "
              "result=10 errno=0 pages=500"),
    ]
    p = programs.parse_trace(_trace(lines))
    assert len(p.events) == 5 and len(p.walks) == 4
    assert p.events[0]["task"] == "kcompactd0" and p.events[0]["op"] == ""
    assert [w["reason"] for w in p.walks] == ["migrate_unmap", "migrate_remap", "migrate_remap",
                                               "idle"]
    assert all(w["proc"] == 77 and w["region"] == "-" and w["page"] == 0 for w in p.walks)
    assert set(p.walks[0]) == set(contract.MEASURED_WALK_COLUMNS)
    assert [(t["op"], t["result"], t["pages"]) for t in p.triggers] == [("migrate", 3, 0),
                                                                       ("idle", 10, 500)]


def test_parse_trace_refuses_lost_events_and_truncation():
    with pytest.raises(programs.ProgramRunError, match="lost events"):
        programs.parse_trace(_trace(["# entries-in-buffer/entries-written: 10/12"]))
    text = _trace([_event("a", 1, "1.0", "ksm", "try_to_migrate_one", 1, 0, 0, 1)])
    with pytest.raises(programs.ProgramRunError, match="arrived"):
        programs.parse_trace(text.replace("lines=1", "lines=2"))


def test_split_stream_round_trip():
    blob = base64.b64encode(gzip.compress(b"pages_shared: 5\n")).decode()
    trace = base64.b64encode(gzip.compress(b"# tracer: nop\n")).decode()
    raw = (f"{programs.FILE_MARK} ksm-before.txt\n{blob}\n{programs.FILE_END}\n"
           f"{initramfs.BEGIN_MARK} {initramfs.ENCODING}\n{trace}\n{initramfs.END_MARK} lines=1\n")
    files, text = programs.split_stream(raw)
    assert files == {"ksm-before.txt": b"pages_shared: 5\n"}
    assert "# tracer: nop" in text and initramfs.END_MARK in text


def test_parse_maps_finds_protection_runs():
    maps = "\n".join([
        "7f0000000000-7f0000001000 ---p 00000000 00:00 0 ",
        "7f0000001000-7f0000010000 rw-p 00000000 00:00 0 ",
        "7f0000010000-7f0000011000 ---p 00000000 00:00 0 ",
        "7f0000020000-7f0000030000 rw-p 00000000 00:00 0 ",
        "7f0000030000-7f0000031000 r-xp 00000000 00:1a 42 /usr/lib/libc.so.6",
        "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]",
    ])
    m = programs.parse_maps(maps)
    assert m["vmas"] == 6 and m["anon_vmas"] == 5 and m["file_vmas"] == 1
    assert m["prot_runs"] == 1 and m["longest_prot_run"] == 3


def test_committed_program_runs_verify():
    root = paths.DATA / "programs"
    if not root.is_dir():
        pytest.skip("no data/programs yet")
    assert dataset.verify(root, scenarios=programs.WORKLOADS, plan=None) == []


# --- end to end: one short real program on one kernel ---------------------------------------
def _kernel_cached(name):
    from rmapwalk.measure import kernel
    try:
        kernel.kernel_image(name, build=False)
    except kernel.KernelBuildError as e:
        return str(e)
    return None


@pytest.mark.vm
@pytest.mark.slow
def test_ci_python_capture_end_to_end(tmp_path):
    if shutil.which(programs.vm.default_qemu()) is None:
        pytest.skip("no QEMU")
    why = _kernel_cached("patched")
    if why:
        pytest.skip(f"patched kernel not built: {why}")
    wl = programs.load_workload("ci-python")
    results = programs.capture(wl, "6.12", ("patched",), 1, tmp_path, timeout=170.0,
                               install=False)
    assert results and results[0] is not None, "the capture failed (see build/failed/)"
    assert dataset.verify(tmp_path, scenarios=programs.WORKLOADS, plan=None) == []
    run = results[0]
    import csv
    walks = list(csv.DictReader(open(run / "walks.csv")))
    ksm = [w for w in walks if w["page_type"] == "ksm"]
    assert ksm, "no KSM walks: nothing merged, or the triggers did not reach KSM pages"
    assert {w["reason"] for w in ksm} >= {"migrate_unmap", "migrate_remap"}
    man = dataset.read_manifest(run)
    assert man["scenario"]["name"] == "ci-python"
    assert man["workload"]["debian_packages"]["python3.11-minimal"]
    assert man["summary"]["pgmigrate_success"] > 0
