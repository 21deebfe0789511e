"""Instrument rules on the trading path: round an order to its venue's grid, check it.

:func:`conform` is what the Trader does before it builds an order: the quantity rounds
toward zero to the lot step, a limit price to the passive side (a buy down, a sell up), a
stop price away from the market (a buy stop up, a sell stop down: it triggers no earlier
than asked). A quantity under one lot step rounds to 0: nothing is sent.

:func:`check` is the risk rule (:class:`InstrumentRule`, the first of the validator's
rules, so the desk-state, size, market and rate checks come first; the paper broker runs
it too, on the orders that reach it): a quantity off the lot grid or outside
``min_qty``..``max_qty`` is a ``lot_size`` rejection, a price off the tick grid a
``price_filter`` one, and an order worth less than ``min_notional`` (qty x its limit
price, else its stop, else mid) a ``min_notional`` one. :func:`lot_takes` keeps the
broker's fills on the lot grid.
"""

from __future__ import annotations

import math
from functools import lru_cache

from flightdesk.core.market.book import L2Book
from flightdesk.core.market.instruments import (
    Instrument,
    InstrumentRegistry,
    on_grid,
    round_to_step,
)
from flightdesk.core.trading.orders import Order, Side
from flightdesk.core.trading.risk import RiskDecision, RiskReason, RiskView

__all__ = ["InstrumentRule", "check", "conform", "lot_takes"]


#: ``round_to_step``, memoized: it is exact Decimal work (a few microseconds, far more on a
#: cold cache) on every order, and strategies send the same few sizes over and over
_round = lru_cache(maxsize=4096)(round_to_step)
_on_grid = lru_cache(maxsize=4096)(on_grid)


def _lots(inst: Instrument, qty: float) -> float:
    """``inst.round_qty(qty)``, memoized."""
    return 0.0 if qty <= 0 else _round(qty, inst.lot_step)  # NaN: NaN, as round_qty


def conform(inst: Instrument, side: Side, qty: float, limit_px: float,
            stop_px: float) -> tuple[float, float, float]:
    """``(qty, limit_px, stop_px)`` on ``inst``'s grids (NaN prices stay NaN)."""
    buy = side is Side.BUY
    return (_lots(inst, qty), _price(limit_px, inst.tick_size, not buy),
            _price(stop_px, inst.tick_size, buy))


def _price(px: float, step: float, up: bool) -> float:
    # positive prices only through the cache: it takes -0.0 for 0.0, and NaN misses anyway
    return _round(px, step, up) if px > 0 else round_to_step(px, step, up)


def check(order: Order, inst: Instrument, mid: float) -> RiskDecision | None:
    """A rejection when ``order`` breaks one of ``inst``'s rules, else None."""
    qty = order.qty
    if not _on_grid(qty, inst.lot_step):
        return _reject(RiskReason.LOT_SIZE, inst.lot_step, qty, "!~",
                       f"qty is not a multiple of lot_step {inst.lot_step:g} for "
                       f"{_where(order)}")
    if qty < inst.min_qty:
        return _reject(RiskReason.LOT_SIZE, inst.min_qty, qty, "<",
                       f"qty below min_qty for {_where(order)}")
    if inst.max_qty is not None and qty > inst.max_qty:
        return _reject(RiskReason.LOT_SIZE, inst.max_qty, qty, ">",
                       f"qty above max_qty for {_where(order)}")
    limit_px, stop_px = order.limit_px, order.stop_px
    for name, px in (("limit_px", limit_px), ("stop_px", stop_px)):
        if px == px and not _on_grid(px, inst.tick_size):
            return _reject(RiskReason.PRICE_FILTER, inst.tick_size, px, "!~",
                           f"{name} is not a multiple of tick_size {inst.tick_size:g} "
                           f"for {_where(order)}")
    if inst.min_notional:
        price = limit_px if limit_px == limit_px else stop_px if stop_px == stop_px else mid
        notional = qty * price
        if math.isfinite(notional) and notional < inst.min_notional:
            return _reject(RiskReason.MIN_NOTIONAL, inst.min_notional, notional, "<",
                           f"qty {qty:g} x price {price:g} below min_notional for "
                           f"{_where(order)}")
    return None


def _where(order: Order) -> str:
    return f"{order.venue}:{order.symbol}"


class InstrumentRule:
    """The ``RiskRule`` over a registry: orders of instruments it knows are checked."""

    def __init__(self, instruments: InstrumentRegistry) -> None:
        self.instruments = instruments

    def __call__(self, order: Order, view: RiskView) -> RiskDecision | None:
        inst = self.instruments.get(order.venue, order.symbol)
        return check(order, inst, view.mid) if inst is not None else None


def mid(book: L2Book | None) -> float:
    """The book's mid (NaN without a book)."""
    if book is None:
        return math.nan
    bid, _, ask, _ = book.top()
    return (bid + ask) * 0.5


def lot_takes(inst: Instrument, takes: list[tuple[float, float]],
              remaining: float) -> list[tuple[float, float]]:
    """``(price, qty)`` fills in whole lot steps, never more in all than ``remaining``
    (rounded toward zero). The running total is what is rounded, not each level: a book
    whose levels are not whole lots (0.3000004 + 0.6999996) still fills a 1.0 order in
    full (0.3 + 0.7) instead of losing a step at every level; fills that round to 0 go."""
    total = _lots(inst, remaining)
    out = []
    cum = done = 0.0
    for px, qty in takes:
        cum += qty
        upto = _lots(inst, min(cum, total))
        got = _lots(inst, upto - done)
        if got > 0:
            out.append((px, got))
            done = upto
        if done >= total:
            break
    return out


def _reject(reason: RiskReason, limit: float, value: float, op: str,
            detail: str) -> RiskDecision:
    return RiskDecision(False, reason, limit, value, detail, op)
