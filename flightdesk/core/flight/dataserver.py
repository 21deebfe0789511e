"""The data-plane process: live market data, history and Flight SQL, off the engine's GIL.

Started by :class:`flightdesk.core.flight.dataplane.DataPlane` as
``python -m flightdesk.core.flight.dataserver``; reads one JSON line on stdin (the desk's
config, the feed secret, the store and history locations), prints its Flight URI, and
serves until stdin closes. The desk feeds it every live stream it forwards with one
``do_put`` per stream (authenticated by the per-run feed secret); it fans them out to its
own subscribers with the same bounded buffers, filters and projections as the desk.
History reads the same Parquet files and Flight SQL the same store file (SQLite in WAL
mode: readers never block the desk's writer). Everything that needs the engine — snapshots,
the ``book`` stream, ``do_exchange``, external ``do_put``, state-changing actions — stays
on the desk's own port; its ``get_flight_info`` routes clients here.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pyarrow.flight as flight

from flightdesk.core.errors import TicketError
from flightdesk.core.flight.auth import Role, caller_role, server_options
from flightdesk.core.flight.hygiene import hygienic
from flightdesk.core.flight.server import DeskFlightServer
from flightdesk.core.flight.sql import SQL_ACTIONS, unpack_any
from flightdesk.core.flight.tickets import parse_request
from flightdesk.core.runtime.bus import Bus, Subscriber
from flightdesk.core.runtime.config import Config
from flightdesk.core.storage.store import Store

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: the live streams the desk forwards here (``book`` needs the engine's books: it stays)
FORWARDED = ("quotes", "trades", "bars", "orders", "fills", "positions", "events")


class DataDesk:
    """The ``DeskAPI`` of the data plane: the store, history and its own bus, no engine
    (the server refuses what needs one before it gets here; these say so all the same)."""

    def __init__(self, config: Config, store: Store, history_root: Path) -> None:
        self.config = config
        self.store = store
        self.store_target: str | Path = store.path
        self.history_root = history_root
        self.bus = Bus(int(config["flight"]["subscriber_buffer"]))
        self.stop_event = threading.Event()
        self.ready_event = threading.Event()
        self.ready_event.set()
        self.started_ns = time.time_ns()

    def call(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        return fn()

    def subscribe(self, stream: str, maxlen: int | None = None,
                  params: dict[str, Any] | None = None) -> Subscriber:
        return self.bus.subscribe(stream, maxlen, params)

    def unsubscribe(self, sub: Subscriber) -> None:
        self.bus.unsubscribe(sub)

    def has_subscribers(self, stream: str) -> bool:
        return self.bus.has_subscribers(stream)

    def subscriber_stats(self) -> list[dict[str, Any]]:
        return self.bus.stats()

    def request_book_snapshots(self) -> None:
        """No books here (``book`` stays on the desk's port)."""

    def request_tickers(self) -> None:
        """No engine here (``tickers`` stays on the desk's port)."""

    def _no_engine(self, *args: object, **kwargs: object) -> Any:
        raise TicketError("the data plane has no engine; ask the desk's own port")

    status = readiness = gauges = strategies = snapshot = positions_table = _no_engine
    kill = cancel_all = cancel_order = flatten = enable_strategy = stop = ingest = _no_engine
    attach_strategy = detach_strategy = submit_signals = _no_engine


@hygienic  # its own handlers too (see flight.hygiene)
class DataServer(DeskFlightServer):
    """The desk's Flight surface minus what needs the engine (see the module docstring)."""

    def __init__(self, desk: DataDesk, location: str, desk_uri: str, **kwargs: Any) -> None:
        super().__init__(desk, location, **kwargs)
        self.data_desk = desk
        self.desk_uri = desk_uri
        self.fed: dict[str, int] = {}

    def _elsewhere(self, what: str) -> Any:
        return self._fail(f"{what} is served by the desk at {self.desk_uri}, not its "
                          "data-plane process")

    def do_get(self, context: Any, ticket: flight.Ticket) -> flight.FlightDataStream:
        if unpack_any(ticket.ticket) is None:
            req = self._guard(parse_request, ticket.ticket, "ticket")
            if req.mode == "snapshot" or (req.mode == "live" and req.stream not in FORWARDED):
                self._elsewhere(f"{req.mode} {req.stream!r}")
        return super().do_get(context, ticket)

    def do_put(self, context: Any, descriptor: flight.FlightDescriptor,
               reader: flight.MetadataRecordBatchReader,
               writer: flight.FlightMetadataWriter) -> None:
        if caller_role(context) < Role.FEED:
            self._elsewhere("do_put")
        stream = json.loads(descriptor.command)["stream"]
        bus = self.data_desk.bus
        for chunk in reader:
            batch = chunk.data
            if batch is not None and batch.num_rows:
                bus.publish(stream, batch)
                self.fed[stream] = self.fed.get(stream, 0) + batch.num_rows

    def do_exchange(self, context: Any, descriptor: flight.FlightDescriptor,
                    reader: flight.MetadataRecordBatchReader,
                    writer: flight.MetadataRecordBatchWriter) -> None:
        self._elsewhere("do_exchange")

    def list_actions(self, context: Any) -> list[tuple[str, str]]:
        return [("status", "this data-plane process's subscribers and counters"),
                ("demand", "the forwarded streams that have subscribers here")]

    def do_action(self, context: Any, action: flight.Action) -> Any:
        if action.type in SQL_ACTIONS:
            return super().do_action(context, action)
        if action.type == "demand":  # which forwarded streams someone reads here
            wanted = [s for s in FORWARDED if self.desk.has_subscribers(s)]
            return iter([json.dumps(wanted).encode()])
        if action.type != "status":
            self._elsewhere(f"action {action.type!r}")
        stats = {"subscribers": self.desk.subscriber_stats(), "flight_server": self.stats(),
                 "fed_rows": dict(self.fed)}
        return iter([json.dumps(stats, default=str).encode()])


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    logging.basicConfig(level=spec.get("log_level", "WARNING"),
                        format="%(asctime)s data-plane %(levelname)s %(name)s: %(message)s")
    config = Config(spec["config"])
    store = Store(spec["store"], config["store"])  # a path or an ADBC URI, as the desk's
    desk = DataDesk(config, store, Path(spec["history_root"]))
    location, kwargs, _ = server_options(config["flight"], spec["secret"], port=0)
    server = DataServer(desk, location, spec["desk_uri"], **kwargs)
    print(server.uri, flush=True)
    sys.stdin.read()  # until the desk closes our stdin (or dies)
    desk.stop_event.set()
    desk.bus.close()
    server.shutdown()


if __name__ == "__main__":
    main()
