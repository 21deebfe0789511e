"""``[flight] data_process``: live fan-out, history and SQL served by a second process.

Flight handlers are Python: every live write, Parquet decode and SQL result passes through
the interpreter, and in the desk's own process they take the GIL from the engine thread
(ARCHITECTURE, "Handlers share the GIL"). With ``data_process = true`` the desk starts
:mod:`flightdesk.core.flight.dataserver` and

- forwards each live stream that has subscribers there once — one bus subscriber and one
  ``do_put`` per stream, written on a forwarder thread (Arrow IPC encoding and the socket
  write run without the GIL) — however many clients subscribe there;
- answers ``get_flight_info`` for live market data, history and Flight SQL with an endpoint
  at the data-plane process's location, as Flight intends (ADBC clients and
  :func:`flightdesk.connect` follow it); a ticket sent straight to the desk's own port is
  still served there;
- merges its subscribers and counters into ``status``.

The forwarder's buffers are bounded like any subscriber's: if the data plane stops
reading, the desk drops (counted in ``status``) rather than waits. If the process dies,
the desk logs it, counts it and serves everything itself again. The process is started
from the desk's service thread, so it inherits ``[desk] service_nice``; it never inherits
``[desk] engine_priority``. Mutual TLS is not supported with it yet (a clear error).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import subprocess
import sys
import threading
import time
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from flightdesk.core.errors import ConfigError
from flightdesk.core.flight.auth import FEED_HEADER
from flightdesk.core.flight.dataserver import FORWARDED
from flightdesk.core.flight.tickets import StreamRequest
from flightdesk.core.runtime.api import DeskAPI
from flightdesk.core.runtime.priority import below_engine

logger = logging.getLogger(__name__)

#: batches a forwarder may hold while the data plane catches up (then the oldest drop)
FORWARD_BUFFER = 4096
_DRAIN_MAX = 64
POLL_S = 0.001  # forwarder's sleep between polls while data flows
IDLE_POLL_S = 0.01  # ... and after 200 empty polls
DEMAND_S = 0.25  # how often the forwarder asks which streams have subscribers there


class DataPlane:
    """The desk's side of the data-plane process (see the module docstring)."""

    def __init__(self, desk: DeskAPI, desk_uri: str, priority: int = 0,
                 start_timeout: float = 30.0) -> None:
        cfg = desk.config["flight"]
        if cfg["tls_ca"]:
            raise ConfigError("flight.data_process does not work with mutual TLS "
                              "(flight.tls_ca) yet; turn one of them off",
                              key="flight.data_process")
        self.desk = desk
        self._secret = secrets.token_hex(16)
        spec = {"config": desk.config.to_dict(), "secret": self._secret,
                "desk_uri": desk_uri, "history_root": str(desk.history_root),
                "store": str(desk.store_target),
                "log_level": desk.config["desk"]["log_level"]}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flightdesk.core.flight.dataserver"], text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(spec, default=str) + "\n")
        self.proc.stdin.flush()
        self.uri = _read_line(self.proc.stdout, start_timeout)
        if not self.uri:
            self.proc.kill()
            raise RuntimeError(f"the data-plane process did not start (exit code "
                               f"{self.proc.wait()}); see its log above")
        kwargs: dict[str, Any] = {}
        if self.uri.startswith("grpc+tls"):  # our own child, authenticated by the secret
            kwargs["disable_server_verification"] = True
        self.client = flight.FlightClient(self.uri.replace("0.0.0.0", "127.0.0.1"), **kwargs)
        feed = [(FEED_HEADER.encode(), self._secret.encode())]
        self.options = flight.FlightCallOptions(headers=feed, timeout=10.0)
        self._status_options = flight.FlightCallOptions(headers=feed, timeout=2.0)
        self._put_options = flight.FlightCallOptions(headers=feed)  # open-ended streams
        self.alive = True
        self.failures = 0
        self.forwarded: dict[str, int] = dict.fromkeys(FORWARDED, 0)
        self._stop = threading.Event()
        self._subs: dict[str, Any] = {}  # the streams someone reads there (see _follow)
        self._wanted: frozenset[str] = frozenset()  # ... as last asked (see _ask)
        self._writers: dict[str, Any] = {}
        self._schemas: dict[str, pa.Schema] = {}
        self._thread = threading.Thread(target=self._forward, args=(priority,), daemon=True,
                                        name="flightdesk-forward")
        self._thread.start()
        self._asker = threading.Thread(target=self._ask, args=(priority,), daemon=True,
                                       name="flightdesk-forward-demand")
        self._asker.start()

    def running(self) -> bool:
        """Whether the process is up (noticing, and saying once, when it has exited)."""
        if self.alive and self.proc.poll() is not None:
            self._died(f"exited with code {self.proc.returncode}")
        return self.alive

    def serves(self, req: StreamRequest) -> bool:
        """Whether clients asking for ``req`` are sent to the data-plane process."""
        return self.running() and (
            req.mode == "history" or (req.mode == "live" and req.stream in FORWARDED))

    def flight_info(self, descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        """The data plane's answer for a Flight SQL statement query (which runs there)."""
        try:
            return self.client.get_flight_info(descriptor, self.options)
        except flight.FlightUnavailableError as exc:
            self._died(f"unreachable: {exc}")
            raise
        except flight.FlightError as exc:
            raise flight.FlightServerError(_message(exc)) from None

    def stats(self) -> dict[str, Any]:
        """The process's own status, with ``alive``, ``failures`` and rows forwarded."""
        out: dict[str, Any] = {"uri": self.uri, "alive": self.alive, "failures": self.failures,
                               "forwarded_rows": dict(self.forwarded), "pid": self.proc.pid}
        if self.alive:
            try:
                result = next(iter(self.client.do_action(flight.Action("status", b""),
                                                         self._status_options)))
                out.update(json.loads(result.body.to_pybytes()))
            except flight.FlightError as exc:
                out["error"] = _message(exc)
        return out

    def _forward(self, priority: int) -> None:
        """One thread for all the streams: it polls (sleeping ``POLL_S`` while there is
        nothing) instead of being woken per batch, so the engine thread hands it the GIL
        about a thousand times a second, not once per batch per stream; and it runs just
        below the engine's real-time priority when that is on, so no process on the box
        can preempt it while it holds the GIL the engine waits for."""
        below_engine(priority)
        idle = 0
        try:
            while not self._stop.is_set():
                if self._wanted != self._subs.keys():
                    self._follow(self._wanted)
                moved = 0
                for stream, sub in self._subs.items():
                    batches = sub.drain(limit=_DRAIN_MAX)
                    if batches:
                        moved += self._write(stream, batches)
                idle = 0 if moved else idle + 1
                if not self._subs:
                    time.sleep(DEMAND_S / 5)
                else:
                    time.sleep(POLL_S if idle < 200 else IDLE_POLL_S)
        except Exception as exc:  # noqa: BLE001 - the process went away, or refused us
            if not self._stop.is_set():
                self._died(f"forwarding failed: {exc}")
        finally:
            for sub in self._subs.values():
                self.desk.unsubscribe(sub)
            for writer in self._writers.values():
                with contextlib.suppress(Exception):  # closing a broken stream
                    writer.close()

    def _ask(self, priority: int) -> None:
        """Which forwarded streams have subscribers in the data plane, every ``DEMAND_S``
        (a thread of its own, so the forwarder never waits on the data plane's answer;
        like the forwarder it takes the GIL, so it runs in the engine's class too)."""
        below_engine(priority)
        while not self._stop.wait(DEMAND_S):
            if not self.alive:
                return
            try:
                result = next(iter(self.client.do_action(flight.Action("demand", b""),
                                                         self._status_options)))
            except flight.FlightError as exc:
                if not self._stop.is_set() and self.proc.poll() is not None:
                    self._died(f"exited with code {self.proc.returncode}")
                logger.debug("data-plane demand: %s", exc)
                continue
            self._wanted = frozenset(json.loads(result.body.to_pybytes())) & frozenset(
                FORWARDED)

    def _follow(self, wanted: frozenset[str]) -> None:
        """Forward just the streams that have subscribers in the data plane: a desk
        nobody reads from there pays nothing for it (a new subscriber's first batch comes
        within ``DEMAND_S``; from then on its ``seq`` runs without gaps)."""
        for stream in wanted - self._subs.keys():
            self._subs[stream] = self.desk.subscribe(stream, FORWARD_BUFFER,
                                               {"forward": "data-plane"})
        for stream in self._subs.keys() - wanted:
            self.desk.unsubscribe(self._subs.pop(stream))

    def _write(self, stream: str, batches: list[pa.RecordBatch]) -> int:
        """Send ``batches`` in order, each run with one schema as one batch."""
        rows = 0
        run = [batches[0]]
        for batch in batches[1:]:
            if batch.schema.equals(run[0].schema):
                run.append(batch)
            else:
                rows += self._send(stream, run)
                run = [batch]
        return rows + self._send(stream, run)

    def _send(self, stream: str, run: list[pa.RecordBatch]) -> int:
        batch = pa.concat_batches(run) if len(run) > 1 else run[0]
        writer = self._writers.get(stream)
        if writer is None or not batch.schema.equals(self._schemas[stream]):
            if writer is not None:
                writer.close()
            descriptor = flight.FlightDescriptor.for_command(json.dumps({"stream": stream}))
            writer, _ = self.client.do_put(descriptor, batch.schema, self._put_options)
            self._writers[stream] = writer
            self._schemas[stream] = batch.schema
        writer.write_batch(batch)
        self.forwarded[stream] += batch.num_rows
        return batch.num_rows

    def _died(self, why: str) -> None:
        if self.alive:
            self.alive = False
            self.failures += 1
            logger.error("data-plane process %s: %s; the desk serves live data, history "
                         "and SQL itself from now on", self.uri, why)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._asker.join(timeout)
        self.alive = False
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.client.close()


def _read_line(stream: Any, timeout: float) -> str:
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return out[0].strip() if out else ""


def _message(exc: BaseException) -> str:
    """The server's own message, without gRPC's decoration."""
    text = str(exc)
    for cut in (". Detail:", ". gRPC client debug context:"):
        text = text.split(cut, 1)[0]
    return text
