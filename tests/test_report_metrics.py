"""Sharpe and Sortino on constructed equity curves whose answer is known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flightdesk.core.runtime.report_metrics import (
    MAX_PERIODS,
    MIN_PERIODS,
    choose_interval,
    resample,
    risk_ratios,
)

T0 = 1_723_161_250_000_000_000
MINUTE = 60_000_000_000
MINUTES_PER_YEAR = 365 * 24 * 60


def minute_curve(changes: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """An equity curve sampled once a minute with these per-minute PnL changes."""
    ts = T0 + np.arange(len(changes) + 1, dtype=np.int64) * MINUTE
    return ts, np.concatenate(([0.0], np.cumsum(changes)))


def test_sharpe_and_sortino_of_a_known_minute_curve():
    # +3, -1 alternating for an hour: mean 1; sample sd 2 * sqrt(60/59); downside
    # deviation sqrt(mean(min(c, 0)^2)) = sqrt(1/2)
    ts, eq = minute_curve([3.0, -1.0] * 30)
    r = risk_ratios(ts, eq)
    assert (r.interval_s, r.periods) == (60, 60)
    assert r.sharpe == pytest.approx(1 / (2 * math.sqrt(60 / 59)) * math.sqrt(MINUTES_PER_YEAR))
    assert r.sortino == pytest.approx(math.sqrt(2) * math.sqrt(MINUTES_PER_YEAR))
    assert r.periods_per_year == MINUTES_PER_YEAR


def test_a_losing_curve_has_negative_ratios():
    ts, eq = minute_curve([-3.0, 1.0] * 30)
    r = risk_ratios(ts, eq)
    assert r.sharpe is not None and r.sortino is not None
    assert r.sharpe < 0 and r.sortino < 0


def test_the_ratios_do_not_depend_on_how_densely_the_curve_was_sampled():
    """The desk samples equity at irregular flushes; a step curve sampled every 100 ms with
    jitter must give the same answer as the same curve read once a minute."""
    rng = np.random.default_rng(7)
    changes = rng.normal(0.2, 1.0, 90)
    ts, eq = minute_curve(list(changes))
    dense_ts = np.sort(np.concatenate([ts, rng.integers(ts[0], ts[-1], 50_000)]))
    dense_eq = eq[np.searchsorted(ts, dense_ts, side="right") - 1]  # the same step curve
    a, b = risk_ratios(ts, eq), risk_ratios(dense_ts, dense_eq)
    assert a.sharpe == pytest.approx(b.sharpe) and a.sortino == pytest.approx(b.sortino)
    assert a.periods == b.periods == 90


def test_resample_reads_the_last_sample_at_or_before_each_instant():
    ts = np.array([0, 5, 12, 30], dtype=np.int64)
    values = np.array([1.0, 2.0, 3.0, 4.0])
    assert resample(ts, values, 10).tolist() == [1.0, 2.0, 3.0, 4.0]  # t = 0, 10, 20, 30


def test_a_six_minute_run_is_na_not_a_four_digit_sharpe():
    ts, eq = minute_curve([-1.0, 0.5] * 3)  # what gave -3,499 before
    r = risk_ratios(ts, eq)
    assert r.sharpe is None and r.sortino is None and r.periods == 6 < MIN_PERIODS


def test_flat_curves_and_curves_without_losses_have_no_ratio():
    ts, eq = minute_curve([0.0] * 60)
    assert risk_ratios(ts, eq).sharpe is None
    ts, eq = minute_curve([1.0, 2.0] * 30)  # never loses: Sortino's denominator is 0
    r = risk_ratios(ts, eq)
    assert r.sharpe is not None and r.sharpe > 0 and r.sortino is None


def test_no_or_one_sample_is_na():
    assert risk_ratios([], []).sharpe is None
    assert risk_ratios([T0], [0.0]).sharpe is None


def test_long_runs_use_coarser_intervals():
    assert choose_interval(3_600) == 60
    assert choose_interval(MAX_PERIODS * 60) == 60  # a week of minutes
    assert choose_interval(30 * 86_400) == 300
    assert choose_interval(10 * 365 * 86_400) == 86_400
    day = 86_400_000_000_000
    ts = T0 + np.arange(0, 40 * day + 1, MINUTE, dtype=np.int64)  # 40 days at 1 min
    eq = np.sin(np.arange(ts.size) / 100.0)
    r = risk_ratios(ts, eq)
    assert r.interval_s == 900 and r.periods == 40 * 96 and r.sharpe is not None
