"""From per-row opinions to position changes: confidence, holding period, decay.

A strategy scores each row and derives a wanted side (-1, 0, +1; 0 is "no opinion") and a
confidence in [0, 1]. :class:`SignalPolicy` keeps, per instrument, the side it holds and
turns the stream of opinions into a few signals:

* **enter / reverse** at the first row whose opinion differs from the held side, once
  ``holding_period_ms`` has passed since the last change;
* **support**: rows agreeing with the held side refresh it (time and confidence);
* **decay**: without support the held confidence decays as ``c * exp(-dt / signal_decay_ms)``;
  when it falls below ``min_confidence`` the policy goes ``flat`` (0 disables decay).

The work jumps from change to change through "next row with this opinion" tables built
with ``np.repeat`` (a few lookups per signal, not a Python step per row), and the state is
carried between batches, so the signals do not depend on how the stream is split into
batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Key = tuple[str, str]
SMALL_BATCH = 1024  # up to this many rows of one instrument, decide row by row (faster)


@dataclass(slots=True)
class _Held:
    side: int = 0
    since: float = -math.inf  # ns of the last change
    support_ts: float = -math.inf
    support_conf: float = 0.0


class _Rows:
    """One instrument's rows of a batch, as "next row at or after i with this opinion" and
    "last row at or before i with this opinion" tables (built on first use, one
    ``np.repeat`` each), so that each step of :meth:`SignalPolicy.decide` is a few lookups."""

    __slots__ = ("ts", "want", "confidence", "n", "_dtype", "_by", "_next", "_prev", "_decayed")

    def __init__(self, ts: np.ndarray, want: np.ndarray, confidence: np.ndarray) -> None:
        self.ts = ts
        self.want = want
        self.confidence = confidence
        self.n = ts.size
        self._dtype = np.int32 if self.n < 2**31 - 1 else np.int64
        self._by: dict[int, np.ndarray] = {}
        self._next: dict[int, np.ndarray] = {}
        self._prev: dict[int, np.ndarray] = {}
        self._decayed: dict[int, np.ndarray] = {}

    def by(self, v: int) -> np.ndarray:
        """Rows wanting ``v`` (-1, 0, +1; 2 is any non-zero opinion), ascending."""
        out = self._by.get(v)
        if out is None:
            mask = self.want != 0 if v == 2 else self.want == v
            out = self._by[v] = np.flatnonzero(mask).astype(self._dtype, copy=False)
        return out

    def next(self, v: int) -> np.ndarray:
        """``[i]``: the first row >= i wanting ``v`` (``n`` if none), for i in 0..n."""
        out = self._next.get(v)
        if out is None:
            out = self._next[v] = _next_table(self.by(v), self.n, self._dtype)
        return out

    def prev(self, v: int) -> np.ndarray:
        """``[i]``: the last row <= i wanting ``v`` (-1 if none), for i in 0..n-1."""
        out = self._prev.get(v)
        if out is None:
            idx = self.by(v)
            vals = np.empty(idx.size + 1, self._dtype)
            vals[0] = -1
            vals[1:] = idx
            out = self._prev[v] = np.repeat(vals, _gaps(idx, 0, self.n))
        return out

    def decayed(self, side: int, decay_ns: float, min_confidence: float) -> np.ndarray:
        """``[i]``: the first no-opinion row >= i where a ``side`` held since this batch's
        last agreeing row before it has decayed below ``min_confidence`` (``n`` if none)."""
        out = self._decayed.get(side)
        if out is None:
            zeros = self.by(0)
            ref = self.prev(side)[zeros]
            ok = ref >= 0
            zeros, ref = zeros[ok], ref[ok]
            conf = self.confidence[ref]
            ratio = np.maximum(conf / min_confidence, 1.0)
            flat_t = self.ts[ref] + decay_ns * np.log(ratio)
            rows = zeros[(conf > 0) & (self.ts[zeros] >= flat_t)]
            out = self._decayed[side] = _next_table(rows, self.n, self._dtype)
        return out


def _next_table(idx: np.ndarray, n: int, dtype: type) -> np.ndarray:
    """``[i]`` for i in 0..n: the first element of the ascending ``idx`` >= i, or ``n``."""
    vals: np.ndarray = np.empty(idx.size + 1, dtype)
    vals[:-1] = idx
    vals[-1] = n
    return np.repeat(vals, _gaps(idx, -1, n))


def _gaps(idx: np.ndarray, first: int, last: int) -> np.ndarray:
    """``np.diff(idx, prepend=first, append=last)`` without its per-call overhead."""
    out = np.empty(idx.size + 1, np.int64)
    if idx.size:
        out[0] = idx[0] - first
        np.subtract(idx[1:], idx[:-1], out=out[1:-1])
        out[-1] = last - idx[-1]
    else:
        out[0] = last - first
    return out


def _first_at(ts: np.ndarray, last: int, t: float) -> int:
    """The first row with ``ts >= ceil(t)`` (``ts`` ascending, ``last`` its last value)."""
    at = math.ceil(t)
    if at > last:
        return ts.size
    return int(ts.searchsorted(at, side="left"))  # an int key: no float copy of ts


@dataclass(frozen=True, slots=True)
class Decisions:
    """Signals of one instrument's rows: row index, side (-1/0/+1), confidence."""

    rows: np.ndarray
    sides: np.ndarray
    confidence: np.ndarray


class SignalPolicy:
    """See the module docstring."""

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
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(score) & (confidence >= self.min_confidence) & (confidence > 0)
            return np.where(ok, np.sign(score), 0.0).astype(np.int8)

    def decide(self, key: Key, ts: np.ndarray, want: np.ndarray, confidence: np.ndarray
               ) -> Decisions:
        """Signals for one instrument's rows; ``ts`` is made non-decreasing.

        Each step jumps to the next signal: the first row after the holding period wanting
        another side, or the first no-opinion row where the held side has decayed (from the
        carried support before this batch's first agreeing row, from the last agreeing row
        after it), whichever comes first."""
        held = self.held.setdefault(key, _Held())
        ts = np.maximum.accumulate(np.asarray(ts, dtype=np.int64))
        n = ts.size
        if n <= SMALL_BATCH:
            return self._decide_rows(held, ts, want, confidence)
        rows = _Rows(ts, want, confidence)
        out_rows: list[int] = []
        sides: list[int] = []
        confs: list[float] = []
        if n == 0:
            return Decisions(np.empty(0, np.int64), np.empty(0, np.int8), np.empty(0))
        last_ts = int(ts[-1])
        hold, decay, min_conf = self.hold_ns, self.decay_ns, self.min_confidence
        decays = decay > 0 and min_conf > 0
        side, since = held.side, held.since
        sup_ts, sup_conf = held.support_ts, held.support_conf
        pos = 0
        next_any = rows.next(2)
        tables: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = {}
        while pos < n:
            earliest = pos if since == -math.inf else max(pos, _first_at(ts, last_ts,
                                                                         since + hold))
            if earliest >= n:
                break
            if side == 0:
                r = next_any.item(earliest)
            else:
                t4 = tables.get(side)
                if t4 is None:
                    t4 = tables[side] = (rows.next(-side), rows.next(side), rows.prev(side),
                                         rows.decayed(side, decay, min_conf) if decays else None)
                other, same, last_same, decayed = t4
                r = change = other.item(earliest)
                if decayed is not None:
                    first_sup = same.item(pos)
                    found = decayed.item(max(earliest, first_sup))
                    if sup_conf > 0 and earliest < first_sup:  # the carried support
                        flat_at = sup_ts + decay * math.log(max(sup_conf / min_conf, 1.0))
                        z = rows.next(0).item(max(earliest, _first_at(ts, last_ts, flat_at)))
                        if z < first_sup and z < found:
                            found = z
                    if found < change:
                        r = found
                if r >= n:
                    break
                j = last_same.item(r)  # support up to the signal
                if j >= pos:
                    sup_ts, sup_conf = float(ts.item(j)), float(confidence.item(j))
            if r >= n:
                break
            v = int(want.item(r))
            t = float(ts.item(r))
            out_rows.append(r)
            sides.append(v)
            if v:
                conf = float(confidence.item(r))
                sup_ts, sup_conf = t, conf
            else:
                conf = sup_conf * math.exp(-(t - sup_ts) / decay) if decay > 0 else sup_conf
            confs.append(conf)
            side, since = v, t
            pos = r + 1
        if side and pos < n:
            j = rows.prev(side).item(n - 1)
            if j >= pos:
                sup_ts, sup_conf = float(ts.item(j)), float(confidence.item(j))
        held.side, held.since, held.support_ts, held.support_conf = side, since, sup_ts, sup_conf
        return Decisions(np.asarray(out_rows, np.int64), np.asarray(sides, np.int8),
                         np.asarray(confs, np.float64))

    def _decide_rows(self, held: _Held, ts: np.ndarray, want: np.ndarray,
                     confidence: np.ndarray) -> Decisions:
        """:meth:`decide` row by row over plain lists (cheaper than building the lookup
        tables when a batch has few rows): the rules of :meth:`decide_one`."""
        hold, decay, min_conf = self.hold_ns, self.decay_ns, self.min_confidence
        decays = decay > 0 and min_conf > 0
        side, since = held.side, held.since
        sup_ts, sup_conf = held.support_ts, held.support_conf
        sup_row = -1  # a supporting row of this batch whose confidence is not read yet
        hold_end = -math.inf if since == -math.inf else math.ceil(since + hold)
        flat_end: float | None = None  # ceil of the flat time, None: to compute
        out_rows: list[int] = []
        sides: list[int] = []
        confs: list[float] = []
        for i, (t, v) in enumerate(zip(ts.tolist(), want.tolist(), strict=True)):
            if v == side:
                if side:
                    sup_row, flat_end = i, None
                continue
            if t < hold_end:
                continue
            if sup_row >= 0:
                sup_ts, sup_conf, sup_row = float(ts.item(sup_row)), float(
                    confidence.item(sup_row)), -1
            if v:
                conf = float(confidence.item(i))
                sup_ts, sup_conf, flat_end = float(t), conf, None
            else:
                if not decays:
                    continue
                if flat_end is None:
                    flat_end = (math.inf if sup_conf <= 0 else math.ceil(
                        sup_ts + decay * math.log(max(sup_conf / min_conf, 1.0))))
                if t < flat_end:
                    continue
                conf = sup_conf * math.exp(-(t - sup_ts) / decay)
            out_rows.append(i)
            sides.append(v)
            confs.append(conf)
            side, since = v, float(t)
            hold_end = math.ceil(since + hold)
        if sup_row >= 0:
            sup_ts, sup_conf = float(ts.item(sup_row)), float(confidence.item(sup_row))
        held.side, held.since, held.support_ts, held.support_conf = side, since, sup_ts, sup_conf
        return Decisions(np.asarray(out_rows, np.int64), np.asarray(sides, np.int8),
                         np.asarray(confs, np.float64))

    def decide_one(self, key: Key, ts: int, score: float, confidence: float
                   ) -> tuple[int, float] | None:
        """The signal of a one-row batch, ``(side, confidence)`` or None: what
        :meth:`wanted` and :meth:`decide` give for that row, with plain numbers (a live
        desk flushes one row at a time, where numpy's per-call cost is the whole cost)."""
        ok = math.isfinite(score) and confidence >= self.min_confidence and confidence > 0
        want = (score > 0) - (score < 0) if ok else 0
        held = self.held.get(key)
        if held is None:
            held = self.held[key] = _Held()
        side = held.side
        if want == side:  # support
            if side:
                held.support_ts, held.support_conf = float(ts), float(confidence)
            return None
        if held.since != -math.inf and ts < math.ceil(held.since + self.hold_ns):
            return None  # within the holding period
        if want:
            conf = float(confidence)
            held.support_ts, held.support_conf = float(ts), conf
        else:  # flat once the held side has decayed below the minimum
            if self.decay_ns <= 0 or self.min_confidence <= 0:
                return None
            flat_at = self._flat_time(held)
            if flat_at == math.inf or ts < math.ceil(flat_at):
                return None
            conf = self._decayed(held, float(ts))
        held.side, held.since = want, float(ts)
        return want, conf

    def _flat_time(self, held: _Held) -> float:
        if self.decay_ns <= 0 or self.min_confidence <= 0 or held.support_conf <= 0:
            return math.inf
        ratio = held.support_conf / self.min_confidence
        return held.support_ts + self.decay_ns * math.log(max(ratio, 1.0))

    def _decayed(self, held: _Held, t: float) -> float:
        if self.decay_ns <= 0:
            return held.support_conf
        return held.support_conf * math.exp(-(t - held.support_ts) / self.decay_ns)


def apply_policy(policy: SignalPolicy, groups: list[tuple[Key, np.ndarray]], ts: np.ndarray,
                 score: np.ndarray, confidence: np.ndarray) -> Decisions:
    """Run ``policy`` over every instrument of a batch; row indices are the batch's."""
    if ts.size == 1:
        one = policy.decide_one(groups[0][0], int(ts[0]), float(score[0]), float(confidence[0]))
        if one is None:
            return Decisions(np.empty(0, np.int64), np.empty(0, np.int8), np.empty(0))
        return Decisions(np.zeros(1, np.int64), np.array([one[0]], np.int8),
                         np.array([one[1]]))
    want = policy.wanted(score, confidence)
    if len(groups) == 1 and groups[0][1].size == ts.size:  # one instrument: no gathers
        return policy.decide(groups[0][0], ts, want, confidence)
    parts = []
    for key, idx in groups:
        d = policy.decide(key, ts[idx], want[idx], confidence[idx])
        if d.rows.size:
            parts.append(Decisions(idx[d.rows], d.sides, d.confidence))
    if not parts:
        return Decisions(np.empty(0, np.int64), np.empty(0, np.int8), np.empty(0))
    if len(parts) == 1:
        return parts[0]
    rows = np.concatenate([p.rows for p in parts])
    order = np.argsort(rows, kind="stable")
    return Decisions(rows[order], np.concatenate([p.sides for p in parts])[order],
                     np.concatenate([p.confidence for p in parts])[order])


SIDE_NAMES = np.array(["sell", "flat", "buy"], dtype=object)


def side_names(sides: np.ndarray) -> np.ndarray:
    """-1/0/+1 -> "sell"/"flat"/"buy"."""
    return SIDE_NAMES[sides.astype(np.int64) + 1]
