"""Coinbase market data as a sans-I/O protocol: the legacy Exchange feed and Advanced Trade.

**Legacy Exchange feed** (``ws-feed.exchange.coinbase.com``, messages keyed by ``type``):
``snapshot`` (levels ``[price, size]``, passed through), ``l2update`` (``changes`` are
``[side, price, size]``: a ``[price, size]`` list is built per change, side ``buy`` -> bids),
``match``/``last_match`` (``side`` is the *maker's* side, so the aggressor is the opposite),
``ticker``, ``subscriptions``/``heartbeat``/``error``. Level2 has no sequence number and no
checksum; ``match``/``ticker`` ``sequence`` values count the whole full channel and jump
legitimately, so nothing is sequenced here (the BookKeeper's crossed-book check remains).

**Advanced Trade** (``advanced-trade-ws.coinbase.com``, envelopes keyed by ``channel``):
``l2_data`` events ``snapshot``/``update`` with ``updates: [{side: bid|offer, price_level,
new_quantity}]``, ``market_trades`` (``side`` is taken as the aggressor side, as cryptofeed
does), ``ticker``/``ticker_batch``, ``heartbeats``, ``subscriptions``. ``sequence_num`` is
one counter per *connection* shared by every channel and product: a jump emits
``Resync(GAP)`` for every product with a live book, a lower or repeated number is ignored.
One protocol object therefore stands for one connection; call :meth:`reset_connection`
when the feed reconnects.
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
from flightdesk.plugins.venues._wire import iso_ns as _iso_ns
from flightdesk.plugins.venues._wire import quote as _quote
from flightdesk.plugins.venues._wire import require_str as _str

__all__ = ["CoinbaseProtocol"]

_TAKER_FROM_MAKER = {"buy": "sell", "sell": "buy"}
_AGGRESSOR = {"BUY": "buy", "SELL": "sell", "buy": "buy", "sell": "sell"}
_ADV_ASK = frozenset({"offer", "ask"})  # docs say "offer"; some clients also see "ask"


# -- small parsing helpers -----------------------------------------------------------------










def _lookup(table: dict[str, str], value: object, what: str) -> str:
    found = table.get(value) if type(value) is str else None
    if found is None:
        raise ParseError(f"unknown {what} {value!r}")
    return found


class CoinbaseProtocol(VenueProtocol):
    """Coinbase legacy Exchange feed + Advanced Trade: level2 books, trades, tickers."""

    depth = None  # both feeds send every level change; no truncation

    def __init__(self, name: str = "coinbase", api: str = "advanced",
                 level2_channel: str = "level2") -> None:
        super().__init__(name)
        #: "advanced" or "legacy": how to resubscribe a product never seen on level2
        self.api = api
        #: legacy level2 channel to resubscribe ("level2" or "level2_batch")
        self.level2_channel = level2_channel
        self._live: set[str] = set()  # products whose snapshot arrived since the last resync
        self._api_of: dict[str, str] = {}  # product -> "legacy" | "advanced"
        self._conn_seq: int | None = None  # last Advanced Trade sequence_num on the connection

    # -- VenueProtocol ---------------------------------------------------------------------
    def parse(self, frame: str | bytes, ts_recv: int) -> list[MarketEvent]:
        self.stats.frames += 1
        try:
            msg = json.loads(frame)
            if type(msg) is not dict:
                raise ParseError(f"expected a JSON object, got {type(msg).__name__}")
            if "channel" in msg:
                return self._advanced(msg, ts_recv)
            handler = _LEGACY.get(msg.get("type"))
            if handler is None:
                raise ParseError(f"unknown message type {msg.get('type')!r}")
            return handler(self, msg, ts_recv)
        except ParseError as exc:
            raise self._fail(str(exc), frame) from None
        except _ERRORS as exc:
            raise self._fail(_describe(exc), frame) from exc

    def resync(self, symbol: str, reason: ResyncReason) -> list[MarketEvent]:
        """Drop ``symbol``'s updates until a new snapshot; resubscribe its level2 only."""
        self._live.discard(symbol)
        if self._api_of.get(symbol, self.api) == "legacy":
            frames = [{"type": t, "product_ids": [symbol], "channels": [self.level2_channel]}
                      for t in ("unsubscribe", "subscribe")]
        else:
            frames = [{"type": t, "product_ids": [symbol], "channel": "level2"}
                      for t in ("unsubscribe", "subscribe")]
        return [Outbound(self.name, json.dumps(f)) for f in frames]

    def reset_connection(self) -> None:
        """The feed reconnected: forget the connection's sequence and every book."""
        self._conn_seq = None
        self._live.clear()

    # -- bookkeeping -----------------------------------------------------------------------
    def _snapshot_seen(self, product: str, api: str) -> None:
        self._live.add(product)
        self._api_of[product] = api
        self._count("book_snapshot")

    # -- legacy Exchange feed --------------------------------------------------------------
    def _l2update(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        product = _str(msg["product_id"], "product_id")
        if product not in self._live:
            return self._ignore("update_before_snapshot")
        bids: list = []
        asks: list = []
        for side, px, sz in msg["changes"]:
            if side == "buy":
                bids.append([px, sz])
            elif side == "sell":
                asks.append([px, sz])
            else:
                raise ParseError(f"l2update side {side!r} is not buy/sell")
        self._count("book_update")
        return [BookMsg(self.name, product, _iso_ns(msg["time"]), ts_recv,
                        _check_levels(bids), _check_levels(asks))]

    def _snapshot(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        product = _str(msg["product_id"], "product_id")
        bids = _check_levels(msg["bids"])
        asks = _check_levels(msg["asks"])
        self._snapshot_seen(product, "legacy")
        ts = _iso_ns(msg["time"]) if "time" in msg else ts_recv
        return [BookMsg(self.name, product, ts, ts_recv, bids, asks, snapshot=True)]

    def _match(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        self._count("trade")
        return [TradeMsg(self.name, _str(msg["product_id"], "product_id"),
                         _iso_ns(msg["time"]), ts_recv, str(msg["trade_id"]),
                         float(_str(msg["price"], "price")), float(_str(msg["size"], "size")),
                         _lookup(_TAKER_FROM_MAKER, msg["side"], "maker side"))]

    def _ticker(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        self._count("ticker")
        seq = msg.get("sequence", -1)
        return [TickerMsg(self.name, _str(msg["product_id"], "product_id"),
                          _iso_ns(msg["time"]) if "time" in msg else ts_recv, ts_recv,
                          _quote(msg["best_bid"]), _quote(msg.get("best_bid_size")),
                          _quote(msg["best_ask"]), _quote(msg.get("best_ask_size")),
                          seq if type(seq) is int else -1)]

    def _legacy_status(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        kind = msg["type"]
        self._count(kind)
        detail = msg.get("message") or msg.get("reason") or ""
        return [Status(self.name, kind, str(detail), str(msg.get("product_id", "")))]

    # -- Advanced Trade --------------------------------------------------------------------
    def _advanced(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        chan = _str(msg["channel"], "channel")
        handler = _ADVANCED.get(chan)
        seq = msg.get("sequence_num")
        out: list[MarketEvent] = []
        if seq is not None:
            if type(seq) is not int:
                raise ParseError(f"sequence_num must be an integer, got {seq!r}")
            last = self._conn_seq
            if last is not None and seq <= last:
                return self._ignore("stale_sequence")
            if last is not None and seq != last + 1:
                out = self._connection_gap(last, seq, ts_recv)
            self._conn_seq = seq
        if handler is None:
            self._ignore("unhandled_channel")
            return out
        events = msg["events"]
        if type(events) is not list:
            raise ParseError("'events' must be an array")
        out += handler(self, msg, events, ts_recv)
        return out

    def _connection_gap(self, last: int, seq: int, ts_recv: int) -> list[MarketEvent]:
        """Messages were lost on the connection: every live book on it is suspect."""
        self._count("gap")
        detail = f"sequence_num {seq} after {last}: {seq - last - 1} message(s) lost"
        out: list[MarketEvent] = [Resync(self.name, p, ts_recv, ResyncReason.GAP, detail)
                                  for p in sorted(self._live)]
        self._live.clear()
        return out

    def _l2_data(self, msg: dict, events: list, ts_recv: int) -> list[MarketEvent]:
        ts = _iso_ns(msg["timestamp"])
        seq = msg.get("sequence_num", -1)
        out: list[MarketEvent] = []
        for ev in events:
            product = _str(ev["product_id"], "product_id")
            kind = ev["type"]
            if kind == "snapshot":
                self._snapshot_seen(product, "advanced")
            elif kind != "update":
                raise ParseError(f"l2_data event type {kind!r} is not snapshot/update")
            elif product not in self._live:
                self._ignore("update_before_snapshot")
                continue
            else:
                self._count("book_update")
            bids, asks = _advanced_levels(ev["updates"])
            out.append(BookMsg(self.name, product, ts, ts_recv, bids, asks,
                               snapshot=kind == "snapshot", last_id=seq))
        return out

    def _market_trades(self, msg: dict, events: list, ts_recv: int) -> list[MarketEvent]:
        self._count("trade")
        return [TradeMsg(self.name, _str(t["product_id"], "product_id"), _iso_ns(t["time"]),
                         ts_recv, str(t["trade_id"]), float(_str(t["price"], "price")),
                         float(_str(t["size"], "size")), _lookup(_AGGRESSOR, t["side"], "side"))
                for ev in events for t in ev["trades"]]

    def _adv_ticker(self, msg: dict, events: list, ts_recv: int) -> list[MarketEvent]:
        self._count("ticker")
        ts = _iso_ns(msg["timestamp"])
        return [TickerMsg(self.name, _str(t["product_id"], "product_id"), ts, ts_recv,
                          _quote(t.get("best_bid")), _quote(t.get("best_bid_quantity")),
                          _quote(t.get("best_ask")), _quote(t.get("best_ask_quantity")))
                for ev in events for t in ev["tickers"]]

    def _adv_status(self, msg: dict, events: list, ts_recv: int) -> list[MarketEvent]:
        chan = msg["channel"]
        self._count(chan)
        first = events[0] if events and type(events[0]) is dict else {}
        detail = first.get("heartbeat_counter", first.get("subscriptions", ""))
        return [Status(self.name, chan, json.dumps(detail) if type(detail) is dict
                       else str(detail))]


def _advanced_levels(updates: object) -> tuple[list, list]:
    """Advanced Trade ``updates`` -> (bids, asks) as ``[price_level, new_quantity]`` lists."""
    if type(updates) is not list:
        raise ParseError("'updates' must be an array")
    bids: list = []
    asks: list = []
    for u in updates:
        side = u["side"]
        if side == "bid":
            bids.append([u["price_level"], u["new_quantity"]])
        elif side in _ADV_ASK:
            asks.append([u["price_level"], u["new_quantity"]])
        else:
            raise ParseError(f"l2_data side {side!r} is not bid/offer")
    return _check_levels(bids), _check_levels(asks)


_LegacyHandler = Callable[[CoinbaseProtocol, dict, int], "list[MarketEvent]"]
_LEGACY: dict[object, _LegacyHandler] = {
    "l2update": CoinbaseProtocol._l2update,
    "snapshot": CoinbaseProtocol._snapshot,
    "match": CoinbaseProtocol._match,
    "last_match": CoinbaseProtocol._match,
    "ticker": CoinbaseProtocol._ticker,
    "subscriptions": CoinbaseProtocol._legacy_status,
    "heartbeat": CoinbaseProtocol._legacy_status,
    "error": CoinbaseProtocol._legacy_status,
}
_ADVANCED: dict[str, Callable[[CoinbaseProtocol, dict, list, int], list[MarketEvent]]] = {
    "l2_data": CoinbaseProtocol._l2_data,
    "market_trades": CoinbaseProtocol._market_trades,
    "ticker": CoinbaseProtocol._adv_ticker,
    "ticker_batch": CoinbaseProtocol._adv_ticker,
    "heartbeats": CoinbaseProtocol._adv_status,
    "subscriptions": CoinbaseProtocol._adv_status,
}
