"""How far the model can be trusted: the fuzz campaign and the bugs it found (issue 7).

Reads the published campaign (``data/fuzz/<name>/``) only through
:func:`rmapwalk.fuzz.campaign.load`, which refuses a folder that does not match its manifest,
and the table of model bugs from ``data/scenarios/regressions/README.md`` (that README is the
one place the bugs are listed; :func:`bugs` parses its table and refuses a row it cannot read).
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from rmapwalk import paths, scenario as sc
from rmapwalk.fuzz import campaign as fc

REGRESSIONS = paths.REGRESSIONS
BUG_COLUMNS = ("scenario", "what differed", "kernel function", "fix")


class RegressionTableError(ValueError):
    """The regressions README's table cannot be read; the message names the file and line."""


def check_campaign(value, root: str | Path = fc.FUZZ_DATA) -> str:
    """The notebook parameter ``campaign``: the name of a campaign published under ``root``;
    otherwise a ValueError naming the parameter and the campaigns there are."""
    root = Path(root)
    if not isinstance(value, str) or not value or not (root / value).is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir() and not
                       p.name.startswith(".")) if root.is_dir() else []
        raise ValueError(f"parameter 'campaign': expected a campaign published under {root} "
                         f"(one of: {', '.join(known) or 'none'}), got {value!r}")
    return value


def load(name: str, root: str | Path = fc.FUZZ_DATA) -> dict:
    """The published campaign ``name`` (see :func:`rmapwalk.fuzz.campaign.load`)."""
    return fc.load(Path(root) / name)


def size_table(c: dict) -> pd.DataFrame:
    """Per kernel: scenarios, walks compared, refusals compared, disagreements, failures."""
    s = c["summary"]
    rows = []
    for k in s["kernels"]:
        pk = s["per_kernel"][k]
        rows.append({"kernel": k, "scenarios": pk["runs"], "walks compared": pk["walks"],
                     "scenarios stopped by a refused step": pk["refusals"],
                     "disagreements": pk["disagreements"],
                     "capture failures": pk["capture_failures"]})
    df = pd.DataFrame(rows).set_index("kernel")
    df.loc["all"] = df.sum()
    return df


def step_mix(c: dict) -> pd.DataFrame:
    """Per step kind of ``scenario.STEP_KINDS``: steps generated, scenarios with one, and
    the kernel function the kind exercises (a kind never generated shows 0)."""
    steps = c["steps"]
    n = steps["scenario"].nunique()
    rows = []
    for kind, spec in sc.STEP_KINDS.items():
        k = steps[steps["kind"] == kind]
        rows.append({"step": kind, "steps": int(k["count"].sum()),
                     "scenarios with it": f"{(k['count'] > 0).sum() / n:.0%}" if n else "-",
                     "kernel function": spec.kernel})
    return pd.DataFrame(rows).set_index("step")


def refusals(c: dict) -> pd.DataFrame:
    """The steps the kernel refused (errno), how often, per kernel: each was refused by the
    model too, at the same step with the same errno, or it is a disagreement."""
    r = c["results"]
    r = r[r["refused_errno"].astype(str) != ""]
    if r.empty:
        return pd.DataFrame(columns=["errno", "kernel", "scenarios"]).set_index("errno")
    return (r.groupby(["refused_errno", "kernel"]).size().unstack(fill_value=0)
            .rename_axis(index="errno", columns=None))


def bugs(readme: str | Path = REGRESSIONS / "README.md") -> pd.DataFrame:
    """The model bugs the differential tests found: the regressions README's table."""
    readme = Path(readme)
    try:
        lines = readme.read_text().splitlines()
    except OSError as e:
        raise RegressionTableError(f"{readme}: cannot read: {e.strerror}") from None
    rows, header = [], None
    for i, line in enumerate(lines, 1):
        if not line.startswith("|"):
            if header is not None and rows:
                break
            continue
        cells = [x.strip() for x in line.strip().strip("|").split("|")]
        if header is None:
            header = [x.lower() for x in cells]
            if tuple(header) != BUG_COLUMNS:
                raise RegressionTableError(f"{readme}:{i}: expected the columns "
                                           f"{' | '.join(BUG_COLUMNS)}, got {' | '.join(cells)}")
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        if len(cells) != len(BUG_COLUMNS):
            raise RegressionTableError(f"{readme}:{i}: expected {len(BUG_COLUMNS)} cells, "
                                       f"got {len(cells)}")
        name = cells[0].strip("`")
        if not (readme.parent / f"{name}.yaml").is_file():
            raise RegressionTableError(f"{readme}:{i}: no scenario file {name}.yaml beside it")
        rows.append(dict(zip(BUG_COLUMNS, [name, *cells[1:]])))
    if not rows:
        raise RegressionTableError(f"{readme}: no table of regression scenarios")
    return pd.DataFrame(rows)


def bug_areas(b: pd.DataFrame) -> pd.DataFrame:
    """The bugs per kernel source file the kernel function lives in (mm/ksm.c, mm/vma.c...)."""
    files = b["kernel function"].map(lambda t: sorted(set(re.findall(
        r"\b((?:mm|kernel|lib|kernel-config)/[\w./-]+\.c|kernel-config/patches/\d+)", t))))
    out = files.explode().value_counts().rename_axis("kernel file").rename("bugs")
    return out.to_frame()


def verdict_text(c: dict) -> str:
    """The chapter's first sentence: the agreement figure, from the summary."""
    s = c["summary"]
    kernels = ", ".join(s["kernels"])
    bad = s["disagreements"] + s["capture_failures"] + s["verify_problems"]
    head = (f"On {s['scenarios']:,} random histories (seeds {', '.join(map(str, s['seeds']))}, "
            f"generator version {s['generator_version']}) replayed on the {s['base']} kernels "
            f"{kernels}, the model and the kernel were compared on {s['walks_compared']:,} "
            f"walks, each on its order, page, reason and four counters, and on every page's "
            f"outcome and every refused step")
    if not bad:
        return head + ": they agree on all of them (0 disagreements)."
    return (head + f": **{s['disagreements']:,} disagreements, {s['capture_failures']} capture "
            f"failures and {s['verify_problems']} runs that do not verify** — the model does "
            f"not equal the kernel on these histories; the lines are in `disagreements.txt`.")


def time_text(c: dict) -> str:
    t = c["summary"]["seconds_tcg"]
    n = c["summary"]["scenarios"] * len(c["summary"]["kernels"])
    return (f"The campaign took {t['total'] / 60:.0f} minutes on this 2-core machine "
            f"(TCG, {t['boots']} guest boots, {n:,} captures: {t['capture'] / n:.2f} s per "
            f"scenario and kernel, batched 20 scenarios per boot).")


def figure(c: dict):
    """Two panels: the step mix, and walks compared per kernel (the agreement figure)."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    mix = step_mix(c).reset_index()
    size = size_table(c).drop(index="all").reset_index()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    sns.barplot(data=mix, x="steps", y="step", ax=a, color="#4c72b0")
    a.set_xlabel("steps generated")
    a.set_ylabel("")
    a.set_title("step mix")
    sns.barplot(data=size, x="kernel", y="walks compared", ax=b, hue="kernel", legend=False)
    for i, row in size.iterrows():     # inside the bar, upright: the bars are narrow
        b.annotate(f"{row['disagreements']} disagreements", (i, row["walks compared"] / 2),
                   ha="center", va="center", rotation=90, fontsize=8, color="white")
    b.set_title("walks compared, model vs kernel")
    b.set_xlabel("")
    fig.tight_layout()
    return fig
