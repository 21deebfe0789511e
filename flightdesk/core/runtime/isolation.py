"""Plugin isolation: run a strategy's hook under a time budget and check what it returns.

A strategy that raises, returns something that is not a ``signals`` batch (wrong type, a
missing column, a column of the wrong type) or overruns its time budget is quarantined by
the engine: disabled, an ``events`` row, a counter per reason. The errors raised here name
the strategy, the field and the expected type, so the ``events`` row says what to fix.

The budget is ``time_budget_ms`` from the strategy's config when its ``DEFAULTS`` declare the
key, else the ``time_budget_ms`` attribute of its class. A batch returned after the budget
ran out is discarded: its signals were computed on a stale market.
"""

from __future__ import annotations

import time
from enum import Enum
from typing import Any

import pyarrow as pa

from flightdesk.core import schemas
from flightdesk.core.errors import SchemaError, StrategyError
from flightdesk.sdk.strategy import Strategy

_SIDES = {"buy", "sell", "flat"}


class QuarantineReason(str, Enum):
    ERROR = "error"
    SCHEMA = "schema"
    TIME_BUDGET = "time_budget"


class IsolationError(StrategyError):
    """A strategy broke the plugin contract (a bad batch, or too slow)."""

    def __init__(self, message: str, plugin: str, reason: QuarantineReason, field: str = "",
                 expected: str = "") -> None:
        super().__init__(message, plugin=plugin)
        self.reason = reason
        self.field = field
        self.expected = expected


def reason_of(exc: BaseException) -> QuarantineReason:
    return exc.reason if isinstance(exc, IsolationError) else QuarantineReason.ERROR


def budget_s(strategy: Strategy) -> float:
    ms = strategy.config.get("time_budget_ms", getattr(strategy, "time_budget_ms", 1000.0))
    return float(ms) / 1e3


def run_on_batch(strategy: Strategy, batch: pa.RecordBatch) -> pa.RecordBatch | None:
    """``strategy.on_batch(batch)``, timed and checked; a conformed signals batch or None."""
    t0 = time.perf_counter()
    out = strategy.on_batch(batch)
    took = time.perf_counter() - t0
    limit = budget_s(strategy)
    if took > limit:
        raise IsolationError(
            f"strategy {strategy.name}: on_batch took {took * 1e3:.1f} ms for "
            f"{batch.num_rows} rows, over its budget time_budget_ms={limit * 1e3:g} (float, ms)",
            strategy.name, QuarantineReason.TIME_BUDGET, "time_budget_ms", "float")
    return check_signals(strategy.name, out)


def check_signals(name: str, out: Any) -> pa.RecordBatch | None:
    """``out`` as a conformed ``signals`` batch (None if empty), or an IsolationError."""
    if out is None:
        return None
    if not isinstance(out, pa.RecordBatch):
        raise IsolationError(
            f"strategy {name}: on_batch returned {type(out).__name__}; expected a "
            "pyarrow.RecordBatch with the signals schema, or None", name,
            QuarantineReason.SCHEMA, "", "RecordBatch")
    if out.num_rows == 0:
        return None
    try:
        batch = schemas.conform("signals", out)
    except SchemaError as exc:
        expected = str(schemas.schema("signals").field(exc.field).type) if exc.field else ""
        raise IsolationError(f"strategy {name}: {exc}", name, QuarantineReason.SCHEMA,
                             exc.field, expected) from exc
    bad = set(batch.column("side").to_pylist()) - _SIDES
    if bad:
        raise IsolationError(
            f"strategy {name}: signals column 'side' has {sorted(map(str, bad))[0]!r}; "
            "expected a string: buy, sell or flat", name, QuarantineReason.SCHEMA, "side",
            "string")
    return batch
