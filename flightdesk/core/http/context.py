"""What every HTTP handler shares: the desk, the auth, the limits and the read gate."""

from __future__ import annotations

import threading
import time
from typing import Any

import pyarrow as pa

from flightdesk.core.flight import history_reader
from flightdesk.core.flight.streams import StreamSlots
from flightdesk.core.flight.tickets import StreamRequest
from flightdesk.core.http.auth import ApiError, HttpAuth
from flightdesk.core.runtime.api import DeskAPI

_HISTORY_TRIES = 4


class HttpContext:
    """The desk and the HTTP server's shared state (one per server)."""

    def __init__(self, desk: DeskAPI, auth: HttpAuth) -> None:
        self.desk = desk
        self.auth = auth
        self.cfg = desk.config["telemetry"]
        #: history and store reads take turns, as on Flight ([flight] data_workers): however
        #: many clients ask at once, that many threads do the Python-heavy decoding, so they
        #: cannot crowd the engine thread out of the GIL
        self.data_gate = threading.BoundedSemaphore(
            max(1, int(desk.config["flight"]["data_workers"])))
        #: open ``/events`` streams, at most ``[telemetry] events_max_clients`` (then 429)
        self.events = StreamSlots(int(self.cfg["events_max_clients"]))
        #: set when the server stops (the desk's stop event ends streams too)
        self.closing = threading.Event()
        self.requests = 0
        self.errors = 0
        #: the OpenAPI document, built once when the app is (see ``http.app.build_app``)
        self.openapi: dict[str, Any] = {}
        self._risk: dict[str, Any] = {}
        self._risk_at = 0.0
        self._risk_lock = threading.Lock()

    @property
    def stopping(self) -> bool:
        return self.closing.is_set() or self.desk.stop_event.is_set()

    def history(self, req: StreamRequest) -> pa.Table:
        """A Flight ``mode: history`` read (the same reader), as one table."""
        if req.stream in history_reader.MARKET_STREAMS:
            path = self.desk.history_root / req.stream
            if not path.is_dir():
                raise ApiError(404, f"no {req.stream} history: {path} does not exist; turn "
                                    "on [store] history = true (or point [store] "
                                    "history_dir at a Parquet dataset)")
        for attempt in range(_HISTORY_TRIES):
            try:
                with self.data_gate:
                    data = history_reader.history(req, self.desk)
                    return data.read_all() if isinstance(data, pa.RecordBatchReader) else data
            except pa.ArrowInvalid as exc:
                # the history writer writes its files in place: a read can meet one that is
                # half written ("Parquet magic bytes not found"); it is whole moments later
                if "Parquet" not in str(exc) or attempt == _HISTORY_TRIES - 1:
                    raise ApiError(503, f"the {req.stream} history could not be read (a file "
                                        f"is being written?): {exc}; retry") from exc
                time.sleep(0.05)
        raise AssertionError("unreachable")

    def risk(self, max_age_s: float = 1.0) -> dict[str, Any]:
        """Kill switch, risk mode, PnL and open orders, read at most once a second however
        many ``/events`` clients ask (each read is a status call on the engine thread)."""
        with self._risk_lock:
            if time.monotonic() - self._risk_at >= max_age_s:
                status = self.desk.status()
                self._risk = {"kill_switch": status["kill_switch"],
                              "risk_mode": status["risk_mode"], "pnl": status["pnl"],
                              "open_orders": status["open_orders"]}
                self._risk_at = time.monotonic()
            return self._risk

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "auth": self.auth.stats(),
                "events": self.events.stats()}
