"""Flight tickets and descriptors: UTF-8 JSON objects, validated into a ``StreamRequest``.

``{"stream": "quotes", "symbols": ["BTCUSDT"], "venues": ["sim"], "columns": [...],
"mode": "live"}`` — ``mode`` is ``live`` (unbounded tail), ``snapshot`` (current state) or
``history`` (stored rows, ``start``/``end`` in ns; ``"order": "newest"`` gives the newest
rows first, so ``"limit": N`` keeps the newest N). The live ``book`` takes ``"depth": N``
and ``"interval_ms": M`` (:mod:`flightdesk.core.flight.book_view`). Every malformed ticket gets a
:class:`TicketError` that says what was wrong.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from flightdesk.core import schemas
from flightdesk.core.errors import TicketError

MODES = ("live", "snapshot", "history")
ORDERS = ("oldest", "newest")  # history: which rows a limit keeps, and their order
DEFAULT_DEPTH = 10
MAX_DEPTH = 10_000  # book levels per side in a snapshot
MAX_LIMIT = 100_000_000  # rows of a history read
_KEYS = {"stream", "mode", "symbols", "venues", "columns", "start", "end", "depth", "limit",
         "order", "interval_ms"}
MAX_INTERVAL_MS = 60_000


@dataclass(frozen=True)
class StreamRequest:
    stream: str
    mode: str = "live"
    symbols: tuple[str, ...] = ()
    venues: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    start: int | None = None
    end: int | None = None
    depth: int = DEFAULT_DEPTH
    limit: int | None = None
    order: str = "oldest"
    #: the live book: levels per side (None: all) and the conflation interval (None: none)
    view_depth: int | None = None
    interval_ms: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        d: dict[str, Any] = {"stream": self.stream, "mode": self.mode}
        for key in ("symbols", "venues", "columns"):
            if getattr(self, key):
                d[key] = list(getattr(self, key))
        for key in ("start", "end", "limit"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if self.depth != DEFAULT_DEPTH:
            d["depth"] = self.depth
        if self.order != "oldest":
            d["order"] = self.order
        if self.interval_ms is not None:
            d["interval_ms"] = self.interval_ms
        return json.dumps(d).encode()


def parse_json(raw: bytes, what: str = "ticket") -> dict[str, Any]:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise TicketError(f"{what} is not UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise TicketError(f"{what} is not JSON ({exc.msg} at char {exc.pos}); expected an "
                          'object like {"stream": "quotes", "mode": "live"}') from exc
    if not isinstance(obj, dict):
        raise TicketError(f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj


def parse_request(raw: bytes, what: str = "ticket") -> StreamRequest:
    obj = parse_json(raw, what)
    unknown = set(obj) - _KEYS
    if unknown:
        key = sorted(unknown)[0]
        close = difflib.get_close_matches(key, sorted(_KEYS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TicketError(f"{what} has unknown key {key!r}{hint}")
    stream = obj.get("stream")
    names = schemas.stream_names()
    if stream not in names:
        close = difflib.get_close_matches(str(stream), names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise TicketError(f"unknown stream {stream!r}{hint}; streams are {', '.join(names)}")
    mode = obj.get("mode", "live")
    if mode not in MODES:
        raise TicketError(f"unknown mode {mode!r}; modes are {', '.join(MODES)}")
    order = obj.get("order", "oldest")
    if order not in ORDERS:
        raise TicketError(f"{what} key 'order' must be one of {', '.join(ORDERS)}, got "
                          f"{order!r}")
    if order != "oldest" and mode != "history":
        raise TicketError(f"{what} key 'order' applies to mode 'history', not {mode!r}")
    interval_ms = _count(obj, "interval_ms", what, MAX_INTERVAL_MS)
    if interval_ms is not None and (stream != "book" or mode != "live"):
        raise TicketError(f"{what} key 'interval_ms' applies to the live book stream "
                          "(mode 'live', stream 'book')")
    depth = _count(obj, "depth", what, MAX_DEPTH)
    columns = _strings(obj, "columns", what)
    known = set(schemas.schema(stream).names)
    for col in columns:
        if col not in known:
            raise TicketError(f"stream {stream!r} has no column {col!r}")
    return StreamRequest(stream=stream, mode=mode, symbols=_strings(obj, "symbols", what),
                         venues=_strings(obj, "venues", what), columns=columns,
                         start=_int(obj, "start", what), end=_int(obj, "end", what),
                         depth=depth or DEFAULT_DEPTH,
                         limit=_count(obj, "limit", what, MAX_LIMIT), order=order,
                         view_depth=depth if stream == "book" and mode == "live" else None,
                         interval_ms=interval_ms)


def _strings(obj: dict[str, Any], key: str, what: str) -> tuple[str, ...]:
    value = obj.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TicketError(f"{what} key {key!r} must be a list of strings, got {value!r}")
    return tuple(value)


def _int(obj: dict[str, Any], key: str, what: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TicketError(f"{what} key {key!r} must be an integer, got {value!r}")
    if not -(2**63) <= value < 2**63:
        raise TicketError(f"{what} key {key!r} must fit in int64 (ns since the epoch), "
                          f"got {value}")
    return value


def _count(obj: dict[str, Any], key: str, what: str, most: int) -> int | None:
    """A positive count (``depth``, ``limit``) up to ``most``, or None when absent: 0 or a
    negative is refused, never read as "the default" or "all but"."""
    value = _int(obj, key, what)
    if value is not None and not 1 <= value <= most:
        raise TicketError(f"{what} key {key!r} must be from 1 to {most:,}, got {value}")
    return value
