"""Added latency of the live executor path (the Binance executor against the sim exchange on
loopback) over the paper broker, per market order.

One desk per path (``flightdesk.Engine``, the sim venue, no strategy); orders are placed one
at a time with ``Trader.place`` on the engine thread, alternating buy and sell of 0.001 BTC,
each waited for before the next, at most 100 per 10 s (the venue's order-rate limit).
Measured, wall clock, p50 and p99 over ``--orders``:

* paper broker: ``Trader.submit`` -> the fill applied (it fills inside ``submit``) — the
  baseline, measured in the same run;
* Binance executor: ``Trader.submit`` -> the request at the sim's REST handler (the bytes
  written on the socket and read by the venue: journal, signing, the HTTP worker thread),
  and ``Trader.submit`` -> the fill applied to the portfolio (the executor's ``poll`` on the
  engine thread, after the FULL answer came back); with the journal fsync'd (the default)
  and without (``journal_fsync = false``).

Run: python bench/bench_executor.py [--orders 300] [--write]
``--write`` puts its markdown into the ``## Executor latency`` section of bench/RESULTS.md.
No timing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np
from results import write_section  # bench/results.py (scripts run from bench/)

import flightdesk
from flightdesk.core.trading.orders import Side

HEADING = "## Executor latency"
PAPER_ROW = "paper broker: submit -> fill applied (baseline)"
QTY = 0.001
#: seconds between two submits: Binance (and the sim) allow 100 new orders per 10 s, and
#: past that answer 429 (-1015) with a Retry-After the executor honours — not what is timed
PACE_S = 0.105


def desk_config(data_dir: Path, executor: dict[str, Any] | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "desk": {"data_dir": str(data_dir)}, "flight": {"enabled": False},
        "venues": {"sim": {"type": "sim", "rate": 200.0}},
        "strategies": {"threshold": {"type": "threshold", "venue": "sim", "enabled": False}},
        "store": {"metrics_interval_ms": 0},
    }
    if executor is not None:
        cfg["trading"] = {"live": True}
        cfg["executors"] = {"sim": {"type": "binance", **executor}}
    return cfg


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:g} s")
        time.sleep(0.01)


class Probe:
    """Times one order at a time: submit (engine thread), the request at the sim's REST
    handler (sim thread), the fill applied (engine thread)."""

    def __init__(self) -> None:
        self.order_id = ""
        self.t_submit = self.t_wire = self.t_fill = 0
        self.done = threading.Event()

    def reset(self) -> None:
        self.order_id, self.t_wire, self.t_fill = "", 0, 0
        self.done.clear()


def instrument(eng: flightdesk.Engine, probe: Probe) -> None:
    """Wrap the sim's REST handler (bytes received) and the executor's poll (fill applied)."""
    executor = eng.desk.trader.broker.routes["sim"]  # type: ignore[attr-defined]
    rest = executor.ctx.venue_info["exchange"].exchange._rest  # the sim's HTTP server
    handler = rest.handler

    def timed_handler(req: Any) -> Any:
        if req.method == "POST" and req.path == "/api/v3/order" and not probe.t_wire:
            ids = parse_qs(req.body.decode()).get("newClientOrderId", [""])
            if ids[0] == probe.order_id:
                probe.t_wire = time.perf_counter_ns()
        return handler(req)

    rest.handler = timed_handler
    poll = executor.poll

    def timed_poll(now: int) -> None:
        poll(now)
        if probe.order_id and not probe.t_fill and probe.order_id not in executor.orders:
            probe.t_fill = time.perf_counter_ns()
            probe.done.set()

    executor.poll = timed_poll


def run_orders(eng: flightdesk.Engine, n: int, live: bool) -> dict[str, list[float]]:
    """``n`` market orders one at a time; ms from submit to wire and to fill, per order."""
    desk = eng.desk
    wait_until(lambda: desk.call(lambda: desk.trader.mid("sim", "BTCUSDT")) > 0, 10,
               "two-sided book")
    probe = Probe()
    if live:
        instrument(eng, probe)
    wire: list[float] = []
    fill: list[float] = []
    for i in range(n):
        time.sleep(PACE_S)
        probe.reset()

        def place(side: Side = Side.BUY if i % 2 == 0 else Side.SELL) -> None:
            probe.t_submit = time.perf_counter_ns()
            order = desk.trader.place("bench", "sim", "BTCUSDT", side, QTY)
            if not live:  # the paper broker filled it inside submit
                probe.t_fill = time.perf_counter_ns()
                probe.done.set()
            assert order is not None
            # the executor's send is a task on this loop: it starts after this returns
            probe.order_id = order.order_id

        desk.call(place)
        if not probe.done.wait(10):
            raise TimeoutError(f"order {i} ({probe.order_id}) not filled within 10 s")
        fill.append((probe.t_fill - probe.t_submit) / 1e6)
        if live:
            wire.append((probe.t_wire - probe.t_submit) / 1e6)
    return {"wire": wire, "fill": fill}


def measure(n: int, executor: dict[str, Any] | None) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="bench-executor-") as tmp:
        eng = flightdesk.Engine(desk_config(Path(tmp), executor), live=executor is not None)
        with eng:
            return run_orders(eng, n, executor is not None)


def pct(xs: list[float]) -> tuple[float, float]:
    a = np.asarray(xs)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def markdown(rows: dict[str, tuple[float, float]], n: int) -> str:
    base = rows[PAPER_ROW][0]
    lines = [HEADING, "",
             f"`python bench/bench_executor.py --orders {n}`: market orders of {QTY} BTC one "
             f"at a time ({PACE_S:g} s apart: the venue's 100 orders per 10 s) on a desk "
             "with the sim venue (no strategy), wall clock ms, p50/p99 over "
             f"{n} orders; the paper broker's submit -> fill measured in the same run is the "
             "baseline. Loopback only; the sim exchange runs in the same process (its own "
             "thread and event loop).", "",
             "| path | p50 ms | p99 ms | p50 / paper p50 |", "|---|---|---|---|"]
    lines += [f"| {name} | {p50:.3f} | {p99:.3f} | {p50 / base:.1f}x |"
              for name, (p50, p99) in rows.items()]
    return "\n".join(lines) + "\n"




def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=200)
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny run that only checks the bench works (.ci/run runs it)")
    args = ap.parse_args()
    if args.smoke:
        args.orders, args.write = 20, False
    n = args.orders
    rows: dict[str, tuple[float, float]] = {}
    rows[PAPER_ROW] = pct(measure(n, None)["fill"])
    for label, executor in (("journal fsync'd", {}),
                            ("no journal fsync", {"journal_fsync": False})):
        got = measure(n, executor)
        rows[f"Binance executor, {label}: submit -> request at the venue"] = pct(got["wire"])
        rows[f"Binance executor, {label}: submit -> fill applied (poll)"] = pct(got["fill"])
    text = markdown(rows, n)
    print(text)
    if args.write:
        write_section(HEADING, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
