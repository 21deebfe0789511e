"""Bybit v5 public WebSocket as a sans-I/O protocol: frames in, typed events out.

Books (``orderbook.{depth}.{symbol}``, depth 1, 50, 200 or 1000)::

    {"topic": "orderbook.50.BTCUSDT", "type": "snapshot"|"delta", "ts": 1672304484978,
     "data": {"s": "BTCUSDT", "b": [["16493.50", "0.006"]], "a": [...], "u": 18521288,
              "seq": 7961638724}, "cts": 1672304484976}

Levels are ``[price, size]`` strings; a size of ``"0"`` deletes the level. Sequencing per
symbol, as Bybit documents it: a snapshot resets the book; each delta's update id ``u`` is
the previous message's ``u`` plus one, so any other ``u`` is a lost message
(``Resync(GAP)``; deltas are then ignored until a new snapshot, which a resubscribe
brings). A ``u`` of 1 means the service restarted: the message overwrites the local book
whatever its type (counted as ``reset``). A snapshot may repeat the last ``u`` (depth 1
re-sends its snapshot after 3 s without change). The book is truncated to the depth of
the topic (one depth per venue).

Trades (``publicTrade.{symbol}``): ``data`` is a list of ``{"T", "s", "S": "Buy"|"Sell",
"v", "p", "i", ...}``; ``S`` is the taker side. Tickers (``tickers.{symbol}``): linear and
inverse push a snapshot then deltas carrying only what changed, merged here into the last
known ``bid1Price``/``bid1Size``/``ask1Price``/``ask1Size``; spot tickers carry no best
bid/offer and are counted (``ticker_without_bbo``), not emitted. Control answers (subscribe
acks, ``pong`` in either of Bybit's two spellings) become :class:`Status` events; a refused
subscription carries Bybit's ``ret_msg``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from flightdesk.core.errors import ParseError
from flightdesk.core.market.events import (
    BookMsg,
    MarketEvent,
    Outbound,
    Resync,
    ResyncReason,
    Status,
    TickerMsg,
    TradeMsg,
)
from flightdesk.core.market.venue import VenueProtocol
from flightdesk.plugins.venues._wire import ERRORS as _ERRORS
from flightdesk.plugins.venues._wire import check_levels as _check_levels
from flightdesk.plugins.venues._wire import describe as _describe
from flightdesk.plugins.venues._wire import quote as _quote
from flightdesk.plugins.venues._wire import require_str as _str

__all__ = ["BOOK_DEPTHS", "BybitProtocol", "book_topic"]

BOOK_DEPTHS = (1, 50, 200, 1000)
_SIDES = {"Buy": "buy", "Sell": "sell"}
_BBO = ("bid1Price", "bid1Size", "ask1Price", "ask1Size")


def book_topic(depth: int, symbol: str) -> str:
    return f"orderbook.{depth}.{symbol}"


def _int(value: object, what: str) -> int:
    if type(value) is not int:
        raise ParseError(f"{what} must be an integer, got {value!r}")
    return value


def _ms(value: object, what: str = "ts") -> int:
    """Bybit times are integer ms since the epoch (trades: also as strings) -> ns."""
    if type(value) is str and value.isdigit():
        return int(value) * 1_000_000
    return _int(value, what) * 1_000_000


def _is_ticker(frame: str | bytes) -> bool:
    head = frame[:48]
    return ('"topic":"tickers.' in head) if isinstance(head, str) else (
        b'"topic":"tickers.' in head)


class BybitProtocol(VenueProtocol):
    """Bybit v5 public market data: ``u``-chained books, public trades, tickers."""

    def __init__(self, name: str = "bybit", depth: int = 50) -> None:
        super().__init__(name)
        self.depth = depth  # levels kept per side: the subscribed depth
        self._last_u: dict[str, int] = {}  # symbol -> last update id (absent: no book)
        self._topic: dict[str, str] = {}  # symbol -> its book topic, for resubscribes
        self._tickers: dict[str, dict[str, str]] = {}  # symbol -> merged best bid/offer

    # -- VenueProtocol ---------------------------------------------------------------------
    def parse(self, frame: str | bytes, ts_recv: int) -> list[MarketEvent]:
        self.stats.frames += 1
        try:
            if not self.tickers_wanted and _is_ticker(frame):
                return self._ignore("ticker_skipped")  # nobody consumes them: not decoded
            msg = json.loads(frame)
            if type(msg) is not dict:
                raise ParseError(f"expected a JSON object, got {type(msg).__name__}")
            topic = msg.get("topic")
            if topic is None:
                return self._control(msg)
            topic = _str(topic, "topic")
            kind, _, rest = topic.partition(".")
            handler = _TOPICS.get(kind)
            if handler is None:
                return self._ignore("unhandled_topic")
            return handler(self, topic, rest, msg, ts_recv)
        except ParseError as exc:
            raise self._fail(str(exc), frame) from None
        except _ERRORS as exc:
            raise self._fail(_describe(exc), frame) from exc

    def resync(self, symbol: str, reason: ResyncReason) -> list[MarketEvent]:
        """Drop ``symbol``'s deltas until a new snapshot; resubscribe its book topic (Bybit
        answers a subscribe with a fresh snapshot)."""
        self._last_u.pop(symbol, None)
        topic = self._topic.get(symbol, book_topic(self.depth or 50, symbol))
        return [Outbound(self.name, json.dumps({"op": "unsubscribe", "args": [topic]})),
                Outbound(self.name, json.dumps({"op": "subscribe", "args": [topic]}))]

    def reset_connection(self) -> None:
        """A new connection starts every book from the snapshot its subscribe brings."""
        self._last_u.clear()
        self._tickers.clear()

    # -- control ---------------------------------------------------------------------------
    def _control(self, msg: dict) -> list[MarketEvent]:
        op = msg.get("op")
        ret = str(msg.get("ret_msg", ""))
        if op == "pong" or ret == "pong":
            self._count("pong")
            return [Status(self.name, "pong")]
        if "success" not in msg:
            raise ParseError("object has neither 'topic' nor 'success'")
        if msg["success"] is not True:
            self._count("error")
            return [Status(self.name, "error", f"{op}: {ret}".strip())]
        kind = str(op or "ack")
        self._count(kind)
        return [Status(self.name, kind, ret)]

    # -- books -----------------------------------------------------------------------------
    def _book(self, topic: str, rest: str, msg: dict, ts_recv: int) -> list[MarketEvent]:
        depth_s, _, symbol = rest.partition(".")
        if not depth_s.isdigit() or not symbol:
            raise ParseError(f"bad book topic {topic!r}")
        kind = msg["type"]
        if kind != "snapshot" and kind != "delta":
            raise ParseError(f"book type {kind!r} is not snapshot/delta")
        d = msg["data"]
        if type(d) is not dict:
            raise ParseError("book 'data' must be an object")
        u = _int(d["u"], "u")
        bids, asks = _check_levels(d["b"]), _check_levels(d["a"])  # before any state moves
        ts = _ms(msg.get("cts") or msg["ts"])
        snapshot = kind == "snapshot" or u == 1
        if snapshot:
            self.depth = int(depth_s)
            self._topic[symbol] = topic
            if u == 1:
                self._count("reset")
        else:
            last = self._last_u.get(symbol)
            if last is None:
                return self._ignore("delta_before_snapshot")
            if u != last + 1:
                del self._last_u[symbol]
                self._count("gap")
                return [Resync(self.name, symbol, ts_recv, ResyncReason.GAP,
                               f"u {u} after {last}")]
        self._last_u[symbol] = u
        self._count("book_snapshot" if snapshot else "book_delta")
        return [BookMsg(self.name, symbol, ts, ts_recv, bids, asks, snapshot=snapshot,
                        first_id=u, last_id=u)]

    # -- trades and tickers ----------------------------------------------------------------
    def _trades(self, topic: str, rest: str, msg: dict, ts_recv: int) -> list[MarketEvent]:
        data = msg["data"]
        if type(data) is not list:
            raise ParseError("trade 'data' must be an array")
        out: list[MarketEvent] = []
        for t in data:
            side = _SIDES.get(t["S"])
            if side is None:
                raise ParseError(f"unknown trade side {t['S']!r}")
            px, qty = float(_str(t["p"], "p")), float(_str(t["v"], "v"))
            if not (0.0 < px < float("inf") and 0.0 < qty < float("inf")):
                raise ParseError(f"bad trade price/size {t['p']!r}/{t['v']!r}")
            out.append(TradeMsg(self.name, _str(t["s"], "s"), _ms(t["T"], "T"), ts_recv,
                                _str(t["i"], "i"), px, qty, side))
        self._count("trade")
        return out

    def _ticker(self, topic: str, rest: str, msg: dict, ts_recv: int) -> list[MarketEvent]:
        d = msg["data"]
        if type(d) is not dict:
            raise ParseError("ticker 'data' must be an object")
        symbol = _str(d.get("symbol", rest), "symbol")
        known = self._tickers.get(symbol) if msg.get("type") == "delta" else None
        merged = dict(known or {})
        for key in _BBO:
            if key in d:
                merged[key] = _quote(d[key])
        if not all(merged.get(k) for k in _BBO):
            self._tickers.pop(symbol, None)
            return self._ignore("ticker_without_bbo")
        self._tickers[symbol] = merged
        self._count("ticker")
        return [TickerMsg(self.name, symbol, _ms(msg["ts"]),
                          ts_recv, merged["bid1Price"], merged["bid1Size"],
                          merged["ask1Price"], merged["ask1Size"])]


_TOPICS: dict[str, Callable[[BybitProtocol, str, str, dict, int], list[MarketEvent]]] = {
    "orderbook": BybitProtocol._book,
    "publicTrade": BybitProtocol._trades,
    "tickers": BybitProtocol._ticker,
}
