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

Nice values share the CPU; they don't make the kernel run the engine the moment a frame
arrives (measured: with two busy processes at nice 10 on this 2-core box, tick-to-trade
p99 still rose from 1.4 to 3.8 ms). ``[desk] engine_priority`` puts the engine thread under
``SCHED_FIFO`` instead (1.2 ms with the same load), with ``SCHED_RESET_ON_FORK`` so no
thread it starts inherits the policy. The desk's other threads that take the GIL on every
batch — the store writer, the history writer, the data-plane forwarder — run one step
below it: at normal priority any busy process could preempt them while they hold the GIL,
and the engine would wait for them (measured: the store thread spent 0.4 s of every second
holding it in the run queue). That needs CAP_SYS_NICE (or an RLIMIT_RTPRIO);
without it the desk logs why and runs as usual. The kernel's real-time throttling
(``sched_rt_runtime_us``, 95% by default) keeps a runaway engine from starving the box.

All of this, and ``[desk] switch_interval_us`` (the GIL switch interval, process-wide), is
tuning of the process, not of the desk: only ``flightdesk serve`` applies it (it owns the
process), or an embedding that asks with ``Engine(..., tune_process=True)``; a desk embedded
in a notebook or a test leaves the interpreter and its threads as they were.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["below_engine", "engine_priority", "process_tuning", "run_niced"]

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


def process_tuning(desk: Mapping[str, Any], enabled: bool) -> tuple[float, int, int]:
    """``(switch_interval_us, service_nice, engine_priority)`` from the ``[desk]`` table when
    the process may be tuned, else zeros (and a log line if the config asked for some)."""
    wanted = (float(desk["switch_interval_us"]), int(desk["service_nice"]),
              int(desk["engine_priority"]))
    if enabled:
        return wanted
    if wanted[1] or wanted[2]:
        logger.info("[desk] service_nice/engine_priority not applied: an embedded desk leaves "
                    "the process alone (flightdesk serve, or Engine(..., tune_process=True))")
    return 0.0, 0, 0


def engine_priority(priority: int, tid: int = 0) -> str:
    """Run thread ``tid`` (0: the calling thread) under ``SCHED_FIFO`` at ``priority``
    (0: leave it); returns why it could not, or ""."""
    if priority <= 0:
        return ""
    if not hasattr(os, "SCHED_FIFO") or not sys.platform.startswith("linux"):
        return "real-time scheduling is only used on Linux"
    try:
        lo, hi = os.sched_get_priority_min(os.SCHED_FIFO), os.sched_get_priority_max(
            os.SCHED_FIFO)
        os.sched_setscheduler(tid, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK,
                              os.sched_param(min(max(priority, lo), hi)))
    except OSError as exc:
        why = (f"SCHED_FIFO {priority} for the engine thread was refused ({exc.strerror}): "
               "it needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least that")
        logger.warning("%s; running at normal priority", why)
        return why
    return ""


def below_engine(priority: int, tid: int = 0) -> str:
    """Thread ``tid`` (0: the calling one) one step below an engine at ``priority`` (0:
    the engine is not real-time, so neither is this thread)."""
    return engine_priority(max(1, priority - 1), tid) if priority > 0 else ""
