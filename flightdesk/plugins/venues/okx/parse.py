"""OKX v5 public WebSocket as a sans-I/O protocol: frames in, typed events out.

Books (``books``, ``books-l2-tbt``, ``books50-l2-tbt``; ``books5``/``bbo-tbt`` pushes are
full snapshots): ``{"arg": {"channel", "instId"}, "action": "snapshot"|"update",
"data": [{"asks", "bids", "ts", "checksum", "prevSeqId", "seqId"}]}``. Levels
``[px, sz, "0", numOrders]`` go to :class:`BookMsg` untouched.

Sequencing per ``instId``: every update's ``prevSeqId`` must equal the previous message's
``seqId``. That one rule also covers OKX's two exceptions — the no-change heartbeat
(``prevSeqId == seqId``, empty sides) and the reset after maintenance (``seqId <
prevSeqId``) both chain from the last ``seqId``. A broken chain emits
``Resync(GAP)``; updates are then ignored until a new snapshot. Messages without
``seqId`` (captures before OKX added it) are not sequenced; the checksum still guards them.

Checksum: signed CRC32 over ``bid1px:bid1sz:ask1px:ask1sz:...`` for the top 25 of each
side, missing entries skipped. From June 2026 OKX sends ``checksum: 0`` always, so 0 is
treated as "no checksum" (a real 0 has probability 2**-32; missing one check is harmless).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence

from flightdesk.core.errors import ParseError
from flightdesk.core.market.book import L2Book, Level
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

__all__ = ["BOOK_CHANNELS", "OkxProtocol", "checksum_string", "okx_checksum"]

BOOK_CHANNELS = frozenset({"books", "books-l2-tbt", "books50-l2-tbt", "books5", "bbo-tbt"})
_SIDES = {"buy": "buy", "sell": "sell"}


# -- checksum ------------------------------------------------------------------------------
def checksum_string(bids: Sequence[Level], asks: Sequence[Level]) -> str:
    """``bid:sz:ask:sz:...`` interleaved best-first; the longer side's tail continues alone."""
    parts: list[str] = []
    n = min(len(bids), len(asks))
    for b, a in zip(bids[:n], asks[:n], strict=True):
        parts += (b[0], b[1], a[0], a[1])
    for lv in (bids[n:] or asks[n:]):
        parts += (lv[0], lv[1])
    return ":".join(parts)


def okx_checksum(book: L2Book) -> int:
    """Signed 32-bit CRC32 of the top 25 levels per side of ``book``."""
    crc = zlib.crc32(checksum_string(book.bid_levels(25), book.ask_levels(25)).encode())
    return crc - 0x1_0000_0000 if crc & 0x8000_0000 else crc


# -- small parsing helpers -----------------------------------------------------------------






def _int(value: object, what: str) -> int:
    if type(value) is not int:
        raise ParseError(f"{what} must be an integer, got {value!r}")
    return value


def _ms(value: object) -> int:
    """OKX times are ms since the epoch as a decimal string -> ns."""
    if type(value) is not str or not value.isdigit():
        raise ParseError(f"bad ms timestamp {value!r}")
    return int(value) * 1_000_000





class OkxProtocol(VenueProtocol):
    """OKX v5 public market data: books (seqId-chained, checksummed), trades, tickers."""

    depth = None  # OKX sends deletions for every level it pushed; no truncation

    def __init__(self, name: str = "okx", book_channel: str = "books") -> None:
        super().__init__(name)
        #: channel used to resubscribe an instrument never seen on a book channel
        self.book_channel = book_channel
        self._last_seq: dict[str, int | None] = {}  # live instId -> last seqId (None: unsequenced)
        self._channel_of: dict[str, str] = {}  # instId -> its book channel

    # -- VenueProtocol ---------------------------------------------------------------------
    def parse(self, frame: str | bytes, ts_recv: int) -> list[MarketEvent]:
        self.stats.frames += 1
        try:
            if frame == "pong" or frame == b"pong":
                return [self._status("pong", "", "")]
            msg = json.loads(frame)
            if type(msg) is not dict:
                raise ParseError(f"expected a JSON object, got {type(msg).__name__}")
            if "data" in msg:
                return self._data(msg, ts_recv)
            if "event" in msg:
                return self._event(msg)
            raise ParseError("object has neither 'data' nor 'event'")
        except ParseError as exc:
            raise self._fail(str(exc), frame) from None
        except _ERRORS as exc:
            raise self._fail(_describe(exc), frame) from exc

    def verify(self, book: L2Book, msg: BookMsg) -> bool:
        ok = okx_checksum(book) == msg.checksum
        self._count("checksum_ok" if ok else "checksum_failed")
        return ok

    def resync(self, symbol: str, reason: ResyncReason) -> list[MarketEvent]:
        """Drop ``symbol``'s updates until a new snapshot; resubscribe its book only."""
        self._last_seq.pop(symbol, None)
        args = [{"channel": self._channel_of.get(symbol, self.book_channel), "instId": symbol}]
        return [Outbound(self.name, json.dumps({"op": "unsubscribe", "args": args})),
                Outbound(self.name, json.dumps({"op": "subscribe", "args": args}))]

    # -- bookkeeping -----------------------------------------------------------------------
    def _status(self, kind: str, detail: str, symbol: str) -> Status:
        self._count(kind)
        return Status(self.name, kind, detail, symbol)

    # -- messages --------------------------------------------------------------------------
    def _data(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        arg = msg["arg"]
        chan = _str(arg["channel"], "channel")
        data = msg["data"]
        if type(data) is not list:
            raise ParseError("'data' must be an array")
        if chan in BOOK_CHANNELS:
            return self._book(_str(arg["instId"], "instId"), chan, msg.get("action"), data,
                              ts_recv)
        handler = _CHANNELS.get(chan)
        if handler is None:
            self.stats.ignored += 1
            self._count("unhandled_channel")
            return []
        return handler(self, data, ts_recv)

    def _event(self, msg: dict) -> list[MarketEvent]:
        event = _str(msg["event"], "event")
        arg = msg.get("arg")
        symbol = str(arg.get("instId", "")) if type(arg) is dict else ""
        detail = f"{msg['code']} {msg.get('msg', '')}".strip() if "code" in msg else ""
        return [self._status(event, detail, symbol)]

    def _book(self, inst: str, chan: str, action: object, data: list,
              ts_recv: int) -> list[MarketEvent]:
        if action is not None and action != "snapshot" and action != "update":
            raise ParseError(f"book action {action!r} is not snapshot/update")
        out: list[MarketEvent] = []
        for d in data:
            if action == "update" and inst not in self._last_seq:
                self.stats.ignored += 1
                self._count("update_before_snapshot")
                continue
            book_msg = self._book_msg(inst, d, action != "update", ts_recv)  # validates first
            if action == "update":
                gap = self._chain(inst, d, ts_recv)
                if gap is not None:
                    out.append(gap)
                    break
            else:
                self._last_seq[inst] = _seq(d, "seqId")
                self._channel_of[inst] = chan
            self._count("book_snapshot" if book_msg.snapshot else "book_update")
            out.append(book_msg)
        return out

    def _chain(self, inst: str, d: dict, ts_recv: int) -> Resync | None:
        """Check ``prevSeqId`` against the last ``seqId``; advance, or report the gap."""
        seq = _seq(d, "seqId")
        last = self._last_seq[inst]
        if seq is not None and last is not None:
            prev = _seq(d, "prevSeqId")
            if prev != last:
                del self._last_seq[inst]
                self._count("gap")
                return Resync(self.name, inst, ts_recv, ResyncReason.GAP,
                              f"prevSeqId {prev} != last seqId {last}")
        self._last_seq[inst] = seq
        return None

    def _book_msg(self, inst: str, d: dict, snapshot: bool, ts_recv: int) -> BookMsg:
        prev = _seq(d, "prevSeqId")
        seq = _seq(d, "seqId")
        cs = d.get("checksum")
        return BookMsg(self.name, inst, _ms(d["ts"]), ts_recv,
                       _check_levels(d.get("bids", [])), _check_levels(d.get("asks", [])),
                       snapshot=snapshot, first_id=-1 if prev is None else prev,
                       last_id=-1 if seq is None else seq,
                       checksum=None if cs is None or _int(cs, "checksum") == 0 else cs)

    def _trades(self, data: list, ts_recv: int) -> list[MarketEvent]:
        self._count("trade")
        return [TradeMsg(self.name, _str(t["instId"], "instId"), _ms(t["ts"]), ts_recv,
                         _str(t["tradeId"], "tradeId"), float(_str(t["px"], "px")),
                         float(_str(t["sz"], "sz")), _side(t["side"])) for t in data]

    def _tickers(self, data: list, ts_recv: int) -> list[MarketEvent]:
        self._count("ticker")
        return [TickerMsg(self.name, _str(t["instId"], "instId"), _ms(t["ts"]), ts_recv,
                          _quote(t["bidPx"]), _quote(t["bidSz"]), _quote(t["askPx"]),
                          _quote(t["askSz"])) for t in data]


def _seq(d: dict, key: str) -> int | None:
    value = d.get(key)
    return None if value is None else _int(value, key)


def _side(value: object) -> str:
    side = _SIDES.get(value) if type(value) is str else None
    if side is None:
        raise ParseError(f"unknown trade side {value!r}")
    return side


_CHANNELS: dict[str, Callable[[OkxProtocol, list, int], list[MarketEvent]]] = {
    "trades": OkxProtocol._trades,
    "trades-all": OkxProtocol._trades,
    "tickers": OkxProtocol._tickers,
}
