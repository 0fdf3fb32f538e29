"""The ledger funnel for the report: a TSV, an HTML table and a bar chart, all from ``animefaces.ledger.funnel``."""

from __future__ import annotations

import html
import os

import pandas as pd

from ..atomic import atomic_path, write_text
from ..ledger import funnel, reconcile
from ..manifest import LEDGER_COLUMNS
from .data import Sources, load_rows

COUNTS = ["in", "kept", "kept_parents", "dropped"]
STYLE = """
body { font-family: sans-serif; font-size: 13px; margin: 8px; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
th { background: #eee; }
td.l, th.l { text-align: left; }
tr.stage td { font-weight: bold; background: #f7f7f7; }
.problem { color: #a00; }
.ok { color: #070; }
"""


def funnel_table(sources: Sources) -> tuple[pd.DataFrame, list[str]]:
    """The funnel of a results directory (or of the given manifest files) and the reconciliation problems
    (empty = every item accounted for)."""
    ledger = load_rows(sources, extra=[])[LEDGER_COLUMNS]
    table = funnel(ledger).astype({c: "Int64" for c in COUNTS})  # integer counts, empty (not NaN) on reason rows
    return table, reconcile(ledger)


def _num(value) -> str:
    return "" if value is None or pd.isna(value) else f"{int(value):,}"


def funnel_html(table: pd.DataFrame, problems: list[str], title: str = "Ledger funnel") -> str:
    """A self-contained HTML page: per stage the items in / kept / dropped, then the drops by reason."""
    out = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        "<table><tr><th class='l'>stage</th><th class='l'>reason</th><th>in</th><th>kept</th>"
        "<th>kept parents</th><th>dropped</th><th>kept %</th></tr>",
    ]
    for row in table.to_dict(orient="records"):
        if row["reason"] == "":
            share = f"{100 * row['kept_parents'] / row['in']:.1f}" if row["in"] else ""
            out.append(
                f"<tr class='stage'><td class='l'>{html.escape(row['stage'])}</td><td class='l'>(total)</td>"
                f"<td>{_num(row['in'])}</td><td>{_num(row['kept'])}</td><td>{_num(row['kept_parents'])}</td>"
                f"<td>{_num(row['dropped'])}</td><td>{share}</td></tr>"
            )
        else:
            out.append(
                f"<tr><td></td><td class='l'>{html.escape(row['reason'])}</td><td></td><td></td><td></td>"
                f"<td>{_num(row['dropped'])}</td><td></td></tr>"
            )
    out.append("</table>")
    out.append(
        "<p><i>in</i>: items entering the stage (distinct parents); <i>kept</i>: items it passed on (a post may "
        "yield several faces at crop); <i>kept %</i>: share of entering items with at least one kept output.</p>"
    )
    if problems:
        out.append("<p class='problem'><b>Reconciliation problems:</b></p><ul>")
        out.extend(f"<li class='problem'>{html.escape(p)}</li>" for p in problems)
        out.append("</ul>")
    else:
        out.append("<p class='ok'>Reconciled: every item kept by a stage entered the next one exactly once.</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def funnel_chart(table: pd.DataFrame, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """Two panels: items in / kept per stage, and the drops per stage and reason (log scale if counts vary)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = table[table["reason"] == ""]
    reasons = table[table["reason"] != ""]
    stages = list(totals["stage"])
    colours = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(stages)}
    n_reasons = max(len(reasons), 1)
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(12, max(3.0, 0.28 * max(n_reasons, 2 * len(stages)) + 1.2)), constrained_layout=True
    )
    y = range(len(stages))
    ax1.barh([i - 0.2 for i in y], totals["in"].astype(float), height=0.4, color="#bbbbbb", label="in")
    ax1.barh(
        [i + 0.2 for i in y],
        totals["kept"].astype(float),
        height=0.4,
        color=[colours[s] for s in stages],
        label="kept",
    )
    for i, (n_in, n_kept) in enumerate(zip(totals["in"], totals["kept"], strict=True)):
        ax1.text(float(n_in), i - 0.2, f" {int(n_in):,}", va="center", fontsize=8)
        ax1.text(float(n_kept), i + 0.2, f" {int(n_kept):,}", va="center", fontsize=8)
    ax1.set_yticks(list(y), stages)
    ax1.invert_yaxis()
    ax1.set_xlabel("items")
    ax1.set_title("items in (grey) and kept per stage")
    ax1.margins(x=0.15)
    if len(reasons):
        labels = [f"{s}: {r}" for s, r in zip(reasons["stage"], reasons["reason"], strict=True)]
        counts = reasons["dropped"].astype(float)
        ax2.barh(range(len(labels)), counts, color=[colours[s] for s in reasons["stage"]])
        for i, n in enumerate(counts):
            ax2.text(n, i, f" {int(n):,}", va="center", fontsize=8)
        ax2.set_yticks(range(len(labels)), labels, fontsize=8)
        ax2.invert_yaxis()
        if counts.max() / max(counts.min(), 1) > 100:
            ax2.set_xscale("log")
        ax2.margins(x=0.15)
    else:
        ax2.text(0.5, 0.5, "no items dropped", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_yticks([])
    ax2.set_xlabel("items dropped")
    ax2.set_title("drops by stage and reason")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def write_funnel(
    sources: Sources,
    tsv: str | os.PathLike[str] | None = None,
    html_path: str | os.PathLike[str] | None = None,
    png: str | os.PathLike[str] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    table, problems = funnel_table(sources)
    if tsv:
        with atomic_path(tsv, suffix=".tsv") as tmp:
            table.to_csv(tmp, sep="\t", index=False)
    if html_path:
        write_text(html_path, funnel_html(table, problems))
    if png:
        funnel_chart(table, png)
    return table, problems
