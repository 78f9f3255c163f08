"""``rmapwalk fuzz``: generate, simulate, capture (batched), compare, minimize.

    rmapwalk fuzz --seed S --count N [--kernel baseline|patched|naive|all] [--out DIR]
                  [--batch K] [--minimize M] [--budget B]

writes under DIR (default ``build/fuzz/<seed>/``)::

    scenarios/<name>.yaml                    every generated scenario
    runs/<name>/<base>/<variant>/run-1/      its capture (the usual run folder, verified with
                                             dataset.verify(runs, scenarios=scenarios))
    minimized/<name>-min-<variant>.yaml      a disagreement shrunk, with the kernel's walks
        ... .<variant>.walks.csv             (and the model's: .<variant>.model-walks.csv)
    disagreements.txt, summary.json          the lines printed, timings, counts

and prints one line per disagreement (``SCENARIO-FILE: KERNEL: step S: what differs``), then
``fuzz: N scenarios, W walks compared, D disagreements``.  Exit status 1 if D > 0 (or a
capture failed or the runs do not verify), 2 for bad options.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from rmapwalk import contract, dataset, kernels as kernel_list, outputs, paths
from rmapwalk import scenario as sc
from rmapwalk.fuzz import differ, generate as gen, minimize as mz

DEFAULT_BATCH = 20
DEFAULT_MINIMIZE = 6
DEFAULT_BUDGET = 30
# The replayer's KSM timeout for generated scenarios (program.py's 'ksm' record; 120 s for the
# committed ones): their full scans take milliseconds, and a ksm_merge that cannot complete
# (ETIMEDOUT, docs/scenarios.md) should not cost two minutes per capture.
KSM_TIMEOUT_S = 15


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kl = kernel_list.load()
    parser.add_argument("--seed", type=int, required=True, help="the campaign's seed (>= 0)")
    parser.add_argument("--count", type=int, required=True, help="scenarios to generate")
    captured = tuple(v.name for v in kl.variants.values() if getattr(v, "capture", True))
    def kernel_choice(text: str) -> str:
        names = text.split(",")
        if text == "all" or (names and all(n in captured for n in names)):
            return text
        raise argparse.ArgumentTypeError(f"{text!r}: expected 'all' or one or more of "
                                         f"{', '.join(captured)} separated by commas")
    parser.add_argument("--kernel", type=kernel_choice, default="all",
                        help="a variant (or several, comma-separated: baseline,patched), or "
                             "all: every captured variant of the base whose image is built "
                             "(the others are named and skipped)")
    parser.add_argument("--base", choices=tuple(kl.bases), default=kl.default_base)
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default build/fuzz/<seed>/); must not hold runs/")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, metavar="K",
                        help=f"scenarios per VM boot (default {DEFAULT_BATCH})")
    parser.add_argument("--minimize", type=int, default=DEFAULT_MINIMIZE, metavar="M",
                        help="disagreeing (scenario, kernel) pairs to minimize, one per kind "
                             f"of disagreement and kernel first (default {DEFAULT_MINIMIZE}; "
                             "0: none)")
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET, metavar="B",
                        help=f"captures per minimization (default {DEFAULT_BUDGET})")


def _say(msg: str) -> None:
    print(f"fuzz: {msg}", file=sys.stderr, flush=True)


class VMCapture:
    """Captures through the VM, one batch boot per ``batch`` scenarios; the test suite
    replaces :data:`CAPTURE` with a stub of the same call."""

    def __init__(self, base: str, batch: int):
        from rmapwalk.measure import capture   # noqa: PLC0415 (the VM side only when used)
        self.capture, self.base, self.batch = capture, base, batch
        self.timing = capture.BatchTiming()
        self.images: dict[str, tuple] = {}

    def available(self, variant: str) -> str | None:
        """Why ``variant`` cannot be booted without building it first, or None."""
        from rmapwalk.measure import kernel   # noqa: PLC0415
        try:
            kernel.kernel_image(variant, base=self.base, build=False)
        except kernel.KernelBuildError as e:
            return str(e).splitlines()[0]
        return None

    def __call__(self, scenarios: list, variant: str, out_root: Path) -> list:
        if variant not in self.images:
            self.images[variant] = self.capture._kernel(self.base, variant, None)
        image, prov = self.images[variant]
        programs = [program_with_timeout(s) for s in scenarios]
        out = []
        for i in range(0, len(scenarios), self.batch):
            out += self.capture.capture_batch(scenarios[i:i + self.batch], self.base, variant,
                                              image, prov, out_root, timing=self.timing,
                                              programs=programs[i:i + self.batch])
        return out


def program_with_timeout(scn: sc.Scenario, seconds: int = KSM_TIMEOUT_S) -> str:
    """The replayer program of ``scn`` with the KSM timeout ``seconds``."""
    from rmapwalk.measure import program   # noqa: PLC0415
    lines = program.compile_program(scn).split("\n")
    for i, line in enumerate(lines):
        if line.startswith("ksm "):     # ksm MAX_PAGE_SHARING PAGES_TO_SCAN TIMEOUT_S ...
            f = line.split()
            f[3] = str(min(int(f[3]), seconds))
            lines[i] = " ".join(f)
    return "\n".join(lines)


CAPTURE = VMCapture        # (base, batch) -> callable(scenarios, variant, out_root) -> runs


def _steps_of(scn: sc.Scenario) -> list:
    """The steps as written in the scenario file: [(kind, fields)] (fields with proc)."""
    doc = yaml.safe_load(Path(scn.path).read_text())
    return [next(iter(item.items())) for item in doc["steps"]]


RESULTS, STEPS = "results.csv", "steps.csv"
# results.csv: one row per scenario and kernel; refused_*: the step the kernel refused (both
# sides refusing it with the same errno is agreement), capture_failed: why no capture
RESULT_COLUMNS = ("scenario", "kernel", "steps", "walks", "disagreements", "refused_step",
                  "refused_errno", "capture_failed")
# steps.csv: how many steps of each kind every generated scenario has (the step mix)
STEP_COLUMNS = ("scenario", "kind", "count")


def step_mix(scenarios: list) -> list[dict]:
    """One row per scenario and step kind of ``scenario.STEP_KINDS`` (zero counts included)."""
    rows = []
    for s in scenarios:
        counts = {k: 0 for k in sc.STEP_KINDS}
        for kind, _ in _steps_of(s):
            counts[kind] += 1
        rows += [{"scenario": s.name, "kind": k, "count": n} for k, n in counts.items()]
    return rows


def _write_rows(path: Path, columns: tuple, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _write_walks(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=contract.COLUMNS, extrasaction="ignore",
                           lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def run(args: argparse.Namespace) -> int:
    t_start = time.monotonic()
    try:
        if args.seed < 0:
            raise outputs.UsageError(f"--seed {args.seed}: expected an integer >= 0")
        if args.count < 1:
            raise outputs.UsageError(f"--count {args.count}: expected an integer >= 1")
        if args.batch < 1:
            raise outputs.UsageError(f"--batch {args.batch}: expected an integer >= 1")
        if args.minimize < 0 or args.budget < 1:
            raise outputs.UsageError("--minimize >= 0 and --budget >= 1 expected")
        out = outputs.check_output_dir(args.out if args.out is not None
                                       else paths.BUILD / "fuzz" / str(args.seed), "--out")
        if (out / "runs").exists():
            raise outputs.UsageError(f"--out {out}: holds an earlier campaign ({out}/runs); "
                                     "choose another folder or remove it")
        kl = kernel_list.load()
        variants = tuple(v for b, v in kl.kernels() if b == args.base) \
            if args.kernel == "all" else tuple(args.kernel.split(","))
        for v in variants:
            kl.patches(args.base, v)
    except (outputs.UsageError, kernel_list.KernelListError) as e:
        print(f"fuzz: {e}", file=sys.stderr)
        return 2
    strategy = kernel_list.strategy_of()
    scen_dir, runs_dir = out / "scenarios", out / "runs"
    scen_dir.mkdir(parents=True, exist_ok=True)
    runs_dir.mkdir(parents=True, exist_ok=True)

    # generate
    scenarios = []
    for i in range(args.count):
        text = gen.generate(args.seed, i)
        path = scen_dir / f"{gen.scenario_name(args.seed, i)}.yaml"
        path.write_text(text)
        scenarios.append(sc.load(path))
    # capture
    capture = CAPTURE(args.base, args.batch)
    if args.kernel == "all":
        for v in variants:
            why = capture.available(v)
            if why:
                _say(f"{args.base}/{v}: skipped, not built ({why}); "
                     f"`rmapwalk kernel build` builds it")
        variants = tuple(v for v in variants if capture.available(v) is None)
    # simulate
    t0 = time.monotonic()
    models = {(s.name, v): differ.model_side(s, strategy[v]) for s in scenarios for v in variants}
    t_sim = time.monotonic() - t0
    _say(f"{len(scenarios)} scenarios generated and simulated ({t_sim:.1f} s) in {scen_dir}")
    t0 = time.monotonic()
    captured = {}
    for v in variants:
        _say(f"capturing {len(scenarios)} scenarios on {args.base}/{v} "
             f"({-(-len(scenarios) // args.batch)} boot(s))")
        for s, r in zip(scenarios, capture(scenarios, v, runs_dir)):
            captured[(s.name, v)] = r
    t_cap = time.monotonic() - t0

    # compare
    lines, walks, groups, failures, results = [], 0, [], 0, []
    for s in scenarios:
        for v in variants:
            r = captured[(s.name, v)]
            row = {"scenario": s.name, "kernel": v, "steps": len(s.steps), "walks": 0,
                   "disagreements": 0, "refused_step": "", "refused_errno": "",
                   "capture_failed": ""}
            results.append(row)
            if r.failure:
                failures += 1
                lines.append(f"{s.path}: {v}: -: capture failed: {r.failure}")
                row["capture_failed"] = str(r.failure).splitlines()[0] if r.failure else ""
                continue
            kside = differ.kernel_side(r)
            w, dis = differ.compare(kside, models[(s.name, v)])
            walks += w
            row.update(walks=w, disagreements=len(dis))
            if kside.refused:
                row.update(refused_step=kside.refused["step"], refused_errno=kside.refused["errno"])
            lines += [d.line(str(s.path), v) for d in dis]
            if dis:
                groups.append((s, v, dis))
    for line in lines:
        print(line, flush=True)
    ndis = len(lines)

    # minimize: one group per (kernel, kind of disagreement) first, then the rest
    t0 = time.monotonic()
    minimized = []
    seen, firsts, rest = set(), [], []
    for g in groups:
        key = (g[1], frozenset(d.cls for d in g[2]))
        (rest if key in seen else firsts).append(g)
        seen.add(key)
    order = firsts + rest
    for s, v, dis in order[:args.minimize]:
        minimized.append(_minimize(s, v, dis, capture, strategy[v], out, args.budget))
    t_min = time.monotonic() - t0

    wrote = any(getattr(r, "folder", None) for r in captured.values())
    problems = dataset.verify(runs_dir, scenarios=scen_dir, plan=None) if wrote else []
    for p in problems:
        _say(f"verify: {p}")
    timing = getattr(capture, "timing", None)
    summary = {
        "seed": args.seed, "count": args.count, "kernels": list(variants), "batch": args.batch,
        "generator_version": gen.VERSION, "walks_compared": walks, "disagreements": ndis,
        "capture_failures": failures, "verify_problems": len(problems),
        "minimized": minimized,
        "seconds": {"total": round(time.monotonic() - t_start, 2),
                    "simulate": round(t_sim, 2), "capture": round(t_cap, 2),
                    "minimize": round(t_min, 2),
                    "boots": getattr(timing, "boots", None),
                    "boot_to_init": round(getattr(timing, "boot_seconds", 0.0), 2),
                    "vm_wall": round(getattr(timing, "wall_seconds", 0.0), 2)},
    }
    (out / "disagreements.txt").write_text("".join(f"{l}\n" for l in lines))
    _write_rows(out / RESULTS, RESULT_COLUMNS, results)
    _write_rows(out / STEPS, STEP_COLUMNS, step_mix(scenarios))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for m in minimized:
        if m.get("file"):
            _say(f"minimized {m['scenario']} on {m['kernel']}: {m['steps_before']} -> "
                 f"{m['steps_after']} steps ({m['captures']} captures) -> {m['file']}")
    sec = summary["seconds"]
    _say(f"{sec['total']} s: simulate {sec['simulate']} s, capture {sec['capture']} s "
         f"({sec['boots']} boots, {sec['boot_to_init']} s of them to /init), minimize "
         f"{sec['minimize']} s; results in {out}")
    print(f"fuzz: {len(scenarios)} scenarios, {walks} walks compared, {ndis} disagreements",
          flush=True)
    return 1 if ndis or failures or problems else 0


def _minimize(s: sc.Scenario, variant: str, dis: list, capture, strategy: str, out: Path,
              budget: int) -> dict:
    classes = {d.cls for d in dis}
    first = min((d.step for d in dis if d.step is not None), default=None)
    focus = None
    for d in dis:                      # the page of the first walk that differs
        if d.step == first and d.what.startswith("walk "):
            region, _, page = d.what.split()[1].partition("/")
            focus = {"step": first, "region": region, "page": int(page)}
            break
    name = f"{s.name}-min-{variant}"
    doc = yaml.safe_load(Path(s.path).read_text())
    prune = (doc.get("ksm") or {}).get("stable_node_chains_prune_millisecs")
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out))
    counter = [0]

    def text_of(c) -> str:
        return gen.render(name, f"{s.name} minimized on {variant} by rmapwalk fuzz: "
                          f"{dis[0].what}", c[0], c[1], {"minimized_from": s.name},
                          prune)

    def valid(c) -> bool:
        return bool(c[0]) and mz.loads_ok(text_of(c))

    def check(cands: list) -> list[bool]:
        scs = []
        for c in cands:
            counter[0] += 1
            p = work / f"{counter[0]}" / f"{name}.yaml"
            p.parent.mkdir(parents=True)
            p.write_text(text_of(c))
            scs.append(sc.load(p))
        runs = capture(scs, variant, work / "runs")
        res = []
        for scn, r in zip(scs, runs):
            if r.failure:
                res.append(False)
                continue
            _, d2 = differ.compare(differ.kernel_side(r), differ.model_side(scn, strategy))
            res.append(bool({x.cls for x in d2} & classes))
        return res

    steps, mps = _steps_of(s), s.max_page_sharing
    mps = None if mps == sc.DEFAULT_MAX_PAGE_SHARING else mps
    try:
        (best_steps, best_mps), spent = mz.minimize(steps, mps, check, valid, first_step=first,
                                                    focus=focus, budget=budget)
        best = (best_steps, best_mps)
        # the minimized scenario and both sides' walks, once more (the last word)
        dest = out / "minimized"
        dest.mkdir(exist_ok=True)
        path = dest / f"{name}.yaml"
        path.write_text(text_of(best))
        scn = sc.load(path)
        r = capture([scn], variant, work / "final")[0]
        model = differ.model_side(scn, strategy)
        if not r.failure:
            _write_walks(dest / f"{name}.{variant}.walks.csv", r.walks)
        _write_walks(dest / f"{name}.{variant}.model-walks.csv", model.walks)
        _, final = differ.compare(differ.kernel_side(r), model) if not r.failure else (0, [])
        return {"scenario": s.name, "kernel": variant, "file": str(path),
                "steps_before": len(steps), "steps_after": len(best_steps),
                "captures": spent + 1, "disagreements": [d.line(str(path), variant)
                                                          for d in final]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
