"""The one way the project's YAML files (scenarios, plans, kernel lists, setups, workloads,
thread figures) are read.

:func:`decode` and :func:`parse` are strict: text that is not UTF-8, a key given twice in one
mapping (PyYAML's SafeLoader would keep the last one silently), invalid YAML and a document
nested too deeply for the parser are each a :class:`YamlProblem` with the 1-based line where
known.  :func:`load` reads a file through both and turns any problem into the caller's own
error, whose message names the file and line: ``<path>: cannot read: <reason>``,
``<path>:<line>: duplicate key ...``, ``<path>:<line>: not valid YAML: <parser message>``.
What the document must contain is the caller's to check.  (Scenario files are validated
further by rmapwalk.scenario, which parses them here too.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml


class YamlProblem(ValueError):
    """What is wrong with a YAML text: ``message``, and ``line`` (1-based) when known."""

    def __init__(self, message: str, line: int | None = None):
        self.message, self.line = message, line
        super().__init__(message if line is None else f"{line}: {message}")

    def where(self, path: str | Path) -> str:
        """``path:line: message`` (``path: message`` without a line)."""
        return f"{path}{'' if self.line is None else f':{self.line}'}: {self.message}"


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key, line: int, first: int):
        self.key, self.line, self.first = key, line, first


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (SafeLoader keeps the last)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise _DuplicateKey(key, line, seen[key])
                    seen[key] = line
                except TypeError:
                    continue    # unhashable key: SafeLoader reports it itself
        return super().construct_mapping(node, deep)


def decode(data: bytes) -> str:
    """``data`` as UTF-8 text; :class:`YamlProblem` with the line of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise YamlProblem(f"not UTF-8 text: byte {data[e.start]:#04x} at offset {e.start} "
                          f"({e.reason})", data[:e.start].count(b"\n") + 1) from None


def parse(text: str) -> Any:
    """The document of ``text``, strictly (see the module's docstring)."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except _DuplicateKey as e:
        raise YamlProblem(f"duplicate key {e.key!r} (first given on line {e.first}); a key "
                          "may appear once per mapping", e.line) from None
    except yaml.reader.ReaderError as e:
        line = text[:e.position].count("\n") + 1 if isinstance(e.position, int) else None
        raise YamlProblem(f"not valid YAML: {e.reason} (character {e.character!r})",
                          line) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise YamlProblem(f"not valid YAML: {problem}",
                          mark.line + 1 if mark else None) from None
    except RecursionError:          # [[[[... nested deeper than the parser's recursion
        raise YamlProblem("not valid YAML: nested too deeply for the parser") from None


def load(path: str | Path, error: Callable[[str], Exception]) -> Any:
    """The parsed document of ``path``; ``error(message)`` is raised on failure."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror}") from None
    try:
        return parse(decode(data))
    except YamlProblem as e:
        raise error(e.where(path)) from None
