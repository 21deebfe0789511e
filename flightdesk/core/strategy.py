"""The strategy SDK: base class, context, and signal-batch builders.

A strategy receives market batches (``quotes`` by default) and returns a ``signals`` batch
or None. A signal states the position the strategy wants on an instrument: ``buy`` means
long ``qty`` (or the strategy's default size), ``sell`` short ``qty``, ``flat`` none. The
host turns the difference to the current position into an order, which must pass risk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from flightdesk.core import schemas

SIDES = ("buy", "sell", "flat")


@dataclass
class StrategyContext:
    """What the host hands a strategy in ``on_start``."""

    name: str
    config: Mapping[str, Any]
    risk: Mapping[str, Any]
    clock: Callable[[], int]
    positions: Callable[[], dict[tuple[str, str], float]]
    logger: logging.Logger
    metrics: dict[str, float] = field(default_factory=dict)

    def position(self, venue: str, symbol: str) -> float:
        return self.positions().get((venue, symbol), 0.0)


class Strategy:
    """Base class of strategies. Override ``on_batch``; the rest is optional.

    ``DEFAULTS`` lists every config key the strategy accepts with its default; the host
    rejects unknown keys in ``[strategies.NAME]`` naming the nearest valid one.
    """

    DEFAULTS: dict[str, Any] = {}
    #: the streams whose batches ``on_batch`` receives
    streams: tuple[str, ...] = ("quotes",)

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.config = dict(config)
        self.ctx: StrategyContext | None = None

    def on_start(self, ctx: StrategyContext) -> None:
        self.ctx = ctx

    def on_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch | None:
        return None

    def on_fills(self, fills: pa.RecordBatch) -> None:
        return None

    def on_stop(self) -> None:
        return None


def signals_batch(ts: Any, venue: Any, symbol: Any, side: Any, strength: Any = 1.0,
                  confidence: Any = 1.0, holding_period_ms: Any = 0, qty: Any = None,
                  strategy: str = "", order_type: Any = None,
                  limit_px: Any = None) -> pa.RecordBatch:
    """Build a ``signals`` RecordBatch from arrays or scalars (scalars are broadcast).

    ``side`` holds ``buy``/``sell``/``flat``. The host fills in ``strategy`` when empty.
    """
    n = _length(ts, venue, symbol, side, strength, confidence, qty)
    cols = {
        "ts": _col(ts, n, np.int64),
        "strategy": _col(strategy, n, object),
        "venue": _col(venue, n, object),
        "symbol": _col(symbol, n, object),
        "side": _col(side, n, object),
        "strength": _col(strength, n, np.float64),
        "confidence": _col(confidence, n, np.float64),
        "holding_period_ms": _col(holding_period_ms, n, np.int64),
    }
    target = schemas.schema("signals")
    arrays = []
    for f in target:
        if f.name in cols:
            arrays.append(pa.array(cols[f.name], type=f.type))
        else:
            value = {"qty": qty, "order_type": order_type, "limit_px": limit_px}[f.name]
            arrays.append(pa.nulls(n, f.type) if value is None
                          else pa.array(_col(value, n, None), type=f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def _length(*values: Any) -> int:
    for v in values:
        if isinstance(v, np.ndarray | list | tuple | pa.Array | pa.ChunkedArray):
            return len(v)
    return 1


def _col(value: Any, n: int, dtype: Any) -> Any:
    if isinstance(value, pa.Array | pa.ChunkedArray):
        return value.to_numpy(zero_copy_only=False)
    if isinstance(value, np.ndarray | list | tuple):
        return value
    return np.full(n, value, dtype=dtype if dtype is not None else type(value))
