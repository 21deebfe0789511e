"""Remote strategies over Flight ``do_exchange`` (the server side).

The client opens an exchange with the descriptor ``{"strategy": NAME, "subscribe": {...}}``
(``subscribe`` is a live ticket: ``stream``, ``symbols``, ``venues``; default quotes). The
server first sends a metadata-only hello (``{"hello": NAME, "risk": {...}}``), then every
market batch of the subscription, each with ``{"n": k}`` as app metadata. The client answers
every batch: a ``signals`` batch, or a metadata-only message, carrying ``{"ack": k}``. The
server sends the next batch only after the answer (batches that queued meanwhile are
coalesced into one), measures each round trip, and hands the signals to the engine thread,
where they take the same path as in-process signals (checked like an in-process strategy's
batch, then risk, broker, portfolio, store) — so the kill switch stops them too.

While connected the strategy is a slot of the engine (listed by ``status``/``strategies``,
switched off by the ``strategies`` action); a batch with a wrong schema quarantines it and
ends the exchange with an error naming the field. The handler waits on its queues with a
timeout and checks the desk's stop event between batches; it blocks on a client only for the
answer to a batch it just sent (a client that stops answering holds its handler thread).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight

from flightdesk.core import schemas
from flightdesk.core.errors import TicketError
from flightdesk.core.flight.tickets import StreamRequest, parse_json, parse_request
from flightdesk.core.runtime.api import DeskAPI
from flightdesk.core.runtime.bus import Subscriber
from flightdesk.core.runtime.slots import StrategySlot
from flightdesk.sdk.strategy import Strategy

logger = logging.getLogger(__name__)

_KEYS = {"strategy", "subscribe"}


@dataclass(frozen=True, slots=True)
class ExchangeRequest:
    strategy: str
    subscribe: StreamRequest


def parse_exchange(raw: bytes) -> ExchangeRequest:
    """The do_exchange descriptor, or a TicketError saying what is wrong with it."""
    obj = parse_json(raw, "exchange descriptor")
    unknown = sorted(set(obj) - _KEYS)
    if unknown:
        raise TicketError(f"exchange descriptor has unknown key {unknown[0]!r}; keys are "
                          "strategy, subscribe")
    name = obj.get("strategy")
    if not isinstance(name, str) or not name:
        raise TicketError('exchange descriptor needs "strategy": a non-empty name')
    sub = obj.get("subscribe", {"stream": "quotes"})
    if not isinstance(sub, dict):
        raise TicketError('exchange "subscribe" must be an object like {"stream": "quotes"}')
    req = parse_request(json.dumps({"stream": "quotes", **sub}).encode(), "exchange subscribe")
    if req.mode != "live" or req.stream not in ("quotes", "trades", "book"):
        raise TicketError("exchange subscribe takes a live quotes, trades or book stream")
    return ExchangeRequest(name, req)


class RemoteStrategy(Strategy):
    """The engine's stand-in for a strategy running in another process."""

    streams: tuple[str, ...] = ()  # the engine never calls on_batch: the exchange feeds it

    def __init__(self, name: str, req: StreamRequest, peer: str) -> None:
        super().__init__(name, {"type": "remote", "venue": "", "symbols": [], "enabled": True,
                                "peer": peer, "stream": req.stream})
        #: (rows of the market batch, round trip in ns) per answered batch
        self.rtt: deque[tuple[int, int]] = deque(maxlen=100_000)
        self.dropped = 0


class ExchangeSession:
    """One remote strategy's exchange (see the module docstring)."""

    def __init__(self, desk: DeskAPI, req: ExchangeRequest, peer: str) -> None:
        self.desk = desk
        self.req = req
        self.remote = RemoteStrategy(req.strategy, req.subscribe, peer)
        self.slot = StrategySlot(self.remote)
        self.sent: dict[int, tuple[int, int]] = {}
        self.n = 0

    def run(self, reader: flight.MetadataRecordBatchReader,
            writer: flight.MetadataRecordBatchWriter) -> None:
        self.desk.call(self._attach)
        sub = self.desk.subscribe(self.req.subscribe.stream,
                                  params={"peer": f"exchange:{self.req.strategy}"})
        try:
            writer.begin(schemas.schema(self.req.subscribe.stream))
            hello = {"hello": self.req.strategy, "risk": dict(self.desk.config["risk"])}
            writer.write_metadata(pa.py_buffer(json.dumps(hello).encode()))
            self._loop(sub, reader, writer)
        finally:
            self.desk.unsubscribe(sub)
            self.desk.call(lambda: self.desk.detach_strategy(self.slot))

    def _loop(self, sub: Subscriber, reader: flight.MetadataRecordBatchReader,
              writer: flight.MetadataRecordBatchWriter) -> None:
        stop = self.desk.stop_event
        while not stop.is_set():
            batch = self._next(sub)
            if batch is None:
                continue
            self._send(writer, batch)
            try:
                chunk = reader.read_chunk()  # the client answers every batch
            except StopIteration:
                return
            self._ack(chunk.app_metadata)
            batch = chunk.data
            if batch is not None and batch.num_rows:
                error = self.desk.call(functools.partial(self._submit, batch))
                if error:
                    raise flight.FlightServerError(error)

    def _next(self, sub: Subscriber) -> pa.RecordBatch | None:
        """Everything queued for this client as one batch (coalesced while it was busy)."""
        batches = sub.drain(timeout=0.1, limit=sub.maxlen)
        if not batches:
            return None
        batch = self._filter(batches[0] if len(batches) == 1 else pa.concat_batches(batches))
        return batch if batch.num_rows else None

    def _send(self, writer: flight.MetadataRecordBatchWriter, batch: pa.RecordBatch) -> None:
        self.n += 1
        self.sent[self.n] = (batch.num_rows, time.perf_counter_ns())
        writer.write_with_metadata(batch, pa.py_buffer(b'{"n": %d}' % self.n))

    def _ack(self, meta: Any) -> None:
        if meta is None:
            return
        try:
            k = int(json.loads(meta.to_pybytes())["ack"])
        except (ValueError, KeyError, TypeError):
            return
        sent = self.sent.pop(k, None)
        if sent is not None:
            self.remote.rtt.append((sent[0], time.perf_counter_ns() - sent[1]))

    def _filter(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        req = self.req.subscribe
        if req.symbols:
            batch = batch.filter(pc.is_in(batch.column("symbol"), pa.array(req.symbols)))
        if req.venues:
            batch = batch.filter(pc.is_in(batch.column("venue"), pa.array(req.venues)))
        return batch

    # -- on the engine thread -------------------------------------------------------
    def _attach(self) -> None:
        try:
            self.desk.attach_strategy(self.slot)
        except ValueError as exc:  # the name is taken
            raise flight.FlightServerError(str(exc)) from exc

    def _submit(self, batch: pa.RecordBatch) -> str:
        """Run a remote signals batch through the trading path; an error message or ''."""
        if self.slot.enabled or self.slot.quarantined:
            return self.desk.submit_signals(self.slot, batch)
        self.remote.dropped += batch.num_rows
        return ""


def serve_exchange(desk: DeskAPI, descriptor: flight.FlightDescriptor,
                   reader: flight.MetadataRecordBatchReader,
                   writer: flight.MetadataRecordBatchWriter, peer: str = "flight") -> None:
    """The body of ``DeskFlightServer.do_exchange``."""
    try:
        req = parse_exchange(descriptor.command or b"")
    except TicketError as exc:
        raise flight.FlightServerError(str(exc)) from exc
    ExchangeSession(desk, req, peer).run(reader, writer)
