"""``SimExchangeThread``: the sim exchange on its own event loop in a daemon thread, as a
separate party would be (tests, benches and the ``sim`` venue use it)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from typing import Any

from flightdesk.plugins.venues.sim.exchange import SimExchange
from flightdesk.plugins.venues.sim.limits import Faults

log = logging.getLogger(__name__)


class SimExchangeThread:
    """A :class:`SimExchange` on its own event loop in a daemon thread: a separate party.

    Takes the arguments of :class:`SimExchange`. ``start()`` blocks until it listens;
    ``stop()`` shuts it down and joins the thread (within ``timeout`` seconds).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.exchange = SimExchange(*args, **kwargs)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 5.0) -> SimExchangeThread:
        """Start the thread; return self once the exchange listens (raise if it failed)."""
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(),), name="sim-exchange", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("sim exchange did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the exchange and join its thread."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("sim exchange thread did not stop within %.1fs", timeout)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.exchange.start()
        except BaseException as exc:  # handed to start() in the caller's thread
            self._error = exc
            return
        finally:
            self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.exchange.stop()

    def __enter__(self) -> SimExchangeThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self.exchange.port

    @property
    def rest_url(self) -> str:
        return self.exchange.rest_url

    def ws_url(
        self,
        symbols: Iterable[str] | None = None,
        channels: Iterable[str] = ("depth@100ms", "trade"),
    ) -> str:
        return self.exchange.ws_url(symbols, channels)

    @property
    def faults(self) -> Faults:
        return self.exchange.faults

    @property
    def api_key(self) -> str:
        return self.exchange.api_key

    @property
    def api_secret(self) -> str:
        return self.exchange.api_secret

    def stats(self) -> dict[str, int]:
        return self.exchange.stats()
