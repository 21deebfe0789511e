"""The backtest report's charts with Plotly: interactive, offline, on a shared UTC time axis.

plotly.js is inlined once per page (the ``plotly`` Python package ships it), so the page
fetches nothing. Equity, drawdown, position and fills-on-price are four rows of one figure
with shared x axes: zooming or panning one zooms all, hover shows the values and the time.
Time is milliseconds since the epoch on a Plotly date axis, which Plotly renders as UTC.

Series are thinned to at most :data:`MAX_POINTS` points each, keeping every bucket's
minimum and maximum (so a drawdown's trough or a price spike survives thinning); fills
to at most :data:`MAX_FILLS` markers per side (every k-th, said in the legend). A day
of 100 ms samples (864,000 points) then costs a few hundred kB of page, not tens of MB.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_POINTS = 4_000
MAX_FILLS = 2_000
CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": True}
BUY, SELL = "#1a7f37", "#cf222e"


def plotly_js() -> str:
    """The ``<script>`` carrying plotly.js itself (once per page)."""
    from plotly.offline import get_plotlyjs

    return f'<script type="text/javascript">{get_plotlyjs()}</script>'


def minmax_thin(values: np.ndarray, most: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``most`` points of ``values``: each bucket's minimum and maximum,
    plus the first and last point, in time order. NaNs are kept only where a bucket has
    nothing else."""
    n = values.size
    if n <= most:
        return np.arange(n)
    buckets = max(1, (most - 2) // 2)
    width = -(-n // buckets)
    padded = np.full(buckets * width, np.nan)
    padded[:n] = values
    rows = padded.reshape(buckets, width)
    finite = np.isfinite(rows)
    lo = np.where(finite, rows, np.inf).argmin(axis=1)
    hi = np.where(finite, rows, -np.inf).argmax(axis=1)
    base = np.arange(buckets) * width
    keep = np.concatenate(([0, n - 1], base + lo, base + hi))
    return np.unique(keep[keep < n])


def _line(x: np.ndarray, y: np.ndarray, name: str, colour: str, **kw: Any) -> Any:
    import plotly.graph_objects as go

    keep = minmax_thin(y)
    return go.Scatter(x=x[keep], y=y[keep], name=name, mode="lines",
                      line={"color": colour, "width": 1.4, **kw.pop("line", {})}, **kw)


def _fill_trace(fills: pa.Table, side: str, colour: str, symbol: str) -> Any | None:
    import plotly.graph_objects as go

    rows = fills.filter(pc.equal(fills.column("side"), side))
    n = rows.num_rows
    if n == 0:
        return None
    step = -(-n // MAX_FILLS)
    rows = rows.take(np.arange(0, n, step))
    name = f"{side} fills ({n:,})" if step == 1 else f"{side} fills (every {step}th of {n:,})"
    custom = list(zip(rows.column("symbol").to_pylist(),
                      [f"{v:.8g}" for v in rows.column("qty").to_pylist()],
                      [f"{v:.6g}" for v in rows.column("fee").to_pylist()],
                      rows.column("liquidity").to_pylist(), rows.column("order_id").to_pylist(),
                      strict=True))
    return go.Scatter(
        x=rows.column("ts").to_numpy() / 1e6, y=rows.column("price").to_numpy(), name=name,
        mode="markers", marker={"color": colour, "symbol": symbol, "size": 8,
                                "line": {"width": 0.5, "color": "#222"}},
        customdata=custom, legendgroup=side,
        hovertemplate=(f"<b>{side}</b> %{{customdata[0]}}<br>price %{{y:,.6g}}<br>"
                       "qty %{customdata[1]}<br>fee %{customdata[2]}<br>%{customdata[3]}"
                       "<br>%{customdata[4]}<extra></extra>"))


def timeline(curve: Any, fills: pa.Table) -> str:
    """Equity, drawdown, position and fills on price: one figure, a shared UTC time axis."""
    from plotly.subplots import make_subplots

    x = np.asarray(curve.ts, dtype=np.float64) / 1e6
    equity = np.asarray(curve.equity, dtype=np.float64)
    drawdown = equity - np.maximum.accumulate(equity) if equity.size else equity
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        row_heights=[0.3, 0.17, 0.17, 0.36],
                        subplot_titles=("Equity (PnL, quote currency)", "Drawdown",
                                        "Position", "Fills on price"))
    fig.add_trace(_line(x, equity, "equity", "#1f6feb", showlegend=False), 1, 1)
    fig.add_trace(_line(x, drawdown, "drawdown", "#d73a49", fill="tozeroy",
                        showlegend=False), 2, 1)
    fig.add_trace(_line(x, np.asarray(curve.position, dtype=np.float64), "position",
                        "#6f42c1", line={"shape": "hv"}, showlegend=False), 3, 1)
    fig.add_trace(_line(x, np.asarray(curve.mid, dtype=np.float64), "mid", "#8c959f"), 4, 1)
    for side, colour, marker in (("buy", BUY, "triangle-up"), ("sell", SELL, "triangle-down")):
        trace = _fill_trace(fills, side, colour, marker) if fills.num_rows else None
        if trace is not None:
            fig.add_trace(trace, 4, 1)
    fig.update_xaxes(type="date", showspikes=True, spikemode="across", spikethickness=1)
    fig.update_xaxes(title_text="time (UTC)", row=4, col=1)
    fig.update_layout(height=980, template="plotly_white", hovermode="closest",
                      margin={"l": 70, "r": 30, "t": 40, "b": 50},
                      legend={"orientation": "h", "x": 0, "y": -0.06})
    return _html(fig, "timeline")


def markouts_chart(markouts: dict[str, dict[str, float]]) -> str:
    """Average fill markout (bps) per horizon, one bar series per strategy."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for strategy, values in markouts.items():
        horizons = [k[:-4] for k in values if k.endswith("_bps")]
        fig.add_trace(go.Bar(
            x=horizons, y=[values[f"{h}_bps"] for h in horizons], name=strategy or "desk",
            customdata=[values.get(f"{h}_n", 0) for h in horizons],
            hovertemplate="%{x}: %{y:.3f} bps over %{customdata:,} fills<extra>"
                          f"{strategy}</extra>"))
    fig.update_layout(height=320, template="plotly_white", barmode="group",
                      yaxis_title="markout (bps, + is good for us)", xaxis_title="horizon",
                      margin={"l": 70, "r": 30, "t": 30, "b": 50})
    return _html(fig, "markouts")


def _html(fig: Any, div_id: str) -> str:
    return str(fig.to_html(include_plotlyjs=False, full_html=False, div_id=div_id,
                           config=CONFIG))
