"""The arbitrage detector on hand-made quotes, across batches, and in a two-venue desk."""

import time

import numpy as np
import pyarrow as pa
import pytest
from flightdesk_xarb import CrossVenueArb

import flightdesk
from flightdesk import schemas

MS = 1_000_000


def quotes(rows):
    """rows: (ts_ms, venue, bid, ask)."""
    n = len(rows)
    ts = np.array([r[0] for r in rows], np.int64) * MS
    bid, ask = np.array([r[2] for r in rows], float), np.array([r[3] for r in rows], float)
    cols = {"ts_event": ts, "ts_recv": ts, "seq": np.arange(n, dtype=np.int64),
            "venue": [r[1] for r in rows], "symbol": ["BTCUSDT"] * n, "bid_px": bid,
            "bid_qty": np.ones(n), "ask_px": ask, "ask_qty": np.ones(n), "mid": (bid + ask) / 2,
            "spread_bps": (ask - bid) / ((bid + ask) / 2) * 1e4, "imbalance": np.zeros(n),
            "depth_ratio": np.full(n, 0.5), "microprice": (bid + ask) / 2}
    return pa.RecordBatch.from_pydict(cols, schema=schemas.schema("quotes"))


def make(**cfg):
    return CrossVenueArb("arb", {**CrossVenueArb.DEFAULTS, "venues": ["a", "b"],
                                 "fees_bps": [5.0, 5.0], **cfg})


def sides(sig):
    return list(zip(sig.column("venue").to_pylist(), sig.column("side").to_pylist(),
                    strict=True)) if sig is not None else []


def test_signals_only_when_the_crossed_spread_beats_both_fees():
    s = make()
    # b's bid over a's ask by 5 bps (< 10 bps of fees), then 20 bps, then the cross closes
    sig = s.on_batch(quotes([(0, "a", 99.9, 100.0), (1, "b", 100.05, 100.1),
                             (2, "b", 100.2, 100.3), (3, "b", 99.9, 100.0)]))
    assert sides(sig) == [("a", "buy"), ("b", "sell"), ("a", "flat"), ("b", "flat")]
    assert sig.column("ts").to_pylist()[::2] == [2 * MS, 3 * MS]
    assert sig.column("strength")[0].as_py() == pytest.approx(20 / 100.125 * 100, rel=1e-3)
    assert sig.column("qty").to_pylist() == [0.1, 0.1, 0.0, 0.0]


def test_the_other_direction_and_state_across_batches():
    s = make()
    assert s.on_batch(quotes([(0, "b", 99.9, 100.0)])) is None
    sig = s.on_batch(quotes([(1, "a", 100.2, 100.3)]))  # a's bid over b's ask by 20 bps
    assert sides(sig) == [("a", "sell"), ("b", "buy")]


def test_other_symbols_and_one_sided_markets_are_ignored():
    s = make()
    assert s.on_batch(quotes([(0, "a", 99.9, 100.0)])) is None
    with pytest.raises(flightdesk.ConfigError, match="two different venues"):
        make(venues=["a", "a"])


def test_detects_and_trades_across_two_sim_venues(tmp_path):
    sim = {"type": "sim", "rate": 300.0, "symbols": ["BTCUSDT"], "prices": [60000.0]}
    config = {"desk": {"data_dir": str(tmp_path)}, "flight": {"enabled": False},
              "venues": {"sa": {**sim, "seed": 1}, "sb": {**sim, "seed": 2,
                                                          "prices": [60003.0]}},
              "strategies": {"arb": {"type": "xarb", "venues": ["sa", "sb"],
                                     "fees_bps": [0.1, 0.1]}}}
    with flightdesk.Engine(config) as eng:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not eng.status()["trading"].get("fills"):
            time.sleep(0.1)
        status = eng.status()
        positions = eng.positions()
    assert status["strategies"][0]["signals"] > 0
    assert status["trading"]["fills"] > 0
    # sb quotes ~0.5 bps over sa: buy on sa, sell on sb
    held = dict(zip(positions.column("venue").to_pylist(), positions.column("qty").to_pylist(),
                    strict=True))
    assert held["sa"] > 0 > held["sb"]
