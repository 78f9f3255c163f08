"""The trace parser: a good stream gives rows; broken streams name file:line."""
import pytest

from rmapwalk import contract
from rmapwalk.measure import trace
from rmapwalk.measure.initramfs import BEGIN_MARK, END_MARK

HEADER = """# tracer: nop
#
# entries-in-buffer/entries-written: 9/9   #P:1
#
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |"""


def mark(text, ts="10.000001"):
    return f"        replayer-77      [000] .....    {ts}: tracing_mark_write: {text}"


def walk(rmap_one, iterations, skip_addr=0, skip_mm=0, calls=1, type_="ksm"):
    return (f"        replayer-77      [000] .....    10.000002: rmap_walk: folio=00000000deadbeef "
            f"pfn=0x1234 index=0x7 rwc=00000000cafebabe rmap_one={rmap_one} type={type_} locked=0 "
            f"duration_ns=5000 iterations={iterations} skip_addr={skip_addr} skip_mm={skip_mm} "
            f"rmap_one_calls={calls}")


def stream(body_lines):
    body = HEADER.splitlines() + body_lines
    return "\n".join([BEGIN_MARK, *body, f"{END_MARK} lines={len(body)}"]) + "\n"


GOOD = [
    mark("rmapwalk step step=6 kind=ksm_merge proc=0 begin"),
    walk("try_to_unmap_one", 3),                         # outside any page: counted only
    mark("rmapwalk step step=6 kind=ksm_merge proc=0 end"),
    mark("rmapwalk step step=7 kind=migrate proc=1 begin"),
    mark("rmapwalk page step=7 kind=migrate region=my%20region page=1 proc=1"),
    walk("try_to_migrate_one", 5100001, 5100000, 0, 1),
    walk("remove_migration_pte", 10240000, 10239999, 0, 1),
    mark("rmapwalk outcome step=7 kind=migrate region=my%20region page=1 proc=1 result=moved from=0 to=1"),
    mark("rmapwalk step step=7 kind=migrate proc=1 end"),
    mark("rmapwalk done scenario=t steps=7"),
]


def test_good_trace():
    t = trace.parse(stream(GOOD), "t.txt")
    assert t.events == 3 and t.done
    assert [w["reason"] for w in t.walks] == ["migrate_unmap", "migrate_remap"]
    first = t.walks[0]
    assert set(first) == set(contract.MEASURED_WALK_COLUMNS)
    assert (first["step"], first["region"], first["page"], first["proc"]) == (7, "my region", 1, 1)
    assert (first["iterations"], first["skip_addr"], first["rmap_one"]) == (5100001, 5100000, 1)
    assert first["pfn"] == 0x1234 and first["index"] == 7 and first["duration_ns"] == 5000
    assert t.outside == {"try_to_unmap_one": 1}
    assert t.outcomes == [{"step": 7, "region": "my region", "page": 1, "proc": 1, "op": "migrate",
                           "result": "moved", "errno": "", "from_node": "0", "to_node": "1",
                           "pfn": ""}]


def test_walk_after_outcome_is_outside():
    lines = GOOD[:8] + [walk("try_to_migrate_one", 1)] + GOOD[8:]
    t = trace.parse(stream(lines), "t.txt")
    assert len(t.walks) == 2 and t.outside["migrate_unmap"] == 1


def test_malformed_event_names_file_and_line():
    lines = list(GOOD)
    lines[5] = lines[5].replace("iterations=", "iters=")
    with pytest.raises(trace.TraceError) as e:
        trace.parse(stream(lines), "run/trace.txt")
    # BEGIN_MARK is line 1, the header 6 lines, then GOOD[0..5]
    assert str(e.value).startswith("run/trace.txt:13: malformed rmap_walk event")
    assert e.value.line == 13


def test_garbage_line():
    lines = GOOD[:3] + ["this is not ftrace"] + GOOD[3:]
    with pytest.raises(trace.TraceError, match=r"t.txt:11: expected an ftrace line"):
        trace.parse(stream(lines), "t.txt")


def test_truncated_trace():
    text = stream(GOOD)
    cut = "\n".join(text.splitlines()[:12]) + "\n"
    with pytest.raises(trace.TraceError, match=r"t.txt:12: truncated: no @@RMAPWALK-TRACE-END@@"):
        trace.parse(cut, "t.txt")


def test_lines_missing_in_the_middle():
    lines = stream(GOOD).splitlines()
    del lines[9]
    with pytest.raises(trace.TraceError, match=r"t.txt:\d+: the guest sent 16 trace lines, 15 arrived"):
        trace.parse("\n".join(lines), "t.txt")


def test_missing_begin_marker():
    with pytest.raises(trace.TraceError, match=r"t.txt:1: no @@RMAPWALK-TRACE-BEGIN@@"):
        trace.parse("hello\n", "t.txt")


def test_missing_done_marker():
    with pytest.raises(trace.TraceError, match="no 'rmapwalk done' marker"):
        trace.parse(stream(GOOD[:-1]), "t.txt")


def test_lost_events():
    text = stream(GOOD).replace("entries-written: 9/9", "entries-written: 9/12")
    with pytest.raises(trace.TraceError, match=r"t.txt:4: the ring buffer lost events"):
        trace.parse(text, "t.txt")


def test_parse_file_gz(tmp_path):
    import gzip
    p = tmp_path / "trace.txt.gz"
    p.write_bytes(gzip.compress(stream(GOOD).encode()))
    assert len(trace.parse_file(p).walks) == 2


def test_encoded_stream_round_trip():
    import base64
    import gzip
    from rmapwalk.measure import initramfs
    text = "\n".join(stream(GOOD).splitlines()[1:-1]) + "\n"
    n = len(text.splitlines())
    raw = (f"{BEGIN_MARK} {initramfs.ENCODING}\r\n"
           + base64.encodebytes(gzip.compress(text.encode())).decode().replace("\n", "\r\n")
           + f"{END_MARK} lines={n}\r\n")
    assert len(trace.parse(initramfs.decode_stream(raw), "t.txt").walks) == 2
    damaged = raw[:40] + "!" + raw[41:]
    with pytest.raises(trace.TraceError, match="the guest sent 16 trace lines, 0 arrived"):
        trace.parse(initramfs.decode_stream(damaged), "t.txt")
