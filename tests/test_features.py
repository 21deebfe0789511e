"""Features: formulas on hand-checked numbers, and batch-split invariance (hypothesis)."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightdesk.core.errors import ConfigError
from flightdesk.sdk import features
from tests.fixtures.factories import quotes

NAMES = ["mid", "imbalance", "volatility@5", "momentum@5", "imbalance_mean@5",
         "imbalance_mean@1", "count@3"]


def test_stateless_formulas():
    bp, bq = np.array([99.0, 10.0]), np.array([3.0, 1.0])
    ap, aq = np.array([101.0, 12.0]), np.array([1.0, 1.0])
    assert features.mid(bp, ap).tolist() == [100.0, 11.0]
    assert features.microprice(bp, bq, ap, aq)[0] == pytest.approx((99 * 1 + 101 * 3) / 4)
    assert features.spread_bps(bp, ap)[0] == pytest.approx(200.0)
    assert features.imbalance(bq, aq).tolist() == [0.5, 0.0]
    levels_b, levels_a = np.array([[1.0, 2.0, 100.0]]), np.array([[1.0, 1.0, 0.0]])
    assert features.imbalance(levels_b, levels_a, levels=2)[0] == pytest.approx(1 / 5)
    assert features.depth_ratio(levels_b, levels_a, levels=2)[0] == pytest.approx(3 / 5)
    assert np.isnan(features.imbalance(np.zeros(1), np.zeros(1))[0])


def test_windows_by_hand():
    ms = 1_000_000
    fs = features.FeatureSet(["imbalance_mean@2", "momentum@2", "volatility@2", "count@2"])
    b = quotes([0, 1 * ms, 2 * ms, 5 * ms], [("v", "X")] * 4, [100.0, 101.0, 102.0, 103.0],
               [1.0, 0.0, -1.0, 0.5])
    m = fs.compute(b)
    # window (t-2ms, t]: at 2ms it holds rows at 1ms and 2ms; at 5ms only itself
    assert m[:, 0].tolist() == [1.0, 0.5, -0.5, 0.5]
    assert m[:, 3].tolist() == [1.0, 2.0, 2.0, 1.0]
    assert m[2, 1] == pytest.approx(np.log(102 / 101) * 1e4)
    assert m[3, 1] == 0.0
    r1, r2 = np.log(101 / 100), np.log(102 / 101)
    assert m[2, 2] == pytest.approx(np.sqrt((r1**2 + r2**2) / 2) * 1e4)


def test_instruments_are_kept_apart():
    ms = 1_000_000
    fs = features.FeatureSet(["imbalance_mean@10"])
    b = quotes([0, ms, 2 * ms, 3 * ms], [("a", "X"), ("b", "X"), ("a", "X"), ("a", "Y")],
               [1.0] * 4, [1.0, -1.0, 0.0, 0.25])
    assert fs.compute(b)[:, 0].tolist() == [1.0, -1.0, 0.5, 0.25]


def test_unknown_feature_names_the_nearest():
    with pytest.raises(ConfigError, match="unknown feature 'volatilty'.*'volatility'"):
        features.FeatureSet(["volatilty@100"])
    with pytest.raises(ConfigError, match="takes no window"):
        features.FeatureSet(["mid@100"])


rows = st.lists(st.tuples(st.integers(0, 3_000_000), st.sampled_from([("a", "X"), ("b", "Y")]),
                          st.floats(90, 110), st.floats(-1, 1)), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(rows=rows, cuts=st.lists(st.integers(1, 59), max_size=8))
def test_results_do_not_depend_on_how_the_stream_is_split(rows, cuts):
    ts = np.cumsum([r[0] for r in rows])
    batch = quotes(ts, [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])
    whole = features.FeatureSet(NAMES).compute(batch)
    split = features.FeatureSet(NAMES)
    edges = sorted({0, batch.num_rows, *(c for c in cuts if c < batch.num_rows)})
    parts = [split.compute(batch.slice(a, b - a)) for a, b in itertools.pairwise(edges)]
    assert np.array_equal(whole, np.concatenate(parts), equal_nan=True)
