"""Market features, vectorized over batches and correct across batch boundaries.

Stateless helpers take numpy arrays and return arrays: :func:`mid`, :func:`microprice`,
:func:`spread_bps`, :func:`imbalance` (top of book, or summed over the top N levels of 2-D
inputs) and :func:`depth_ratio`.

Stateful features are computed per instrument over a time window in milliseconds by
:class:`RollingWindow`: ``mean`` of a column, ``volatility`` (root mean square of the mid's
log returns, in bps) and ``momentum`` (log change of the mid since the oldest sample still in
the window, in bps). Each instrument carries the tail of its window between batches, and
running sums continue from where the last batch stopped (``np.add.accumulate`` adds strictly
in order), so the results are bitwise identical however the stream is split into batches.
A window holds the samples with ``ts`` in ``(t - window, t]``; ``ts`` is made non-decreasing
per instrument (a late row counts at the latest time seen).

:class:`FeatureSet` turns a ``quotes`` batch into a float matrix of named features, e.g.
``["imbalance", "spread_bps", "volatility@1000", "momentum@500"]`` (``name@window_ms``).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flightdesk.core.errors import ConfigError
from flightdesk.sdk.tradeflow import TRADE_FEATURES, RollingSums, trade_flow, trade_values

Key = tuple[str, str]


# -- stateless ------------------------------------------------------------------------------
def mid(bid_px: np.ndarray, ask_px: np.ndarray) -> np.ndarray:
    """(bid + ask) / 2."""
    return (bid_px + ask_px) * 0.5


def microprice(bid_px: np.ndarray, bid_qty: np.ndarray, ask_px: np.ndarray,
               ask_qty: np.ndarray) -> np.ndarray:
    """Size-weighted mid at the touch: leans toward the side with less size."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (bid_px * ask_qty + ask_px * bid_qty) / (bid_qty + ask_qty)


def spread_bps(bid_px: np.ndarray, ask_px: np.ndarray) -> np.ndarray:
    """(ask - bid) / mid in basis points."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ask_px - bid_px) / mid(bid_px, ask_px) * 1e4


def imbalance(bid_qty: np.ndarray, ask_qty: np.ndarray, levels: int | None = None
              ) -> np.ndarray:
    """(bid - ask) / (bid + ask) in [-1, 1]; 2-D inputs (rows x levels) sum the top ``levels``."""
    b, a = _depth(bid_qty, levels), _depth(ask_qty, levels)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (b - a) / (b + a)


def depth_ratio(bid_depth: np.ndarray, ask_depth: np.ndarray, levels: int | None = None
                ) -> np.ndarray:
    """Bid depth / (bid + ask depth) in [0, 1]; 2-D inputs sum the top ``levels``."""
    b, a = _depth(bid_depth, levels), _depth(ask_depth, levels)
    with np.errstate(invalid="ignore", divide="ignore"):
        return b / (b + a)


def _depth(qty: np.ndarray, levels: int | None) -> np.ndarray:
    q = np.asarray(qty, dtype=np.float64)
    if q.ndim == 1:
        return q
    return q[:, :levels].sum(axis=1) if levels else q.sum(axis=1)


# -- per-instrument grouping ------------------------------------------------------------------
def instrument_groups(batch: pa.RecordBatch) -> list[tuple[Key, np.ndarray]]:
    """``[((venue, symbol), row indices), ...]``, one entry per instrument in the batch."""
    if batch.num_rows <= 16:  # small batches: plain Python beats two dictionary encodes
        groups: dict[Key, list[int]] = {}
        for i, key in enumerate(zip(batch.column("venue").to_pylist(),
                                    batch.column("symbol").to_pylist(), strict=True)):
            groups.setdefault(key, []).append(i)
        return [(k, np.asarray(v, dtype=np.int64)) for k, v in groups.items()]
    if _all_same(batch.column("venue")) and _all_same(batch.column("symbol")):
        key = (batch.column("venue")[0].as_py(), batch.column("symbol")[0].as_py())
        return [(key, np.arange(batch.num_rows))]  # one comparison pass, no hashing
    venue = pc.dictionary_encode(batch.column("venue"))
    symbol = pc.dictionary_encode(batch.column("symbol"))
    vd, sd = venue.dictionary.to_pylist(), symbol.dictionary.to_pylist()
    if len(vd) == 1 and len(sd) == 1:
        return [((vd[0], sd[0]), np.arange(batch.num_rows))]
    codes = venue.indices.to_numpy() * len(sd) + symbol.indices.to_numpy()
    out = []
    for code in np.flatnonzero(np.bincount(codes)).tolist():
        v, s = divmod(code, len(sd))
        out.append(((vd[v], sd[s]), np.flatnonzero(codes == code)))
    return out


def _all_same(col: pa.Array) -> bool:
    """Whether every value of ``col`` equals its first (False with any null)."""
    return bool(pc.all(pc.equal(col, col[0]), skip_nulls=False).as_py())


# -- rolling windows ------------------------------------------------------------------------
@dataclass
class _Tail:
    """What one instrument carries between batches."""

    ts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    csum: np.ndarray = field(default_factory=lambda: np.zeros(1))  # len(ts) + 1, leading base
    csq: np.ndarray = field(default_factory=lambda: np.zeros(1))
    logmid: np.ndarray = field(default_factory=lambda: np.empty(0))
    last_ts: int = np.iinfo(np.int64).min
    last_logmid: float = np.nan


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Per-row window results for one instrument's new rows."""

    mean: np.ndarray
    volatility: np.ndarray
    momentum: np.ndarray
    count: np.ndarray


class RollingWindow:
    """Rolling mean of one value plus mid volatility and momentum, per instrument."""

    def __init__(self, window_ms: float, mid_stats: bool = True) -> None:
        if not window_ms > 0:
            raise ConfigError(f"a rolling window must be > 0 ms, got {window_ms!r}")
        self.window_ns = int(window_ms * 1_000_000)
        self.mid_stats = mid_stats  # False: only the mean (no log returns of the mid)
        self.tails: dict[Key, _Tail] = {}

    def update(self, key: Key, ts: np.ndarray, value: np.ndarray,
               mid_px: np.ndarray | None = None) -> WindowStats:
        """Window stats at each of ``key``'s new rows (``ts`` in ns). With
        ``mid_stats=False`` volatility and momentum are NaN and ``mid_px`` is not needed."""
        tail = self.tails.get(key) or _Tail()
        ts = np.maximum.accumulate(np.maximum(np.asarray(ts, np.int64), tail.last_ts))
        val = np.nan_to_num(np.asarray(value, np.float64), nan=0.0)
        all_ts = np.concatenate((tail.ts, ts))
        csum = np.concatenate((tail.csum, _accumulate(tail.csum[-1], val)))
        pos = np.arange(tail.ts.size, all_ts.size)
        lo = np.searchsorted(all_ts, ts - self.window_ns, side="right")
        count = (pos - lo + 1).astype(np.float64)
        mean = (csum[pos + 1] - csum[lo]) / count
        if not self.mid_stats:
            nan = np.full(ts.size, np.nan)
            self.tails[key] = self._keep(tail, all_ts, csum, tail.csq, tail.logmid)
            return WindowStats(mean, nan, nan, count)
        if mid_px is None:
            raise ValueError("RollingWindow(mid_stats=True).update needs mid_px")
        logmid = np.log(np.asarray(mid_px, np.float64))
        ret = logmid - np.concatenate(([tail.last_logmid], logmid[:-1]))
        ret[~np.isfinite(ret)] = 0.0
        csq = np.concatenate((tail.csq, _accumulate(tail.csq[-1], ret * ret)))
        all_log = np.concatenate((tail.logmid, logmid))
        vol = np.sqrt(np.maximum(csq[pos + 1] - csq[lo], 0.0) / count) * 1e4
        self.tails[key] = self._keep(tail, all_ts, csum, csq, all_log)
        return WindowStats(mean, vol, (all_log[pos] - all_log[lo]) * 1e4, count)

    def _keep(self, tail: _Tail, ts: np.ndarray, csum: np.ndarray, csq: np.ndarray,
              logmid: np.ndarray) -> _Tail:
        last = int(ts[-1])
        start = int(np.searchsorted(ts, last - self.window_ns, side="right"))
        if not self.mid_stats:
            return _Tail(ts[start:].copy(), csum[start:].copy(), tail.csq, tail.logmid, last)
        return _Tail(ts[start:].copy(), csum[start:].copy(), csq[start:].copy(),
                     logmid[start:].copy(), last, float(logmid[-1]))


def _accumulate(start: float, values: np.ndarray) -> np.ndarray:
    """Running sums continuing from ``start``, added strictly in order."""
    return np.add.accumulate(np.concatenate(([start], values)))[1:]


# -- named features of quotes batches ---------------------------------------------------------
_COLUMN_FEATURES = ("mid", "microprice", "spread_bps", "imbalance", "depth_ratio", "bid_px",
                    "ask_px", "bid_qty", "ask_qty")
_WINDOW_FEATURES = ("volatility", "momentum", "imbalance_mean", "count")
QUOTE_FEATURES = _COLUMN_FEATURES + _WINDOW_FEATURES
FEATURE_NAMES = QUOTE_FEATURES + TRADE_FEATURES


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    window_ms: float = 0.0

    @classmethod
    def parse(cls, text: str, default_window_ms: float) -> FeatureSpec:
        name, _, window = text.partition("@")
        if name not in FEATURE_NAMES:
            close = difflib.get_close_matches(name, FEATURE_NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown feature {name!r}{hint}; features are "
                              f"{', '.join(FEATURE_NAMES)} (windowed ones take @ms)")
        if name in _COLUMN_FEATURES:
            if window:
                raise ConfigError(f"feature {name!r} takes no window (got {text!r})")
            return cls(name)
        try:
            ms = float(window) if window else float(default_window_ms)
        except ValueError as exc:
            raise ConfigError(f"feature {text!r}: window must be a number of ms") from exc
        return cls(name, ms)


class FeatureSet:
    """Named features as a float matrix, with per-instrument state: of ``quotes`` batches,
    or (trade-flow names, :mod:`flightdesk.sdk.tradeflow`) of ``trades`` batches."""

    def __init__(self, names: Sequence[str], default_window_ms: float = 1000.0) -> None:
        self.specs = [FeatureSpec.parse(str(n), default_window_ms) for n in names]
        self.names = [str(n) for n in names]
        flow = [s.name for s in self.specs if s.name in TRADE_FEATURES]
        if flow and len(flow) < len(self.specs):
            quote = [s.name for s in self.specs if s.name not in TRADE_FEATURES]
            raise ConfigError(f"features {', '.join(flow)} are of trades batches and "
                              f"{', '.join(quote)} of quotes batches: use one FeatureSet "
                              "per stream")
        #: the stream whose batches ``compute`` takes
        self.stream = "trades" if flow else "quotes"
        windows = sorted({s.window_ms for s in self.specs if s.name in _WINDOW_FEATURES})
        self.windows = {w: RollingWindow(w) for w in windows}
        self.sums = {w: RollingSums(w) for w in sorted({s.window_ms for s in self.specs
                                                        if s.name in TRADE_FEATURES})}

    def compute(self, batch: pa.RecordBatch, dtype: type = np.float64,
                groups: list[tuple[Key, np.ndarray]] | None = None) -> np.ndarray:
        """``(rows, features)`` matrix in the order of ``names`` (``groups``: the batch's
        :func:`instrument_groups`, when the caller has them already)."""
        if self.stream == "trades":
            return self._trade_flow(batch, groups).astype(dtype, copy=False)
        out = np.empty((batch.num_rows, len(self.specs)), dtype=dtype)
        stats = self._window_stats(batch, groups) if self.windows else {}
        for j, spec in enumerate(self.specs):
            if spec.name in _COLUMN_FEATURES:
                out[:, j] = batch.column(spec.name).to_numpy()
            else:
                out[:, j] = stats[spec.window_ms][spec.name]
        return out

    def _window_stats(self, batch: pa.RecordBatch, groups: list[tuple[Key, np.ndarray]] | None
                      ) -> dict[float, dict[str, np.ndarray]]:
        n = batch.num_rows
        ts = batch.column("ts_event").to_numpy()
        imb = batch.column("imbalance").to_numpy()
        mids = batch.column("mid").to_numpy()
        out = {w: {k: np.empty(n) for k in _WINDOW_FEATURES} for w in self.windows}
        for key, idx in groups if groups is not None else instrument_groups(batch):
            for w, window in self.windows.items():
                st = window.update(key, ts[idx], imb[idx], mids[idx])
                cols = out[w]
                cols["volatility"][idx] = st.volatility
                cols["momentum"][idx] = st.momentum
                cols["imbalance_mean"][idx] = st.mean
                cols["count"][idx] = st.count
        return out

    def _trade_flow(self, batch: pa.RecordBatch, groups: list[tuple[Key, np.ndarray]] | None
                    ) -> np.ndarray:
        if "price" not in batch.schema.names or "side" not in batch.schema.names:
            raise ConfigError(f"features {', '.join(self.names)} take trades batches "
                              f"(price, qty, side), got columns {batch.schema.names}")
        n = batch.num_rows
        ts = batch.column("ts_event").to_numpy()
        values = trade_values(batch)
        out = np.empty((n, len(self.specs)))
        for key, idx in groups if groups is not None else instrument_groups(batch):
            results = {w: sums.update(key, ts[idx], values[idx])
                       for w, sums in self.sums.items()}
            for j, spec in enumerate(self.specs):
                win_sums, counts = results[spec.window_ms]
                out[idx, j] = trade_flow(win_sums, counts, spec.name)
        return out
