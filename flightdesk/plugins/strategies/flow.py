"""The flow strategy: trade aggressor imbalance, in the direction of the bars' trend.

It reads two streams. ``bars`` (the engine builds the ``bars`` intervals of its table from
trades): per instrument, the trend is the sign of the last close against the mean close of
the last ``trend_bars`` bars of the first interval (0 until that many closed). ``trades``:
the score of a trade is ``trade_imbalance@flow_window_ms`` (buy minus sell volume over the
window, over the volume), with a confidence growing from 0 at ``flow_threshold`` to 1 at
full imbalance; with ``follow_trend`` an opinion against the trend (or with no trend yet)
is no opinion. :class:`flightdesk.sdk.policy.SignalPolicy` turns opinions into signals as
for the threshold strategy; the order size is ``order_size_fraction`` of ``max_position``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from flightdesk.core.errors import ConfigError
from flightdesk.core.market.bars import interval_ns
from flightdesk.plugins.hookspecs import hookimpl
from flightdesk.sdk.features import FeatureSet, instrument_groups
from flightdesk.sdk.policy import apply_policy, side_names
from flightdesk.sdk.strategy import Strategy, signals_batch


class FlowStrategy(Strategy):
    """Trade-flow imbalance with a bar-trend filter (see the module docstring)."""

    streams = ("trades", "bars")
    DEFAULTS: dict[str, Any] = {
        "type": "flow",
        "venue": "",
        "symbols": [],
        "enabled": True,
        "bars": ["5s"],
        "trend_bars": 6,
        "follow_trend": True,
        "flow_window_ms": 2000.0,
        "flow_threshold": 0.5,
        "min_confidence": 0.1,
        "signal_decay_ms": 5000.0,
        "holding_period_ms": 1000,
        "order_size_fraction": 0.25,
        "time_budget_ms": 1000.0,
    }

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        super().__init__(name, config)
        cfg = self.config
        self.trend_bars = int(cfg["trend_bars"])
        if self.trend_bars < 1:
            raise ConfigError(f"strategies.{name}.trend_bars must be >= 1, got "
                              f"{cfg['trend_bars']!r}", key=f"strategies.{name}.trend_bars")
        bars = cfg["bars"]
        self.interval = str(bars if isinstance(bars, str) else (list(bars) or ["5s"])[0])
        self.threshold = self.number("flow_threshold", 0.0, 1.0, hi_open=True)
        window = self.number("flow_window_ms", 0.0, lo_open=True)
        self.flow = FeatureSet([f"trade_imbalance@{window}"])
        self.policy = self.policy_from_config()
        self.size_fraction = self.number("order_size_fraction", 0.0, 1.0, lo_open=True)
        self.closes: dict[tuple[str, str], deque[float]] = {}
        #: per instrument: end times of the bars that set a trend, and that trend
        self.trend: dict[tuple[str, str], tuple[list[int], list[int]]] = {}

    def on_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch | None:
        if "interval" in batch.schema.names:
            self._on_bars(batch)
            return None
        return self._on_trades(batch)

    def _on_bars(self, batch: pa.RecordBatch) -> None:
        """Each closed bar of the interval sets the trend from its end time on."""
        size = interval_ns(self.interval)
        for bar in batch.to_pylist():
            if bar["interval"] != self.interval:
                continue
            key = (bar["venue"], bar["symbol"])
            closes = self.closes.setdefault(key, deque(maxlen=self.trend_bars))
            closes.append(bar["close"])
            if len(closes) == self.trend_bars:
                mean = sum(closes) / self.trend_bars
                ends, trends = self.trend.setdefault(key, ([], []))
                ends.append(bar["open_time"] + size)
                trends.append((bar["close"] > mean) - (bar["close"] < mean))
                if len(ends) > 64:  # trades only ever look at the newest few
                    del ends[:32], trends[:32]

    def _trend_at(self, key: tuple[str, str], ts: np.ndarray) -> np.ndarray:
        """The trend in force at each time: that of the last bar ended by then (0: none)."""
        ends, trends = self.trend.get(key, ([], []))
        at = np.searchsorted(np.asarray(ends, np.int64), ts, side="right") - 1
        return np.where(at >= 0, np.asarray([0, *trends])[at + 1], 0)

    def _on_trades(self, batch: pa.RecordBatch) -> pa.RecordBatch | None:
        groups = instrument_groups(batch)
        ts = batch.column("ts_event").to_numpy()
        score = self.flow.compute(batch, groups=groups)[:, 0]
        conf = np.clip((np.abs(score) - self.threshold) / max(1.0 - self.threshold, 1e-12),
                       0.0, 1.0)
        if self.config["follow_trend"]:
            for key, idx in groups:
                agree = np.sign(score[idx]) == self._trend_at(key, ts[idx])
                conf[idx] = np.where(agree, conf[idx], 0.0)
        d = apply_policy(self.policy, groups, ts, score, conf)
        if d.rows.size == 0:
            return None
        idx_arr = pa.array(d.rows)
        qty = np.where(d.sides != 0, self.order_qty(), 0.0)
        return signals_batch(ts[d.rows], batch.column("venue").take(idx_arr),
                             batch.column("symbol").take(idx_arr), side_names(d.sides),
                             strength=score[d.rows], confidence=d.confidence,
                             holding_period_ms=int(self.config["holding_period_ms"]), qty=qty,
                             strategy=self.name)

    def order_qty(self) -> float:
        max_position = float(self.ctx.risk["max_position"]) if self.ctx else 1.0
        return self.size_fraction * max_position


@hookimpl
def flightdesk_register_strategies(register: Any) -> None:
    register("flow", FlowStrategy)
