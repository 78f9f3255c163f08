"""Output paths of the commands, checked before any work starts.

Every command that writes a file or a folder (``simulate --walks``, ``bench --out``,
``capture --out``, ``make run``) calls :func:`check_output_file` or :func:`check_output_dir`
first, so that a path that cannot be written fails at once, with one line naming the option
and the path, instead of after minutes of work.  Both raise :class:`UsageError`;
``rmapwalk.cli.main`` turns it into exit status 2.

This module imports nothing of the model (the measurement side uses it too).
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

__all__ = ["UsageError", "check_output_file", "check_output_dir", "check_seconds"]


class UsageError(ValueError):
    """Bad command-line input; the message is one line naming the option and the value."""


def _probe_dir(folder: Path) -> str | None:
    """Why no file can be created in ``folder``, or None if one can (tried for real, since
    ``os.access`` says yes to root and knows nothing of read-only file systems)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".rmapwalk-probe-", dir=folder)
    except OSError as e:
        return e.strerror or str(e)
    os.close(fd)
    os.unlink(tmp)
    return None


def check_output_file(path: str | os.PathLike, option: str) -> Path:
    """A file the command will create, replace or append to.

    It must not be a folder, its folder must exist, and the file must be writable (an
    existing file: opened for writing without truncating it; a new one: a probe file is
    created and removed beside it).  ``-`` (stdout) is accepted as is.
    """
    if str(path) == "-":
        return Path("-")
    if str(path) == "":
        raise UsageError(f"{option}: expected a file path, got an empty string")
    p = Path(path).expanduser()
    if p.is_dir():
        raise UsageError(f"{option} {path}: is a folder, expected a file path")
    folder = p.parent
    if not folder.exists():
        raise UsageError(f"{option} {path}: its folder {folder} does not exist")
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: {folder} is not a folder")
    if p.exists():
        try:
            os.close(os.open(p, os.O_WRONLY))
        except OSError as e:
            raise UsageError(f"{option} {path}: cannot write to it: {e.strerror or e}") from None
    else:
        why = _probe_dir(folder)
        if why:
            raise UsageError(f"{option} {path}: cannot create a file in {folder}: {why}")
    return p


def check_output_dir(path: str | os.PathLike, option: str) -> Path:
    """A folder the command will write into (created, with its parents, if missing).

    An existing path must be a folder one can create files in; a missing one must have an
    existing ancestor that is a folder one can create folders in.  Nothing is created here.
    """
    if str(path) == "":
        raise UsageError(f"{option}: expected a folder path, got an empty string")
    p = Path(path).expanduser()
    if p.exists():
        if not p.is_dir():
            raise UsageError(f"{option} {path}: is a file, expected a folder")
        why = _probe_dir(p)
        if why:
            raise UsageError(f"{option} {path}: cannot create files in it: {why}")
        return p
    ancestor = p.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{option} {path}: {ancestor} is a file, not a folder")
    why = _probe_dir(ancestor)
    if why:
        raise UsageError(f"{option} {path}: cannot create it in {ancestor}: {why}")
    return p


def check_seconds(value: float, option: str) -> float:
    """A time limit (``--timeout``): a finite number of seconds > 0.  ``inf`` would leave QEMU
    without its hard limit (and failed only at the boot, as a traceback); nan compares false."""
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{option} {value}: expected a finite number of seconds > 0")
    return value
