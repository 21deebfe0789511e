"""The threshold strategy: trade the order-book imbalance at the touch.

Wants a long position when ``imbalance`` exceeds ``imbalance_threshold`` and a short one
below ``-imbalance_threshold``, with a confidence that grows from 0 at the threshold to 1
at full imbalance. A signal is emitted only when the wanted side of an instrument changes,
and not sooner than ``holding_period_ms`` after the previous change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from flightdesk.core.strategy import Strategy, signals_batch
from flightdesk.plugins.hookspecs import hookimpl


class ThresholdStrategy(Strategy):
    """Order-book imbalance threshold strategy (see the module docstring)."""

    DEFAULTS: dict[str, Any] = {
        "type": "threshold",
        "venue": "",
        "symbols": [],
        "enabled": True,
        "imbalance_threshold": 0.3,
        "min_confidence": 0.3,
        "order_size_fraction": 0.25,
        "holding_period_ms": 500,
    }

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        super().__init__(name, config)
        self._side: dict[str, int] = {}
        self._since: dict[str, int] = {}

    def on_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch | None:
        thr = float(self.config["imbalance_threshold"])
        imb = batch.column("imbalance").to_numpy()
        with np.errstate(invalid="ignore"):
            conf = np.clip((np.abs(imb) - thr) / max(1.0 - thr, 1e-12), 0.0, 1.0)
            want = np.where(conf >= float(self.config["min_confidence"]), np.sign(imb), 0.0)
        want[~np.isfinite(imb) | (np.abs(imb) <= thr)] = 0.0
        candidates = np.flatnonzero(want)
        if candidates.size == 0:
            return None
        rows = self._changes(batch, candidates, want)
        if not rows:
            return None
        idx = np.asarray(rows)
        ts = batch.column("ts_event").to_numpy()[idx]
        venue = batch.column("venue").take(pa.array(idx)).to_pylist()
        symbol = batch.column("symbol").take(pa.array(idx)).to_pylist()
        sides = np.where(want[idx] > 0, "buy", "sell").astype(object)
        qty = self.order_qty()
        hold = int(self.config["holding_period_ms"])
        return signals_batch(ts, venue, symbol, sides, strength=np.abs(imb[idx]),
                             confidence=conf[idx], holding_period_ms=hold,
                             qty=np.full(idx.size, qty), strategy=self.name)

    def _changes(self, batch: pa.RecordBatch, candidates: np.ndarray,
                 want: np.ndarray) -> list[int]:
        symbols = batch.column("symbol")
        ts = batch.column("ts_event").to_numpy()
        hold_ns = int(self.config["holding_period_ms"]) * 1_000_000
        rows = []
        for i in candidates.tolist():
            sym = symbols[i].as_py()
            side = int(want[i])
            if self._side.get(sym) == side or ts[i] - self._since.get(sym, -hold_ns) < hold_ns:
                continue
            self._side[sym] = side
            self._since[sym] = int(ts[i])
            rows.append(i)
        return rows

    def order_qty(self) -> float:
        max_position = float(self.ctx.risk["max_position"]) if self.ctx else 1.0
        return float(self.config["order_size_fraction"]) * max_position


@hookimpl
def flightdesk_register_strategies(register: Any) -> None:
    register("threshold", ThresholdStrategy)
