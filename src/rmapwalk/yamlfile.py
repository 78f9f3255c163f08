"""The one way the project's YAML files (plans, kernel lists, thread figures) are read.

:func:`load` reads and parses a file and turns an unreadable file or invalid YAML into the
caller's own error, whose message names the file: ``<path>: cannot read: <reason>`` or
``<path>: not valid YAML: <parser message>``.  What the document must contain is the
caller's to check.  (Scenario files have their own stricter reader, rmapwalk.scenario.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml


def load(path: str | Path, error: Callable[[str], Exception]) -> Any:
    """The parsed document of ``path``; ``error(message)`` is raised on failure."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML: {e}") from None
