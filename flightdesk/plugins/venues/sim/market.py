"""A seeded L2 market that emits Binance spot combined-stream payloads (sans-I/O).

Each symbol keeps one ladder per side as a plain ``{tick_index: qty_units}`` dict: a price is
``tick_index * tick`` and a quantity is counted in 1e-8 units, so the model never rounds a
float and formats Binance's fixed 8-decimal strings exactly. A fair value random-walks in
ticks; the book leans toward it. One step of one symbol does, in this order:

1. trades on the side the book leans toward: each eats size at the touch, sometimes sweeping
   a level or several (one ``trade`` payload per level touched, like Binance);
2. maker actions: quotes inside the spread (refilling swept levels), resizes, adds and
   cancels near the touch, and now and then a burst of many of them;
3. trimming/extending the far end of each ladder to keep about ``levels`` levels.

It returns the trades, then one ``depthUpdate`` carrying the final quantity of every level
that changed in the step (including the size the trades took; ``u - U + 1`` is the number of
levels in it), then, if enabled and the top changed, a ``bookTicker``. The book is never
crossed: bids are only ever added below the best ask and asks above the best bid.
"""

from __future__ import annotations

import math
import random
from typing import Any

E8 = 100_000_000
Payload = dict[str, Any]


def fmt8(units: int) -> str:
    """Format an integer count of 1e-8 units as Binance does: ``"60000.01000000"``."""
    whole, frac = divmod(units, E8)
    return f"{whole}.{frac:08d}"


def default_tick(price: float) -> float:
    """A Binance-like tick: the power of ten below ``price * 1e-5``, capped at 0.01."""
    return min(0.01, max(1e-8, 10.0 ** math.floor(math.log10(price * 1e-5))))


class _Ladder:
    """The state of one symbol: both sides, best prices, ids and formatting constants."""

    __slots__ = (
        "symbol",
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
        "last_id",
        "trade_id",
        "fair",
        "top",
        "px",
    )

    def __init__(self, symbol: str, price: float, tick: float, notional: float) -> None:
        low = symbol.lower()
        self.symbol = symbol
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
        self.fair = mid - 0.5
        self.last_id = self.trade_id = 0
        self.top: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.px: dict[int, str] = {}

    def price(self, tick: int) -> str:
        """The Binance price string of a tick index (cached)."""
        s = self.px.get(tick)
        if s is None:
            if len(self.px) > 200_000:
                self.px.clear()
            s = self.px[tick] = fmt8(tick * self.tick_units)
        return s

    def levels(self, side: dict[int, int], limit: int, reverse: bool) -> list[list[str]]:
        """The best ``limit`` levels of ``side`` as Binance ``[price, qty]`` pairs."""
        keys = sorted(side, reverse=reverse)[:limit]
        return [[self.price(t), fmt8(side[t])] for t in keys]


class SimMarket:
    """Seeded synthetic L2 markets, one per symbol, emitting Binance spot payloads.

    ``symbols`` maps a symbol (``"BTCUSDT"``) to its start price. ``tick`` is one tick for
    all symbols or a per-symbol dict (default: :func:`default_tick`). The same ``seed`` and
    the same calls give the same payloads. ``burst_prob`` is the chance that a step is a burst
    of many maker actions; ``book_ticker`` adds ``bookTicker`` payloads when the top changes.
    """

    def __init__(
        self,
        symbols: dict[str, float],
        seed: int = 7,
        tick: float | dict[str, float] | None = None,
        levels: int = 50,
        *,
        vol: float = 1.0,
        trade_prob: float = 0.3,
        burst_prob: float = 0.02,
        book_ticker: bool = False,
        notional: float = 5000.0,
    ) -> None:
        if not symbols:
            raise ValueError("SimMarket needs at least one symbol")
        if levels < 2:
            raise ValueError("levels must be at least 2")
        self._rnd = random.Random(seed)
        self._r = self._rnd.random
        self.levels = levels
        self.vol, self.trade_prob, self.burst_prob = vol, trade_prob, burst_prob
        self.book_ticker = book_ticker
        self._books: dict[str, _Ladder] = {}
        for sym, price in symbols.items():
            t = tick.get(sym) if isinstance(tick, dict) else tick
            self._books[sym] = self._seed_ladder(sym, price, t or default_tick(price), notional)

    @property
    def symbols(self) -> list[str]:
        return list(self._books)

    def streams(self, symbol: str) -> tuple[str, str, str]:
        """The depth, trade and bookTicker stream names of ``symbol``."""
        b = self._books[symbol]
        return b.depth_stream, b.trade_stream, b.ticker_stream

    def last_update_id(self, symbol: str) -> int:
        return self._books[symbol].last_id

    def best(self, symbol: str) -> tuple[str, str]:
        """The best bid and best ask price strings of ``symbol``."""
        b = self._books[symbol]
        return b.price(b.bb), b.price(b.ba)

    def snapshot(self, symbol: str, limit: int = 1000) -> Payload:
        """The ``GET /api/v3/depth`` body of ``symbol``: consistent with every step so far."""
        b = self._books[symbol]
        return {
            "lastUpdateId": b.last_id,
            "bids": b.levels(b.bids, limit, True),
            "asks": b.levels(b.asks, limit, False),
        }

    def step(self, ts_ms: int, symbol: str | None = None) -> list[Payload]:
        """Advance ``symbol`` (or every symbol, in order) one step; return the payloads."""
        if symbol is not None:
            return self._step(self._books[symbol], ts_ms)
        out: list[Payload] = []
        for b in self._books.values():
            out += self._step(b, ts_ms)
        return out

    # -- construction -------------------------------------------------------------------
    def _seed_ladder(self, sym: str, price: float, tick: float, notional: float) -> _Ladder:
        b = _Ladder(sym, price, tick, notional)
        r = self._r
        b.last_id = 1_000_000 + int(r() * 9_000_000)
        b.trade_id = 100_000 + int(r() * 900_000)
        bid, ask = b.bb, b.ba
        for i in range(self.levels):
            b.bids[bid] = self._size(b, i)
            b.asks[ask] = self._size(b, i)
            bid -= 1 + (r() < 0.3) + (r() < 0.1)
            ask += 1 + (r() < 0.3) + (r() < 0.1)
        b.top = (b.bb, b.bids[b.bb], b.ba, b.asks[b.ba])
        return b

    def _size(self, b: _Ladder, depth: int = 0) -> int:
        """A maker size, growing with the distance from the touch, in whole lots."""
        x = -math.log(1.0 - self._r()) * (1.0 + depth * 0.05) + 0.05
        return max(1, int(x * b.base) // b.lot) * b.lot

    # -- one step -----------------------------------------------------------------------
    def _step(self, b: _Ladder, ts: int) -> list[Payload]:
        r = self._r
        b.fair += (r() - 0.5) * self.vol * 3.4641  # uniform noise with std ``vol`` ticks
        lean = min(0.9, max(0.1, 0.5 + 0.15 * (b.fair - 0.5 * (b.bb + b.ba))))
        ch_b: dict[int, int] = {}
        ch_a: dict[int, int] = {}
        out: list[Payload] = []
        burst = r() < self.burst_prob
        while r() < (0.8 if burst else self.trade_prob):
            self._trade(b, r() < lean, ts, ch_b, ch_a, out)
        for _ in range(15 + int(r() * 45) if burst else 1 + int(r() * 3)):
            self._act(b, lean, ch_b, ch_a)
        self._trim(b, ch_b, ch_a)
        if not ch_b and not ch_a:
            self._resize(b, b.bids, b.bb, ch_b)
        out.append(self._depth(b, ts, ch_b, ch_a))
        if self.book_ticker:
            self._ticker(b, out)
        return out

    def _trade(
        self,
        b: _Ladder,
        buy: bool,
        ts: int,
        ch_b: dict[int, int],
        ch_a: dict[int, int],
        out: list[Payload],
    ) -> None:
        """A taker order at the touch; a big one sweeps levels (one print per level)."""
        side, ch = (b.asks, ch_a) if buy else (b.bids, ch_b)
        want = self._size(b) // 2 or b.lot
        if self._r() < 0.25:
            want += side[b.ba if buy else b.bb] * (1 + (self._r() < 0.3))
        while want > 0 and len(side) > 2:
            px = b.ba if buy else b.bb
            have = side[px]
            fill = min(want, have)
            want -= fill
            b.trade_id += 1
            out.append(
                {
                    "stream": b.trade_stream,
                    "data": {
                        "e": "trade",
                        "E": ts,
                        "s": b.symbol,
                        "t": b.trade_id,
                        "p": b.price(px),
                        "q": fmt8(fill),
                        "T": ts,
                        "m": not buy,
                        "M": True,
                    },
                }
            )
            if fill < have:
                side[px] = ch[px] = have - fill
                continue
            del side[px]
            ch[px] = 0
            if buy:
                b.ba = min(side)
            else:
                b.bb = max(side)

    def _act(self, b: _Ladder, lean: float, ch_b: dict[int, int], ch_a: dict[int, int]) -> None:
        """One maker action: quote inside the spread, cancel, or resize/add near the touch."""
        r = self._r
        x = r()
        if b.ba - b.bb > 1 and x < 0.5:
            self._improve(b, r() < lean, ch_b, ch_a)
            return
        up = r() < lean
        bid = (not up) if x < 0.62 else r() < 0.5  # leaning up: cancel asks, not bids
        side, ch, best = (b.bids, ch_b, b.bb) if bid else (b.asks, ch_a, b.ba)
        dist = int(-math.log(1.0 - r()) * self.levels * 0.25)
        t = best - dist if bid else best + dist
        if x < 0.62:
            self._cancel(b, side, t, bid, ch)
        else:
            self._resize(b, side, t, ch)

    def _improve(self, b: _Ladder, bid: bool, ch_b: dict[int, int], ch_a: dict[int, int]) -> None:
        """A new best level inside the spread (never reaching the other side)."""
        t = b.bb + 1 + int(self._r() * (b.ba - b.bb - 1))
        q = self._size(b)
        if bid:
            b.bids[t] = ch_b[t] = q
            b.bb = t
        else:
            b.asks[t] = ch_a[t] = q
            b.ba = t

    def _cancel(
        self, b: _Ladder, side: dict[int, int], t: int, bid: bool, ch: dict[int, int]
    ) -> None:
        if t not in side or len(side) <= 2:
            return
        del side[t]
        ch[t] = 0
        if bid and t == b.bb:
            b.bb = max(side)
        elif not bid and t == b.ba:
            b.ba = min(side)

    def _resize(self, b: _Ladder, side: dict[int, int], t: int, ch: dict[int, int]) -> None:
        """Change the size of level ``t`` (refilling it), or add it if it is empty."""
        old = side.get(t, 0)
        q = self._size(b, abs(t - (b.bb if side is b.bids else b.ba)))
        if old and self._r() < 0.6:
            q = max(b.lot, int(old * (0.5 + self._r())) // b.lot * b.lot)
        side[t] = ch[t] = q if q != old else q + b.lot

    def _trim(self, b: _Ladder, ch_b: dict[int, int], ch_a: dict[int, int]) -> None:
        """Keep about ``levels`` levels per side: drop the farthest or extend the far end."""
        for side, ch, sign in ((b.bids, ch_b, -1), (b.asks, ch_a, 1)):
            for _ in range(3):
                n = len(side)
                if n == self.levels:
                    break
                far = min(side) if sign < 0 else max(side)
                if n > self.levels:
                    del side[far]
                    ch[far] = 0
                else:
                    t = far + sign * (1 + (self._r() < 0.3))
                    side[t] = ch[t] = self._size(b, self.levels)

    def _depth(self, b: _Ladder, ts: int, ch_b: dict[int, int], ch_a: dict[int, int]) -> Payload:
        first = b.last_id + 1
        b.last_id += len(ch_b) + len(ch_a)
        return {
            "stream": b.depth_stream,
            "data": {
                "e": "depthUpdate",
                "E": ts,
                "s": b.symbol,
                "U": first,
                "u": b.last_id,
                "b": [[b.price(t), fmt8(q)] for t, q in ch_b.items()],
                "a": [[b.price(t), fmt8(q)] for t, q in ch_a.items()],
            },
        }

    def _ticker(self, b: _Ladder, out: list[Payload]) -> None:
        top = (b.bb, b.bids[b.bb], b.ba, b.asks[b.ba])
        if top == b.top:
            return
        b.top = top
        out.append(
            {
                "stream": b.ticker_stream,
                "data": {
                    "u": b.last_id,
                    "s": b.symbol,
                    "b": b.price(top[0]),
                    "B": fmt8(top[1]),
                    "a": b.price(top[2]),
                    "A": fmt8(top[3]),
                },
            }
        )
