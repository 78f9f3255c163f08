"""Parse the ftrace text a VM run brings back into walk rows (contract.MEASURED_WALK_COLUMNS).

The text is what /init streamed on ttyS1: a ``BEGIN_MARK`` line, the contents of
``/sys/kernel/tracing/trace`` (the ``rmap:rmap_walk`` events and the replayer's
``tracing_mark_write`` markers), and ``END_MARK lines=N``.  The replayer's markers are::

    rmapwalk step step=S kind=K proc=P begin|end
    rmapwalk page step=S kind=migrate|idle region=R page=N proc=P
    rmapwalk outcome step=S kind=K region=R page=N proc=P result=... [errno=E] [from=A to=B] [pfn=X]
    rmapwalk done scenario=NAME steps=N
    rmapwalk error step=S errno=E


(``R`` percent-encoded; ``result`` is ``moved``, ``stayed``, ``not-migrated`` (move_pages
gave up after migrate_pages' retries), ``error`` with ``errno``, or ``ok`` for idle).
``error`` ends a run the replayer stopped: step ``S`` failed with ``E``, the errno name of
the failed system call (``ENOMEM``, ``EFAULT``, ...), ``SIGSEGV``/``SIGBUS`` for a faulting
write, ``died`` or ``none`` otherwise (older replayers wrote no ``errno``).  :func:`parse`
raises on it unless ``allow_error``: then :attr:`Trace.error` holds ``{step, errno}`` and the
walks before it are kept (``rmapwalk fuzz`` compares refusals).  The rmap_walk event payload (one per rmap_walk() call) is::

    folio=%p pfn=%#lx index=%#lx rwc=%p rmap_one=%ps type=%s locked=%d duration_ns=%llu
    iterations=%lu skip_addr=%lu skip_mm=%lu rmap_one_calls=%lu

A walk between a ``page`` marker and the next marker belongs to that page and becomes a row;
any other walk is counted in ``Trace.outside`` (by reason) but is not a row.  Anything
malformed, a truncated stream, lost events or a missing end marker raise :class:`TraceError`
naming the file, the line and what was expected.
"""
from __future__ import annotations

import collections
import dataclasses
import gzip
import re
from pathlib import Path

from rmapwalk import contract
from rmapwalk.measure.initramfs import BEGIN_MARK, END_MARK
from rmapwalk.measure.program import decode_name


# "  replayer-75  [000] .....  12.345678: rmap_walk: folio=..."; task names may hold '-' and
# spaces, the irq-info column and the tgid column are optional.
LINE_RE = re.compile(r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
                     r"(?:(?P<flags>\S{4,5})\s+)?(?P<ts>\d+\.\d+):\s+(?P<event>\w+):\s(?P<payload>.*)$")
WALK_RE = re.compile(
    r"^folio=(?P<folio>\S+) pfn=(?P<pfn>0x[0-9a-f]+|0) index=(?P<index>0x[0-9a-f]+|0) "
    r"rwc=(?P<rwc>\S+) rmap_one=(?P<rmap_one>\S+) type=(?P<type>ksm|anon|file) "
    r"locked=(?P<locked>[01]) duration_ns=(?P<duration_ns>\d+) iterations=(?P<iterations>\d+) "
    r"skip_addr=(?P<skip_addr>\d+) skip_mm=(?P<skip_mm>\d+) rmap_one_calls=(?P<calls>\d+)\s*$")
ENTRIES_RE = re.compile(r"^# entries-in-buffer/entries-written: (\d+)/(\d+)")
WALK_FORMAT = ("folio=%p pfn=%#lx index=%#lx rwc=%p rmap_one=%ps type=ksm|anon|file locked=%d "
               "duration_ns=%llu iterations=%lu skip_addr=%lu skip_mm=%lu rmap_one_calls=%lu")


class TraceError(ValueError):
    def __init__(self, path: str, line: int | None, message: str):
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}:{line}: {message}" if line is not None else f"{path}: {message}")


@dataclasses.dataclass
class Trace:
    walks: list[dict]                       # contract.MEASURED_WALK_COLUMNS
    outcomes: list[dict]                    # contract.OUTCOME_COLUMNS
    outside: collections.Counter            # reason -> walks not inside a page window
    events: int = 0                         # rmap_walk events in the trace
    done: bool = False                      # the replayer's final marker was seen
    error: dict | None = None               # {step, errno}: the replayer stopped (allow_error)

    @property
    def outside_total(self) -> int:
        return sum(self.outside.values())


def _fields(path: str, lineno: int, text: str, required: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for tok in text.split():
        key, sep, value = tok.partition("=")
        if not sep:
            raise TraceError(path, lineno, f"marker field {tok!r} is not key=value")
        out[key] = value
    missing = [k for k in required if k not in out]
    if missing:
        raise TraceError(path, lineno, f"marker lacks {', '.join(missing)}: {text!r}")
    return out


def _int(path: str, lineno: int, fields: dict, key: str) -> int:
    try:
        return int(fields[key], 0)
    except ValueError:
        raise TraceError(path, lineno, f"{key}={fields[key]!r} is not an integer") from None


def parse(text: str, path: str = "<trace>", allow_error: bool = False) -> Trace:
    """Parse a ttyS1 trace stream; see the module docstring."""
    lines = text.replace("\r", "").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    try:
        begin = next(i for i, l in enumerate(lines) if l.strip() == BEGIN_MARK)
    except StopIteration:
        raise TraceError(path, 1, f"no {BEGIN_MARK} line: not a trace stream from the VM") from None
    end = next((i for i in range(begin + 1, len(lines)) if lines[i].startswith(END_MARK)), None)
    if end is None:
        raise TraceError(path, len(lines), f"truncated: no {END_MARK} line after line {begin + 1}")
    m = re.match(re.escape(END_MARK) + r" lines=(\d+)\s*$", lines[end])
    if not m:
        raise TraceError(path, end + 1, f"expected '{END_MARK} lines=N'")
    if int(m.group(1)) != end - begin - 1:
        raise TraceError(path, end + 1, f"the guest sent {m.group(1)} trace lines, "
                         f"{end - begin - 1} arrived: truncated or garbled serial stream")

    trace = Trace(walks=[], outcomes=[], outside=collections.Counter())
    page: dict | None = None
    for i in range(begin + 1, end):
        lineno, line = i + 1, lines[i]
        if not line.strip():
            continue
        if line.startswith("#"):
            m = ENTRIES_RE.match(line)
            if m and m.group(1) != m.group(2):
                raise TraceError(path, lineno, f"the ring buffer lost events (entries-in-buffer "
                                 f"{m.group(1)} < entries-written {m.group(2)}): "
                                 "raise buffer_size_kb")
            continue
        if "[LOST" in line and "EVENTS]" in line:
            raise TraceError(path, lineno, f"the ring buffer lost events: {line.strip()}")
        m = LINE_RE.match(line)
        if not m:
            raise TraceError(path, lineno, "expected an ftrace line 'TASK-PID [CPU] FLAGS "
                             f"TIMESTAMP: EVENT: PAYLOAD', got {line[:120]!r}")
        event, payload = m.group("event"), m.group("payload")
        if event == "rmap_walk":
            w = WALK_RE.match(payload)
            if not w:
                raise TraceError(path, lineno, f"malformed rmap_walk event; expected "
                                 f"{WALK_FORMAT!r}, got {payload[:200]!r}")
            trace.events += 1
            reason = contract.REASONS.get(w.group("rmap_one"), w.group("rmap_one"))
            if page is None:
                trace.outside[reason] += 1
                continue
            trace.walks.append({
                "step": page["step"], "region": page["region"], "page": page["page"],
                "page_type": w.group("type"), "reason": reason,
                "iterations": int(w.group("iterations")), "skip_addr": int(w.group("skip_addr")),
                "skip_mm": int(w.group("skip_mm")), "rmap_one": int(w.group("calls")),
                "duration_ns": int(w.group("duration_ns")), "pfn": int(w.group("pfn"), 16),
                "index": int(w.group("index"), 16), "proc": page["proc"],
            })
        elif event == "tracing_mark_write":
            payload = payload.strip()
            if not payload.startswith("rmapwalk "):
                raise TraceError(path, lineno, f"unexpected trace marker {payload[:120]!r}; "
                                 "expected one of the replayer's 'rmapwalk ...' markers")
            what, _, rest = payload[len("rmapwalk "):].partition(" ")
            page = None
            if what == "step":
                _fields(path, lineno, rest.replace(" begin", "").replace(" end", ""),
                        ("step", "kind", "proc"))
            elif what == "page":
                f = _fields(path, lineno, rest, ("step", "kind", "region", "page", "proc"))
                page = {"step": _int(path, lineno, f, "step"), "region": decode_name(f["region"]),
                        "page": _int(path, lineno, f, "page"), "proc": _int(path, lineno, f, "proc")}
            elif what == "outcome":
                f = _fields(path, lineno, rest, ("step", "kind", "region", "page", "proc", "result"))
                trace.outcomes.append({
                    "step": _int(path, lineno, f, "step"), "region": decode_name(f["region"]),
                    "page": _int(path, lineno, f, "page"), "proc": _int(path, lineno, f, "proc"),
                    "op": f["kind"], "result": f["result"], "errno": f.get("errno", ""),
                    "from_node": f.get("from", ""), "to_node": f.get("to", ""),
                    "pfn": f.get("pfn", "")})
            elif what == "done":
                trace.done = True
            elif what == "error":
                if not allow_error:
                    raise TraceError(path, lineno, f"the replayer reported an error: {payload!r}")
                f = _fields(path, lineno, rest, ("step",))
                trace.error = {"step": _int(path, lineno, f, "step"),
                               "errno": f.get("errno", "none")}
            else:
                raise TraceError(path, lineno, f"unknown replayer marker {what!r}; expected "
                                 "step, page, outcome, done or error")
        else:
            raise TraceError(path, lineno, f"unexpected event {event!r}; only rmap_walk and "
                             "tracing_mark_write should be enabled")
    if not trace.done and trace.error is None:
        raise TraceError(path, end + 1, "no 'rmapwalk done' marker: the replayer did not finish")
    return trace


def read_text(path: str | Path) -> str:
    p = Path(path)
    data = p.read_bytes()
    if p.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8", "replace")


def parse_file(path: str | Path) -> Trace:
    return parse(read_text(path), str(path))
