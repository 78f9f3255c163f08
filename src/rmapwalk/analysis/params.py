"""Notebook parameters: the checks the cell after ``parameters`` makes.

A notebook run with a bad parameter must stop with one line naming the parameter and what
was expected (papermill shows that line), so every check raises ``ValueError`` starting
with ``parameter '<name>'``.  Lists may also be given as comma-separated strings, which is
what ``papermill -p vmas 10,100,1000`` passes, or as a single value (``-p vmas 1000``
passes the integer 1000).

Unknown parameter names are refused before a notebook starts, by
:mod:`rmapwalk.analysis.execute` (``make run``), not here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable


def _fail(name: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"parameter {name!r}: expected {expected}, got {value!r}")


def check_int(value: Any, name: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer in [minimum, maximum]; strings of digits are accepted."""
    expected = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
    if isinstance(value, str):
        try:
            value = int(value.strip().replace("_", ""))
        except ValueError:
            raise _fail(name, expected, value) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(name, expected, value)
    if value < minimum or (maximum is not None and value > maximum):
        raise _fail(name, expected, value)
    return value


def check_int_list(value: Any, name: str, *, minimum: int = 0, maximum: int | None = None,
                   min_len: int = 1) -> list[int]:
    """A non-empty list of integers (or ``"10,100,1000"``, or one integer), sorted, without
    duplicates."""
    if isinstance(value, str):
        items: Iterable = [v for v in value.replace(" ", "").split(",") if v]
    elif isinstance(value, (list, tuple)):
        items = value
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]                 # papermill -p vmas 1000 passes an int
    else:
        raise _fail(name, "a list of integers or a comma-separated string", value)
    out = []
    for v in items:
        try:
            out.append(check_int(v, name, minimum=minimum, maximum=maximum))
        except ValueError:
            bound = f" >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
            raise _fail(name, f"a list of integers{bound}", value) from None
    out = sorted(set(out))
    if len(out) < min_len:
        raise _fail(name, f"at least {min_len} distinct value(s)", value)
    return out


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise _fail(name, f"one of {', '.join(choices)}", value)
    return value


def check_path(value: Any, name: str, default: Path) -> Path:
    """A directory for generated files: ``""`` or None means ``default``."""
    if value in ("", None):
        return Path(default)
    if not isinstance(value, (str, Path)):
        raise _fail(name, "a directory path (string)", value)
    return Path(value)


def check_dir(value: Any, name: str, default: Path, *, must_exist: bool = True) -> Path:
    """A directory to read: ``""`` or None means ``default``.

    A directory given explicitly must exist (``must_exist``) and be a directory; the error
    names the parameter, the path as given and where it resolves to (notebooks run in
    ``notebooks/``, so a relative path is relative to that folder).  The default is not
    checked: a missing default data folder is something the notebook reports itself.
    """
    if value in ("", None):
        return Path(default)
    if not isinstance(value, (str, Path)):
        raise _fail(name, "a directory path (string)", value)
    path = Path(value).expanduser()
    if must_exist:
        where = f" ({path.resolve()})" if not path.is_absolute() else ""
        if not path.exists():
            raise ValueError(f"parameter {name!r}: no such directory: {str(value)!r}{where}")
        if not path.is_dir():
            raise ValueError(f"parameter {name!r}: not a directory: {str(value)!r}{where}")
    return path


def check_fraction(value: Any, name: str) -> float:
    """A number strictly between 0 and 1."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _fail(name, "a number between 0 and 1", value) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise _fail(name, "a number between 0 and 1 (exclusive)", value)
    return float(value)


def check_bool(value: Any, name: str) -> bool:
    """True or False (papermill passes booleans; the strings true/false are accepted)."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise _fail(name, "true or false", value)
    return value
