"""The engine's flush policy: when buffered market data becomes batches.

Live, the caller flushes once the feed has nothing more buffered, or when
:meth:`FlushClock.frame_done` says ``max_frames`` frames went by without a pause: one row
per batch when quiet, thousands when busy. A replay flushes every ``replay_steps`` *data
steps*: a step is a run of market output (applied book messages, trades, resyncs) with one
receive time, i.e. one captured frame. Steps are defined by the data alone — not by frames
that carried nothing, nor by how the data is stored — so replaying a raw capture and
replaying the ``book``/``trades`` Parquet that ``normalize`` made of it cut the same
batches, run the strategies on the same books and give the same orders and fills.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    """When the engine flushes (see the module docstring)."""

    #: live: flush after this many frames even when more are waiting
    max_frames: int = 4096
    #: replay: flush every this many data steps (0: the caller flushes)
    replay_steps: int = 0


class FlushClock:
    """A :class:`FlushPolicy`'s counters: frames and data steps since the last flush."""

    __slots__ = ("policy", "replay", "step_ts", "_steps", "_unflushed")

    def __init__(self, policy: FlushPolicy) -> None:
        self.policy = policy
        #: whether data steps cut the batches (a replay)
        self.replay = policy.replay_steps > 0
        #: the receive time of the current data step (-1 before the first)
        self.step_ts = -1
        self._steps = 0
        self._unflushed = 0

    def frame_done(self) -> bool:
        """Count one live frame; True when a flush is due now, not when idle."""
        self._unflushed += 1
        return self._unflushed >= self.policy.max_frames

    def step(self, ts_recv: int) -> bool:
        """Market output at ``ts_recv``: counts a new step and returns False, or — when it
        starts a step and the batch already holds ``replay_steps`` — counts nothing and
        returns True: flush first (:meth:`flushed`), then call again."""
        if ts_recv == self.step_ts:
            return False
        if self._steps >= self.policy.replay_steps:
            return True
        self._steps += 1
        self.step_ts = ts_recv
        return False

    def flushed(self) -> None:
        self._unflushed = 0
        self._steps = 0
