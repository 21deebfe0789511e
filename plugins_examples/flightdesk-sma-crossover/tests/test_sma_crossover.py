"""Bars from trades, the crossover rule, and the strategy trading in a real desk."""

import time

import numpy as np
import pyarrow as pa
import pytest
from flightdesk_sma_crossover import BarBuilder, SmaCrossover

import flightdesk
from flightdesk import schemas

MS = 1_000_000


def trades(ts_ms, prices, symbol="BTCUSDT"):
    n = len(ts_ms)
    cols = {"ts_event": np.asarray(ts_ms, np.int64) * MS, "ts_recv": np.zeros(n, np.int64),
            "seq": np.arange(n, dtype=np.int64), "venue": ["sim"] * n, "symbol": [symbol] * n,
            "trade_id": [str(i) for i in range(n)], "price": np.asarray(prices, float),
            "qty": np.ones(n), "side": ["buy"] * n}
    return pa.RecordBatch.from_pydict(cols, schema=schemas.schema("trades"))


def test_bars_close_on_the_next_bar_and_do_not_depend_on_the_split():
    ts = np.array([0, 5, 12, 13, 31, 45, 46, 80])
    px = np.arange(len(ts), dtype=float) + 100
    whole = BarBuilder(10).closed(("v", "s"), ts * MS, px)
    assert [(b // MS, c) for b, _, c in whole] == [(0, 101.0), (10, 103.0), (30, 104.0),
                                                   (40, 106.0)]
    for cut in range(1, len(ts)):
        b = BarBuilder(10)
        parts = b.closed(("v", "s"), ts[:cut] * MS, px[:cut])
        parts += [(s, r + cut, c) for s, r, c in b.closed(("v", "s"), ts[cut:] * MS, px[cut:])]
        assert parts == whole


@pytest.mark.parametrize("kind", ["sma", "ema"])
def test_crossovers_signal_buy_then_sell(kind):
    s = SmaCrossover("x", {**SmaCrossover.DEFAULTS, "bar_ms": 1.0, "fast": 2, "slow": 4,
                           "kind": kind})
    prices = [100, 100, 100, 100, 99, 98, 99, 101, 103, 105, 104, 102, 99, 97, 96, 96]
    sig = s.on_batch(trades(range(len(prices)), prices))
    assert sig.column("side").to_pylist() == ["buy", "sell"]
    assert sig.column("strategy").to_pylist() == ["x", "x"]
    assert sig.column("qty").to_pylist() == [0.1, 0.1]


def test_bad_config_is_a_clear_error():
    with pytest.raises(flightdesk.ConfigError, match="kind must be sma or ema"):
        SmaCrossover("x", {**SmaCrossover.DEFAULTS, "kind": "wma"})
    with pytest.raises(flightdesk.ConfigError, match="fast < slow"):
        SmaCrossover("x", {**SmaCrossover.DEFAULTS, "fast": 20, "slow": 5})


def test_trades_in_a_desk_found_through_its_entry_point(tmp_path):
    config = {"desk": {"data_dir": str(tmp_path)}, "flight": {"enabled": False},
              "venues": {"sim": {"type": "sim", "rate": 400.0}},
              "strategies": {"sma": {"type": "sma_crossover", "venue": "sim", "bar_ms": 100.0,
                                     "fast": 2, "slow": 4}}}
    with flightdesk.Engine(config) as eng:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not eng.status()["trading"].get("fills"):
            time.sleep(0.1)
        status = eng.status()
    slot = status["strategies"][0]
    assert slot["batches"] > 0 and slot["signals"] > 0 and slot["quarantined"] == ""
    assert status["trading"]["fills"] > 0
