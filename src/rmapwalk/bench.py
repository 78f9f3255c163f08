"""``rmapwalk bench``: how fast the simulator counts the seed benchmark exactly.

The seed benchmark (20,000 pages split into 20,000 VMAs, merged by KSM) with every page
walked: an ``idle`` walk per page (``--walk idle-all``, 20,000 walks of 2 x 256 rmap_items
over the whole tree for baseline), or the benchmark's single migration
(``--walk migrate-one``).  Prints, per size and strategy, the wall time of the replay and the
simulated loop iterations per second; ``--out`` appends the raw rows to a CSV.

Every ``--scale`` and the ``--out`` path are checked before the first replay; a bad one is a
:class:`rmapwalk.outputs.UsageError` (exit status 2).
"""
from __future__ import annotations

import csv
import math
import os
import platform
import time

from . import scenario as sc
from .model.ksm import STRATEGIES
from .outputs import UsageError, check_output_file
from .simulate import replay

BASE_PAGES = 20000                  # the seed benchmark: 20,000 pages, 20,000 VMAs
# The fewest pages each walk needs: idle walks every page; the migration moves page 1.
MIN_PAGES = {"idle-all": 1, "migrate-one": 2}

TEMPLATE = """\
name: seed-benchmark-{pages}-pages
description: The seed benchmark at {pages} pages, every page walked ({walk}).
steps:
  - mmap:      {{region: A, pages: {pages}}}
  - fill:      {{region: A, byte: 0xaa}}
  - mprotect:  {{region: A, start: 0, pages: 1, stride: 2, prot: r}}
  - mergeable: {{region: A}}
  - ksm_merge: {{full_scans: 2}}
  - {step}
"""


def bench_scenario(scale: float, walk: str) -> sc.Scenario:
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"--scale must be a finite number > 0, got {scale}")
    pages = int(round(BASE_PAGES * scale))
    step = "idle:      {region: A, pages: all}" if walk == "idle-all" else \
        "migrate:   {region: A, pages: [1]}"
    return sc.loads(TEMPLATE.format(scale=scale, pages=pages, walk=walk, step=step),
                    f"<bench x{scale:g}>")


def check_scale(value, walk: str) -> float:
    """One ``--scale`` value: a finite number > 0 giving a valid scenario for ``walk``."""
    least = MIN_PAGES.get(walk, 1) / BASE_PAGES
    expected = (f"expected a finite number > 0, at least {least:g} for --walk {walk} "
                f"(a size factor of the seed benchmark's {BASE_PAGES:,} pages)")
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"--scale {value}: {expected}") from None
    if not math.isfinite(scale) or scale <= 0:
        raise UsageError(f"--scale {value}: {expected}")
    pages = int(round(BASE_PAGES * scale))
    if pages < MIN_PAGES.get(walk, 1):
        raise UsageError(f"--scale {value}: {pages} page(s); {expected}")
    try:
        bench_scenario(scale, walk)
    except sc.ScenarioError as e:
        raise UsageError(f"--scale {value}: the scaled scenario is invalid: {e}") from None
    return scale


def run_bench(args) -> int:
    scales = [check_scale(v, args.walk) for v in (args.scale or [1.0, 10.0])]
    if args.out:
        check_output_file(args.out, "--out")
    rows = []
    print(f"rmapwalk bench: seed benchmark, walks={args.walk}, python {platform.python_version()}, "
          f"{os.cpu_count()} cpus")
    print(f"{'scale':>6} {'pages':>8} {'strategy':<9} {'walks':>7} {'iterations':>16} "
          f"{'wall s':>8} {'sim iter/s':>14}")
    for scale in scales:
        scn = bench_scenario(scale, args.walk)
        total = 0.0
        for strategy in STRATEGIES:
            t0 = time.perf_counter()
            result = replay(scn, strategy)
            wall = time.perf_counter() - t0
            total += wall
            s = result.summary()
            rate = s["iterations"] / wall
            print(f"{scale:>6g} {scn.regions['A']:>8} {strategy:<9} {s['walks']:>7} "
                  f"{s['iterations']:>16,} {wall:>8.2f} {rate:>14,.0f}")
            rows.append({"scale": scale, "pages": scn.regions["A"], "walk": args.walk,
                         "strategy": strategy, "walks": s["walks"], "iterations": s["iterations"],
                         "wall_s": round(wall, 3), "sim_iterations_per_s": round(rate)})
        print(f"{scale:>6g} {'':>8} {'all three':<9} {'':>7} {'':>16} {total:>8.2f}")
    if args.out:
        new = not os.path.exists(args.out)
        with open(args.out, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            if new:
                w.writeheader()
            w.writerows(rows)
    return 0
