"""rmapwalk.analysis.tables.markdown: the one pipe-table writer of the book's glued text."""
import math

import pandas as pd

from rmapwalk.analysis import tables


def test_names_formats_nan_escapes_and_bold():
    df = pd.DataFrame({"k": ["a|b", "c\nd"], "x": [1234.5, math.nan], "v": ["holds", "fails"]})
    text = tables.markdown(df, {"x": ",.1f"}, {"k": "kernel"}, bold="v")
    assert text.splitlines() == [
        "| kernel | x | v |",
        "|---|---|---|",
        "| a\\|b | 1,234.5 | **holds** |",
        "| c d | – | **fails** |",
    ]


def test_empty_table_has_its_header():
    assert tables.markdown(pd.DataFrame(columns=["a", "b"])) == "| a | b |\n|---|---|"
