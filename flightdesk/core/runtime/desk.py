"""The desk: a wired runtime (:mod:`~flightdesk.core.runtime.compose`), run live.

The engine runs on one asyncio event loop (``Desk.main``). Frames are processed as the
feeds deliver them, on the loop thread; the engine's flush policy decides when to flush
(once the feeds have nothing more buffered, or every ``max_batch_rows`` frames). Flight,
HTTP, telemetry and plugins see the desk through :class:`~flightdesk.core.runtime.api.DeskAPI`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from flightdesk.core.errors import StoreFullError
from flightdesk.core.market.events import MarketEvent
from flightdesk.core.market.venue import Venue
from flightdesk.core.runtime.bus import Bus, Subscriber
from flightdesk.core.runtime.compose import Runtime, build_runtime
from flightdesk.core.runtime.config import Config, load_config
from flightdesk.core.runtime.engine import EngineCore
from flightdesk.core.runtime.executors import VenueExecutors
from flightdesk.core.runtime.instrument_loader import load_instruments
from flightdesk.core.runtime.live import LiveInput
from flightdesk.core.runtime.priority import (
    below_engine,
    engine_priority,
    process_tuning,
    run_niced,
)
from flightdesk.core.runtime.slots import StrategySlot
from flightdesk.core.runtime.state import DeskState
from flightdesk.core.runtime.stopping import left, stop_plugins
from flightdesk.core.runtime.supervisor import FeedSupervisor
from flightdesk.core.storage.history_writer import HistoryWriter
from flightdesk.core.storage.recovery import recover_kill_switch, recover_positions
from flightdesk.core.storage.store import Store
from flightdesk.core.trading.portfolio import Portfolio
from flightdesk.core.trading.trader import Trader
from flightdesk.sdk.strategy import StrategyContext

if TYPE_CHECKING:
    from flightdesk.core.flight.server import DeskFlightServer
    from flightdesk.core.flight.tickets import StreamRequest
    from flightdesk.core.http.server import HttpServer

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Desk:
    """One running desk (see the module docstring); implements ``DeskAPI``."""

    def __init__(self, config: Config | None = None,
                 plugins: Sequence[object] = (), clock: Callable[[], int] | None = None,
                 run_id: str = "", replay_steps: int = 0, tune_process: bool = False,
                 live: bool = False) -> None:
        self.rt: Runtime = build_runtime(config or load_config(), plugins, clock, run_id,
                                         replay_steps, live)
        self.executors = VenueExecutors(self.rt, self.data_dir)
        self.feed_tasks = FeedSupervisor()  # restarts a feed task that died
        self.state = DeskState(self.rt, time.time_ns(), self.feed_tasks, self.executors)
        #: set process-wide tuning (GIL switch interval, nice, SCHED_FIFO) while running:
        #: ``flightdesk serve`` does; an embedded desk leaves its process alone
        self.tune_process = tune_process
        self._stop_event = threading.Event()
        self._ready_event = threading.Event()
        self.flight: DeskFlightServer | None = None
        self.health: HttpServer | None = None  # HTTP: API, dashboard, /health (core.http)
        self.live: LiveInput | None = None  # the feeds' way into the engine
        self.history: HistoryWriter | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._async_stop: asyncio.Event | None = None
        #: False when the last shutdown gave up on Flight calls still open at its deadline
        #: (the process must then exit without waiting for them: ``serve`` does)
        self.stopped_cleanly = True

    # -- the runtime's parts (typed) ------------------------------------------------------
    @property
    def config(self) -> Config:
        return self.rt.config

    @property
    def core(self) -> EngineCore:
        return self.rt.engine

    @property
    def trader(self) -> Trader:
        return self.rt.trader

    @property
    def store(self) -> Store:
        return self.rt.store

    @property
    def bus(self) -> Bus:
        return self.rt.bus

    @property
    def portfolio(self) -> Portfolio:
        return self.rt.portfolio

    @property
    def stop_event(self) -> threading.Event:
        return self._stop_event

    @property
    def ready_event(self) -> threading.Event:
        return self._ready_event

    @property
    def started_ns(self) -> int:
        return self.state.started_ns

    @property
    def data_dir(self) -> Path:
        return Path(self.config["desk"]["data_dir"])

    @property
    def store_target(self) -> str | Path:
        return self.rt.store_target

    @property
    def history_root(self) -> Path:
        """Where the Parquet market-data history lives (``[store] history_dir``)."""
        configured = self.config["store"]["history_dir"]
        return Path(configured) if configured else self.data_dir / "history"

    # -- running ------------------------------------------------------------------------
    async def main(self) -> None:
        """Run the desk until :meth:`stop`; always shuts down cleanly."""
        self.loop = asyncio.get_running_loop()
        self._async_stop = asyncio.Event()
        switch = sys.getswitchinterval()
        switch_us, nice, priority = process_tuning(self.config["desk"], self.tune_process)
        if switch_us > 0:
            sys.setswitchinterval(switch_us / 1e6)
        self.state.engine_priority = {"wanted": priority, "error": engine_priority(priority)}
        run_niced(nice, self.store.start)
        if self.config["store"]["recover"]:
            self.state.recovered_fills = recover_positions(self.store, self.portfolio)
        self.state.restore_kill_switch(recover_kill_switch(self.store))  # always: fail closed
        self.store.submit("runs", [self.state.run_row()])
        venues: list[Venue] = []
        tasks: list[asyncio.Task[Any]] = []
        try:
            venues = self.rt.build_venues()
            await load_instruments(self.rt.instruments, venues, self.data_dir)
            for venue in venues:
                self.core.add_venue(venue)
            # before any strategy: reconciled with the venues, nothing sent blind
            await self.executors.start(venues)
            self.start_strategies()
            self.rt.pm.hook.flightdesk_startup(desk=self)
            run_niced(nice, self._start_services)
            if priority > 0 and not self.state.engine_priority["error"]:
                self._prioritize_writers(priority)
            tasks = [asyncio.create_task(self._metrics_loop(), name="metrics")]
            desk = self.config["desk"]
            self.live = LiveInput(self.core, self.loop, self.data_dir / desk["record_dir"]
                                  if desk["record"] else None)
            for venue in venues:
                if venue.feed is not None:
                    sink, snapshot_sink = self.live.sinks(venue)
                    tasks.append(self.feed_tasks.start(
                        venue.name, functools.partial(venue.feed.run, sink, snapshot_sink)))
            self._ready_event.set()
            await self._async_stop.wait()
        finally:
            await self._shutdown(tasks, venues)
            if switch_us > 0:
                sys.setswitchinterval(switch)
            if priority > 0 and not self.state.engine_priority["error"]:
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))

    def _prioritize_writers(self, priority: int) -> None:
        """The threads that take the GIL on every batch run just below the engine (see
        :mod:`flightdesk.core.runtime.priority`): the store writer and the history writer."""
        for thread in (self.store.thread, self.history.thread if self.history else None):
            if thread is not None and thread.native_id is not None:
                below_engine(priority, thread.native_id)

    async def _metrics_loop(self) -> None:
        interval = float(self.config["store"]["metrics_interval_ms"]) / 1000.0
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            try:  # metrics, not trading rows: with the queue full, skip (counted) this one
                self.store.submit("performance_metrics", [self.state.performance_row()],
                                  timeout=0)
                self.store.submit("strategy_snapshots", self.state.strategy_rows(), timeout=0)
            except StoreFullError:
                self.core.counters["metrics_rows_skipped"] += 1

    def start_strategies(self) -> None:
        """One slot per configured strategy on the engine, each ``on_start`` called."""
        slots = self.core.slots
        for strategy in self.rt.strategies:
            slot = StrategySlot(strategy)
            slots.attach(slot)
            ctx = StrategyContext(slot.name, strategy.config, self.config["risk"],
                                  self.rt.clock,
                                  functools.partial(self.portfolio.snapshot, slot.name),
                                  logging.getLogger(f"flightdesk.strategy.{slot.name}"))
            try:
                strategy.on_start(ctx)
            except Exception as exc:
                slots.quarantine(slot, exc)

    def _start_services(self) -> None:
        """Flight, health and the history writer (their threads inherit the caller's
        priority: see :mod:`flightdesk.core.runtime.priority`)."""
        self._start_flight()
        self._start_health()
        if self.config["store"]["history"]:
            self.history = HistoryWriter(self.bus, self.history_root, self.rt.ids.run).start()

    def _start_health(self) -> None:
        from flightdesk.core.runtime import telemetry

        telemetry.observe(self)  # gauges and counters read at collection time
        cfg = self.config["telemetry"]
        if cfg["health"]:
            from flightdesk.core.http.server import HttpServer

            self.health = HttpServer(self, cfg["health_host"], cfg["health_port"]).start()

    def _start_flight(self) -> None:
        cfg = self.config["flight"]
        if not cfg["enabled"]:
            return
        from flightdesk.core.flight.auth import server_options
        from flightdesk.core.flight.server import DeskFlightServer

        location, kwargs, _ = server_options(cfg)  # tokens, TLS; no token: loopback only
        wanted = self.state.engine_priority
        plane = (0 if wanted["error"] else int(wanted["wanted"])) if cfg["data_process"] else None
        self.flight = DeskFlightServer(self, location, data_plane_priority=plane, **kwargs)

    async def _shutdown(self, tasks: list[asyncio.Task[Any]], venues: list[Venue]) -> None:
        """Stop within ``[desk] shutdown_timeout_s`` whatever clients do: the stop event
        first (live streams and exchanges end on it), the engine's parts, running store
        queries interrupted, the store flushed and closed, then Flight (flight.closing)."""
        self._stop_event.set()
        deadline = time.monotonic() + float(self.config["desk"]["shutdown_timeout_s"])
        if self.health is not None:
            self.health.begin_stop()  # /events streams end now; joined below
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.core.flush()
        plugins_stopped = stop_plugins(self, left(deadline) / 2)
        await self.executors.stop(left(deadline) / 4)
        for venue in venues:
            venue.close()
        if self.live is not None:
            self.live.close()
        if self.history is not None:
            self.history.stop(left(deadline))
        self.store.interrupt_readers()
        self.store.close(left(deadline))
        if self.flight is not None:
            if self.flight.data_plane is not None:
                await asyncio.to_thread(self.flight.data_plane.stop, left(deadline) / 3)
            self.stopped_cleanly = await asyncio.to_thread(self.flight.close, left(deadline))
        self.stopped_cleanly = self.stopped_cleanly and plugins_stopped
        self.bus.close()
        if self.health is not None:
            self.health.stop(left(deadline))

    def stop(self) -> None:
        """Ask the desk to stop (from any thread)."""
        self._stop_event.set()
        loop = self.loop
        if loop is not None and self._async_stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._async_stop.set)
            except RuntimeError:  # the loop closed meanwhile: the desk has stopped
                pass

    def call(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run ``fn`` on the engine thread and return its result."""
        loop = self.loop
        if loop is None or not loop.is_running():
            return fn()
        try:
            if asyncio.get_running_loop() is loop:
                return fn()
        except RuntimeError:
            pass
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except Exception as exc:
                fut.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return fut.result(timeout)

    # -- DeskAPI --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        out = self.call(self.state.status)
        flight = self.flight
        out["flight"] = flight.uri if flight is not None else None
        out["flight_server"] = flight.stats() if flight is not None else {}
        plane = flight.data_plane if flight is not None else None
        if plane is not None:  # asked here, not on the engine thread: it is a Flight call
            stats = plane.stats()
            out["subscribers"] += [dict(s, plane="data")
                                   for s in stats.pop("subscribers", [])]
            out["data_plane"] = stats
        return out

    def readiness(self) -> dict[str, Any]:
        """``{"ready": bool, "feeds": {...}, "books": {...}}`` for ``/ready``."""
        if not self._ready_event.is_set():
            return {"ready": False, "reason": "starting"}
        return self.call(self.state.readiness, timeout=2.0)

    def gauges(self) -> dict[str, Any]:
        """What the metrics report, read at collection time (see ``telemetry``)."""
        return self.state.gauges()

    def strategies(self) -> list[dict[str, Any]]:
        return self.call(self.state.strategies)

    def snapshot(self, req: StreamRequest) -> pa.Table:
        return self.call(lambda: self.state.snapshot(req))

    def positions_table(self) -> pa.Table:
        return self.call(self.state.positions_table)

    def subscribe(self, stream: str, maxlen: int | None = None,
                  params: dict[str, Any] | None = None) -> Subscriber:
        return self.bus.subscribe(stream, maxlen, params)

    def unsubscribe(self, sub: Subscriber) -> None:
        self.bus.unsubscribe(sub)

    def has_subscribers(self, stream: str) -> bool:
        return self.bus.has_subscribers(stream)

    def subscriber_stats(self) -> list[dict[str, Any]]:
        return self.bus.stats()

    def request_book_snapshots(self) -> None:
        self.core.book_rows.request_snapshots()

    def request_tickers(self) -> None:
        self.call(self.core.publish_tickers)

    def kill(self, on: bool = True) -> dict[str, Any]:
        """The kill switch; on a desk with venue executors, ``on`` also waits (up to
        ``[trading] kill_wait_s``) for the venues to confirm the cancels."""
        out = self.call(lambda: self.state.kill(on))
        if on and self.rt.executor_tables:
            out.update(self.executors.await_cancels(self.call, self.loop))
        return out

    def cancel_all(self) -> dict[str, Any]:
        return self.call(self.state.cancel_all)

    def cancel_order(self, order_id: str) -> dict[str, Any]:
        return self.call(lambda: self.state.cancel_order(order_id))

    def flatten(self) -> dict[str, Any]:
        return self.call(self.state.flatten)

    def enable_strategy(self, name: str, enabled: bool) -> dict[str, Any]:
        return self.call(lambda: self.state.enable_strategy(name, enabled))

    def ingest(self, events: list[MarketEvent], ts_recv: int) -> None:
        self.core.ingest(events, ts_recv)

    def attach_strategy(self, slot: StrategySlot) -> None:
        self.core.slots.attach(slot)

    def detach_strategy(self, slot: StrategySlot) -> None:
        self.core.slots.detach(slot)

    def submit_signals(self, slot: StrategySlot, batch: pa.RecordBatch) -> str:
        return self.core.submit_signals(slot, batch)
