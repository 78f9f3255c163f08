"""environment.yml (conda) and pyproject.toml (pip) must name the same dependencies."""
from __future__ import annotations

import re
import tomllib

import yaml

from rmapwalk import paths


def _name(spec: str) -> str:
    return re.split(r"[<>=!~;\[ ]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_matches_pyproject():
    project = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    pip = {_name(d) for d in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        pip |= {_name(d) for d in extra}
    env = yaml.safe_load((paths.ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    for d in env["dependencies"]:
        if isinstance(d, dict):
            conda |= {_name(x) for x in d.get("pip", [])}
    assert conda == pip, f"only in environment.yml: {sorted(conda - pip)}; " \
                         f"only in pyproject.toml: {sorted(pip - conda)}"
