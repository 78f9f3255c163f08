"""Where things live: the one module that knows the project's folders."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(os.environ.get("RMAPWALK_ROOT", Path(__file__).resolve().parents[2]))
DATA = ROOT / "data"
SCENARIOS = DATA / "scenarios"
# minimized histories of model bugs (data/scenarios/regressions/README.md): tests, not workloads
REGRESSIONS = SCENARIOS / "regressions"
TRACES = DATA / "traces"
NOTEBOOKS = ROOT / "notebooks"
BOOK = ROOT / "book"
BUILD = ROOT / "build"
KERNEL_CONFIG = ROOT / "kernel-config"
CACHE = Path(os.environ.get("RMAPWALK_CACHE", Path.home() / ".cache" / "rmapwalk"))


def scenario_file(name: str, root: str | os.PathLike = SCENARIOS) -> Path:
    """The committed file of scenario ``name``: ``root/<name>.yaml``, or the one
    ``<name>.yaml`` in a folder under ``root`` (``regressions/``); scenario names are unique
    across the folders (``tests/test_scenario.py`` checks it).  The top-level path when there
    is none, so that a message can name the file expected."""
    root = Path(root)
    top = root / f"{name}.yaml"
    if top.is_file():
        return top
    found = sorted(root.rglob(f"{name}.yaml"))
    return found[0] if found else top


def scenario_path(name_or_path: str | os.PathLike) -> Path:
    """A scenario given by name (``seed-benchmark``, ``ksm-chain-first-choice``) or by path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return scenario_file(str(p))


def shown(path: str | os.PathLike, base: str | os.PathLike | None = None) -> str:
    """``path`` relative to ``base`` (default the repository) when it lies below it, for
    captions and messages; otherwise as given."""
    base = Path(ROOT if base is None else base).resolve()
    try:
        return str(Path(path).resolve().relative_to(base))
    except ValueError:
        return str(path)
