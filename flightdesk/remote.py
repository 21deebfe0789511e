"""Run a strategy in another process against a desk, over Flight ``do_exchange``.

::

    import flightdesk.remote
    from my_plugin import Momentum
    flightdesk.remote.run("grpc://127.0.0.1:8815", Momentum, {"venue": "sim"})

The same :class:`flightdesk.Strategy` class that runs in the desk runs here unchanged: it
gets ``on_start(ctx)``, one ``on_batch`` per market batch the desk sends, and ``on_stop()``.
Its signals go back to the desk and take the same path as in-process signals (risk, paper
broker, portfolio, store); with the kill switch on they are rejected like any other.
``ctx.risk`` is the desk's ``[risk]`` table; ``ctx.positions()`` asks the desk for the
strategy's own positions. ``on_fills`` is not called remotely: read the ``fills`` stream instead.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from flightdesk.core import schemas
from flightdesk.core.runtime.isolation import check_signals
from flightdesk.sdk.strategy import Strategy, StrategyContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RemoteResult:
    """What a remote run did: batches received, signal rows sent, seconds connected."""

    batches: int
    rows: int
    signals: int
    seconds: float


def run(url: str, strategy_class: type[Strategy], config: Mapping[str, Any] | None = None, *,
        name: str | None = None, subscribe: Mapping[str, Any] | None = None,
        max_batches: int | None = None, stop: threading.Event | None = None,
        token: str | None = None) -> RemoteResult:
    """Run ``strategy_class`` against the desk at ``url`` until the desk ends the exchange,
    ``max_batches`` batches were handled or ``stop`` is set."""
    cfg = {**strategy_class.DEFAULTS, **(config or {})}
    name = name or str(cfg.get("type") or strategy_class.__name__.lower())
    strategy = strategy_class(name, cfg)
    options = _options(token)
    client = flight.connect(url)
    try:
        return _Session(client, options, strategy, _subscription(strategy, subscribe)).run(
            max_batches, stop)
    finally:
        client.close()


def _options(token: str | None) -> flight.FlightCallOptions:
    if not token:
        return flight.FlightCallOptions()
    return flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])


def _subscription(strategy: Strategy, subscribe: Mapping[str, Any] | None) -> dict[str, Any]:
    if subscribe is not None:
        return dict(subscribe)
    sub: dict[str, Any] = {"stream": strategy.streams[0] if strategy.streams else "quotes"}
    if strategy.config.get("venue"):
        sub["venues"] = [str(strategy.config["venue"])]
    if strategy.config.get("symbols"):
        sub["symbols"] = [str(s) for s in strategy.config["symbols"]]
    return sub


class _Session:
    def __init__(self, client: flight.FlightClient, options: flight.FlightCallOptions,
                 strategy: Strategy, subscribe: dict[str, Any]) -> None:
        self.client = client
        self.options = options
        self.strategy = strategy
        self.subscribe = subscribe
        self.batches = self.rows = self.signals = 0

    def run(self, max_batches: int | None, stop: threading.Event | None) -> RemoteResult:
        t0 = time.monotonic()
        descriptor = flight.FlightDescriptor.for_command(json.dumps(
            {"strategy": self.strategy.name, "subscribe": self.subscribe}).encode())
        writer, reader = self.client.do_exchange(descriptor, self.options)
        with writer:
            writer.begin(schemas.schema("signals"))
            hello = self._hello(reader)
            self.strategy.on_start(self._context(hello))
            try:
                self._loop(reader, writer, max_batches, stop)
            finally:
                self.strategy.on_stop()
            writer.done_writing()
        return RemoteResult(self.batches, self.rows, self.signals, time.monotonic() - t0)

    def _hello(self, reader: flight.FlightStreamReader) -> dict[str, Any]:
        chunk = reader.read_chunk()
        meta = json.loads(chunk.app_metadata.to_pybytes()) if chunk.app_metadata else {}
        if "hello" not in meta:
            raise flight.FlightError(f"the desk did not greet the exchange: {meta!r}")
        return dict(meta)

    def _context(self, hello: dict[str, Any]) -> StrategyContext:
        return StrategyContext(self.strategy.name, self.strategy.config, hello.get("risk", {}),
                               time.time_ns, self._positions,
                               logging.getLogger(f"flightdesk.remote.{self.strategy.name}"))

    def _positions(self) -> dict[tuple[str, str], float]:
        ticket = flight.Ticket(b'{"stream": "positions", "mode": "snapshot"}')
        table = self.client.do_get(ticket, self.options).read_all()
        cols = [table.column(c).to_pylist() for c in ("strategy", "venue", "symbol", "qty")]
        name = self.strategy.name  # its own rows: what its signals move
        return {(v, s): q for who, v, s, q in zip(*cols, strict=True) if who == name}

    def _loop(self, reader: flight.FlightStreamReader, writer: flight.FlightStreamWriter,
              max_batches: int | None, stop: threading.Event | None) -> None:
        while max_batches is None or self.batches < max_batches:
            if stop is not None and stop.is_set():
                return
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                return
            if chunk.data is None:
                continue
            self.batches += 1
            self.rows += chunk.data.num_rows
            out = check_signals(self.strategy.name, self.strategy.on_batch(chunk.data))
            ack = _ack(chunk.app_metadata)
            if out is None:
                writer.write_metadata(ack)
            else:
                self.signals += out.num_rows
                writer.write_with_metadata(out, ack)


def _ack(meta: pa.Buffer | None) -> pa.Buffer:
    n = json.loads(meta.to_pybytes()).get("n", 0) if meta else 0
    return pa.py_buffer(b'{"ack": %d}' % int(n))
