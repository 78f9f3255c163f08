"""A fuzz campaign: fixed seeds, run through ``rmapwalk fuzz``, its summary published as data.

    rmapwalk fuzz-campaign [--plan data/fuzz/campaign.yaml] [--work build/fuzz/campaign]
                           [--publish] [--only-publish]

The plan (``data/fuzz/campaign.yaml``) names the campaign, the base, the kernels and the
seeds with their scenario counts; its ``ci`` entry is the small campaign every CI run makes
(``tests/measure/test_fuzz_ci.py``).  Each seed runs as one ``rmapwalk fuzz`` into
``WORK/<seed>/``; a seed whose folder already has a ``summary.json`` of the same plan entry
is not run again (an interrupted campaign resumes), a seed folder without one is removed
and run again.

``--publish`` then writes ``data/fuzz/<name>/`` (built in a temporary folder beside it and
renamed into place, so a failed campaign never leaves partial data there)::

    summary.json        totals, per seed and per kernel, timings (TCG), the generator version
    results.csv         one row per scenario and kernel (``run.RESULT_COLUMNS``)
    steps.csv           the step mix (``run.STEP_COLUMNS``)
    disagreements.txt   every line ``rmapwalk fuzz`` printed for a disagreement (none, we hope)
    scenarios.tar.gz    every generated scenario file (reproducible byte for byte from the seeds
                        with this generator version, kept so that a later generator does not
                        change what the summary refers to)
    manifest.json       checksums of the above, the plan, the kernels' identities

A campaign with disagreements, capture failures or runs that do not verify is still
published (it is the evidence), and the command exits 1.  :func:`load` is the one reader; it
refuses a folder that does not match its manifest, naming the file.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path


from rmapwalk import dataset, kernels as kernel_list, outputs, paths, yamlfile
from rmapwalk.fuzz import generate as gen, run as fuzz_run

FUZZ_DATA = paths.DATA / "fuzz"
PLAN_FILE = FUZZ_DATA / "campaign.yaml"
FILES = ("summary.json", fuzz_run.RESULTS, fuzz_run.STEPS, "disagreements.txt",
         "scenarios.tar.gz")
KIND = "rmapwalk fuzz campaign"


class PlanError(ValueError):
    """A campaign plan that cannot be run; the message names the file and the field."""


def load_plan(path: str | Path = PLAN_FILE) -> dict:
    """The plan, checked: name, base, kernels, batch, seeds [{seed, count}], ci {seed, count}."""
    path = Path(path)
    doc = yamlfile.load(path, PlanError)
    if not isinstance(doc, dict):
        raise PlanError(f"{path}: expected a mapping with name, base, kernels, batch, seeds, ci")
    for key in ("name", "base", "kernels", "batch", "seeds", "ci"):
        if key not in doc:
            raise PlanError(f"{path}: '{key}' missing")
    unknown = set(doc) - {"name", "base", "kernels", "batch", "seeds", "ci", "description"}
    if unknown:
        raise PlanError(f"{path}: unknown key(s) {sorted(unknown)}")
    if not isinstance(doc["name"], str) or not dataset_name_ok(doc["name"]):
        raise PlanError(f"{path}: name: expected lower-case letters, digits, '.', '-'")
    kl = kernel_list.load()
    if str(doc["base"]) not in kl.bases:
        raise PlanError(f"{path}: base {doc['base']!r}: expected one of {sorted(kl.bases)}")
    doc["base"] = str(doc["base"])
    captured = [v for b, v in kl.kernels() if b == doc["base"]]
    if doc["kernels"] != "all" and (not isinstance(doc["kernels"], list)
                                    or not set(doc["kernels"]) <= set(captured)):
        raise PlanError(f"{path}: kernels: expected 'all' or a list of {captured}")
    if doc["kernels"] == "all":
        doc["kernels"] = captured
    _positive(path, "batch", doc["batch"])
    if not isinstance(doc["seeds"], list) or not doc["seeds"]:
        raise PlanError(f"{path}: seeds: expected a list of {{seed, count}}")
    for i, entry in enumerate([*doc["seeds"], doc["ci"]]):
        where = f"seeds[{i}]" if i < len(doc["seeds"]) else "ci"
        if not isinstance(entry, dict) or set(entry) != {"seed", "count"}:
            raise PlanError(f"{path}: {where}: expected {{seed, count}}, got {entry!r}")
        _positive(path, f"{where}.count", entry["count"])
        if not isinstance(entry["seed"], int) or isinstance(entry["seed"], bool) \
                or entry["seed"] < 0:
            raise PlanError(f"{path}: {where}.seed: expected an integer >= 0")
    seeds = [e["seed"] for e in doc["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise PlanError(f"{path}: seeds: a seed is listed twice")
    return doc


def dataset_name_ok(name: str) -> bool:
    return bool(name) and all(c.isdigit() or c in "-." or "a" <= c <= "z" for c in name)


def _positive(path, what, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PlanError(f"{path}: {what}: expected an integer >= 1, got {value!r}")


# --- running -----------------------------------------------------------------------------
def _seed_done(folder: Path, entry: dict, plan: dict) -> bool:
    try:
        s = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return (s.get("count") == entry["count"] and s.get("kernels") == plan["kernels"]
            and s.get("generator_version") == gen.VERSION
            and (folder / fuzz_run.RESULTS).is_file())


def run_seed(entry: dict, plan: dict, folder: Path) -> int:
    """One seed of the plan through ``rmapwalk fuzz`` (exit status as it returns)."""
    if folder.exists():
        shutil.rmtree(folder)
    kernels = plan["kernels"]
    args = argparse.Namespace(seed=entry["seed"], count=entry["count"],
                              kernel=",".join(kernels),
                              base=plan["base"], out=folder, batch=plan["batch"],
                              minimize=fuzz_run.DEFAULT_MINIMIZE, budget=fuzz_run.DEFAULT_BUDGET)
    return fuzz_run.run(args)


# --- publishing --------------------------------------------------------------------------
def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _kernel_identity(seed_folder: Path, base: str, kernels: list[str]) -> dict:
    """Each kernel's identity as its run manifests record it (the first run found)."""
    out = {}
    for v in kernels:
        for m in sorted((seed_folder / "runs").glob(f"*/{base}/{v}/run-1/{dataset.MANIFEST}")):
            out[v] = json.loads(m.read_text()).get("kernel")
            break
    return out


def _scenario_tar(folders: list[Path]) -> bytes:
    """Every scenario file, in a reproducible tar.gz (sorted, no times, no owners)."""
    import gzip
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder in folders:
            for p in sorted((folder / "scenarios").glob("*.yaml")):
                data = p.read_bytes()
                info = tarfile.TarInfo(f"scenarios/{p.name}")
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def summarize(plan: dict, folders: dict[int, Path]) -> dict:
    """The campaign's summary from its seeds' folders (``rmapwalk fuzz`` outputs)."""
    per_seed, per_kernel = [], {v: {"runs": 0, "walks": 0, "disagreements": 0,
                                     "capture_failures": 0, "refusals": 0}
                                 for v in plan["kernels"]}
    mix: dict[str, int] = {}
    for entry in plan["seeds"]:
        f = folders[entry["seed"]]
        s = json.loads((f / "summary.json").read_text())
        per_seed.append({k: s[k] for k in ("seed", "count", "walks_compared", "disagreements",
                                           "capture_failures", "verify_problems")}
                        | {"seconds": s["seconds"]})
        for row in _read_csv(f / fuzz_run.RESULTS):
            k = per_kernel[row["kernel"]]
            k["runs"] += 1
            k["walks"] += int(row["walks"])
            k["disagreements"] += int(row["disagreements"])
            k["capture_failures"] += bool(row["capture_failed"])
            k["refusals"] += bool(row["refused_step"])
        for row in _read_csv(f / fuzz_run.STEPS):
            mix[row["kind"]] = mix.get(row["kind"], 0) + int(row["count"])
    total = lambda key: sum(s[key] for s in per_seed)    # noqa: E731
    return {
        "campaign": plan["name"], "base": plan["base"], "kernels": plan["kernels"],
        "generator_version": gen.VERSION, "batch": plan["batch"],
        "seeds": [e["seed"] for e in plan["seeds"]],
        "scenarios": total("count"), "walks_compared": total("walks_compared"),
        "disagreements": total("disagreements"), "capture_failures": total("capture_failures"),
        "verify_problems": total("verify_problems"),
        "step_mix": dict(sorted(mix.items())), "per_kernel": per_kernel, "per_seed": per_seed,
        "seconds_tcg": {"total": round(sum(s["seconds"]["total"] for s in per_seed), 1),
                        "capture": round(sum(s["seconds"]["capture"] for s in per_seed), 1),
                        "boots": sum(s["seconds"]["boots"] or 0 for s in per_seed)},
    }


def publish(plan: dict, folders: dict[int, Path], dest_root: Path = FUZZ_DATA,
            command: str = "") -> Path:
    """Write ``dest_root/<name>/`` atomically (see the module docstring); its path."""
    dest_root.mkdir(parents=True, exist_ok=True)
    dest = dest_root / plan["name"]
    tmp = Path(tempfile.mkdtemp(prefix=f".{plan['name']}-", dir=dest_root))
    try:
        summary = summarize(plan, folders)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        for name, cols in ((fuzz_run.RESULTS, fuzz_run.RESULT_COLUMNS),
                           (fuzz_run.STEPS, fuzz_run.STEP_COLUMNS)):
            rows = []
            for e in plan["seeds"]:
                rows += [r | {"seed": e["seed"]} for r in _read_csv(folders[e["seed"]] / name)]
            fuzz_run._write_rows(tmp / name, ("seed", *cols), rows)
        (tmp / "disagreements.txt").write_text("".join(
            (folders[e["seed"]] / "disagreements.txt").read_text() for e in plan["seeds"]))
        (tmp / "scenarios.tar.gz").write_bytes(_scenario_tar([folders[e["seed"]]
                                                              for e in plan["seeds"]]))
        first = folders[plan["seeds"][0]["seed"]]
        plan_doc = {k: plan[k] for k in ("name", "base", "kernels", "batch", "seeds")}
        dataset.write_manifest(tmp, {"kind": KIND, "plan": plan_doc, "command": command,
                                     "generator_version": gen.VERSION,
                                     "kernel": _kernel_identity(first, plan["base"],
                                                                plan["kernels"])})
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}-old")
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
        tmp.rename(dest)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


# --- reading -----------------------------------------------------------------------------
def load(folder: str | Path) -> dict:
    """A published campaign: ``{"summary": dict, "results": DataFrame, "steps": DataFrame,
    "manifest": dict}``; DataIntegrityError naming the file if it does not verify."""
    import pandas as pd
    folder = Path(folder)
    problems = dataset.check_manifest(folder, required=FILES)
    if not problems and dataset.read_manifest(folder).get("kind") != KIND:
        problems = [f"{folder / dataset.MANIFEST}: not a manifest of an {KIND}"]
    if problems:
        raise dataset.DataIntegrityError(problems)
    return {"summary": json.loads((folder / "summary.json").read_text()),
            "results": pd.read_csv(folder / fuzz_run.RESULTS, keep_default_na=False),
            "steps": pd.read_csv(folder / fuzz_run.STEPS),
            "disagreements": (folder / "disagreements.txt").read_text().splitlines(),
            "manifest": dataset.read_manifest(folder)}


# --- the command -------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", type=Path, default=PLAN_FILE,
                        help=f"the campaign plan (default {PLAN_FILE.relative_to(paths.ROOT)})")
    parser.add_argument("--work", type=Path, default=paths.BUILD / "fuzz" / "campaign",
                        help="where each seed's `rmapwalk fuzz` output goes "
                             "(default build/fuzz/campaign/<seed>/)")
    parser.add_argument("--publish", action="store_true",
                        help="write data/fuzz/<name>/ from the seeds' outputs when all ran")
    parser.add_argument("--only-publish", action="store_true",
                        help="run nothing: publish what WORK holds (every seed must be done)")
    parser.add_argument("--to", type=Path, default=FUZZ_DATA,
                        help="where --publish writes <name>/ (default data/fuzz)")


def main(args: argparse.Namespace) -> int:
    try:
        plan = load_plan(args.plan)
        work = outputs.check_output_dir(args.work, "--work")
        if args.publish or args.only_publish:       # before the campaign, not after it
            outputs.check_output_dir(args.to, "--to")
    except (PlanError, outputs.UsageError, kernel_list.KernelListError) as e:
        print(f"fuzz-campaign: {e}", file=sys.stderr)
        return 2
    folders = {e["seed"]: work / str(e["seed"]) for e in plan["seeds"]}
    status = 0
    for e in plan["seeds"]:
        f = folders[e["seed"]]
        if _seed_done(f, e, plan):
            print(f"fuzz-campaign: seed {e['seed']}: done earlier ({f})", file=sys.stderr)
            continue
        if args.only_publish:
            print(f"fuzz-campaign: seed {e['seed']}: not run yet ({f}); run without "
                  "--only-publish", file=sys.stderr)
            return 2
        print(f"fuzz-campaign: seed {e['seed']}: {e['count']} scenarios", file=sys.stderr,
              flush=True)
        status = max(status, run_seed(e, plan, f))
    if not all(_seed_done(folders[e["seed"]], e, plan) for e in plan["seeds"]):
        print("fuzz-campaign: a seed did not finish; nothing published", file=sys.stderr)
        return 1
    summary = summarize(plan, folders)
    if args.publish or args.only_publish:
        dest = publish(plan, folders, args.to,
                       command=f"rmapwalk fuzz-campaign --plan {args.plan} --publish")
        print(f"fuzz-campaign: published {dest}", file=sys.stderr)
    print(f"fuzz-campaign {plan['name']}: {summary['scenarios']} scenarios, "
          f"{summary['walks_compared']} walks compared, {summary['disagreements']} "
          f"disagreements on {', '.join(plan['kernels'])} "
          f"({summary['seconds_tcg']['total']:.0f} s)")
    bad = summary["disagreements"] or summary["capture_failures"] or summary["verify_problems"]
    return 1 if bad else status
