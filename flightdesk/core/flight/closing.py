"""Stopping a Flight server within a deadline, whatever its clients do.

``FlightServerBase.shutdown()`` stops taking calls, then waits for every running call to
end, with no deadline (pyarrow does not pass one to gRPC). Calls end by themselves when the
desk's stop event is set: a live stream checks it between batches, an exchange between
round trips, and a store query is interrupted (``Store.interrupt_readers``). Three kinds
are stuck in gRPC instead and never look: a stream whose client stopped reading (blocked
in a write by flow control), an exchange waiting for a silent client's answer (blocked in
a read), and anything else waiting on its peer. pyarrow offers no way to cancel a server
call from another thread (``ServerCallContext.is_cancelled`` only reports), so
:func:`shutdown_within` does what a client hanging up would do: after a grace period it
shuts down (``shutdown(2)``, never closes: gRPC owns the descriptors) the TCP connections
accepted on the server's port. gRPC then cancels their calls — the blocked write or read
fails, the handler's ``finally`` runs — and ``shutdown()`` returns. If it still has not
returned at the deadline (a query busy computing its first row cannot be interrupted in
ADBC SQLite), the server is given up on and the calls still open are logged.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

GRACE_S = 1.0  # how long calls get to end by themselves before connections are cut


class OpenCalls:
    """The calls that can outlive a shutdown request (live streams, exchanges, queries),
    named for the log when a shutdown gives up on them."""

    def __init__(self) -> None:
        self._calls: dict[int, tuple[str, str, float]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def open(self, kind: str, peer: str) -> Iterator[None]:
        """Register one call (``kind``: e.g. ``do_get live quotes``) while it runs."""
        key = next(self._ids)
        with self._lock:
            self._calls[key] = (kind, peer, time.monotonic())
        try:
            yield
        finally:
            with self._lock:
                self._calls.pop(key, None)

    def track(self, kind: str, peer: str, batches: Iterator[T]) -> Iterator[T]:
        """``batches``, registered as one call while they are being pulled."""
        with self.open(kind, peer):
            yield from batches

    def describe(self) -> list[str]:
        """``["do_exchange x from ipv4:127.0.0.1:5000 (open 12.3 s)", ...]``."""
        now = time.monotonic()
        with self._lock:
            calls = list(self._calls.values())
        return [f"{kind} from {peer} (open {now - t0:.1f} s)" for kind, peer, t0 in calls]

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls)


def shutdown_within(server: Any, timeout: float, calls: OpenCalls | None = None,
                    grace: float = GRACE_S) -> bool:
    """``server.shutdown()`` on a thread, releasing stuck calls after ``grace`` seconds;
    True when it returned within ``timeout`` seconds (see the module docstring)."""
    deadline = time.monotonic() + timeout
    thread = threading.Thread(target=server.shutdown, name="flightdesk-flight-shutdown",
                              daemon=True)
    thread.start()
    thread.join(min(grace, timeout))
    if thread.is_alive():
        n_open = len(calls) if calls is not None else 0
        released = release_connections(server.port)
        logger.info("Flight shutdown: %d call(s) still open after %.1f s; cut %d client "
                    "connection(s)", n_open, grace, released)
        thread.join(max(0.0, deadline - time.monotonic()))
    if not thread.is_alive():
        return True
    still = calls.describe() if calls is not None else []
    logger.warning("Flight shutdown gave up after %.1f s; still open: %s", timeout,
                   "; ".join(still) or "calls not tracked by the desk")
    return False


def release_connections(port: int) -> int:
    """Shut down every TCP connection this process accepted on ``port``; how many."""
    released = 0
    for fd in _descriptors():
        with _socket(fd) as sock:
            if sock is not None and _accepted_on(sock, port):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # the connection, for every descriptor
                    released += 1
    return released


def _descriptors() -> list[int]:
    for where in ("/proc/self/fd", "/dev/fd"):
        try:
            return [int(name) for name in os.listdir(where)]
        except (OSError, ValueError):
            continue
    return []


@contextlib.contextmanager
def _socket(fd: int) -> Iterator[socket.socket | None]:
    """A socket object on a duplicate of ``fd`` (None if it is no socket), closed after."""
    sock = None
    try:
        if stat.S_ISSOCK(os.fstat(fd).st_mode):
            sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        sock = None
    try:
        yield sock
    finally:
        if sock is not None:
            sock.close()  # only the duplicate: gRPC's descriptor stays open


def _accepted_on(sock: socket.socket, port: int) -> bool:
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        return False
    try:
        local = sock.getsockname()
        sock.getpeername()  # a listening socket has no peer
    except OSError:
        return False
    return bool(local[1] == port)
