"""Shared helpers for venue tests: capture readers, a minimal engine loop, a replay server.

The readers are deliberately simple; the normalize code will own the real ones.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from flightdesk.core.market.events import (
    BookMsg,
    MarketEvent,
    Outbound,
    Resync,
    SnapshotRequest,
    Status,
    TickerMsg,
    TradeMsg,
)
from flightdesk.core.market.keeper import BookKeeper
from flightdesk.core.market.venue import VenueProtocol

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def data_file(*parts: str) -> Path:
    """A file under ``../shared/data``; skip the test when it is absent."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"recorded data {path} is absent (expected ../shared/data beside the repo)")
    return path


def read_hftbacktest(path: Path) -> Iterator[tuple[int, bytes]]:
    """``<ns> <json>`` lines of a gzip'd hftbacktest capture, as (ts_recv_ns, frame)."""
    with gzip.open(path, "rb") as fh:
        for line in fh:
            ts, frame = line.rstrip(b"\n").split(b" ", 1)
            yield int(ts), frame


def read_cryptofeed_ws(path: Path) -> Iterator[tuple[int, str]]:
    """Received frames of a cryptofeed text capture (``<unix_ts>: <json>``) as (ns, frame).

    Connect lines (``url <-> ts``) and sent frames (``url <- ts: ..``) are skipped.
    """
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            head, sep, frame = line.rstrip("\n").partition(": ")
            if not sep or " " in head:
                continue
            yield round(float(head) * 1e9), frame


def read_cryptofeed_http(path: Path) -> Iterator[tuple[str, int, str]]:
    """``<url> -> <unix_ts>: <body>`` lines of a cryptofeed ``.http`` capture."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            head, sep, body = line.rstrip("\n").partition(": ")
            url, arrow, ts = head.partition(" -> ")
            if not (sep and arrow):
                continue
            yield url, round(float(ts) * 1e9), body


def is_snapshot_line(frame: bytes | str) -> bool:
    """The REST depth answer in an hftbacktest capture is the line without a stream key."""
    return (b'"stream"' if isinstance(frame, bytes) else '"stream"') not in frame


def snapshot_body(keeper: BookKeeper, venue: str, symbol: str) -> str:
    """A REST ``depth`` body holding ``symbol``'s whole current book, every level."""
    book = keeper.book(venue, symbol)
    return json.dumps({"lastUpdateId": book.last_id,
                       "bids": [list(lv) for lv in book.bid_levels(len(book.bids))],
                       "asks": [list(lv) for lv in book.ask_levels(len(book.asks))]})


@dataclass
class Pump:
    """A minimal engine: routes a protocol's events through a BookKeeper and records them."""

    protocol: VenueProtocol
    keeper: BookKeeper = field(init=False)
    applied: list[BookMsg] = field(default_factory=list)
    trades: list[TradeMsg] = field(default_factory=list)
    tickers: list[TickerMsg] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    resyncs: list[Resync] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    tops: dict[tuple[str, int], tuple[float, float, float, float]] = field(default_factory=dict)
    #: called with the symbol of every SnapshotRequest (a feed's ``request_snapshot``)
    on_request: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        self.keeper = BookKeeper({self.protocol.name: self.protocol})
        self._routes = {
            BookMsg: self._book, TradeMsg: self.trades.append, TickerMsg: self.tickers.append,
            Status: self.statuses.append, Resync: self.resync,
            SnapshotRequest: self._request, Outbound: lambda ev: None,
        }

    def frame(self, frame: str | bytes, ts: int) -> None:
        self.route(self.protocol.parse(frame, ts))

    def snapshot(self, symbol: str, body: str | bytes, ts: int) -> None:
        self.route(self.protocol.parse_snapshot(symbol, body, ts))

    def route(self, events: list[MarketEvent]) -> None:
        for ev in events:
            self._routes[type(ev)](ev)

    def book(self, symbol: str):
        return self.keeper.book(self.protocol.name, symbol)

    def _book(self, msg: BookMsg) -> None:
        book = self.keeper.apply(msg)
        if book is not None and not msg.snapshot:
            self.applied.append(msg)
            self.tops[msg.symbol, msg.last_id] = book.top()

    def resync(self, ev: Resync) -> None:
        self.resyncs.append(ev)
        self.keeper.resync(ev)
        self.route(self.keeper.take_followups())

    def _request(self, ev: SnapshotRequest) -> None:
        self.requests.append(ev.symbol)
        if self.on_request is not None:
            self.on_request(ev.symbol)


class ReplayServer:
    """A loopback Binance: replays frames over WebSocket and answers ``GET /api/v3/depth``.

    ``snapshot()`` gives each REST body. The frame cursor survives reconnects, so a second
    connection resumes where the first stopped; ``drop_at`` aborts the first connection's
    TCP stream once that many frames were sent, and the ``lost`` frames after them are
    never delivered (as if in flight); ``silent_after`` stops sending (but keeps
    every connection open) after that many frames; ``http_failures`` answers 503 first.
    """

    def __init__(self, frames: list[str], snapshot: Callable[[], str], *,
                 drop_at: int | None = None, lost: int = 0, silent_after: int | None = None,
                 http_failures: int = 0) -> None:
        self.frames = frames
        self.snapshot = snapshot
        self.drop_at = drop_at
        self.lost = lost
        self.silent_after = len(frames) if silent_after is None else silent_after
        self.http_failures = http_failures
        self.cursor = 0
        self.connections = 0
        self.http_requests = 0
        self.server: Server | None = None

    async def __aenter__(self) -> ReplayServer:
        self.server = await serve(self._replay, "127.0.0.1", 0, process_request=self._http,
                                  compression=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream?streams=btcusdt@depth@100ms"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _http(self, conn: ServerConnection, request: Request) -> Response | None:
        if not request.path.startswith("/api/v3/depth"):
            return None  # a WebSocket handshake: carry on
        self.http_requests += 1
        if self.http_failures > 0:
            self.http_failures -= 1
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "busy\n")
        return conn.respond(HTTPStatus.OK, self.snapshot())

    async def _replay(self, ws: ServerConnection) -> None:
        self.connections += 1
        drop_at = self.drop_at if self.connections == 1 else None
        while self.cursor < min(len(self.frames), self.silent_after):
            if self.cursor == drop_at:
                ws.transport.abort()
                self.cursor += self.lost
                return
            await ws.send(self.frames[self.cursor])
            self.cursor += 1
            if self.cursor % 64 == 0:
                await asyncio.sleep(0)  # let the client and the HTTP side run
        await ws.wait_closed()
