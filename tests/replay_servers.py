"""Loopback venues for fault tests: replay a recording, inject faults, answer resubscribes.

:class:`VenueReplay` serves one recording over a real ``websockets`` server on 127.0.0.1.
It keeps the venue's *true* books (every recorded frame, in order, through the real
protocol and a BookKeeper — the uninterrupted run) as it streams, so when the client
(re)subscribes to a symbol it answers with a fresh snapshot of that book in the venue's
own format, as the exchange would. Faults are keyed by frame index:

``gap``       the frame is never sent (the venue's book still moves: a lost message)
``corrupt``   the first level's quantity is altered in the frame sent
``nan``/``negative``  the first level's price becomes ``NaN`` / ``-1``
``garbage``   a junk text frame goes out before the frame
``big``       a 10 MB text frame (a JSON string) goes out before the frame
``binary``    a binary frame of invalid UTF-8 goes out before the frame
``badtext``   a *text* frame of invalid UTF-8 (the client must fail the connection, 1007)
``drop``      the TCP connection is aborted before the frame; ``lost`` frames after it are
              never delivered (in flight when the connection died)
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from venue_helpers import Pump
from websockets.asyncio.server import Server, ServerConnection, serve

from flightdesk.core.book import L2Book
from flightdesk.core.venue import VenueProtocol
from flightdesk.plugins.venues.okx.parse import okx_checksum

BIG = 10 * 2**20


def first_level(obj: Any) -> list | None:
    """The first ``[price, qty, ...]`` list of strings inside a decoded frame."""
    if isinstance(obj, list):
        if len(obj) >= 2 and all(isinstance(x, str) for x in obj[:2]) and \
                obj[0].replace(".", "", 1).isdigit():
            return obj
        items = obj
    elif isinstance(obj, dict):
        items = list(obj.values())
    else:
        return None
    for item in items:
        found = first_level(item)
        if found is not None:
            return found
    return None


def mutate(frame: str, how: str) -> str:
    obj = json.loads(frame)
    level = first_level(obj)
    assert level is not None, frame[:100]
    if how == "corrupt":
        level[1] = "7.77" if level[1] != "7.77" else "8.88"
    else:
        level[0] = "NaN" if how == "nan" else "-1"
    return json.dumps(obj, separators=(",", ":"))


@dataclass
class Adapter:
    """What differs between venues: subscribed symbols, the snapshot frame, and (venues with
    a per-connection sequence) how to stamp a frame with its sequence number."""

    subscribed: Callable[[dict], list[str]]
    snapshot: Callable[[str, L2Book], str]
    stamp: Callable[[str, int], str] | None = None


def _levels(levels: list, n: int | None = None) -> list:
    return [list(lv) for lv in levels[:n]]


def kraken_snapshot(symbol: str, book: L2Book) -> str:
    body = {"as": _levels(book.ask_levels(1000)), "bs": _levels(book.bid_levels(1000))}
    return json.dumps([0, body, "book-1000", symbol])


def okx_snapshot(symbol: str, book: L2Book) -> str:
    data = {"asks": _levels(book.ask_levels(len(book.asks))),
            "bids": _levels(book.bid_levels(len(book.bids))),
            "ts": str(book.ts_event // 1_000_000), "checksum": okx_checksum(book)}
    return json.dumps({"arg": {"channel": "books-l2-tbt", "instId": symbol},
                       "action": "snapshot", "data": [data]})


def coinbase_snapshot(symbol: str, book: L2Book) -> str:
    return json.dumps({"type": "snapshot", "product_id": symbol,
                       "bids": _levels(book.bid_levels(len(book.bids))),
                       "asks": _levels(book.ask_levels(len(book.asks)))})


ADVANCED_TIME = "2021-04-17T16:43:37.000000Z"


def advanced_updates(bids: list, asks: list) -> list[dict]:
    return [{"side": side, "event_time": ADVANCED_TIME, "price_level": lv[0],
             "new_quantity": lv[1]} for side, levels in (("bid", bids), ("offer", asks))
            for lv in levels]


def to_advanced(frame: str) -> str | None:
    """A legacy Coinbase frame as Advanced Trade ``l2_data`` (sequence_num stamped later)."""
    msg = json.loads(frame)
    kind = msg.get("type")
    if kind == "snapshot":
        updates = advanced_updates(msg["bids"], msg["asks"])
    elif kind == "l2update":
        updates = [{"side": "bid" if side == "buy" else "offer", "event_time": msg["time"],
                    "price_level": px, "new_quantity": sz} for side, px, sz in msg["changes"]]
    else:
        return None
    return json.dumps({"channel": "l2_data", "client_id": "", "timestamp": ADVANCED_TIME,
                       "sequence_num": -1, "events": [{"type": "update" if kind == "l2update"
                                                       else "snapshot",
                                                       "product_id": msg["product_id"],
                                                       "updates": updates}]})


def advanced_snapshot(symbol: str, book: L2Book) -> str:
    updates = advanced_updates(book.bid_levels(len(book.bids)), book.ask_levels(len(book.asks)))
    return json.dumps({"channel": "l2_data", "client_id": "", "timestamp": ADVANCED_TIME,
                       "sequence_num": -1, "events": [{"type": "snapshot", "product_id": symbol,
                                                       "updates": updates}]})


_SEQ = re.compile(r'"sequence_num": -?\d+')


def stamp_sequence(frame: str, seq: int) -> str:
    return _SEQ.sub(f'"sequence_num": {seq}', frame, count=1)


def advanced_session(legacy_frames: list[str]) -> list[str]:
    """The legacy recording's book frames as Advanced Trade, numbered as one connection."""
    out = [f for f in map(to_advanced, legacy_frames) if f is not None]
    return [stamp_sequence(f, i) for i, f in enumerate(out)]


ADAPTERS = {
    "kraken": Adapter(lambda m: m.get("pair", []) if m.get("event") == "subscribe" else [],
                      kraken_snapshot),
    "okx": Adapter(lambda m: [a["instId"] for a in m.get("args", [])
                              if a.get("channel", "").startswith("books")]
                   if m.get("op") == "subscribe" else [], okx_snapshot),
    "coinbase": Adapter(lambda m: m.get("product_ids", []) if m.get("type") == "subscribe"
                        else [], coinbase_snapshot),
    "coinbase-advanced": Adapter(lambda m: m.get("product_ids", [])
                                 if m.get("type") == "subscribe" and m.get("channel") == "level2"
                                 else [], advanced_snapshot, stamp_sequence),
}


@dataclass
class VenueReplay:
    """A loopback venue replaying ``frames`` with ``faults`` (see the module docstring)."""

    venue: str
    protocol: VenueProtocol
    frames: list[str]
    faults: dict[int, str] = field(default_factory=dict)
    lost: int = 0
    reference: Pump = field(init=False)
    cursor: int = 0
    connections: int = 0
    snapshots_sent: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    server: Server | None = None

    def __post_init__(self) -> None:
        self.reference = Pump(self.protocol)
        self.adapter = ADAPTERS[self.venue]
        self.seq = 0  # per-connection sequence (venues whose adapter stamps frames)

    async def __aenter__(self) -> VenueReplay:
        self.server = await serve(self._handler, "127.0.0.1", 0, compression=None,
                                  max_size=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/ws"

    def _advance(self) -> None:
        self.reference.frame(self.frames[self.cursor], self.cursor)
        self.cursor += 1

    async def _send(self, ws: ServerConnection, frame: str) -> None:
        if self.adapter.stamp is not None:
            frame = self.adapter.stamp(frame, self.seq)
            self.seq += 1
        await ws.send(frame)

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.seq = 0
        pending: asyncio.Queue[str] = asyncio.Queue()
        subscribed = asyncio.Event()
        reader = asyncio.create_task(self._read(ws, pending, subscribed))
        await subscribed.wait()  # stream once the client subscribed
        try:
            await self._stream(ws, pending)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read(self, ws: ServerConnection, pending: asyncio.Queue[str],
                    subscribed: asyncio.Event) -> None:
        async for message in ws:
            if message == "ping":
                await ws.send("pong")
                continue
            for symbol in self.adapter.subscribed(json.loads(message)):
                book = self.reference.keeper.books.get((self.protocol.name, symbol))
                if book is not None and (book.bids or book.asks):
                    pending.put_nowait(symbol)
            subscribed.set()

    async def _stream(self, ws: ServerConnection, pending: asyncio.Queue[str]) -> None:
        while self.cursor < len(self.frames):
            while not pending.empty():
                symbol = pending.get_nowait()
                book = self.reference.keeper.book(self.protocol.name, symbol)
                await self._send(ws, self.adapter.snapshot(symbol, book))
                self.snapshots_sent += 1
            fault = self.faults.pop(self.cursor, None)
            if fault is not None and await self._fault(ws, fault):
                return
            if fault == "gap":
                self.seq += 1  # sent by the venue, lost on the way
            else:
                frame = self.frames[self.cursor]
                await self._send(ws, mutate(frame, fault)
                                 if fault in ("corrupt", "nan", "negative") else frame)
            self._advance()
            if self.cursor % 32 == 0:
                await asyncio.sleep(0)
        self.done.set()
        await ws.wait_closed()

    async def _fault(self, ws: ServerConnection, fault: str) -> bool:
        """Send what the fault adds; True when the connection is gone."""
        if fault == "drop":
            ws.transport.abort()
            for _ in range(self.lost):
                self._advance()
            return True
        extra: dict[str, Any] = {"garbage": "}{ not json", "big": '"' + "x" * BIG + '"',
                                 "binary": b"\xff\xfe\x00garbage"}
        if fault in extra:
            await ws.send(extra[fault])
        elif fault == "badtext":
            await ws.send(b"\xc3\x28 invalid utf-8", text=True)
            await ws.wait_closed()  # the client fails the connection (1007)
            return True
        return False
