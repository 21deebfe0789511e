"""Kraken spot WebSocket v1 and v2 as a sans-I/O protocol: frames in, typed events out.

One :class:`KrakenProtocol` parses both API versions (they never share a frame shape):

* **v1** — arrays ``[channelID, {...}, ({...},) "<channel>", "<pair>"]`` for ``book-<depth>``
  (snapshot ``as``/``bs``; updates ``a``/``b``, possibly as two dicts, checksum ``c`` in the
  last one; republished levels carry a 4th element ``"r"`` and are applied like any other),
  ``trade`` and ``ticker``; objects with ``event`` (heartbeat, systemStatus,
  subscriptionStatus, pong, error) become :class:`Status`.
* **v2** — objects ``{"channel": "book"|"trade"|"ticker"|"heartbeat"|"status", "type", "data"}``
  and method replies ``{"method": "subscribe", "result": {...}}``. Prices are JSON numbers:
  every frame is decoded with ``parse_float=str, parse_int=str`` so the lexeme survives
  (trailing zeros are part of the checksum).

Book levels go to :class:`BookMsg` as the venue's own lists (v1) or as ``[price, qty]``
lists built from v2's objects. The checksum (unsigned CRC32 over the top 10 asks then the
top 10 bids, ``.`` removed and leading zeros stripped) is verified by :meth:`verify` on the
book the engine keeps. Kraken stops sending levels that fall out of the subscribed depth,
so the book must be truncated to it: :attr:`depth` follows the subscriptions.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from flightdesk.core.errors import ParseError
from flightdesk.core.market.book import L2Book, Level
from flightdesk.core.market.events import (
    BookMsg,
    MarketEvent,
    Outbound,
    ResyncReason,
    Status,
    TickerMsg,
    TradeMsg,
)
from flightdesk.core.market.venue import VenueProtocol
from flightdesk.plugins.venues._wire import ERRORS as _ERRORS
from flightdesk.plugins.venues._wire import INF as _INF
from flightdesk.plugins.venues._wire import check_levels as _check_levels
from flightdesk.plugins.venues._wire import describe as _describe
from flightdesk.plugins.venues._wire import iso_ns as _iso_ns
from flightdesk.plugins.venues._wire import require_str as _str

__all__ = ["KrakenProtocol", "checksum_string", "kraken_checksum"]

#: numbers stay their JSON lexeme (v2 prices/quantities; v1 sends strings anyway)
_decode = json.JSONDecoder(parse_float=str, parse_int=str).decode
_SIDES = {"b": "buy", "s": "sell", "buy": "buy", "sell": "sell"}
V2_DEFAULT_DEPTH = 10  # Kraken v2 book subscriptions default to 10 levels


# -- checksum ------------------------------------------------------------------------------
def checksum_string(asks: Sequence[Level], bids: Sequence[Level]) -> str:
    """The string Kraken's CRC32 covers: asks best-first, then bids best-first."""
    return "".join([
        lv[0].replace(".", "").lstrip("0") + lv[1].replace(".", "").lstrip("0")
        for lv in (*asks, *bids)
    ])


def kraken_checksum(book: L2Book) -> int:
    """Unsigned CRC32 of the top 10 levels of ``book`` (v1 and v2 use the same rule)."""
    return zlib.crc32(checksum_string(book.ask_levels(10), book.bid_levels(10)).encode())


# -- small parsing helpers -----------------------------------------------------------------



def _unix_ns(s: str) -> int:
    """``"1618678123.481570"`` -> integer ns, exactly (no float round trip)."""
    sec, _, frac = s.partition(".")
    if not sec.isdigit() or (frac and not frac.isdigit()):
        raise ParseError(f"bad timestamp {s!r}")
    return int(sec) * 1_000_000_000 + int(frac[:9].ljust(9, "0"))






def _resubscribe(venue: str, unsub: dict, sub: dict) -> list[MarketEvent]:
    return [Outbound(venue, json.dumps(unsub)), Outbound(venue, json.dumps(sub))]


class KrakenProtocol(VenueProtocol):
    """Kraken v1 + v2 market data: books (checksummed), trades, tickers, status."""

    def __init__(self, name: str = "kraken", api: str = "v2") -> None:
        super().__init__(name)
        #: API version used to resubscribe a symbol never seen on a book channel
        self.api = api
        self.depth: int | None = None
        self.depths: dict[str, int] = {}  # symbol -> subscribed book depth
        self._api_of: dict[str, str] = {}  # symbol -> "v1" | "v2" (from its book frames)
        self._live: set[str] = set()  # symbols whose snapshot arrived since the last resync
        self._chan_depth: dict[str, int] = {}  # v1 channel name "book-1000" -> 1000

    # -- VenueProtocol ---------------------------------------------------------------------
    def parse(self, frame: str | bytes, ts_recv: int) -> list[MarketEvent]:
        self.stats.frames += 1
        try:
            msg = _decode(frame if isinstance(frame, str) else frame.decode())
            if type(msg) is list:
                return self._v1_array(msg, ts_recv)
            if type(msg) is dict:
                handler = _V2_CHANNELS.get(msg.get("channel")) if "channel" in msg else None
                if handler is not None:
                    return handler(self, msg, ts_recv)
                return self._object(msg)
            raise ParseError(f"expected a JSON array or object, got {type(msg).__name__}")
        except ParseError as exc:
            raise self._fail(str(exc), frame) from None
        except _ERRORS as exc:
            raise self._fail(_describe(exc), frame) from exc

    def verify(self, book: L2Book, msg: BookMsg) -> bool:
        depth = self.depths.get(msg.symbol)
        if depth is not None and self.depth is not None and depth < self.depth:
            # pairs subscribed at different depths: BookKeeper truncated to the largest one
            book.truncate(depth)
        ok = kraken_checksum(book) == msg.checksum
        self._count("checksum_ok" if ok else "checksum_failed")
        return ok

    def resync(self, symbol: str, reason: ResyncReason) -> list[MarketEvent]:
        """Drop ``symbol``'s updates until a new snapshot; resubscribe its book only."""
        self._live.discard(symbol)
        depth = self.depths.get(symbol, self.depth or V2_DEFAULT_DEPTH)
        if self._api_of.get(symbol, self.api) == "v1":
            sub = {"name": "book", "depth": depth}
            return _resubscribe(self.name, {"event": "unsubscribe", "pair": [symbol],
                                            "subscription": sub},
                                {"event": "subscribe", "pair": [symbol], "subscription": sub})
        params = {"channel": "book", "symbol": [symbol], "depth": depth}
        return _resubscribe(self.name, {"method": "unsubscribe", "params": params},
                            {"method": "subscribe", "params": params})

    # -- bookkeeping -----------------------------------------------------------------------
    def _set_depth(self, symbol: str, depth: int) -> None:
        if depth <= 0:
            raise ParseError(f"bad book depth {depth}")
        self.depths[symbol] = depth
        self.depth = max(self.depths.values())

    def _v1_depth(self, chan: str) -> int:
        depth = self._chan_depth.get(chan)
        if depth is None:
            depth = int(chan[5:]) if chan[4:5] == "-" else V2_DEFAULT_DEPTH
            self._chan_depth[chan] = depth
        return depth

    # -- v1 --------------------------------------------------------------------------------
    def _v1_array(self, msg: list, ts_recv: int) -> list[MarketEvent]:
        chan = _str(msg[-2], "channel name")
        pair = _str(msg[-1], "pair")
        if len(msg) < 4:
            raise ParseError(f"v1 {chan} message has {len(msg)} elements, expected >= 4")
        if chan.startswith("book"):
            return self._v1_book(msg, chan, pair, ts_recv)
        handler = _V1_CHANNELS.get(chan)
        if handler is None:
            return self._ignore("unhandled_channel")
        return handler(self, msg[1], pair, ts_recv)

    def _v1_book(self, msg: list, chan: str, pair: str, ts_recv: int) -> list[MarketEvent]:
        depth = self._v1_depth(chan)
        if self.depths.get(pair) != depth:
            self._set_depth(pair, depth)
        first = msg[1]
        if type(first) is dict and ("as" in first or "bs" in first):
            return [self._v1_snapshot(first, pair, ts_recv)]
        if pair not in self._live:
            return self._ignore("update_before_snapshot")
        return [self._v1_update(msg[1:-2], pair, ts_recv)]

    def _v1_update(self, parts: list, pair: str, ts_recv: int) -> BookMsg:
        asks: list = []
        bids: list = []
        checksum = None
        for part in parts:  # one dict, or an asks dict then a bids dict
            if type(part) is not dict:
                raise ParseError(f"v1 book update part must be an object, got {part!r}")
            if "a" in part:
                asks = asks + _check_levels(part["a"]) if asks else _check_levels(part["a"])
            if "b" in part:
                bids = bids + _check_levels(part["b"]) if bids else _check_levels(part["b"])
            if "c" in part:
                checksum = int(_str(part["c"], "checksum"))
        ts = max((lv[2] for lv in (asks + bids if asks and bids else asks or bids)), default=None)
        self._count("book_update")
        ts_event = ts_recv if ts is None else _unix_ns(_str(ts, "level time"))
        return BookMsg(self.name, pair, ts_event, ts_recv, bids, asks, checksum=checksum)

    def _v1_snapshot(self, body: dict, pair: str, ts_recv: int) -> BookMsg:
        asks = _check_levels(body.get("as", []))
        bids = _check_levels(body.get("bs", []))
        ts = max((lv[2] for lv in asks + bids), default=None)
        self._live.add(pair)
        self._api_of[pair] = "v1"
        self._count("book_snapshot")
        ts_event = ts_recv if ts is None else _unix_ns(_str(ts, "level time"))
        return BookMsg(self.name, pair, ts_event, ts_recv, bids, asks, snapshot=True)

    def _v1_trade(self, trades: Any, pair: str, ts_recv: int) -> list[MarketEvent]:
        if type(trades) is not list:
            raise ParseError("v1 trade payload must be an array")
        self._count("trade")
        return [TradeMsg(self.name, pair, _unix_ns(_str(t[2], "trade time")), ts_recv,
                         str(t[6]) if len(t) > 6 else "", float(_str(t[0], "price")),
                         float(_str(t[1], "volume")), _side(t[3])) for t in trades]

    def _v1_ticker(self, body: Any, pair: str, ts_recv: int) -> list[MarketEvent]:
        a, b = body["a"], body["b"]
        self._count("ticker")
        return [TickerMsg(self.name, pair, ts_recv, ts_recv, _num(b[0]), _num(b[2]),
                          _num(a[0]), _num(a[2]))]

    def _object(self, msg: dict) -> list[MarketEvent]:
        """v1 ``event`` objects and v2 ``method`` replies (and v2 channels we do not carry)."""
        if "event" in msg:
            event = _str(msg["event"], "event")
            if event == "subscriptionStatus" and msg.get("status") == "subscribed":
                chan = msg.get("channelName", "")
                if type(chan) is str and chan.startswith("book"):
                    self._set_depth(_str(msg["pair"], "pair"), self._v1_depth(chan))
            detail = msg.get("errorMessage") or msg.get("status") or ""
            self._count(event)
            return [Status(self.name, event, str(detail), str(msg.get("pair", "")))]
        if "method" in msg:
            return self._v2_method(msg)
        if "channel" in msg:
            return self._ignore("unhandled_channel")
        raise ParseError("object has no 'event', 'method' or 'channel'")

    # -- v2 --------------------------------------------------------------------------------
    def _v2_method(self, msg: dict) -> list[MarketEvent]:
        method = _str(msg["method"], "method")
        result = msg.get("result")
        symbol = ""
        if type(result) is dict:
            symbol = str(result.get("symbol", ""))
            if (method == "subscribe" and result.get("channel") == "book"
                    and msg.get("success") is True):
                self._set_depth(symbol, int(result.get("depth", V2_DEFAULT_DEPTH)))
        detail = "ok" if msg.get("success", True) is True else str(msg.get("error", "failed"))
        self._count(method)
        return [Status(self.name, method, detail, symbol)]

    def _v2_book(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        snapshot = _v2_type(msg) == "snapshot"
        out: list[MarketEvent] = []
        for d in msg["data"]:
            symbol = _str(d["symbol"], "symbol")
            if snapshot:
                self._live.add(symbol)
                self._api_of[symbol] = "v2"
                if symbol not in self.depths:
                    self._set_depth(symbol, V2_DEFAULT_DEPTH)
            elif symbol not in self._live:
                self._ignore("update_before_snapshot")
                continue
            bids = _check_levels([[lv["price"], lv["qty"]] for lv in d.get("bids", ())])
            asks = _check_levels([[lv["price"], lv["qty"]] for lv in d.get("asks", ())])
            cs = d.get("checksum")
            ts = d.get("timestamp")
            self._count("book_snapshot" if snapshot else "book_update")
            out.append(BookMsg(self.name, symbol, ts_recv if ts is None else _iso_ns(ts),
                               ts_recv, bids, asks, snapshot=snapshot,
                               checksum=None if cs is None else int(_str(cs, "checksum"))))
        return out

    def _v2_trade(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        _v2_type(msg)
        self._count("trade")
        return [TradeMsg(self.name, _str(t["symbol"], "symbol"),
                         _iso_ns(_str(t["timestamp"], "timestamp")), ts_recv,
                         str(t.get("trade_id", "")), float(_str(t["price"], "price")),
                         float(_str(t["qty"], "qty")), _side(t["side"])) for t in msg["data"]]

    def _v2_ticker(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        _v2_type(msg)
        self._count("ticker")
        return [TickerMsg(self.name, _str(t["symbol"], "symbol"),
                          _iso_ns(t["timestamp"]) if "timestamp" in t else ts_recv, ts_recv,
                          _num(t["bid"]), _num(t["bid_qty"]), _num(t["ask"]),
                          _num(t["ask_qty"])) for t in msg["data"]]

    def _v2_status(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        chan = msg["channel"]
        data = msg.get("data") or [{}]
        self._count(chan)
        return [Status(self.name, chan, str(data[0].get("system", "")))]


def _side(value: object) -> str:
    side = _SIDES.get(value) if type(value) is str else None
    if side is None:
        raise ParseError(f"unknown trade side {value!r}")
    return side


def _num(value: object) -> str:
    if type(value) is not str or not float(value) < _INF:
        raise ParseError(f"bad decimal {value!r}")
    return value


def _v2_type(msg: dict) -> str:
    kind = msg.get("type")
    if kind != "snapshot" and kind != "update":
        raise ParseError(f"v2 {msg['channel']} message type {kind!r} is not snapshot/update")
    if type(msg["data"]) is not list:
        raise ParseError("v2 'data' must be an array")
    return kind


_Handler = Callable[[KrakenProtocol, dict, int], "list[MarketEvent]"]
_V2_CHANNELS: dict[object, _Handler] = {
    "book": KrakenProtocol._v2_book,
    "trade": KrakenProtocol._v2_trade,
    "ticker": KrakenProtocol._v2_ticker,
    "heartbeat": KrakenProtocol._v2_status,
    "status": KrakenProtocol._v2_status,
}
_V1_CHANNELS: dict[str, Callable[[KrakenProtocol, Any, str, int], list[MarketEvent]]] = {
    "trade": KrakenProtocol._v1_trade,
    "ticker": KrakenProtocol._v1_ticker,
}
