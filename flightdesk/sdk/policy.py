"""From per-row opinions to position changes: confidence, holding period, decay.

A strategy scores each row and derives a wanted side (-1, 0, +1; 0 is "no opinion") and a
confidence in [0, 1]. :class:`SignalPolicy` keeps, per instrument, the side it holds and
turns the stream of opinions into a few signals:

* **enter / reverse** at the first row whose opinion differs from the held side, once
  ``holding_period_ms`` has passed since the last change;
* **support**: rows agreeing with the held side refresh it (time and confidence);
* **decay**: without support the held confidence decays as ``c * exp(-dt / signal_decay_ms)``;
  when it falls below ``min_confidence`` the policy goes ``flat`` (0 disables decay).

The work jumps from change to change with ``searchsorted`` over the rows of each opinion
(a Python step per signal, not per row), and the state is carried between batches, so the
signals do not depend on how the stream is split into batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Key = tuple[str, str]


@dataclass(slots=True)
class _Held:
    side: int = 0
    since: float = -math.inf  # ns of the last change
    support_ts: float = -math.inf
    support_conf: float = 0.0


class _Rows:
    """One instrument's rows of a batch, indexed by opinion."""

    def __init__(self, ts: np.ndarray, want: np.ndarray, confidence: np.ndarray) -> None:
        self.ts = ts
        self.confidence = confidence
        self.want = want
        self.nonzero = np.flatnonzero(want)
        self.by_side = {v: np.flatnonzero(want == v) for v in (-1, 0, 1)}
        self._decayed: dict[int, np.ndarray] = {}

    def decayed_rows(self, side: int, decay_ns: float, min_confidence: float) -> np.ndarray:
        """No-opinion rows where a ``side`` held since this batch's last agreeing row before
        them has decayed below ``min_confidence`` (computed once per side and batch)."""
        out = self._decayed.get(side)
        if out is None:
            n = self.ts.size
            last = np.maximum.accumulate(np.where(self.want == side, np.arange(n), -1))
            ref = np.maximum(last, 0)
            zero = (self.want == 0) & (last >= 0) & (self.confidence[ref] > 0)
            ratio = np.maximum(self.confidence[ref] / min_confidence, 1.0)
            flat_t = self.ts[ref] + decay_ns * np.log(ratio)
            out = self._decayed[side] = np.flatnonzero(zero & (self.ts >= flat_t))
        return out


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
        """Signals for one instrument's rows; ``ts`` is made non-decreasing."""
        held = self.held.setdefault(key, _Held())
        ts = np.maximum.accumulate(np.asarray(ts, dtype=np.int64))
        rows = _Rows(ts, want, confidence)
        out_rows: list[int] = []
        sides: list[int] = []
        confs: list[float] = []
        pos = 0
        while pos < ts.size:  # jump from change to change: few iterations per batch
            earliest = self._earliest(held, rows, pos)
            change = self._next_change(held, rows, earliest)
            r = min(change, self._next_flat(held, rows, pos, earliest, change))
            if r >= ts.size:
                break
            self._support(held, rows, pos, r + 1)
            v = int(want[r])
            out_rows.append(r)
            sides.append(v)
            confs.append(float(confidence[r]) if v else self._decayed(held, float(ts[r])))
            held.side, held.since = v, float(ts[r])
            if v:
                held.support_ts, held.support_conf = float(ts[r]), float(confidence[r])
            pos = r + 1
        self._support(held, rows, pos, ts.size)
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

    def _earliest(self, held: _Held, rows: _Rows, pos: int) -> int:
        """The first row at or after ``pos`` outside the holding period."""
        if held.since == -math.inf:
            return pos
        at = np.int64(math.ceil(held.since + self.hold_ns))  # an int: no float copy of ts
        return max(pos, int(rows.ts.searchsorted(at, side="left")))

    def _next_change(self, held: _Held, rows: _Rows, earliest: int) -> int:
        """The first row from ``earliest`` (the end of the holding period) wanting another
        non-zero side."""
        cand = rows.nonzero if held.side == 0 else rows.by_side[-held.side]
        k = int(cand.searchsorted(earliest))
        return int(cand[k]) if k < cand.size else rows.ts.size

    def _next_flat(self, held: _Held, rows: _Rows, pos: int, earliest: int, before: int
                   ) -> int:
        """The first no-opinion row before ``before`` where the held side has decayed below
        the minimum: supported by a row of this batch since ``pos`` (precomputed per side),
        or still by the carried support before the first such row."""
        n = rows.ts.size
        if held.side == 0 or self.decay_ns <= 0 or self.min_confidence <= 0:
            return n
        sup = rows.by_side[held.side]
        k = int(sup.searchsorted(pos))
        first_sup = int(sup[k]) if k < sup.size else n
        found = n
        carried = self._flat_time(held)
        if carried != math.inf and earliest < first_sup:
            start = max(earliest, int(rows.ts.searchsorted(np.int64(math.ceil(carried)))))
            zeros = rows.by_side[0]
            j = int(zeros.searchsorted(start))
            if j < zeros.size and zeros[j] < first_sup:
                found = int(zeros[j])
        inside = rows.decayed_rows(held.side, self.decay_ns, self.min_confidence)
        j = int(inside.searchsorted(max(earliest, first_sup)))
        if j < inside.size:
            found = min(found, int(inside[j]))
        return found if found < before else n

    def _support(self, held: _Held, rows: _Rows, start: int, stop: int) -> None:
        """Rows in [start, stop) agreeing with the held side refresh it."""
        if held.side == 0:
            return
        sup = rows.by_side[held.side]
        k = int(sup.searchsorted(stop)) - 1
        if k >= 0 and sup[k] >= start:
            i = int(sup[k])
            held.support_ts, held.support_conf = float(rows.ts[i]), float(rows.confidence[i])

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
