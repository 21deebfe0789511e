"""The paper broker: fills orders against the live book.

Market orders walk the opposite side level by level, with a partial fill at each level's
price, and whatever the book cannot fill is cancelled (immediate-or-cancel). Marketable
limit orders walk the same way up to their limit price.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from flightdesk.core.book import L2Book
from flightdesk.core.orders import Fill, IdMaker, Liquidity, Order, OrderType, Side


class PaperBroker:
    """Fills orders against an :class:`L2Book` (see the module docstring)."""

    def __init__(self, config: Mapping[str, Any], ids: IdMaker) -> None:
        self.taker_fee = float(config["taker_fee_bps"]) * 1e-4
        self.maker_fee = float(config["maker_fee_bps"]) * 1e-4
        self.ids = ids

    def execute(self, order: Order, book: L2Book, ts: int) -> list[Fill]:
        """Fill ``order`` as far as the book allows; returns the fills (maybe none)."""
        levels = book.ask_levels if order.side is Side.BUY else book.bid_levels
        limit = order.limit_px if order.order_type is OrderType.LIMIT else math.nan
        fills: list[Fill] = []
        remaining = order.qty
        depth = 8
        seen = 0
        while remaining > 1e-12:
            batch = levels(depth)
            if len(batch) <= seen:
                break
            for lv in batch[seen:]:
                price = float(lv[0])
                if math.isfinite(limit) and (price > limit if order.side is Side.BUY
                                             else price < limit):
                    return fills
                qty = min(remaining, float(lv[1]))
                fills.append(self._fill(order, price, qty, ts))
                remaining -= qty
                if remaining <= 1e-12:
                    break
            seen = len(batch)
            depth *= 4
        return fills

    def _fill(self, order: Order, price: float, qty: float, ts: int) -> Fill:
        return Fill(self.ids.fill_id(), order.order_id, ts, order.venue, order.symbol,
                    order.side, price, qty, price * qty * self.taker_fee, Liquidity.TAKER,
                    order.strategy)
