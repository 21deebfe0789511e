"""Strategy benchmarks: throughput of the threshold and ONNX strategies, remote round trip.

1. Throughput (rows/s) of ``on_batch`` at batch sizes 1, 64, 4,096 and 65,536 on real
   quotes: the recorded Binance BTCUSDT ``bookTicker`` session (../shared/data), tiled in
   time to 1.8M rows. Strategies: ``threshold`` (defaults) and the ``onnx_imbalance``
   example (features + model + signal policy). Baselines in the same run: reading the
   imbalance column and taking its sign (the floor of any strategy on a batch), and the
   example model's bare ``session.run`` on a ready feature matrix.
2. Remote round trip for 1-row batches: a desk (``flightdesk.Engine``, sim venue) streams
   quotes over ``do_exchange`` to a strategy in another process (``flightdesk.remote.run``)
   that answers every batch with a 1-row signals batch; the desk times write -> answer.
   Beside it, in the same run and the same process layout: a bare pyarrow Flight server
   whose ``do_exchange`` writes a 1-row batch and times the client's echo.

Run: python bench/bench_strategies.py [--runs 3] [--seconds 8] [--no-remote]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.flight as fl

import flightdesk
from flightdesk.plugins.strategies.threshold import ThresholdStrategy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "plugins_examples" / "flightdesk-onnx-imbalance"
sys.path.insert(0, str(EXAMPLE))
from flightdesk_onnx_imbalance import train  # noqa: E402  (the example, not installed)
from flightdesk_onnx_imbalance.plugin import OnnxImbalance  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "binance" / "btcusdt_20240808.gz"
SIZES = (1, 64, 4096, 65536)
ROWS = {1: 3_000, 64: 64 * 300, 4096: 4096 * 60, 65536: 65536 * 14}


def quote_stream(rows: int) -> pa.RecordBatch:
    """The recording's quotes, tiled in time (each copy after the last) to ``rows`` rows."""
    base = train.read_book_ticker(DATA)
    ts = base.column("ts_event").to_numpy()
    span = int(ts[-1] - ts[0]) + 1
    copies = []
    for k in range(rows // base.num_rows + 1):
        cols = [pa.array(ts + k * span) if n == "ts_event" else base.column(n)
                for n in base.schema.names]
        copies.append(pa.RecordBatch.from_arrays(cols, schema=base.schema))
    return pa.concat_batches(copies).slice(0, rows)


def throughput(make, stream: pa.RecordBatch, size: int) -> tuple[float, float]:
    """rows/s of ``make().on_batch`` over consecutive batches of ``size`` rows, by the wall
    clock and by this process's CPU time (steadier on a shared machine)."""
    strategy = make()
    strategy.on_start(_ctx(strategy))
    n = min(ROWS[size], stream.num_rows) // size * size
    batches = [stream.slice(i, size) for i in range(0, n, size)]
    t0, c0 = time.perf_counter(), time.process_time()
    for b in batches:
        strategy.on_batch(b)
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def _ctx(strategy: flightdesk.Strategy) -> flightdesk.StrategyContext:
    import logging

    return flightdesk.StrategyContext(strategy.name, strategy.config, {"max_position": 2.0},
                                      time.time_ns, dict, logging.getLogger("bench"))


class _Floor(flightdesk.Strategy):
    """Baseline: read the imbalance column and take its sign."""

    def on_batch(self, batch: pa.RecordBatch) -> None:
        np.sign(batch.column("imbalance").to_numpy())


class _Scored(OnnxImbalance):
    """Breakdown: the example's features and model, without the signal policy."""

    def on_batch(self, batch: pa.RecordBatch) -> None:
        x = self.features.compute(batch)
        self.model.score(np.where(np.isfinite(x), x, 0.0))


class _BareModel(flightdesk.Strategy):
    """Baseline: the example model's session.run on a feature matrix computed beforehand."""

    def __init__(self, name: str, config: dict) -> None:
        super().__init__(name, config)
        self.model = OnnxImbalance("m", OnnxImbalance.DEFAULTS).model
        self.x: dict[int, np.ndarray] = {}

    def on_batch(self, batch: pa.RecordBatch) -> None:
        x = self.x.get(batch.num_rows)
        if x is None:
            x = self.x[batch.num_rows] = np.random.default_rng(1).normal(
                size=(batch.num_rows, len(self.model.features))).astype(np.float32)
        self.model.session.run([self.model.output_name], {self.model.input_name: x})


def throughput_table(runs: int) -> list[str]:
    stream = quote_stream(max(ROWS.values()))
    makers = {
        "threshold (defaults)": lambda: ThresholdStrategy("t", ThresholdStrategy.DEFAULTS),
        "onnx_imbalance example": lambda: OnnxImbalance("m", OnnxImbalance.DEFAULTS),
        "  of which features + model": lambda: _Scored("s", OnnxImbalance.DEFAULTS),
        "baseline: sign(imbalance)": lambda: _Floor("f", {}),
        "baseline: bare ONNX session.run": lambda: _BareModel("b", {}),
    }
    for make in makers.values():  # warm up (first onnxruntime runs are slow)
        throughput(make, stream, 64)
    lines = ["| strategy | " + " | ".join(f"{s:,} rows" for s in SIZES) + " |",
             "|---|" + "---:|" * len(SIZES)]
    for name, make in makers.items():
        cells = []
        for size in SIZES:
            wall, cpu = zip(*(throughput(make, stream, size) for _ in range(runs)),
                            strict=True)
            cells.append(f"{_rate(statistics.median(cpu))} ({_rate(statistics.median(wall))})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _rate(r: float) -> str:
    return f"{r / 1e6:.2f}M/s" if r >= 1e6 else f"{r / 1e3:.1f}k/s"


# -- remote round trip --------------------------------------------------------------------
REMOTE = """
import sys, flightdesk, flightdesk.remote
class Answer(flightdesk.Strategy):
    DEFAULTS = {"type": "answer", "venue": "", "symbols": [], "enabled": True}
    def on_batch(self, batch):
        last = batch.num_rows - 1
        return flightdesk.signals_batch(batch.column("ts_event")[last].as_py(),
                                        batch.column("venue")[last].as_py(),
                                        batch.column("symbol")[last].as_py(), "flat", qty=0.0)
flightdesk.remote.run(sys.argv[1], Answer, name="bench-remote")
"""

ECHO = """
import sys, pyarrow.flight as fl
writer, reader = fl.connect(sys.argv[1]).do_exchange(fl.FlightDescriptor.for_command(b"echo"))
first = True
while True:
    try:
        chunk = reader.read_chunk()
    except StopIteration:
        break
    if first:
        writer.begin(chunk.data.schema)
        first = False
    writer.write_with_metadata(chunk.data, chunk.app_metadata)
writer.done_writing()
"""


class EchoServer(fl.FlightServerBase):
    """Bare pyarrow: do_exchange writes 1-row batches, one at a time, and times the echo."""

    def __init__(self, count: int, gap_s: float) -> None:
        super().__init__("grpc://127.0.0.1:0")
        self.count, self.gap_s = count, gap_s
        self.rtt_ns: list[int] = []
        self.done = threading.Event()

    def do_exchange(self, context, descriptor, reader, writer):  # noqa: ANN001
        batch = flightdesk.signals_batch(1, "sim", "BTCUSDT", "flat")
        writer.begin(batch.schema)
        for k in range(self.count):
            t0 = time.perf_counter_ns()
            writer.write_with_metadata(batch, pa.py_buffer(b"%d" % k))
            reader.read_chunk()
            self.rtt_ns.append(time.perf_counter_ns() - t0)
            time.sleep(self.gap_s)
        self.done.set()


def remote_round_trip(seconds: float) -> tuple[list[float], list[float], float]:
    """(desk remote rtt µs of 1-row batches, bare echo rtt µs, mean gap between batches s)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {"desk": {"data_dir": tmp}, "flight": {"port": 0},
               "venues": {"simr": {"type": "sim", "rate": 200.0, "burst": False}}}
        with flightdesk.Engine(cfg) as eng:
            proc = subprocess.Popen([sys.executable, "-c", REMOTE, eng.flight_uri])
            deadline = time.monotonic() + 60
            while "bench-remote" not in eng.desk.core.slots.by_name():  # connected yet?
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the remote strategy did not connect")
                time.sleep(0.05)
            time.sleep(seconds)  # the measurement window
            slot = eng.desk.core.slots.by_name()["bench-remote"]
            samples = list(slot.strategy.rtt)
        proc.wait(timeout=30)
    one_row = [ns / 1e3 for rows, ns in samples if rows == 1]
    gap = seconds / max(len(samples), 1)
    server = EchoServer(len(one_row) or 100, gap)
    echo = subprocess.Popen([sys.executable, "-c", ECHO, f"grpc://127.0.0.1:{server.port}"])
    server.done.wait(timeout=seconds * 4 + 30)
    echo.wait(timeout=30)
    server.shutdown()
    return one_row, [ns / 1e3 for ns in server.rtt_ns], gap


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny run that only checks the bench works (.ci/run runs it)")
    ap.add_argument("--no-remote", action="store_true",
                    help="only the throughput table (no desk, no remote round trip)")
    args = ap.parse_args()
    if args.smoke:
        args.runs, args.seconds = 1, 0.5
    print(f"### Strategy throughput, rows/s by CPU time (wall clock), median of {args.runs} "
          "runs\n")
    print("\n".join(throughput_table(args.runs)))
    if args.no_remote:
        return
    remote, echo, gap = remote_round_trip(args.seconds)
    print(f"\n### Remote round trip, 1-row batches, µs ({len(remote)} desk batches over "
          f"{args.seconds:g} s; echo paced at the same {gap * 1e3:.1f} ms gap)\n")
    print("| path | p50 | p99 | p99 / echo p99 |\n|---|---:|---:|---:|")
    for name, xs in (("desk do_exchange -> remote strategy -> signals", remote),
                     ("bare pyarrow do_exchange echo", echo)):
        print(f"| {name} | {_pct(xs, 50):.0f} | {_pct(xs, 99):.0f} | "
              f"{_pct(xs, 99) / _pct(echo, 99):.2f} |")
    print("\n" + json.dumps({"remote_samples": len(remote), "echo_samples": len(echo)}))


if __name__ == "__main__":
    main()
