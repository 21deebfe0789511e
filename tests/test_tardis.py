"""Tardis.dev CSV datasets through normalize and backtest.

The files are written in Tardis's documented CSV format (header row, comma-separated,
microseconds since the epoch, gzip) from the recorded Binance BTCUSDT session: the
``incremental_book_L2`` rows are the REST snapshot (``is_snapshot=true``) and then every
depth diff the venue's sequencing rule applies, as Tardis builds the dataset from the
real-time feed; ``trades`` are the ``@trade`` frames. The Tardis path must give the same
books as the capture through the Binance protocol.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.dataset as ds
import pytest

from flightdesk.core.errors import CaptureError, ConfigError
from flightdesk.core.storage.normalize import normalize
from flightdesk.core.storage.tardis import tardis_kind
from tests.fixtures.recorded import data_file
from tests.fixtures.tardis import HEAD, from_recording, write_csv


def _tops(out) -> list[tuple]:
    t = ds.dataset(out / "quotes", format="parquet").to_table()
    return list(zip(*(t[c].to_pylist() for c in ("bid_px", "bid_qty", "ask_px", "ask_qty")),
                    strict=True))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("tardis")
    book, trades = from_recording(root)
    capture = root / "capture"
    normalize([data_file("binance", "btcusdt_20240808.gz")], capture)
    return root, book, trades, capture


def test_incremental_book_and_trades_give_the_capture_s_books(recorded, tmp_path):
    root, book, trades, capture = recorded
    assert tardis_kind(book) == "incremental_book_L2" and tardis_kind(trades) == "trades"
    report = normalize([book, trades], tmp_path / "out")
    assert report.counters["resyncs"] == 0 and report.counters["crossed_books"] == 0
    assert _tops(tmp_path / "out") == _tops(capture)  # 3,450: the snapshot + every diff
    assert report.rows["quotes"] == 3450 and report.rows["trades"] == 9757
    got = ds.dataset(tmp_path / "out" / "trades", format="parquet").to_table()
    want = ds.dataset(capture / "trades", format="parquet").to_table()
    for col in ("trade_id", "price", "qty", "side"):
        assert got[col].to_pylist() == want[col].to_pylist(), col
    assert set(got["venue"].to_pylist()) == {"binance"}


def test_quotes_and_book_snapshots(recorded, tmp_path):
    root, _, _, capture = recorded
    tops = _tops(capture)
    quotes = write_csv(tmp_path / "binance_quotes.csv.gz",
                    f"{HEAD},ask_amount,ask_price,bid_price,bid_amount",
                    [f"binance,BTCUSDT,{1723161254000000 + i},{1723161254000000 + i},"
                     f"{aq!r},{a!r},{b!r},{bq!r}" for i, (b, bq, a, aq) in enumerate(tops)])
    normalize([quotes], tmp_path / "q")
    assert _tops(tmp_path / "q") == tops  # each row a one-level book
    cols = ",".join(f"asks[{i}].price,asks[{i}].amount,bids[{i}].price,bids[{i}].amount"
                    for i in range(5))
    snaps = write_csv(tmp_path / "x_book_snapshot_5.csv.gz", f"{HEAD},{cols}", [
        "bybit,ETHUSDT,1000,1001,101,2,100,1,102,3,99,4,103,5,98,6,104,7,97,8,105,9,96,10",
        "bybit,ETHUSDT,2000,2001,101.5,1,100.5,2,102,3" + "," * 14,
    ])
    assert tardis_kind(snaps) == "book_snapshot"
    report = normalize([snaps], tmp_path / "s")
    assert _tops(tmp_path / "s") == [(100.0, 1.0, 101.0, 2.0), (100.5, 2.0, 101.5, 1.0)]
    book = ds.dataset(tmp_path / "s" / "book", format="parquet").to_table()
    assert report.rows["quotes"] == 2 and book.num_rows == 10 + 3  # every level of each


def test_bad_tardis_input_is_refused_by_name(tmp_path):
    bad = write_csv(tmp_path / "bad.csv.gz", f"{HEAD},is_snapshot,side,price,amount", [
        "binance,BTCUSDT,1,1,true,bid,100,1", "binance,BTCUSDT,2,2,false,middle,100,1"])
    with pytest.raises(CaptureError, match=r"bad.csv.gz:3: bad incremental_book_L2 row: "
                                           r"side must be bid or ask, got 'middle'"):
        normalize([bad], tmp_path / "o1")
    other = write_csv(tmp_path / "deribit_derivative_ticker.csv.gz",
                   f"{HEAD},funding_rate,open_interest,last_price", ["deribit,X,1,1,0,0,1"])
    with pytest.raises(CaptureError, match="not a data type flightdesk reads"):
        normalize([other], tmp_path / "o2")
    good = write_csv(tmp_path / "ok.csv.gz", f"{HEAD},id,side,price,amount",
                  ["binance,BTCUSDT,1,1,7,buy,100,1"])
    short = write_csv(tmp_path / "short.csv.gz", f"{HEAD},id,side,price,amount",
                   ["binance,BTCUSDT,1,1,7,buy,100,1", "binance,BTCUSDT,2,2,8,buy"])
    with pytest.raises(CaptureError, match=r"short.csv.gz:3: .*fewer columns than the "
                                           r"header's 8"):
        normalize([short], tmp_path / "o4")
    with pytest.raises(ConfigError, match="not both"):
        normalize([good, data_file("okx", "OKX.ws.1.0")], tmp_path / "o3")


@pytest.mark.e2e
def test_cli_backtest_of_tardis_files(recorded, tmp_path):
    _, book, trades, _ = recorded
    run = subprocess.run([sys.executable, "-m", "flightdesk", "backtest", str(book),
                          str(trades), "--strategy", "threshold", "--out", str(tmp_path / "bt"),
                          "--quiet"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "bt" / "summary.json").read_text())
    assert summary["trades"] > 0
    fills = ds.dataset(tmp_path / "bt" / "fills.parquet", format="parquet").to_table()
    assert fills.num_rows == summary["trades"] and set(fills["venue"].to_pylist()) == {
        "binance"}
