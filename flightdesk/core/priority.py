"""The engine thread first: the desk's service threads can run at a lower CPU priority.

On a box with few cores, the work that serves clients and storage — Flight handlers,
Parquet decoding, SQL, the store writer, the history writer, the health server — competes
for CPU with the one thread that turns frames into orders. Linux schedules every thread on
its own and a new thread inherits its creator's nice value, so the desk starts those
services from a short-lived thread that first raised its own nice value by
``[desk] service_nice``: every thread they start (gRPC's pool included) inherits it, and the
engine thread keeps its priority. Raising one's own nice value needs no privilege; it can't
be lowered again without one (CAP_SYS_NICE), which is why a dedicated thread does it.
Elsewhere than Linux (where ``setpriority`` would apply to the whole process) it is a no-op.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["run_niced"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


def run_niced(nice: int, fn: Callable[[], T]) -> T:
    """``fn()``, run on a thread whose nice value is raised by ``nice`` (0: right here)."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return fn()
    out: list[T] = []
    err: list[BaseException] = []

    def run() -> None:
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
        except OSError as exc:  # e.g. a sandbox without setpriority: run at the same priority
            logger.warning("could not lower the service threads' priority: %s", exc)
        try:
            out.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            err.append(exc)

    thread = threading.Thread(target=run, name="flightdesk-services")
    thread.start()
    thread.join()
    if err:
        raise err[0]
    return out[0]
