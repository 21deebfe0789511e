"""Recovery on restart: rebuild positions from the fills the store committed, and the
kill switch from the events it recorded.

Positions are recomputed from every stored fill, in commit order, with the same
``Position.apply`` the live path uses — so after a crash the portfolio equals the sum of
the stored fills exactly, whatever the last ``positions`` row said. The kill switch is
what the last ``kill_switch`` event says (``on`` or ``off``): a desk killed and then
restarted, by hand or by a supervisor, stays killed until someone switches it off.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

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


class KillState(NamedTuple):
    """The last recorded kill switch: on or off, and when (ns) it was switched."""

    on: bool
    ts: int


def recover_kill_switch(store: Store) -> KillState | None:
    """The last ``kill_switch`` event in the store (None when it was never switched)."""
    order = ", ".join(f"{col.strip()} DESC" for col in store.dialect.order_by("events").split(","))
    last = store.query(f"SELECT ts, detail FROM events WHERE kind = 'kill_switch' "
                       f"ORDER BY {order} LIMIT 1")
    if not last.num_rows:
        return None
    ts, detail = last.column("ts")[0].as_py(), last.column("detail")[0].as_py()
    # fail closed: anything but "off" (which `kill --off` writes) restores it on
    return KillState(str(detail).strip().lower() != "off", int(ts or 0))
