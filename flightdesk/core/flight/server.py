"""The desk's Flight server: streams, snapshots, history, ingestion, actions, Flight SQL.

Handlers stay thin: live ``do_get`` reads a bounded per-subscriber buffer on the bus with
a timeout and checks the desk's stop event, so ``shutdown()`` never waits on a stream, and
a stalled client only loses its own oldest batches (counted, visible as a ``seq`` gap);
anything that touches engine state runs on the engine thread through ``desk.call``.
Tickets are JSON (see ``tickets``) or Flight SQL ``Any`` messages (queries: see ``sql``;
catalogue commands, whose ticket is the command itself: see ``sql_catalog``); callers are
authenticated by ``auth`` when the desk has tokens.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight

from flightdesk.core import schemas
from flightdesk.core.errors import FlightdeskError, SchemaError, TicketError
from flightdesk.core.flight import history_reader as history
from flightdesk.core.flight.actions import ACTIONS, parse_args
from flightdesk.core.flight.auth import MIDDLEWARE_KEY, Role, require
from flightdesk.core.flight.book_view import BookView
from flightdesk.core.flight.closing import OpenCalls, shutdown_within
from flightdesk.core.flight.exchange import serve_exchange
from flightdesk.core.flight.hygiene import Unsupported, guard_stream, hygienic
from flightdesk.core.flight.ingest import PUT_STREAMS, Ingestor
from flightdesk.core.flight.sql import (
    SQL_ACTIONS,
    STATEMENTS,
    ResultCache,
    SqlService,
    unpack_any,
)
from flightdesk.core.flight.sql_catalog import COMMANDS as CATALOGUE
from flightdesk.core.flight.sql_catalog import Catalogue
from flightdesk.core.flight.sql_pool import QueryPool, SqlLimits
from flightdesk.core.flight.streams import StreamSlots
from flightdesk.core.flight.tickets import StreamRequest, parse_request
from flightdesk.core.runtime.api import DeskAPI

if TYPE_CHECKING:
    from flightdesk.core.flight.dataplane import DataPlane

logger = logging.getLogger(__name__)

LIVE_STREAMS = ("quotes", "trades", "book", "bars", "tickers", "orders", "fills", "positions",
                "events")
STORED_STREAMS = history.STORED_STREAMS


_DRAIN_MAX = 64  # queued batches coalesced into one write
_CONCAT_ROWS = 1 << 16  # ... as long as that copies at most this many rows


@hygienic  # clients get short messages, the log gets tracebacks (see flight.hygiene)
class DeskFlightServer(flight.FlightServerBase):
    """Serves one desk (see the module docstring)."""

    def __init__(self, desk: DeskAPI, location: str, data_plane_priority: int | None = None,
                 **kwargs: Any) -> None:
        """``data_plane_priority``: start a data-plane process (``[flight] data_process``),
        its forwarder at that real-time priority (0: normal); None: no data plane."""
        super().__init__(location, **kwargs)
        self.desk = desk
        # history reads take turns (SQL runs in its own processes): however many ask at once, at
        # most this many threads do that Python-heavy work, so they can't crowd the engine
        # thread out of the GIL (a stream takes its turn per batch, not for its whole life)
        self.data_gate = threading.BoundedSemaphore(
            max(1, int(desk.config["flight"]["data_workers"])))
        self.scheme, rest = location.split("://", 1)
        # the host clients are told to connect to (endpoint locations)
        self.host = str(desk.config["flight"]["advertise_host"] or rest.rsplit(":", 1)[0])
        self.errors = 0
        cfg = desk.config["flight"]
        self.ingest = Ingestor(desk, int(cfg["put_max_rows"]), int(cfg["put_slice_rows"]))
        self.auth = kwargs.get("middleware", {}).get(MIDDLEWARE_KEY)
        self.streams = StreamSlots(int(cfg["max_streams"]))
        # SQL runs on its own pool of reader processes (bounded: see flight.sql_pool)
        self.sql_pool = QueryPool(desk.store.dialect.name, str(desk.store.dialect.target),
                                  SqlLimits.from_config(cfg))
        cache = ResultCache(int(cfg["sql_cache"]), int(cfg["sql_cache_mb"]) * 1_000_000)
        self.sql = SqlService(desk.store.query, self.sql_pool.run, cache)
        self.catalogue = Catalogue(desk.store.query)  # what SQL tools browse (sql_catalog)
        self.calls = OpenCalls()  # what a shutdown that gives up names (flight.closing)
        #: the data-plane process when ``[flight] data_process`` (see flight.dataplane)
        self.data_plane: DataPlane | None = None
        if data_plane_priority is not None:
            from flightdesk.core.flight.dataplane import DataPlane

            self.data_plane = DataPlane(desk, self.uri, data_plane_priority)

    @property
    def uri(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def close(self, timeout: float) -> bool:
        """Shut down within ``timeout`` s whatever clients do (the desk's stop event must be
        set); False if calls were still open then (see flight.closing)."""
        return shutdown_within(self, timeout, self.calls)

    def stats(self) -> dict[str, Any]:
        return {"errors": self.errors, "put": self.ingest.stats(),
                "auth_refused": self.auth.refused if self.auth is not None else 0,
                "sql": self._sql_stats(), "streams": self.streams.stats()}

    def _sql_stats(self) -> dict[str, Any]:
        pool, cache, limits = self.sql_pool, self.sql.cache, self.sql_pool.limits
        return {"queries": self.sql.queries, "rejected": self.sql.rejected,
                "catalogue": self.catalogue.requests,
                "interrupted": pool.interrupted, "refused": pool.refused,
                "workers": limits.workers, "busy": pool.busy, "started": pool.started,
                "timeout_s": limits.timeout_s, "max_rows": limits.max_rows,
                "max_mb": limits.max_bytes / 1e6, "cache_results": len(cache),
                "cache_bytes": cache.bytes, "cache_max_mb": cache.max_bytes / 1e6,
                "cache_evicted": cache.evicted}

    def shutdown(self) -> None:
        """Interrupt running SQL queries (their handlers return), then stop serving."""
        self.sql_pool.close()
        super().shutdown()

    # -- discovery ------------------------------------------------------------------
    def list_flights(self, context: Any, criteria: bytes) -> Iterator[flight.FlightInfo]:
        for stream in schemas.stream_names():
            yield self._info(StreamRequest(stream))

    def get_flight_info(self, context: Any, descriptor: flight.FlightDescriptor
                        ) -> flight.FlightInfo:
        sql = self._sql_command(descriptor)
        if sql is not None:
            if sql[0] in CATALOGUE:  # the ticket is the command: DoGet answers it
                schema = self._guard(self.catalogue.schema, *sql)
                endpoint = flight.FlightEndpoint(descriptor.command, [self.uri])
                return flight.FlightInfo(schema, descriptor, [endpoint], -1, -1)
            plane = self.data_plane
            if sql[0] in STATEMENTS and plane is not None and plane.running():
                return plane.flight_info(descriptor)  # the query runs in that process
            with self.calls.open("Flight SQL query", _peer(context)):
                schema, ticket, rows = self._guard(self.sql.prepare, *sql,
                                                   context.is_cancelled)
            endpoint = flight.FlightEndpoint(ticket, [self.uri])
            return flight.FlightInfo(schema, descriptor, [endpoint], rows, -1)
        return self._info(self._descriptor_request(descriptor))

    def get_schema(self, context: Any, descriptor: flight.FlightDescriptor
                   ) -> flight.SchemaResult:
        sql = self._sql_command(descriptor)
        if sql is not None and sql[0] in CATALOGUE:
            return flight.SchemaResult(self._guard(self.catalogue.schema, *sql))
        if sql is not None:
            return flight.SchemaResult(self.get_flight_info(context, descriptor).schema)
        return flight.SchemaResult(self._schema(self._descriptor_request(descriptor)))

    @staticmethod
    def _sql_command(descriptor: flight.FlightDescriptor) -> Any:
        if descriptor.descriptor_type != flight.DescriptorType.CMD:
            return None
        return unpack_any(descriptor.command)

    def _descriptor_request(self, descriptor: flight.FlightDescriptor) -> StreamRequest:
        if descriptor.descriptor_type == flight.DescriptorType.PATH:
            raw = json.dumps({"stream": b"/".join(descriptor.path).decode()}).encode()
        else:
            raw = descriptor.command
        return self._guard(parse_request, raw, "descriptor")

    def _info(self, req: StreamRequest) -> flight.FlightInfo:
        descriptor = flight.FlightDescriptor.for_command(req.to_json())
        plane = self.data_plane
        where = plane.uri if plane is not None and plane.serves(req) else self.uri
        endpoint = flight.FlightEndpoint(req.to_json(), [where])
        return flight.FlightInfo(self._schema(req), descriptor, [endpoint], -1, -1)

    @staticmethod
    def _schema(req: StreamRequest) -> pa.Schema:
        schema = schemas.schema(req.stream)
        if req.columns:
            schema = pa.schema([schema.field(c) for c in req.columns],
                               metadata=schema.metadata)
        return schema

    # -- data out -------------------------------------------------------------------
    def do_get(self, context: Any, ticket: flight.Ticket) -> flight.FlightDataStream:
        slot = self._guard(self.streams.take)  # past [flight] max_streams: refused at once
        try:
            schema, batches = self._batches(context, ticket)
        except BaseException:
            slot.release()
            raise
        return flight.RecordBatchStream(self.streams.reader(slot, schema, batches,
                                                            wrap=guard_stream))

    def _batches(self, context: Any, ticket: flight.Ticket
                 ) -> tuple[pa.Schema, Iterable[pa.RecordBatch]]:
        sql = unpack_any(ticket.ticket)
        if sql is not None:
            if sql[0] in CATALOGUE:
                return _table_batches(self._guard(self.catalogue.table, *sql))
            if sql[0] != "TicketStatementQuery":
                self._fail(f"Flight SQL {sql[0]} is not a ticket; DoGet takes the tickets "
                           "of GetFlightInfo's endpoints")
            return _table_batches(self._guard(self.sql.take, sql[1]))
        req = self._guard(parse_request, ticket.ticket, "ticket")
        if req.mode == "live":
            if req.stream not in LIVE_STREAMS:
                self._fail(f"stream {req.stream!r} has no live mode here; live streams are "
                           f"{', '.join(LIVE_STREAMS)}")
            peer = _peer(context)
            live = self.calls.track(f"do_get live {req.stream}", peer,
                                    self._live(req, peer, context.is_cancelled))
            return self._schema(req), guard_stream(live)
        if req.mode == "snapshot":
            table = self._guard(self.desk.snapshot, req)
            return _table_batches(self._project(req, self._filter(req, table)))
        with self.data_gate:
            data = self._guard(history.history, req, self.desk)
        if isinstance(data, pa.RecordBatchReader):
            return data.schema, guard_stream(self._gated(data))
        return _table_batches(data)

    def _gated(self, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        """``reader``'s batches, each produced while holding a turn of the data gate."""
        with reader:
            while True:
                with self.data_gate:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        return
                yield batch

    def _live(self, req: StreamRequest, peer: str,
              cancelled: Callable[[], bool] = lambda: False) -> Iterator[pa.RecordBatch]:
        sub = self.desk.subscribe(req.stream,
                                  params={"peer": peer, "symbols": list(req.symbols)})
        if req.stream == "book":
            self.desk.request_book_snapshots()
        elif req.stream == "tickers":
            self.desk.request_tickers()
        stop = self.desk.stop_event
        if req.stream == "book" and (req.view_depth is not None or req.interval_ms):
            view = BookView(req.view_depth, req.interval_ms)
            try:
                yield from self._viewed(req, sub, view, cancelled)
            finally:
                self.desk.unsubscribe(sub)
            return
        try:
            while not stop.is_set():
                # what queued meanwhile goes out as one write: a reader that fell behind
                # catches up with one write instead of many (``seq`` stays contiguous)
                batches = sub.drain(timeout=0.2, limit=_DRAIN_MAX)
                if not batches and cancelled():  # a client gone from an idle stream
                    return  # (writes would tell only once data flows again)
                if len(batches) > 1 and sum(b.num_rows for b in batches) <= _CONCAT_ROWS:
                    batches = [pa.concat_batches(batches)]
                for batch in batches:  # big ones (a data plane's coalesced) go as they are
                    batch = self._filter(req, batch)
                    if batch.num_rows:
                        yield self._project(req, batch)
        finally:
            self.desk.unsubscribe(sub)

    def _viewed(self, req: StreamRequest, sub: Any, view: BookView,
                cancelled: Callable[[], bool]) -> Iterator[pa.RecordBatch]:
        """The live book through this subscriber's capped, conflated view."""
        stop = self.desk.stop_event
        while not stop.is_set():
            batches = sub.drain(timeout=view.wait_s(), limit=_DRAIN_MAX)
            if not batches and not view.dirty and cancelled():
                return
            for batch in batches:
                batch = self._filter(req, batch)
                if batch.num_rows:
                    view.feed(batch)
            out = view.emit()
            if out is not None:
                yield self._project(req, out)

    @staticmethod
    def _filter(req: StreamRequest, batch: Any) -> Any:
        if req.symbols and "symbol" in batch.schema.names:
            batch = batch.filter(pc.is_in(batch.column("symbol"), pa.array(req.symbols)))
        if req.venues and "venue" in batch.schema.names:
            batch = batch.filter(pc.is_in(batch.column("venue"), pa.array(req.venues)))
        return batch

    @staticmethod
    def _project(req: StreamRequest, data: Any) -> Any:
        return data.select(list(req.columns)) if req.columns else data

    # -- data in --------------------------------------------------------------------
    def do_put(self, context: Any, descriptor: flight.FlightDescriptor,
               reader: flight.MetadataRecordBatchReader,
               writer: flight.FlightMetadataWriter) -> None:
        sql = self._sql_command(descriptor)
        if sql is not None:  # parameters, updates, bulk ingest
            raise Unsupported(
                f"Flight SQL {sql[0]} by DoPut is not supported: the desk's SQL is read-only "
                "SELECT queries without parameters (write the values into the query)")
        require(context, Role.TRADE, "do_put")
        req = self._descriptor_request(descriptor)
        if req.stream not in PUT_STREAMS:
            self.ingest.rejected += 1
            self._fail(f"do_put takes {' or '.join(PUT_STREAMS)} batches, not {req.stream!r}")
        rows = 0
        for chunk in reader:
            if chunk.data is not None and chunk.data.num_rows:
                rows += self._guard(self.ingest.put, req.stream, chunk.data)
        writer.write(pa.py_buffer(json.dumps({"rows": rows}).encode()))

    def do_exchange(self, context: Any, descriptor: flight.FlightDescriptor,
                    reader: flight.MetadataRecordBatchReader,
                    writer: flight.MetadataRecordBatchWriter) -> None:
        """A remote strategy: market batches out, signals in (see flight/exchange.py)."""
        require(context, Role.TRADE, "do_exchange")
        slot = self._guard(self.streams.take)
        try:
            with self.calls.open("do_exchange", _peer(context)):
                serve_exchange(self.desk, descriptor, reader, writer, _peer(context))
        finally:
            slot.release()

    # -- actions --------------------------------------------------------------------
    def list_actions(self, context: Any) -> list[tuple[str, str]]:
        return [(spec.name, spec.doc) for spec in ACTIONS.values()]

    def do_action(self, context: Any, action: flight.Action) -> Iterator[bytes]:
        kind = action.type
        body = action.body.to_pybytes() if action.body is not None else b""
        if kind in SQL_ACTIONS:
            return iter(self._guard(self.sql.action, kind, body))
        spec = ACTIONS.get(kind)
        if spec is None:
            raise self._error(f"unknown action {kind!r}; actions are {', '.join(ACTIONS)}")
        args = self._guard(parse_args, body, kind)
        require(context, spec.needs(args), f"action {kind!r}")
        result = self._guard(spec.run, self.desk, args)
        return iter([json.dumps(result, default=str).encode()])

    # -- errors ---------------------------------------------------------------------
    def _guard(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (TicketError, SchemaError) as exc:
            self._fail(str(exc))
        except FlightdeskError as exc:
            self._fail(f"{type(exc).__name__}: {exc}")

    def _fail(self, message: str) -> Any:
        raise self._error(message)

    def _error(self, message: str) -> flight.FlightServerError:
        self.errors += 1
        return flight.FlightServerError(message)


def _table_batches(table: pa.Table) -> tuple[pa.Schema, list[pa.RecordBatch]]:
    return table.schema, table.to_batches()


def _peer(context: Any) -> str:
    try:
        return str(context.peer())
    except Exception:  # noqa: BLE001 - a peer name is only a label
        return "flight"



