"""One symbol of the sim market: its L2 ladder and the Binance strings and JSON it writes.

Prices are tick indexes and quantities integer 1e-8 units (see :mod:`.market`); this module
turns them into Binance's fixed 8-decimal strings and writes ``depthUpdate`` and
``bookTicker`` payloads as compact JSON text, byte for byte what
``json.dumps(data, separators=(",", ":"))`` gives for the same dict.
"""

from __future__ import annotations

import json
import math

E8 = 100_000_000
Text = tuple[str, str]  # (stream, the payload's data as compact JSON text)

_PROBE = 8  # ticks probed for the next level before scanning the whole side


def fmt8(units: int) -> str:
    """Format an integer count of 1e-8 units as Binance does: ``"60000.01000000"``."""
    return f"{units // E8}.{units % E8:08d}"


class Prices(dict[int, str]):
    """Binance price strings by tick index, formatted on first use (bounded)."""

    __slots__ = ("tick_units",)

    def __init__(self, tick_units: int) -> None:
        super().__init__()
        self.tick_units = tick_units

    def __missing__(self, tick: int) -> str:
        if len(self) > 200_000:
            self.clear()
        s = self[tick] = fmt8(tick * self.tick_units)
        return s


def next_above(side: dict[int, int], t: int) -> int:
    """The lowest level of ``side`` above ``t``, when ``side`` has none at or below ``t``."""
    for k in range(t + 1, t + 1 + _PROBE):
        if k in side:
            return k
    return min(side)


def next_below(side: dict[int, int], t: int) -> int:
    """The highest level of ``side`` below ``t``, when ``side`` has none at or above ``t``."""
    for k in range(t - 1, t - 1 - _PROBE, -1):
        if k in side:
            return k
    return max(side)


class Ladder:
    """The state of one symbol: both sides, best and far prices, ids and formatting constants.

    ``bb``/``ba`` are the best bid and ask, ``lo``/``hi`` the far ends (lowest bid, highest
    ask), kept up to date by every change so that no step scans a side.
    """

    __slots__ = (
        "symbol",
        "sym_json",
        "depth_stream",
        "trade_stream",
        "ticker_stream",
        "tick_units",
        "lot",
        "base",
        "bids",
        "asks",
        "bb",
        "ba",
        "lo",
        "hi",
        "last_id",
        "trade_id",
        "fair",
        "top",
        "px",
    )

    def __init__(self, symbol: str, price: float, tick: float, notional: float) -> None:
        low = symbol.lower()
        self.symbol = symbol
        self.sym_json = json.dumps(symbol)
        self.depth_stream = f"{low}@depth@100ms"
        self.trade_stream = f"{low}@trade"
        self.ticker_stream = f"{low}@bookTicker"
        self.tick_units = round(tick * E8)
        if self.tick_units < 1 or abs(self.tick_units - tick * E8) > 1e-6 * E8 * tick:
            raise ValueError(f"tick {tick!r} of {symbol} is not a multiple of 1e-8")
        base = max(1, round(notional / price * E8))
        self.lot = 10 ** max(0, int(math.floor(math.log10(base))) - 4)
        self.base = max(self.lot, base // self.lot * self.lot)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        mid = round(price / tick)
        self.bb, self.ba = mid - 1, mid
        self.lo, self.hi = self.bb, self.ba
        self.fair = mid - 0.5
        self.last_id = self.trade_id = 0
        self.top: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.px = Prices(self.tick_units)

    def price(self, tick: int) -> str:
        """The Binance price string of a tick index (cached)."""
        return self.px[tick]

    def levels(self, side: dict[int, int], limit: int, reverse: bool) -> list[list[str]]:
        """The best ``limit`` levels of ``side`` as Binance ``[price, qty]`` pairs."""
        keys = sorted(side, reverse=reverse)[:limit]
        return [[self.px[t], fmt8(side[t])] for t in keys]

    def depth_text(self, ts: int, ch_b: dict[int, int], ch_a: dict[int, int]) -> str:
        """The ``depthUpdate`` of the levels changed in a step (final quantities, 0 = gone);
        takes the next ``len(ch_b) + len(ch_a)`` update ids."""
        first = self.last_id + 1
        self.last_id += len(ch_b) + len(ch_a)
        p = self.px
        bl = ",".join([f'["{p[t]}","{q // E8}.{q % E8:08d}"]' for t, q in ch_b.items()])
        al = ",".join([f'["{p[t]}","{q // E8}.{q % E8:08d}"]' for t, q in ch_a.items()])
        return (
            f'{{"e":"depthUpdate","E":{ts},"s":{self.sym_json},"U":{first},"u":{self.last_id},'
            f'"b":[{bl}],"a":[{al}]}}'
        )

    def ticker_text(self) -> str | None:
        """The ``bookTicker`` payload if the top of the book changed since the last one."""
        top = (self.bb, self.bids[self.bb], self.ba, self.asks[self.ba])
        if top == self.top:
            return None
        self.top = top
        p = self.px
        return (
            f'{{"u":{self.last_id},"s":{self.sym_json},"b":"{p[top[0]]}","B":"{fmt8(top[1])}",'
            f'"a":"{p[top[2]]}","A":"{fmt8(top[3])}"}}'
        )
