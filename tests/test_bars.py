"""Bars from trades and the rolling 24h ticker, checked against brute force on real trades."""

from __future__ import annotations

import gzip
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightdesk.core import schemas
from flightdesk.core.errors import ConfigError
from flightdesk.core.market.bars import DAY_NS, INTERVALS, BarBuilder, Ticker24h, interval_ns
from flightdesk.core.market.events import TradeMsg
from flightdesk.plugins.venues.binance.parse import BinanceProtocol
from tests.fixtures.recorded import data_file


@pytest.fixture(scope="module")
def trades() -> list[TradeMsg]:
    proto = BinanceProtocol()
    out = []
    with gzip.open(data_file("binance", "btcusdt_20240808.gz"), "rb") as fh:
        for line in fh:
            ts, frame = line.rstrip(b"\n").split(b" ", 1)
            if b'"trade"' in frame[:60] or b'@trade"' in frame[:60]:
                out.extend(e for e in proto.parse(frame, int(ts)) if type(e) is TradeMsg)
    assert len(out) == 9757
    return out


def brute(trades: list[TradeMsg], size: int) -> list[tuple]:
    groups: dict[int, list[TradeMsg]] = defaultdict(list)
    for t in trades:
        groups[t.ts_event - t.ts_event % size].append(t)
    return [(start, g[0].price, max(t.price for t in g), min(t.price for t in g), g[-1].price,
             sum(t.qty for t in g), len(g)) for start, g in sorted(groups.items())]


@pytest.mark.parametrize("interval", ["1s", "1m", "5m", "1h", "1d"])
def test_bars_equal_brute_force_on_the_recorded_trades(trades, interval):
    builder = BarBuilder([interval])
    builder.add_many(trades)
    builder.close_all()
    batch = builder.take()
    assert batch is not None and batch.schema == schemas.schema("bars")
    got = list(zip(*(batch.column(c).to_pylist() for c in (
        "open_time", "open", "high", "low", "close", "volume", "trades")), strict=True))
    want = brute(trades, interval_ns(interval))
    assert [g[:5] + g[6:] for g in got] == [w[:5] + w[6:] for w in want]
    assert [g[5] for g in got] == pytest.approx([w[5] for w in want], rel=1e-12)
    assert set(batch.column("interval").to_pylist()) == {interval}
    assert sum(batch.column("trades").to_pylist()) == 9757


def test_bars_close_as_time_moves_and_open_bar_is_visible(trades):
    builder = BarBuilder(["1m"])
    builder.add_many(trades[:2000])
    closed = builder.take()
    assert closed is not None and closed.num_rows == len(brute(trades[:2000], 60 * 10**9)) - 1
    bar = builder.open_bar("binance", "BTCUSDT", "1m")
    assert bar is not None and bar["close"] == trades[1999].price
    assert builder.take() is None


def test_rolling_ticker_equals_brute_force(trades):
    window = 30 * 10**9  # a 30 s window over a 6-minute recording exercises expiry
    ticker = Ticker24h(window, resolution_ns=1)
    for i, t in enumerate(trades):
        ticker.add(t)
        if i % 997 == 0 or i == len(trades) - 1:
            live = [x for x in trades[:i + 1] if x.ts_event > t.ts_event - window]
            s = ticker.get("binance", "BTCUSDT")
            assert s is not None
            assert (s.open, s.high, s.low, s.last, s.trades) == (
                live[0].price, max(x.price for x in live), min(x.price for x in live),
                live[-1].price, len(live))
            assert s.volume == pytest.approx(sum(x.qty for x in live), rel=1e-9)
    assert ticker.get("binance", "ETHUSDT") is None
    day = Ticker24h()
    for t in trades:
        day.add(t)
    [stats] = day.all()
    assert stats.trades == 9757 and stats.first_ts == trades[0].ts_event


def test_day_ticker_memory_is_bounded_by_buckets_not_trades():
    """A desk running for days: the 24 h ticker keeps minute buckets, not every trade, and
    its figures are those of the trades of the buckets in the window."""
    ticker = Ticker24h()
    step = 2 * 10**9  # a trade every 2 s for two days: 86,400 trades
    rows = [TradeMsg("v", "S", i * step, i * step, str(i), 100.0 + (i % 500), 1.0, "buy")
            for i in range(86_400)]
    for t in rows:
        ticker.add(t)
    w = ticker._windows[("v", "S")]
    assert len(w.buckets) <= 24 * 60 + 1
    s = ticker.get("v", "S")
    assert s is not None
    first = w.buckets[0].start
    live = [t for t in rows if t.ts_event >= first]
    assert s.trades == len(live) and s.volume == pytest.approx(len(live))
    assert s.open == live[0].price and s.last == rows[-1].price
    assert (s.high, s.low) == (max(t.price for t in live), min(t.price for t in live))
    assert rows[-1].ts_event - s.first_ts <= DAY_NS + 60 * 10**9


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**12), st.floats(1, 1e5), st.floats(0, 10)),
                min_size=1, max_size=60))
def test_bar_invariants(rows):
    trades = [TradeMsg("v", "S", ts, ts, str(i), px, q, "buy")
              for i, (ts, px, q) in enumerate(sorted(rows))]
    builder = BarBuilder(["1s", "1m"])
    builder.add_many(trades)
    builder.close_all()
    batch = builder.take()
    assert batch is not None
    for row in batch.to_pylist():
        assert row["low"] <= min(row["open"], row["close"]) <= max(row["open"], row["close"]) \
            <= row["high"]
    assert sum(r["trades"] for r in batch.to_pylist() if r["interval"] == "1s") == len(trades)


def test_interval_names():
    assert [interval_ns(i) for i in ("1s", "1m", "1h", "1d")] == [
        10**9, 60 * 10**9, 3600 * 10**9, 86400 * 10**9]
    assert len(INTERVALS) == 16
    for bad in ("0s", "1w", "2d", "m", "1.5m"):
        with pytest.raises(ConfigError):
            interval_ns(bad)


def test_live_desk_publishes_bars_on_flight_and_24h_tickers_in_status(tmp_path):
    import json as _json

    import pyarrow.flight as fl

    import flightdesk

    cfg = {"desk": {"data_dir": str(tmp_path)}, "flight": {"port": 0},
           "venues": {"sim": {"type": "sim", "rate": 400.0}}, "strategies": {}}
    with flightdesk.Engine(cfg) as eng:
        client = fl.connect(eng.flight_uri)
        try:
            reader = client.do_get(fl.Ticket(_json.dumps({"stream": "bars", "mode": "live"})))
            chunk = reader.read_chunk().data  # the first 1s bars close within ~2 s
            rows = chunk.to_pylist()
            assert chunk.schema.names == schemas.schema("bars").names
            assert {r["interval"] for r in rows} <= {"1s", "1m", "1h", "1d"}
            assert all(r["low"] <= r["close"] <= r["high"] and r["trades"] > 0 for r in rows)
            reader.cancel()
        finally:
            client.close()
        tickers = eng.status()["tickers_24h"]
        assert {t["symbol"] for t in tickers} == {"BTCUSDT", "ETHUSDT"}
        assert all(t["trades"] > 0 and t["low"] <= t["last"] <= t["high"] for t in tickers)
