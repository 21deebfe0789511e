"""``flightdesk status`` for people: the desk's status dict as a one-screen summary.

The status action answers ~200 lines of JSON (``--json`` prints them as they are). This
page keeps what an operator checks first — is every feed up, are the books alive, what
are the strategies doing, what do we hold and what did it make, is risk letting orders
through, how fast, and is anyone losing data — with rich tables. rich writes plain text
(no ANSI codes) when stdout is not a terminal; there the width is fixed so pipes and logs
get whole lines instead of wrapped cells.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from flightdesk.commands.formatting import Precision, plain

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = ["console", "render_status"]

#: the width used when stdout is not a terminal (no wrapping in pipes and files)
PIPE_WIDTH = 160


def console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr): styled on a terminal, plain text elsewhere."""
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal:
        out.width = PIPE_WIDTH
    return out


def render_status(out: Console, status: dict[str, Any],
                  positions: list[dict[str, Any]] | None, positions_error: str = "") -> None:
    """Print the summary of ``status``; ``positions`` are the positions snapshot's rows
    (None with ``positions_error`` when the desk would not give them)."""
    prec = Precision(status.get("instrument_rules"))
    for line in _header(status):
        out.print(line, markup=False)
    for title, table in (("Feeds", _feeds(status)), ("Books", _books(status, prec)),
                         ("Strategies", _strategies(status)),
                         ("Positions", _positions(positions, prec, positions_error)),
                         ("Subscribers", _subscribers(status))):
        out.print()
        out.print(f"[bold]{title}[/bold]")
        out.print(table if table.row_count else "  none")
    out.print()
    for line in _footer(status):
        out.print(line, markup=False)


def _table(*columns: str) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in columns:
        table.add_column(name, justify="left" if name in _LEFT else "right")
    return table


_LEFT = {"venue", "book", "name", "type", "state", "strategy", "symbol", "stream",
         "last error", "executor", "rules", "connected", "plane"}


def _row(table: Table, *cells: Any) -> None:
    from rich.text import Text

    table.add_row(*(Text("" if c is None else str(c)) for c in cells))  # never markup


def _header(s: dict[str, Any]) -> list[str]:
    mode = s.get("risk_mode") or {}
    risk = f"risk {mode.get('mode', '?')}" + (f" ({mode['reason']})" if mode.get("reason")
                                             else "")
    kill = "kill switch ON" if s.get("kill_switch") else "kill switch off"
    if s.get("kill_switch_restored"):
        kill += " (restored from the store)"
    store = s.get("store") or {}
    stored = ("store ok" if store.get("healthy", True) else
              f"store FAILING for {store.get('failing_s', 0):g}s: {store.get('last_error', '')}")
    gate = s.get("store_gate") or {}
    lines = [f"desk run {s.get('run_id', '?')}  |  up {_duration(s.get('uptime_s', 0))}  |  "
             f"flight {s.get('flight') or 'off'}",
             f"{risk}  |  {kill}  |  {stored}  |  {s.get('open_orders', 0)} open orders"]
    if gate.get("holding"):
        lines.append(f"new risk held: {gate.get('reason', '')}")
    return lines


def _feeds(s: dict[str, Any]) -> Table:
    table = _table("venue", "connected", "frames", "reconnects", "parse errors", "rules",
                   "executor", "last error")
    rules = s.get("instruments") or {}
    for name, v in (s.get("venues") or {}).items():
        feed, parser, task = v.get("feed") or {}, v.get("parser") or {}, v.get("task") or {}
        inst = rules.get(name) or {}
        error = (feed.get("last_error") or parser.get("last_error") or task.get("last_error")
                 or inst.get("fetch_error") or "")
        _row(table, name, "yes" if v.get("connected") else "NO", f"{feed.get('frames', 0):,}",
             feed.get("reconnects", 0), parser.get("errors", 0),
             f"{inst.get('instruments', 0)} ({inst.get('source') or 'none'})",
             v.get("executor", ""), error)
    return table


def _books(s: dict[str, Any], prec: Precision) -> Table:
    table = _table("book", "bid", "ask", "spread bps", "levels")
    for key, b in (s.get("books") or {}).items():
        venue, _, symbol = key.partition(":")
        bid, ask = float(b.get("bid", math.nan)), float(b.get("ask", math.nan))
        mid = (bid + ask) / 2
        spread = (ask - bid) / mid * 1e4 if mid > 0 else math.nan
        _row(table, key, prec.cell("bid", bid, venue, symbol),
             prec.cell("ask", ask, venue, symbol),
             plain(spread, 3) if math.isfinite(spread) else "", b.get("levels", 0))
    return table


def _strategies(s: dict[str, Any]) -> Table:
    table = _table("name", "type", "state", "batches", "signals", "errors")
    for st in s.get("strategies") or []:
        state = (f"quarantined: {st['quarantined']}" if st.get("quarantined")
                 else "enabled" if st.get("enabled") else "disabled")
        _row(table, st.get("name"), st.get("type"), state, f"{st.get('batches', 0):,}",
             f"{st.get('signals', 0):,}", st.get("errors", 0))
    return table


def _positions(rows: list[dict[str, Any]] | None, prec: Precision, error: str) -> Table:
    table = _table("strategy", "venue", "symbol", "qty", "avg price", "realized", "unrealized",
                   "fees")
    if rows is None:
        _row(table, f"unavailable: {error}", "", "", "", "", "", "", "")
        return table
    for r in rows:
        if not r.get("qty") and not r.get("realized_pnl"):
            continue  # never traded
        venue, symbol = r.get("venue", ""), r.get("symbol", "")
        _row(table, r.get("strategy") or "(desk)", venue, symbol,
             prec.cell("qty", r.get("qty"), venue, symbol),
             prec.cell("avg_price", r.get("avg_price"), venue, symbol),
             _money(r.get("realized_pnl")), _money(r.get("unrealized_pnl")),
             _money(r.get("fees")))
    return table


def _subscribers(s: dict[str, Any]) -> Table:
    table = _table("stream", "id", "queued", "delivered", "drops", "plane")
    for sub in s.get("subscribers") or []:
        _row(table, sub.get("stream"), sub.get("id"),
             f"{sub.get('queued', 0)}/{sub.get('maxlen', 0)}",
             f"{sub.get('delivered', 0):,}", f"{sub.get('drops', 0):,}",
             sub.get("plane", "engine"))
    return table


def _footer(s: dict[str, Any]) -> list[str]:
    pnl = s.get("pnl") or {}
    trading = s.get("trading") or {}
    lat = s.get("tick_to_trade_us") or {}
    subs = s.get("subscribers") or []
    store = s.get("store") or {}
    latency = (f"tick-to-trade p50 {plain(lat['p50'])} us, p99 {plain(lat['p99'])} us, "
               f"max {plain(lat['max'])} us over {lat['count']:,} orders"
               if lat.get("count") else "tick-to-trade: no orders yet")
    return [
        f"PnL: realized {_money(pnl.get('realized_pnl'))}, unrealized "
        f"{_money(pnl.get('unrealized_pnl'))}, total {_money(pnl.get('pnl'))}, "
        f"fees {_money(pnl.get('fees'))}",
        f"Trading: {trading.get('signals', 0):,} signals, {trading.get('orders', 0):,} orders, "
        f"{trading.get('fills', 0):,} fills, {trading.get('rejected', 0):,} rejected",
        f"Latency: {latency}",
        f"Drops: {sum(int(x.get('drops', 0)) for x in subs):,} subscriber batches, "
        f"{(s.get('engine') or {}).get('parse_errors', 0):,} parse errors, "
        f"{store.get('unwritten_rows', 0):,} store rows unwritten",
    ]


def _money(x: Any) -> str:
    if x is None or not isinstance(x, int | float) or not math.isfinite(x):
        return ""
    return f"{x:,.2f}"


def _duration(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s" if m else f"{seconds:.1f}s"
