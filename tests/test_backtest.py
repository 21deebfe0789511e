"""Backtests replay through the live code path: deterministic, reported, sweepable."""

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flightdesk.core import schemas
from flightdesk.core.runtime.backtest import run_backtest
from flightdesk.core.storage.history_writer import write_partitioned
from tests.fixtures.recorded import DATA, needs_recording

BINANCE = DATA / "binance" / "btcusdt_20240808.gz"
needs_data = needs_recording("binance", "btcusdt_20240808.gz")


@needs_data
@pytest.mark.e2e
def test_backtest_of_a_capture_and_of_its_normalized_parquet_give_the_same_fills(tmp_path):
    """What a new user does: normalize a capture, then backtest the capture and the
    Parquet. One engine replays both, so the fills (and the PnL) are the same."""
    def cli(*args: str) -> dict:
        proc = subprocess.run([sys.executable, "-m", "flightdesk", *args], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout) if args[0] == "normalize" else {}

    cli("normalize", str(BINANCE), "--out", str(tmp_path / "norm"))
    cli("backtest", str(BINANCE), "--strategy", "threshold", "--out", str(tmp_path / "raw"))
    cli("backtest", str(tmp_path / "norm"), "--strategy", "threshold", "--out",
        str(tmp_path / "parquet"))
    raw = pq.read_table(tmp_path / "raw" / "fills.parquet")
    parquet = pq.read_table(tmp_path / "parquet" / "fills.parquet")
    assert raw.num_rows > 100
    assert raw.equals(parquet)
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("raw", "parquet"))
    assert a["trades"] == b["trades"] and a["pnl"] == pytest.approx(b["pnl"], abs=1e-9)
    assert a["markouts"] and a["markouts"] == b["markouts"]
    assert b["data_span_s"] == pytest.approx(a["data_span_s"], abs=0.01) and a["data_span_s"] > 300


@needs_data
def test_binance_recording_backtest_is_deterministic_and_reported(tmp_path):
    a = run_backtest([BINANCE], "threshold", tmp_path / "a")
    b = run_backtest([BINANCE], "threshold", tmp_path / "b")
    assert a["trades"] > 0 and a["events"] == b["events"] > 40_000
    assert (tmp_path / "a" / "fills.parquet").read_bytes() == \
        (tmp_path / "b" / "fills.parquet").read_bytes()
    fills = pq.read_table(tmp_path / "a" / "fills.parquet")
    assert fills.num_rows == a["trades"]
    assert fills.schema.names[:4] == ["fill_id", "order_id", "ts", "venue"]
    # fills happen on the data clock, inside the recording's time span
    ts = fills.column("ts").to_numpy()
    assert 1_723_161_250e9 < ts.min() <= ts.max() < 1_723_161_700e9
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    for key in ("pnl", "sharpe", "max_drawdown", "trades", "fill_ratio", "fees",
                "markouts", "events_per_s"):
        assert key in summary
    assert summary["pnl"] == pytest.approx(a["pnl"])
    report = (tmp_path / "a" / "report.html").read_text()
    assert "Equity" in report and "Fills on price" in report  # drawn: tests/test_report.py


def synthetic_quotes(n=20_000, seed=3):
    rng = np.random.default_rng(seed)
    mid = 100 + np.cumsum(rng.normal(0, 0.01, n))
    bq, aq = rng.uniform(0.1, 5, n), rng.uniform(0.1, 5, n)
    ts = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 10_000_000
    cols = {"ts_event": ts, "ts_recv": ts, "seq": np.arange(1, n + 1), "venue": ["sim"] * n,
            "symbol": ["XYZ"] * n, "bid_px": mid - 0.01, "bid_qty": bq, "ask_px": mid + 0.01,
            "ask_qty": aq, "mid": mid, "spread_bps": 0.02 / mid * 1e4,
            "imbalance": (bq - aq) / (bq + aq), "depth_ratio": bq / (bq + aq),
            "microprice": mid}
    return pa.Table.from_pydict(cols, schema=schemas.schema("quotes"))


def test_normalized_parquet_backtest_fills_at_the_top_of_book(tmp_path):
    table = synthetic_quotes()
    write_partitioned(table, tmp_path / "norm", "quotes", "t")
    summary = run_backtest([tmp_path / "norm"], "threshold", tmp_path / "out",
                           params={"imbalance_threshold": 0.5})
    assert summary["events"] == table.num_rows
    fills = pq.read_table(tmp_path / "out" / "fills.parquet").to_pylist()
    assert fills
    by_ts = {t: (b, a) for t, b, a in zip(table["ts_event"].to_pylist(),
                                          table["bid_px"].to_pylist(),
                                          table["ask_px"].to_pylist(), strict=True)}
    for f in fills:  # each fill is at the bid or ask of the quote it met
        bid, ask = by_ts[f["ts"]]
        assert f["price"] == pytest.approx(ask if f["side"] == "buy" else bid)


def test_quotes_only_backtest_trades_through_the_data_not_at_its_end(tmp_path):
    """The strategy runs every ``batch_frames`` quote rows, as it does every that many
    frames of a capture: a signal is filled at the quotes of its own moment, not at the
    top of book of a whole 65,536-row chunk later (which also left one equity sample)."""
    table = synthetic_quotes()
    write_partitioned(table, tmp_path / "norm", "quotes", "t")
    summary = run_backtest([tmp_path / "norm"], "threshold", tmp_path / "out",
                           params={"imbalance_threshold": 0.5}, batch_frames=64)
    ts = table["ts_event"].to_numpy()
    fill_ts = pq.read_table(tmp_path / "out" / "fills.parquet")["ts"].to_numpy()
    assert len(set(fill_ts.tolist())) > 20
    assert fill_ts.min() < ts[len(ts) // 10]  # trading starts near the start of the data
    assert summary["max_drawdown"] > 0


def test_cli_sweep_writes_one_run_per_combination(tmp_path):
    write_partitioned(synthetic_quotes(5_000), tmp_path / "norm", "quotes", "t")
    out = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-m", "flightdesk", "backtest", str(tmp_path / "norm"),
                           "--strategy", "threshold", "--out", str(out), "--quiet",
                           "--param", "imbalance_threshold=0.4,0.8", "--jobs", "2"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((out / "sweep.json").read_text())
    assert [r["imbalance_threshold"] for r in rows] == [0.4, 0.8]
    assert rows[0]["trades"] >= rows[1]["trades"]  # a higher threshold trades less
    assert (out / "run-1" / "report.html").exists()
    assert "| run | imbalance_threshold |" in proc.stdout


def test_cli_report_choice_none_and_plain(tmp_path):
    """A large sweep can skip each run's report (its summaries are the results) and a
    single run can ask for the plain page."""
    write_partitioned(synthetic_quotes(2_000), tmp_path / "norm", "quotes", "t")
    base = [sys.executable, "-m", "flightdesk", "backtest", str(tmp_path / "norm"),
            "--strategy", "threshold", "--quiet"]
    swept = subprocess.run([*base, "--out", str(tmp_path / "sw"), "--report", "none",
                            "--param", "imbalance_threshold=0.4,0.8", "--jobs", "1"],
                           capture_output=True, text=True, timeout=180)
    assert swept.returncode == 0, swept.stderr
    assert sorted(p.name for p in (tmp_path / "sw").glob("run-*/summary.json")) == [
        "summary.json"] * 2
    assert not list((tmp_path / "sw").glob("run-*/report.html"))
    assert (tmp_path / "sw" / "sweep.json").exists()
    one = subprocess.run([*base, "--out", str(tmp_path / "one"), "--report", "plain"],
                         capture_output=True, text=True, timeout=180)
    assert one.returncode == 0, one.stderr
    page = (tmp_path / "one" / "report.html").read_text()
    assert "<svg" in page and "Plotly.newPlot" not in page


def test_cli_rejects_a_malformed_param(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "flightdesk", "backtest", str(tmp_path),
                           "--strategy", "threshold", "--out", str(tmp_path / "o"),
                           "--param", "imbalance_threshold"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "must look like key=v1,v2" in proc.stderr
