"""The buffered rolling window and the one-instrument check against plain references.

:class:`RollingWindow` keeps each instrument's tail in reused buffers and sums on the
assumption that every value is finite (redoing a batch that proves otherwise); the
reference below is the straightforward concatenate-everything version it replaced. Both
must give bitwise the same numbers, on any split of the stream, with NaN/inf values and
late rows."""

import itertools

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from flightdesk.sdk import features
from flightdesk.sdk.strategy import signals_batch


class ReferenceWindow:
    """Every row kept, sums recomputed from the first row (NaN -> 0, as nan_to_num)."""

    def __init__(self, window_ms: float) -> None:
        self.window_ns = int(window_ms * 1_000_000)
        self.ts = np.empty(0, np.int64)
        self.val = np.empty(0)
        self.logmid = np.empty(0)

    def update(self, ts, value, mid_px):
        last = self.ts[-1] if self.ts.size else np.iinfo(np.int64).min
        ts = np.maximum.accumulate(np.maximum(np.asarray(ts, np.int64), last))
        first = self.ts.size
        self.ts = np.concatenate((self.ts, ts))
        self.val = np.concatenate((self.val, np.nan_to_num(value, nan=0.0)))
        self.logmid = np.concatenate((self.logmid, np.log(mid_px)))
        ret = np.diff(self.logmid, prepend=np.nan)
        ret[~np.isfinite(ret)] = 0.0
        csum = np.add.accumulate(np.concatenate(([0.0], self.val)))
        csq = np.add.accumulate(np.concatenate(([0.0], ret * ret)))
        pos = np.arange(first, self.ts.size)
        lo = np.searchsorted(self.ts, ts - self.window_ns, side="right")
        count = (pos - lo + 1).astype(np.float64)
        mean = (csum[pos + 1] - csum[lo]) / count
        vol = np.sqrt(np.maximum(csq[pos + 1] - csq[lo], 0.0) / count) * 1e4
        return mean, vol, (self.logmid[pos] - self.logmid[lo]) * 1e4, count


values = st.one_of(st.floats(-1, 1), st.sampled_from([np.nan, np.inf, -np.inf]))
rows = st.lists(st.tuples(st.integers(-2_000_000, 3_000_000), values,
                          st.one_of(st.floats(90, 110), st.sampled_from([0.0, np.nan]))),
                min_size=1, max_size=80)


@settings(max_examples=150, deadline=None)
@given(rows=rows, cuts=st.lists(st.integers(1, 79), max_size=8), window=st.sampled_from([1, 5]))
def test_buffered_window_matches_the_reference_bitwise(rows, cuts, window):
    ts = np.cumsum([r[0] for r in rows])  # negative steps: late rows
    val = np.array([r[1] for r in rows])
    mid = np.array([r[2] for r in rows])
    edges = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    fast, mean_only, ref = (features.RollingWindow(window), features.RollingWindow(window, False),
                            ReferenceWindow(window))
    with np.errstate(all="ignore"):
        for a, b in itertools.pairwise(edges):
            got = fast.update(("v", "X"), ts[a:b], val[a:b], mid[a:b])
            want = ref.update(ts[a:b], val[a:b], mid[a:b])
            mean = mean_only.update(("v", "X"), ts[a:b], val[a:b]).mean
            for g, w in zip((got.mean, got.volatility, got.momentum, got.count), want,
                            strict=True):
                assert g.tobytes() == w.tobytes()
            assert mean.tobytes() == want[0].tobytes()


def test_only_value_reads_string_buffers():
    cases = {("ab", "ab", "ab"): "ab", ("ab", "ab", "a"): None, ("a", "bab"): None,
             ("ab", "ba"): None, ("", ""): "", ("é", "é"): "é", ("x",): "x"}
    for vals, want in cases.items():
        sliced = pa.array(["zz", *vals]).slice(1)  # a non-zero offset, as batch slices have
        assert features._only_value(sliced) == want, vals
    assert features._only_value(pa.array(["a", None])) is None
    assert features._only_value(pa.array(["a", "a"], pa.large_string())) == "a"


def test_broadcast_names_equal_spelled_out_names():
    n = 5000  # longer than the cached arrays start
    ts = np.arange(n)
    short = signals_batch(ts[:3], "sim", "BTCUSDT", ["buy", "sell", "flat"], strategy="s")
    long = signals_batch(ts, "sim", "BTCUSDT", ["buy"] * n, strategy="s")
    short.validate(full=True)
    long.validate(full=True)
    assert short.column("venue").to_pylist() == ["sim"] * 3
    assert long.column("symbol").to_pylist() == ["BTCUSDT"] * n
    assert long.column("strategy").to_pylist() == ["s"] * n
