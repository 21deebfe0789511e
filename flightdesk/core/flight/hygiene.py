"""What a Flight client sees when a handler fails: a short message, never a traceback.

pyarrow sends a Python exception raised in a handler to the client with its traceback
(server paths and all), unless it is a ``FlightError`` raised by the handler itself. So
every RPC handler of the desk's servers is wrapped (:func:`hygienic`):

- a ``FlightError`` passes as it is (the handler chose its words and its status);
- a :class:`~flightdesk.core.errors.FlightdeskError` becomes a ``FlightServerError`` with
  its message (``TicketError``/``SchemaError`` as they are, others after their type name);
- ``NotImplementedError`` stays one, message only (gRPC UNIMPLEMENTED: ADBC Flight SQL
  clients rely on it, see ``flight.sql``);
- anything else is logged with its traceback under a fresh error id, and the client gets
  ``internal error (id 3f9a0c1e); see the desk's log``.

A stream can fail after its handler returned, while pyarrow pulls its batches:
:func:`guard_stream` treats the batches' generator the same way. pyarrow attaches a
traceback to whatever a generator raises, so the replacement is raised from frames whose
file is named ``flightdesk`` (and ``from None``): the client sees no path and no chain.
"""

from __future__ import annotations

import functools
import logging
import secrets
import types
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pyarrow.flight as flight

from flightdesk.core.errors import FlightdeskError, SchemaError, TicketError

logger = logging.getLogger(__name__)

T = TypeVar("T")
C = TypeVar("C", bound=type)

HANDLERS = ("list_flights", "get_flight_info", "get_schema", "do_get", "do_put",
            "do_exchange", "list_actions", "do_action")
_FRAME_FILE = "flightdesk"  # what a client's traceback shows instead of a server path


def client_error(exc: Exception, where: str) -> Exception:
    """The exception a client gets for ``exc`` (see the module docstring); an unexpected
    one is logged here with its traceback and the id the client is given."""
    if isinstance(exc, flight.FlightError):
        return exc
    if isinstance(exc, TicketError | SchemaError):
        return flight.FlightServerError(str(exc))
    if isinstance(exc, FlightdeskError):
        return flight.FlightServerError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, NotImplementedError):
        return NotImplementedError(str(exc))
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
        if isinstance(result, types.GeneratorType):  # list_flights: pulled after return
            return guard_stream(result, fn.__name__, server)
        return result

    inner: Any = handler  # functools.wraps' type hides __code__
    inner.__code__ = inner.__code__.replace(co_filename=_FRAME_FILE)
    return handler


def hygienic(cls: C) -> C:
    """Wrap the Flight RPC handlers ``cls`` defines (see the module docstring)."""
    for name in HANDLERS:
        if name in vars(cls):
            setattr(cls, name, _wrap(vars(cls)[name]))
    return cls


def guard_stream(batches: Iterator[T], where: str = "do_get", server: Any = None
                 ) -> Iterator[T]:
    """``batches``, with what they raise turned into what a client may see."""
    try:
        yield from batches  # close() reaches the inner generator: its finally runs
    except Exception as exc:
        out = client_error(exc, where)
        if out is exc:  # a FlightError: the same again, without the frames it came through
            out = _fresh(exc)
        else:
            _count(server, out)
        raise out from None


guard_stream.__code__ = guard_stream.__code__.replace(co_filename=_FRAME_FILE)


def _fresh(exc: Exception) -> Exception:
    try:
        return type(exc)(str(exc))
    except TypeError:  # a subclass with another signature
        return flight.FlightServerError(str(exc))


def _count(server: Any, out: Exception) -> None:
    """Count an error the client is told about in the server's ``errors`` (not an
    UNIMPLEMENTED answer: Flight SQL clients ask for what is missing as a matter of course)."""
    if isinstance(out, NotImplementedError):
        return
    if server is not None and isinstance(getattr(server, "errors", None), int):
        server.errors += 1
