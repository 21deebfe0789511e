"""HTML pieces shared by the backtest and sweep reports: formatting, sortable tables, page.

No dependency beyond the standard library, so the plain report (no plotly) uses the same
tables as the Plotly one. Tables sort when a header is clicked (a few lines of vanilla JS,
inline, so the page stays self-contained); each cell carries its raw value in ``data-v``
so numbers sort as numbers and "n/a" sorts last either way.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

NA = "n/a"

CSS = """body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:13px}
td,th{padding:3px 10px;text-align:right;border-bottom:1px solid #eee;white-space:nowrap}
th{background:#f6f8fa;font-weight:600}td.s,th.s{text-align:left}
table.sortable th{cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
.note{color:#555;font-size:13px;max-width:60em}.scroll{max-height:32em;overflow:auto}
pre{background:#f6f8fa;padding:1em;font-size:12px;overflow:auto;max-height:40em}
.pos{color:#1a7f37}.neg{color:#cf222e}"""

SORT_JS = """document.querySelectorAll('table.sortable').forEach(t => {
  const heads = Array.from(t.tHead.rows[0].cells);
  const key = (r, i) => { const v = r.cells[i].dataset.v;
    if (v === '') return null;
    return v !== undefined && !isNaN(v) ? Number(v) : (v ?? r.cells[i].textContent); };
  const order = (a, b) => typeof a === typeof b ? (a < b ? -1 : a > b ? 1 : 0)
                                                 : (typeof a === 'number' ? -1 : 1);
  heads.forEach((th, i) => th.addEventListener('click', () => {
    const asc = th.getAttribute('aria-sort') !== 'ascending';
    heads.forEach(h => h.removeAttribute('aria-sort'));
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    const cmp = (a, b) => a === null || b === null ? (a === null) - (b === null)
                                                   : order(a, b) * (asc ? 1 : -1);
    const rows = Array.from(t.tBodies[0].rows);
    rows.sort((x, y) => cmp(key(x, i), key(y, i)));
    t.tBodies[0].append(...rows);
  }));
});"""


def fmt(v: Any) -> str:
    """A value for a reader: thousands separators, 8 significant digits (a price keeps its
    cents), None as n/a."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return NA
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.8g}" if math.isfinite(v) and abs(v) < 1e15 else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def utc(ts_ns: int | None) -> str:
    """Nanoseconds since the epoch as ``YYYY-MM-DD HH:MM:SS.mmm`` (UTC)."""
    if ts_ns is None:
        return NA
    t = dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def _cell(v: Any, link: str | None, signed: bool) -> str:
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    raw = "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v
    text = html.escape(fmt(v))
    if link:
        text = f'<a href="{html.escape(link)}">{text}</a>'
    cls = "" if number else ' class="s"'
    if signed and number and raw != "" and v != 0:
        cls = ' class="pos"' if v > 0 else ' class="neg"'
    return f'<td{cls} data-v="{html.escape(str(raw))}">{text}</td>'


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, sortable: bool = True,
          links: Mapping[int, Sequence[str | None]] | None = None, signed: bool = False,
          table_id: str = "") -> str:
    """An HTML table; ``links[col][row]`` makes that cell a link. ``signed`` colours
    positive and negative numbers (for PnL-like tables)."""
    links = links or {}
    body = []
    for r, row in enumerate(rows):
        cells = [_cell(v, links[c][r] if c in links else None, signed)
                 for c, v in enumerate(row)]
        body.append("<tr>" + "".join(cells) + "</tr>")
    heads = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    attrs = (' class="sortable"' if sortable else "") + (f' id="{table_id}"' if table_id else "")
    return (f"<table{attrs}><thead><tr>{heads}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def kv_table(items: Mapping[str, Any], table_id: str = "") -> str:
    """A two-column name/value table (not sortable: its order is the writer's)."""
    return table(("name", "value"), [(k, v) for k, v in items.items()], sortable=False,
                 table_id=table_id)


def page(title: str, body: str, head: str = "") -> str:
    """A whole self-contained page: CSS inline, the table-sorting script at the end."""
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style>{head}</head>"
            f"<body>{body}<script>{SORT_JS}</script></body></html>\n")


def section(title: str, *parts: str) -> str:
    return f"<h2>{html.escape(title)}</h2>" + "".join(parts)


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'
