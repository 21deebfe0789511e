"""The cap on concurrent Flight streams (``[flight] max_streams``).

gRPC gives every call an OS thread for its whole life, so each open ``do_get`` or
``do_exchange`` holds one; past the cap a new stream is refused at once (counted) instead of
adding threads without bound. A ``do_get`` holds its slot until its batches are all written
or the client goes away (the generator is closed); a generator that is never started gives
its slot back when it is collected.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa

from flightdesk.core.errors import LimitError


class Slot:
    """One open stream; :meth:`release` is idempotent."""

    def __init__(self, owner: StreamSlots) -> None:
        self._owner: StreamSlots | None = owner

    def release(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.released()


class StreamSlots:
    """At most ``limit`` streams at once (see the module docstring)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.peak = 0
        self.refused = 0
        self._lock = threading.Lock()

    def take(self) -> Slot:
        """A slot, or a :class:`LimitError` when ``limit`` streams are open."""
        with self._lock:
            if self.open >= self.limit:
                self.refused += 1
                raise LimitError(f"too many concurrent streams ({self.limit}); limit [flight] "
                                 "max_streams; retry when one ends", limit="flight.max_streams")
            self.open += 1
            self.peak = max(self.peak, self.open)
        return Slot(self)

    def released(self) -> None:
        with self._lock:
            self.open -= 1

    @staticmethod
    def reader(slot: Slot, schema: pa.Schema, batches: Iterable[pa.RecordBatch],
               wrap: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]
               | None = None) -> pa.RecordBatchReader:
        """``batches`` as a reader that holds ``slot`` until it is read or closed;
        ``wrap`` is applied outermost (the error hygiene: no frame above it)."""
        gen = _held(slot, batches)
        weakref.finalize(gen, slot.release)
        return pa.RecordBatchReader.from_batches(schema, wrap(gen) if wrap else gen)

    def stats(self) -> dict[str, int]:
        return {"limit": self.limit, "open": self.open, "peak": self.peak,
                "refused": self.refused}


def _held(slot: Slot, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    finally:  # closing this generator closes ``batches`` too (``yield from``)
        slot.release()
