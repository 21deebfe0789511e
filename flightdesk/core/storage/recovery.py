"""Recovery on restart: rebuild positions from the fills the store committed, and the
kill switch from the events it recorded.

Positions — the desk's and each strategy's own — are recomputed from every stored fill, in
commit order, with the same ``Portfolio.record`` the live path uses, so after a crash the
portfolio equals the sum of the stored fills exactly, whatever the last ``positions`` row
said. A fill stored without a strategy (older stores) moves the desk position only. The
kill switch is what the last ``kill_switch`` event says (``on`` or ``off``): a desk killed
and then restarted, by hand or by a supervisor, stays killed until someone switches it off.
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
    names = ("strategy", "venue", "symbol", "side", "price", "qty", "fee")
    fills = store.read("fills", ", ".join(names))
    cols = [fills.column(c).to_pylist() for c in names]
    for strategy, venue, symbol, side, price, qty, fee in zip(*cols, strict=True):
        portfolio.record(strategy or "", venue, symbol, _SIGN[side], float(price), float(qty),
                         float(fee))
    if fills.num_rows:
        held = {f"{v}:{s}": portfolio.holders(v, s) for v, s in portfolio.positions
                if portfolio.qty(v, s)}
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
