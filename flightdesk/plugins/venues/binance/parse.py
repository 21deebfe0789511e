"""Binance market data, sans-I/O: one frame in, typed events out (spot, USD-M, COIN-M).

Messages (combined-stream envelope ``{"stream": .., "data": {..}}`` or raw):

========================  =====================================================
``depthUpdate``           :class:`BookMsg` (``first_id=U``, ``last_id=u``), sequenced
``bookTicker``            :class:`TickerMsg` (``update_id=u``); spot has no ``e`` field
``trade`` / ``aggTrade``  :class:`TradeMsg` (``m`` true: the buyer was the maker, so the
                          aggressor sold)
``kline``                 counted in ``stats.by_kind`` only (bars are built elsewhere)
``{"result":..,"id":..}`` :class:`Status` ``ack``; ``{"code"|"error":..}`` Status ``error``
========================  =====================================================

Book sequencing follows Binance's "How to manage a local order book correctly" (see
``VENUE_RULES.md`` §1). Per symbol the protocol is *fresh* (nothing seen), *buffering*
(diffs kept until a REST snapshot arrives) or *synced* (local update id known):

* the first diff of a fresh symbol is buffered and a :class:`SnapshotRequest` emitted once;
* :meth:`BinanceProtocol.parse_snapshot` returns the snapshot :class:`BookMsg` followed by
  the bridged buffered diffs, or another request when ``lastUpdateId`` < the first
  buffered ``U`` (the snapshot is older than the buffer);
* spot: a diff with ``u <= local id`` is ignored (already in the book; the docs say
  ``u < local``, and ``u == local`` only re-states levels the book already holds), a diff
  with ``U > local + 1`` is a gap; futures (``usdm``/``coinm``): a diff must chain
  ``pu == previous u``, except the first after a snapshot, which needs ``U <= id <= u``;
* on a gap the protocol emits :class:`Resync` (``GAP``) and buffers from that diff on; the
  engine's ``BookKeeper.resync`` then calls :meth:`BinanceProtocol.resync`, which returns
  the :class:`SnapshotRequest`.

Speed: one ``loads`` per frame (orjson, else the stdlib C scanner called directly), dispatch on the
event type by dict lookup, price levels passed through as the decoded JSON lists. Field
types are checked on every frame (a few ``type() is`` tests). With ``validate_numbers``
(the default) every price/qty string an event carries is also checked to parse as a
number — levels by C-level passes, bookTicker by ``float`` — so that nothing downstream
meets a string it cannot convert; this costs ~11% of the ingest path (bench_ingest.py).
"""

from __future__ import annotations

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
from flightdesk.core.market.instruments import Instrument
from flightdesk.core.market.venue import VenueProtocol
from flightdesk.plugins.venues.binance.instruments import parse_exchange_info
from flightdesk.plugins.venues.binance.wire import check_levels, fast_loads, is_book_ticker, loads

__all__ = ["MARKETS", "BinanceProtocol", "check_levels", "loads"]

MARKETS = ("spot", "usdm", "coinm")
_NS_PER_MS = 1_000_000
#: what a malformed decoded frame raises while a handler reads it
_DATA_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError,
                RecursionError, OverflowError)
_SYMBOL_CACHE_MAX = 4096

Handler = Callable[[dict, int], list]


def _reply_kind(data: dict) -> str | None:
    """The kind of a message with neither ``e`` nor ``u``: a reply to a request, or None."""
    if "error" in data or "code" in data:
        return "error"
    if "result" in data or "id" in data:
        return "result"
    return None


class BinanceProtocol(VenueProtocol):
    """Binance frames to events; see the module docstring for the sequencing rules."""

    def __init__(self, name: str = "binance", market: str = "spot", *,
                 buffer_limit: int = 10_000, validate_numbers: bool = True,
                 loads: Callable[[str | bytes], Any] = fast_loads) -> None:
        if market not in MARKETS:
            raise ValueError(f"market must be one of {MARKETS}, not {market!r}")
        super().__init__(name)
        self.market = market
        self.buffer_limit = buffer_limit
        self.validate_numbers = validate_numbers
        self._loads = loads
        self._last: dict[str, int] = {}  # synced symbols: local update id
        self._buf: dict[str, deque[tuple[BookMsg, int | None]]] = {}  # buffering symbols
        self._fresh: set[str] = set()  # futures: synced, first diff after snapshot pending
        self._symbols: dict[str, str] = {}  # wire symbol -> interned upper-case symbol
        spot = market == "spot"
        self._sequence = self._sequence_spot if spot else self._sequence_futures
        self._handlers: dict[str | None, Handler] = {
            "depthUpdate": self._depth_spot if spot else self._depth_futures,
            "bookTicker": self._ticker,
            "trade": self._trade,
            "aggTrade": self._agg_trade,
            "kline": self._kline,
            "result": self._result,
            "error": self._error_reply,
        }

    def parse_instruments(self, body: str | bytes) -> list[Instrument]:
        return parse_exchange_info(self.name, body)  # the exchangeInfo filters

    # -- frames --------------------------------------------------------------------
    def parse(self, frame: str | bytes, ts_recv: int) -> list[MarketEvent]:
        """Turn one WebSocket frame into events; raise ParseError on garbage."""
        stats = self.stats
        stats.frames += 1
        if not self.tickers_wanted and is_book_ticker(frame):
            by_kind = stats.by_kind  # two thirds of a busy stream: not decoded at all
            by_kind["bookTicker_skipped"] = by_kind.get("bookTicker_skipped", 0) + 1
            return []
        try:
            data = self._loads(frame)
            if "data" in data:
                data = data["data"]
            kind = data.get("e")
            if kind is None:  # spot bookTicker (the busiest stream) or a request reply
                kind = "bookTicker" if "u" in data else _reply_kind(data)
            handler = self._handlers.get(kind)
            if handler is None:
                stats.ignored += 1
                kind = "other"
            by_kind = stats.by_kind
            by_kind[kind] = by_kind.get(kind, 0) + 1
            return [] if handler is None else handler(data, ts_recv)
        except _DATA_ERRORS as exc:
            raise self._failed("frame", frame, exc) from None

    def parse_snapshot(self, symbol: str, body: str | bytes, ts_recv: int) -> list[MarketEvent]:
        """Turn a ``GET depth`` body into the snapshot BookMsg plus the bridged diffs."""
        try:
            data = self._loads(body)
            last_id, bids, asks = data["lastUpdateId"], data["bids"], data["asks"]
            if type(last_id) is not int:
                raise ValueError("lastUpdateId must be an integer")
            check_levels(bids)
            check_levels(asks)
            ts_event = self._ts_event(data.get("E"), ts_recv)
            sym = symbol.upper()
        except _DATA_ERRORS as exc:
            raise self._failed("snapshot", body, exc) from None
        by_kind = self.stats.by_kind
        by_kind["snapshot"] = by_kind.get("snapshot", 0) + 1
        return self._bridge(BookMsg(self.name, sym, ts_event, ts_recv, bids, asks,
                                    True, -1, last_id))

    def resync(self, symbol: str, reason: ResyncReason) -> list[MarketEvent]:
        """Forget ``symbol``'s sync state, buffer from now on, ask for a snapshot.

        After a GAP the diffs buffered since the gap are kept (they bridge the next
        snapshot); after any other reason the buffer restarts empty.
        """
        symbol = symbol.upper()
        self._last.pop(symbol, None)
        self._fresh.discard(symbol)
        if reason is not ResyncReason.GAP or symbol not in self._buf:
            self._buf[symbol] = deque(maxlen=self.buffer_limit)
        return [SnapshotRequest(self.name, symbol)]

    def state(self, symbol: str) -> str:
        """``fresh``, ``buffering`` or ``synced``: where ``symbol`` is in the sync cycle."""
        symbol = symbol.upper()
        if symbol in self._last:
            return "synced"
        return "buffering" if symbol in self._buf else "fresh"

    # -- handlers: (decoded message, ts_recv) -> events ----------------------------
    def _depth_msg(self, d: dict, ts: int) -> BookMsg:
        first, last, ms, bids, asks = d["U"], d["u"], d["E"], d["b"], d["a"]
        if type(first) is not int or type(last) is not int or first > last:
            raise ValueError("U and u must be integers with U <= u")
        if type(ms) is not int:
            raise ValueError("E must be an integer")
        if self.validate_numbers:
            check_levels(bids)
            check_levels(asks)
        elif type(bids) is not list or type(asks) is not list:
            raise ValueError("b and a must be lists")
        sym = self._symbols.get(d["s"]) or self._symbol(d["s"])
        return BookMsg(self.name, sym, ms * _NS_PER_MS, ts, bids, asks, False, first, last)

    def _depth_spot(self, d: dict, ts: int) -> list[MarketEvent]:
        return self._sequence_spot(self._depth_msg(d, ts), None)

    def _depth_futures(self, d: dict, ts: int) -> list[MarketEvent]:
        prev = d["pu"]
        if type(prev) is not int:
            raise ValueError("pu must be an integer")
        return self._sequence_futures(self._depth_msg(d, ts), prev)

    def _ticker(self, d: dict, ts: int) -> list[MarketEvent]:
        uid, bp, bq, ap, aq = d["u"], d["b"], d["B"], d["a"], d["A"]
        if type(uid) is not int:
            raise ValueError("u must be an integer")
        if (type(bp) is not str or type(bq) is not str or type(ap) is not str
                or type(aq) is not str):
            raise ValueError("b, B, a, A must be strings")
        if self.validate_numbers and (
                float(bp) + float(bq) + float(ap) + float(aq)) * 0.0 != 0.0:
            raise ValueError("b, B, a, A must be finite numbers")
        sym = self._symbols.get(d["s"]) or self._symbol(d["s"])
        ms = d.get("E")  # futures only
        return [TickerMsg(self.name, sym, ts if ms is None else self._ts_event(ms, ts), ts,
                          bp, bq, ap, aq, uid)]

    def _trade(self, d: dict, ts: int) -> list[MarketEvent]:
        return self._trade_msg(d, ts, d["t"])

    def _agg_trade(self, d: dict, ts: int) -> list[MarketEvent]:
        return self._trade_msg(d, ts, d["a"])

    def _trade_msg(self, d: dict, ts: int, trade_id: Any) -> list[MarketEvent]:
        ms, maker = d["E"], d["m"]
        if type(ms) is not int or type(trade_id) is not int or type(maker) is not bool:
            raise ValueError("E and the trade id must be integers, m a boolean")
        px, qty = float(d["p"]), float(d["q"])
        if (px + qty) * 0.0 != 0.0:
            raise ValueError("p and q must be finite numbers")
        sym = self._symbols.get(d["s"]) or self._symbol(d["s"])
        return [TradeMsg(self.name, sym, ms * _NS_PER_MS, ts, str(trade_id), px, qty,
                         "sell" if maker else "buy")]

    def _kline(self, d: dict, ts: int) -> list[MarketEvent]:
        return []

    def _result(self, d: dict, ts: int) -> list[MarketEvent]:
        kind = "ack" if d.get("result") is None else "result"
        return [Status(self.name, kind, f"id={d.get('id')!r} result={d.get('result')!r}")]

    def _error_reply(self, d: dict, ts: int) -> list[MarketEvent]:
        err = d.get("error")
        err = err if isinstance(err, dict) else d
        return [Status(self.name, "error",
                       f"id={d.get('id')!r} code={err.get('code')!r} msg={err.get('msg')!r}")]

    # -- sequencing ----------------------------------------------------------------
    def _sequence_spot(self, msg: BookMsg, prev: int | None) -> list[MarketEvent]:
        sym = msg.symbol
        last = self._last.get(sym)
        if last is None:
            return self._buffer(msg, prev)
        if msg.last_id <= last:
            self.stats.ignored += 1
            return []
        if msg.first_id > last + 1:
            return self._gap(msg, prev, f"U={msg.first_id} > local id {last} + 1")
        self._last[sym] = msg.last_id
        return [msg]

    def _sequence_futures(self, msg: BookMsg, prev: int | None) -> list[MarketEvent]:
        sym = msg.symbol
        last = self._last.get(sym)
        if last is None:
            return self._buffer(msg, prev)
        if prev != last:
            if msg.last_id <= last:
                self.stats.ignored += 1
                return []
            if sym not in self._fresh or msg.first_id > last:
                return self._gap(msg, prev, f"pu={prev} != local id {last}")
        self._last[sym] = msg.last_id
        if self._fresh:
            self._fresh.discard(sym)
        return [msg]

    def _buffer(self, msg: BookMsg, prev: int | None) -> list[MarketEvent]:
        buf = self._buf.get(msg.symbol)
        if buf is not None:
            if len(buf) == buf.maxlen:  # the oldest diff falls out of the buffer
                self.stats.ignored += 1
            buf.append((msg, prev))
            return []
        self._buf[msg.symbol] = deque([(msg, prev)], maxlen=self.buffer_limit)
        return [SnapshotRequest(self.name, msg.symbol)]

    def _gap(self, msg: BookMsg, prev: int | None, detail: str) -> list[MarketEvent]:
        sym = msg.symbol
        del self._last[sym]
        self._fresh.discard(sym)
        self._buf[sym] = deque([(msg, prev)], maxlen=self.buffer_limit)
        return [Resync(self.name, sym, msg.ts_recv, ResyncReason.GAP, detail)]

    def _bridge(self, snap: BookMsg) -> list[MarketEvent]:
        sym = snap.symbol
        if sym in self._last:  # already synced: a late duplicate answer
            self.stats.ignored += 1
            return []
        buf = self._buf.pop(sym, None) or ()
        if buf and snap.last_id < buf[0][0].first_id:  # older than the buffer: again
            self._buf[sym] = buf
            return [SnapshotRequest(self.name, sym)]
        self._last[sym] = snap.last_id
        if self.market != "spot":
            self._fresh.add(sym)
        out: list[MarketEvent] = [snap]
        for msg, prev in buf:
            out.extend(self._sequence(msg, prev))
        return out

    # -- helpers -------------------------------------------------------------------
    def _symbol(self, wire: Any) -> str:
        if type(wire) is not str or not wire:
            raise ValueError("s must be a non-empty string")
        if len(self._symbols) >= _SYMBOL_CACHE_MAX:
            self._symbols.clear()
        sym = self._symbols[wire] = wire.upper()
        return sym

    @staticmethod
    def _ts_event(ms: Any, ts_recv: int) -> int:
        if ms is None:
            return ts_recv  # spot bookTicker and REST depth carry no event time
        if type(ms) is not int:
            raise ValueError("E must be an integer")
        return ms * _NS_PER_MS

    def _failed(self, what: str, frame: str | bytes, exc: BaseException) -> ParseError:
        stats = self.stats
        stats.errors += 1
        head = frame[:80] if isinstance(frame, (str, bytes, bytearray)) else type(frame)
        stats.last_error = f"{self.name}: bad {what}: {type(exc).__name__}: {exc}"
        return ParseError(f"{stats.last_error} in {head!r}", venue=self.name)
