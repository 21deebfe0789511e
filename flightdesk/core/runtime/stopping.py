"""Shutdown's parts that must not hold it up: strategies' ``on_stop`` and plugins'
``flightdesk_shutdown`` run on a thread of their own and are given up on after their share
of ``[desk] shutdown_timeout_s`` (named in the log), so the store still closes in time."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flightdesk.core.runtime.desk import Desk

logger = logging.getLogger("flightdesk.core.runtime.desk")


def stop_plugins(desk: Desk, timeout: float) -> bool:
    """Every strategy's ``on_stop``, then the plugins' ``flightdesk_shutdown``; False if
    they were given up on after ``timeout`` s."""
    current = [""]

    def run() -> None:
        for slot in list(desk.core.slots):
            current[0] = f"strategy {slot.name}'s on_stop"
            try:
                slot.strategy.on_stop()
            except Exception:
                logger.exception("strategy %s failed in on_stop", slot.name)
        current[0] = "a plugin's flightdesk_shutdown"
        try:
            desk.rt.pm.hook.flightdesk_shutdown(desk=desk)
        except Exception:
            logger.exception("a plugin failed in flightdesk_shutdown")

    thread = threading.Thread(target=run, name="flightdesk-plugin-stop", daemon=True)
    thread.start()
    thread.join(max(0.0, timeout))
    if thread.is_alive():
        logger.error("gave up on %s after %.1f s; shutting down without it", current[0],
                     timeout)
        return False
    return True


def left(deadline: float) -> float:
    """Seconds until ``deadline`` (at least a little, so each part may still finish)."""
    return max(0.1, deadline - time.monotonic())
