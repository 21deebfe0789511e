"""Backtest throughput: the real desk on a replay clock, end to end with the threshold
strategy and the paper broker.

1. Raw frames from the Binance recording (``btcusdt_20240808.gz``), replayed in loops until
   at least ``--seconds`` of work; baseline in the same run: ``json.loads`` of the frames.
2. A synthetic quotes dataset of ``--rows`` rows in Parquet (normalized data); baseline in
   the same run: reading the dataset with pyarrow alone.
3. NautilusTrader's BacktestEngine on the same recording with an equivalent imbalance
   strategy, when ``bench/nautilus_baseline.py`` and the ``bench`` extra are available.

Run: python bench/bench_backtest.py [--seconds 10] [--rows 10000000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from flightdesk.core.runtime.backtest import Replayer
from flightdesk.core.runtime.config import load_config
from flightdesk.core.runtime.desk import Desk
from flightdesk.core.storage.captures import merge_captures
from flightdesk.core.storage.history_writer import write_partitioned
from flightdesk.core.storage.replay import ReplayClock, quote_batches

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BINANCE = DATA / "binance" / "btcusdt_20240808.gz"


def desk_for(tmp: str) -> tuple[Desk, ReplayClock]:
    cfg = load_config(overrides={
        "desk": {"data_dir": tmp}, "flight": {"enabled": False},
        "store": {"recover": False, "metrics_interval_ms": 0},
        "strategies": {"threshold": {"type": "threshold"}}}, env={})
    clock = ReplayClock()
    return Desk(cfg, clock=clock, run_id="bench", replay_steps=64), clock


def frames_run(records: list, seconds: float) -> dict:
    rates, cpu_rates, fills, loops, total = [], [], 0, 0, 0.0
    while total < seconds or loops < 3:
        with tempfile.TemporaryDirectory() as tmp:
            desk, clock = desk_for(tmp)
            replay = Replayer(desk, clock).start()
            t0, c0 = time.perf_counter(), time.process_time()
            n = replay.run(records)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            replay.finish()
            fills = desk.trader.counters["fills"]
        rates.append(n / elapsed)
        cpu_rates.append(n / cpu)
        total += elapsed
        loops += 1
    frames = [r.data for r in records if r.kind.value == "recv"]
    t0 = time.perf_counter()
    for f in frames:
        json.loads(f)
    base = len(frames) / (time.perf_counter() - t0)
    return {"frames_per_s": statistics.median(rates),
            "frames_per_cpu_s": statistics.median(cpu_rates), "loops": loops, "seconds": total,
            "fills_per_loop": fills, "json_loads_per_s": base, "events": len(records)}


def synthetic(rows: int, root: Path) -> None:
    rng = np.random.default_rng(7)
    chunk = 1_000_000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        mid = 100 + np.cumsum(rng.normal(0, 0.01, n))
        bq, aq = rng.uniform(0.1, 5, n), rng.uniform(0.1, 5, n)
        ts = 1_700_000_000_000_000_000 + (start + np.arange(n, dtype=np.int64)) * 1_000_000
        table = pa.table({"ts_event": ts, "ts_recv": ts, "seq": start + np.arange(1, n + 1),
                          "venue": pa.array(["sim"] * n), "symbol": pa.array(["XYZ"] * n),
                          "bid_px": mid - 0.01, "bid_qty": bq, "ask_px": mid + 0.01,
                          "ask_qty": aq, "mid": mid, "spread_bps": 0.02 / mid * 1e4,
                          "imbalance": (bq - aq) / (bq + aq), "depth_ratio": bq / (bq + aq),
                          "microprice": mid})
        write_partitioned(table, root, "quotes", f"s{start}")


def quotes_run(root: Path, rows: int) -> dict:
    t0 = time.perf_counter()
    ds.dataset(root / "quotes", format="parquet", partitioning="hive").to_table()
    base = rows / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        desk, clock = desk_for(tmp)
        replay = Replayer(desk, clock).start()
        t0 = time.perf_counter()
        n = replay.run_quotes(quote_batches([root]))
        elapsed = time.perf_counter() - t0
        replay.finish()
        fills = desk.trader.counters["fills"]
    return {"rows_per_s": n / elapsed, "rows": n, "seconds": elapsed, "fills": fills,
            "read_only_rows_per_s": base}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny run that only checks the bench works (.ci/run runs it)")
    args = ap.parse_args()
    if args.smoke:
        args.seconds, args.rows = 0.1, 20_000
    records = list(merge_captures([BINANCE]))
    raw = frames_run(records, args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        synthetic(args.rows, Path(tmp))
        quotes = quotes_run(Path(tmp), args.rows)
    nautilus = None
    try:
        sys.path.insert(0, str(Path(__file__).parent))
        from nautilus_baseline import run_nautilus

        nautilus = run_nautilus(str(BINANCE), loops=5)
    except Exception as exc:  # the baseline is optional: say why it is missing
        nautilus = {"error": f"{type(exc).__name__}: {exc}"}
    lines = [
        f"### Backtest throughput (`python bench/bench_backtest.py --seconds {args.seconds:g} "
        f"--rows {args.rows}`)",
        "",
        "| input | flightdesk | baseline in the same run |",
        "|---|---|---|",
        f"| Binance recording, raw frames ({raw['events']:,} records × {raw['loops']} loops, "
        f"{raw['seconds']:.1f} s, {raw['fills_per_loop']} fills/loop) | "
        f"**{raw['frames_per_s']:,.0f} frames/s** ({raw['frames_per_cpu_s']:,.0f} per "
        f"CPU-second) | json.loads alone: "
        f"{raw['json_loads_per_s']:,.0f} frames/s |",
        f"| synthetic quotes, Parquet ({quotes['rows']:,} rows, {quotes['fills']:,} fills) | "
        f"**{quotes['rows_per_s']:,.0f} rows/s** | pyarrow dataset read alone: "
        f"{quotes['read_only_rows_per_s']:,.0f} rows/s |",
    ]
    if nautilus and "events_per_s" in nautilus:
        ratio = raw["frames_per_s"] / nautilus["frames_per_s"] if nautilus.get(
            "frames_per_s") else float("nan")
        cpu_ratio = raw["frames_per_cpu_s"] / nautilus["frames_per_cpu_s"]
        lines.append(f"| Binance recording through NautilusTrader "
                     f"{nautilus.get('version', '')} BacktestEngine, 5 loops | — | "
                     f"{nautilus['frames_per_s']:,.0f} raw frames/s "
                     f"({nautilus['frames_per_cpu_s']:,.0f} per CPU-second); flightdesk / "
                     f"Nautilus = **{ratio:.2f}×** wall, **{cpu_ratio:.2f}×** CPU |")
    else:
        lines.append(f"| NautilusTrader | — | not measured: {nautilus.get('error')} |")
    print("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
