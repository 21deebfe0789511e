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

The payloads are written straight to JSON text (:meth:`SimMarket.step_text`), byte for byte
what ``json.dumps(data, separators=(",", ":"))`` gives; :meth:`SimMarket.step` parses them
back into dicts. The step is one tight loop because the exchange runs it ~30,000 times a
second: both best prices and both far ends are tracked (no scan of a side per step), prices
are formatted once per tick index, and the random draws happen in a fixed order, so a seed
always gives the same payloads.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

from flightdesk.plugins.venues.sim.ladder import E8, Ladder, Text, fmt8, next_above, next_below

__all__ = ["E8", "Payload", "SimMarket", "Text", "default_tick", "fmt8"]

Payload = dict[str, Any]

_log = math.log


def default_tick(price: float) -> float:
    """A Binance-like tick: the power of ten below ``price * 1e-5``, capped at 0.01."""
    return min(0.01, max(1e-8, 10.0 ** math.floor(math.log10(price * 1e-5))))


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
        self._reach = levels * 0.25  # mean distance from the touch of a cancel or resize
        self._far = 1.0 + levels * 0.05  # size growth of a level added at the far end
        self._books: dict[str, Ladder] = {}
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
        return b.px[b.bb], b.px[b.ba]

    def grid(self, symbol: str) -> tuple[int, int]:
        """The tick and the lot of ``symbol``'s book, in 1e-8 units."""
        b = self._books[symbol]
        return b.tick_units, b.lot

    def side_levels(self, symbol: str, bids: bool) -> list[tuple[int, int, int]]:
        """One side of ``symbol``'s book, best first: ``(tick_index, price, qty)``, the price
        and quantity in 1e-8 units (what an order taking liquidity walks)."""
        b = self._books[symbol]
        side, unit = b.bids if bids else b.asks, b.tick_units
        return [(t, t * unit, side[t]) for t in sorted(side, reverse=bids)]

    def level_qty(self, symbol: str, bids: bool, tick: int) -> int:
        """The quantity (1e-8 units) at ``tick`` on one side of ``symbol``'s book (0: none)."""
        b = self._books[symbol]
        return (b.bids if bids else b.asks).get(tick, 0)

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
        return [{"stream": s, "data": json.loads(d)} for s, d in self.step_text(ts_ms, symbol)]

    def step_text(self, ts_ms: int, symbol: str | None = None) -> list[Text]:
        """Like :meth:`step`, but each payload is ``(stream, data)`` with ``data`` already
        JSON text, exactly ``json.dumps(data, separators=(",", ":"))``."""
        if symbol is not None:
            return self._step(self._books[symbol], ts_ms)
        out: list[Text] = []
        for b in self._books.values():
            out += self._step(b, ts_ms)
        return out

    # -- construction -------------------------------------------------------------------
    def _seed_ladder(self, sym: str, price: float, tick: float, notional: float) -> Ladder:
        b = Ladder(sym, price, tick, notional)
        r = self._r
        b.last_id = 1_000_000 + int(r() * 9_000_000)
        b.trade_id = 100_000 + int(r() * 900_000)
        bid, ask = b.bb, b.ba
        for i in range(self.levels):
            b.bids[bid] = self._size(b, i)
            b.asks[ask] = self._size(b, i)
            b.lo, b.hi = bid, ask
            bid -= 1 + (r() < 0.3) + (r() < 0.1)
            ask += 1 + (r() < 0.3) + (r() < 0.1)
        b.top = (b.bb, b.bids[b.bb], b.ba, b.asks[b.ba])
        return b

    def _size(self, b: Ladder, depth: int = 0) -> int:
        """A maker size, growing with the distance from the touch, in whole lots.

        The step inlines this formula (keep them the same): one draw, exponential."""
        x = -_log(1.0 - self._r()) * (1.0 + depth * 0.05) + 0.05
        return max(1, int(x * b.base) // b.lot) * b.lot

    # -- one step -----------------------------------------------------------------------
    def _step(self, b: Ladder, ts: int) -> list[Text]:  # one hot loop, on purpose
        r = self._r
        b.fair += (r() - 0.5) * self.vol * 3.4641  # uniform noise with std ``vol`` ticks
        lean = 0.5 + 0.15 * (b.fair - 0.5 * (b.bb + b.ba))
        lean = 0.1 if lean < 0.1 else 0.9 if lean > 0.9 else lean
        ch_b: dict[int, int] = {}
        ch_a: dict[int, int] = {}
        out: list[Text] = []
        burst = r() < self.burst_prob
        p_trade = 0.8 if burst else self.trade_prob
        while r() < p_trade:
            self._trade(b, r() < lean, ts, ch_b, ch_a, out)
        bids, asks, bb, ba, lo, hi = b.bids, b.asks, b.bb, b.ba, b.lo, b.hi
        base, lot, reach = b.base, b.lot, self._reach
        # 2. maker actions: each branch draws exactly what the model's description needs
        for _ in range(15 + int(r() * 45) if burst else 1 + int(r() * 3)):
            x = r()
            if x < 0.5 and ba - bb > 1:  # a new best level inside the spread
                bid = r() < lean
                t = bb + 1 + int(r() * (ba - bb - 1))
                k = int((-_log(1.0 - r()) + 0.05) * base) // lot
                if bid:
                    bids[t] = ch_b[t] = (k if k > 1 else 1) * lot
                    bb = t
                else:
                    asks[t] = ch_a[t] = (k if k > 1 else 1) * lot
                    ba = t
                continue
            up = r() < lean
            bid = (not up) if x < 0.62 else r() < 0.5  # leaning up: cancel asks, not bids
            dist = int(-_log(1.0 - r()) * reach)
            if x < 0.62:  # cancel a level near the touch (never one of the last two)
                if bid:
                    t = bb - dist
                    if t in bids and len(bids) > 2:
                        del bids[t]
                        ch_b[t] = 0
                        if t == bb:
                            bb = next_below(bids, t)
                        elif t == lo:
                            lo = next_above(bids, t)
                else:
                    t = ba + dist
                    if t in asks and len(asks) > 2:
                        del asks[t]
                        ch_a[t] = 0
                        if t == ba:
                            ba = next_above(asks, t)
                        elif t == hi:
                            hi = next_below(asks, t)
                continue
            # resize the level ``dist`` from the touch (refilling it), or add it
            side, ch, t = (bids, ch_b, bb - dist) if bid else (asks, ch_a, ba + dist)
            old = side.get(t, 0)
            k = int((-_log(1.0 - r()) * (1.0 + dist * 0.05) + 0.05) * base) // lot
            q = (k if k > 1 else 1) * lot
            if old and r() < 0.6:
                k = int(old * (0.5 + r())) // lot * lot
                q = k if k > lot else lot
            side[t] = ch[t] = q if q != old else q + lot
            if t < lo:
                lo = t
            elif t > hi:
                hi = t
        # 3. keep about ``levels`` levels per side: drop the far end or extend it
        n_levels, far = self.levels, self._far
        for _ in range(3):
            n = len(bids)
            if n == n_levels:
                break
            if n > n_levels:
                del bids[lo]
                ch_b[lo] = 0
                lo = next_above(bids, lo)
            else:
                lo -= 1 + (r() < 0.3)
                k = int((-_log(1.0 - r()) * far + 0.05) * base) // lot
                bids[lo] = ch_b[lo] = (k if k > 1 else 1) * lot
        for _ in range(3):
            n = len(asks)
            if n == n_levels:
                break
            if n > n_levels:
                del asks[hi]
                ch_a[hi] = 0
                hi = next_below(asks, hi)
            else:
                hi += 1 + (r() < 0.3)
                k = int((-_log(1.0 - r()) * far + 0.05) * base) // lot
                asks[hi] = ch_a[hi] = (k if k > 1 else 1) * lot
        b.bb, b.ba, b.lo, b.hi = bb, ba, lo, hi
        if not ch_b and not ch_a:  # nothing changed: refill the best bid
            old = bids[bb]
            q = self._size(b)
            if r() < 0.6:
                q = max(lot, int(old * (0.5 + r())) // lot * lot)
            bids[bb] = ch_b[bb] = q if q != old else q + lot
        out.append((b.depth_stream, b.depth_text(ts, ch_b, ch_a)))
        if self.book_ticker and (ticker := b.ticker_text()) is not None:
            out.append((b.ticker_stream, ticker))
        return out

    def _trade(
        self,
        b: Ladder,
        buy: bool,
        ts: int,
        ch_b: dict[int, int],
        ch_a: dict[int, int],
        out: list[Text],
    ) -> None:
        """A taker order at the touch; a big one sweeps levels (one print per level)."""
        r, lot = self._r, b.lot
        side, ch, px = (b.asks, ch_a, b.ba) if buy else (b.bids, ch_b, b.bb)
        k = int((-_log(1.0 - r()) + 0.05) * b.base) // lot
        want = (k if k > 1 else 1) * lot // 2 or lot
        if r() < 0.25:
            want += side[px] * (1 + (r() < 0.3))
        head = f'{{"e":"trade","E":{ts},"s":{b.sym_json},"t":'
        tail = f',"T":{ts},"m":{"false" if buy else "true"},"M":true}}'
        prices, stream = b.px, b.trade_stream
        while want > 0 and len(side) > 2:
            have = side[px]
            fill = want if want < have else have
            want -= fill
            b.trade_id += 1
            out.append((stream, f'{head}{b.trade_id},"p":"{prices[px]}","q":"{fmt8(fill)}"{tail}'))
            if fill < have:
                side[px] = ch[px] = have - fill
                break
            del side[px]
            ch[px] = 0
            px = next_above(side, px) if buy else next_below(side, px)
        if buy:
            b.ba = px
        else:
            b.bb = px
