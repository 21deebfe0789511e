"""The client SDK: talk to a running desk over Arrow Flight.

::

    import flightdesk
    with flightdesk.connect("grpc://127.0.0.1:8815", token="...") as desk:
        for batch in desk.stream("quotes", symbols=["BTCUSDT"]):   # live RecordBatches
            ...
        fills = desk.history("fills", start=t0)                     # a pyarrow Table
        book = desk.snapshot("book", depth=5)
        orders = desk.sql("SELECT status, count(*) AS n FROM orders GROUP BY status")
        desk.status(); desk.kill()

Tables convert with ``.to_pandas()`` or ``polars.from_arrow(...)``. Times are integer ns
since the epoch, or ``datetime`` objects (naive ones are taken as UTC).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from flightdesk.core.flight.sql import pack_any
from flightdesk.core.protowire import field_bytes

Time = int | dt.datetime | None


def connect(url: str = "grpc://127.0.0.1:8815", token: str | None = None, *,
            tls_ca: str | Path | None = None, cert: str | Path | None = None,
            key: str | Path | None = None) -> DeskClient:
    """A client for the desk at ``url`` (``grpc://`` or ``grpc+tls://``).

    ``token`` is sent as ``authorization: Bearer <token>``; ``tls_ca`` is the CA that signed
    the desk's certificate (PEM path); ``cert``/``key`` are this client's certificate and
    key for a desk that wants mutual TLS.
    """
    return DeskClient(url, token, tls_ca=tls_ca, cert=cert, key=key)


class DeskClient:
    """See :func:`connect`. A context manager; ``close()`` releases the connection."""

    def __init__(self, url: str, token: str | None = None, *, tls_ca: Any = None,
                 cert: Any = None, key: Any = None) -> None:
        kwargs: dict[str, Any] = {}
        if tls_ca is not None:
            kwargs["tls_root_certs"] = Path(tls_ca).read_bytes()
        if cert is not None and key is not None:
            kwargs["cert_chain"] = Path(cert).read_bytes()
            kwargs["private_key"] = Path(key).read_bytes()
        self.url = url
        self._kwargs = kwargs
        self._client = flight.FlightClient(url, **kwargs)
        self._clients: dict[str, flight.FlightClient] = {}  # other endpoint locations
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        self._options = flight.FlightCallOptions(headers=headers)

    # -- data -------------------------------------------------------------------------
    def stream(self, stream: str, symbols: Sequence[str] = (), venues: Sequence[str] = (),
               columns: Sequence[str] = (), depth: int | None = None,
               interval_ms: int | None = None) -> Iterator[pa.RecordBatch]:
        """Live batches of ``stream`` as they happen (an endless iterator; ``close()`` it
        or break out of the loop to stop). ``seq`` is contiguous unless batches were
        dropped because this reader fell behind. For ``book``, ``depth`` caps the levels
        per side (only changes inside the top ``depth``) and ``interval_ms`` conflates
        the changes to at most one batch per interval."""
        return _Live(self._get(self._ticket(stream, "live", symbols, venues, columns,
                                            depth=depth, interval_ms=interval_ms)))

    def history(self, stream: str, start: Time = None, end: Time = None,
                symbols: Sequence[str] = (), venues: Sequence[str] = (),
                columns: Sequence[str] = (), limit: int | None = None,
                order: str = "oldest") -> pa.Table:
        """Stored rows of ``stream`` with ``start <= ts < end`` (market streams: ``ts_event``),
        oldest first; ``order="newest"`` gives the newest first (with ``limit``: the newest
        ``limit`` rows, e.g. the last 100 trades)."""
        extra: dict[str, Any] = {"start": _ns(start), "end": _ns(end), "limit": limit}
        if order != "oldest":
            extra["order"] = order
        ticket = self._ticket(stream, "history", symbols, venues, columns, **extra)
        return self._get(ticket).read_all()

    def snapshot(self, stream: str, depth: int = 10, symbols: Sequence[str] = (),
                 venues: Sequence[str] = (), columns: Sequence[str] = ()) -> pa.Table:
        """Current state: ``book`` (``depth`` levels), ``quotes``, ``positions``, ``orders``."""
        ticket = self._ticket(stream, "snapshot", symbols, venues, columns, depth=depth)
        return self._client.do_get(ticket, self._options).read_all()

    def sql(self, query: str) -> pa.Table:
        """Run a read-only ``SELECT`` over the desk's store (Flight SQL statement query)."""
        command = pack_any("CommandStatementQuery", field_bytes(1, query.encode()))
        info = self._client.get_flight_info(flight.FlightDescriptor.for_command(command),
                                            self._options)
        tables = [self._at(ep).do_get(ep.ticket, self._options).read_all()
                  for ep in info.endpoints]
        return pa.concat_tables(tables) if len(tables) != 1 else tables[0]

    def put(self, stream: str, data: pa.Table | pa.RecordBatch) -> int:
        """Send external ``book`` or ``trades`` rows into the desk's engine; rows taken."""
        table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
        descriptor = flight.FlightDescriptor.for_command(json.dumps({"stream": stream}))
        writer, meta = self._client.do_put(descriptor, table.schema, self._options)
        with writer:
            writer.write_table(table)
            writer.done_writing()
            buf = meta.read()
        return int(json.loads(buf.to_pybytes())["rows"]) if buf is not None else 0

    def streams(self) -> list[str]:
        return [json.loads(info.descriptor.command)["stream"]
                for info in self._client.list_flights(options=self._options)]

    # -- control ----------------------------------------------------------------------
    def action(self, name: str, body: dict[str, Any] | None = None) -> Any:
        payload = json.dumps(body).encode() if body else b""
        results = list(self._client.do_action(flight.Action(name, payload), self._options))
        return json.loads(results[0].body.to_pybytes()) if results else None

    def status(self) -> dict[str, Any]:
        return dict(self.action("status"))

    def kill(self, on: bool = True) -> dict[str, Any]:
        return dict(self.action("kill", {"on": on}))

    def cancel_all(self) -> dict[str, Any]:
        return dict(self.action("cancel-all"))

    def flatten(self) -> dict[str, Any]:
        return dict(self.action("flatten"))

    def strategies(self) -> list[dict[str, Any]]:
        return list(self.action("strategies"))

    def enable_strategy(self, name: str, enabled: bool = True) -> dict[str, Any]:
        return dict(self.action("strategies", {"name": name, "enabled": enabled}))

    # -- lifecycle --------------------------------------------------------------------
    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._client.close()

    def __enter__(self) -> DeskClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _get(self, ticket: flight.Ticket) -> flight.FlightStreamReader:
        """``do_get`` where the desk serves ``ticket`` (its ``get_flight_info`` endpoint:
        a desk with ``[flight] data_process`` serves market data from a second process)."""
        info = self._client.get_flight_info(
            flight.FlightDescriptor.for_command(ticket.ticket), self._options)
        endpoint = info.endpoints[0]
        return self._at(endpoint).do_get(endpoint.ticket, self._options)

    def _at(self, endpoint: flight.FlightEndpoint) -> flight.FlightClient:
        """The client for ``endpoint``'s first location (this one when it names none)."""
        if not endpoint.locations:
            return self._client
        uri = endpoint.locations[0].uri.decode()
        if uri == self.url or uri.startswith("arrow-flight-reuse-connection"):
            return self._client
        if uri not in self._clients:
            self._clients[uri] = flight.FlightClient(uri, **self._kwargs)
        return self._clients[uri]

    @staticmethod
    def _ticket(stream: str, mode: str, symbols: Sequence[str], venues: Sequence[str],
                columns: Sequence[str], **extra: Any) -> flight.Ticket:
        body: dict[str, Any] = {"stream": stream, "mode": mode}
        for key, value in (("symbols", symbols), ("venues", venues), ("columns", columns)):
            if value:
                body[key] = [value] if isinstance(value, str) else list(value)
        body.update({k: v for k, v in extra.items() if v is not None})
        return flight.Ticket(json.dumps(body).encode())


class _Live:
    """An iterator over a live stream's batches that cancels the call when closed."""

    def __init__(self, reader: flight.FlightStreamReader) -> None:
        self._reader = reader
        self.schema = reader.schema

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self

    def __next__(self) -> pa.RecordBatch:
        try:
            return self._reader.read_chunk().data
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        self._reader.cancel()

    def __enter__(self) -> _Live:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _ns(value: Time) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return (value - epoch) // dt.timedelta(microseconds=1) * 1000
    raise TypeError(f"a time must be int ns or datetime, got {type(value).__name__}")
