"""Where things live: the one module that knows the project's folders."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(os.environ.get("RMAPWALK_ROOT", Path(__file__).resolve().parents[2]))
DATA = ROOT / "data"
SCENARIOS = DATA / "scenarios"
TRACES = DATA / "traces"
NOTEBOOKS = ROOT / "notebooks"
BOOK = ROOT / "book"
BUILD = ROOT / "build"
KERNEL_CONFIG = ROOT / "kernel-config"
CACHE = Path(os.environ.get("RMAPWALK_CACHE", Path.home() / ".cache" / "rmapwalk"))


def scenario_path(name_or_path: str | os.PathLike) -> Path:
    """A scenario given by name (``seed-benchmark``) or by path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return SCENARIOS / f"{p}.yaml"
