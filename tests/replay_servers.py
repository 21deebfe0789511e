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

from flightdesk.core.market.book import L2Book
from flightdesk.core.market.venue import VenueProtocol
from flightdesk.plugins.venues.okx.parse import okx_checksum

BIG = 10 * 2**20


def first_level(obj: Any) -> list | None:
    """The first ``[price, qty, ...]`` list of strings inside a decoded frame (a v2
    ``{"price", "qty"}`` object counts too, decoded with ``parse_float=str``)."""
    if isinstance(obj, dict) and "price" in obj and "qty" in obj:
        return [str(obj["price"]), str(obj["qty"])]
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


_V2_QTY = re.compile(r'"qty":[^,}]+')
_V2_PRICE = re.compile(r'"price":[^,}]+')


def mutate(frame: str, how: str) -> str:
    if '"qty":' in frame:  # v2: numbers are lexemes, edit the text
        if how == "corrupt":
            return _V2_QTY.sub('"qty":7.77', frame, count=1)
        return _V2_PRICE.sub('"price":NaN' if how == "nan" else '"price":-1', frame, count=1)
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
    ack: Callable[[dict], list[str]] | None = None  # replies to a client message


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


def _v2_levels(levels: list) -> str:
    """v2 levels with prices as JSON numbers spelled exactly as the venue's strings."""
    return "[" + ",".join(f'{{"price":{lv[0]},"qty":{lv[1]}}}' for lv in levels) + "]"


def _v2_book(kind: str, symbol: str, bids: list, asks: list, checksum: int | None) -> str:
    cs = "" if checksum is None else f',"checksum":{checksum}'
    return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":{json.dumps(symbol)},'
            f'"bids":{_v2_levels(bids)},"asks":{_v2_levels(asks)}{cs}}}]}}')


def kraken_v1_to_v2(frame: str) -> str | None:
    """A recorded Kraken v1 book frame in the v2 shape (same levels, same checksum)."""
    msg = json.loads(frame)
    if not isinstance(msg, list) or not str(msg[-2]).startswith("book"):
        return None
    parts = [p for p in msg[1:-2] if isinstance(p, dict)]
    if "as" in parts[0] or "bs" in parts[0]:
        return _v2_book("snapshot", msg[-1], parts[0].get("bs", []), parts[0].get("as", []),
                        None)
    asks = [lv for p in parts for lv in p.get("a", [])]
    bids = [lv for p in parts for lv in p.get("b", [])]
    checksum = next(int(p["c"]) for p in parts if "c" in p)
    return _v2_book("update", msg[-1], bids, asks, checksum)


def kraken_v2_snapshot(symbol: str, book: L2Book) -> str:
    return _v2_book("snapshot", symbol, book.bid_levels(1000), book.ask_levels(1000), None)


def kraken_v2_subscribed(m: dict) -> list[str]:
    params = m.get("params") or {}
    if m.get("method") == "subscribe" and params.get("channel") == "book":
        return list(params.get("symbol", []))
    return []


def kraken_v2_ack(m: dict) -> list[str]:
    params = m.get("params") or {}
    return [json.dumps({"method": m.get("method"), "success": True,
                        "result": {"channel": params.get("channel"), "symbol": s,
                                   "depth": params.get("depth", 10)}})
            for s in params.get("symbol", [])] if "method" in m else []


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
    "kraken-v2": Adapter(kraken_v2_subscribed, kraken_v2_snapshot, ack=kraken_v2_ack),
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
            msg = json.loads(message)
            if self.adapter.ack is not None:
                for reply in self.adapter.ack(msg):
                    await ws.send(reply)
            for symbol in self.adapter.subscribed(msg):
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
