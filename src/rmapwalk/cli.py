"""The command line: ``rmapwalk simulate | bench | kernel | capture | verify``.

Exit status: 0 success, 1 a run failed, 2 bad input (scenario, parameter) with one line on
stderr naming the file, step or option and what was expected.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from . import paths
from . import scenario as sc
from .kernels import KernelListError
from .model.ksm import STRATEGIES
from .outputs import UsageError, check_output_file


def _load(path: str) -> sc.Scenario:
    return sc.load(paths.scenario_path(path))


def cmd_simulate(args) -> int:
    from .contract import COLUMNS, SIMULATED_COLUMNS, write_csv
    from .simulate import SUMMARY_KEYS, replay
    if args.walks:
        check_output_file(args.walks, "--walks")
    scn = _load(args.scenario)
    strategies = STRATEGIES if args.strategy == "all" else (args.strategy,)
    results = {s: replay(scn, s) for s in strategies}
    if args.walks:
        columns = (*COLUMNS, *SIMULATED_COLUMNS)
        rows = [{k: w[k] for k in columns} for r in results.values() for w in r.walks]
        write_csv(sys.stdout if args.walks == "-" else args.walks, rows, columns)
    summary = {s: r.summary() for s, r in results.items()}
    out = sys.stderr if args.walks == "-" else sys.stdout   # keep a piped CSV clean
    if args.json:
        print(json.dumps({"scenario": scn.name, "strategies": summary}, indent=2), file=out)
    else:
        print(f"scenario {scn.name}: {len(scn.steps)} steps", file=out)
        print(f"{'strategy':<9} " + " ".join(f"{k:>14}" for k in SUMMARY_KEYS), file=out)
        for s, row in summary.items():
            cells = [f"{row[k]:>14.6f}" if k == "skip_ratio" else f"{row[k]:>14,}" for k in SUMMARY_KEYS]
            print(f"{s:<9} " + " ".join(cells), file=out)
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench
    return run_bench(args)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KernelListError as e:        # kernel-config/kernels.yaml itself: every command reads
        print(f"rmapwalk: {e}", file=sys.stderr)   # it (the options' choices come from it)
        return 2


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="rmapwalk", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="replay a scenario on the model kernel")
    p.add_argument("scenario", help="scenario file or name under data/scenarios/")
    p.add_argument("--strategy", choices=(*STRATEGIES, "all"), default="all")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--walks", metavar="OUT.csv", help="write one row per walk (- for stdout)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("bench", help="time the simulator on the seed benchmark and 10x its size")
    p.add_argument("--scale", action="append",
                   help="size factor to run, a number > 0, repeatable (default 1 and 10)")
    p.add_argument("--walk", choices=("idle-all", "migrate-one"), default="idle-all",
                   help="which walks: every page made idle, or the benchmark's one migration")
    p.add_argument("--out", metavar="CSV", help="append the raw rows to this file")
    p.set_defaults(func=cmd_bench)

    from .measure import capture, kernel as mkernel
    p = sub.add_parser("kernel", help="build, show or list the kernels of kernel-config/kernels.yaml")
    mkernel.add_arguments(p)        # its own subcommands: build, show, list
    p.set_defaults(func=mkernel.run)
    p = sub.add_parser("capture", help="run a scenario in QEMU on real kernels, record walks")
    capture.add_capture_arguments(p)
    p.set_defaults(func=capture.run_capture)
    from .fuzz import run as fuzz
    p = sub.add_parser("fuzz", help="random histories on the model and the real kernels, "
                                    "compared walk by walk; disagreements minimized")
    fuzz.add_arguments(p)
    p.set_defaults(func=fuzz.run)
    from .fuzz import campaign
    p = sub.add_parser("fuzz-campaign", help="the fixed-seed fuzz campaign of "
                       "data/fuzz/campaign.yaml; --publish writes its summary to data/fuzz/")
    campaign.add_arguments(p)
    p.set_defaults(func=campaign.main)
    p = sub.add_parser("verify", help="check a data folder: manifests, places, scenarios, "
                                      "missing and extra runs")
    capture.add_verify_arguments(p)
    p.set_defaults(func=capture.run_verify)
    from .measure import programs
    p = sub.add_parser("programs", help="KSM rmap walks of real programs in QEMU (issue 11)")
    programs.add_arguments(p)
    from .measure import conditions
    p = sub.add_parser("conditions", help="the v4 benchmark under its posted conditions and "
                                          "the reproduction's, in QEMU (issue 10)")
    conditions.add_arguments(p)
    from .measure import paths as paths_cmd
    p = sub.add_parser("paths", help="reclaim, memory failure and the merged selftest's shape "
                                     "on the path variants, in QEMU (issue 10)")
    paths_cmd.add_arguments(p)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as e:             # a bad option value or output path
        print(f"rmapwalk: {e}", file=sys.stderr)
        return 2
    except sc.ScenarioError as e:       # a bad scenario file, or a step the model refused
        print(f"rmapwalk: {e}", file=sys.stderr)   # (simulate.StepRefused, with its errno)
        return 2
    except KeyboardInterrupt as e:      # SIGINT, or SIGTERM during a VM run (vm.Interrupted)
        print(f"rmapwalk: {e or 'interrupted'}", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
