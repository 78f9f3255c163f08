"""One scenario on one kernel against the model: walk by walk, page by page, refusal.

Both sides are a :class:`Side`: the walks (``contract.COLUMNS``), the outcomes
(``contract.SHARED_OUTCOME_COLUMNS``) and the refusal that stopped the run (``{step, errno}``
or None).  The model side comes from :func:`rmapwalk.simulate.replay` under the kernel's
strategy (``kernels.strategy_of()``); a :class:`~rmapwalk.simulate.StepRefused` is the model's
refusal, and the walks before it are those of the scenario cut before the refused step.  The
kernel side comes from a capture (``rmapwalk.measure.capture.capture_batch``).

Both refusing the same step with the same errno is agreement.  Walks are matched by
:func:`rmapwalk.analysis.compare.match` (key step, region, page, reason and the repeat
count n; fields page_type and the four counters), their order is compared as a sequence of
keys, and every page outcome on (result, errno) keyed by step, region, page, proc, op and n.
When the two sides stop at different steps only what both ran is compared (before the
earlier stop), and the refusal itself is one disagreement.
"""
from __future__ import annotations

import dataclasses

import pandas as pd

from rmapwalk import contract
from rmapwalk import simulate
from rmapwalk.analysis.compare import FIELDS, KEY, match

WALK_KEY = ("step", "region", "page", "reason")
OUTCOME_KEY = ("step", "region", "page", "proc", "op")


@dataclasses.dataclass
class Side:
    walks: list[dict]
    outcomes: list[dict]
    refused: dict | None = None       # {step, errno}
    crashed: str | None = None        # the model raised something else (a model bug)


@dataclasses.dataclass(frozen=True)
class Disagreement:
    step: int | None
    what: str
    cls: str          # refusal, order, walk:<field>, walk:kernel-only, walk:model-only, outcome

    def line(self, where: str, kernel: str) -> str:
        step = f"step {self.step}" if self.step is not None else "-"
        return f"{where}: {kernel}: {step}: {self.what}"


def _walk_row(w: dict) -> dict:
    return {c: (str(w[c]) if c in ("region", "page_type", "reason") else int(w[c]))
            for c in contract.COLUMNS}


def _outcome_row(o: dict) -> dict:
    return {c: (str(o[c]) if c in ("region", "op", "result", "errno") else int(o[c]))
            for c in contract.SHARED_OUTCOME_COLUMNS}


def model_side(scn, strategy: str) -> Side:
    """The model's walks, outcomes and refusal for ``scn`` under ``strategy``."""
    try:
        r = simulate.replay(scn, strategy)
        return Side([_walk_row(w) for w in r.walks], [_outcome_row(o) for o in r.outcomes])
    except simulate.StepRefused as e:
        refused = {"step": e.step, "errno": e.errno}
        if e.step <= 1:
            return Side([], [], refused)
        prefix = dataclasses.replace(scn, steps=scn.steps[:e.step - 1])
        try:
            r = simulate.replay(prefix, strategy)
        except Exception as e2:    # noqa: BLE001 (a model crash is a finding)
            return Side([], [], refused, crashed=f"{type(e2).__name__}: {e2}")
        return Side([_walk_row(w) for w in r.walks], [_outcome_row(o) for o in r.outcomes],
                    refused)
    except Exception as e:        # noqa: BLE001 (a model crash is a finding, not our crash)
        return Side([], [], None, crashed=f"{type(e).__name__}: {e}")


def kernel_side(run) -> Side:
    """A capture's result (``capture.BatchRun`` or anything with walks, outcomes, refused)."""
    return Side([_walk_row(w) for w in run.walks], [_outcome_row(o) for o in run.outcomes],
                run.refused)


def _fmt_refusal(r: dict | None) -> str:
    return f"{r['errno']} at step {r['step']}" if r else "none"


def compare(kernel: Side, model: Side) -> tuple[int, list[Disagreement]]:
    """(walks compared, disagreements) of one scenario on one kernel."""
    out: list[Disagreement] = []
    if model.crashed:
        out.append(Disagreement(None, f"the model crashed: {model.crashed}", "crash"))
    limit = None
    kr, mr = kernel.refused, model.refused
    if (kr or None) != (mr or None):
        steps = [r["step"] for r in (kr, mr) if r]
        limit = min(steps)
        out.append(Disagreement(limit, f"refusal: kernel {_fmt_refusal(kr)}, model "
                                f"{_fmt_refusal(mr)}", "refusal"))
    kw = [w for w in kernel.walks if limit is None or w["step"] < limit]
    mw = [w for w in model.walks if limit is None or w["step"] < limit]
    walks = 0
    if kw or mw:
        cols = list(contract.COLUMNS)
        m = match(pd.DataFrame(kw, columns=cols), pd.DataFrame(mw, columns=cols))
        walks = len(m)
        for row in m.itertuples(index=False):
            r = row._asdict()
            where = f"walk {r['region']}/{r['page']} {r['reason']} #{r['n']}"
            if r["side"] != "both":
                src = "kernel" if r["side"] == "kernel only" else "model"
                vals = ", ".join(f"{f} {r[f'{f}_{src}']}" for f in FIELDS)
                out.append(Disagreement(int(r["step"]), f"{where}: {r['side']} ({vals})",
                                        f"walk:{r['side'].replace(' ', '-')}"))
                continue
            diffs = [f for f in FIELDS if not r[f"{f}_agree"]]
            if diffs:
                what = ", ".join(f"{f} kernel {r[f'{f}_kernel']} model {r[f'{f}_model']}"
                                 for f in diffs)
                out.append(Disagreement(int(r["step"]), f"{where}: {what}",
                                        "walk:" + "+".join(diffs)))
        if not any(d.cls.startswith("walk:") for d in out):
            ko = [tuple(w[k] for k in WALK_KEY) for w in kw]
            mo = [tuple(w[k] for k in WALK_KEY) for w in mw]
            if ko != mo:
                first = next(i for i, (a, b) in enumerate(zip(ko, mo)) if a != b)
                out.append(Disagreement(int(ko[first][0]), f"walk order differs at walk "
                                        f"{first + 1}: kernel {ko[first]}, model {mo[first]}",
                                        "order"))
    out += _outcomes(kernel, model, limit)
    return walks, out


def _keyed_outcomes(rows: list[dict]) -> dict:
    seen: dict = {}
    out = {}
    for o in rows:
        k = tuple(o[c] for c in OUTCOME_KEY)
        n = seen.get(k, 0)
        seen[k] = n + 1
        out[(*k, n)] = (o["result"], o["errno"])
    return out


def _outcomes(kernel: Side, model: Side, limit: int | None) -> list[Disagreement]:
    ko = _keyed_outcomes([o for o in kernel.outcomes if limit is None or o["step"] < limit])
    mo = _keyed_outcomes([o for o in model.outcomes if limit is None or o["step"] < limit])
    out = []
    for key in sorted(set(ko) | set(mo), key=lambda k: tuple(map(str, k))):
        a, b = ko.get(key), mo.get(key)
        if a == b:
            continue
        step, region, page, proc, op, n = key
        fmt = lambda v: "none" if v is None else (v[0] + (f" {v[1]}" if v[1] else ""))  # noqa: E731
        out.append(Disagreement(int(step), f"outcome {op} {region}/{page} proc {proc}"
                                f"{f' #{n}' if n else ''}: kernel {fmt(a)}, model {fmt(b)}",
                                "outcome"))
    return out
