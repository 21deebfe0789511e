"""MEXC spot v3 market data, sans-I/O: protobuf pushes and the legacy JSON channels.

**Protobuf** (``wss://wbs-api.mexc.com/ws``; binary frames, ``PushDataV3ApiWrapper``) decoded
by field number (:mod:`.proto`): ``channel`` = 1, ``symbol`` = 3, ``sendTime`` = 6 (ms), and
the body in one of

=====  ==========================  ==========================================================
 313   ``publicAggreDepths``       diff depth: asks 1, bids 2 (``{price 1, quantity 2}``),
                                   ``fromVersion`` 4, ``toVersion`` 5 -> :class:`BookMsg`
 302   ``publicIncreaseDepths``    diff depth with one ``version`` (4)
 314   ``publicAggreDeals``/301    deals ``{price 1, quantity 2, tradeType 3 (1 buy, 2 sell),
                                   time 4 (ms), tradeId 5}`` -> :class:`TradeMsg`
 315   ``publicAggreBookTicker``   bidPrice 1, bidQuantity 2, askPrice 3, askQuantity 4
       /305                        -> :class:`TickerMsg`
=====  ==========================  ==========================================================

**Legacy JSON** (``wss://wbs.mexc.com/ws``): ``{"c": channel, "d": {...}, "s": symbol, "t": ms}``
with ``spot@public.increase.depth.v3.api`` (``asks``/``bids`` of ``{"p", "v"}``, version ``r``),
``spot@public.deals.v3.api`` (``deals`` of ``{"p", "v", "S", "t"}``) and
``spot@public.bookTicker.v3.api`` (``{"a", "A", "b", "B"}``). Subscription acks and PONG
replies (``{"id", "code", "msg"}``) become :class:`Status`.

Book sequencing ("How to properly maintain a local order book", VENUE_RULES.md §5), per
symbol *fresh* / *buffering* / *synced* like Binance: the first diff is buffered and a
:class:`SnapshotRequest` emitted; :meth:`MexcProtocol.parse_snapshot` (``GET
/api/v3/depth``: ``lastUpdateId``, ``bids``, ``asks``) drops buffered pushes with
``toVersion <= lastUpdateId``; a remaining push with ``fromVersion > lastUpdateId + 1`` means
the snapshot is older than the stream can bridge: another snapshot is requested. Synced, a
push is outdated (ignored) when ``toVersion <= last``, a gap when ``fromVersion > last + 1``
(Resync GAP, buffering from that push), else applied (``fromVersion <= last + 1``; the
documented chain is ``fromVersion == last + 1``, an overlapping push is safe to apply since
quantities are absolute). A legacy push has ``fromVersion == toVersion == r``.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

from flightdesk.core.errors import ParseError
from flightdesk.core.market.events import (
    BookMsg,
    MarketEvent,
    Resync,
    ResyncReason,
    SnapshotRequest,
    Status,
    TickerMsg,
    TradeMsg,
)
from flightdesk.core.market.venue import VenueProtocol
from flightdesk.plugins.venues.mexc.proto import fields, pair, text

__all__ = ["MexcProtocol"]

_NS_PER_MS = 1_000_000
_INF = float("inf")
_ERRORS = (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError,
           UnicodeDecodeError, OverflowError)
_TRADE_SIDES = {1: "buy", 2: "sell"}
Proto = dict[int, list[Any]]


def _px(value: object, what: str) -> str:
    """A decimal string that must be a finite positive price."""
    if type(value) is not str or not 0.0 < float(value) < _INF:
        raise ParseError(f"{what} must be a positive finite decimal, got {value!r}")
    return value


def _qty(value: object, what: str) -> str:
    if type(value) is not str or not 0.0 <= float(value) < _INF:
        raise ParseError(f"{what} must be a finite decimal >= 0, got {value!r}")
    return value


def _version(value: str, what: str) -> int:
    if not value.isdigit():
        raise ParseError(f"{what} must be a decimal integer, got {value!r}")
    return int(value)


def _pb_levels(items: list[Any]) -> list[list[str]]:
    out = []
    for raw in items:
        price, qty = pair(raw)
        out.append([_px(price, "price"), _qty(qty, "quantity")])
    return out


def _json_levels(items: object) -> list[list[str]]:
    if type(items) is not list:
        raise ParseError("levels must be an array")
    return [[_px(lv["p"], "p"), _qty(lv["v"], "v")] for lv in items]


class MexcProtocol(VenueProtocol):
    """MEXC spot v3 (protobuf and legacy JSON): books, deals, book tickers."""

    depth = None

    def __init__(self, name: str = "mexc", buffer_limit: int = 10_000) -> None:
        super().__init__(name)
        self.buffer_limit = buffer_limit
        self._last: dict[str, int] = {}
        self._buf: dict[str, deque[BookMsg]] = {}

    # -- VenueProtocol ------------------------------------------------------------------
    def parse(self, frame: str | bytes, ts_recv: int) -> list[MarketEvent]:
        self.stats.frames += 1
        try:
            if isinstance(frame, str) or frame[:1] == b"{":
                return self._json(json.loads(frame), ts_recv)
            return self._protobuf(bytes(frame), ts_recv)
        except ParseError as exc:
            raise self._fail(str(exc), frame) from None
        except _ERRORS as exc:
            raise self._fail(f"{type(exc).__name__}: {exc}", frame) from None

    def parse_snapshot(self, symbol: str, body: str | bytes, ts_recv: int) -> list[MarketEvent]:
        try:
            data = json.loads(body)
            version = data["lastUpdateId"]
            if type(version) is not int:
                raise ParseError("lastUpdateId must be an integer")
            bids = [[_px(p, "price"), _qty(q, "quantity")] for p, q, *_ in data["bids"]]
            asks = [[_px(p, "price"), _qty(q, "quantity")] for p, q, *_ in data["asks"]]
        except ParseError as exc:
            raise self._fail(f"bad snapshot: {exc}", body) from None
        except _ERRORS as exc:
            raise self._fail(f"bad snapshot: {type(exc).__name__}: {exc}", body) from None
        self._count("snapshot")
        snap = BookMsg(self.name, symbol.upper(), ts_recv, ts_recv, bids, asks, True,
                       -1, version)
        return self._bridge(snap)

    def resync(self, symbol: str, reason: ResyncReason) -> list[MarketEvent]:
        """Forget ``symbol``'s sync state and ask for a snapshot (a GAP keeps its buffer)."""
        self._last.pop(symbol, None)
        if reason is not ResyncReason.GAP or symbol not in self._buf:
            self._buf[symbol] = deque(maxlen=self.buffer_limit)
        return [SnapshotRequest(self.name, symbol)]

    def state(self, symbol: str) -> str:
        if symbol in self._last:
            return "synced"
        return "buffering" if symbol in self._buf else "fresh"

    # -- protobuf -----------------------------------------------------------------------
    def _protobuf(self, frame: bytes, ts_recv: int) -> list[MarketEvent]:
        wrapper = fields(frame)
        channel = text(wrapper, 1)
        symbol = text(wrapper, 3) or channel.rpartition("@")[2]
        if not symbol:
            raise ParseError("push has no symbol")
        sent = wrapper.get(6) or wrapper.get(5)
        ts = sent[-1] * _NS_PER_MS if sent and type(sent[-1]) is int else ts_recv
        for num, handler in _PB_BODIES.items():
            body = wrapper.get(num)
            if body:
                if not isinstance(body[-1], bytes):
                    raise ParseError(f"body field {num} must be a message")
                return handler(self, fields(body[-1]), symbol.upper(), ts, ts_recv)
        self.stats.ignored += 1
        self._count("unhandled_body")
        return []

    def _pb_aggre_depth(self, body: Proto, sym: str, ts: int, ts_recv: int) -> list[MarketEvent]:
        first = _version(text(body, 4), "fromVersion")
        last = _version(text(body, 5), "toVersion")
        if first > last:
            raise ParseError(f"fromVersion {first} > toVersion {last}")
        self._count("depth")
        return self._sequence(BookMsg(self.name, sym, ts, ts_recv, _pb_levels(body.get(2, [])),
                                      _pb_levels(body.get(1, [])), False, first, last))

    def _pb_increase_depth(self, body: Proto, sym: str, ts: int,
                           ts_recv: int) -> list[MarketEvent]:
        version = _version(text(body, 4), "version")
        self._count("depth")
        return self._sequence(BookMsg(self.name, sym, ts, ts_recv, _pb_levels(body.get(2, [])),
                                      _pb_levels(body.get(1, [])), False, version, version))

    def _pb_deals(self, body: Proto, sym: str, ts: int, ts_recv: int) -> list[MarketEvent]:
        self._count("deals")
        out: list[MarketEvent] = []
        for raw in body.get(1, []):
            d = fields(raw)
            kind = (d.get(3) or [0])[-1]
            side = _TRADE_SIDES.get(kind) if type(kind) is int else None
            if side is None:
                raise ParseError(f"tradeType {kind!r} is not 1 (buy) or 2 (sell)")
            ms = (d.get(4) or [-1])[-1]
            out.append(TradeMsg(self.name, sym, ms * _NS_PER_MS if type(ms) is int and ms >= 0
                                else ts, ts_recv, text(d, 5), float(_px(text(d, 1), "price")),
                                float(_qty(text(d, 2), "quantity")), side))
        return out

    def _pb_ticker(self, body: Proto, sym: str, ts: int, ts_recv: int) -> list[MarketEvent]:
        self._count("bookTicker")
        return [TickerMsg(self.name, sym, ts, ts_recv, _px(text(body, 1), "bidPrice"),
                          _qty(text(body, 2), "bidQuantity"), _px(text(body, 3), "askPrice"),
                          _qty(text(body, 4), "askQuantity"))]

    # -- JSON ---------------------------------------------------------------------------
    def _json(self, msg: object, ts_recv: int) -> list[MarketEvent]:
        if type(msg) is not dict:
            raise ParseError(f"expected a JSON object, got {type(msg).__name__}")
        if "c" in msg and "d" in msg:
            channel = msg["c"]
            if type(channel) is not str:
                raise ParseError("'c' must be a string")
            kind = channel.split("@")[1] if channel.count("@") >= 2 else ""
            handler = _JSON_CHANNELS.get(kind)
            if handler is None:
                self.stats.ignored += 1
                self._count("unhandled_channel")
                return []
            sym = str(msg.get("s") or channel.rpartition("@")[2]).upper()
            ms = msg.get("t")
            ts = ms * _NS_PER_MS if type(ms) is int else ts_recv
            data = msg["d"]
            if type(data) is not dict:
                raise ParseError("'d' must be an object")
            return handler(self, data, sym, ts, ts_recv)
        if "code" in msg or "msg" in msg:
            reply = str(msg.get("msg", ""))
            kind = "pong" if reply == "PONG" else ("ack" if msg.get("code") == 0 else "error")
            self._count(kind)
            return [Status(self.name, kind, reply)]
        raise ParseError("object is neither a push ('c', 'd') nor a reply ('code', 'msg')")

    def _json_depth(self, d: dict, sym: str, ts: int, ts_recv: int) -> list[MarketEvent]:
        version = _version(str(d["r"]), "r")
        self._count("depth")
        return self._sequence(BookMsg(self.name, sym, ts, ts_recv,
                                      _json_levels(d.get("bids", [])),
                                      _json_levels(d.get("asks", [])), False, version, version))

    def _json_deals(self, d: dict, sym: str, ts: int, ts_recv: int) -> list[MarketEvent]:
        self._count("deals")
        deals = d["deals"]
        if type(deals) is not list:
            raise ParseError("'deals' must be an array")
        out: list[MarketEvent] = []
        for t in deals:
            side = _TRADE_SIDES.get(t["S"]) if type(t["S"]) is int else None
            if side is None:
                raise ParseError(f"deal side S={t['S']!r} is not 1 or 2")
            ms = t.get("t")
            out.append(TradeMsg(self.name, sym, ms * _NS_PER_MS if type(ms) is int else ts,
                                ts_recv, "", float(_px(t["p"], "p")), float(_qty(t["v"], "v")),
                                side))
        return out

    def _json_ticker(self, d: dict, sym: str, ts: int, ts_recv: int) -> list[MarketEvent]:
        self._count("bookTicker")
        return [TickerMsg(self.name, sym, ts, ts_recv, _px(d["b"], "b"), _qty(d["B"], "B"),
                          _px(d["a"], "a"), _qty(d["A"], "A"))]

    # -- sequencing -----------------------------------------------------------------------
    def _sequence(self, msg: BookMsg) -> list[MarketEvent]:
        sym = msg.symbol
        last = self._last.get(sym)
        if last is None:
            return self._buffer(msg)
        if msg.last_id <= last:
            self.stats.ignored += 1
            self._count("outdated")
            return []
        if msg.first_id > last + 1:
            del self._last[sym]
            self._buf[sym] = deque([msg], maxlen=self.buffer_limit)
            self._count("gap")
            return [Resync(self.name, sym, msg.ts_recv, ResyncReason.GAP,
                           f"fromVersion {msg.first_id} > last version {last} + 1")]
        self._last[sym] = msg.last_id
        return [msg]

    def _buffer(self, msg: BookMsg) -> list[MarketEvent]:
        buf = self._buf.get(msg.symbol)
        if buf is not None:
            buf.append(msg)
            return []
        self._buf[msg.symbol] = deque([msg], maxlen=self.buffer_limit)
        return [SnapshotRequest(self.name, msg.symbol)]

    def _bridge(self, snap: BookMsg) -> list[MarketEvent]:
        sym = snap.symbol
        if sym in self._last:  # a late duplicate answer
            self.stats.ignored += 1
            return []
        buf = self._buf.pop(sym, None) or deque()
        while buf and buf[0].last_id <= snap.last_id:
            buf.popleft()
        if buf and buf[0].first_id > snap.last_id + 1:  # the stream moved past the snapshot
            self._buf[sym] = buf
            self._count("snapshot_too_old")
            return [SnapshotRequest(self.name, sym)]
        self._last[sym] = snap.last_id
        out: list[MarketEvent] = [snap]
        for msg in buf:
            out.extend(self._sequence(msg))
        return out

    # -- helpers --------------------------------------------------------------------------

_PbHandler = Callable[[MexcProtocol, Proto, str, int, int], "list[MarketEvent]"]
_PB_BODIES: dict[int, _PbHandler] = {
    313: MexcProtocol._pb_aggre_depth,
    302: MexcProtocol._pb_increase_depth,
    314: MexcProtocol._pb_deals,
    301: MexcProtocol._pb_deals,
    315: MexcProtocol._pb_ticker,
    305: MexcProtocol._pb_ticker,
}
_JSON_CHANNELS: dict[str, Callable[[MexcProtocol, dict, str, int, int], list[MarketEvent]]] = {
    "public.increase.depth.v3.api": MexcProtocol._json_depth,
    "public.deals.v3.api": MexcProtocol._json_deals,
    "public.bookTicker.v3.api": MexcProtocol._json_ticker,
}
