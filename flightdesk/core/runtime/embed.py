"""``flightdesk.Engine``: a desk embedded in a script or notebook.

::

    with flightdesk.Engine() as eng:          # the embedded default: sim venue + threshold
        time.sleep(5)
        print(eng.positions())
        eng.kill()
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from flightdesk.core.runtime.config import Config, load_config
from flightdesk.core.runtime.desk import Desk


class Engine:
    """Runs a :class:`Desk` on a background thread; a context manager.

    ``config`` is a :class:`Config`, a path to a TOML file, or a nested dict of overrides
    over the defaults (e.g. ``{"flight": {"port": 0}}``). ``plugins`` are extra plugin
    objects (modules or instances with ``@hookimpl`` functions) registered for this desk.
    ``tune_process=True`` applies ``[desk] switch_interval_us``, ``service_nice`` and
    ``engine_priority`` (process-wide; the priority goes to the engine's background thread)
    as ``flightdesk serve`` does, until :meth:`stop`; by default the process is left alone.
    ``live=True`` is ``serve --live``: venue executors may send real orders.
    """

    def __init__(self, config: Config | str | os.PathLike[str] | Mapping[str, Any] | None = None,
                 start_timeout: float = 30.0, plugins: Sequence[object] = (),
                 tune_process: bool = False, live: bool = False) -> None:
        if isinstance(config, Config):
            self.config = config
        elif isinstance(config, str | os.PathLike):
            self.config = load_config(config)
        else:
            self.config = load_config(overrides=config)
        self.start_timeout = start_timeout
        self.desk = Desk(self.config, plugins=plugins, tune_process=tune_process, live=live)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> Engine:
        self._thread = threading.Thread(target=self._run, name="flightdesk-engine", daemon=True)
        self._thread.start()
        while not self.desk.ready_event.wait(0.05):
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"desk failed to start: {self._error}") from self._error
            if self.start_timeout <= 0:
                raise TimeoutError("desk did not become ready")
            self.start_timeout -= 0.05
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self.desk.main())
        except BaseException as exc:  # surfaced by start()/stop()
            self._error = exc

    def stop(self, timeout: float | None = None) -> None:
        """Stop the desk; returns within ``timeout`` s (default: ``[desk]
        shutdown_timeout_s`` and a second), however stuck its Flight clients are."""
        self.desk.stop()
        if timeout is None:
            timeout = float(self.config["desk"]["shutdown_timeout_s"]) + 1.0
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- reads and control ---------------------------------------------------------------
    @property
    def flight_uri(self) -> str | None:
        return self.desk.flight.uri if self.desk.flight is not None else None

    def status(self) -> dict[str, Any]:
        return self.desk.status()

    def positions(self) -> pa.Table:
        return self.desk.positions_table()

    def orders(self) -> pa.Table:
        self.desk.store.flush()
        return self.desk.store.read("orders")

    def fills(self) -> pa.Table:
        self.desk.store.flush()
        return self.desk.store.read("fills")

    def kill(self, on: bool = True) -> dict[str, Any]:
        return self.desk.kill(on)
