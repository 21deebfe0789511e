"""The sim exchange: a :class:`SimMarket` served over loopback in Binance spot's wire format.

Two loopback ports serve the Binance spot protocol:

* the WebSocket port: ``/stream?streams=a/b`` (combined streams: ``{"stream": ...,
  "data": ...}``) and ``/ws/<stream>`` or ``/ws`` (raw payloads), with the live
  ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS`` control messages, and the user data
  stream ``/ws/<listenKey>`` (:mod:`.userstream`);
* the REST port (:attr:`SimExchange.rest_url`, :mod:`.http` and :mod:`.rest`): market data
  (``GET /api/v3/depth`` answered from the same market, so a snapshot is always consistent
  with the diffs already sent) and the SIGNED order and account API, matched against the
  same book (:mod:`.orders`).

One background task steps the market on a steady schedule (due frames are computed from the
monotonic clock, so the rate does not drift; at high rates it wakes about once a millisecond
and makes what is due). Each chunk of payloads is serialized once (the market writes JSON
text) and sent to each subscribed client with a single transport write. Sending never waits
for a client: a client whose write buffer grows past ``max_buffer`` bytes is closed with code
1008.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from flightdesk.plugins.venues.sim.fanout import Client, Fanout
from flightdesk.plugins.venues.sim.http import HttpServer
from flightdesk.plugins.venues.sim.limits import Faults
from flightdesk.plugins.venues.sim.market import SimMarket
from flightdesk.plugins.venues.sim.rest import DEFAULT_KEY, DEFAULT_SECRET, SimRest

log = logging.getLogger(__name__)

DEFAULT_SYMBOLS = {"BTCUSDT": 60000.0, "ETHUSDT": 3000.0}
_GRACE = 1.5  # seconds stop() waits for clients to finish closing before aborting them
_CHUNK = 256  # most frames produced between two yields to the event loop
_TICK = 0.001  # at a fixed rate, the pump wakes up at most about this often (seconds)


class SimExchange:
    """A seeded Binance-spot-speaking exchange on loopback: WebSocket streams (market data
    and the user data stream ``/ws/<listenKey>``) on :attr:`port`, the REST API (market data,
    SIGNED orders and account, see :mod:`.rest`) on :attr:`rest_url`.

    ``rate`` is the number of market payloads produced per second (all streams and symbols,
    whether or not anyone subscribed); ``rate <= 0`` produces as fast as possible while a
    client is connected, pausing while any client has over ``max_buffer / 4`` bytes waiting
    (at full speed the slowest client sets the pace instead of being closed). ``burst=False``
    turns off the bursts of book activity. A client is closed (1008) once more than
    ``max_buffer`` bytes wait in its user-space write buffer; ``sndbuf`` optionally caps the
    kernel send buffer of each client socket as well.

    ``api_key``/``api_secret`` are the one account's credentials; ``trading`` holds the
    other options of :class:`SimRest` (``balances``, ``rules``, ``fee_bps``,
    ``weight_limit``, ``order_limit``, ``ban_after``); :attr:`faults` switches test faults.
    """

    def __init__(
        self,
        symbols: dict[str, float] | None = None,
        seed: int = 7,
        rate: float = 200.0,
        host: str = "127.0.0.1",
        port: int = 0,
        burst: bool = True,
        *,
        book_ticker: bool = False,
        max_buffer: int = 4 * 2**20,
        sndbuf: int | None = None,
        api_key: str = DEFAULT_KEY,
        api_secret: str = DEFAULT_SECRET,
        trading: dict[str, Any] | None = None,
        **market_options: Any,
    ) -> None:
        if not burst:
            market_options["burst_prob"] = 0.0
        self.market = SimMarket(
            dict(symbols or DEFAULT_SYMBOLS), seed, book_ticker=book_ticker, **market_options
        )
        self.rate, self.host, self.max_buffer, self.sndbuf = rate, host, max_buffer, sndbuf
        self._port = port
        self._server: Server | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._rr = 0
        self._stats = {
            "frames": 0,
            "sent": 0,
            "connections": 0,
            "snapshots": 0,
            "slow_closed": 0,
            "lagged": 0,
        }
        self._fan = Fanout(self._stats)
        self.api = SimRest(
            self.market, seed, api_key=api_key, api_secret=api_secret, **(trading or {})
        )
        self._rest = HttpServer(self.api.handle, host)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> SimExchange:
        """Listen, start the market task and return self."""
        self._wake = asyncio.Event()
        self._server = await serve(
            self._handle,
            self.host,
            self._port,
            compression=None,
            process_request=self._http,
            close_timeout=1.0,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        await self._rest.start()
        self._pump_task = asyncio.create_task(self._pump(), name="sim-exchange-pump")
        log.info("sim exchange listening on %s", self.rest_url)
        return self

    async def stop(self) -> None:
        """Stop the market task, close every client (1001) and the listening socket."""
        if self._pump_task is not None:
            self._pump_task.cancel()
            await asyncio.gather(self._pump_task, return_exceptions=True)
            self._pump_task = None
        await self._rest.stop()
        if self._server is not None:
            await self._close_server(self._server)
            self._server = None
        await asyncio.gather(*self._fan.closing, return_exceptions=True)

    @staticmethod
    async def _close_server(server: Server) -> None:
        """Close the server; abort connections still closing after the grace period.

        A client that stopped reading never sees our close frame behind its backlog (nor we
        its TCP close), and ``wait_closed`` would wait for it as long as the client waits.
        """
        server.close()
        try:
            await asyncio.wait_for(server.wait_closed(), _GRACE)
        except asyncio.TimeoutError:  # not the builtin before Python 3.11
            for conn in list(server.all_connections):
                conn.transport.abort()
            await server.wait_closed()

    async def __aenter__(self) -> SimExchange:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- addresses and counters -----------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def rest_url(self) -> str:
        """The REST API (HTTP/1.1, keep-alive, GET/POST/PUT/DELETE)."""
        return f"http://{self.host}:{self._rest.port}"

    @property
    def faults(self) -> Faults:
        return self.api.faults

    @property
    def api_key(self) -> str:
        """The sim account's API key (a local test key, not a secret)."""
        return self.api.api_key

    @property
    def api_secret(self) -> str:
        """The sim account's HMAC secret (a local test key)."""
        return self.api.api_secret

    def ws_url(
        self,
        symbols: Iterable[str] | None = None,
        channels: Iterable[str] = ("depth@100ms", "trade"),
    ) -> str:
        """The combined-stream URL of ``channels`` for ``symbols`` (default: all symbols)."""
        syms = self.market.symbols if symbols is None else list(symbols)
        names = [f"{s.lower()}@{c}" for s in syms for c in channels]
        return f"ws://{self.host}:{self._port}/stream?streams={'/'.join(names)}"

    def stats(self) -> dict[str, int]:
        """Counters: frames produced, frames sent (per client), clients now and ever,
        snapshots served, clients closed for being slow, schedule resets after a stall;
        REST requests, errors and auth failures, rate-limited and banned answers; orders,
        fills (maker fills among them), rejections and cancels; user-stream events."""
        api = self.api
        out = dict(self._stats, clients=len(self._fan.clients))
        out.update(api.orders.stats, **api.limits.stats, **api.user.stats)
        out.update(
            rest_requests=api.stats["requests"],
            rest_errors=api.stats["errors"],
            auth_failures=api.stats["auth_failures"],
        )
        out["snapshots"] += api.stats["snapshots"]
        return out

    # -- market task --------------------------------------------------------------------
    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        t0, made = loop.time(), 0
        # wake up at most about once per _TICK: at a high rate, ~rate * _TICK payloads a time
        batch = max(1, min(_CHUNK, int(self.rate * _TICK)))
        while True:
            if self.api.faults.hold_market:  # the book stands still; the schedule restarts
                await asyncio.sleep(_TICK)
                t0, made = loop.time(), 0
                continue
            if self.rate <= 0:
                await self._wait_for_clients()
                if self._fan.backlogged(self.max_buffer // 4):
                    await asyncio.sleep(_TICK)
                    continue
                made += self._produce(_CHUNK)
            else:
                due = int((loop.time() - t0) * self.rate) - made
                if due < batch:
                    await asyncio.sleep((made + batch) / self.rate - (loop.time() - t0))
                    continue
                if due > self.rate + _CHUNK:  # a stall of over a second: skip, don't flood
                    self._stats["lagged"] += 1
                    made += due - _CHUNK
                made += self._produce(min(due, _CHUNK))
            self._fan.close_slow(self.max_buffer)
            await asyncio.sleep(0)

    async def _wait_for_clients(self) -> None:
        assert self._wake is not None
        while not self._fan.clients:
            self._wake.clear()
            await self._wake.wait()

    def _produce(self, n: int) -> int:
        """Step the symbols round-robin until ``n`` payloads are made, send them; return how
        many were made."""
        ts = time.time_ns() // 1_000_000
        step, syms, made = self.market.step_text, self.market.symbols, 0
        msgs: list[tuple[str, str]] = []
        while made < n:
            sym = syms[self._rr]
            self._rr = (self._rr + 1) % len(syms)
            new = step(ts, sym)
            msgs += new
            made += len(new)
        self._stats["frames"] += made
        self._fan.publish(msgs)
        self.api.orders.on_market(msgs, ts)
        return made

    # -- WebSocket clients --------------------------------------------------------------
    async def _handle(self, conn: ServerConnection) -> None:
        if conn.request is not None and self.api.user.is_key(urlsplit(conn.request.path).path):
            await self.api.user.serve(conn)
            return
        client = self._register(conn)
        try:
            async for message in conn:
                await conn.send(self._control(client, message))
        except ConnectionClosed:
            pass
        finally:
            self._fan.remove(conn)

    def _register(self, conn: ServerConnection) -> Client:
        """Subscribe a new client to the streams in its URL (``/stream?streams=`` or ``/ws/``)."""
        url = urlsplit(conn.request.path if conn.request else "/")
        if url.path == "/stream":
            streams = parse_qs(url.query).get("streams", [""])[0].split("/")
        else:
            streams = url.path[4:].split("/")
        client = self._fan.add(conn, url.path == "/stream", streams)
        if self.sndbuf:
            sock = conn.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
        self._stats["connections"] += 1
        if self._wake is not None:
            self._wake.set()
        return client

    def _control(self, client: Client, message: str | bytes) -> str:
        """Answer one Binance control message (SUBSCRIBE and friends)."""
        try:
            req = json.loads(message)
            method, rid = req["method"], req.get("id")
            params = req.get("params", [])
        except (ValueError, KeyError, TypeError):
            return json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None})
        result: list[str] | None = None
        if method == "SUBSCRIBE" and isinstance(params, list):
            self._fan.subscribe(client, params)
        elif method == "UNSUBSCRIBE" and isinstance(params, list):
            self._fan.unsubscribe(client, params)
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(client.streams)
        else:
            return json.dumps({"error": {"code": 2, "msg": "Invalid request"}, "id": rid})
        return json.dumps({"result": result, "id": rid})

    # -- plain HTTP on the WebSocket port -------------------------------------------------
    def _http(self, conn: ServerConnection, request: Request) -> Response | None:
        """Let WebSocket paths upgrade; the REST API is on :attr:`rest_url`, not here."""
        path = urlsplit(request.path).path
        if path in ("/stream", "/ws") or path.startswith("/ws/"):
            return None
        body = json.dumps({"code": -1000, "msg": f"Not found; the REST API is at {self.rest_url}."})
        response = conn.respond(404, body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json;charset=UTF-8"
        return response
