"""Read and control a running desk: status, kill switch, strategies, snapshots.

A mixin of :class:`flightdesk.core.runtime.desk.Desk`; everything that reads engine state runs on
the engine thread through ``self.call`` so it sees a consistent picture.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from flightdesk.core import schemas
from flightdesk.core.trading.orders import order_row

if TYPE_CHECKING:
    from flightdesk.core.flight.tickets import StreamRequest
    from flightdesk.core.runtime.supervisor import FeedSupervisor


class DeskState:
    """Status, control and snapshots (see the module docstring)."""

    # set by Desk.__init__
    core: Any
    trader: Any
    broker: Any
    portfolio: Any
    risk: Any
    store: Any
    bus: Any
    flight: Any
    config: Any
    started_ns: int
    ids: Any
    recovered_fills: int
    engine_priority: dict[str, Any]
    feed_tasks: FeedSupervisor

    if TYPE_CHECKING:  # provided by Desk
        def call(self, fn: Any, timeout: float = 5.0) -> Any: ...

    def status(self) -> dict[str, Any]:
        out = self.call(self._status)
        plane = getattr(self.flight, "data_plane", None)
        if plane is not None:  # asked here, not on the engine thread: it is a Flight call
            stats = plane.stats()
            out["subscribers"] += [dict(s, plane="data")
                                   for s in stats.pop("subscribers", [])]
            out["data_plane"] = stats
        return out

    def _status(self) -> dict[str, Any]:
        core = self.core
        out: dict[str, Any] = {
            "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 3),
            "kill_switch": self.risk.killed,
            "flight": self.flight.uri if self.flight is not None else None,
            "flight_server": self.flight.stats() if self.flight is not None else {},
            "store": self.store.stats(),
            "subscribers": self.bus.stats(),
            "trading": dict(self.trader.counters),
            "tick_to_trade_us": latency_summary(self.trader.tick_to_trade_ns),
            "pnl": self.portfolio.totals(),
            "risk_mode": {"mode": self.risk.mode.value, "reason": self.risk.mode_reason},
            "open_orders": len(self.trader.broker.orders),
            "markouts_bps": self.trader.markouts.summary(),
            "run_id": self.ids.run,
            "recovered_fills": self.recovered_fills,
            "engine_priority": dict(self.engine_priority),
        }
        if core is None:
            return out
        out["engine"] = dict(core.counters)
        out["books_counters"] = {**core.books.counters,
                                 "level_updates": core.books.level_updates}
        out["venues"] = {
            name: {"connected": bool(v.feed and v.feed.connected),
                   "feed": v.feed.stats() if v.feed else {},
                   "task": self.feed_tasks.state(name),
                   "parser": {"frames": v.protocol.stats.frames,
                              "errors": v.protocol.stats.errors,
                              "last_error": v.protocol.stats.last_error}}
            for name, v in core.venues.items()}
        out["books"] = {f"{v}:{s}": _book_summary(b) for (v, s), b in core.books.books.items()}
        out["strategies"] = [slot.stats() for slot in core.slots]
        out["tickers_24h"] = [dataclasses.asdict(t) for t in core.ticker24.all()]
        return out

    def performance_row(self) -> dict[str, Any]:
        """One ``performance_metrics`` row: PnL and exposure now (engine thread)."""
        totals = self.portfolio.totals()
        positions = self.portfolio.positions.values()
        marks = [(p.qty, p.mark if math.isfinite(p.mark) else p.avg_price) for p in positions]
        return {"ts": time.time_ns(), "run_id": self.ids.run, **totals,
                "gross_exposure": sum(abs(q) * m for q, m in marks),
                "net_exposure": sum(q * m for q, m in marks),
                "positions": sum(1 for q, _ in marks if q),
                "orders": self.trader.counters["orders"], "fills": self.trader.counters["fills"]}

    def strategy_rows(self) -> list[dict[str, Any]]:
        now = time.time_ns()
        slots = self.core.slots if self.core is not None else []
        return [{"ts": now, "run_id": self.ids.run, "strategy": s.name, "enabled": s.enabled,
                 "quarantined": s.quarantined, "batches": s.batches, "signals": s.signals,
                 "state": json.dumps(s.strategy.config, default=str)} for s in slots]

    def run_row(self) -> dict[str, Any]:
        from flightdesk import __version__
        from flightdesk.core.storage.migrations import SCHEMA_VERSION

        return {"run_id": self.ids.run, "started": self.started_ns, "version": __version__,
                "schema_version": SCHEMA_VERSION,
                "config": json.dumps(self.config.to_dict(), default=str)}

    def kill(self, on: bool = True) -> dict[str, Any]:
        def flip() -> dict[str, Any]:
            cancelled = self.trader.kill(on)  # on: also cancels every open order
            self.core.flush() if self.core is not None else None
            return {"kill_switch": on, "open_orders_cancelled": cancelled}
        return self.call(flip)

    def strategies(self) -> list[dict[str, Any]]:
        return self.call(lambda: [slot.stats() for slot in self.core.slots]
                         if self.core is not None else [])

    def cancel_all(self) -> dict[str, Any]:
        """Cancel every open order."""
        def run() -> dict[str, Any]:
            n = self.trader.cancel_all("cancel-all requested")
            self.core.flush() if self.core is not None else None
            return {"open_orders_cancelled": n}
        return self.call(run)

    def flatten(self) -> dict[str, Any]:
        """Cancel open orders and close every position (reduce-only market orders, through
        the normal risk path); fills may follow after the broker's latency."""
        def run() -> dict[str, Any]:
            sent = self.trader.flatten()
            self.core.flush() if self.core is not None else None
            left = {f"{v}:{s}": p.qty for (v, s), p in self.portfolio.positions.items()
                    if abs(p.qty) > 1e-12}
            return {"orders_sent": sent, "open_positions": left}
        return self.call(run)

    def enable_strategy(self, name: str, enabled: bool) -> dict[str, Any]:
        """Switch one strategy on or off (a quarantined one stays quarantined)."""
        def run() -> dict[str, Any]:
            slots = {s.name: s for s in (self.core.slots if self.core is not None else [])}
            if name not in slots:
                from flightdesk.core.errors import TicketError

                raise TicketError(f"no strategy {name!r}; strategies are "
                                  f"{', '.join(slots) or 'none'}")
            slots[name].enabled = enabled
            self.trader.event("strategy", "", "", f"{name} {'on' if enabled else 'off'}")
            return dict(slots[name].stats())
        return self.call(run)

    def positions_table(self) -> pa.Table:
        def build() -> pa.Table:
            now = time.time_ns()
            rows = [p.row(now) for p in self.portfolio.positions.values()]
            return pa.Table.from_pylist(rows, schema=schemas.schema("positions"))
        return self.call(build)

    def snapshot(self, req: StreamRequest) -> pa.Table:
        """Current state for ``mode: snapshot`` tickets."""
        if req.stream == "positions":
            return self.positions_table()
        if req.stream == "orders":  # the open orders, each as its latest state
            return self.call(self._orders_snapshot)
        if req.stream == "quotes":
            return self.call(self._quotes_snapshot)
        if req.stream == "book":
            return self.call(lambda: self._book_snapshot(req.depth))
        from flightdesk.core.errors import TicketError

        raise TicketError(f"stream {req.stream!r} has no snapshot mode; snapshot streams are "
                          "positions, orders, quotes, book")

    def _orders_snapshot(self) -> pa.Table:
        rows = [order_row(s.order, s.status, s.order.ts, "", s.filled)
                for s in self.trader.broker.open_orders()]
        for seq, row in enumerate(rows, 1):
            row["seq"] = seq
        return pa.Table.from_pylist(rows, schema=schemas.schema("orders"))

    def _quotes_snapshot(self) -> pa.Table:
        rows = []
        for (venue, symbol), book in self.core.books.books.items():
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
        for (venue, symbol), book in self.core.books.books.items():
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


def _book_summary(book: Any) -> dict[str, Any]:
    bp, _, ap, _ = book.top()
    return {"bid": bp, "ask": ap, "levels": len(book), "last_id": book.last_id}
