"""The plain report's charts, for when plotly is not installed: inline SVG polylines.

No plotting dependency: the charts are simple polylines and markers scaled by hand, which
is all an equity curve, a drawdown, a position and fills-on-price need. They have no
zoom or hover; ``pip install 'flightdesk[report]'`` gives the interactive report.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pyarrow as pa

W, H, PAD = 860, 220, 44


def _scale(values: np.ndarray, lo: float, hi: float, size: float, flip: bool) -> np.ndarray:
    span = hi - lo if hi > lo else 1.0
    pos = (values - lo) / span * (size - 2 * PAD) + PAD
    return size - pos if flip else pos


def _thin(*cols: np.ndarray, most: int = 2000) -> list[np.ndarray]:
    step = max(1, len(cols[0]) // most)
    return [c[::step] for c in cols]


def svg_chart(title: str, x: Any, series: list[tuple[str, Any, str]],
              markers: list[tuple[str, Any, Any, str]] | None = None) -> str:
    """An SVG line chart: ``series`` are (label, y, colour); ``markers`` (label, x, y, colour)."""
    markers = markers or []
    x = np.asarray(x, dtype=np.float64)
    ys = [np.asarray(y, dtype=np.float64) for _, y, _ in series]
    finite = [v[np.isfinite(v)] for v in ys + [np.asarray(m[2], dtype=np.float64)
                                              for m in markers]]
    finite = [v for v in finite if v.size]
    if x.size == 0 or not finite:
        return f"<p>{html.escape(title)}: no data</p>"
    lo = min(float(v.min()) for v in finite)
    hi = max(float(v.max()) for v in finite)
    x0, x1 = float(x.min()), float(x.max())
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'role="img" aria-label="{html.escape(title)}">',
             f'<rect width="{W}" height="{H}" fill="white" stroke="#ccc"/>',
             f'<text x="{PAD}" y="18" font-size="13" font-family="sans-serif">'
             f'{html.escape(title)}</text>',
             f'<text x="4" y="{PAD}" font-size="10" font-family="sans-serif">{hi:.6g}</text>',
             f'<text x="4" y="{H - PAD}" font-size="10" font-family="sans-serif">{lo:.6g}</text>']
    for (label, _, colour), y in zip(series, ys, strict=True):
        tx, ty = _thin(x, y)
        ok = np.isfinite(ty)
        px = _scale(tx[ok], x0, x1, W, False)
        py = _scale(ty[ok], lo, hi, H, True)
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.3" '
                     f'points="{points}"><title>{html.escape(label)}</title></polyline>')
    for label, mx, my, colour in markers:
        mx, my = _thin(np.asarray(mx, dtype=np.float64), np.asarray(my, dtype=np.float64))
        for a, b in zip(_scale(mx, x0, x1, W, False), _scale(my, lo, hi, H, True), strict=True):
            parts.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{colour}">'
                         f'<title>{html.escape(label)}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def charts(curve: Any, fills: pa.Table) -> str:
    """The four charts of the plain report, x in seconds from the first sample."""
    t = (np.asarray(curve.ts, dtype=np.float64) - (curve.ts[0] if curve.ts else 0)) / 1e9
    equity = np.asarray(curve.equity, dtype=np.float64)
    drawdown = equity - np.maximum.accumulate(equity) if equity.size else equity
    svgs = [
        svg_chart("Equity (PnL, quote currency)", t, [("pnl", equity, "#1f6feb")]),
        svg_chart("Drawdown", t, [("drawdown", drawdown, "#d73a49")]),
        svg_chart("Position", t, [("position", curve.position, "#6f42c1")]),
        svg_chart("Fills on price", t, [("mid", curve.mid, "#999")], _fill_markers(fills, curve)),
    ]
    legend = ('<p class="note">x: seconds from the first sample. Fills: '
              '<span style="color:#2da44e">&#9679; buy</span> '
              '<span style="color:#cf222e">&#9679; sell</span>. Install '
              "<code>flightdesk[report]</code> (plotly) for zoom, hover and a time axis.</p>")
    return legend + "".join(f"<div>{c}</div>" for c in svgs)


def _fill_markers(fills: pa.Table, curve: Any) -> list[tuple[str, Any, Any, str]]:
    if fills.num_rows == 0 or not curve.ts:
        return []
    ts = (np.asarray(fills.column("ts").to_pylist(), dtype=np.float64) - curve.ts[0]) / 1e9
    px = np.asarray(fills.column("price").to_pylist(), dtype=np.float64)
    buy = np.asarray([s == "buy" for s in fills.column("side").to_pylist()])
    return [("buy fill", ts[buy], px[buy], "#2da44e"), ("sell fill", ts[~buy], px[~buy], "#cf222e")]
