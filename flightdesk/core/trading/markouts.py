"""Adverse selection, measured: the mid-price markout of every fill at fixed horizons.

When the engine clock passes ``fill.ts + horizon`` the mid of that instrument is read and
the fill's markout recorded, in bps of the fill price and signed so that positive is good
for us: ``side * (mid_later - fill_price) / fill_price * 1e4``. A maker strategy whose
fills are picked off shows negative markouts. Fills are in time order, so each horizon
keeps a FIFO of fills waiting for it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from flightdesk.core.trading.orders import Fill

HORIZONS_S: tuple[int, ...] = (1, 10, 60)
MidLookup = Callable[[str, str], float]
NEVER = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Markout:
    fill_id: str
    strategy: str
    venue: str
    symbol: str
    horizon_s: int
    mid: float
    bps: float


class Markouts:
    """Pending fills per horizon and running averages per strategy and horizon."""

    def __init__(self, mid: MidLookup, horizons_s: tuple[int, ...] = HORIZONS_S) -> None:
        self.mid = mid
        self.horizons = horizons_s
        self._waiting: dict[int, deque[Fill]] = {h: deque() for h in horizons_s}
        self._sum: dict[tuple[str, int], float] = {}
        self._count: dict[tuple[str, int], int] = {}
        self._first_ns = min(horizons_s) * 1_000_000_000
        #: engine time of the earliest markout still to record (a cheap "nothing due" test)
        self.next_due = NEVER

    def add(self, fill: Fill) -> None:
        for h in self.horizons:
            self._waiting[h].append(fill)
        self.next_due = min(self.next_due, fill.ts + self._first_ns)

    def pending(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    def due(self, now: int) -> list[Markout]:
        """Record every markout whose horizon the engine clock ``now`` has passed."""
        out: list[Markout] = []
        for h, waiting in self._waiting.items():
            if not waiting:
                continue
            horizon_ns = h * 1_000_000_000
            while waiting and waiting[0].ts + horizon_ns <= now:
                mark = self._record(waiting.popleft(), h)
                if mark is not None:
                    out.append(mark)
        heads = [q[0].ts + h * 1_000_000_000 for h, q in self._waiting.items() if q]
        self.next_due = min(heads) if heads else NEVER
        return out

    def _record(self, fill: Fill, h: int) -> Markout | None:
        mid = self.mid(fill.venue, fill.symbol)
        if not math.isfinite(mid) or fill.price <= 0:
            return None  # no market at the horizon: nothing honest to record
        bps = fill.side.sign * (mid - fill.price) / fill.price * 1e4
        key = (fill.strategy, h)
        self._sum[key] = self._sum.get(key, 0.0) + bps
        self._count[key] = self._count.get(key, 0) + 1
        return Markout(fill.fill_id, fill.strategy, fill.venue, fill.symbol, h, mid, bps)

    def summary(self) -> dict[str, dict[str, float]]:
        """``{strategy: {"1s_bps": avg, "1s_n": count, ...}}`` over recorded markouts."""
        out: dict[str, dict[str, float]] = {}
        for (strategy, h), n in sorted(self._count.items()):
            row = out.setdefault(strategy, {})
            row[f"{h}s_bps"] = round(self._sum[(strategy, h)] / n, 4)
            row[f"{h}s_n"] = n
        return out
