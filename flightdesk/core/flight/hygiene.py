"""What a Flight client sees when a handler fails: a short message, never a traceback.

pyarrow sends any Python exception but a ``FlightError`` to the client with its formatted
traceback attached ("Detail: Python exception: Traceback ... File ..."), server paths and
all. So every RPC handler of the desk's servers is wrapped (:func:`hygienic`), and what it
raises becomes a ``FlightError``, which pyarrow sends as its message alone:

- a ``FlightError`` passes as it is (the handler chose its words and its status);
- a :class:`~flightdesk.core.errors.FlightdeskError` becomes a ``FlightServerError`` with
  its message (``TicketError``/``SchemaError`` as they are, others after their type name);
- what the desk refuses by design is raised as :class:`Unsupported` (a ``FlightError``,
  so message only). That is gRPC UNKNOWN, not UNIMPLEMENTED: pyarrow sends UNIMPLEMENTED
  (a Python ``NotImplementedError``) only with a traceback, so the Flight SQL paths whose
  UNIMPLEMENTED clients fall back from are implemented instead (see ``flight.sql``).
  Unsupported answers are not counted as errors: clients ask for what is missing as a
  matter of course;
- anything else is logged with its traceback under a fresh error id, and the client gets
  ``internal error (id 3f9a0c1e); see the desk's log``.

A stream can fail after its handler returned, while pyarrow pulls its batches from a
``RecordBatchReader`` (:func:`guard_stream`). There pyarrow formats whatever the iterator
raises with the frames it came through, a ``FlightError`` too, so the guard ends its
generator quietly and the client-facing error is raised after it by C code alone (a throw
into a finished generator, called through ``functools.partial`` from a C iterator): no
Python frame, so no traceback; the client reads ``<message>. Detail: Python exception:
pyarrow._flight.FlightServerError: <message>``.
"""

from __future__ import annotations

import functools
import itertools
import logging
import secrets
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, TypeVar

import pyarrow.flight as flight

from flightdesk.core.errors import FlightdeskError, SchemaError, TicketError

logger = logging.getLogger(__name__)

T = TypeVar("T")
C = TypeVar("C", bound=type)

HANDLERS = ("list_flights", "get_flight_info", "get_schema", "do_get", "do_put",
            "do_exchange", "list_actions", "do_action")


class Unsupported(flight.FlightServerError):
    """What the desk refuses by design (a Flight SQL transaction, an update, query
    parameters): the message names what was asked and what is offered; not counted."""


def client_error(exc: Exception, where: str) -> flight.FlightError:
    """The exception a client gets for ``exc`` (see the module docstring); an unexpected
    one is logged here with its traceback and the id the client is given."""
    if isinstance(exc, flight.FlightError):
        return exc
    if isinstance(exc, TicketError | SchemaError):
        return flight.FlightServerError(str(exc))
    if isinstance(exc, FlightdeskError):
        return flight.FlightServerError(f"{type(exc).__name__}: {exc}")
    error_id = secrets.token_hex(4)
    logger.error("Flight %s failed (error id %s)", where, error_id, exc_info=exc)
    return flight.FlightServerError(f"internal error (id {error_id}); see the desk's log")


def _wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def handler(server: Any, *args: Any) -> Any:
        try:
            result = fn(server, *args)
        except Exception as exc:
            out = client_error(exc, fn.__name__)
            if out is exc:
                raise
            _count(server, out)
            raise out from None
        if isinstance(result, Iterator):  # list_flights, do_action: pulled after return
            return guard_stream(result, fn.__name__, server)
        return result

    return handler


def hygienic(cls: C) -> C:
    """Wrap the Flight RPC handlers ``cls`` defines (see the module docstring)."""
    for name in HANDLERS:
        if name in vars(cls):
            setattr(cls, name, _wrap(vars(cls)[name]))
    return cls


def guard_stream(batches: Iterable[T], where: str = "do_get", server: Any = None
                 ) -> Iterator[T]:
    """``batches``, with what they raise turned into what a client may see, raised
    without a Python frame (see the module docstring). Dropping the result closes
    ``batches`` (their ``finally`` runs)."""
    return itertools.chain.from_iterable(_pieces(batches, where, server))


def _pieces(batches: Iterable[T], where: str, server: Any) -> Iterator[Iterator[T]]:
    failed: list[flight.FlightError] = []
    yield _shielded(batches, where, server, failed)
    if failed:  # the shielded generator has finished: nothing of ours is on the stack
        yield iter(functools.partial(_finished().throw, failed[0]), None)


def _shielded(batches: Iterable[T], where: str, server: Any,
              failed: list[flight.FlightError]) -> Iterator[T]:
    try:
        yield from batches  # close() reaches the inner generator: its finally runs
    except Exception as exc:
        out = client_error(exc, where)
        if out is not exc:  # (a FlightError passing through was counted where it began)
            _count(server, out)
        failed.append(_fresh(out))


def _finished() -> Generator[None, None, None]:
    """A generator that has already run to its end: ``throw`` just raises."""
    gen = _empty()
    for _ in gen:
        pass
    return gen


def _empty() -> Generator[None, None, None]:
    yield from ()


def _fresh(exc: flight.FlightError) -> flight.FlightError:
    """The same error as a new exception: one never raised carries no traceback."""
    try:
        return type(exc)(str(exc), exc.extra_info)
    except TypeError:  # a subclass with another signature
        return flight.FlightServerError(str(exc))


def _count(server: Any, out: Exception) -> None:
    """Count an error the client is told about in the server's ``errors`` (not an
    :class:`Unsupported` answer)."""
    if isinstance(out, Unsupported):
        return
    if server is not None and isinstance(getattr(server, "errors", None), int):
        server.errors += 1
