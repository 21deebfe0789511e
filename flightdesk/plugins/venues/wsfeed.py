"""The venue feed: one WebSocket, subscribe frames, app-level ping, optional REST snapshots.

Every WebSocket venue runs this one loop (Binance, Kraken, OKX, Coinbase, MEXC, Alpaca and
the sim); they differ only in data: the URL (Binance's combined streams), the frames sent
after each connect (``subscribe()``), the application ping some require (``ping_frame``
every ``ping_every`` seconds; the WebSocket protocol ping runs as well unless
``ping_interval`` is None), and a REST depth snapshot URL per symbol (``snapshot_url``).

* The loop connects, runs one session, and connects again — for ever, until cancelled. A
  refused handshake never ends it: HTTP 429/418 (``rate_limited``) and 5xx
  (``server_errors``), a refused or reset connection, a TLS error or an open timeout
  (``network_errors``) are retried after an exponential backoff with jitter (uniform in
  [d/2, d], d = ``backoff_initial`` * 2**(failures-1), capped at ``backoff_max``), and at
  least the ``Retry-After`` the answer carried. Any other answer (401, 403, 404:
  ``rejected``) or an unusable URL (``invalid_handshakes``) is most likely a configuration
  error: logged as an error naming the venue and URL, and retried every ``backoff_max``
  seconds. Every failed attempt counts in ``handshake_errors``; ``last_error`` says why.
* A session that ended is followed by a backoff too; the failure count resets once a
  session delivered a frame.
* A watchdog aborts a connection that delivered no frame for ``silence_timeout`` seconds
  (0 turns it off, for venues that are legitimately silent, such as stocks at night).
* After every reconnect (not the first connect) ``on_reconnect(venue)`` is called: frames
  were lost, so the engine resyncs every symbol of the venue.
* ``tap(kind, url, data, ts_ns)``, when set, sees every frame sent and every connect (the
  recorder uses it; received frames reach the recorder through the sink).
* REST snapshots are fetched in a worker thread, one at a time per symbol, retried with
  the same backoff (and ``Retry-After``) until they arrive.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from flightdesk.core.market.venue import Feed, FrameSink, SnapshotSink, Tap
from flightdesk.core.runtime.redact import redact_url
from flightdesk.plugins.venues._retry import Backoff, TaskSet, classify, retry_after
from flightdesk.plugins.venues._wsconn import DirectConnection

__all__ = ["MAX_FRAME", "Tap", "WsFeed", "is_loopback"]

logger = logging.getLogger(__name__)

MAX_FRAME = 16 * 2**20  # frames above 16 MiB close the connection (counted as a reconnect)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_COUNTERS = ("connects", "reconnects", "frames", "bytes", "sent", "pings", "silence_timeouts",
             "snapshots", "snapshot_errors", "closed_by_error", "handshake_errors",
             "rate_limited", "server_errors", "rejected", "network_errors",
             "invalid_handshakes")


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (no proxy is ever used for it)."""
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
                 max_size: int = MAX_FRAME, compression: str | None = None,
                 seed: int | None = None) -> None:
        self.name = name
        self.url = url
        self.subscribe = subscribe or (lambda: [])
        self.ping_frame = ping_frame
        self.ping_every = ping_every
        self.ping_interval = ping_interval
        self.silence_timeout = silence_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.open_timeout = open_timeout
        self.http_timeout = http_timeout
        self.max_size = max_size
        self.compression = compression  # venues offer none worth it; deflate costs the hot path
        self.backoff = Backoff(backoff_initial, backoff_max, seed)
        self.counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self.last_error = ""  # why the last connection attempt failed
        self.last_frame_ns = 0
        self._snapshot_url = snapshot_url
        self._ws: ClientConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._snapshot_sink: SnapshotSink | None = None
        self._pending: set[str] = set()  # snapshots requested before run() started
        self._fetching: set[str] = set()
        self._tasks = TaskSet()

    # -- Feed API ---------------------------------------------------------------------------
    async def run(self, sink: FrameSink, snapshot_sink: SnapshotSink) -> None:
        """Connect, feed frames to ``sink`` and snapshots to ``snapshot_sink`` until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._snapshot_sink = snapshot_sink
        for symbol in sorted(self._pending):
            self._start_fetch(symbol)
        self._pending.clear()
        failures = 0
        try:
            while True:
                try:
                    ws = await self._open()
                except Exception as exc:  # every failure is retried: a feed never ends itself
                    failures += 1
                    await asyncio.sleep(self._refused(exc, failures))
                    continue
                async with ws:
                    got_frames = await self._session(ws, sink)
                failures = 0 if got_frames else failures + 1
                await asyncio.sleep(self.backoff.delay(failures + 1))
        finally:
            self._ws = None
            await self._tasks.cancel()

    def snapshot_url(self, symbol: str) -> str | None:
        return None if self._snapshot_url is None else self._snapshot_url(symbol)

    def request_snapshot(self, symbol: str) -> None:
        """Fetch ``symbol``'s REST snapshot (venues with one); thread-safe, one at a time."""
        if self._snapshot_url is None:
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            self._pending.add(symbol)
        else:
            loop.call_soon_threadsafe(self._start_fetch, symbol)

    def send(self, frame: str) -> None:
        """Send ``frame`` on the live connection (dropped with a warning when down)."""
        if self._loop is None or self._loop.is_closed():
            self._send_now(frame)
        else:
            self._loop.call_soon_threadsafe(self._send_now, frame)

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._ws.state is State.OPEN

    def stats(self) -> dict[str, Any]:
        return {"connected": self.connected, **self.counters,
                "last_frame_ns": self.last_frame_ns, "last_error": self.last_error}

    # -- connecting -------------------------------------------------------------------------
    async def _open(self) -> DirectConnection:
        """One connection attempt: TCP, TLS, the WebSocket handshake (``open_timeout``)."""
        ws = await connect(self.url, max_size=self.max_size, open_timeout=self.open_timeout,
                           ping_interval=self.ping_interval, compression=self.compression,
                           proxy=None if is_loopback(self.url) else True,
                           create_connection=DirectConnection)
        assert isinstance(ws, DirectConnection)
        return ws

    def _refused(self, exc: Exception, failures: int) -> float:
        """Count and log a failed attempt; return how long to wait before the next one."""
        failure = classify(exc)
        self.counters["handshake_errors"] += 1
        self.counters[failure.kind.value] += 1
        if failure.kind.suspicious:  # retrying will most likely fail the same way: slowly
            delay = max(self.backoff_max, failure.retry_after)
            logger.error("%s: connecting to %s failed with %s; is the URL (or key) right? "
                         "retrying every %.0f s", self.name, redact_url(self.url),
                         failure.detail, delay)
        else:
            delay = max(self.backoff.delay(failures), failure.retry_after)
            logger.warning("%s: connecting to %s failed with %s%s; retry in %.2f s",
                           self.name, redact_url(self.url), failure.detail,
                           f" (Retry-After {failure.retry_after:g} s)"
                           if failure.retry_after else "", delay)
        self.last_error = f"{failure.detail} at {self.url}"
        return delay

    # -- one connection ---------------------------------------------------------------------
    async def _session(self, ws: DirectConnection, sink: FrameSink) -> bool:
        """Deliver ``ws``'s frames until it closes; return whether it delivered any."""
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
            ts = clock()
            counters["frames"] += 1
            counters["bytes"] += len(frame)
            self.last_frame_ns = ts
            sink(name, frame, ts)

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
            # Stopping. A closing handshake would wait (close_timeout) behind the frames
            # still queued towards us, which nobody reads any more: drop the connection.
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
        assert self._snapshot_url is not None and self._snapshot_sink is not None
        try:
            body = await self._get_with_retries(self._snapshot_url(symbol))
        finally:
            self._fetching.discard(symbol)
        self.counters["snapshots"] += 1
        try:
            self._snapshot_sink(self.name, symbol, body, time.time_ns())
        except Exception:  # a background task has nobody to raise to
            logger.exception("%s: snapshot sink failed for %s", self.name, symbol)

    async def _get_with_retries(self, url: str) -> bytes:
        attempt = 0
        while True:
            try:
                return await asyncio.to_thread(self._http_get, url)
            except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
                wait = 0.0
                if isinstance(exc, urllib.error.HTTPError):
                    if exc.headers is not None:
                        wait = retry_after(exc.headers.get("Retry-After"))
                    exc.close()  # it holds the response's socket open
                self.counters["snapshot_errors"] += 1
                attempt += 1
                delay = max(self.backoff.delay(attempt), wait)
                logger.warning("%s: GET %s failed (%s); retry in %.2f s", self.name,
                               redact_url(url), exc, delay)
                await asyncio.sleep(delay)

    def _http_get(self, url: str) -> bytes:
        handlers = [urllib.request.ProxyHandler({})] if is_loopback(url) else []
        request = urllib.request.Request(url, headers={"User-Agent": "flightdesk"})
        with urllib.request.build_opener(*handlers).open(request,
                                                         timeout=self.http_timeout) as resp:
            body: bytes = resp.read()
        return body


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
