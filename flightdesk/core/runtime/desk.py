"""The desk: wires config, plugins, venues, engine, store and Flight, and runs them.

The engine runs on one asyncio event loop (``Desk.main``); feeds put raw frames on a
bounded queue, and the consumer drains whatever is queued (up to ``max_batch_rows``) before
each flush — one row per batch when the feed is quiet, thousands when it is busy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import difflib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pluggy

from flightdesk.core.errors import ConfigError
from flightdesk.core.market.venue import Venue
from flightdesk.core.runtime.bus import Bus
from flightdesk.core.runtime.config import Config, check_plugin_table, load_config
from flightdesk.core.runtime.engine import EngineCore, StrategySlot
from flightdesk.core.runtime.priority import (
    below_engine,
    engine_priority,
    process_tuning,
    run_niced,
)
from flightdesk.core.runtime.state import DeskState
from flightdesk.core.storage.history_writer import HistoryWriter
from flightdesk.core.storage.recorder import RECONNECT, Recorder, recording_sinks
from flightdesk.core.storage.recovery import recover_positions
from flightdesk.core.storage.store import Store
from flightdesk.core.trading.broker import PaperBroker
from flightdesk.core.trading.orders import IdMaker
from flightdesk.core.trading.portfolio import Portfolio
from flightdesk.core.trading.risk import RiskValidator
from flightdesk.core.trading.trader import Trader
from flightdesk.plugins.manager import collect, load_plugins, make_manager
from flightdesk.sdk.strategy import Strategy, StrategyContext

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Desk(DeskState):
    """One running desk (see the module docstring)."""

    def __init__(self, config: Config | None = None,
                 plugins: Sequence[object] = (), clock: Callable[[], int] | None = None,
                 run_id: str = "", tune_process: bool = False) -> None:
        self.config = config or load_config()
        #: apply ``[desk] switch_interval_us``, ``service_nice`` and ``engine_priority`` in
        #: :meth:`main` (process-wide state: ``flightdesk serve`` opts in, embedding doesn't)
        self.tune_process = tune_process
        #: the engine clock: wall time live, data time in a replay (see core.replay)
        self.clock: Callable[[], int] = clock or time.time_ns
        pm = make_manager()
        for plugin in plugins:  # objects with @hookimpl functions, e.g. from a notebook
            pm.register(plugin)
        self.pm: pluggy.PluginManager = load_plugins(pm)
        self.registry = collect(self.pm)
        desk = self.config["desk"]
        self.data_dir = Path(desk["data_dir"])
        self.stop_event = threading.Event()
        self.ready_event = threading.Event()
        self.bus = Bus(int(self.config["flight"]["subscriber_buffer"]))
        #: the store's SQLite file or ADBC URI (the data-plane process opens it too)
        self.store_target: str | Path = (self.config["store"]["uri"]
                                         or self.data_dir / self.config["store"]["path"])
        self.store = Store(self.store_target, self.config["store"])
        self.ids = IdMaker(run_id)
        self.portfolio = Portfolio()
        self.risk = RiskValidator(self.config["risk"], self.registry.risk_rules)
        self.broker = PaperBroker(self.config["broker"], self.ids)
        self.trader = Trader(self.risk, self.broker, self.portfolio, self.ids,
                             self._book, self.clock)
        self.venue_tables = {n: self._plugin_table("venues", n, t)
                             for n, t in self.config["venues"].items()}
        self.strategy_list = [self._build_strategy(n, t)
                              for n, t in self.config["strategies"].items()]
        self.core: EngineCore | None = None
        self.flight: Any = None
        self.health: Any = None  # the HTTP /health, /ready, /metrics server
        self.recorder: Recorder | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started_ns = time.time_ns()
        self.recovered_fills = 0
        self.engine_priority: dict[str, Any] = {"wanted": 0, "error": ""}
        self.history: HistoryWriter | None = None
        self._async_stop: asyncio.Event | None = None
        self._flush_handle: asyncio.Handle | None = None
        self._unflushed = 0

    # -- construction -----------------------------------------------------------------
    def _plugin_table(self, section: str, name: str, table: dict[str, Any]) -> dict[str, Any]:
        kinds = getattr(self.registry, section)
        kind = table.get("type", name)
        if kind not in kinds:
            close = difflib.get_close_matches(str(kind), list(kinds), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"[{section}.{name}] type {kind!r} is not registered{hint} "
                              f"(registered: {', '.join(sorted(kinds))})",
                              key=f"{section}.{name}.type")
        defaults = getattr(kinds[kind], "DEFAULTS", {})
        return check_plugin_table(section, name, table, defaults)

    def _build_strategy(self, name: str, table: dict[str, Any]) -> Strategy:
        cfg = self._plugin_table("strategies", name, table)
        return self.registry.strategies[cfg["type"]](name, cfg)

    def _build_venues(self) -> dict[str, Venue]:
        venues = {}
        for name, cfg in self.venue_tables.items():
            venues[name] = self.registry.venues[cfg["type"]](name, cfg)
        return venues

    @property
    def history_root(self) -> Path:
        """Where the Parquet market-data history lives (``[store] history_dir``)."""
        configured = self.config["store"]["history_dir"]
        return Path(configured) if configured else self.data_dir / "history"

    def _book(self, venue: str, symbol: str) -> Any:
        return self.core.book(venue, symbol) if self.core else None

    # -- running ------------------------------------------------------------------------
    async def main(self) -> None:
        """Run the desk until :meth:`stop`; always shuts down cleanly."""
        self.loop = asyncio.get_running_loop()
        self._async_stop = asyncio.Event()
        switch = sys.getswitchinterval()
        switch_us, nice, priority = process_tuning(self.config["desk"], self.tune_process)
        if switch_us > 0:
            sys.setswitchinterval(switch_us / 1e6)
        self.engine_priority = {"wanted": priority, "error": engine_priority(priority)}
        run_niced(nice, self.store.start)
        if self.config["store"]["recover"]:
            self.recovered_fills = recover_positions(self.store, self.portfolio)
        self.store.submit("runs", [self.run_row()])
        venues: dict[str, Venue] = {}
        tasks: list[asyncio.Task[Any]] = []
        try:
            venues = self._build_venues()
            self.core = EngineCore(venues, self.trader, self.bus, self.store,
                                   int(self.config["desk"]["depth_levels"]))
            self.start_strategies()
            self.pm.hook.flightdesk_startup(desk=self)
            run_niced(nice, self._start_services)
            if priority > 0 and not self.engine_priority["error"]:
                self._prioritize_writers(priority)
            queue: asyncio.Queue[Any] = asyncio.Queue(int(self.config["desk"]["queue_size"]))
            tasks = [asyncio.create_task(self._consume(queue), name="engine"),
                     asyncio.create_task(self._metrics_loop(), name="metrics")]
            for venue in venues.values():
                if venue.feed is not None:
                    sink, snapshot_sink = self._feed_sinks(venue, queue)
                    tasks.append(asyncio.create_task(venue.feed.run(sink, snapshot_sink),
                                                     name=f"feed-{venue.name}"))
            self.ready_event.set()
            await self._async_stop.wait()
        finally:
            await self._shutdown(tasks, venues)
            if switch_us > 0:
                sys.setswitchinterval(switch)
            if priority > 0 and not self.engine_priority["error"]:
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))

    def _prioritize_writers(self, priority: int) -> None:
        """The threads that take the GIL on every batch run just below the engine (see
        :mod:`flightdesk.core.runtime.priority`): the store writer and the history writer."""
        for owner in (self.store, self.history):
            thread = getattr(owner, "_thread", None)
            if thread is not None and thread.native_id is not None:
                below_engine(priority, thread.native_id)

    def _feed_sinks(self, venue: Venue, queue: asyncio.Queue[Any]) -> tuple[Any, Any]:
        """The feed's sinks (recorded when ``[desk] record``) and its reconnect callback."""
        core = self.core
        assert core is not None
        if hasattr(venue.feed, "on_reconnect"):
            # in line with the frames (which the feeds hand over on this loop's thread)
            venue.feed.on_reconnect = (  # type: ignore[union-attr]
                lambda name: self._process(core, (name, RECONNECT, None, time.time_ns())))
        sink, snapshot_sink = self._sink(queue), self._snapshot_sink(queue)
        if self.config["desk"]["record"]:
            if self.recorder is None:
                self.recorder = Recorder(self.data_dir / self.config["desk"]["record_dir"])
            return recording_sinks(self.recorder, venue, sink, snapshot_sink)
        return sink, snapshot_sink

    def _sink(self, queue: asyncio.Queue[Any]) -> Callable[[str, Any, int], None]:
        """Frames are processed as they arrive, on the loop thread, with no queue hop; the
        flush runs once the feed has nothing more buffered (``call_soon``), or every
        ``max_batch_rows`` frames: one row per batch when quiet, thousands when busy."""
        core = self.core
        assert core is not None
        loop = asyncio.get_running_loop()
        limit = int(self.config["desk"]["max_batch_rows"])
        process = self._process

        def sink(venue: str, frame: Any, ts_recv: int) -> None:
            process(core, (venue, None, frame, ts_recv))
            self._unflushed += 1
            if self._unflushed >= limit:
                self._flush_now()
            elif self._flush_handle is None:
                self._flush_handle = loop.call_soon(self._flush_now)
        return sink

    def _flush_now(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._unflushed = 0
        core = self.core
        assert core is not None
        try:
            core.flush()
        except Exception:  # the loop must survive anything a flush meets
            core.counters["flush_errors"] += 1
            logger.exception("engine flush failed")

    def _snapshot_sink(self, queue: asyncio.Queue[Any]) -> Callable[[str, str, Any, int], None]:
        def sink(venue: str, symbol: str, body: Any, ts_recv: int) -> None:
            try:
                queue.put_nowait((venue, symbol, body, ts_recv))
            except asyncio.QueueFull:  # counted; that book stays unsynced until a resync
                if self.core is not None:
                    self.core.counters["queue_drops"] += 1
        return sink

    async def _consume(self, queue: asyncio.Queue[Any]) -> None:
        core = self.core
        assert core is not None
        limit = int(self.config["desk"]["max_batch_rows"])
        while True:
            item = await queue.get()
            self._process(core, item)
            n = 1
            while n < limit and not queue.empty():
                self._process(core, queue.get_nowait())
                n += 1
            self._flush_now()

    @staticmethod
    def _process(core: EngineCore, item: tuple[str, str | None, Any, int]) -> None:
        venue, symbol, payload, ts = item
        try:
            if symbol is None:
                core.on_frame(venue, payload, ts)
            elif symbol is RECONNECT:
                core.on_reconnect(venue)
            else:
                core.on_snapshot(venue, symbol, payload, ts)
        except Exception:  # parsers raise ParseError; anything else is a bug, not a crash
            core.counters["engine_errors"] += 1
            logger.exception("engine failed on a %s frame", venue)

    async def _metrics_loop(self) -> None:
        interval = float(self.config["store"]["metrics_interval_ms"]) / 1000.0
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            self.store.submit("performance_metrics", [self.performance_row()])
            self.store.submit("strategy_snapshots", self.strategy_rows())

    def start_strategies(self) -> None:
        """Build the strategy slots on ``self.core`` and call each ``on_start``."""
        assert self.core is not None
        self.core.slots = [StrategySlot(s) for s in self.strategy_list]
        for slot in self.core.slots:
            ctx = StrategyContext(slot.name, slot.strategy.config, self.config["risk"],
                                  self.clock, self.portfolio.snapshot,
                                  logging.getLogger(f"flightdesk.strategy.{slot.name}"))
            try:
                slot.strategy.on_start(ctx)
            except Exception as exc:
                self.core.quarantine(slot, exc)

    def _start_services(self) -> None:
        """Flight, health and the history writer (their threads inherit the caller's
        priority: see :mod:`flightdesk.core.runtime.priority`)."""
        self._start_flight()
        self._start_health()
        if self.config["store"]["history"]:
            self.history = HistoryWriter(self.bus, self.history_root, self.ids.run).start()

    def _start_health(self) -> None:
        from flightdesk.core.runtime import telemetry

        telemetry.observe(self)  # gauges and counters read at collection time
        cfg = self.config["telemetry"]
        if cfg["health"]:
            from flightdesk.core.http.health import HealthServer

            self.health = HealthServer(self, cfg["health_host"], cfg["health_port"]).start()

    def _start_flight(self) -> None:
        cfg = self.config["flight"]
        if not cfg["enabled"]:
            return
        from flightdesk.core.flight.auth import server_options
        from flightdesk.core.flight.server import DeskFlightServer

        location, kwargs, _ = server_options(cfg)  # tokens, TLS; no token: loopback only
        self.flight = DeskFlightServer(self, location, **kwargs)
        if cfg["data_process"]:
            from flightdesk.core.flight.dataplane import DataPlane

            wanted = self.engine_priority
            self.flight.data_plane = DataPlane(
                self, self.flight.uri, 0 if wanted["error"] else int(wanted["wanted"]))
        if self.core is not None:
            self.core.book_rows.snapshot_s = float(cfg["book_snapshot_s"])

    async def _shutdown(self, tasks: list[asyncio.Task[Any]], venues: dict[str, Venue]) -> None:
        self.stop_event.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.core is not None:
            self.core.flush()
            for slot in self.core.slots:
                try:
                    slot.strategy.on_stop()
                except Exception:
                    logger.exception("strategy %s failed in on_stop", slot.name)
        try:
            self.pm.hook.flightdesk_shutdown(desk=self)
        except Exception:
            logger.exception("a plugin failed in flightdesk_shutdown")
        for venue in venues.values():
            venue.close()
        if self.recorder is not None:
            self.recorder.close()
        if self.history is not None:
            self.history.stop()
        self.store.close()
        if self.flight is not None:
            if self.flight.data_plane is not None:
                await asyncio.to_thread(self.flight.data_plane.stop)
            await asyncio.to_thread(self.flight.shutdown)
        self.bus.close()
        if self.health is not None:
            self.health.stop()

    def stop(self) -> None:
        """Ask the desk to stop (from any thread)."""
        self.stop_event.set()
        if self.loop is not None and self._async_stop is not None:
            self.loop.call_soon_threadsafe(self._async_stop.set)

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
