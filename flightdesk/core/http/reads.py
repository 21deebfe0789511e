"""The JSON reads (GET): the same data a Flight client gets, for a browser or curl.

Each handler is one Flight read in another shape: ``/symbols/{venue}`` is the ``quotes``
snapshot of that venue, ``/trades/{symbol}`` the ``trades`` history newest first (the
Parquet history, ``[store] history``), ``/ohlcv/{symbol}`` the ``bars`` history of one
interval, ``/positions`` the ``positions`` snapshot, ``/orders`` the open orders (snapshot)
and the latest order updates (store history), ``/fills`` the store's fills newest first and
``/status`` the ``status`` action. ``/summary`` adds counts and time spans per venue from
the store.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow.compute as pc

from flightdesk.core.errors import ConfigError
from flightdesk.core.flight.tickets import StreamRequest
from flightdesk.core.http.auth import ApiError
from flightdesk.core.http.context import HttpContext
from flightdesk.core.http.jsonable import rows
from flightdesk.core.http.routes import END, START, SYMBOL_PATH, VENUE, Param, Route, limit
from flightdesk.core.market.bars import interval_ns


def _one(value: str | None) -> tuple[str, ...]:
    return (value,) if value else ()


def symbols(ctx: HttpContext, a: dict[str, Any]) -> dict[str, Any]:
    venue = a["venue"]
    known = sorted(ctx.desk.config["venues"])
    if venue not in known:
        raise ApiError(404, f"no venue {venue!r}; venues are {', '.join(known) or 'none'}")
    table = ctx.desk.snapshot(StreamRequest("quotes", mode="snapshot"))
    table = table.filter(pc.equal(table.column("venue"), venue)).sort_by("symbol")
    return {"venue": venue, "symbols": table.column("symbol").to_pylist(),
            "quotes": rows(table)}


def trades(ctx: HttpContext, a: dict[str, Any]) -> dict[str, Any]:
    req = StreamRequest("trades", mode="history", symbols=(a["symbol"],),
                        venues=_one(a["venue"]), start=a["start"], end=a["end"],
                        limit=a["limit"], order="newest")
    return {"symbol": a["symbol"], "venue": a["venue"], "order": "newest",
            "trades": rows(ctx.history(req))}


def ohlcv(ctx: HttpContext, a: dict[str, Any]) -> dict[str, Any]:
    """The newest ``limit`` closed bars of one interval, oldest first (chart order)."""
    try:
        interval_ns(a["interval"])
    except ConfigError as exc:
        raise ApiError(400, str(exc)) from None
    req = StreamRequest("bars", mode="history", symbols=(a["symbol"],),
                        venues=_one(a["venue"]), start=a["start"], end=a["end"],
                        order="newest")
    table = ctx.history(req)
    table = table.filter(pc.equal(table.column("interval"), a["interval"]))
    table = table.slice(0, a["limit"])
    return {"symbol": a["symbol"], "venue": a["venue"], "interval": a["interval"],
            "bars": rows(table)[::-1]}


_FILLS_BY_VENUE = ("SELECT venue, COUNT(*) AS fills, SUM(qty) AS volume, "
                   "SUM(qty * price) AS notional, SUM(fee) AS fees, MIN(ts) AS first_ts, "
                   "MAX(ts) AS last_ts FROM fills GROUP BY venue")
_ORDERS_BY_VENUE = ("SELECT venue, COUNT(DISTINCT order_id) AS orders, MIN(ts) AS first_ts, "
                    "MAX(ts) AS last_ts FROM orders GROUP BY venue")


def summary(ctx: HttpContext, a: dict[str, Any]) -> dict[str, Any]:
    """Counts, time spans and per-venue statistics of this desk's store and feeds."""
    status = ctx.desk.status()
    with ctx.data_gate:
        fills = ctx.desk.store.query(_FILLS_BY_VENUE).to_pylist()
        orders = ctx.desk.store.query(_ORDERS_BY_VENUE).to_pylist()
    venues: dict[str, dict[str, Any]] = {}
    for name, v in status["venues"].items():
        venues[name] = {"connected": v["connected"], "frames": v["parser"]["frames"],
                        "parse_errors": v["parser"]["errors"], "instruments": [],
                        "orders": 0, "fills": 0, "volume": 0.0, "notional": 0.0,
                        "fees": 0.0, "trades_24h": 0, "volume_24h": 0.0}
    for key in status["books"]:
        venue, symbol = key.split(":", 1)
        venues.setdefault(venue, {}).setdefault("instruments", []).append(symbol)
    for row in orders:
        venues.setdefault(row["venue"], {}).update(orders=int(row["orders"]))
    for row in fills:
        venues.setdefault(row["venue"], {}).update(
            fills=int(row["fills"]), volume=float(row["volume"] or 0),
            notional=float(row["notional"] or 0), fees=float(row["fees"] or 0))
    for t in status["tickers_24h"]:
        entry = venues.setdefault(t["venue"], {})
        entry["trades_24h"] = entry.get("trades_24h", 0) + int(t.get("trades", 0))
        entry["volume_24h"] = entry.get("volume_24h", 0.0) + float(t.get("volume", 0.0))
    for entry in venues.values():
        entry["instruments"] = sorted(entry.get("instruments", []))
    spans = [(r["first_ts"], r["last_ts"]) for r in (*orders, *fills)
             if r["first_ts"] is not None]
    return {
        "uptime_s": status["uptime_s"], "run_id": status["run_id"],
        "kill_switch": status["kill_switch"], "risk_mode": status["risk_mode"],
        "pnl": status["pnl"],
        "counts": {"orders": sum(int(r["orders"]) for r in orders),
                   "fills": sum(int(r["fills"]) for r in fills),
                   "open_orders": status["open_orders"], "instruments": len(status["books"]),
                   "strategies": len(status["strategies"])},
        "time_span": {"first_ts": min((s[0] for s in spans), default=None),
                      "last_ts": max((s[1] for s in spans), default=None)},
        "venues": venues}


def positions(ctx: HttpContext, a: dict[str, Any]) -> dict[str, Any]:
    """Every position row (each strategy's, then the desk's with strategy ``""``) and the
    PnL summed per strategy."""
    table = ctx.desk.positions_table()
    pnl: dict[str, dict[str, float]] = defaultdict(
        lambda: {"realized_pnl": 0.0, "unrealized_pnl": 0.0, "fees": 0.0, "pnl": 0.0})
    out = rows(table)
    for row in out:
        entry = pnl[row["strategy"] or "desk"]
        for key in ("realized_pnl", "unrealized_pnl", "fees"):
            entry[key] += row[key] or 0.0
        entry["pnl"] = entry["realized_pnl"] + entry["unrealized_pnl"]
    return {"ts": out[0]["ts"] if out else None, "positions": out, "pnl": dict(pnl)}


def orders(ctx: HttpContext, a: dict[str, Any]) -> dict[str, Any]:
    open_ = ctx.desk.snapshot(StreamRequest("orders", mode="snapshot"))
    recent = ctx.history(StreamRequest("orders", mode="history", limit=a["limit"],
                                       order="newest"))
    return {"open": rows(open_), "recent": rows(recent)}


def fills(ctx: HttpContext, a: dict[str, Any]) -> dict[str, Any]:
    req = StreamRequest("fills", mode="history", symbols=_one(a["symbol"]),
                        venues=_one(a["venue"]), start=a["start"], end=a["end"],
                        limit=a["limit"], order="newest")
    return {"order": "newest", "fills": rows(ctx.history(req))}


def status(ctx: HttpContext, a: dict[str, Any]) -> dict[str, Any]:
    out = ctx.desk.status()
    out["http"] = ctx.stats()
    out["risk_limits"] = dict(ctx.desk.config["risk"])  # limits only: no secret lives there
    return out


def whoami(ctx: HttpContext, a: dict[str, Any]) -> dict[str, Any]:
    """The caller's role (the dashboard asks before offering control it would be refused)."""
    return {"role": a["role"].name.lower(), "tokens": ctx.auth.enabled}


def strategies(ctx: HttpContext, a: dict[str, Any]) -> Any:
    return ctx.desk.strategies()


READ_ROUTES = (
    Route("GET", "/symbols/{venue}", "the venue's instruments with their top of book",
          symbols, params=(Param("venue", str, "a configured venue", where="path"),)),
    Route("GET", "/trades/{symbol}", "trades of one instrument from the history, newest first",
          trades, params=(SYMBOL_PATH, VENUE, limit(100), START, END)),
    Route("GET", "/ohlcv/{symbol}", "closed OHLCV bars of one interval, oldest first",
          ohlcv, params=(SYMBOL_PATH, Param("interval", str, "bar interval: 1s, 1m, 1h, 1d",
                                            default="1m"),
                         VENUE, limit(500), START, END)),
    Route("GET", "/summary", "counts, time span and per-venue statistics", summary),
    Route("GET", "/positions", "positions per strategy and for the desk, PnL per strategy",
          positions),
    Route("GET", "/orders", "open orders and the newest order updates", orders,
          params=(limit(100),)),
    Route("GET", "/fills", "fills from the store, newest first", fills,
          params=(Param("symbol", str, "only this instrument"), VENUE, limit(100), START,
                  END)),
    Route("GET", "/status", "desk status: feeds, books, counters, subscribers and drops",
          status),
    Route("GET", "/strategies", "the strategies and their state", strategies),
    Route("GET", "/whoami", "the role of the caller's token (read or trade)", whoami),
)
