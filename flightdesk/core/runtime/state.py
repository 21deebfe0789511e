"""Read and control a desk's runtime: status, kill switch, strategies, snapshots.

Everything here reads or changes engine state, so the desk runs it on the engine thread
(``Desk.call``) and it sees a consistent picture.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from flightdesk.core import schemas
from flightdesk.core.errors import TicketError
from flightdesk.core.market.batcher import TickerBuffer
from flightdesk.core.market.book import L2Book
from flightdesk.core.market.events import TickerMsg
from flightdesk.core.runtime.executors import VenueExecutors
from flightdesk.core.runtime.redact import redact_config
from flightdesk.core.trading.orders import order_row

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from flightdesk.core.flight.tickets import StreamRequest
    from flightdesk.core.runtime.compose import Runtime
    from flightdesk.core.runtime.supervisor import FeedSupervisor
    from flightdesk.core.storage.recovery import KillState


class DeskState:
    """Status, control and snapshots over a :class:`Runtime` (engine thread only; the desk
    calls these through its ``call``)."""

    def __init__(self, rt: Runtime, started_ns: int, feed_tasks: FeedSupervisor,
                 executors: VenueExecutors | None = None) -> None:
        self.rt = rt
        self.executors = executors or VenueExecutors(rt, rt.config.data_dir)
        self.feed_tasks = feed_tasks
        self.started_ns = started_ns
        self.recovered_fills = 0
        self.engine_priority: dict[str, Any] = {"wanted": 0, "error": ""}
        #: when the kill switch restored from the store was switched on (0: not restored)
        self.kill_restored_ts = 0

    def status(self) -> dict[str, Any]:
        rt, core = self.rt, self.rt.engine
        trader = rt.trader
        return {
            "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 3),
            "kill_switch": rt.risk.killed,
            "kill_switch_restored": bool(self.kill_restored_ts and rt.risk.killed),
            "instruments": rt.instruments.summary(),
            # tick and lot steps: `flightdesk tail` prints prices at the venue's precision
            "instrument_rules": {f"{i.venue}:{i.symbol}": i.rules() for i in rt.instruments},
            "store": rt.store.stats(),
            "store_gate": rt.store_gate.stats(),
            "subscribers": rt.bus.stats(),
            "trading": dict(trader.counters),
            "tick_to_trade_us": latency_summary(trader.tick_to_trade_ns),
            "pnl": rt.portfolio.totals(),
            "risk_mode": {"mode": rt.risk.mode.value, "reason": rt.risk.mode_reason},
            "open_orders": len(trader.broker.orders),
            "markouts_bps": trader.markouts.summary(),
            "run_id": rt.ids.run,
            "recovered_fills": self.recovered_fills,
            "engine_priority": dict(self.engine_priority),
            "engine": dict(core.counters),
            "books_counters": {**core.books.counters, "level_updates": core.books.level_updates},
            "venues": {
                name: {"connected": bool(v.feed and v.feed.connected),
                       "feed": v.feed.stats() if v.feed else {},
                       "task": self.feed_tasks.state(name),
                       "parser": {"frames": v.protocol.stats.frames,
                                  "errors": v.protocol.stats.errors,
                                  "last_error": v.protocol.stats.last_error},
                       **self.executors.describe(v)}
                for name, v in core.venues.items()},
            "books": {f"{v}:{s}": _book_summary(b) for (v, s), b in core.books.books.items()},
            "strategies": [slot.stats() for slot in core.slots],
            "tickers_24h": [dataclasses.asdict(t) for t in core.ticker24.all()],
        }

    def performance_row(self) -> dict[str, Any]:
        """One ``performance_metrics`` row: PnL and exposure now."""
        rt = self.rt
        totals = rt.portfolio.totals()
        positions = rt.portfolio.positions.values()
        marks = [(p.qty, p.mark if math.isfinite(p.mark) else p.avg_price) for p in positions]
        return {"ts": time.time_ns(), "run_id": rt.ids.run, **totals,
                "gross_exposure": sum(abs(q) * m for q, m in marks),
                "net_exposure": sum(q * m for q, m in marks),
                "positions": sum(1 for q, _ in marks if q),
                "orders": rt.trader.counters["orders"], "fills": rt.trader.counters["fills"]}

    def strategy_rows(self) -> list[dict[str, Any]]:
        now = time.time_ns()
        return [{"ts": now, "run_id": self.rt.ids.run, "strategy": s.name,
                 "enabled": s.enabled, "quarantined": s.quarantined, "batches": s.batches,
                 "signals": s.signals, "state": json.dumps(s.strategy.config, default=str)}
                for s in self.rt.engine.slots]

    def run_row(self) -> dict[str, Any]:
        from flightdesk import __version__
        from flightdesk.core.storage.migrations import SCHEMA_VERSION

        return {"run_id": self.rt.ids.run, "started": self.started_ns, "version": __version__,
                "schema_version": SCHEMA_VERSION,
                "config": json.dumps(redact_config(self.rt.config.to_dict()), default=str)}

    def readiness(self) -> dict[str, Any]:
        """``{"ready": bool, "feeds": {...}, "books": {...}, "store": bool}``: every feed
        connected, every configured book synced, no feed task down (waiting to be
        restarted) and the store not holding new risk (it cannot commit, or it is backed
        up); when not ready, ``reason`` says why."""
        core = self.rt.engine
        feeds = {name: bool(v.feed is None or v.feed.connected)
                 for name, v in core.venues.items()}
        books = {f"{name}:{sym}": core.book(name, sym) is not None
                 for name, v in core.venues.items() for sym in v.symbols}
        down = self.feed_tasks.down()
        gate = self.rt.store_gate
        out: dict[str, Any] = {"ready": (all(feeds.values()) and all(books.values())
                                         and not down and not gate.holding),
                               "feeds": feeds, "books": books, "store": not gate.holding}
        reasons = [f"feed task {n} is down ({why})" for n, why in down.items()]
        if gate.holding:
            reasons.append(f"new risk halted: {gate.reason}")
        if reasons:
            out["reason"] = "; ".join(reasons)
        return out

    def gauges(self) -> dict[str, Any]:
        """What the metrics report (read from the collector's thread: plain reads)."""
        rt, core = self.rt, self.rt.engine
        return {"pnl": rt.portfolio.totals(),
                "positions": {k: p.qty for k, p in list(rt.portfolio.positions.items())},
                "subscribers": rt.bus.stats(),
                "engine": dict(core.counters), "books": dict(core.books.counters),
                "reconnects": {name: (v.feed.stats() if v.feed is not None else {}).get(
                    "reconnects", 0) for name, v in list(core.venues.items())}}

    # -- control ------------------------------------------------------------------------
    def restore_kill_switch(self, last: KillState | None) -> None:
        """At start-up: the kill switch as the store last recorded it (on stays on)."""
        if last is None or not last.on:
            return
        self.rt.risk.killed = True
        self.kill_restored_ts = last.ts or 1
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(last.ts / 1e9))
        logger.warning("kill switch is ON, as recorded in the store (switched on %s): no "
                       "order will be placed until `flightdesk kill --off`", when)

    def kill(self, on: bool = True) -> dict[str, Any]:
        cancelled = self.rt.trader.kill(on)  # on: also cancels every open order
        self.rt.engine.flush()
        return {"kill_switch": on, "open_orders_cancelled": cancelled}

    def strategies(self) -> list[dict[str, Any]]:
        return [slot.stats() for slot in self.rt.engine.slots]

    def cancel_all(self) -> dict[str, Any]:
        """Cancel every open order."""
        n = self.rt.trader.cancel_all("cancel-all requested")
        self.rt.engine.flush()
        return {"open_orders_cancelled": n}

    def cancel_order(self, order_id: str) -> dict[str, Any]:
        """Cancel one open order (the HTTP dashboard's cancel button)."""
        cancelled = self.rt.trader.cancel(order_id)
        self.rt.engine.flush()
        return {"order_id": order_id, "cancelled": cancelled}

    def flatten(self) -> dict[str, Any]:
        """Cancel open orders and close every position (reduce-only market orders, through
        the normal risk path); fills may follow after the broker's latency."""
        sent = self.rt.trader.flatten()
        self.rt.engine.flush()
        left = {f"{v}:{s}": p.qty for (v, s), p in self.rt.portfolio.positions.items()
                if abs(p.qty) > 1e-12}
        return {"orders_sent": sent, "open_positions": left}

    def enable_strategy(self, name: str, enabled: bool) -> dict[str, Any]:
        """Switch one strategy on or off (a quarantined one stays quarantined)."""
        slots = self.rt.engine.slots.by_name()
        if name not in slots:
            raise TicketError(f"no strategy {name!r}; strategies are "
                              f"{', '.join(slots) or 'none'}")
        slots[name].enabled = enabled
        self.rt.trader.event("strategy", "", "", f"{name} {'on' if enabled else 'off'}")
        return dict(slots[name].stats())

    # -- snapshots ----------------------------------------------------------------------
    def positions_table(self) -> pa.Table:
        now = time.time_ns()
        rows = self.rt.portfolio.rows(now)  # each strategy's own rows, then the desk's
        return pa.Table.from_pylist(rows, schema=schemas.schema("positions"))

    def snapshot(self, req: StreamRequest) -> pa.Table:
        """Current state for ``mode: snapshot`` tickets."""
        if req.stream == "positions":
            return self.positions_table()
        if req.stream == "orders":  # the open orders, each as its latest state
            return self._orders_snapshot()
        if req.stream == "quotes":
            return self._quotes_snapshot()
        if req.stream == "book":
            return self._book_snapshot(req.depth)
        if req.stream == "tickers":
            return self._tickers_snapshot()
        raise TicketError(f"stream {req.stream!r} has no snapshot mode; snapshot streams are "
                          "positions, orders, quotes, book, tickers")

    def _tickers_snapshot(self) -> pa.Table:
        """One row per instrument: the venue's last ticker (else the desk's top of book)
        and the rolling 24 h statistics of its trades."""
        core = self.rt.engine
        buffer = TickerBuffer()
        for (venue, symbol), book in sorted(core.books.books.items()):
            t = core.tickers.get((venue, symbol))
            if t is None:
                bp, bq, ap, aq = book.top()
                t = TickerMsg(venue, symbol, book.ts_event, time.time_ns(), repr(bp),
                              repr(bq), repr(ap), repr(aq), book.last_id)
            buffer.add(t)
        batch = buffer.take(core.ticker24.get)
        return pa.Table.from_batches([batch] if batch is not None else [],
                                     schema=schemas.schema("tickers"))

    def _orders_snapshot(self) -> pa.Table:
        rows = [order_row(s.order, s.status, s.order.ts, "", s.filled)
                for s in self.rt.trader.broker.open_orders()]
        for seq, row in enumerate(rows, 1):
            row["seq"] = seq
        return pa.Table.from_pylist(rows, schema=schemas.schema("orders"))

    def _quotes_snapshot(self) -> pa.Table:
        rows = []
        for (venue, symbol), book in self.rt.engine.books.books.items():
            bp, bq, ap, aq = book.top()
            rows.append({"ts_event": book.ts_event, "ts_recv": time.time_ns(), "seq": 0,
                         "venue": venue, "symbol": symbol, "bid_px": bp, "bid_qty": bq,
                         "ask_px": ap, "ask_qty": aq, "mid": (bp + ap) / 2,
                         "spread_bps": (ap - bp) / ((bp + ap) / 2) * 1e4 if bp == bp else math.nan,
                         "imbalance": (bq - aq) / (bq + aq) if bq == bq else math.nan,
                         "depth_ratio": math.nan, "microprice": math.nan})
        return pa.Table.from_pylist(rows, schema=schemas.schema("quotes"))

    def _book_snapshot(self, depth: int) -> pa.Table:
        rows = []
        seq = 0
        for (venue, symbol), book in self.rt.engine.books.books.items():
            for side, levels in (("bid", book.bid_levels(depth)), ("ask", book.ask_levels(depth))):
                for lv in levels:
                    seq += 1
                    rows.append({"ts_event": book.ts_event, "ts_recv": time.time_ns(),
                                 "seq": seq, "venue": venue, "symbol": symbol, "side": side,
                                 "price": float(lv[0]), "qty": float(lv[1]),
                                 "is_snapshot": True})
        return pa.Table.from_pylist(rows, schema=schemas.schema("book"))


def latency_summary(samples_ns: Any) -> dict[str, float]:
    if not samples_ns:
        return {"count": 0}
    arr = np.fromiter(samples_ns, dtype=np.float64, count=len(samples_ns)) / 1e3
    return {"count": len(samples_ns), "p50": round(float(np.percentile(arr, 50)), 1),
            "p99": round(float(np.percentile(arr, 99)), 1),
            "max": round(float(arr.max()), 1)}


def _book_summary(book: L2Book) -> dict[str, Any]:
    bp, _, ap, _ = book.top()
    return {"bid": bp, "ask": ap, "levels": len(book), "last_id": book.last_id}
