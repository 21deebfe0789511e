"""A generic venue feed: one WebSocket, subscribe frames, app-level ping, optional REST snapshots.

Kraken, OKX, Coinbase, MEXC and Alpaca differ only in data: the frames sent after each
connect (``subscribe()``), the application ping some of them require (``ping_frame`` every
``ping_every`` seconds; the WebSocket protocol ping runs as well unless ``ping_interval`` is
None), and, for MEXC, a REST depth snapshot URL per symbol. The loop itself is the one every
venue needs:

* ``async for ws in connect(...)`` — failed connection attempts retried by websockets with
  our delays; a session that ended is followed by an exponential backoff with jitter
  (uniform in [d/2, d], d = ``backoff_initial`` * 2**failures, capped at ``backoff_max``),
  the failure count resetting once a session delivered a frame;
* a watchdog aborts a connection that delivered no frame for ``silence_timeout`` seconds
  (0 turns it off, for venues that are legitimately silent, such as stocks at night);
* after every reconnect (not the first connect) ``on_reconnect(venue)`` is called: frames
  were lost, so the engine resyncs every symbol of the venue;
* ``tap(kind, url, data, ts_ns)``, when set, sees every frame sent and every connect (the
  recorder uses it; received frames reach the recorder through the sink).
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.error
import urllib.request
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing, suppress
from typing import Any, cast
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from flightdesk.core.market.venue import Feed, FrameSink, SnapshotSink
from flightdesk.plugins.venues._retry import Backoff, TaskSet
from flightdesk.plugins.venues._wsconn import DirectConnection

__all__ = ["MAX_FRAME", "Tap", "WsFeed"]

logger = logging.getLogger(__name__)

MAX_FRAME = 16 * 2**20  # frames above 16 MiB close the connection (counted as a reconnect)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

#: ``tap(kind, url, data, ts_ns)`` with kind "send" | "connect"
Tap = Callable[[str, str, "str | bytes", int], None]


def _loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in _LOOPBACK


class WsFeed(Feed):
    """One WebSocket connection (see the module docstring)."""

    def __init__(self, url: str, *, name: str,
                 subscribe: Callable[[], list[str]] | None = None,
                 ping_frame: str | None = None, ping_every: float = 20.0,
                 ping_interval: float | None = 20.0, silence_timeout: float = 30.0,
                 snapshot_url: Callable[[str], str] | None = None,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0,
                 open_timeout: float = 10.0, http_timeout: float = 10.0,
                 max_size: int = MAX_FRAME, seed: int | None = None) -> None:
        self.name = name
        self.url = url
        self.subscribe = subscribe or (lambda: [])
        self.ping_frame = ping_frame
        self.ping_every = ping_every
        self.ping_interval = ping_interval
        self.silence_timeout = silence_timeout
        self.snapshot_url = snapshot_url
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.open_timeout = open_timeout
        self.http_timeout = http_timeout
        self.max_size = max_size
        #: ``callable(venue_name)`` after each reconnect (not the first connect)
        self.on_reconnect: Callable[[str], None] | None = None
        self.tap: Tap | None = None
        self.backoff = Backoff(backoff_initial, backoff_max, seed)
        self._ws: ClientConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._snapshot_sink: SnapshotSink | None = None
        self._pending: set[str] = set()
        self._fetching: set[str] = set()
        self._tasks = TaskSet()
        self.counters: dict[str, int] = dict.fromkeys(
            ("connects", "reconnects", "frames", "bytes", "sent", "pings", "silence_timeouts",
             "snapshots", "snapshot_errors", "closed_by_error"), 0)

    # -- Feed API ---------------------------------------------------------------------------
    async def run(self, sink: FrameSink, snapshot_sink: SnapshotSink) -> None:
        self._loop = asyncio.get_running_loop()
        self._snapshot_sink = snapshot_sink
        for symbol in sorted(self._pending):
            self._start_fetch(symbol)
        self._pending.clear()
        connections = connect(self.url, max_size=self.max_size, open_timeout=self.open_timeout,
                              ping_interval=self.ping_interval, compression=None,
                              proxy=None if _loopback(self.url) else True,
                              reconnect_delays=self.backoff.delays,
                              create_connection=DirectConnection)
        failures = 0
        try:
            sessions = cast(AsyncGenerator[DirectConnection, None], connections.__aiter__())
            async with aclosing(sessions):
                async for ws in sessions:
                    got = await self._session(ws, sink)
                    failures = 0 if got else failures + 1
                    await asyncio.sleep(self.backoff.delay(failures))
        finally:
            self._ws = None
            await self._tasks.cancel()

    def request_snapshot(self, symbol: str) -> None:
        """Fetch ``symbol``'s REST snapshot (venues with one); thread-safe, one at a time."""
        if self.snapshot_url is None:
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            self._pending.add(symbol)
        else:
            loop.call_soon_threadsafe(self._start_fetch, symbol)

    def send(self, frame: str) -> None:
        if self._loop is None or self._loop.is_closed():
            self._send_now(frame)
        else:
            self._loop.call_soon_threadsafe(self._send_now, frame)

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._ws.state is State.OPEN

    def stats(self) -> dict[str, Any]:
        return {"connected": self.connected, **self.counters}

    # -- one connection ---------------------------------------------------------------------
    async def _session(self, ws: DirectConnection, sink: FrameSink) -> bool:
        counters = self.counters
        counters["connects"] += 1
        self._ws = ws
        self._tapped("connect", "")
        if counters["connects"] > 1:
            counters["reconnects"] += 1
            self._notify_reconnect()
        start = counters["frames"]
        helpers = [asyncio.create_task(self._watchdog(ws))] if self.silence_timeout > 0 else []
        if self.ping_frame is not None:
            helpers.append(asyncio.create_task(self._pinger(ws)))
        name, clock = self.name, time.time_ns

        def deliver(frame: str | bytes) -> None:
            counters["frames"] += 1
            counters["bytes"] += len(frame)
            sink(name, frame, clock())

        try:
            ws.start(deliver)  # frames go to the sink from the socket callback, in order
            for out in self.subscribe():
                await self._send(ws, out)
            await ws.wait_closed()
            rcvd = ws.protocol.close_rcvd
            if rcvd is None or rcvd.code != 1000:
                counters["closed_by_error"] += 1
            logger.info("%s: connection closed: %s", name, ws.protocol.close_exc)
        except asyncio.CancelledError:
            ws.transport.abort()
            raise
        finally:
            self._ws = None
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        return counters["frames"] > start

    def _notify_reconnect(self) -> None:
        logger.info("%s: reconnected (%d so far)", self.name, self.counters["reconnects"])
        if self.on_reconnect is not None:
            try:
                self.on_reconnect(self.name)
            except Exception:  # the feed keeps running whatever the callback does
                logger.exception("%s: on_reconnect callback failed", self.name)

    async def _watchdog(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        seen, quiet_since = self.counters["frames"], loop.time()
        while True:
            await asyncio.sleep(self.silence_timeout / 4)
            if self.counters["frames"] != seen:
                seen, quiet_since = self.counters["frames"], loop.time()
            elif loop.time() - quiet_since >= self.silence_timeout:
                self.counters["silence_timeouts"] += 1
                logger.warning("%s: no frame for %.1f s, reconnecting", self.name,
                               self.silence_timeout)
                ws.transport.abort()
                return

    async def _pinger(self, ws: ClientConnection) -> None:
        assert self.ping_frame is not None
        while True:
            await asyncio.sleep(self.ping_every)
            self.counters["pings"] += 1
            await self._send(ws, self.ping_frame)

    async def _send(self, ws: ClientConnection, frame: str) -> None:
        self.counters["sent"] += 1
        self._tapped("send", frame)
        with suppress(ConnectionClosed):
            await ws.send(frame)

    def _send_now(self, frame: str) -> None:
        if self._ws is None:
            logger.warning("%s: not connected, dropped outbound frame %.80s", self.name, frame)
        else:
            self._tasks.spawn(self._send(self._ws, frame))

    def _tapped(self, kind: str, data: str | bytes) -> None:
        if self.tap is not None:
            self.tap(kind, self.url, data, time.time_ns())

    # -- REST snapshots ---------------------------------------------------------------------
    def _start_fetch(self, symbol: str) -> None:
        if symbol not in self._fetching:
            self._fetching.add(symbol)
            self._tasks.spawn(self._fetch(symbol))

    async def _fetch(self, symbol: str) -> None:
        assert self.snapshot_url is not None and self._snapshot_sink is not None
        url = self.snapshot_url(symbol)
        attempt = 0
        try:
            while True:
                try:
                    body = await asyncio.to_thread(self._http_get, url)
                    break
                except (OSError, ValueError) as exc:
                    if isinstance(exc, urllib.error.HTTPError):
                        exc.close()
                    self.counters["snapshot_errors"] += 1
                    logger.warning("%s: GET %s failed (%s)", self.name, url, exc)
                    await asyncio.sleep(self.backoff.delay(attempt))
                    attempt += 1
        finally:
            self._fetching.discard(symbol)
        self.counters["snapshots"] += 1
        try:
            self._snapshot_sink(self.name, symbol, body, time.time_ns())
        except Exception:
            logger.exception("%s: snapshot sink failed for %s", self.name, symbol)

    def _http_get(self, url: str) -> bytes:
        handlers = [urllib.request.ProxyHandler({})] if _loopback(url) else []
        request = urllib.request.Request(url, headers={"User-Agent": "flightdesk"})
        with urllib.request.build_opener(*handlers).open(request,
                                                         timeout=self.http_timeout) as resp:
            body: bytes = resp.read()
        return body

    # -- helpers ----------------------------------------------------------------------------


def venue_config(name: str, config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``config`` over ``defaults``; unknown keys and empty ``symbols`` raise ConfigError."""
    from flightdesk.core.errors import ConfigError
    from flightdesk.core.runtime.config import unknown_key

    cfg = {**defaults, **config}
    unknown = sorted(set(cfg) - set(defaults))
    if unknown:
        raise unknown_key(f"venues.{name}.{unknown[0]}", defaults)
    if "symbols" in cfg and not cfg["symbols"]:
        raise ConfigError(f"venues.{name}.symbols is empty", key=f"venues.{name}.symbols")
    return cfg


def choice(name: str, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else a ConfigError naming the key."""
    from flightdesk.core.errors import ConfigError

    if value not in allowed:
        raise ConfigError(f"venues.{name}.{key} must be one of {', '.join(allowed)}, "
                          f"got {value!r}", key=f"venues.{name}.{key}")
    return str(value)
