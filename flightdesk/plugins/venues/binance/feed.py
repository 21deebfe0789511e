"""Binance feed: the asyncio shell around one WebSocket connection and REST depth snapshots.

The feed does no parsing. It connects (``async for ws in connect(...)``, which retries
failed connection attempts with our backoff), hands every frame to
``sink(venue, frame, ts_recv_ns)``, fetches ``GET {rest_url}{depth_path}?symbol=S&limit=N``
on :meth:`BinanceFeed.request_snapshot` (urllib in a worker thread) and hands the body to
``snapshot_sink(venue, symbol, body, ts_recv_ns)``. A connection that delivers no frame for
``silence_timeout`` seconds is dropped and replaced. After every reconnect (not the first
connect) it calls ``on_reconnect(venue)``: frames were lost, so the engine must resync
every symbol of the venue.
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

from websockets.asyncio.client import ClientConnection, connect, process_exception
from websockets.exceptions import InvalidStatus
from websockets.protocol import State

from flightdesk.core.market.venue import Feed, FrameSink, SnapshotSink
from flightdesk.plugins.venues._retry import Backoff, TaskSet
from flightdesk.plugins.venues._wsconn import DirectConnection

__all__ = ["BinanceFeed", "is_loopback"]

logger = logging.getLogger(__name__)

MAX_FRAME = 16 * 2**20  # 16 MiB: far above any Binance frame, bounded all the same
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (no proxy is ever used for it)."""
    return (urlsplit(url).hostname or "") in _LOOPBACK


class BinanceFeed(Feed):
    """One WebSocket connection carrying ``symbols``' streams, plus REST snapshots."""

    def __init__(self, ws_url: str, rest_url: str, symbols: list[str], depth_limit: int = 1000,
                 *, name: str = "binance", depth_path: str = "/api/v3/depth",
                 silence_timeout: float = 30.0, backoff_initial: float = 0.5,
                 backoff_max: float = 30.0, http_timeout: float = 10.0,
                 ping_interval: float | None = 20.0, open_timeout: float = 10.0,
                 compression: str | None = None, seed: int | None = None) -> None:
        self.name = name
        self.url = ws_url
        self.rest_url = rest_url.rstrip("/")
        self.symbols = [s.upper() for s in symbols]
        self.depth_limit = depth_limit
        self.depth_path = depth_path
        self.silence_timeout = silence_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.http_timeout = http_timeout
        self.ping_interval = ping_interval
        self.open_timeout = open_timeout
        self.compression = compression  # Binance offers none; deflate costs the hot path
        #: ``callable(venue_name)`` called after each reconnect (not the first connect)
        self.on_reconnect: Callable[[str], None] | None = None
        self.backoff = Backoff(backoff_initial, backoff_max, seed)
        self._opener = urllib.request.build_opener(
            *([urllib.request.ProxyHandler({})] if is_loopback(rest_url) else []))
        self._ws: ClientConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._snapshot_sink: SnapshotSink | None = None
        self._pending: set[str] = set()  # requested before run() started
        self._fetching: set[str] = set()
        self._tasks = TaskSet()
        self._connects = self._reconnects = self._frames = self._bytes = 0
        self._last_frame_ns = self._silences = self._snapshots = self._snapshot_errors = 0

    # -- Feed API ------------------------------------------------------------------------
    async def run(self, sink: FrameSink, snapshot_sink: SnapshotSink) -> None:
        """Connect, feed frames to ``sink`` and snapshots to ``snapshot_sink`` until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._snapshot_sink = snapshot_sink
        for symbol in sorted(self._pending):
            self._start_fetch(symbol)
        self._pending.clear()
        connections = connect(
            self.url, max_size=MAX_FRAME, open_timeout=self.open_timeout,
            ping_interval=self.ping_interval, compression=self.compression,
            proxy=None if is_loopback(self.url) else True, reconnect_delays=self.backoff.delays,
            process_exception=_retryable, create_connection=DirectConnection)
        failures = 0
        try:
            # aclosing: on cancel, close the live connection now, not at garbage collection
            sessions = cast(AsyncGenerator[DirectConnection, None], connections.__aiter__())
            async with aclosing(sessions):
                async for ws in sessions:
                    got_frames = await self._session(ws, sink)
                    failures = 0 if got_frames else failures + 1
                    await asyncio.sleep(self.backoff.delay(failures + 1))
        finally:
            self._ws = self._loop = None
            await self._tasks.cancel()

    def request_snapshot(self, symbol: str) -> None:
        """Fetch ``symbol``'s REST depth (once at a time per symbol); thread-safe."""
        symbol = symbol.upper()
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

    def _send_now(self, frame: str) -> None:
        if self._ws is None:
            logger.warning("%s: not connected, dropped outbound frame %.80s", self.name, frame)
        else:
            self._tasks.spawn(self._ws.send(frame))

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._ws.state is State.OPEN

    def stats(self) -> dict[str, Any]:
        return {"connected": self.connected, "connects": self._connects,
                "reconnects": self._reconnects, "frames": self._frames, "bytes": self._bytes,
                "last_frame_ns": self._last_frame_ns, "silence_timeouts": self._silences,
                "snapshots": self._snapshots, "snapshot_errors": self._snapshot_errors}

    # -- one connection ------------------------------------------------------------------
    async def _session(self, ws: DirectConnection, sink: FrameSink) -> bool:
        """Deliver ``ws``'s frames until it closes; return whether it delivered any."""
        self._connects += 1
        self._ws = ws
        if self._connects > 1:
            self._reconnects += 1
            self._notify_reconnect()
        start = self._frames
        watchdog = asyncio.create_task(self._watchdog(ws), name=f"{self.name}-watchdog")
        name, clock = self.name, time.time_ns

        def deliver(frame: str | bytes) -> None:
            ts = clock()
            self._frames += 1
            self._bytes += len(frame)
            self._last_frame_ns = ts
            sink(name, frame, ts)

        try:
            ws.start(deliver)  # frames go to the sink from the socket callback, in order
            await ws.wait_closed()
            logger.info("%s: connection closed: %s", name, ws.protocol.close_exc)
        except asyncio.CancelledError:
            # Stopping. A closing handshake would wait (close_timeout) behind the frames
            # still queued towards us, which nobody reads any more: drop the connection.
            ws.transport.abort()
            raise
        finally:
            self._ws = None
            watchdog.cancel()
            with suppress(asyncio.CancelledError):
                await watchdog
        return self._frames > start

    def _notify_reconnect(self) -> None:
        logger.info("%s: reconnected (%d so far)", self.name, self._reconnects)
        if self.on_reconnect is not None:
            try:
                self.on_reconnect(self.name)
            except Exception:  # the feed must keep running whatever the callback does
                logger.exception("%s: on_reconnect callback failed", self.name)

    async def _watchdog(self, ws: ClientConnection) -> None:
        """Abort ``ws`` once no frame has arrived for ``silence_timeout`` seconds."""
        loop = asyncio.get_running_loop()
        seen, quiet_since = self._frames, loop.time()
        while True:
            await asyncio.sleep(self.silence_timeout / 4)
            if self._frames != seen:
                seen, quiet_since = self._frames, loop.time()
            elif loop.time() - quiet_since >= self.silence_timeout:
                self._silences += 1
                logger.warning("%s: no frame for %.1f s, reconnecting", self.name,
                               self.silence_timeout)
                ws.transport.abort()
                return

    # -- snapshots -----------------------------------------------------------------------
    def snapshot_url(self, symbol: str) -> str:
        return f"{self.rest_url}{self.depth_path}?symbol={symbol}&limit={self.depth_limit}"

    def _start_fetch(self, symbol: str) -> None:
        if symbol not in self._fetching:
            self._fetching.add(symbol)
            self._tasks.spawn(self._fetch(symbol))

    async def _fetch(self, symbol: str) -> None:
        try:
            body = await self._get_with_retries(self.snapshot_url(symbol))
        finally:
            self._fetching.discard(symbol)
        self._snapshots += 1
        assert self._snapshot_sink is not None
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
                if isinstance(exc, urllib.error.HTTPError):
                    exc.close()  # it holds the response's socket open
                self._snapshot_errors += 1
                delay = max(self.backoff.delay(attempt + 1), _retry_after(exc))
                logger.warning("%s: GET %s failed (%s); retry in %.1f s", self.name, url, exc,
                               delay)
                await asyncio.sleep(delay)
                attempt += 1

    def _http_get(self, url: str) -> bytes:
        request = urllib.request.Request(url, headers={"User-Agent": "flightdesk"})
        with self._opener.open(request, timeout=self.http_timeout) as response:
            body: bytes = response.read()
        return body

    # -- helpers -------------------------------------------------------------------------


def _retryable(exc: Exception) -> Exception | None:
    """websockets' retry policy, plus HTTP 429/418 (Binance's rate limit and ban answers)."""
    if isinstance(exc, InvalidStatus) and exc.response.status_code in (418, 429):
        return None
    return process_exception(exc)


def _retry_after(exc: BaseException) -> float:
    """Seconds a 429/418 answer asks us to wait (its Retry-After header), else 0."""
    headers = getattr(exc, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0
