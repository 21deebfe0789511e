"""normalize: every recording in ../shared/data through the real protocol, books, batchers."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from flightdesk.core import schemas
from flightdesk.core.storage.normalize import detect_venue, normalize
from tests.fixtures.recorded import data_file


def table(out, stream):
    return ds.dataset(out / stream, format="parquet").to_table()


def test_kraken_every_checksum_verifies(tmp_path):
    report = normalize([data_file("kraken", "KRAKEN.ws.50.0")], tmp_path)
    kraken = report.venues["kraken"]
    assert kraken["book_update"] == 4269 and kraken["checksum_ok"] == 4269
    assert "checksum_failed" not in kraken and report.counters["resyncs"] == 0
    assert report.rows["quotes"] == 4279  # 10 snapshots + 4,269 updates: a row after each
    quotes = table(tmp_path, "quotes")
    assert quotes.num_rows == 4279 and pc.min(quotes["seq"]).as_py() == 1
    assert quotes["seq"].to_pylist() == list(range(1, 4280))
    assert set(quotes["symbol"].to_pylist()) == {
        "WAVES/EUR", "XMR/USD", "KSM/XBT", "GRT/ETH", "SC/EUR", "ETH/CHF", "OCEAN/XBT",
        "OMG/USD", "XBT/CHF", "ADA/XBT"}
    book = table(tmp_path, "book")
    assert book.schema.names[:9] == schemas.required_columns("book")
    assert book.num_rows == 11745  # one row per level of every applied message


def test_okx_every_checksum_verifies(tmp_path):
    report = normalize([data_file("okx", "OKX.ws.1.0")], tmp_path)
    okx = report.venues["okx"]
    assert okx["book_snapshot"] == 20 and okx["book_update"] == 3659
    assert okx["checksum_ok"] == 3679 and "checksum_failed" not in okx
    assert report.rows["quotes"] == 3679 and report.rows["trades"] == 19
    trades = table(tmp_path, "trades")
    assert trades.schema.names[:9] == schemas.required_columns("trades")
    assert set(trades["side"].to_pylist()) <= {"buy", "sell"}


def test_binance_top_of_book_equals_every_book_ticker_with_the_same_u(tmp_path):
    report = normalize([data_file("binance", "btcusdt_20240808.gz")], tmp_path)
    assert report.counters["snapshots"] == 1 and report.counters["resyncs"] == 0
    assert report.rows["quotes"] == 3450 and report.rows["trades"] == 9757
    quotes = table(tmp_path, "quotes")
    tickers = table(tmp_path, "tickers")
    assert tickers.num_rows == 28040
    top = {u: (b, bq, a, aq) for u, b, bq, a, aq in zip(
        *(quotes[c].to_pylist() for c in ("update_id", "bid_px", "bid_qty", "ask_px",
                                          "ask_qty")), strict=True)}
    matched = 0
    for u, b, bq, a, aq in zip(*(tickers[c].to_pylist() for c in (
            "update_id", "bid_px", "bid_qty", "ask_px", "ask_qty")), strict=True):
        if u in top:
            assert top[u] == (b, bq, a, aq), u
            matched += 1
    assert matched == 564  # every bookTicker whose u ends a depth diff; none disagrees


def test_binance_multi_symbol_capture_with_its_http_file(tmp_path):
    report = normalize([data_file("binance", "BINANCE.ws.1.0"),
                        data_file("binance", "BINANCE.http.0.0")], tmp_path)
    assert report.counters["snapshots"] == 4 and report.counters["resyncs"] == 0
    quotes = table(tmp_path, "quotes")
    assert set(quotes["symbol"].to_pylist()) == {"NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"}
    assert report.rows["quotes"] == 176


def test_coinbase_books_never_cross(tmp_path):
    report = normalize([data_file("coinbase", "COINBASE.ws.28.0")], tmp_path)
    assert report.counters["crossed_books"] == 0 and report.counters["resyncs"] == 0
    assert report.rows["quotes"] == 9729 and report.rows["trades"] == 107
    q = table(tmp_path, "quotes")
    both = q.filter(pc.and_(pc.is_finite(q["bid_px"]), pc.is_finite(q["ask_px"])))
    assert both.num_rows == 9729
    assert pc.all(pc.less(both["bid_px"], both["ask_px"])).as_py()


def test_detect_venue_from_urls_and_shapes():
    assert detect_venue("wss://fstream.binance.com/stream", "") == ("binance", {"market": "usdm"})
    assert detect_venue("wss://ws.okx.com:8443/ws/v5/public", "")[0] == "okx"
    assert detect_venue("", '{"stream":"btcusdt@trade","data":{}}')[0] == "binance"
    assert detect_venue("", '[1234,{"a":[]},"book-10","XBT/USD"]')[0] == "kraken"
    assert detect_venue("", '{"arg":{"channel":"books"}}')[0] == "okx"
    assert detect_venue("", '{"type":"l2update","product_id":"BTC-USD"}')[0] == "coinbase"
    assert detect_venue("", b"\x0a\x05spot@")[0] == "mexc"
    assert detect_venue("", '[{"T":"q","S":"AAPL"}]')[0] == "alpaca"
    assert detect_venue("", "hello") is None


@pytest.mark.e2e
def test_cli_normalize_subprocess(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "flightdesk", "normalize",
                           str(data_file("okx", "OKX.ws.1.0")), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["rows"]["quotes"] == 3679
    assert table(out, "quotes").num_rows == 3679
    bad = subprocess.run([sys.executable, "-m", "flightdesk", "normalize",
                          str(data_file("okx", "OKX.ws.1.0")), "--out", str(out),
                          "--venue", "nosuch"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "'nosuch' is not registered" in bad.stderr


def test_kraken_trade_and_ticker_recordings(tmp_path):
    trades = normalize([data_file("kraken", "KRAKEN.ws.48.0")], tmp_path / "t")
    assert dict(trades.rows) == {"trades": 10} and trades.counters["parse_errors"] == 0
    rows = table(tmp_path / "t", "trades").to_pylist()
    assert rows[0]["symbol"] == "XMR/USD" and rows[0]["side"] == "sell"
    assert [r["seq"] for r in rows] == list(range(1, 11))
    tickers = normalize([data_file("kraken", "KRAKEN.ws.49.0")], tmp_path / "k")
    assert dict(tickers.rows) == {"tickers": 18} and tickers.counters["parse_errors"] == 0


def test_every_recording_together_in_one_run(tmp_path):
    """All the recordings at once: each record finds its venue by URL or shape."""
    files = [data_file("kraken", "KRAKEN.ws.50.0"), data_file("okx", "OKX.ws.1.0"),
             data_file("coinbase", "COINBASE.ws.28.0"),
             data_file("binance", "btcusdt_20240808.gz")]
    report = normalize(files, tmp_path)
    assert set(report.venues) == {"kraken", "okx", "coinbase", "binance"}
    assert report.rows["quotes"] == 4279 + 3679 + 9729 + 3450
    assert report.counters["resyncs"] == 0 and report.counters["parse_errors"] == 0
    venues = table(tmp_path, "quotes")["venue"].value_counts().to_pylist()
    assert {v["values"]: v["counts"] for v in venues} == {
        "kraken": 4279, "okx": 3679, "coinbase": 9729, "binance": 3450}
