"""The backtest report: one self-contained HTML page a reader can open offline.

With plotly installed (``pip install 'flightdesk[report]'``) the charts are interactive
Plotly figures on a shared UTC time axis (:mod:`.report_plotly`); without it they are the
plain inline SVG of :mod:`.report_svg`. Everything else is the same HTML either way:
the key figures with how Sharpe/Sortino were measured (:mod:`.report_metrics`),
markouts, a per-strategy table, risk and engine counters, the orders and fills (the first
:data:`MAX_ROWS` of each; all of them are in the Parquet files beside the report) and the
run's configuration with its secrets masked. Tables sort when a header is clicked.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from flightdesk.core.runtime.report_html import (
    kv_table,
    note,
    page,
    section,
    table,
    utc,
)
from flightdesk.core.runtime.report_metrics import CONVENTION, MIN_PERIODS

MAX_ROWS = 1_000
ORDER_COLUMNS = ("order_id", "ts", "strategy", "venue", "symbol", "side", "order_type", "qty",
                 "limit_px", "filled_qty", "status", "reason")
FILL_COLUMNS = ("fill_id", "ts", "strategy", "venue", "symbol", "side", "price", "qty", "fee",
                "liquidity", "order_id")
KEY_FIGURES = (("pnl", "PnL"), ("realized_pnl", "realized PnL"),
               ("unrealized_pnl", "unrealized PnL"), ("fees", "fees"), ("sharpe", "Sharpe"),
               ("sortino", "Sortino"), ("max_drawdown", "max drawdown"),
               ("orders", "orders"), ("rejected", "rejected orders"), ("trades", "fills"),
               ("fill_ratio", "fill ratio"), ("events", "events replayed"),
               ("data_span_s", "data span (s)"), ("wall_s", "wall time (s)"),
               ("events_per_s", "events/s"))


def plotly_available() -> bool:
    try:
        import plotly  # noqa: F401
    except ImportError:
        return False
    return True


def write_report(path: Path, summary: Mapping[str, Any], curve: Any,
                 tables: Mapping[str, pa.Table], config: Mapping[str, Any] | None = None,
                 interactive: bool | None = None) -> str:
    """Write the HTML report of one backtest; which kind it wrote, "plotly" or "plain"
    (``interactive=None``: Plotly when it is installed)."""
    fills = tables["fills"]
    interactive = plotly_available() if interactive is None else interactive
    if interactive:
        from flightdesk.core.runtime import report_plotly as charts

        head, timeline = charts.plotly_js(), charts.timeline(curve, fills)
        markouts = charts.markouts_chart(summary["markouts"]) if summary["markouts"] else ""
    else:
        from flightdesk.core.runtime import report_svg

        head, timeline, markouts = "", report_svg.charts(curve, fills), ""
    strategy = str(summary.get("strategy"))
    body = "".join((
        f"<h1>Backtest: {html.escape(strategy)}</h1>", _span(curve, fills),
        section("Key figures", kv_table(_figures(summary), "figures"), note(CONVENTION)),
        section("Equity, drawdown, position and fills", timeline),
        section("Markouts", markouts, _markouts(summary["markouts"])),
        section("Per strategy", _per_strategy(tables)),
        section("Risk rejections and engine counters",
                kv_table({**summary.get("risk_rejections", {}), **summary.get("engine", {})})),
        section("Orders", _rows(_orders(tables["orders"]), ORDER_COLUMNS, "orders.parquet",
                                "orders")),
        section("Fills", _rows(fills, FILL_COLUMNS, "fills.parquet", "fills")),
        section("Configuration", _config(config or {}, strategy))))
    path.write_text(page(f"flightdesk backtest: {strategy}", body, head), encoding="utf-8")
    return "plotly" if interactive else "plain"


def _span(curve: Any, fills: pa.Table) -> str:
    if not curve.ts:
        return note("No market data was replayed.")
    symbols = sorted({f"{v}:{s}" for v, s in zip(fills.column("venue").to_pylist(),
                                                  fills.column("symbol").to_pylist(),
                                                  strict=True)}) if fills.num_rows else []
    traded = f"; traded {', '.join(symbols)}" if symbols else "; no fills"
    return note(f"Data from {utc(curve.ts[0])} to {utc(curve.ts[-1])} UTC "
                f"({(curve.ts[-1] - curve.ts[0]) / 1e9:,.1f} s){traded}.")


def _figures(summary: Mapping[str, Any]) -> dict[str, Any]:
    out = {label: summary.get(key) for key, label in KEY_FIGURES if key in summary}
    periods, interval = summary.get("ratio_periods"), summary.get("ratio_interval_s")
    if periods is not None and interval:
        enough = "" if periods >= MIN_PERIODS else f", n/a below {MIN_PERIODS}"
        out["ratio intervals"] = f"{periods:,} of {interval:,} s{enough}"
    return out


def _markouts(markouts: Mapping[str, Mapping[str, float]]) -> str:
    if not markouts:
        return note("No fills, so no markouts.")
    horizons = sorted({k[:-4] for m in markouts.values() for k in m if k.endswith("_bps")},
                      key=lambda h: float(h.rstrip("s")))
    cols = ["strategy"] + [f"{h} {u}" for h in horizons for u in ("bps", "fills")]
    rows = [[s or "(desk)"] + [m.get(f"{h}_{u}") for h in horizons for u in ("bps", "n")]
            for s, m in markouts.items()]
    return (note("Mid-price move after each fill at each horizon, in bps of the fill price, "
                 "signed so that positive is good for us; averaged over the fills that "
                 "reached the horizon before the data ended.") + table(cols, rows, signed=True))


def _per_strategy(tables: Mapping[str, pa.Table]) -> str:
    positions, fills, orders = tables["positions"], tables["fills"], tables["orders"]
    if positions.num_rows == 0:
        return note("No positions were taken.")
    keys = ["strategy", "venue", "symbol"]
    last = positions.sort_by("seq").group_by(keys, use_threads=False).aggregate(
        [(c, "last") for c in ("qty", "avg_price", "realized_pnl", "unrealized_pnl", "fees")])
    counts: dict[tuple[str, str, str], list[float]] = {}
    if fills.num_rows:
        fills = fills.append_column("notional", pc.multiply(fills["price"], fills["qty"]))
        for r in fills.group_by(keys).aggregate([("fill_id", "count"),
                                                 ("notional", "sum")]).to_pylist():
            counts[(r["strategy"], r["venue"], r["symbol"])] = [r["fill_id_count"],
                                                                 r["notional_sum"]]
    n_orders = {(r["strategy"], r["venue"], r["symbol"]): r["order_id_count_distinct"]
                for r in orders.group_by(keys).aggregate(
                    [("order_id", "count_distinct")]).to_pylist()} if orders.num_rows else {}
    rows = []
    for r in last.to_pylist():
        key = (r["strategy"], r["venue"], r["symbol"])
        rows.append([r["strategy"] or "(desk)", r["venue"], r["symbol"], r["qty_last"],
                     r["avg_price_last"], r["realized_pnl_last"], r["unrealized_pnl_last"],
                     r["fees_last"], n_orders.get(key, 0), *counts.get(key, [0, 0.0])])
    cols = ("strategy", "venue", "symbol", "position", "avg price", "realized PnL",
            "unrealized PnL", "fees", "orders", "fills", "notional traded")
    return (note("Final position per strategy and instrument; (desk) is the desk's own "
                 "position, the sum of every strategy's.") + table(cols, rows, signed=True))


def _orders(orders: pa.Table) -> pa.Table:
    """One row per order: its submission time and fields, and its last status."""
    firsts = ("ts", "strategy", "venue", "symbol", "side", "order_type", "qty", "limit_px")
    agg = orders.sort_by("seq").group_by("order_id", use_threads=False).aggregate(
        [(c, "first") for c in firsts] + [(c, "last") for c in ("filled_qty", "status",
                                                                 "reason")])
    return agg.rename_columns([c.rsplit("_", 1)[0] if c.endswith(("_first", "_last")) else c
                               for c in agg.column_names])


def _rows(t: pa.Table, columns: tuple[str, ...], parquet: str, label: str) -> str:
    if t.num_rows == 0:
        return note(f"No {label}.")
    shown = t.slice(0, MAX_ROWS)
    data = {c: shown.column(c).to_pylist() for c in columns}
    data["ts"] = [utc(v) for v in data["ts"]]
    rows = list(zip(*(data[c] for c in columns), strict=True))
    cap = (f"The first {MAX_ROWS:,} of {t.num_rows:,} {label}; all of them are in "
           f"{parquet}. " if t.num_rows > MAX_ROWS else f"{t.num_rows:,} {label}. ")
    return (note(cap + "Times are UTC.")
            + f'<div class="scroll">{table(columns, rows, table_id=label)}</div>')


def _config(config: Mapping[str, Any], strategy: str) -> str:
    if not config:
        return note("No configuration was recorded.")
    params = config.get("strategies", {}).get(strategy, {})
    return (f"<h3>Strategy {html.escape(strategy)}</h3>" + kv_table(params)
            + "<details><summary>The whole configuration (JSON, secrets masked)</summary>"
            f"<pre>{html.escape(json.dumps(config, indent=2, default=str))}</pre></details>")
