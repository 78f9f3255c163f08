"""The one writer of MyST (CommonMark pipe) tables for the book's glued text.

:func:`markdown` renders a DataFrame's rows: column names through ``names``, numbers through
``formats`` (column -> format spec), NaN as "–", ``|`` and newlines escaped inside cells, and
the cells of column ``bold`` in bold.  The chapters' own helpers (``programs.markdown``,
``conditions.markdown``, ``paths.markdown``, ``claim.markdown_table``) call it with their
column names and formats.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd


def _cell(value: Any, spec: str | None) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "–"
    text = format(value, spec) if spec else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(df: pd.DataFrame, formats: dict[str, str] | None = None,
             names: dict[str, str] | None = None, bold: str | None = None) -> str:
    """``df`` as a pipe table (no index), one line per row, no trailing newline."""
    formats, names = formats or {}, names or {}
    cols = list(df.columns)
    lines = ["| " + " | ".join(names.get(c, c) for c in cols) + " |",
             "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = [_cell(row[c], formats.get(c)) for c in cols]
        cells = [f"**{x}**" if c == bold else x for c, x in zip(cols, cells)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
