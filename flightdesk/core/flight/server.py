"""The desk's Flight server: streams, snapshots, stored history, actions.

Handlers stay thin: live ``do_get`` reads a bounded per-subscriber buffer on the bus with
a timeout and checks the desk's stop event, so ``shutdown()`` never waits on a stream;
anything that touches engine state runs on the engine thread through ``desk.call``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight

from flightdesk.core import schemas
from flightdesk.core.errors import TicketError
from flightdesk.core.flight.tickets import StreamRequest, parse_json, parse_request

logger = logging.getLogger(__name__)

LIVE_STREAMS = ("quotes", "trades", "orders", "fills", "positions", "events")
STORED_STREAMS = ("orders", "fills", "positions", "events")
ACTIONS = {
    "status": "desk status: feeds, books, counters, subscribers, store (JSON)",
    "kill": 'kill switch: body {"on": true|false} (default on); on also cancels open orders',
    "strategies": "the configured strategies and their state (JSON)",
}


class DeskFlightServer(flight.FlightServerBase):
    """Serves one desk (see the module docstring)."""

    def __init__(self, desk: Any, location: str, **kwargs: Any) -> None:
        super().__init__(location, **kwargs)
        self.desk = desk
        self.host = location.split("://", 1)[-1].rsplit(":", 1)[0]
        self.errors = 0

    @property
    def uri(self) -> str:
        return f"grpc://{self.host}:{self.port}"

    # -- discovery ------------------------------------------------------------------
    def list_flights(self, context: Any, criteria: bytes) -> Iterator[flight.FlightInfo]:
        for stream in schemas.stream_names():
            yield self._info(StreamRequest(stream))

    def get_flight_info(self, context: Any, descriptor: flight.FlightDescriptor
                        ) -> flight.FlightInfo:
        return self._info(self._descriptor_request(descriptor))

    def get_schema(self, context: Any, descriptor: flight.FlightDescriptor
                   ) -> flight.SchemaResult:
        return flight.SchemaResult(self._schema(self._descriptor_request(descriptor)))

    def _descriptor_request(self, descriptor: flight.FlightDescriptor) -> StreamRequest:
        if descriptor.descriptor_type == flight.DescriptorType.PATH:
            raw = json.dumps({"stream": b"/".join(descriptor.path).decode()}).encode()
        else:
            raw = descriptor.command
        return self._guard(parse_request, raw, "descriptor")

    def _info(self, req: StreamRequest) -> flight.FlightInfo:
        descriptor = flight.FlightDescriptor.for_command(req.to_json())
        endpoint = flight.FlightEndpoint(req.to_json(), [self.uri])
        return flight.FlightInfo(self._schema(req), descriptor, [endpoint], -1, -1)

    @staticmethod
    def _schema(req: StreamRequest) -> pa.Schema:
        schema = schemas.schema(req.stream)
        if req.columns:
            schema = pa.schema([schema.field(c) for c in req.columns],
                               metadata=schema.metadata)
        return schema

    # -- data -----------------------------------------------------------------------
    def do_get(self, context: Any, ticket: flight.Ticket) -> flight.FlightDataStream:
        req = self._guard(parse_request, ticket.ticket, "ticket")
        if req.mode == "live":
            if req.stream not in LIVE_STREAMS:
                self._fail(f"stream {req.stream!r} has no live mode here; live streams are "
                           f"{', '.join(LIVE_STREAMS)}")
            reader = pa.RecordBatchReader.from_batches(self._schema(req), self._live(req))
            return flight.RecordBatchStream(reader)
        if req.mode == "snapshot":
            return flight.RecordBatchStream(self._project(req, self.desk.snapshot(req)))
        return flight.RecordBatchStream(self._project(req, self._history(req)))

    def _live(self, req: StreamRequest) -> Iterator[pa.RecordBatch]:
        bus = self.desk.bus
        sub = bus.subscribe(req.stream, params={"peer": "flight", "symbols": list(req.symbols)})
        stop = self.desk.stop_event
        try:
            while not stop.is_set():
                batch = sub.get(timeout=0.2)
                if batch is None:
                    continue
                batch = self._filter(req, batch)
                if batch.num_rows:
                    yield self._project(req, batch)
        finally:
            bus.unsubscribe(sub)

    @staticmethod
    def _filter(req: StreamRequest, batch: pa.RecordBatch) -> pa.RecordBatch:
        if req.symbols and "symbol" in batch.schema.names:
            batch = batch.filter(pc.is_in(batch.column("symbol"), pa.array(req.symbols)))
        if req.venues and "venue" in batch.schema.names:
            batch = batch.filter(pc.is_in(batch.column("venue"), pa.array(req.venues)))
        return batch

    @staticmethod
    def _project(req: StreamRequest, data: Any) -> Any:
        return data.select(list(req.columns)) if req.columns else data

    def _history(self, req: StreamRequest) -> pa.Table:
        if req.stream not in STORED_STREAMS:
            self._fail(f"history of {req.stream!r} needs the Parquet market-data history; "
                       f"stored streams are {', '.join(STORED_STREAMS)}")
        table = self.desk.store.query(f"SELECT * FROM {req.stream} ORDER BY rowid")
        table = schemas.conform(req.stream, table)
        if req.start is not None:
            table = table.filter(pc.greater_equal(table.column("ts"), req.start))
        if req.end is not None:
            table = table.filter(pc.less(table.column("ts"), req.end))
        table = self._filter(req, table)
        return table.slice(0, req.limit) if req.limit is not None else table

    # -- actions --------------------------------------------------------------------
    def list_actions(self, context: Any) -> list[tuple[str, str]]:
        return list(ACTIONS.items())

    def do_action(self, context: Any, action: flight.Action) -> Iterator[bytes]:
        kind = action.type
        body = action.body.to_pybytes() if action.body is not None else b""
        if kind == "status":
            result: Any = self.desk.status()
        elif kind == "kill":
            args = self._guard(parse_json, body, "kill body") if body.strip() else {}
            on = args.get("on", True)
            if not isinstance(on, bool):
                self._fail(f'kill body "on" must be true or false, got {on!r}')
            result = self.desk.kill(on)
        elif kind == "strategies":
            result = self.desk.strategies()
        else:
            self._fail(f"unknown action {kind!r}; actions are {', '.join(ACTIONS)}")
        yield json.dumps(result, default=str).encode()

    # -- errors ---------------------------------------------------------------------
    def _guard(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except TicketError as exc:
            self._fail(str(exc))

    def _fail(self, message: str) -> Any:
        self.errors += 1
        raise flight.FlightServerError(message)
