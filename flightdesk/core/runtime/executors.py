"""The desk's venue executors: built once their venues have started, stopped at shutdown.

For each venue in ``Runtime.executor_tables`` (venues whose executor is not the paper
broker), the registered factory is called with an :class:`ExecutorContext`, the executor
is started (user stream, reconciliation with the venue) and attached to the trader's
:class:`ExecutorRouter` — all before any strategy runs, so no order goes out before the
desk knows what the venue holds.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flightdesk.core.market.venue import Venue
from flightdesk.core.runtime.compose import Runtime
from flightdesk.core.trading.executor import PAPER, ExecutorContext, ExecutorRouter
from flightdesk.core.trading.orders import OrderStatus

logger = logging.getLogger(__name__)

_CHUNK = 500  # order ids per store query (SQLite allows 999 parameters by default)


class VenueExecutors:
    """The started venue executors of one desk."""

    def __init__(self, rt: Runtime, data_dir: Path) -> None:
        self.rt = rt
        self.data_dir = data_dir
        self.executors: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken = False

    async def start(self, venues: list[Venue]) -> None:
        rt = self.rt
        if not rt.executor_tables:
            return
        router = rt.trader.broker
        assert isinstance(router, ExecutorRouter)
        self._loop = asyncio.get_running_loop()
        by_name = {v.name: v for v in venues}
        for name, table in rt.executor_tables.items():
            factory = rt.registry.executors[table["type"]]
            venue = by_name[name]
            ctx = ExecutorContext(
                venue=name, config=table, broker=rt.config["broker"], ids=rt.ids,
                books=rt.engine.books.synced, position=rt.portfolio.held,
                report=rt.trader.report, event=rt.trader.event, data_dir=self.data_dir,
                clock=rt.clock, venue_info=venue.info, symbols=tuple(venue.symbols),
                stored_fills=self._stored_fills,
                stored_final=self._stored_final, wake=self._wake)
            executor = factory(ctx)
            await executor.start()
            router.attach(name, executor)
            self.executors[name] = executor
            logger.info("venue %s trades through executor %s (%s)", name, table["type"],
                        _describe(executor))
            # before any strategy runs: what real orders will go where, under which limits
            risk = rt.config["risk"]
            print(f"LIVE: venue {name} -> executor {table['type']} ({_describe(executor)}); "
                  f"limits: max_order_qty={risk['max_order_qty']:g} "
                  f"max_position={risk['max_position']:g} "
                  f"max_notional={risk['max_notional']:g}", file=sys.stderr, flush=True)

    def _wake(self) -> None:
        """From any thread: poll the executors and flush on the engine's loop, once for
        however many wakes arrive before it runs."""
        if self._woken or self._loop is None:
            return
        self._woken = True
        self._loop.call_soon_threadsafe(self._poll)

    def _poll(self) -> None:
        self._woken = False
        trader = self.rt.trader
        if trader.broker.has_pending:
            trader.broker.poll(self.rt.clock())
            self.rt.engine.flush()

    def _stored_fills(self, order_id: str) -> list[tuple[str, float]]:
        table = self.rt.store.query("SELECT fill_id, qty FROM fills WHERE order_id = ?",
                                    (order_id,))
        return list(zip(table.column("fill_id").to_pylist(),
                        [float(q) for q in table.column("qty").to_pylist()], strict=True))

    def _stored_final(self, order_ids: list[str]) -> set[str]:
        """The orders whose final row the store has, with fills adding up to its
        ``filled_qty`` (a kill between the two commits leaves one without the other)."""
        out: set[str] = set()
        for i in range(0, len(order_ids), _CHUNK):
            part = order_ids[i:i + _CHUNK]
            marks = ", ".join("?" * len(part))
            finals = ", ".join(f"'{s.value}'" for s in OrderStatus if s.is_final)
            ended = self.rt.store.query(
                f"SELECT order_id, MAX(filled_qty) AS q FROM orders WHERE order_id IN "
                f"({marks}) AND status IN ({finals}) GROUP BY order_id", tuple(part))
            fills = self.rt.store.query(
                f"SELECT order_id, SUM(qty) AS q FROM fills WHERE order_id IN ({marks}) "
                "GROUP BY order_id", tuple(part))
            filled = dict(zip(fills.column("order_id").to_pylist(),
                              fills.column("q").to_pylist(), strict=True))
            for oid, qty in zip(ended.column("order_id").to_pylist(),
                                ended.column("q").to_pylist(), strict=True):
                if abs(float(qty or 0.0) - float(filled.get(oid) or 0.0)) <= 1e-9:
                    out.add(oid)
        return out

    async def stop(self, timeout: float) -> None:
        for name, executor in self.executors.items():
            try:
                await asyncio.wait_for(executor.stop(), max(0.1, timeout))
            except Exception as exc:  # shutdown goes on
                logger.warning("executor of %s did not stop cleanly: %r", name, exc)

    def await_cancels(self, call: Callable[[Callable[[], int]], int],
                      loop: asyncio.AbstractEventLoop | None) -> dict[str, Any]:
        """After a kill: wait (up to ``[trading] kill_wait_s``) until the venues have
        confirmed every cancel; ``call`` runs a function on the engine thread."""
        deadline = time.monotonic() + float(self.rt.config["trading"]["kill_wait_s"])
        try:
            on_loop = asyncio.get_running_loop() is loop  # cannot wait on ourselves
        except RuntimeError:
            on_loop = False

        def open_orders() -> int:
            return len(self.rt.trader.broker.orders)

        left = call(open_orders)
        while left and not on_loop and time.monotonic() < deadline:
            time.sleep(0.02)
            left = call(open_orders)
        return {"venue_confirmed": left == 0, "open_orders": left}

    def describe(self, venue: Venue) -> dict[str, Any]:
        """``status`` entries of a venue: its URLs and executor (never keys)."""
        executor = self.executors.get(venue.name)
        out: dict[str, Any] = {"rest_url": str(venue.info.get("rest_url", "")),
                               "ws_url": str(venue.info.get("ws_url", "")),
                               "executor": PAPER}
        if executor is not None:
            out["executor"] = self.rt.executor_tables[venue.name]["type"]
            out["execution"] = executor.stats() if hasattr(executor, "stats") else {}
        return out


def _describe(executor: Any) -> str:
    described = executor.describe() if hasattr(executor, "describe") else {}
    return ", ".join(f"{k}={v}" for k, v in described.items())
