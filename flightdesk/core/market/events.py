"""Typed market events produced by venue parsers (sans-I/O) and consumed by the engine.

Parsers turn one raw frame into a list of these; nothing downstream looks at venue JSON.
Prices and quantities in book levels stay the venue's own strings (exact, checksum-safe);
trades carry floats because they go straight into Arrow columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ResyncReason(str, Enum):
    GAP = "gap"
    CHECKSUM = "checksum"
    CROSSED = "crossed"
    STALE = "stale"
    RECONNECT = "reconnect"


@dataclass(slots=True)
class BookMsg:
    """One book message for one instrument: absolute quantities per price level.

    ``bids``/``asks`` are sequences of ``[price, qty, ...]`` with price and qty as the
    venue's decimal strings; qty ``"0"`` (any zero spelling) deletes the level.
    ``snapshot`` replaces the whole book. ``checksum`` is the venue's checksum if the
    message carries one; the venue's ``verify`` function checks it after applying.
    """

    venue: str
    symbol: str
    ts_event: int
    ts_recv: int
    bids: list
    asks: list
    snapshot: bool = False
    first_id: int = -1
    last_id: int = -1
    checksum: int | None = None


@dataclass(slots=True)
class TradeMsg:
    """One trade print; ``side`` is the aggressor side (``buy``/``sell``)."""

    venue: str
    symbol: str
    ts_event: int
    ts_recv: int
    trade_id: str
    price: float
    qty: float
    side: str


@dataclass(slots=True)
class TickerMsg:
    """A venue's own best bid/offer (bookTicker and the like); ``update_id`` ties it to a book."""

    venue: str
    symbol: str
    ts_event: int
    ts_recv: int
    bid_px: str
    bid_qty: str
    ask_px: str
    ask_qty: str
    update_id: int = -1


@dataclass(slots=True)
class BarMsg:
    """A bar the venue computed itself (Alpaca minute bars, say); times in ns."""

    venue: str
    symbol: str
    interval: str
    open_time: int
    ts_recv: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int = 0


@dataclass(slots=True)
class Resync:
    """The parser lost sync on one instrument: its book must be discarded and rebuilt."""

    venue: str
    symbol: str
    ts_recv: int
    reason: ResyncReason
    detail: str = ""


@dataclass(slots=True)
class SnapshotRequest:
    """The parser needs a REST snapshot for ``symbol`` (the feed fetches it and feeds it back)."""

    venue: str
    symbol: str


@dataclass(slots=True)
class Status:
    """A non-market message worth surfacing (subscription ack, heartbeat, venue error)."""

    venue: str
    kind: str
    detail: str = ""
    symbol: str = ""


@dataclass(frozen=True, slots=True)
class Reconnected:
    """A venue's feed connected again after losing its connection: frames were lost in
    between, so every book of the venue must be rebuilt (the engine's ``on_reconnect``)."""

    venue: str
    ts_recv: int


@dataclass(slots=True)
class ParseStats:
    """Counters every parser keeps; surfaced in ``status`` and metrics."""

    frames: int = 0
    errors: int = 0
    ignored: int = 0
    last_error: str = ""
    by_kind: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Outbound:
    """A frame the feed must send on the venue connection (e.g. a resubscribe)."""

    venue: str
    frame: str


MarketEvent = (BookMsg | TradeMsg | TickerMsg | BarMsg | Resync | SnapshotRequest | Status
               | Outbound)
