"""Strategy slots: one strategy instance with its routing filter, switches and counters.

The engine runs every slot on each batch (:meth:`Slots.run`); a slot whose strategy raises
or returns a bad batch is quarantined, never allowed to stop the engine. Remote strategies
(Flight ``do_exchange``) are slots too: they are attached while connected and their signal
batches enter through :meth:`Slots.submit`, the same checks and trading path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from flightdesk.core import schemas
from flightdesk.core.errors import ConfigError
from flightdesk.core.runtime import telemetry
from flightdesk.core.runtime.isolation import check_signals, reason_of, run_on_batch
from flightdesk.core.trading.orders import Fill
from flightdesk.sdk.strategy import Strategy

logger = logging.getLogger(__name__)

#: ``on_signals(strategy_name, signals_batch)`` — the trading path's entry
SignalSink = Callable[[str, pa.RecordBatch], None]
#: ``on_quarantine(slot, reason)`` after a slot was quarantined (an ``events`` row, counters)
QuarantineSink = Callable[["StrategySlot", str], None]


class StrategySlot:
    """A strategy instance with its routing filter, switches and counters."""

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        cfg = strategy.config
        self.venue = str(cfg.get("venue") or "")
        self.symbols = [str(s) for s in cfg.get("symbols") or []]
        self.enabled = bool(cfg.get("enabled", True))
        self.quarantined = ""
        self.metric_attrs = {"strategy": strategy.name}
        self.wants_fills = type(strategy).on_fills is not Strategy.on_fills
        #: the bar intervals it reads (``bars`` in its table; "1m" if it reads bars but
        #: names none); the engine builds them from trades
        self.bar_intervals = _bar_intervals(strategy) if "bars" in strategy.streams else ()
        self._interval_filter = pa.array(self.bar_intervals, pa.string())
        self.batches = 0
        self.signals = 0
        self.errors = 0

    @property
    def name(self) -> str:
        return self.strategy.name

    def select(self, batch: pa.RecordBatch, stream: str = "quotes") -> pa.RecordBatch:
        mask = None
        if stream == "bars":
            mask = pc.is_in(batch.column("interval"), self._interval_filter)
        if self.venue:
            m = pc.equal(batch.column("venue"), self.venue)
            mask = m if mask is None else pc.and_(mask, m)
        if self.symbols:
            m = pc.is_in(batch.column("symbol"), pa.array(self.symbols))
            mask = m if mask is None else pc.and_(mask, m)
        return batch if mask is None else batch.filter(mask)

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.strategy.config.get("type", ""),
                "enabled": self.enabled, "quarantined": self.quarantined,
                "batches": self.batches, "signals": self.signals, "errors": self.errors}


def _bar_intervals(strategy: Strategy) -> tuple[str, ...]:
    from flightdesk.core.market.bars import interval_ns

    raw = strategy.config.get("bars") or ["1m"]
    names = [raw] if isinstance(raw, str) else list(raw)
    for name in names:
        try:
            interval_ns(str(name))
        except ConfigError as exc:
            raise ConfigError(f"strategies.{strategy.name}.bars: {exc}",
                              key=f"strategies.{strategy.name}.bars") from None
    return tuple(dict.fromkeys(str(n) for n in names))


class Slots:
    """The engine's strategy slots, in order (see the module docstring)."""

    def __init__(self, on_signals: SignalSink, on_quarantine: QuarantineSink,
                 on_attach: Callable[[StrategySlot], None] | None = None) -> None:
        self.items: list[StrategySlot] = []
        self._on_signals = on_signals
        self._on_quarantine = on_quarantine
        self._on_attach = on_attach

    def __iter__(self) -> Iterator[StrategySlot]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def by_name(self) -> dict[str, StrategySlot]:
        return {s.name: s for s in self.items}

    def attach(self, slot: StrategySlot) -> None:
        """Add a slot (a remote strategy connecting); names are unique."""
        if any(s.name == slot.name for s in self.items):
            raise ValueError(f"strategy {slot.name!r} already runs in this desk; "
                             "pick another name")
        if self._on_attach is not None:
            self._on_attach(slot)
        self.items.append(slot)

    def detach(self, slot: StrategySlot) -> None:
        if slot in self.items:
            self.items.remove(slot)

    def run(self, batch: pa.RecordBatch, stream: str) -> None:
        """Run every enabled slot that reads ``stream`` on its part of ``batch``."""
        for slot in self.items:
            if not slot.enabled or slot.quarantined or stream not in slot.strategy.streams:
                continue
            part = slot.select(batch, stream)
            if part.num_rows == 0:
                continue
            slot.batches += 1
            try:
                signals = run_on_batch(slot.strategy, part)  # timed, schema-checked
                if signals is not None:
                    self._signals(slot, signals)
            except Exception as exc:
                self.quarantine(slot, exc)

    def submit(self, slot: StrategySlot, batch: pa.RecordBatch) -> str:
        """A signals batch from outside the engine (a remote strategy): checked like a
        strategy's return value, then the trading path. An error message, or ''."""
        if slot.quarantined:
            return f"strategy {slot.name} is quarantined: {slot.quarantined}"
        if not slot.enabled:
            return ""
        slot.batches += 1
        try:
            signals = check_signals(slot.name, batch)
            if signals is not None:
                self._signals(slot, signals)
        except Exception as exc:
            self.quarantine(slot, exc)
            return f"strategy {slot.name} quarantined: {slot.quarantined}"
        return ""

    def _signals(self, slot: StrategySlot, signals: pa.RecordBatch) -> None:
        slot.signals += signals.num_rows
        telemetry.signals_generated.add(signals.num_rows, slot.metric_attrs)
        self._on_signals(slot.name, signals)

    def deliver_fills(self, fills: list[Fill]) -> None:
        """Hand each strategy that wants them its own fills."""
        by_strategy: dict[str, list[dict[str, Any]]] = {}
        for f in fills:
            by_strategy.setdefault(f.strategy, []).append(f.row())
        for slot in self.items:
            rows = by_strategy.get(slot.name)
            if rows and not slot.quarantined and slot.wants_fills:
                try:
                    slot.strategy.on_fills(pa.RecordBatch.from_pylist(
                        rows, schema=schemas.schema("fills")))
                except Exception as exc:
                    self.quarantine(slot, exc)

    def quarantine(self, slot: StrategySlot, exc: Exception) -> None:
        slot.errors += 1
        slot.quarantined = f"{type(exc).__name__}: {exc}"
        logger.error("strategy %s quarantined: %s", slot.name, slot.quarantined)
        self._on_quarantine(slot, reason_of(exc).value)
