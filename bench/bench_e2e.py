"""End-to-end benchmarks of the desk on the sim venue.

1. Engine throughput (no I/O): sim frames, pre-serialized in memory, through the real
   BinanceProtocol -> BookKeeper -> quotes batches -> threshold strategy -> risk -> paper
   broker -> portfolio -> ADBC store thread. Baseline in the same run: ``json.loads`` of the
   same frames (the floor any Python handler pays).
2. Tick-to-trade latency on the live path: `flightdesk.Engine` with the sim exchange at a
   steady 1,000 frames/s over a real loopback WebSocket, a strategy that trades on every
   batch, measured from frame receipt (feed) to fill recorded (portfolio), p50/p99.

Run: python bench/bench_e2e.py [--seconds 10] [--frames 50000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import flightdesk
from flightdesk.core.market.keeper import BookKeeper
from flightdesk.core.market.venue import Venue
from flightdesk.core.runtime.bus import Bus
from flightdesk.core.runtime.config import load_config
from flightdesk.core.runtime.engine import EngineCore
from flightdesk.core.runtime.slots import StrategySlot
from flightdesk.core.storage.store import Store
from flightdesk.core.trading.broker import PaperBroker
from flightdesk.core.trading.orders import IdMaker
from flightdesk.core.trading.portfolio import Portfolio
from flightdesk.core.trading.risk import RiskValidator
from flightdesk.core.trading.trader import Trader
from flightdesk.plugins.strategies.threshold import ThresholdStrategy
from flightdesk.plugins.venues.binance.parse import BinanceProtocol
from flightdesk.plugins.venues.sim.market import SimMarket
from flightdesk.sdk.strategy import StrategyContext

SYMBOLS = {"BTCUSDT": 60000.0, "ETHUSDT": 3000.0}


def make_frames(n: int) -> tuple[dict[str, str], list[str]]:
    market = SimMarket(SYMBOLS, seed=11)
    ts = 1_700_000_000_000
    # the snapshots come after the first step, as a live one would: Binance's procedure
    # asks for a new snapshot while its lastUpdateId is below the first buffered diff's U
    frames = [json.dumps(p) for p in market.step(ts)]
    snaps = {s: json.dumps(market.snapshot(s)) for s in SYMBOLS}
    while len(frames) < n:
        ts += 1
        frames.extend(json.dumps(p) for p in market.step(ts))
    return snaps, frames[:n]


def run_engine(snaps: dict[str, str], frames: list[str], batch: int) -> tuple[float, dict]:
    cfg = load_config(env={})
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.sqlite", cfg["store"]).start()
        ids = IdMaker("bench")
        portfolio = Portfolio()
        books = BookKeeper({})
        trader = Trader(RiskValidator(cfg["risk"]), PaperBroker.factory(cfg["broker"], ids),
                        portfolio, ids, books.synced, time.time_ns)
        venue = Venue("sim", BinanceProtocol("sim"), None, list(SYMBOLS))
        core = EngineCore(books, Bus(), trader, store)
        core.add_venue(venue)
        strat = ThresholdStrategy("threshold", {**ThresholdStrategy.DEFAULTS,
                                                "holding_period_ms": 0})
        strat.on_start(StrategyContext("threshold", strat.config, cfg["risk"], time.time_ns,
                                       portfolio.snapshot, None))  # type: ignore[arg-type]
        core.slots.attach(StrategySlot(strat))
        # each symbol's first diff asks for its snapshot: answer once every symbol asked
        # (a snapshot that comes first is dropped, and that symbol would never quote)
        start = 0
        while any(venue.protocol.state(s) == "fresh" for s in SYMBOLS):
            core.on_frame("sim", frames[start], 0)
            start += 1
        for sym, body in snaps.items():
            core.on_snapshot("sim", sym, body, 0)
        frames = frames[start:]
        t0 = time.perf_counter()
        for i, frame in enumerate(frames):
            core.on_frame("sim", frame, i)
            if i % batch == batch - 1:
                core.flush()
        core.flush()
        elapsed = time.perf_counter() - t0
        store.close()
        return elapsed, {"orders": trader.counters["orders"], "fills": trader.counters["fills"],
                         "resyncs": core.books.counters["resyncs"],
                         "quotes": core.quotes.seq, "trades": core.trades.seq}


def run_json(frames: list[str]) -> float:
    loads = json.loads
    t0 = time.perf_counter()
    for f in frames:
        loads(f)
    return time.perf_counter() - t0


class Flip(flightdesk.Strategy):
    """Trades on every batch: alternates a long and a short target on the last symbol."""

    DEFAULTS = {"type": "flip", "venue": "", "symbols": [], "enabled": True}

    def __init__(self, name, config):
        super().__init__(name, config)
        self.sign = 1

    def on_batch(self, batch):
        self.sign = -self.sign
        last = batch.num_rows - 1
        return flightdesk.signals_batch(batch.column("ts_event")[last].as_py(),
                                        batch.column("venue")[last].as_py(),
                                        batch.column("symbol")[last].as_py(),
                                        "buy" if self.sign > 0 else "sell", qty=0.01)


class FlipPlugin:
    @flightdesk.hookimpl
    def flightdesk_register_strategies(self, register):
        register("flip", Flip)


SIM_PROCESS = """
import asyncio, sys
from flightdesk.plugins.venues.sim.exchange import SimExchange
async def main():
    ex = await SimExchange(rate=float(sys.argv[1])).start()
    print(ex.port, ex.rest_url, flush=True)  # market-data WebSocket port, REST URL
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
    await ex.stop()
asyncio.run(main())
"""


def run_latency(seconds: float, rate: float, tuned: bool = False) -> dict:
    """The exchange runs in its own process (as a real one would), the desk in this one."""
    sim = subprocess.Popen([sys.executable, "-c", SIM_PROCESS, str(rate)], text=True,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        ws_port, rest_url = sim.stdout.readline().split()
        url = f"127.0.0.1:{int(ws_port)}"
        with tempfile.TemporaryDirectory() as tmp:
            cfg = {"desk": {"data_dir": tmp}, "flight": {"enabled": False},
                   "venues": {"bn": {"type": "binance", "symbols": list(SYMBOLS),
                                     "ws_url": f"ws://{url}", "rest_url": rest_url,
                                     "channels": ["depth@100ms", "trade"]}},
                   "strategies": {"flip": {"type": "flip"}}}
            with flightdesk.Engine(cfg, plugins=[FlipPlugin()], tune_process=tuned) as eng:
                time.sleep(2.0)  # warm up: connect, snapshot, first batches
                eng.desk.trader.tick_to_trade_ns.clear()
                time.sleep(seconds)
                samples = np.asarray(eng.desk.trader.tick_to_trade_ns, dtype=np.float64) / 1e3
                status = eng.status()
    finally:
        sim.stdin.close()
        sim.wait(10)
    return {"samples": int(samples.size), "p50_us": float(np.percentile(samples, 50)),
            "p99_us": float(np.percentile(samples, 99)), "frames": status["engine"]["frames"],
            "fills": status["trading"].get("fills", 0)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=50_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny run that only checks the bench works (.ci/run runs it)")
    args = ap.parse_args()
    if args.smoke:
        args.frames, args.seconds, args.runs = 2_000, 0.5, 1
    snaps, frames = make_frames(args.frames)
    results = {}
    for batch in (1, 64, 1024):
        times = []
        for _ in range(args.runs):
            elapsed, info = run_engine(snaps, frames, batch)
            times.append(elapsed)
        results[batch] = (statistics.median(times), info)
    base = statistics.median(run_json(frames) for _ in range(args.runs))
    lat = run_latency(args.seconds, args.rate)
    lines = [
        f"### End to end on the sim (`python bench/bench_e2e.py --frames {args.frames} "
        f"--seconds {args.seconds:g}`)",
        "",
        f"{args.frames:,} sim frames (Binance depth diffs + trades, 2 symbols), median of "
        f"{args.runs} runs; baseline `json.loads` of the same frames: "
        f"{args.frames / base:,.0f} frames/s.",
        "",
        "| flush every | frames/s | × json.loads time | quotes rows | orders | fills |",
        "|---|---|---|---|---|---|",
    ]
    for batch, (elapsed, info) in results.items():
        lines.append(f"| {batch} frames | {args.frames / elapsed:,.0f} | "
                     f"{elapsed / base:.1f}× | {info['quotes']:,} | {info['orders']:,} | "
                     f"{info['fills']:,} |")
    lines += [
        "",
        f"Tick-to-trade, live path (sim exchange in its own process at {args.rate:g} "
        f"frames/s over a loopback WebSocket; a strategy that trades every batch; "
        f"{args.seconds:g} s): "
        f"p50 **{lat['p50_us']:.0f} µs**, p99 **{lat['p99_us']:.0f} µs** over "
        f"{lat['samples']:,} fills (frame received by the feed → fill applied to the "
        "portfolio).",
        "",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
