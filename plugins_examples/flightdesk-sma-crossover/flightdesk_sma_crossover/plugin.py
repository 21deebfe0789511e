"""SMA/EMA crossover on bars.

The desk has no ``bars`` stream for strategies, so the strategy subscribes to ``trades`` and
builds its own time bars (``bar_ms``) per instrument: a bar closes when the first trade of a
later bar arrives, at the last trade price of its interval (intervals without trades make
no bar; a late trade counts in the latest bar). On every closed bar it updates a
fast and a slow moving average of the closes (``kind = "sma"`` or ``"ema"``) and signals
``buy`` when the fast one crosses above the slow one, ``sell`` when it crosses below.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

import flightdesk


@dataclass
class _Open:
    bar: int = -1
    close: float = float("nan")


class BarBuilder:
    """Closing prices of time bars, per instrument, from trade batches (streaming)."""

    def __init__(self, bar_ms: float) -> None:
        self.bar_ns = int(bar_ms * 1_000_000)
        self.open: dict[tuple[str, str], _Open] = {}

    def closed(self, key: tuple[str, str], ts: np.ndarray, price: np.ndarray
               ) -> list[tuple[int, int, float]]:
        """``[(bar start ns, row that closed it, close)]`` for bars this run of trades closed."""
        state = self.open.setdefault(key, _Open())
        bars = np.maximum.accumulate(np.maximum(ts // self.bar_ns, state.bar))
        out = []
        new = np.flatnonzero(np.diff(np.concatenate(([state.bar], bars))) > 0)
        first = int(new[0]) if new.size else ts.size
        if first > 0:  # these trades continue the bar left open by the last batch
            state.close = float(price[first - 1])
        for i in new.tolist():
            if state.bar >= 0:
                out.append((state.bar * self.bar_ns, i, state.close))
            state.bar = int(bars[i])
            end = _run_end(bars, i)
            state.close = float(price[end])
        return out


def _run_end(bars: np.ndarray, i: int) -> int:
    return i + int(np.searchsorted(bars[i:], bars[i], side="right")) - 1


@dataclass
class _Averages:
    fast: deque[float] = field(default_factory=deque)
    slow: deque[float] = field(default_factory=deque)
    ema_fast: float = float("nan")
    ema_slow: float = float("nan")
    n: int = 0
    above: int = 0  # +1 fast above slow, -1 below, 0 unknown


class SmaCrossover(flightdesk.Strategy):
    """See the module docstring."""

    streams = ("trades",)
    DEFAULTS: dict[str, Any] = {
        "type": "sma_crossover",
        "venue": "",
        "symbols": [],
        "enabled": True,
        "bar_ms": 1000.0,
        "fast": 5,
        "slow": 20,
        "kind": "sma",
        "qty": 0.1,
    }

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        super().__init__(name, config)
        if self.config["kind"] not in ("sma", "ema"):
            raise flightdesk.ConfigError(f"strategies.{name}.kind must be sma or ema, got "
                                         f"{self.config['kind']!r}")
        if not 0 < int(self.config["fast"]) < int(self.config["slow"]):
            raise flightdesk.ConfigError(f"strategies.{name}: need 0 < fast < slow")
        self.bars = BarBuilder(float(self.config["bar_ms"]))
        self.avgs: dict[tuple[str, str], _Averages] = {}

    def on_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch | None:
        ts = batch.column("ts_event").to_numpy()
        price = batch.column("price").to_numpy()
        rows, sides = [], []
        for key, idx in flightdesk.instrument_groups(batch):
            for _, row, close in self.bars.closed(key, ts[idx], price[idx]):
                cross = self._update(key, close)
                if cross:
                    rows.append(int(idx[row]))
                    sides.append("buy" if cross > 0 else "sell")
        if not rows:
            return None
        take = pa.array(rows)
        return flightdesk.signals_batch(ts[rows], batch.column("venue").take(take),
                                        batch.column("symbol").take(take), sides,
                                        qty=float(self.config["qty"]), strategy=self.name)

    def _update(self, key: tuple[str, str], close: float) -> int:
        """Add a close; +1/-1 when the fast average crosses the slow one, else 0."""
        a = self.avgs.setdefault(key, _Averages())
        fast_n, slow_n = int(self.config["fast"]), int(self.config["slow"])
        a.n += 1
        if self.config["kind"] == "ema":
            a.ema_fast = _ema(a.ema_fast, close, fast_n)
            a.ema_slow = _ema(a.ema_slow, close, slow_n)
            fast, slow = a.ema_fast, a.ema_slow
        else:
            a.fast.append(close)
            a.slow.append(close)
            if len(a.fast) > fast_n:
                a.fast.popleft()
            if len(a.slow) > slow_n:
                a.slow.popleft()
            fast, slow = sum(a.fast) / len(a.fast), sum(a.slow) / len(a.slow)
        if a.n < slow_n or fast == slow:
            return 0
        now = 1 if fast > slow else -1
        crossed = now if a.above and now != a.above else 0
        a.above = now
        return crossed


def _ema(prev: float, x: float, n: int) -> float:
    alpha = 2.0 / (n + 1)
    return x if prev != prev else prev + alpha * (x - prev)


@flightdesk.hookimpl
def flightdesk_register_strategies(register: Any) -> None:
    register("sma_crossover", SmaCrossover)
