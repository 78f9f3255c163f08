"""``rmapwalk bench``: how fast the simulator counts the seed benchmark exactly.

The seed benchmark (20,000 pages split into 20,000 VMAs, merged by KSM) with every page
walked: an ``idle`` walk per page (``--walk idle-all``, 20,000 walks of 2 x 256 rmap_items
over the whole tree for baseline), or the benchmark's single migration
(``--walk migrate-one``).  Prints, per size and strategy, the wall time of the replay and the
simulated loop iterations per second; ``--out`` appends the raw rows to a CSV.
"""
from __future__ import annotations

import csv
import os
import platform
import time

from . import scenario as sc
from .simulate import replay

TEMPLATE = """\
name: seed-benchmark-x{scale:g}
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
    if scale <= 0:
        raise ValueError(f"--scale must be positive, got {scale}")
    pages = int(round(20000 * scale))
    step = "idle:      {region: A, pages: all}" if walk == "idle-all" else \
        "migrate:   {region: A, pages: [1]}"
    return sc.loads(TEMPLATE.format(scale=scale, pages=pages, walk=walk, step=step),
                    f"<bench x{scale:g}>")


def run_bench(args) -> int:
    scales = args.scale or [1.0, 10.0]
    rows = []
    print(f"rmapwalk bench: seed benchmark, walks={args.walk}, python {platform.python_version()}, "
          f"{os.cpu_count()} cpus")
    print(f"{'scale':>6} {'pages':>8} {'strategy':<9} {'walks':>7} {'iterations':>16} "
          f"{'wall s':>8} {'sim iter/s':>14}")
    for scale in scales:
        scn = bench_scenario(scale, args.walk)
        total = 0.0
        for strategy in ("baseline", "naive", "pgoff"):
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
