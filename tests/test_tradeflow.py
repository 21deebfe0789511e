"""Trade-flow features (signed volume, counts, imbalance, VWAP over ms windows) of trades
batches: against a row-by-row reference, per instrument, and split invariant."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightdesk.core import schemas
from flightdesk.core.errors import ConfigError
from flightdesk.sdk import features
from tests.fixtures.factories import quotes

NAMES = ["signed_volume@500", "buy_volume@500", "sell_volume@500", "trade_count@500",
         "trade_imbalance@2000", "vwap@2000"]


def trades(ts, keys, prices, qtys, sides) -> pa.RecordBatch:
    n = len(ts)
    cols = {"ts_event": np.asarray(ts, np.int64), "ts_recv": np.asarray(ts, np.int64),
            "seq": np.arange(n, dtype=np.int64), "venue": [k[0] for k in keys],
            "symbol": [k[1] for k in keys], "trade_id": [str(i) for i in range(n)],
            "price": np.asarray(prices, np.float64), "qty": np.asarray(qtys, np.float64),
            "side": list(sides)}
    return pa.RecordBatch.from_pydict(cols, schema=schemas.schema("trades"))


def reference(batch: pa.RecordBatch, name: str, window_ms: float) -> list[float]:
    """Each row's window recomputed from scratch over the instrument's earlier trades."""
    rows = batch.to_pylist()
    out = []
    for i, r in enumerate(rows):
        key = (r["venue"], r["symbol"])
        win = [x for x in rows[:i + 1] if (x["venue"], x["symbol"]) == key
               and x["ts_event"] > r["ts_event"] - window_ms * 1e6]
        buy = sum(x["qty"] for x in win if x["side"] == "buy")
        sell = sum(x["qty"] for x in win if x["side"] == "sell")
        total = sum(x["qty"] for x in win)
        out.append({"signed_volume": buy - sell, "buy_volume": buy, "sell_volume": sell,
                    "trade_count": float(len(win)),
                    "trade_imbalance": (buy - sell) / total if total else 0.0,
                    "vwap": sum(x["qty"] * x["price"] for x in win) / total}[name])
    return out


def test_by_hand():
    ms = 1_000_000
    batch = trades([0, 100 * ms, 300 * ms, 700 * ms], [("v", "X")] * 4, [100, 101, 102, 103],
                   [1.0, 2.0, 1.0, 4.0], ["buy", "sell", "buy", "unknown"])
    x = features.FeatureSet(["signed_volume@500", "trade_count@500", "vwap@500",
                             "trade_imbalance@500"]).compute(batch)
    assert x[:, 0].tolist() == [1.0, -1.0, 0.0, 1.0]  # at 700 ms: (200, 700] holds 300, 700
    assert x[:, 1].tolist() == [1, 2, 3, 2]
    assert x[3, 2] == pytest.approx((102 * 1 + 103 * 4) / 5)
    assert x[3, 3] == pytest.approx(1 / 5)  # an unknown side adds volume, not direction


def test_against_the_row_by_row_reference_per_instrument():
    rng = np.random.default_rng(3)
    n = 300
    ts = np.cumsum(rng.integers(0, 40_000_000, n))
    keys = [("v", "A") if k else ("w", "B") for k in rng.integers(0, 2, n)]
    batch = trades(ts, keys, 100 + rng.standard_normal(n), rng.uniform(0.01, 2, n),
                   rng.choice(["buy", "sell"], n))
    x = features.FeatureSet(NAMES).compute(batch)
    for j, name in enumerate(NAMES):
        feat, _, window = name.partition("@")
        assert x[:, j] == pytest.approx(reference(batch, feat, float(window)), rel=1e-9,
                                        abs=1e-9), name


rows = st.lists(st.tuples(st.integers(0, 800_000_000), st.sampled_from([("a", "X"), ("b", "Y")]),
                          st.floats(90, 110), st.floats(0.001, 5),
                          st.sampled_from(["buy", "sell", "unknown"])), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(rows=rows, cuts=st.lists(st.integers(1, 59), max_size=8))
def test_results_do_not_depend_on_how_the_stream_is_split(rows, cuts):
    ts = np.cumsum([r[0] for r in rows])
    batch = trades(ts, [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
                   [r[4] for r in rows])
    whole = features.FeatureSet(NAMES).compute(batch)
    split = features.FeatureSet(NAMES)
    edges = sorted({0, batch.num_rows, *(c for c in cuts if c < batch.num_rows)})
    parts = [split.compute(batch.slice(a, b - a)) for a, b in itertools.pairwise(edges)]
    assert np.array_equal(whole, np.concatenate(parts), equal_nan=True)


def test_mixing_streams_or_feeding_quotes_is_refused_by_name():
    with pytest.raises(ConfigError, match="trade_count are of trades batches and imbalance"):
        features.FeatureSet(["trade_count@100", "imbalance"])
    with pytest.raises(ConfigError, match="did you mean 'signed_volume'"):
        features.FeatureSet(["signed_volum@100"])
    fs = features.FeatureSet(["vwap@100"])
    assert fs.stream == "trades"
    with pytest.raises(ConfigError, match="take trades batches"):
        fs.compute(quotes([1], [("v", "X")], [100.0], [0.0]))
