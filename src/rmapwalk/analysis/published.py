"""Check the published tables the chapters read besides the run trees, before any notebook runs.

``make book`` verifies the run trees first (``rmapwalk verify``, ``conditions verify``, ``paths
verify``); this does the same for ``data/kernels``, ``data/selftests`` and every fuzz campaign
published under ``data/fuzz/``, through the very readers the Versions and Trust chapters use
(:func:`rmapwalk.analysis.versions.load_kernels`, ``load_selftests``,
:func:`rmapwalk.analysis.trust.load`), so a changed, missing or malformed file stops the build
at once with the file named, not after the chapters before it ran.

    python -m rmapwalk.analysis.published [--kernels DIR] [--selftests DIR] [--fuzz DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import dataset, paths
from ..fuzz import campaign as fc
from . import trust, versions


def check(kernels: Path = versions.KERNELS_ROOT, selftests: Path = versions.SELFTESTS_ROOT,
          fuzz: Path = fc.FUZZ_DATA) -> tuple[list[str], list[str]]:
    """(what verified, problems): each problem starts with the file it is about."""
    ok, problems = [], []
    campaigns = sorted(p for p in Path(fuzz).iterdir() if p.is_dir() and not
                       p.name.startswith(".")) if Path(fuzz).is_dir() else []
    if not campaigns:
        problems.append(f"{fuzz}: no published fuzz campaign (the Trust chapter reads one)")
    checks = [(kernels, lambda: versions.load_kernels(kernels)),
              (selftests, lambda: versions.load_selftests(selftests))]
    checks += [(c, lambda c=c: trust.load(c.name, fuzz)) for c in campaigns]
    for folder, read in checks:
        try:
            read()
        except dataset.DataIntegrityError as e:
            problems.extend(e.problems)
        except (versions.VersionsDataError, OSError, ValueError) as e:
            problems.append(str(e))
        else:
            ok.append(paths.shown(folder, Path.cwd()))
    return ok, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rmapwalk.analysis.published",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", type=Path, default=versions.KERNELS_ROOT)
    ap.add_argument("--selftests", type=Path, default=versions.SELFTESTS_ROOT)
    ap.add_argument("--fuzz", type=Path, default=fc.FUZZ_DATA)
    a = ap.parse_args(argv)
    ok, problems = check(a.kernels, a.selftests, a.fuzz)
    for p in problems:
        print(p)
    print(f"published: {len(ok)} verified ({', '.join(ok) or 'none'}), {len(problems)} "
          f"problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
