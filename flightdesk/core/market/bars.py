"""OHLCV bars from trades (1s to 1d) and a rolling 24-hour ticker per symbol.

:class:`BarBuilder` keeps one open bar per (venue, symbol, interval); bars are aligned to
the epoch (``open_time = ts - ts % interval``, UTC days for ``1d``) on the trades' venue
time. A trade in a later bucket closes the open bar, which becomes a row of the ``bars``
stream; buckets without trades produce no bar (as exchanges do). A trade older than the
open bar (out of order) is still counted in it rather than reopening a closed bar.

:class:`Ticker24h` is the rolling 24 h statistics exchanges publish (open, high, low, last,
volume, quote volume, trade count, change), kept exactly over a sliding window with
monotonic deques for the high and low: O(1) amortized per trade.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from flightdesk.core import schemas
from flightdesk.core.errors import ConfigError
from flightdesk.core.market.events import TradeMsg

__all__ = ["INTERVALS", "BarBuilder", "Ticker24h", "TickerStats", "interval_ns"]

_UNITS = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
          "d": 86_400_000_000_000}
#: the standard intervals, shortest first
INTERVALS = ("1s", "5s", "15s", "30s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h",
             "6h", "8h", "12h", "1d")
DAY_NS = _UNITS["d"]


def interval_ns(name: str) -> int:
    """``"15m"`` -> ns; the intervals 1s..1d in s/m/h/d units (ConfigError otherwise)."""
    count, unit = name[:-1], name[-1:]
    if unit not in _UNITS or not count.isdigit() or int(count) <= 0:
        raise ConfigError(f"bad bar interval {name!r}; use e.g. {', '.join(INTERVALS)}")
    ns = int(count) * _UNITS[unit]
    if ns > DAY_NS:
        raise ConfigError(f"bar interval {name!r} is longer than 1d")
    return ns


class _Bar:
    __slots__ = ("open_time", "open", "high", "low", "close", "volume", "trades")

    def __init__(self, open_time: int, price: float, qty: float) -> None:
        self.open_time = open_time
        self.open = self.high = self.low = self.close = price
        self.volume = qty
        self.trades = 1

    def add(self, price: float, qty: float) -> None:
        if price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        self.close = price
        self.volume += qty
        self.trades += 1


class BarBuilder:
    """Closed OHLCV bars from trades for each interval (see the module docstring)."""

    def __init__(self, intervals: Iterable[str] = ("1s", "1m", "1h", "1d")) -> None:
        self.intervals = [(name, interval_ns(name)) for name in intervals]
        self._open: dict[tuple[str, str, str], _Bar] = {}
        self.rows: list[tuple[Any, ...]] = []
        self.schema = schemas.schema("bars")

    def add_intervals(self, names: Iterable[str]) -> None:
        """Also build ``names`` (a strategy reading them attached); known ones are kept."""
        have = {name for name, _ in self.intervals}
        self.intervals += [(n, interval_ns(n)) for n in names if n not in have]

    def add(self, t: TradeMsg) -> None:
        ts, px, qty = t.ts_event, t.price, t.qty
        bars = self._open
        for name, size in self.intervals:
            key = (t.venue, t.symbol, name)
            start = ts - ts % size
            bar = bars.get(key)
            if bar is None:
                bars[key] = _Bar(start, px, qty)
            elif start > bar.open_time:
                self._close(key, bar)
                bars[key] = _Bar(start, px, qty)
            else:
                bar.add(px, qty)

    def add_many(self, trades: Iterable[TradeMsg]) -> None:
        for t in trades:
            self.add(t)

    def _close(self, key: tuple[str, str, str], bar: _Bar) -> None:
        self.rows.append((key[0], key[1], key[2], bar.open_time, bar.open, bar.high, bar.low,
                          bar.close, bar.volume, bar.trades))

    def close_all(self) -> None:
        """Close every open bar (end of a replay or a shutdown)."""
        for key, bar in sorted(self._open.items(), key=lambda kv: kv[1].open_time):
            self._close(key, bar)
        self._open.clear()

    def open_bar(self, venue: str, symbol: str, interval: str) -> dict[str, Any] | None:
        """The bar being built for ``interval`` (None before the first trade)."""
        bar = self._open.get((venue, symbol, interval))
        if bar is None:
            return None
        return {s: getattr(bar, s) for s in _Bar.__slots__}

    def take(self) -> pa.RecordBatch | None:
        """The bars closed since the last call, as a ``bars`` batch (None if none)."""
        if not self.rows:
            return None
        rows, self.rows = self.rows, []
        cols = list(zip(*rows, strict=True))
        arrays = [pa.array(c, f.type) for c, f in zip(cols, self.schema, strict=False)]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


@dataclass(frozen=True, slots=True)
class TickerStats:
    """Rolling-window statistics of one symbol."""

    venue: str
    symbol: str
    open: float
    high: float
    low: float
    last: float
    volume: float
    quote_volume: float
    trades: int
    change_pct: float
    first_ts: int
    last_ts: int


class _Bucket:
    """The trades of one ``resolution_ns`` slice of time: open, high, low, last, sums."""

    __slots__ = ("start", "open", "first_ts", "high", "low", "last", "last_ts", "volume",
                 "quote_volume", "trades")

    def __init__(self, start: int, ts: int, px: float) -> None:
        self.start = start
        self.open = self.high = self.low = self.last = px
        self.first_ts = self.last_ts = ts
        self.volume = self.quote_volume = 0.0
        self.trades = 0


class _Window:
    __slots__ = ("buckets", "volume", "quote_volume", "trades")

    def __init__(self) -> None:
        self.buckets: deque[_Bucket] = deque()
        self.volume = 0.0
        self.quote_volume = 0.0
        self.trades = 0


class Ticker24h:
    """Rolling statistics per (venue, symbol) over the last ``window_ns`` of trades.

    Trades are summed into buckets of ``resolution_ns`` (a minute by default, so a
    symbol's day is at most 1,440 buckets however busy it is: memory stays bounded on a
    desk that runs for days); a bucket leaves the window once its last trade is older than
    ``window_ns``, so the window spans between ``window_ns`` and ``window_ns`` plus one
    bucket. ``resolution_ns=1`` makes it exact (a bucket per distinct timestamp).
    """

    def __init__(self, window_ns: int = DAY_NS, resolution_ns: int = 60 * 10**9) -> None:
        if window_ns <= 0 or resolution_ns <= 0:
            raise ValueError("Ticker24h window_ns and resolution_ns must be positive")
        self.window_ns = window_ns
        self.resolution_ns = resolution_ns
        self._windows: dict[tuple[str, str], _Window] = {}

    def add(self, t: TradeMsg) -> None:
        w = self._windows.get((t.venue, t.symbol))
        if w is None:
            w = self._windows[(t.venue, t.symbol)] = _Window()
        ts, px, qty = t.ts_event, t.price, t.qty
        start = ts - ts % self.resolution_ns
        buckets = w.buckets
        b = buckets[-1] if buckets else None
        if b is None or start > b.start:
            b = _Bucket(start, ts, px)
            buckets.append(b)
        # a trade older than the newest bucket (out of order) counts in the newest one
        if px > b.high:
            b.high = px
        if px < b.low:
            b.low = px
        b.last, b.last_ts = px, max(b.last_ts, ts)
        b.volume += qty
        b.quote_volume += px * qty
        b.trades += 1
        w.volume += qty
        w.quote_volume += px * qty
        w.trades += 1
        cutoff = ts - self.window_ns
        while buckets[0].last_ts <= cutoff:
            old = buckets.popleft()
            w.volume -= old.volume
            w.quote_volume -= old.quote_volume
            w.trades -= old.trades

    def get(self, venue: str, symbol: str) -> TickerStats | None:
        w = self._windows.get((venue, symbol))
        if w is None or not w.buckets:
            return None
        first, last = w.buckets[0], w.buckets[-1]
        high = max(b.high for b in w.buckets)
        low = min(b.low for b in w.buckets)
        return TickerStats(venue, symbol, first.open, high, low, last.last,
                           w.volume, w.quote_volume, w.trades,
                           (last.last - first.open) / first.open * 100.0, first.first_ts,
                           last.last_ts)

    def all(self) -> list[TickerStats]:
        out = [self.get(v, s) for v, s in sorted(self._windows)]
        return [s for s in out if s is not None]
