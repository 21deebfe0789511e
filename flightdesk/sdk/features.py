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
import math
from collections.abc import Sequence
from dataclasses import dataclass

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
    venue1, symbol1 = _only_value(batch.column("venue")), _only_value(batch.column("symbol"))
    if venue1 is not None and symbol1 is not None:
        return [((venue1, symbol1), np.arange(batch.num_rows))]  # one pass, no hashing
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


def _only_value(col: pa.Array) -> str | None:
    """The value of ``col`` when every row holds the same one, else None (also with any
    null). A string array's buffers are compared directly: the offsets with an even
    step and the bytes with the first value repeated (two memcmps, not a kernel call)."""
    n = len(col)
    if col.null_count or not n:
        return None
    if col.type != pa.string():
        first = col[0]
        return (first.as_py() if pc.all(pc.equal(col, first), skip_nulls=False).as_py()
                else None)
    _, off_buf, data = col.buffers()
    offsets = np.frombuffer(off_buf, np.int32, n + 1, col.offset * 4)
    begin, end = int(offsets[0]), int(offsets[n])
    width = int(offsets[1]) - begin
    if end - begin != width * n:
        return None
    even = (np.arange(n + 1, dtype=np.int32) * np.int32(width)) + np.int32(begin)
    if even.tobytes() != off_buf[col.offset * 4:(col.offset + n + 1) * 4].to_pybytes():
        return None
    if not width:
        return ""
    value = data[begin:begin + width].to_pybytes()
    return value.decode() if data[begin:end].equals(pa.py_buffer(value * n)) else None


# -- rolling windows ------------------------------------------------------------------------
class _Tail:
    """What one instrument carries between batches, in buffers reused batch after batch: a
    batch's rows are written after the tail, and the next tail is moved to the front (no
    concatenate and copy of every array per batch).

    ``ts[:m]`` are the tail's times, ``csum[:m + 1]``/``csq[:m + 1]`` its running sums
    with a leading base, ``logmid[1:m + 1]`` its log mids and ``logmid[0]`` the one before
    them (NaN: none; read only while the tail is empty, as a batch's last row is kept)."""

    __slots__ = ("m", "ts", "csum", "csq", "logmid", "last_ts")

    def __init__(self, cap: int) -> None:
        self.m = 0
        self.ts = np.empty(cap, np.int64)
        self.csum = np.zeros(cap + 1)
        self.csq = np.zeros(cap + 1)
        self.logmid = np.full(cap + 1, np.nan)
        self.last_ts = int(np.iinfo(np.int64).min)

    def reserve(self, rows: int) -> None:
        """Room for ``rows`` more rows after the tail."""
        cap = self.ts.size
        if self.m + rows <= cap:
            return
        grown = max(self.m + rows, 2 * cap)
        for name in ("ts", "csum", "csq", "logmid"):
            old = getattr(self, name)
            new = np.empty(grown + old.size - cap, old.dtype)
            new[: old.size] = old
            setattr(self, name, new)


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
        if self.mid_stats and mid_px is None:
            raise ValueError("RollingWindow(mid_stats=True).update needs mid_px")
        n = len(ts)
        tail = self.tails.get(key)
        if tail is None:
            tail = self.tails[key] = _Tail(max(2 * n, 64))
        tail.reserve(n)
        m, end = tail.m, tail.m + n
        new_ts = tail.ts[m:end]
        np.maximum(np.asarray(ts, np.int64), tail.last_ts, out=new_ts)
        np.maximum.accumulate(new_ts, out=new_ts)
        csum = _continue_sums(tail.csum, m, end, value)
        all_ts = tail.ts[:end]
        lo = all_ts.searchsorted(new_ts - self.window_ns, side="right")
        count = np.subtract(_ARANGE.upto(end + 1)[m + 1:], lo, dtype=np.float64)
        mean = csum[m + 1:end + 1] - csum.take(lo)
        mean /= count
        if not self.mid_stats:
            nan = np.full(n, np.nan)
            self._keep(tail, end)
            return WindowStats(mean, nan, nan, count)
        logs = tail.logmid[:end + 1]
        np.log(np.asarray(mid_px, np.float64), out=logs[m + 1:])
        ret = logs[m + 1:] - logs[m:end]
        csq = _continue_sums(tail.csq, m, end, ret * ret, ret)
        vol = csq[m + 1:end + 1] - csq.take(lo)
        np.maximum(vol, 0.0, out=vol)
        vol /= count
        np.sqrt(vol, out=vol)
        vol *= 1e4
        momentum = logs[m + 1:] - logs[1:].take(lo)
        momentum *= 1e4
        self._keep(tail, end)
        return WindowStats(mean, vol, momentum, count)

    def _keep(self, tail: _Tail, end: int) -> None:
        """Move the rows still in the window at the last row's time to the front."""
        last = int(tail.ts[end - 1])
        start = int(tail.ts[:end].searchsorted(last - self.window_ns, side="right"))
        k = end - start
        if start:
            tail.ts[:k] = tail.ts[start:end]
            tail.csum[:k + 1] = tail.csum[start:end + 1]
            if self.mid_stats:
                tail.csq[:k + 1] = tail.csq[start:end + 1]
                tail.logmid[:k + 1] = tail.logmid[start:end + 1]
        tail.m, tail.last_ts = k, last


def _continue_sums(sums: np.ndarray, m: int, end: int, values: np.ndarray,
                   raw: np.ndarray | None = None) -> np.ndarray:
    """Write the running sums of ``values`` after ``sums[m]`` into ``sums[m + 1:end + 1]``,
    added strictly in order. A NaN value counts as 0 (an infinite one as the largest
    float); with ``raw`` (the array ``values`` is derived from), a value whose ``raw`` is
    not finite counts as 0. The first pass assumes all finite: a finite total proves it.
    Returns ``sums``."""
    seg = sums[m:end + 1]
    seg[1:] = values
    np.add.accumulate(seg, out=seg)
    if not math.isfinite(seg[-1]):  # some value was NaN or inf (or the sum overflowed)
        if raw is None:
            clean = np.nan_to_num(np.asarray(values, np.float64), nan=0.0)
        else:
            clean = np.array(values, np.float64)
            clean[~np.isfinite(raw)] = 0.0
        seg[1:] = clean
        np.add.accumulate(seg, out=seg)
    return sums


class _Aranges:
    """``np.arange(n)`` views of one cached array (grown on demand)."""

    def __init__(self) -> None:
        self._a = np.arange(1 << 16, dtype=np.int64)

    def upto(self, n: int) -> np.ndarray:
        if n > self._a.size:
            self._a = np.arange(max(n, 2 * self._a.size), dtype=np.int64)
        return self._a[:n]


_ARANGE = _Aranges()


# -- named features of quotes batches ---------------------------------------------------------
_COLUMN_FEATURES = ("mid", "microprice", "spread_bps", "imbalance", "depth_ratio", "bid_px",
                    "ask_px", "bid_qty", "ask_qty")
_WINDOW_FEATURES = ("volatility", "momentum", "imbalance_mean", "count")
QUOTE_FEATURES = _COLUMN_FEATURES + _WINDOW_FEATURES
_STAT = {"volatility": "volatility", "momentum": "momentum", "imbalance_mean": "mean",
         "count": "count"}  # feature name -> WindowStats field
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
        #: window -> [(output column, WindowStats field), ...]
        self._columns = {w: [(j, _STAT[s.name]) for j, s in enumerate(self.specs)
                             if s.name in _WINDOW_FEATURES and s.window_ms == w]
                         for w in windows}
        self.windows = {w: RollingWindow(w, mid_stats=any(
            stat in ("volatility", "momentum") for _, stat in self._columns[w]))
            for w in windows}
        self.sums = {w: RollingSums(w) for w in sorted({s.window_ms for s in self.specs
                                                        if s.name in TRADE_FEATURES})}

    def compute(self, batch: pa.RecordBatch, dtype: type = np.float64,
                groups: list[tuple[Key, np.ndarray]] | None = None) -> np.ndarray:
        """``(rows, features)`` matrix in the order of ``names`` (``groups``: the batch's
        :func:`instrument_groups`, when the caller has them already)."""
        if self.stream == "trades":
            return self._trade_flow(batch, groups).astype(dtype, copy=False)
        n = batch.num_rows
        out = np.empty((n, len(self.specs)), dtype=dtype)
        for j, spec in enumerate(self.specs):
            if spec.name in _COLUMN_FEATURES:
                out[:, j] = batch.column(spec.name).to_numpy()
        if not self.windows:
            return out
        ts = batch.column("ts_event").to_numpy()
        imb = batch.column("imbalance").to_numpy()
        mids = batch.column("mid").to_numpy()
        for key, idx in groups if groups is not None else instrument_groups(batch):
            whole = idx.size == n  # the groups split the rows: all of them, in order
            rows: slice | np.ndarray = slice(None) if whole else idx
            for w, window in self.windows.items():
                st = (window.update(key, ts, imb, mids) if whole
                      else window.update(key, ts[idx], imb[idx], mids[idx]))
                for j, stat in self._columns[w]:
                    out[rows, j] = getattr(st, stat)
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
