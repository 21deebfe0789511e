"""Cross-venue arbitrage: one asset quoted on two venues.

The strategy keeps the latest top of book of ``symbol`` on each of ``venues = [A, B]``
(carried across batches). The book is crossed across venues when one venue's bid is above
the other's ask; the edge of buying at the ask on one venue and selling at the bid on the
other is ``(bid - ask) / mid`` in bps. When the edge exceeds the sum of both venues' taker
fees (``fees_bps``) plus ``min_edge_bps``, it signals ``buy`` on the cheap venue and ``sell``
on the rich one (two rows, ``qty`` each); when the edge is gone it signals ``flat`` on both.
Vectorized: each row sees the other venue's latest quote through a forward fill of row
indices, and :class:`flightdesk.SignalPolicy` turns the per-row opinion into changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import flightdesk


class CrossVenueArb(flightdesk.Strategy):
    """See the module docstring."""

    DEFAULTS: dict[str, Any] = {
        "type": "xarb",
        "venue": "",
        "symbols": [],
        "enabled": True,
        "symbol": "BTCUSDT",
        "venues": ["a", "b"],
        "fees_bps": [7.5, 7.5],
        "min_edge_bps": 0.0,
        "qty": 0.1,
    }

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        super().__init__(name, config)
        venues, fees = list(self.config["venues"]), list(self.config["fees_bps"])
        if len(venues) != 2 or len(fees) != 2 or venues[0] == venues[1]:
            raise flightdesk.ConfigError(f"strategies.{name}: venues needs two different "
                                         f"venues and fees_bps one fee per venue, got {venues} "
                                         f"and {fees}")
        self.venues = [str(v) for v in venues]
        self.hurdle = float(sum(fees)) + float(self.config["min_edge_bps"])
        self.last = np.full((2, 2), np.nan)  # [venue][bid, ask], carried between batches
        # no holding period; an opinion decays at once, so a closed cross goes flat
        self.policy = flightdesk.SignalPolicy(0.5, 0.0, 1e-9)
        self.key = (f"{self.venues[0]}|{self.venues[1]}", str(self.config["symbol"]))

    def on_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch | None:
        batch = batch.filter(pc.equal(batch.column("symbol"), self.key[1]))
        if batch.num_rows == 0:
            return None
        venue = batch.column("venue")
        bid, ask = batch.column("bid_px").to_numpy(), batch.column("ask_px").to_numpy()
        quotes = [self._filled(pc.equal(venue, v).to_numpy(zero_copy_only=False), bid, ask, k)
                  for k, v in enumerate(self.venues)]
        (bid_a, ask_a), (bid_b, ask_b) = quotes
        with np.errstate(invalid="ignore"):
            mid = (bid_a + ask_a + bid_b + ask_b) / 4
            edge_ab = (bid_b - ask_a) / mid * 1e4  # buy on A, sell on B
            edge_ba = (bid_a - ask_b) / mid * 1e4
            score = np.where(edge_ab > self.hurdle, 1.0, np.where(edge_ba > self.hurdle, -1.0,
                                                                   0.0))
        ts = batch.column("ts_event").to_numpy()
        rows = np.arange(batch.num_rows)
        d = flightdesk.apply_policy(self.policy, [(self.key, rows)], ts, score,
                                    np.abs(score))
        if d.rows.size == 0:
            return None
        return self._signals(ts[d.rows], d.sides, np.maximum(edge_ab, edge_ba)[d.rows])

    def _filled(self, mask: np.ndarray, bid: np.ndarray, ask: np.ndarray, k: int
                ) -> tuple[np.ndarray, np.ndarray]:
        """Venue k's latest bid/ask as of every row (from earlier batches before its first)."""
        idx = np.maximum.accumulate(np.where(mask, np.arange(mask.size), -1))
        have = idx >= 0
        b = np.where(have, bid[np.maximum(idx, 0)], self.last[k, 0])
        a = np.where(have, ask[np.maximum(idx, 0)], self.last[k, 1])
        self.last[k] = (b[-1], a[-1])
        return b, a

    def _signals(self, ts: np.ndarray, sides: np.ndarray, edge: np.ndarray) -> pa.RecordBatch:
        n = ts.size
        side_a = flightdesk.side_names(sides)          # +1: buy A / sell B
        side_b = flightdesk.side_names(-sides)
        qty = np.where(sides != 0, float(self.config["qty"]), 0.0)
        return flightdesk.signals_batch(
            np.repeat(ts, 2), np.tile(self.venues, n), self.key[1],
            np.column_stack((side_a, side_b)).ravel(), strength=np.repeat(edge, 2),
            confidence=1.0, qty=np.repeat(qty, 2), strategy=self.name)


@flightdesk.hookimpl
def flightdesk_register_strategies(register: Any) -> None:
    register("xarb", CrossVenueArb)
