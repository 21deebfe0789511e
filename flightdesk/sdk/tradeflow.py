"""Trade-flow features of ``trades`` batches over rolling millisecond windows, per instrument.

At each trade row, over the instrument's trades with ``ts_event`` in ``(t - window, t]``:

==========================  ==============================================================
``signed_volume@W``         buy quantity minus sell quantity (``side`` is the aggressor)
``buy_volume@W``            quantity bought by aggressors
``sell_volume@W``           quantity sold by aggressors
``trade_count@W``           trades
``trade_imbalance@W``       signed volume / total volume, in [-1, 1]
``vwap@W``                  volume-weighted average price
==========================  ==============================================================

A trade whose side is neither ``buy`` nor ``sell`` (``unknown`` in some datasets) counts in
the volume, the count and the VWAP, not in the signed sums. Like the quote features, each
instrument carries its window between batches and running sums continue from where the
last batch stopped (added strictly in order), so results are bitwise identical however the
stream is split into batches; ``ts`` is made non-decreasing per instrument.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flightdesk.core.errors import ConfigError

__all__ = ["TRADE_FEATURES", "RollingSums", "trade_flow"]

Key = tuple[str, str]
TRADE_FEATURES = ("signed_volume", "buy_volume", "sell_volume", "trade_count",
                  "trade_imbalance", "vwap")
_SUMS = 4  # per row: qty, buy qty, sell qty, price * qty


@dataclass
class _SumTail:
    ts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    csum: np.ndarray = field(default_factory=lambda: np.zeros((1, _SUMS)))  # leading base row
    last_ts: int = np.iinfo(np.int64).min


class RollingSums:
    """Per-instrument sums of several values over a time window (see the module docstring)."""

    def __init__(self, window_ms: float, width: int = _SUMS) -> None:
        if not window_ms > 0:
            raise ConfigError(f"a rolling window must be > 0 ms, got {window_ms!r}")
        self.window_ns = int(window_ms * 1_000_000)
        self.width = width
        self.tails: dict[Key, _SumTail] = {}

    def update(self, key: Key, ts: np.ndarray, values: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """``(sums, counts)`` at each of ``key``'s new rows: ``sums`` is ``rows x width``."""
        tail = self.tails.get(key) or _SumTail(csum=np.zeros((1, self.width)))
        ts = np.maximum.accumulate(np.maximum(np.asarray(ts, np.int64), tail.last_ts))
        all_ts = np.concatenate((tail.ts, ts))
        stacked = np.vstack((tail.csum[-1:], np.asarray(values, np.float64)))
        csum = np.vstack((tail.csum, np.add.accumulate(stacked, axis=0)[1:]))
        pos = np.arange(tail.ts.size, all_ts.size)
        lo = np.searchsorted(all_ts, ts - self.window_ns, side="right")
        sums = csum[pos + 1] - csum[lo]
        last = int(all_ts[-1])
        start = int(np.searchsorted(all_ts, last - self.window_ns, side="right"))
        self.tails[key] = _SumTail(all_ts[start:].copy(), csum[start:].copy(), last)
        return sums, (pos - lo + 1).astype(np.float64)


def trade_values(batch: pa.RecordBatch) -> np.ndarray:
    """The summed values of each trade row: qty, buy qty, sell qty, price * qty."""
    qty = batch.column("qty").to_numpy(zero_copy_only=False).astype(np.float64)
    px = batch.column("price").to_numpy(zero_copy_only=False).astype(np.float64)
    side = batch.column("side")
    buy = pc.equal(side, "buy").to_numpy(zero_copy_only=False)
    sell = pc.equal(side, "sell").to_numpy(zero_copy_only=False)
    return np.column_stack((qty, np.where(buy, qty, 0.0), np.where(sell, qty, 0.0), px * qty))


def trade_flow(sums: np.ndarray, counts: np.ndarray, name: str) -> np.ndarray:
    """One trade-flow feature from :meth:`RollingSums.update` results."""
    total, bought, sold, notional = sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3]
    signed = bought - sold
    if name == "signed_volume":
        return signed
    if name == "buy_volume":
        return bought
    if name == "sell_volume":
        return sold
    if name == "trade_count":
        return counts
    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "trade_imbalance":
            return np.where(total > 0, signed / total, 0.0)
        if name == "vwap":
            return np.where(total > 0, notional / total, np.nan)
    raise ConfigError(f"unknown trade-flow feature {name!r}; they are "
                      f"{', '.join(TRADE_FEATURES)}")
