"""Pack dataset cards (``RES/pack/cards/<format>.json``) as one self-contained HTML table, one row per pack."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..atomic import write_text
from .funnel import STYLE

# Shown first when present; every other top-level key follows in the order the cards list them.
PREFERRED = ["format", "count", "resolution", "classes", "disk_bytes", "size_bytes", "files"]


def load_cards(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[str, dict]]:
    """(name, card) per file; a file that is not a JSON object is an error naming the file."""
    cards = []
    for path in sorted(paths, key=str):
        try:
            card = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: dataset card is not valid JSON ({exc})") from exc
        if not isinstance(card, dict):
            raise ValueError(f"{path}: dataset card must be a JSON object, got {type(card).__name__}")
        cards.append((Path(path).stem, card))
    return cards


def human_bytes(n: float) -> str:
    for unit in ["B", "KiB", "MiB", "GiB", "TiB"]:
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def records_table(records: list[dict]) -> str:
    keys: list[str] = []
    for rec in records:
        keys.extend(k for k in rec if k not in keys)
    head = "".join(f"<th class='l'>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        "<tr>" + "".join(f"<td class='l'>{cell(k, rec[k]) if k in rec else ''}</td>" for k in keys) + "</tr>"
        for rec in records
    )
    return f"<table class='nested'><tr>{head}</tr>{body}</table>"


def cell(key: str, value) -> str:
    """One table cell: scalars as text (byte counts humanised), objects and lists as a collapsible JSON block."""
    if isinstance(value, dict | list):
        n = len(value)
        summary = f"{n} {'entries' if isinstance(value, dict) else 'items'}"
        if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value) and n <= 4:
            return html.escape(", ".join(str(v) for v in value))
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            body = records_table(value)  # e.g. per-class counts, pack files: a small nested table
        else:
            body = f"<pre>{html.escape(json.dumps(value, indent=1, sort_keys=True, default=str))}</pre>"
        return f"<details{' open' if n <= 5 else ''}><summary>{summary}</summary>{body}</details>"
    if isinstance(value, int | float) and not isinstance(value, bool) and key.endswith(("bytes", "_size")):
        return f"{html.escape(human_bytes(value))}<br><small>{value:,}</small>"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return html.escape("" if value is None else str(value))


def cards_html(cards: list[tuple[str, dict]], title: str = "Dataset cards") -> str:
    keys: list[str] = [k for k in PREFERRED if any(k in c for _, c in cards)]
    for _, card in cards:
        keys.extend(k for k in card if k not in keys)
    out = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE} td {{ vertical-align: top; text-align: left; }}"
        " pre { margin: 0; font-size: 11px; } table.nested { font-size: 11px; }</style></head><body>",
    ]
    if not cards:
        out.append("<p>No dataset cards: no pack formats are enabled (config key <code>pack.formats</code>).</p>")
    else:
        out.append("<table><tr><th class='l'>card</th>")
        out.extend(f"<th class='l'>{html.escape(k)}</th>" for k in keys)
        out.append("</tr>")
        for name, card in cards:
            out.append(f"<tr><td class='l'><b>{html.escape(name)}</b></td>")
            out.extend(f"<td class='l'>{cell(k, card[k]) if k in card else ''}</td>" for k in keys)
            out.append("</tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_cards(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> int:
    cards = load_cards(paths)
    write_text(out, cards_html(cards))
    return len(cards)
