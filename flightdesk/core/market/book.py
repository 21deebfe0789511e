"""An exact L2 order book for one instrument.

Levels are keyed by ``float(price)``: equal venue strings give equal keys (and so do
numerically equal spellings such as ``"1.0"``/``"1.00"``), and every decimal price with at
most 15 significant digits maps to a distinct float. The value stored for a level is the
venue's own level sequence (``[price_str, qty_str, ...]``), untouched, so checksums are
computed on the exact strings the venue sent; its quantity is also kept as a float (parsed
once, when the level arrives), so the top of book and depth sums parse nothing.

A sorted key list per side gives the top of book in O(1) and the top N in O(N). It is kept
with the best level *last* (bids ascending, asks negated ascending): most levels that enter
or leave a book are near its touch (on the Binance recording half of them lie within the
best 8% of the levels), and a list insert or delete moves every key after its position, so
keeping the touch at the end moves a few keys instead of nearly all of them. Applying the
recording's 3,450 depth messages with a top-of-book and depth read after each (2026-12-08,
``bench/RESULTS.md``, "Ingest: the book's data structure"): best-first lists 126-150 ms,
best-last lists 100-118 ms, ``sortedcontainers.SortedList`` keys 154 ms, a sorted numpy
array (``searchsorted`` plus an ``insert``/``delete`` copy per change) 880-1,031 ms.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence

Level = Sequence[str]


class L2Book:
    """Bids and asks of one instrument; see the module docstring for the representation."""

    __slots__ = ("bids", "asks", "_bk", "_ak", "_bq", "_aq", "last_id", "ts_event")

    def __init__(self) -> None:
        self.bids: dict[float, Level] = {}
        self.asks: dict[float, Level] = {}
        self._bk: list[float] = []  # bid prices, ascending => best bid last
        self._ak: list[float] = []  # negated ask prices, ascending => best ask last
        self._bq: dict[float, float] = {}  # price -> quantity, as floats
        self._aq: dict[float, float] = {}
        self.last_id = -1
        self.ts_event = 0

    # -- updates -----------------------------------------------------------------
    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._bk.clear()
        self._ak.clear()
        self._bq.clear()
        self._aq.clear()
        self.last_id = -1

    def load_snapshot(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the whole book (zero-quantity levels in a snapshot are skipped)."""
        self.clear()
        self.bids = {float(lv[0]): lv for lv in bids if float(lv[1]) != 0.0}
        self.asks = {float(lv[0]): lv for lv in asks if float(lv[1]) != 0.0}
        self._bq = {px: float(lv[1]) for px, lv in self.bids.items()}
        self._aq = {px: float(lv[1]) for px, lv in self.asks.items()}
        self._bk = sorted(self.bids)
        self._ak = sorted(-p for p in self.asks)

    def apply_bids(self, levels: Iterable[Level]) -> None:
        """Set absolute quantities on the bid side; qty 0 deletes (a missing level is fine)."""
        book, qty, keys = self.bids, self._bq, self._bk
        for lv in levels:
            px = float(lv[0])
            q = float(lv[1])
            if q == 0.0:
                if book.pop(px, None) is not None:
                    del qty[px]
                    del keys[bisect_left(keys, px)]
            else:
                if px not in book:
                    insort(keys, px)
                book[px] = lv
                qty[px] = q

    def apply_asks(self, levels: Iterable[Level]) -> None:
        """Set absolute quantities on the ask side; qty 0 deletes (a missing level is fine)."""
        book, qty, keys = self.asks, self._aq, self._ak
        for lv in levels:
            px = float(lv[0])
            q = float(lv[1])
            if q == 0.0:
                if book.pop(px, None) is not None:
                    del qty[px]
                    del keys[bisect_left(keys, -px)]
            else:
                if px not in book:
                    insort(keys, -px)
                book[px] = lv
                qty[px] = q

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels per side (venues that stop sending far levels)."""
        for keys, book, qty, sign in ((self._bk, self.bids, self._bq, 1.0),
                                      (self._ak, self.asks, self._aq, -1.0)):
            extra = len(keys) - depth
            if extra > 0:
                for k in keys[:extra]:
                    del book[sign * k]
                    del qty[sign * k]
                del keys[:extra]

    # -- reads -------------------------------------------------------------------
    def best_bid(self) -> tuple[float, float] | None:
        if not self._bk:
            return None
        px = self._bk[-1]
        return px, self._bq[px]

    def best_ask(self) -> tuple[float, float] | None:
        if not self._ak:
            return None
        px = -self._ak[-1]
        return px, self._aq[px]

    def top(self) -> tuple[float, float, float, float]:
        """(bid_px, bid_qty, ask_px, ask_qty); NaN where a side is empty."""
        nan = float("nan")
        bk, ak = self._bk, self._ak
        if bk:
            bp = bk[-1]
            bq = self._bq[bp]
        else:
            bp = bq = nan
        if ak:
            ap = -ak[-1]
            aq = self._aq[ap]
        else:
            ap = aq = nan
        return bp, bq, ap, aq

    def bid_levels(self, n: int) -> list[Level]:
        """The best ``n`` bid levels, best first, as the venue's level sequences."""
        bids, keys = self.bids, self._bk
        return [bids[k] for k in keys[:-n - 1:-1]] if n > 0 else []

    def ask_levels(self, n: int) -> list[Level]:
        """The best ``n`` ask levels, best first, as the venue's level sequences."""
        asks, keys = self.asks, self._ak
        return [asks[-k] for k in keys[:-n - 1:-1]] if n > 0 else []

    def depth_qty(self, n: int) -> tuple[float, float]:
        """Total bid and ask quantity over the best ``n`` levels of each side."""
        if n <= 0:
            return 0.0, 0.0
        bq, aq = self._bq, self._aq
        return (sum([bq[k] for k in self._bk[:-n - 1:-1]]),
                sum([aq[-k] for k in self._ak[:-n - 1:-1]]))

    def is_crossed(self) -> bool:
        return bool(self._bk and self._ak and self._bk[-1] >= -self._ak[-1])

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)
