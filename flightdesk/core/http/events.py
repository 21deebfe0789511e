"""``GET /events``: live quotes, fills, orders and the risk mode as server-sent events.

Each stream a client asks for is one bounded subscriber buffer on the bus
(``[telemetry] events_buffer`` batches), exactly like a Flight live subscriber: the engine
only appends to it, and when the client reads too slowly (its socket is full, so the
server is waiting to send) the oldest batches are dropped and counted — in ``status``
under ``subscribers`` (``peer`` ``http ...``) and in this stream's own ``drops`` event —
while the engine and every other client go on untouched.

Every ``interval_ms`` (default 250) the stream sends what arrived meanwhile, one event per
stream, its data a JSON list of rows: ``quotes`` keeps the latest row per instrument
(``interval_ms=0``: every row, unconflated), ``fills``, ``orders`` and ``events`` send
every row. ``risk`` (kill switch, risk mode, PnL, open orders) is sent at the start and
whenever it changes; a comment line keeps an idle connection alive (and finds a client
that went away). The stream ends when the desk stops; a client stuck on a full socket is
cut off by the server's graceful-shutdown timeout, so it never holds up the desk's stop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from starlette.concurrency import run_in_threadpool

from flightdesk.core.flight.streams import Slot
from flightdesk.core.http.context import HttpContext
from flightdesk.core.http.jsonable import dumps, rows
from flightdesk.core.http.routes import Param, Route
from flightdesk.core.runtime.bus import Subscriber

#: bus stream -> SSE event name
BUS_STREAMS = {"quotes": "quotes", "fills": "fills", "orders": "orders", "events": "events"}
STREAMS = (*BUS_STREAMS, "risk")
DEFAULT_STREAMS = ("quotes", "fills", "orders", "risk")
KEEPALIVE_S = 5.0
_DRAIN = 256  # batches taken per stream per turn at most


async def events(ctx: HttpContext, a: dict[str, Any]) -> Any:
    from flightdesk.core.http.auth import ApiError

    wanted = a["streams"] or DEFAULT_STREAMS
    unknown = [s for s in wanted if s not in STREAMS]
    if unknown:
        raise ApiError(400, f"/events has no stream {unknown[0]!r}; streams are "
                            f"{', '.join(STREAMS)}")
    slot = ctx.events.take()  # LimitError past events_max_clients: a 429
    return EventStream(ctx, slot, tuple(dict.fromkeys(wanted)), a["symbols"],
                       a["interval_ms"])


class EventStream:
    """One ``/events`` response (an ASGI app): subscribes when it starts, unsubscribes and
    gives its slot back however it ends (client gone, desk stopping, task cancelled)."""

    def __init__(self, ctx: HttpContext, slot: Slot, streams: tuple[str, ...],
                 symbols: tuple[str, ...], interval_ms: int) -> None:
        self.ctx, self.slot, self.streams = ctx, slot, streams
        self.symbols = pa.array(symbols, pa.string()) if symbols else None
        self.interval_ms = interval_ms
        self.subs: dict[str, Subscriber] = {}
        self.drops: dict[str, int] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch(receive, gone))
        try:
            self._subscribe(scope)
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-store"), (b"x-accel-buffering", b"no")]})
            await self._run(send, gone)
        finally:
            watcher.cancel()
            for sub in self.subs.values():
                self.ctx.desk.unsubscribe(sub)
            self.slot.release()

    def _subscribe(self, scope: Any) -> None:
        client = scope.get("client") or ("?", 0)
        peer = f"http {client[0]}:{client[1]}"
        buffer = int(self.ctx.cfg["events_buffer"])
        symbols = self.symbols.to_pylist() if self.symbols is not None else []
        for stream in self.streams:
            if stream in BUS_STREAMS:
                self.subs[stream] = self.ctx.desk.subscribe(
                    stream, maxlen=buffer, params={"peer": peer, "symbols": symbols})
                self.drops[stream] = 0

    async def _run(self, send: Any, gone: asyncio.Event) -> None:
        hello = {"streams": list(self.streams), "interval_ms": self.interval_ms,
                 "subscribers": {s: sub.id for s, sub in self.subs.items()}}
        await send(_body(b"retry: 2000\n\n" + _event("hello", hello)))
        risk: Any = None
        last_sent = time.monotonic()
        wait = max(self.interval_ms, 20) / 1000.0
        while not gone.is_set() and not self.ctx.stopping:
            await asyncio.sleep(wait)
            chunks = [self._stream_event(stream, sub) for stream, sub in self.subs.items()]
            if "risk" in self.streams:
                now_risk = await run_in_threadpool(self.ctx.risk)
                if now_risk != risk:
                    risk = now_risk
                    chunks.append(_event("risk", risk))
            chunks.append(self._drops_event())
            payload = b"".join(c for c in chunks if c)
            if not payload and time.monotonic() - last_sent >= KEEPALIVE_S:
                payload = b": keep-alive\n\n"
            if payload:
                await send(_body(payload))  # waits while the client's socket is full
                last_sent = time.monotonic()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _stream_event(self, stream: str, sub: Subscriber) -> bytes:
        batches = sub.drain(0, limit=_DRAIN)
        if not batches:
            return b""
        table = pa.Table.from_batches(batches)
        if self.symbols is not None and "symbol" in table.column_names:
            table = table.filter(pc.is_in(table.column("symbol"), self.symbols))
        if stream == "quotes" and self.interval_ms > 0:
            table = _latest_per_instrument(table)
        if not table.num_rows:
            return b""
        return _event(BUS_STREAMS[stream], rows(table))

    def _drops_event(self) -> bytes:
        now = {s: sub.drops for s, sub in self.subs.items()}
        if now == self.drops:
            return b""
        self.drops = now
        return _event("drops", now)


def _latest_per_instrument(table: pa.Table) -> pa.Table:
    """The last row of each (venue, symbol), in arrival order."""
    if table.num_rows <= 1:
        return table
    keys = list(zip(table.column("venue").to_pylist(), table.column("symbol").to_pylist(),
                    strict=True))
    last: dict[tuple[str, str], int] = {}
    for i, key in enumerate(keys):
        last[key] = i
    return table.take(sorted(last.values()))


async def _watch(receive: Any, gone: asyncio.Event) -> None:
    """Set ``gone`` once the client disconnects."""
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def _body(payload: bytes) -> dict[str, Any]:
    return {"type": "http.response.body", "body": payload, "more_body": True}


EVENT_ROUTES = (
    Route("GET", "/events", "live quotes, fills, orders and risk mode (text/event-stream)",
          events, stream=True, content_type="text/event-stream", tag="live",
          params=(Param("streams", list, f"comma-separated, of {', '.join(STREAMS)} "
                                         f"(default {','.join(DEFAULT_STREAMS)})"),
                  Param("symbols", list, "comma-separated instruments (default all)"),
                  Param("interval_ms", int, "send every this many ms; quotes keep the "
                                            "latest per instrument (0: every row)",
                        default=250, ge=0, le=60_000))),
)
