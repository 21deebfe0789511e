"""From per-row opinions to position changes: confidence, holding period, decay.

A strategy scores each row and derives a wanted side (-1, 0, +1; 0 is "no opinion") and a
confidence in [0, 1]. :class:`SignalPolicy` keeps, per instrument, the side it holds and
turns the stream of opinions into a few signals:

* **enter / reverse** at the first row whose opinion differs from the held side, once
  ``holding_period_ms`` has passed since the last change;
* **support**: rows agreeing with the held side refresh it (time and confidence);
* **decay**: without support the held confidence decays as ``c * exp(-dt / signal_decay_ms)``;
  when it falls below ``min_confidence`` the policy goes ``flat`` (0 disables decay).

The work is vectorized over runs of equal opinions, not rows, and the state is carried
between batches, so the signals do not depend on how the stream is split into batches.
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


def apply_policy(policy: SignalPolicy, groups: list[tuple[Key, np.ndarray]], ts: np.ndarray,
                 score: np.ndarray, confidence: np.ndarray) -> Decisions:
    """Run ``policy`` over every instrument of a batch; row indices are the batch's."""
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
