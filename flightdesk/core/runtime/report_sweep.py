"""A parameter sweep's page, ``sweep.html`` (beside its ``sweep.json`` and ``sweep.md``).

``sweep.html`` is one self-contained page: a sortable table of every run (each linking
to its own ``run-<n>/report.html``) and, with plotly installed, a heatmap of a metric over
two parameters, with a menu to pick the metric. The two parameters are the ones the user
names (``backtest --heatmap X,Y``) or else the first two that take more than one value;
runs that differ only in other parameters are averaged into one cell (the chart says so).
A sweep of one parameter gets a line chart of the metric against it instead.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flightdesk.core.errors import ConfigError
from flightdesk.core.runtime.report_html import note, page, section, table

METRICS = ("pnl", "sharpe", "sortino", "max_drawdown", "trades", "fill_ratio", "fees",
           "events_per_s")
#: metrics where lower is better: their heatmap colours are reversed (green = low)
LOWER_IS_BETTER = frozenset({"max_drawdown", "fees"})
Row = Mapping[str, Any]


def heatmap_axes(choice: str | None, grid: Sequence[Mapping[str, Any]]) -> list[str]:
    """The parameters the sweep chart is drawn over: ``choice`` ("X,Y") checked against
    the grid's parameters, else the first two that vary (one when only one does)."""
    params = list(grid[0]) if grid else []
    if choice:
        axes = [a.strip() for a in choice.split(",")]
        unknown = [a for a in axes if a not in params]
        if len(axes) != 2 or unknown or axes[0] == axes[1]:
            raise ConfigError(f"--heatmap {choice!r} must name two different --param keys "
                              f"(this sweep has: {', '.join(params) or 'none'})")
        return axes
    return [p for p in params if len({repr(g[p]) for g in grid}) > 1][:2]


def write_sweep(out: Path, rows: Sequence[Row], params: Sequence[str],
                axes: Sequence[str]) -> None:
    """Write ``sweep.html`` into ``out`` (``sweep.json``/``sweep.md`` are the sweep's own,
    :func:`flightdesk.core.research.sweep.write_results`)."""
    (out / "sweep.html").write_text(sweep_html(rows, params, axes), encoding="utf-8")


def sweep_html(rows: Sequence[Row], params: Sequence[str], axes: Sequence[str]) -> str:
    cols = list(rows[0])
    links = {0: [f"{r['run']}/report.html" for r in rows]}
    runs = table(cols, [[r[c] for c in cols] for r in rows], links=links, table_id="sweep")
    head, chart = "", note("Install flightdesk[report] (plotly) for the sweep chart.")
    try:
        import plotly  # noqa: F401
    except ImportError:
        pass
    else:
        from flightdesk.core.runtime.report_plotly import plotly_js

        head, chart = plotly_js(), _chart(rows, params, axes)
    body = (f"<h1>Sweep over {html.escape(', '.join(params))}</h1>"
            + note(f"{len(rows)} runs. Click a column header to sort; a run's name opens "
                   "its own report.")
            + section("Runs", runs) + section("Metric by parameter", chart))
    return page("flightdesk sweep", body, head)


def _chart(rows: Sequence[Row], params: Sequence[str], axes: Sequence[str]) -> str:
    import plotly.graph_objects as go

    from flightdesk.core.runtime.report_plotly import CONFIG

    others = [p for p in params if p not in axes]
    metrics = [m for m in METRICS if m in rows[0]]
    if len(axes) == 2:
        xs, ys = _values(rows, axes[0]), _values(rows, axes[1])
        z = {m: [[_mean(rows, m, {axes[0]: x, axes[1]: y}) for x in xs] for y in ys]
             for m in metrics}
        fig = go.Figure(go.Heatmap(
            z=z[metrics[0]], x=[str(x) for x in xs], y=[str(y) for y in ys],
            colorscale="RdYlGn", reversescale=metrics[0] in LOWER_IS_BETTER,
            texttemplate="%{z:.4g}", colorbar={"title": metrics[0]},
            hovertemplate=f"{axes[0]}=%{{x}}<br>{axes[1]}=%{{y}}<br>%{{z:.6g}}<extra></extra>"))
        fig.update_xaxes(title_text=axes[0], type="category")
        fig.update_yaxes(title_text=axes[1], type="category")
        buttons = [{"label": m, "method": "restyle",
                    "args": [{"z": [z[m]], "colorbar.title.text": m,
                              "reversescale": m in LOWER_IS_BETTER}]} for m in metrics]
    else:
        values = _values(rows, axes[0]) if axes else []
        line = {m: [_mean(rows, m, {axes[0]: v}) for v in values] for m in metrics}
        fig = go.Figure(go.Scatter(x=[str(v) for v in values], y=line[metrics[0]],
                                   mode="lines+markers", name=metrics[0]))
        fig.update_xaxes(title_text=axes[0] if axes else "", type="category")
        buttons = [{"label": m, "method": "restyle", "args": [{"y": [line[m]], "name": m}]}
                   for m in metrics]
    title = f"mean over {', '.join(others)}" if others else ""
    fig.update_layout(height=560, template="plotly_white", title=title,
                      updatemenus=[{"buttons": buttons, "x": 1.0, "y": 1.12,
                                    "xanchor": "right", "showactive": True}])
    return str(fig.to_html(include_plotlyjs=False, full_html=False, div_id="sweep-chart",
                           config=CONFIG))


def _values(rows: Sequence[Row], param: str) -> list[Any]:
    """The distinct values of a parameter, sorted (numbers numerically)."""
    seen = list({repr(r[param]): r[param] for r in rows}.values())
    try:
        return sorted(seen)
    except TypeError:
        return sorted(seen, key=str)


def _mean(rows: Sequence[Row], metric: str, where: Mapping[str, Any]) -> float | None:
    vals = [float(r[metric]) for r in rows
            if all(r[k] == v for k, v in where.items())
            and isinstance(r[metric], (int, float)) and math.isfinite(r[metric])]
    return sum(vals) / len(vals) if vals else None
