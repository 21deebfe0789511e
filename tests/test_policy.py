"""SignalPolicy: the vectorized change-to-change version against a plain run-by-run one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightdesk.sdk import policy as policy_module
from flightdesk.sdk.policy import Decisions, Key, SignalPolicy, _Held

MS = 1_000_000
PATHS = {"row by row": 10**9, "lookup tables": 0}  # policy_module.SMALL_BATCH for each path


def _run(path: str, f, *args):
    """``f(*args)`` with the policy forced onto one of its two paths."""
    saved = policy_module.SMALL_BATCH
    policy_module.SMALL_BATCH = PATHS[path]
    try:
        return f(*args)
    finally:
        policy_module.SMALL_BATCH = saved


class ReferencePolicy:
    """The first, run-by-run implementation: obviously right, slower."""

    def __init__(self, min_confidence: float, holding_period_ms: float,
                 signal_decay_ms: float) -> None:
        self.min_confidence = float(min_confidence)
        self.hold_ns = float(holding_period_ms) * 1e6
        self.decay_ns = float(signal_decay_ms) * 1e6
        self.held: dict[Key, _Held] = {}

    def side(self, key: Key) -> int:
        held = self.held.get(key)
        return held.side if held is not None else 0

    def wanted(self, score: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """-1/0/+1 per row: the sign of ``score`` where confidence reaches the minimum."""
        ok = np.isfinite(score) & (confidence >= self.min_confidence) & (confidence > 0)
        return np.where(ok, np.sign(np.nan_to_num(score)), 0.0).astype(np.int8)

    def decide(self, key: Key, ts: np.ndarray, want: np.ndarray, confidence: np.ndarray
               ) -> Decisions:
        held = self.held.setdefault(key, _Held())
        rows: list[int] = []
        sides: list[int] = []
        confs: list[float] = []
        n = want.size
        bounds = np.flatnonzero(want[1:] != want[:-1]) + 1
        starts = np.concatenate(([0], bounds)).tolist()
        ends = np.concatenate((bounds, [n])).tolist()
        for s, e in zip(starts, ends, strict=True):
            v = int(want[s])
            if v != held.side:
                i = self._change_at(held, v, ts, s, e)
                if i >= e:
                    continue
                c = float(confidence[i]) if v else self._decayed(held, float(ts[i]))
                rows.append(i)
                sides.append(v)
                confs.append(c)
                held.side, held.since = v, float(ts[i])
            if v and v == held.side:
                held.support_ts, held.support_conf = float(ts[e - 1]), float(confidence[e - 1])
        return Decisions(np.asarray(rows, np.int64), np.asarray(sides, np.int8),
                         np.asarray(confs, np.float64))

    def _change_at(self, held: _Held, v: int, ts: np.ndarray, s: int, e: int) -> int:
        earliest = held.since + self.hold_ns
        if v == 0:
            earliest = max(earliest, self._flat_time(held))
        if earliest == math.inf:
            return e
        return s + int(np.searchsorted(ts[s:e], earliest, side="left"))

    def _flat_time(self, held: _Held) -> float:
        if self.decay_ns <= 0 or self.min_confidence <= 0 or held.support_conf <= 0:
            return math.inf
        ratio = held.support_conf / self.min_confidence
        return held.support_ts + self.decay_ns * math.log(max(ratio, 1.0))

    def _decayed(self, held: _Held, t: float) -> float:
        if self.decay_ns <= 0:
            return held.support_conf
        return held.support_conf * math.exp(-(t - held.support_ts) / self.decay_ns)



rows = st.lists(st.tuples(st.integers(0, 5), st.sampled_from([-1, 0, 0, 1]),
                          st.floats(0.0, 1.0)), min_size=1, max_size=120)


@settings(max_examples=300, deadline=None)
@given(rows=rows, hold=st.sampled_from([0.0, 2.0, 7.0]), decay=st.sampled_from([0.0, 1.0, 5.0]),
       min_conf=st.sampled_from([0.0, 0.3]), cut=st.integers(0, 120))
def test_vectorized_policy_matches_the_reference(rows, hold, decay, min_conf, cut):
    for path in PATHS:
        _run(path, _matches_the_reference, rows, hold, decay, min_conf, cut)


def _matches_the_reference(rows, hold, decay, min_conf, cut):
    ts = np.cumsum([r[0] for r in rows]).astype(np.int64) * MS
    want = np.array([r[1] for r in rows], np.int8)
    conf = np.array([r[2] if r[1] else 0.0 for r in rows])
    ref = ReferencePolicy(min_conf, hold, decay)
    new = SignalPolicy(min_conf, hold, decay)
    got = []
    for a, b in ((0, min(cut, len(rows))), (min(cut, len(rows)), len(rows))):
        if b > a:
            expected = ref.decide(("v", "s"), ts[a:b], want[a:b], conf[a:b])
            d = new.decide(("v", "s"), ts[a:b], want[a:b], conf[a:b])
            got.append((d, expected))
    for d, expected in got:
        assert d.rows.tolist() == expected.rows.tolist()
        assert d.sides.tolist() == expected.sides.tolist()
        assert np.allclose(d.confidence, expected.confidence)


@pytest.mark.parametrize("path", PATHS)
def test_decay_and_hold_by_hand(path):
    _run(path, _decay_and_hold_by_hand)


def _decay_and_hold_by_hand():
    p = SignalPolicy(0.5, 2.0, 10.0)
    ts = np.array([0, 1, 3, 5, 12, 20], np.int64) * MS
    d = p.decide(("v", "s"), ts, np.array([1, -1, -1, 0, 0, 0], np.int8),
                 np.array([1.0, 0.9, 0.9, 0, 0, 0]))
    # reverse once the 2 ms hold is over (t=3); flat once 0.9*exp(-dt/10) < 0.5 (dt > 5.9 ms)
    assert (d.rows.tolist(), d.sides.tolist()) == ([0, 2, 4], [1, -1, 0])
    assert isinstance(d, Decisions) and math.isclose(d.confidence[2], 0.9 * math.exp(-0.9))
    assert p.side(("v", "s")) == 0


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 5), st.sampled_from([-1.0, 0.0, 0.5, math.nan]),
                               st.floats(0.0, 1.0)), min_size=1, max_size=80),
       hold=st.sampled_from([0.0, 2.0, 7.0]), decay=st.sampled_from([0.0, 1.0, 5.0]),
       min_conf=st.sampled_from([0.0, 0.3]))
def test_one_row_at_a_time_matches_the_batch(rows, hold, decay, min_conf):
    """A live desk flushes every row alone (the scalar path); a backtest flushes many."""
    for path in PATHS:
        _run(path, _one_row_matches_the_batch, rows, hold, decay, min_conf)


def _one_row_matches_the_batch(rows, hold, decay, min_conf):
    ts = (np.cumsum([r[0] for r in rows]).astype(np.int64) + 1_700_000_000_000) * MS
    score = np.array([r[1] for r in rows])
    conf = np.array([r[2] for r in rows])
    batch = SignalPolicy(min_conf, hold, decay)
    d = batch.decide(("v", "s"), ts, batch.wanted(score, conf), conf)
    alone = SignalPolicy(min_conf, hold, decay)
    got = [(i, alone.decide_one(("v", "s"), int(ts[i]), float(score[i]), float(conf[i])))
           for i in range(len(rows))]
    got = [(i, one) for i, one in got if one is not None]
    assert [i for i, _ in got] == d.rows.tolist()
    assert [one[0] for _, one in got] == d.sides.tolist()
    assert [one[1] for _, one in got] == d.confidence.tolist()
    assert alone.held == batch.held
