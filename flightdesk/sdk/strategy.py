"""The strategy SDK: base class, context, and signal-batch builders.

A strategy receives market batches (``quotes`` by default) and returns a ``signals`` batch
or None. A signal states the position the strategy wants on an instrument: ``buy`` means
long ``qty`` (or the strategy's default size), ``sell`` short ``qty``, ``flat`` none. The
host turns the difference to the current position into an order, which must pass risk.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from flightdesk.core import schemas
from flightdesk.core.market.columns import arrow_owned

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

    def number(self, key: str, lo: float | None = None, hi: float | None = None, *,
               lo_open: bool = False, hi_open: bool = False) -> float:
        """``config[key]`` as a finite float within ``[lo, hi]`` (``lo_open``/``hi_open``:
        excluding that end), else a :class:`ConfigError` naming the key and the range:
        a limit that is not a finite, in-range number is refused, never traded on."""
        from flightdesk.core.errors import ConfigError

        where = f"strategies.{self.name}.{key}"
        raw = self.config.get(key)
        try:
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            value = math.nan
        low_ok = lo is None or (value > lo if lo_open else value >= lo)
        high_ok = hi is None or (value < hi if hi_open else value <= hi)
        if isinstance(raw, bool) or not math.isfinite(value) or not (low_ok and high_ok):
            low = "-inf" if lo is None else f"{lo:g}"
            high = "inf" if hi is None else f"{hi:g}"
            span = f"{'(' if lo_open else '['}{low}, {high}{')' if hi_open else ']'}"
            raise ConfigError(f"{where} must be a finite number in {span}, got {raw!r}",
                              key=where)
        return value

    def policy_from_config(self) -> Any:
        """The :class:`~flightdesk.sdk.policy.SignalPolicy` of the ``min_confidence``,
        ``holding_period_ms`` and ``signal_decay_ms`` keys, each range-checked."""
        from flightdesk.sdk.policy import SignalPolicy

        return SignalPolicy(self.number("min_confidence", 0.0, 1.0),
                            self.number("holding_period_ms", 0.0),
                            self.number("signal_decay_ms", 0.0))  # 0: no decay

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
    if (type(ts) is int and type(holding_period_ms) is int
            and all(type(v) is str for v in (strategy, venue, symbol, side))
            and all(type(v) in _NUMBER for v in (strength, confidence))
            and all(v is None or type(v) in _NUMBER for v in (qty, limit_px))
            and (order_type is None or type(order_type) is str)):
        return _one_signal(ts, strategy, venue, symbol, side, strength, confidence,
                           holding_period_ms, qty, order_type, limit_px)
    values = {"ts": ts, "strategy": strategy, "venue": venue, "symbol": symbol, "side": side,
              "strength": strength, "confidence": confidence,
              "holding_period_ms": holding_period_ms, "qty": qty, "order_type": order_type,
              "limit_px": limit_px}
    n = _length(*values.values())
    target = schemas.schema("signals")
    arrays = [_array(values[f.name], n, f.type) for f in target]
    return pa.RecordBatch.from_arrays(arrays, schema=target)


_NUMBER = (int, float)


def _one_signal(ts: int, strategy: str, venue: str, symbol: str, side: str, strength: float,
                confidence: float, holding_period_ms: int, qty: float | None,
                order_type: str | None, limit_px: float | None) -> pa.RecordBatch:
    """One row from plain scalars: the latency-critical case (a live strategy signals once
    per one-row batch), without the generic per-column dispatch."""
    num, i64, f64, text = _SCALARS.one, pa.int64(), pa.float64(), pa.string()
    arrays = [num(i64, ts), _array(strategy, 1, text), _array(venue, 1, text),
              _array(symbol, 1, text), _array(side, 1, text), num(f64, strength),
              num(f64, confidence), num(i64, holding_period_ms),
              _array(None, 1, f64) if qty is None else num(f64, qty),
              _array(order_type, 1, text),
              _array(None, 1, f64) if limit_px is None else num(f64, limit_px)]
    return pa.RecordBatch.from_arrays(arrays, schema=schemas.schema("signals"))


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
    if n == 1 and isinstance(value, int | float) and not isinstance(value, bool):
        if pa.types.is_int64(typ) and isinstance(value, int) and -2**63 <= value < 2**63:
            return _SCALARS.one(typ, value)
        if pa.types.is_float64(typ):
            return _SCALARS.one(typ, value)
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
    if isinstance(value, str) and pa.types.is_string(typ) and len(value) * n < 1 << 28:
        return _repeated(value, n)  # (well inside the int32 offsets of a string array)
    return pa.array([value] * n, type=typ)


def _repeated(value: str, n: int) -> pa.Array:
    """``n`` copies of ``value`` as a zero-copy slice of a cached longer array (a batch's
    strategy, venue and symbol names repeat batch after batch)."""
    arr = _REPEATED.get(value)
    if arr is None or len(arr) < n:
        if len(_REPEATED) > 1_000:
            _REPEATED.clear()
        size = max(n, 4096)
        data = value.encode()
        offsets = np.arange(size + 1, dtype=np.int32) * np.int32(len(data))
        arr = _REPEATED[value] = pa.Array.from_buffers(
            pa.string(), size, [None, pa.py_buffer(offsets), pa.py_buffer(data * size)])
    return arr.slice(0, n)


_REPEATED: dict[str, pa.Array] = {}
_ONE_ROW: dict[tuple[Any, str], pa.Array] = {}


class _Scalars:
    """One-element int64/float64 arrays without building one each time (``pa.array`` of
    one number costs microseconds): numbers are written into a preallocated chunk of
    Arrow memory per type, and each is handed out as a zero-copy slice. A slot is written
    once; a full chunk is replaced, and lives as long as some slice of it. Thread-safe."""

    CAP = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: type -> [numpy view, Arrow array, next free slot]
        self._chunks: dict[pa.DataType, list[Any]] = {}

    def one(self, typ: pa.DataType, value: float) -> pa.Array:
        with self._lock:
            chunk = self._chunks.get(typ)
            if chunk is None or chunk[2] == self.CAP:
                chunk = self._chunks[typ] = [*arrow_owned(typ, 1, self.CAP), 0]
            i = chunk[2]
            chunk[0][0, i] = value
            chunk[2] = i + 1
            return chunk[1].slice(i, 1)


_SCALARS = _Scalars()
