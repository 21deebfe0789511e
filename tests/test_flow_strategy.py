"""Bars to strategies and the built-in ``flow`` strategy (trade imbalance with a bar trend):
the engine builds the intervals a strategy asks for and hands it those bars, before the
trades that closed them; the strategy trades identically on a capture and on its
normalized Parquet, and runs in ``flightdesk serve``."""

from __future__ import annotations

import json
import subprocess
import sys

import adbc_driver_sqlite.dbapi as sqlite_dbapi
import pyarrow as pa
import pyarrow.flight as fl
import pyarrow.parquet as pq
import pytest

from flightdesk.core.errors import ConfigError
from flightdesk.core.market.events import TradeMsg
from flightdesk.core.market.keeper import BookKeeper
from flightdesk.core.runtime.engine import EngineCore
from flightdesk.core.runtime.slots import StrategySlot
from flightdesk.plugins.strategies.flow import FlowStrategy
from flightdesk.sdk.strategy import Strategy
from tests.fixtures.recorded import data_file
from tests.fixtures.serve import start_serve, stop_serve
from tests.fixtures.waiting import wait_for

S = 1_000_000_000


class _Sink:
    def __init__(self) -> None:
        self.batches: list[tuple[str, pa.RecordBatch]] = []

    def publish(self, stream: str, batch: pa.RecordBatch) -> None:
        self.batches.append((stream, batch))

    def has_subscribers(self, stream: str) -> bool:
        return True


class BarReader(Strategy):
    streams = ("bars", "trades")
    DEFAULTS = {"type": "bar_reader", "venue": "", "symbols": [], "enabled": True,
                "bars": ["7s"]}

    def __init__(self, name, config):
        super().__init__(name, config)
        self.seen: list[tuple[str, object]] = []

    def on_batch(self, batch):
        if "interval" in batch.schema.names:
            self.seen += [("bar", (b["interval"], b["open_time"], b["close"]))
                          for b in batch.to_pylist()]
        else:
            self.seen += [("trade", t) for t in batch.column("ts_event").to_pylist()]
        return None


def trade(ts: int, px: float, symbol: str = "X") -> TradeMsg:
    return TradeMsg("v", symbol, ts, ts, str(ts), px, 1.0, "buy")


def test_a_strategy_gets_the_bars_of_its_intervals_before_the_trades_that_closed_them():
    sink = _Sink()
    core = EngineCore(BookKeeper({}), sink, bar_intervals=("1s", "1m"))
    reader = BarReader("r", {**BarReader.DEFAULTS, "symbols": ["X"]})
    core.slots.attach(StrategySlot(reader))
    assert [name for name, _ in core.bars.intervals] == ["1s", "1m", "7s"]
    core.feed([trade(1 * S, 10.0), trade(3 * S, 12.0), trade(6 * S, 11.0),
               trade(6 * S, 11.0, "Y"), trade(8 * S, 13.0), trade(8 * S, 9.0, "Y")])
    core.flush()
    published = {b["interval"] for s, batch in sink.batches if s == "bars"
                 for b in batch.to_pylist()}
    assert published == {"1s", "7s"}  # the desk's own intervals and the strategy's
    bars = [v for k, v in reader.seen if k == "bar"]
    assert bars == [("7s", 0, 11.0)]  # its interval, its symbol only
    assert [k for k, _ in reader.seen] == ["bar"] + ["trade"] * 4  # the bar first


def test_bad_bar_intervals_are_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"strategies.r.bars: bad bar interval '7x'"):
        StrategySlot(BarReader("r", {**BarReader.DEFAULTS, "bars": ["7x"]}))
    with pytest.raises(ConfigError, match="trend_bars must be >= 1"):
        FlowStrategy("f", {**FlowStrategy.DEFAULTS, "trend_bars": 0})


def test_flow_trades_only_with_the_trend_it_reads_from_bars():
    """Strong buying while the 1 s bars fall gets no long; once they rise, it does."""
    sink = _Sink()
    core = EngineCore(BookKeeper({}), sink, bar_intervals=())
    flow = FlowStrategy("f", {**FlowStrategy.DEFAULTS, "bars": ["1s"], "trend_bars": 2,
                              "flow_window_ms": 500.0, "holding_period_ms": 0})
    signals: list[pa.RecordBatch] = []
    core.slots._on_signals = lambda name, batch: signals.append(batch)
    core.slots.attach(StrategySlot(flow))
    falling = [trade(i * S // 2, 100.0 - i) for i in range(8)]  # buys, prices falling
    core.feed(falling)
    core.flush()
    assert not signals and flow._trend_at(("v", "X"), [4 * S])[0] == -1
    rising = [trade(4 * S + i * S // 2, 93.0 + 3 * i) for i in range(8)]
    core.feed(rising)
    core.flush()
    assert signals and signals[0].column("side").to_pylist()[0] == "buy"
    assert signals[0].column("ts")[0].as_py() >= 5 * S  # not before a rising bar had ended


def test_flow_on_a_capture_and_on_its_parquet_gives_the_same_fills(tmp_path):
    capture = data_file("binance", "btcusdt_20240808.gz")

    def cli(*args: str) -> None:
        proc = subprocess.run([sys.executable, "-m", "flightdesk", *args], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]

    cli("normalize", str(capture), "--out", str(tmp_path / "norm"))
    cli("backtest", str(capture), "--strategy", "flow", "--out", str(tmp_path / "raw"),
        "--quiet")
    cli("backtest", str(tmp_path / "norm"), "--strategy", "flow", "--out",
        str(tmp_path / "parquet"), "--quiet")
    raw = pq.read_table(tmp_path / "raw" / "fills.parquet")
    assert raw.num_rows > 20
    assert raw.equals(pq.read_table(tmp_path / "parquet" / "fills.parquet"))
    off = tmp_path / "off"
    cli("backtest", str(tmp_path / "norm"), "--strategy", "flow", "--out", str(off),
        "--quiet", "--param", "trend_bars=1000")  # a trend that never forms: no trade
    assert pq.read_table(off / "fills.parquet").num_rows == 0


@pytest.mark.e2e
def test_flow_runs_in_serve_on_the_sim_with_bars_on_flight(tmp_path):
    config = tmp_path / "desk.toml"
    config.write_text('[strategies.flow]\ntype = "flow"\nvenue = "sim"\nbars = ["1s"]\n'
                      "trend_bars = 2\nflow_threshold = 0.2\nflow_window_ms = 1000\n"
                      "holding_period_ms = 200\nfollow_trend = true\n")
    proc, uri, _ = start_serve(tmp_path, "--config", str(config),
                                  env={"FLIGHTDESK_VENUES__SIM__RATE": "400"})
    try:
        client = fl.connect(uri)
        reader = client.do_get(fl.Ticket(json.dumps({"stream": "bars", "mode": "live"})
                                          .encode()))
        bar = reader.read_chunk().data.to_pylist()[0]
        reader.cancel()
        assert bar["interval"] in ("1s", "1m", "1h", "1d") and bar["high"] >= bar["low"]

        def flow_state() -> dict:
            body = next(client.do_action(fl.Action("strategies", b""))).body.to_pybytes()
            state = json.loads(body)
            rows = state if isinstance(state, list) else state.get("strategies", state)
            return next(r for r in rows if r["name"] == "flow")

        wait_for(lambda: flow_state()["signals"] > 0, timeout=60)
        assert not flow_state()["quarantined"]
    finally:
        stop_serve(proc)
    conn = sqlite_dbapi.connect(str(tmp_path / "data" / "flightdesk.sqlite"))
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM orders WHERE strategy = 'flow'")
        assert cur.fetchone()[0] > 0
    finally:
        conn.close()
