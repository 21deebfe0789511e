"""The serve heartbeat: one log line every ``[telemetry] heartbeat_s`` seconds.

``flightdesk serve`` says nothing of its own once it is up, so an operator watching its
log cannot tell a quiet market from a dead feed. Every interval the heartbeat reads the
desk's counters (on the engine's thread, the event loop's, so the picture is consistent;
plain reads, no Flight call) and logs what happened since the last line: frames per second,
quotes, orders and fills, subscriber drops and parse errors, then the PnL and the risk mode
now. The line goes through ``logging`` (logger ``flightdesk.heartbeat``), so it is text or
JSON per ``--log-format``; the JSON record carries the numbers under ``fields``.

Drops are counted per subscriber (its own counter only grows), so a subscriber that leaves
takes nothing off the total.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flightdesk.core.runtime.compose import Runtime

__all__ = ["Heartbeat", "Sample", "run"]

logger = logging.getLogger("flightdesk.heartbeat")


@dataclass(frozen=True, slots=True)
class Sample:
    """The desk's counters at one moment (totals since start-up)."""

    t: float  # time.monotonic()
    frames: int
    quotes: int
    trades: int
    orders: int
    fills: int
    rejected: int
    parse_errors: int
    pnl: float
    mode: str
    killed: bool
    #: subscriber id -> its drops so far
    drops: dict[int, int] = field(default_factory=dict)


def sample(rt: Runtime) -> Sample:
    """Read ``rt``'s counters (call it on the engine thread)."""
    core, trader, published = rt.engine, rt.trader, rt.bus.published
    return Sample(t=time.monotonic(), frames=int(core.counters["frames"]),
                  quotes=int(published.get("quotes", 0)),
                  trades=int(published.get("trades", 0)),
                  orders=int(trader.counters["orders"]), fills=int(trader.counters["fills"]),
                  rejected=int(trader.counters["rejected"]),
                  parse_errors=int(core.counters["parse_errors"]),
                  pnl=float(rt.portfolio.totals()["pnl"]), mode=rt.risk.mode.value,
                  killed=bool(rt.risk.killed),
                  drops={int(s["id"]): int(s["drops"]) for s in rt.bus.stats()})


class Heartbeat:
    """Turns successive samples into heartbeat lines (see the module docstring)."""

    def __init__(self, first: Sample) -> None:
        self.last = first
        self.drops_total = sum(first.drops.values())

    def step(self, now: Sample) -> tuple[str, dict[str, Any]]:
        """The line for the interval ending at ``now``, and its numbers."""
        last, self.last = self.last, now
        dt = max(now.t - last.t, 1e-9)
        drops = sum(max(0, n - last.drops.get(i, 0)) for i, n in now.drops.items())
        self.drops_total += drops
        fields: dict[str, Any] = {
            "interval_s": round(dt, 3), "events_per_s": round((now.frames - last.frames) / dt, 1),
            "quotes": now.quotes - last.quotes, "trades": now.trades - last.trades,
            "orders": now.orders - last.orders, "fills": now.fills - last.fills,
            "rejected": now.rejected - last.rejected, "drops": drops,
            "parse_errors": now.parse_errors - last.parse_errors,
            "pnl": round(now.pnl, 2) if math.isfinite(now.pnl) else None,
            "risk_mode": now.mode, "kill_switch": now.killed,
            "totals": {"orders": now.orders, "fills": now.fills, "drops": self.drops_total}}
        return _text(fields), fields


def _text(f: dict[str, Any]) -> str:
    pnl = "n/a" if f["pnl"] is None else f"{f['pnl']:,.2f}"
    parts = [f"{f['events_per_s']:,.0f} events/s", f"{f['quotes']:,} quotes",
             f"{f['trades']:,} trades", f"{f['orders']:,} orders", f"{f['fills']:,} fills"]
    if f["rejected"]:
        parts.append(f"{f['rejected']:,} rejected")
    tail = [f"pnl {pnl}", f"drops {f['drops']:,}"]
    if f["parse_errors"]:
        tail.append(f"parse errors {f['parse_errors']:,}")
    tail.append(f"risk {f['risk_mode']}" + (", KILL SWITCH ON" if f["kill_switch"] else ""))
    return f"heartbeat (last {f['interval_s']:.1f}s): " + ", ".join(parts) + "; " + "; ".join(tail)


async def run(rt: Runtime, interval_s: float) -> None:
    """Log a heartbeat line every ``interval_s`` seconds until cancelled (0: never).

    Runs on the desk's event loop, which is the engine's thread: the reads need no lock."""
    if interval_s <= 0:
        return
    beat = Heartbeat(sample(rt))
    while True:
        await asyncio.sleep(interval_s)
        try:
            text, fields = beat.step(sample(rt))
        except Exception:  # noqa: BLE001 - a heartbeat must never take the desk down
            logger.debug("heartbeat sample failed", exc_info=True)
            continue
        logger.info("%s", text, extra={"fields": fields})
