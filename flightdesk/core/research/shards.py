"""A work unit's slice of a backtest's input: the whole input, one UTC day, one instrument.

A :class:`Shard` is a spec (``{"day": "2024-08-08"}``, ``{"venue": "binance", "symbol":
"BTCUSDT"}``, or ``{}`` for everything) that a task applies *while it reads* its inputs, so
a shard costs no copy of the data. Every shard is a desk of its own: it starts flat — no
position, no open order, no book — and a book exists from the instrument's first snapshot
inside the shard. What each kind of input does with a shard:

====================  ==================================================  ==================
input                 day (``[00:00, 24:00)`` UTC of the replay clock)    instrument
====================  ==================================================  ==================
raw captures          records received outside the day are skipped; the   every frame is
                      venue's protocol builds each book from the day's    parsed (sequencing
                      own snapshot (a REST answer, a subscription's       stays whole) and
                      first message), as a live desk started that day     other instruments'
                      would                                               events are dropped
normalized Parquet    rows outside the day are filtered in the scan       rows of other
                      (row groups pruned by their statistics); book       instruments are
                      deltas before an instrument's first snapshot of     filtered in the
                      the day are dropped                                 scan
Tardis CSV            rows outside the day are skipped as read; deltas    other instruments'
                      before the first snapshot dropped                   rows skipped
====================  ==================================================  ==================

The replay clock is the receive time (``ts_recv``), or ``ts_event`` for quotes-only
Parquet, whose replay runs on it. Daily files (as collectors and Tardis write them) start
with a snapshot, so every day shard has books; one continuous capture over several days
has books only where that day holds a snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flightdesk.core.errors import ConfigError
from flightdesk.core.market.book import L2Book
from flightdesk.core.market.events import (
    BarMsg,
    BookMsg,
    MarketEvent,
    Resync,
    ResyncReason,
    TickerMsg,
    TradeMsg,
)
from flightdesk.core.market.instruments import Instrument
from flightdesk.core.market.venue import Venue, VenueProtocol
from flightdesk.core.storage.captures import CaptureRecord

NS_PER_DAY = 86_400 * 1_000_000_000
_EPOCH = dt.date(1970, 1, 1)
#: events that belong to one instrument. The rest are kept: status, outbound frames, and
#: snapshot requests, so that a replay pairs a capture's REST snapshots with the symbols
#: that asked for them as it does on the whole capture (the snapshot's book message of
#: another instrument is then dropped)
_PER_INSTRUMENT = (BookMsg, TradeMsg, TickerMsg, BarMsg, Resync)
#: the replay-clock column of each normalized stream
TIME_COLUMNS = {"book": "ts_recv", "trades": "ts_recv", "events": "ts", "quotes": "ts_event"}

Step = tuple[int, list[MarketEvent]]
VenueFactory = Callable[[str, dict[str, Any]], Venue]


def day_of(ts_ns: int) -> str:
    """The UTC day (``YYYY-MM-DD``) of an ns timestamp."""
    return (_EPOCH + dt.timedelta(days=ts_ns // NS_PER_DAY)).isoformat()


@dataclass(frozen=True, slots=True)
class Shard:
    """See the module docstring. Empty fields select everything; ``Shard()`` is the whole
    input and its filters hand the data through untouched."""

    day: str = ""
    venue: str = ""
    symbol: str = ""

    def __post_init__(self) -> None:
        if self.day:
            try:
                dt.date.fromisoformat(self.day)
            except ValueError:
                raise ConfigError(f"shard day {self.day!r} is not a YYYY-MM-DD date") from None
        if bool(self.venue) != bool(self.symbol):
            raise ConfigError(f"an instrument shard names both venue and symbol, not "
                              f"venue={self.venue!r} symbol={self.symbol!r}")

    @classmethod
    def from_spec(cls, spec: Mapping[str, str]) -> Shard:
        unknown = set(spec) - {"day", "venue", "symbol"}
        if unknown:
            raise ConfigError(f"unknown shard keys {sorted(unknown)} (day, venue, symbol)")
        return cls(**{k: str(v) for k, v in spec.items()})

    @property
    def spec(self) -> dict[str, str]:
        return {k: v for k, v in (("day", self.day), ("venue", self.venue),
                                  ("symbol", self.symbol)) if v}

    @property
    def label(self) -> str:
        """The shard's directory name: ``day=2024-08-08``, ``symbol=binance.BTCUSDT``
        (URL-quoted: Kraken's ``XBT/CHF`` is ``XBT%2FCHF``), both joined by ``,``."""
        parts = [f"day={self.day}"] if self.day else []
        if self.symbol:
            parts.append("symbol=" + quote(f"{self.venue}.{self.symbol}", safe=""))
        return ",".join(parts)

    @property
    def window(self) -> tuple[int, int] | None:
        """``[start, end)`` in ns of the day, or None without one."""
        if not self.day:
            return None
        start = (dt.date.fromisoformat(self.day) - _EPOCH).days * NS_PER_DAY
        return start, start + NS_PER_DAY

    def __bool__(self) -> bool:
        return bool(self.day or self.symbol)

    # -- raw captures ---------------------------------------------------------------------
    def records(self, records: Iterable[CaptureRecord]) -> Iterable[CaptureRecord]:
        """Capture records received inside the day (all of them without one)."""
        window = self.window
        if window is None:
            return records
        start, end = window
        return (r for r in records if start <= r.ts_recv < end)

    def venue_factories(self, factories: Mapping[str, VenueFactory]
                        ) -> dict[str, VenueFactory]:
        """Venue factories whose protocols pass on only this shard's instrument."""
        if not self.symbol:
            return dict(factories)
        return {name: _OneInstrumentFactory(f, self.symbol if name == self.venue else None)
                for name, f in factories.items()}

    # -- normalized Parquet and Tardis CSV ------------------------------------------------
    def row_filter(self, stream: str) -> Any:
        """A ``pyarrow.dataset`` filter selecting this shard's rows of a normalized
        ``stream`` (``book``, ``trades``, ``events``, ``quotes``), or None for all rows."""
        import pyarrow.dataset as ds

        where = None
        window = self.window
        if window is not None:
            column = ds.field(TIME_COLUMNS[stream])
            where = (column >= window[0]) & (column < window[1])
        if self.symbol:
            same = (ds.field("venue") == self.venue) & (ds.field("symbol") == self.symbol)
            where = same if where is None else where & same
        return where

    def steps(self, steps: Iterable[Step]) -> Iterable[Step]:
        """``(ts_recv, events)`` runs inside the shard; book messages of an instrument
        before its first snapshot in the shard are dropped (a book starts from one)."""
        if not self:
            return steps
        return self._steps(steps)

    def _steps(self, steps: Iterable[Step]) -> Iterator[Step]:
        start, end = self.window or (-1 << 63, 1 << 63)
        booked: set[tuple[str, str]] = set()
        for ts, events in steps:
            if not start <= ts < end:
                continue
            kept = [ev for ev in events if self._keeps(ev, booked)]
            if kept:
                yield ts, kept

    def _keeps(self, ev: MarketEvent, booked: set[tuple[str, str]]) -> bool:
        if not isinstance(ev, _PER_INSTRUMENT):
            return True
        if self.symbol and (ev.symbol != self.symbol or ev.venue != self.venue):
            return False
        if type(ev) is BookMsg:
            key = (ev.venue, ev.symbol)
            if ev.snapshot:
                booked.add(key)
            return key in booked
        return True


class OneInstrument(VenueProtocol):
    """A venue's protocol passing on one instrument's events only (``symbol`` None: no
    instrument's). The wrapped protocol parses every frame, so its sequencing state is
    what it would be on the whole capture; other instruments' events are dropped."""

    def __init__(self, inner: VenueProtocol, symbol: str | None) -> None:
        super().__init__(inner.name)
        self.inner = inner
        self.symbol = symbol
        self.stats = inner.stats
        self.depth = inner.depth

    @property  # the engine sets it; the wrapped protocol is the one that reads it
    def tickers_wanted(self) -> bool:
        return self.inner.tickers_wanted

    @tickers_wanted.setter
    def tickers_wanted(self, value: bool) -> None:
        self.inner.tickers_wanted = value

    def parse(self, frame: str | bytes, ts_recv: int) -> list[MarketEvent]:
        return self._keep(self.inner.parse(frame, ts_recv))

    def parse_snapshot(self, symbol: str, body: str | bytes, ts_recv: int) -> list[MarketEvent]:
        return self._keep(self.inner.parse_snapshot(symbol, body, ts_recv))

    def parse_instruments(self, body: str | bytes) -> list[Instrument]:
        return self.inner.parse_instruments(body)

    def verify(self, book: L2Book, msg: BookMsg) -> bool:
        return self.inner.verify(book, msg)

    def resync(self, symbol: str, reason: ResyncReason) -> list[MarketEvent]:
        return self._keep(self.inner.resync(symbol, reason))

    def reset_connection(self) -> None:
        self.inner.reset_connection()

    def _keep(self, events: list[MarketEvent]) -> list[MarketEvent]:
        return [ev for ev in events
                if not isinstance(ev, _PER_INSTRUMENT) or ev.symbol == self.symbol]


class _OneInstrumentFactory:
    """A venue factory whose venues carry :class:`OneInstrument` protocols."""

    def __init__(self, factory: VenueFactory, symbol: str | None) -> None:
        self.factory = factory
        self.symbol = symbol
        self.DEFAULTS: dict[str, Any] = getattr(factory, "DEFAULTS", {})

    def __call__(self, name: str, cfg: dict[str, Any]) -> Venue:
        venue = self.factory(name, cfg)
        venue.protocol = OneInstrument(venue.protocol, self.symbol)
        return venue
