"""The threshold strategy: entry, confidence, holding period, decay, split invariance."""

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightdesk.core import schemas
from flightdesk.plugins.strategies.threshold import ThresholdStrategy
from tests.fixtures.factories import quotes

MS = 1_000_000


def make(**cfg):
    return ThresholdStrategy("thr", {**ThresholdStrategy.DEFAULTS, **cfg})


def rows(sig):
    if sig is None:
        return []
    return list(zip(sig.column("ts").to_pylist(), sig.column("symbol").to_pylist(),
                    sig.column("side").to_pylist(), strict=True))


def run(strategy, ts_ms, imbs, keys=None):
    keys = keys or [("sim", "X")] * len(ts_ms)
    return strategy.on_batch(quotes(np.asarray(ts_ms) * MS, keys, [100.0] * len(ts_ms), imbs))


def test_enters_above_threshold_with_confidence_and_size():
    s = make(imbalance_threshold=0.5, min_confidence=0.2, holding_period_ms=0)
    sig = run(s, [0, 1, 2, 3], [0.0, 0.55, 0.8, -0.9])
    assert rows(sig) == [(2 * MS, "X", "buy"), (3 * MS, "X", "sell")]  # 0.55: conf 0.1 < 0.2
    assert sig.column("confidence").to_pylist() == pytest.approx([0.6, 0.8])
    assert sig.column("qty").to_pylist() == [0.25, 0.25]  # fraction of max_position 1 (no ctx)
    assert sig.column("strategy").to_pylist() == ["thr", "thr"]


def test_holding_period_delays_a_reversal():
    s = make(imbalance_threshold=0.1, min_confidence=0.0, holding_period_ms=10)
    sig = run(s, [0, 5, 9, 10, 11], [0.9, -0.9, -0.9, -0.9, -0.9])
    assert [r[0] // MS for r in rows(sig)] == [0, 10]


def test_decay_goes_flat_without_support():
    s = make(imbalance_threshold=0.0, min_confidence=0.5, holding_period_ms=0,
             signal_decay_ms=10)
    # conf 1.0 at t=0, then no opinion: flat once exp(-t/10) < 0.5, i.e. after 6.93 ms
    sig = run(s, [0, 3, 6, 7, 8], [1.0, 0.1, 0.1, 0.1, 0.1])
    assert [(r[0] // MS, r[2]) for r in rows(sig)] == [(0, "buy"), (7, "flat")]
    assert sig.column("qty").to_pylist() == [0.25, 0.0]
    assert 0.4 < sig.column("confidence")[1].as_py() < 0.5


def test_feature_window_averages_the_imbalance():
    s = make(imbalance_threshold=0.5, min_confidence=0.0, holding_period_ms=0,
             feature_window_ms=3)
    # a lone spike of 0.9 averaged with 0.0 stays under 0.5 in a 3 ms window
    assert run(s, [0, 1, 2], [0.0, 0.9, 0.0]) is None
    sig = run(s, [3], [0.9])  # window (0, 3]: 0.9, 0.0, 0.9
    assert rows(sig)[0][0] == 3 * MS
    assert sig.column("strength")[0].as_py() == pytest.approx(0.6)


def test_instruments_are_independent():
    s = make(imbalance_threshold=0.1, min_confidence=0.0, holding_period_ms=100)
    sig = run(s, [0, 1, 2], [0.9, -0.9, -0.9], keys=[("sim", "X"), ("sim", "Y"), ("sim", "X")])
    assert rows(sig) == [(0, "X", "buy"), (MS, "Y", "sell")]


stream = st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["X", "Y"]),
                            st.floats(-1, 1)), min_size=1, max_size=80)


@settings(max_examples=150, deadline=None)
@given(stream=stream, cuts=st.lists(st.integers(1, 79), max_size=6),
       window=st.sampled_from([0.0, 3.0]))
def test_signals_do_not_depend_on_batch_split(stream, cuts, window):
    cfg = {"imbalance_threshold": 0.2, "min_confidence": 0.3, "holding_period_ms": 2,
           "signal_decay_ms": 4, "feature_window_ms": window}
    ts = np.cumsum([r[0] for r in stream]) * MS
    batch = quotes(ts, [("sim", r[1]) for r in stream], [100.0] * len(stream),
                   [r[2] for r in stream])
    whole = rows(make(**cfg).on_batch(batch))
    s = make(**cfg)
    edges = sorted({0, batch.num_rows, *(c for c in cuts if c < batch.num_rows)})
    split = [r for a, b in itertools.pairwise(edges)
             for r in rows(s.on_batch(batch.slice(a, b - a)))]
    assert whole == split


def test_signals_batch_matches_the_schema():
    sig = run(make(imbalance_threshold=0.1, min_confidence=0.0), [0], [0.9])
    assert isinstance(sig, pa.RecordBatch)
    assert sig.schema.equals(schemas.schema("signals"))


@settings(max_examples=100, deadline=None)
@given(stream=stream, window=st.sampled_from([0.0, 3.0]))
def test_one_row_batches_give_the_same_signals_row_for_row(stream, window):
    """Live, every flush is one row (the strategy's scalar path): every column of every
    signal equals what the whole stream as one batch gives."""
    cfg = {"imbalance_threshold": 0.2, "min_confidence": 0.3, "holding_period_ms": 2,
           "signal_decay_ms": 4, "feature_window_ms": window}
    ts = np.cumsum([r[0] for r in stream]) * MS
    batch = quotes(ts, [("sim", r[1]) for r in stream], [100.0] * len(stream),
                   [r[2] for r in stream])
    whole = make(**cfg).on_batch(batch)
    s = make(**cfg)
    alone = [b for i in range(batch.num_rows) if (b := s.on_batch(batch.slice(i, 1)))]
    if whole is None:
        assert alone == []
        return
    assert all(b.schema.equals(schemas.schema("signals")) for b in alone)
    assert pa.Table.from_batches(alone).to_pylist() == whole.to_pylist()


@pytest.mark.parametrize(("strategy", "key", "value"), [
    ("threshold", "imbalance_threshold", -2.0),
    ("threshold", "imbalance_threshold", 1.0),
    ("threshold", "min_confidence", 1.5),
    ("threshold", "signal_decay_ms", -1.0),
    ("threshold", "order_size_fraction", float("inf")),
    ("threshold", "feature_window_ms", float("nan")),
    ("flow", "flow_threshold", -0.1),
    ("flow", "order_size_fraction", 0.0),
    ("onnx", "min_confidence", -1.0),
])
def test_an_out_of_range_strategy_number_is_refused_naming_its_key(strategy, key, value):
    """Fail closed: a strategy is never built on a parameter it cannot mean."""
    from flightdesk.core.errors import ConfigError
    from flightdesk.plugins.strategies.flow import FlowStrategy
    from flightdesk.plugins.strategies.onnx import OnnxStrategy

    cls = {"threshold": ThresholdStrategy, "flow": FlowStrategy, "onnx": OnnxStrategy}[strategy]
    model = (Path(__file__).resolve().parents[1] / "plugins_examples" /
             "flightdesk-onnx-imbalance" / "flightdesk_onnx_imbalance" / "model.onnx")
    config = {**cls.DEFAULTS, **({"model_path": str(model)} if strategy == "onnx" else {})}
    cls("s", config)  # the defaults are in range
    with pytest.raises(ConfigError, match=rf"strategies\.s\.{key} must be a finite number"):
        cls("s", {**config, key: value})
