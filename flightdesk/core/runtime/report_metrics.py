"""Sharpe and Sortino of a backtest, computed so that a reader can interpret them.

The equity curve is sampled on the data clock whenever the engine flushes, so its points
are irregular (100 ms apart at best). Ratios of such raw changes, annualized as if each
were a second, gave four-digit Sharpes for six-minute runs. Instead:

* **Fixed interval.** The PnL curve is read at ``t0 + k * interval`` (the last sample at or
  before each instant) and the ratios use the PnL change over each interval. The interval
  is the finest of 1 min, 5 min, 15 min, 1 h, 4 h, 1 d that gives at most
  :data:`MAX_PERIODS` intervals over the run (1 min for runs up to about a week).
* **Annualized for a 24/7 market.** Crypto trades every day, so a year is 365 days of
  ``86,400 / interval_s`` periods: ``ratio_per_period * sqrt(periods_per_year)``
  (525,600 one-minute periods a year). No risk-free rate is subtracted; the standard
  deviation is the sample one (``ddof=1``).
* **PnL changes, not percentage returns.** A backtest has no capital base, so the
  ratios are of PnL changes in the quote currency; that is exactly the Sharpe of returns
  on any fixed (non-compounding) capital, since a constant scale cancels.
* **Sortino** divides the mean change by the downside deviation
  ``sqrt(mean(min(change, 0) ** 2))`` over all intervals (target 0).
* **Too short is "n/a".** With fewer than :data:`MIN_PERIODS` intervals (30 minutes at
  1 min) the ratios are ``None`` (``null`` in summary.json, "n/a" in the report); so
  are ratios whose denominator is 0 (a flat curve, or a Sortino with no losing interval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SECONDS_PER_YEAR = 365 * 86_400
#: the candidate intervals, in seconds: the finest that fits MAX_PERIODS is used
INTERVALS_S: tuple[int, ...] = (60, 300, 900, 3_600, 14_400, 86_400)
MIN_PERIODS = 30
MAX_PERIODS = 10_080  # a week of minutes

CONVENTION = (
    "Sharpe and Sortino use the PnL change over fixed intervals (the finest of 1 min, "
    f"5 min, 15 min, 1 h, 4 h, 1 d giving at most {MAX_PERIODS:,} intervals), annualized "
    "for a 24/7 "
    "market: mean / sample standard deviation per interval x sqrt(365 x 86,400 / interval "
    "seconds); no risk-free rate. "
    "Sortino's denominator is the downside deviation sqrt(mean(min(change, 0)^2)). "
    f"They are n/a with fewer than {MIN_PERIODS} intervals."
)


@dataclass(frozen=True, slots=True)
class RiskRatios:
    """The annualized ratios and how they were measured."""

    sharpe: float | None
    sortino: float | None
    interval_s: int
    periods: int

    @property
    def periods_per_year(self) -> float:
        return SECONDS_PER_YEAR / self.interval_s


def choose_interval(span_s: float) -> int:
    """The finest candidate interval giving at most MAX_PERIODS intervals over ``span_s``."""
    return next((i for i in INTERVALS_S if span_s / i <= MAX_PERIODS), INTERVALS_S[-1])


def resample(ts_ns: np.ndarray, values: np.ndarray, interval_ns: int) -> np.ndarray:
    """``values`` read at ``ts[0] + k * interval`` for every such instant up to ``ts[-1]``:
    the last sample at or before it (the curve is a step function between samples)."""
    if ts_ns.size == 0:
        return values[:0]
    grid = np.arange(ts_ns[0], ts_ns[-1] + 1, interval_ns, dtype=np.int64)
    return values[np.searchsorted(ts_ns, grid, side="right") - 1]


def risk_ratios(ts_ns: object, equity: object, interval_s: int | None = None) -> RiskRatios:
    """Annualized Sharpe and Sortino of an equity (PnL) curve; see the module docstring."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    eq = np.asarray(equity, dtype=np.float64)
    span_s = float(ts[-1] - ts[0]) / 1e9 if ts.size > 1 else 0.0
    interval = interval_s or choose_interval(span_s)
    changes = np.diff(resample(ts, eq, interval * 1_000_000_000))
    changes = changes[np.isfinite(changes)]
    if changes.size < MIN_PERIODS:
        return RiskRatios(None, None, interval, int(changes.size))
    scale = math.sqrt(SECONDS_PER_YEAR / interval)
    mean = float(changes.mean())
    sd = float(changes.std(ddof=1))
    downside = math.sqrt(float(np.mean(np.minimum(changes, 0.0) ** 2)))
    return RiskRatios(_ratio(mean, sd, scale), _ratio(mean, downside, scale), interval,
                      int(changes.size))


def _ratio(mean: float, dev: float, scale: float) -> float | None:
    # a deviation at float noise of the mean is a flat curve, not an infinite ratio
    if dev <= 1e-12 * max(1.0, abs(mean)):
        return None
    return mean / dev * scale
