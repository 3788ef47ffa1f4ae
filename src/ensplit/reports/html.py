"""One self-contained HTML page: figures embedded as base64 PNG, tables as HTML, no external assets."""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from ensplit.files import atomic_write_text  # noqa: E402

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
figure{display:inline-block;margin:.5em;vertical-align:top}figcaption{font-size:.9em;color:#555;max-width:520px}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f3f3f3}p.note{color:#555}div.wide{overflow-x:auto}
"""


@dataclass
class Section:
    """A titled block of the report: a paragraph, figures with captions, and an optional table."""

    title: str
    text: str = ""
    figures: Sequence[tuple[Figure, str]] = field(default_factory=list)
    table: Sequence[dict[str, Any]] | None = None


def figure_to_data_uri(figure: Figure, dpi: int = 110) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _cell(value: Any) -> str:
    """Floats to 4 significant digits, NaN and None as a dash, counts of 10,000 and up with separators."""
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:,}"
    return html.escape("–" if value is None else str(value))


def table_html(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p class='note'>(no rows)</p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def epochs(count: int | str) -> str:
    """"1 epoch", "3 epochs" (for the pages' prose)."""
    return f"{count} epoch{'' if count == 1 else 's'}"


def render_page(title: str, sections: Sequence[Section], subtitle: str = "") -> str:
    import matplotlib.pyplot as plt

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    if subtitle:
        parts.append(f"<p class='note'>{html.escape(subtitle)}</p>")
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(f"<p>{html.escape(section.text)}</p>")
        for figure, caption in section.figures:
            parts.append(f"<figure><img src='{figure_to_data_uri(figure)}' alt='{html.escape(caption)}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
            plt.close(figure)
        if section.table is not None:
            parts.append(f"<div class='wide'>{table_html(section.table)}</div>")  # a wide table scrolls alone
    parts.append("</body></html>")
    return "".join(parts)


def write_report(path: str | os.PathLike[str], title: str, sections: Sequence[Section], subtitle: str = "") -> Path:
    """Render and write the page atomically (a reader never sees half a report)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, render_page(title, sections, subtitle))
