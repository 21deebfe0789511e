"""Recovery on restart: rebuild positions from the fills the store committed.

Positions are recomputed from every stored fill, in commit order, with the same
``Position.apply`` the live path uses — so after a crash the portfolio equals the sum of
the stored fills exactly, whatever the last ``positions`` row said.
"""

from __future__ import annotations

import logging

from flightdesk.core.storage.store import Store
from flightdesk.core.trading.portfolio import Portfolio

logger = logging.getLogger(__name__)
_SIGN = {"buy": 1, "sell": -1}


def recover_positions(store: Store, portfolio: Portfolio) -> int:
    """Apply every stored fill to ``portfolio``; return how many fills were replayed."""
    fills = store.read("fills", "venue, symbol, side, price, qty, fee")
    cols = [fills.column(c).to_pylist() for c in ("venue", "symbol", "side", "price", "qty",
                                                 "fee")]
    for venue, symbol, side, price, qty, fee in zip(*cols, strict=True):
        portfolio.get(venue, symbol).apply(_SIGN[side], float(price), float(qty), float(fee))
    if fills.num_rows:
        held = {f"{v}:{s}": p.qty for (v, s), p in portfolio.positions.items() if p.qty}
        logger.info("recovered %d fills from the store; positions %s", fills.num_rows, held)
    return fills.num_rows
