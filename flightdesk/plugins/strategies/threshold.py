"""The threshold strategy: trade the order-book imbalance.

The score of a row is the imbalance at the touch, or its mean over the last
``feature_window_ms`` of the instrument when that is > 0. Above ``imbalance_threshold`` the
strategy wants a long position, below ``-imbalance_threshold`` a short one, with a
confidence that grows from 0 at the threshold to 1 at full imbalance; opinions under
``min_confidence`` are no opinion. :class:`flightdesk.sdk.policy.SignalPolicy` turns the
opinions into signals: a change only after ``holding_period_ms``, and a held position decays
to ``flat`` after ``signal_decay_ms``-scaled time without support. The order size is
``order_size_fraction`` of the risk limit ``max_position``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from flightdesk.plugins.hookspecs import hookimpl
from flightdesk.sdk.features import RollingWindow, instrument_groups
from flightdesk.sdk.policy import apply_policy, side_names
from flightdesk.sdk.strategy import Strategy, signals_batch

SIDES = {1: "buy", -1: "sell", 0: "flat"}


class ThresholdStrategy(Strategy):
    """Order-book imbalance threshold strategy (see the module docstring)."""

    DEFAULTS: dict[str, Any] = {
        "type": "threshold",
        "venue": "",
        "symbols": [],
        "enabled": True,
        "imbalance_threshold": 0.3,
        "min_confidence": 0.3,
        "feature_window_ms": 0.0,
        "signal_decay_ms": 2000.0,
        "holding_period_ms": 500,
        "order_size_fraction": 0.25,
        "time_budget_ms": 1000.0,
    }

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        super().__init__(name, config)
        self.threshold = self.number("imbalance_threshold", 0.0, 1.0, hi_open=True)
        window = self.number("feature_window_ms", 0.0)
        self.window = RollingWindow(window, mid_stats=False) if window > 0 else None
        self.policy = self.policy_from_config()
        self.size_fraction = self.number("order_size_fraction", 0.0, 1.0, lo_open=True)

    def on_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch | None:
        if batch.num_rows == 1 and self.window is None:
            return self._one_row(batch)
        groups = instrument_groups(batch)
        ts = batch.column("ts_event").to_numpy()
        score = self.score(batch, groups, ts)
        with np.errstate(invalid="ignore"):
            conf = np.clip((np.abs(score) - self.threshold) / max(1.0 - self.threshold, 1e-12),
                           0.0, 1.0)
        d = apply_policy(self.policy, groups, ts, score, conf)
        if d.rows.size == 0:
            return None
        idx = pa.array(d.rows)
        sides = side_names(d.sides)
        qty = np.where(d.sides != 0, self.order_qty(), 0.0)
        return signals_batch(ts[d.rows], batch.column("venue").take(idx),
                             batch.column("symbol").take(idx), sides,
                             strength=score[d.rows], confidence=d.confidence,
                             holding_period_ms=int(self.config["holding_period_ms"]), qty=qty,
                             strategy=self.name)

    def _one_row(self, batch: pa.RecordBatch) -> pa.RecordBatch | None:
        """The same decision for a one-row batch (live, every flush) with plain numbers."""
        score = batch.column("imbalance")[0].as_py()
        venue, symbol = batch.column("venue")[0].as_py(), batch.column("symbol")[0].as_py()
        ts = batch.column("ts_event")[0].as_py()
        conf = (abs(score) - self.threshold) / max(1.0 - self.threshold, 1e-12)
        conf = min(max(conf, 0.0), 1.0) if conf == conf else conf
        one = self.policy.decide_one((venue, symbol), ts, score, conf)
        if one is None:
            return None
        side, confidence = one
        return signals_batch(ts, venue, symbol, SIDES[side], strength=score,
                             confidence=confidence,
                             holding_period_ms=int(self.config["holding_period_ms"]),
                             qty=self.order_qty() if side else 0.0, strategy=self.name)

    def score(self, batch: pa.RecordBatch, groups: list[tuple[Any, np.ndarray]],
              ts: np.ndarray) -> np.ndarray:
        """The imbalance per row, or its rolling mean over ``feature_window_ms``."""
        imb = batch.column("imbalance").to_numpy()
        if self.window is None:
            return imb
        out = np.empty(batch.num_rows)
        for key, idx in groups:
            out[idx] = self.window.update(key, ts[idx], imb[idx]).mean
        return out

    def order_qty(self) -> float:
        max_position = float(self.ctx.risk["max_position"]) if self.ctx else 1.0
        return self.size_fraction * max_position


@hookimpl
def flightdesk_register_strategies(register: Any) -> None:
    register("threshold", ThresholdStrategy)
