"""Per-order cost of the pre-trade risk check and of paper-broker matching.

Measured, per order, p50 and p99 over many samples (each sample times a block of orders and
divides, so the timer's own cost stays out of the figure; thread CPU time, not wall time):

* ``RiskValidator.check`` with every built-in check on (kill, mode, sizes with open orders,
  notional, stale book, price band, self-cross, token bucket) on a limit order;
* ``PaperBroker.execute``: a market order walking 1-3 levels of a 200-level sim book;
* a GTC limit order joining the queue (``Trader``-less ``PaperBroker.submit``) and being
  filled by a trade at its price (``on_trade``) — the resting-order path;
* ``Trader.submit`` end to end (risk view + risk + broker + portfolio + rows), for context;
* the engine's per-book-message hook (``Trader.on_book``) when no order is open.

Baselines in the same run: a bare Python function call and a dict update, per iteration.

Run: python bench/bench_risk_broker.py [--samples 3000] [--no-write]
Writes its markdown into the ``## Risk and broker`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable

import numpy as np
from results import write_section  # bench/results.py (scripts run from bench/)

from flightdesk.core.market.book import L2Book
from flightdesk.core.market.events import TradeMsg
from flightdesk.core.runtime.config import load_config
from flightdesk.core.trading.broker import PaperBroker
from flightdesk.core.trading.orders import IdMaker, Order, OrderState, OrderType, Side
from flightdesk.core.trading.portfolio import Portfolio
from flightdesk.core.trading.risk import RiskValidator, RiskView
from flightdesk.core.trading.trader import Trader
from flightdesk.plugins.venues.sim.market import SimMarket

HEADING = "## Risk and broker"
BLOCK = 50
RISK_ROW = "risk check (all built-in checks, limit order)"
MARKET_ROW = "matching: market order walking 1-3 levels"
RESTING_ROW = "matching: limit order rests in queue, then filled by a trade"


def sim_book() -> L2Book:
    snap = SimMarket({"BTCUSDT": 60000.0}, seed=3).snapshot("BTCUSDT")
    book = L2Book()
    book.load_snapshot(snap["bids"], snap["asks"])
    return book


def per_call(fn: Callable[[int], None], samples: int) -> tuple[float, float]:
    """p50, p99 in µs per call of ``fn(i)``, from blocks of ``BLOCK`` calls.

    Timed in this thread's CPU time, so other processes on a shared machine do not land
    in the figures (wall time would, at random).
    """
    out = np.empty(samples)
    counter = itertools.count()
    for s in range(samples):
        t0 = time.thread_time_ns()
        for _ in range(BLOCK):
            fn(next(counter))
        out[s] = (time.thread_time_ns() - t0) / BLOCK
    return float(np.percentile(out, 50)) / 1e3, float(np.percentile(out, 99)) / 1e3


def bench_baselines(samples: int) -> dict[str, tuple[float, float]]:
    def noop(i: int) -> None:
        return None

    d: dict[int, int] = {}

    def dict_update(i: int) -> None:
        d[i & 1023] = i

    return {"baseline: bare function call": per_call(noop, samples),
            "baseline: dict update": per_call(dict_update, samples)}


def bench_risk(samples: int, risk_cfg: dict) -> tuple[float, float]:
    risk = RiskValidator({**risk_cfg, "max_orders_per_s": 1e9})
    orders = [Order(f"o{i}", 0, "s", "sim", "BTCUSDT", Side.BUY if i % 2 else Side.SELL,
                    OrderType.LIMIT, 0.1, 60000.0 + (-5 if i % 2 else 5)) for i in range(64)]
    views = [RiskView(0.2, 0.4, 60000.0, 0.1, 0.1, 59990.0, 60010.0, 1_000_000, 1000.0, i)
             for i in range(64)]

    def check(i: int) -> None:
        decision = risk.check(orders[i & 63], views[i & 63])
        assert decision.approved, decision

    return per_call(check, samples)


def walk_qty(book: L2Book, side: Side, levels: int) -> float:
    """A size that takes ``levels`` levels of the opposite side (most of the last one)."""
    opposite = book.ask_levels(levels) if side is Side.BUY else book.bid_levels(levels)
    sizes = [float(lv[1]) for lv in opposite]
    return sum(sizes[:-1]) + 0.9 * sizes[-1]


def bench_market(samples: int, broker_cfg: dict, book: L2Book) -> tuple[float, float]:
    broker = PaperBroker(broker_cfg, IdMaker("b"))
    sides = [Side.BUY if i % 2 else Side.SELL for i in range(64)]
    orders = [Order(f"o{i}", 0, "s", "sim", "BTCUSDT", side, OrderType.MARKET,
                    walk_qty(book, side, 1 + i % 3)) for i, side in enumerate(sides)]

    def execute(i: int) -> None:
        assert broker.execute(orders[i & 63], book, i)

    return per_call(execute, samples)


def bench_resting(samples: int, broker_cfg: dict, book: L2Book) -> tuple[float, float]:
    broker = PaperBroker(broker_cfg, IdMaker("b"), books=lambda v, s: book)
    bid = book.best_bid()
    assert bid is not None
    px, lvl = bid
    trade = TradeMsg("sim", "BTCUSDT", 0, 0, "t", px, lvl + 1.0, "sell")

    def rest_and_fill(i: int) -> None:
        order = Order(f"r{i}", 0, "s", "sim", "BTCUSDT", Side.BUY, OrderType.LIMIT, 0.5, px)
        state = OrderState(order)
        broker.submit(state, i)
        broker.on_trade(trade, i)  # the queue ahead (lvl) is traded away, then us
        assert not state.is_open

    return per_call(rest_and_fill, samples)


def bench_trader(samples: int, cfg: dict, book: L2Book,
                 span: bool = True) -> tuple[float, float]:
    ids = IdMaker("t")
    clock = itertools.count(1_000_000_000, 1_000_000)  # 1 ms per order: markouts come due
    risk = RiskValidator({**cfg["risk"], "max_position": 1e9,
                                   "max_total_position": 1e9, "max_notional": 1e18,
                                   "max_orders_per_s": 0.0, "daily_loss_limit": 0.0,
                                   "max_drawdown": 0.0})
    trader = Trader(risk, PaperBroker.factory(cfg["broker"], ids), Portfolio(), ids,
                    lambda v, s: book, lambda: next(clock))

    qty = walk_qty(book, Side.BUY, 1)
    # Trader.submit is wrapped in an OpenTelemetry span (telemetry.traced_order)
    bare = getattr(Trader.submit, "__wrapped__", Trader.submit)
    orders = [Order(f"o{i}", 0, "s", "sim", "BTCUSDT", Side.BUY if i % 2 else Side.SELL,
                    OrderType.MARKET, qty) for i in range(2)]

    def submit(i: int) -> None:
        assert risk.mode.value == "active"
        # each order meets a new book state, as live orders do (paper fills consume the
        # liquidity of one book state until the next book update)
        trader.on_book("sim", "BTCUSDT", book)
        if span:
            trader.submit(orders[i & 1])
        else:
            bare(trader, orders[i & 1])
        if i % BLOCK == 0:
            trader.on_marked()
            trader.take_rows()
            trader.take_fills()

    return per_call(submit, samples)


def bench_book_hook(samples: int, cfg: dict, book: L2Book) -> tuple[float, float]:
    """The engine calls ``Trader.on_book`` on every applied book message."""
    ids = IdMaker("h")
    trader = Trader(RiskValidator(cfg["risk"]), PaperBroker.factory(cfg["broker"], ids),
                    Portfolio(), ids, lambda v, s: book, time.time_ns)

    def hook(i: int) -> None:
        trader.on_book("sim", "BTCUSDT", book)

    return per_call(hook, samples)


def markdown(rows: dict[str, tuple[float, float]], samples: int) -> str:
    lines = [HEADING, "",
             f"`python bench/bench_risk_broker.py --samples {samples}`: per order, p50/p99 over "
             f"{samples:,} samples of {BLOCK} orders each, in thread CPU time; baselines measured "
             "in the same run. "
             "Targets: risk check ≤ 10 µs p50, matching ≤ 30 µs p50.", "",
             "| operation | p50 µs | p99 µs |", "|---|---|---|"]
    lines += [f"| {name} | {p50:.2f} | {p99:.2f} |" for name, (p50, p99) in rows.items()]
    risk = rows[RISK_ROW][0]
    match = max(rows[MARKET_ROW][0], rows[RESTING_ROW][0])
    lines += ["", f"Risk check p50 {risk:.1f} µs against ≤ 10 µs: "
              f"**{'met' if risk <= 10 else 'not met'}**; matching p50 (worse of the two) "
              f"{match:.1f} µs against ≤ 30 µs: **{'met' if match <= 30 else 'not met'}**."]
    return "\n".join(lines) + "\n"




def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny run that only checks the bench works (.ci/run runs it)")
    args = ap.parse_args()
    if args.smoke:
        args.samples, args.no_write = 50, True
    cfg = load_config(env={})
    book = sim_book()
    n = args.samples
    rows = bench_baselines(n)
    rows["engine hook: Trader.on_book per book message, no open order"] = bench_book_hook(
        n, cfg.to_dict(), book)
    rows[RISK_ROW] = bench_risk(n, dict(cfg["risk"]))
    rows[MARKET_ROW] = bench_market(n, dict(cfg["broker"]), book)
    rows[RESTING_ROW] = bench_resting(n, dict(cfg["broker"]), book)
    rows["Trader.submit end to end (view + risk + broker + portfolio + rows)"] = bench_trader(
        n, cfg.to_dict(), book)
    rows["Trader.submit without its OpenTelemetry order span"] = bench_trader(
        n, cfg.to_dict(), book, span=False)
    text = markdown(rows, n)
    print(text)
    if args.json:
        print(json.dumps(rows))
    if not args.no_write:
        write_section(HEADING, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
