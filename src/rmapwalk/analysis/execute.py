"""Run one notebook with parameters (papermill), refusing parameters it does not have.

``python -m rmapwalk.analysis.execute NOTEBOOK OUT [-p NAME VALUE]... [-r NAME VALUE]...``
(what ``make run`` calls).  Before anything executes, every parameter name is checked
against the notebook's cell tagged ``parameters`` (``papermill.inspect_notebook``): papermill
itself only warns about an unknown name and runs with the defaults, so ``-p seeds 7`` for a
notebook with ``seed`` would give a complete-looking run of the book's values.

``OUT`` is a folder (``build/runs/``: the run is named ``<notebook>-<time>-<pid>.ipynb``, so
two runs never share a name) or an ``.ipynb`` path.  The notebook is executed into a hidden
``.<name>.part.ipynb`` beside it and renamed to its name only once every cell ran; a run that
fails or is interrupted (Ctrl-C, SIGTERM) is renamed to ``<name>-FAILED.ipynb`` and that path
is printed, so nothing that looks complete is left behind.

Values are read as papermill's ``-p`` reads them (``True``/``False``/``None``, an integer, a
float, otherwise the string); ``-r`` keeps the string.  Exit status: 0 done; 1 the notebook
failed; 2 bad input (unknown parameter, a value the notebook's check cell refused, no such
notebook, an output path that cannot be written); 130/143 interrupted by SIGINT/SIGTERM.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from papermill.exceptions import PapermillException, PapermillExecutionError

from rmapwalk import paths
from rmapwalk.outputs import UsageError, check_output_dir

__all__ = ["notebook_parameters", "check_parameters", "parse_value", "output_names",
           "execute", "main", "Interrupted"]


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) arrived while the notebook ran."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is below it."""
    return paths.shown(path, Path.cwd())


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, dict]:
    """name -> papermill's description (``inferred_type_name``, ``default``, ``help``), in
    the order of the notebook's ``parameters`` cell."""
    import papermill as pm
    return dict(pm.inspect_notebook(str(notebook)))


def check_parameters(notebook: str | os.PathLike, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` unchanged if the notebook has every one of them; else :class:`UsageError`
    naming the first unknown one and listing the valid ones."""
    known = notebook_parameters(notebook)
    for name in params:
        if name not in known:
            valid = ", ".join(known) or "(none: the notebook has no cell tagged 'parameters')"
            raise UsageError(f"parameter {name!r}: not a parameter of {_shown(Path(notebook))}; "
                             f"valid: {valid}")
    return params


def parse_value(text: str) -> Any:
    """A ``-p`` value: True/False/None, an int, a float, or the string itself."""
    special = {"True": True, "False": False, "None": None}
    if text in special:
        return special[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def output_names(notebook: Path, out: Path) -> tuple[Path, Path, Path]:
    """(part, final, failed) paths of one run.

    ``out`` a folder: ``<stem>-<YYYYmmddTHHMMSS>-<pid>``, with a counter should that name be
    taken; the part file is created here (exclusively), which reserves the name.
    """
    if out.suffix == ".ipynb" and not out.is_dir():
        folder, stem = out.parent, out.stem
        candidates = [stem]
    else:
        folder = out
        base = f"{notebook.stem}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        candidates = [base] + [f"{base}-{k}" for k in range(1, 1000)]
    folder.mkdir(parents=True, exist_ok=True)
    for stem in candidates:
        # explicit name: the part file carries the pid, so a stale one (SIGKILL) blocks nothing
        part = folder / (f".{stem}.{os.getpid()}.part.ipynb" if len(candidates) == 1
                         else f".{stem}.part.ipynb")
        final, failed = folder / f"{stem}.ipynb", folder / f"{stem}-FAILED.ipynb"
        if len(candidates) > 1 and (final.exists() or failed.exists()):
            continue
        try:
            os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            if len(candidates) == 1:
                raise UsageError(f"{_shown(out)}: another run is writing it ({_shown(part)} "
                                 f"exists)") from None
            continue
        return part, final, failed
    raise UsageError(f"{_shown(out)}: no free output name for {notebook.stem}")


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


def execute(notebook: str | os.PathLike, out: str | os.PathLike, params: dict[str, Any],
            cwd: str | os.PathLike | None = None, kernel_name: str = "python3",
            failed_dir: str | os.PathLike | None = None) -> Path:
    """Check ``params``, execute ``notebook`` into ``out`` (folder or file); the output path.

    Raises :class:`UsageError` before anything runs, papermill's
    ``PapermillExecutionError`` if a cell failed, :class:`Interrupted` on SIGTERM/SIGINT; in
    the last two cases the partial output is kept as ``...-FAILED.ipynb`` (its path is the
    exception's ``failed_output`` attribute), in ``failed_dir`` if given (the book's
    folder should not collect failed notebooks), else beside the output.
    """
    import papermill as pm
    notebook = Path(notebook)
    if not notebook.is_file():
        raise UsageError(f"{notebook}: no such notebook")
    check_parameters(notebook, params)
    out = Path(out)
    check_output_dir(out.parent if out.suffix == ".ipynb" else out, "output")
    if failed_dir is not None:
        check_output_dir(failed_dir, "--failed")
    part, final, failed = output_names(notebook, out)
    if failed_dir is not None:
        Path(failed_dir).mkdir(parents=True, exist_ok=True)
        failed = Path(failed_dir) / failed.name
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for s in handlers:
            signal.signal(s, _raise_interrupted)
        with tempfile.TemporaryDirectory(prefix="rmapwalk-kernel-") as sockets:
            pm.execute_notebook(str(notebook), str(part), parameters=params,
                                kernel_name=kernel_name,
                                cwd=str(cwd if cwd is not None else notebook.parent),
                                progress_bar=False, log_output=False,
                                config=_private_transport(sockets))
        os.replace(part, final)
        return final
    except BaseException as e:
        if part.exists():
            if part.stat().st_size:
                shutil.move(str(part), str(failed))
                e.failed_output = failed
            else:
                part.unlink()
                e.failed_output = None
        raise
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)


def _private_transport(folder: str):
    """Kernel sockets as files in ``folder`` (IPC) instead of TCP ports on 127.0.0.1.

    jupyter_client picks free TCP ports by binding and releasing them before the kernel binds
    them again, so two runs started at the same moment can pick the same port ("Address
    already in use", then "Kernel didn't respond"). Sockets in a folder of our own cannot
    collide, and no other user on the machine can connect to them.
    """
    from traitlets.config import Config
    return Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(folder, "kernel")}})


def _collect(args) -> dict[str, Any]:
    """The parameters in papermill's order: files, YAML, -p, -r (later ones win)."""
    import yaml
    params: dict[str, Any] = {}
    texts = []
    for f in args.parameters_file:
        try:
            texts.append((f"-f {f}", Path(f).read_text()))
        except OSError as e:
            raise UsageError(f"-f {f}: cannot read: {e.strerror or e}") from None
    texts += [(f"-y {y}", y) for y in args.parameters_yaml]
    for what, text in texts:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UsageError(f"{what}: not YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(doc, dict):
            raise UsageError(f"{what}: expected a mapping of parameter names to values")
        params.update(doc)
    params.update({n: parse_value(v) for n, v in args.parameters})
    params.update({n: v for n, v in args.parameters_raw})
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rmapwalk.analysis.execute",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("notebook", help="the notebook, e.g. notebooks/skip-ratio.ipynb")
    parser.add_argument("out", help="output folder (a unique name is chosen) or .ipynb path")
    parser.add_argument("-p", "--parameters", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="a parameter (typed like papermill -p)")
    parser.add_argument("-r", "--parameters-raw", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="a parameter kept as a string")
    parser.add_argument("-y", "--parameters-yaml", action="append", default=[], metavar="YAML",
                        help="parameters as a YAML mapping")
    parser.add_argument("-f", "--parameters-file", action="append", default=[], metavar="FILE",
                        help="parameters from a YAML file")
    parser.add_argument("--cwd", help="working folder of the kernel (default: the notebook's)")
    parser.add_argument("--failed", metavar="DIR",
                        help="where a failed run's notebook goes (default: beside the output)")
    args = parser.parse_args(argv)
    try:
        params = _collect(args)
    except UsageError as e:
        print(f"run: {e}", file=sys.stderr)
        return 2
    logging.getLogger("papermill").setLevel(logging.WARNING)
    try:
        path = execute(args.notebook, args.out, params, cwd=args.cwd, failed_dir=args.failed)
    except UsageError as e:
        print(f"run: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        kept = getattr(e, "failed_output", None)
        print(f"run: interrupted ({e}); " + (f"partial output: {_shown(kept)}" if kept else
                                            "nothing written"), file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:           # SIGINT before the handlers were installed
        print("run: interrupted", file=sys.stderr)
        return 130
    except PapermillExecutionError as e:
        kept = getattr(e, "failed_output", None)
        where = f"; failed notebook: {_shown(kept)}" if kept else ""
        print(f"run: {e.ename}: {e.evalue}{where}", file=sys.stderr)
        bad_input = e.ename == "ValueError" and str(e.evalue).startswith("parameter '")
        return 2 if bad_input else 1
    except PapermillException as e:     # papermill refused before running a cell
        print(f"run: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}",
              file=sys.stderr)
        return 1
    print(f"run: {_shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
