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
    #: this strategy's own positions, (venue, symbol) -> qty (what its signals move)
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
    values = {"ts": ts, "strategy": strategy, "venue": venue, "symbol": symbol, "side": side,
              "strength": strength, "confidence": confidence,
              "holding_period_ms": holding_period_ms, "qty": qty, "order_type": order_type,
              "limit_px": limit_px}
    n = _length(*values.values())
    target = schemas.schema("signals")
    arrays = [_array(values[f.name], n, f.type) for f in target]
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def _length(*values: Any) -> int:
    for v in values:
        if isinstance(v, np.ndarray | list | tuple | pa.Array | pa.ChunkedArray):
            return len(v)
    return 1


def _array(value: Any, n: int, typ: pa.DataType) -> pa.Array:
    if value is None:
        return pa.nulls(n, typ)
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if isinstance(value, pa.Array):
        return value if value.type == typ else value.cast(typ)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fiub":
            return pa.array(value.astype(typ.to_pandas_dtype(), copy=False), type=typ)
        return pa.array(value.tolist(), type=typ)
    if isinstance(value, list | tuple):
        return pa.array(value, type=typ)
    if n > 64 and (pa.types.is_floating(typ) or pa.types.is_integer(typ)):
        return pa.array(np.full(n, value, dtype=typ.to_pandas_dtype()), type=typ)
    if n == 1 and (value is None or isinstance(value, str | bool)):
        # one-row signals are the latency-critical case: reuse the arrays of repeated
        # values (names, sides); numbers vary, and building them is as cheap as a look-up
        key = (value, str(typ))
        arr = _ONE_ROW.get(key)
        if arr is None:
            if len(_ONE_ROW) > 10_000:
                _ONE_ROW.clear()
            arr = _ONE_ROW[key] = pa.array([value], type=typ)
        return arr
    return pa.array([value] * n, type=typ)


_ONE_ROW: dict[tuple[Any, str], pa.Array] = {}
