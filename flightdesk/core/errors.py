"""The flightdesk error hierarchy.

::

    FlightdeskError
    ├── ConfigError            config keys or values are wrong (names each key, suggests a spelling;
    │                          ``problems`` holds one ConfigError per wrong key)
    ├── SchemaError            a batch does not match a stream schema (names the field)
    ├── ParseError             a venue frame could not be parsed (names the venue)
    ├── TicketError            a Flight ticket/descriptor/action is malformed or unknown
    ├── LimitError             a request went over a configured limit (``limit`` names the key)
    ├── PluginError            a plugin failed to load or misbehaved (names the plugin)
    │   └── StrategyError      a strategy raised or returned a bad batch
    │       └── IsolationError a strategy broke its isolation budget (core.runtime.isolation)
    ├── CaptureError           a capture file could not be read (names the file and line)
    └── StoreError             the store could not be opened or written
        └── StoreFullError     the store's queue stayed full for ``submit_timeout_ms``
                               (names the table and the rows not queued)

A risk rejection is not an error: it is a ``RiskDecision`` value (see ``core.risk``).
"""

from __future__ import annotations

from collections.abc import Sequence


class FlightdeskError(Exception):
    """Base class of every error flightdesk raises on purpose."""


class ConfigError(FlightdeskError):
    """``key`` and ``suggestion`` are those of the first problem; ``problems`` lists every
    problem found at once (just this error when there is one)."""

    def __init__(self, message: str, key: str = "", suggestion: str = "",
                 problems: Sequence[ConfigError] = ()) -> None:
        super().__init__(message)
        self.key = key
        self.suggestion = suggestion
        self.problems: tuple[ConfigError, ...] = tuple(problems) or (self,)

    @classmethod
    def collect(cls, problems: Sequence[ConfigError], source: str = "") -> ConfigError:
        """One error reporting every problem: ``invalid config desk.toml:`` and a line each."""
        if len(problems) == 1 and not source:
            return problems[0]
        where = f" {source}" if source else ""
        lines = "".join(f"\n  {p}" for p in problems)
        first = problems[0]
        return cls(f"invalid config{where} ({len(problems)} "
                   f"problem{'s' if len(problems) > 1 else ''}):{lines}",
                   key=first.key, suggestion=first.suggestion, problems=problems)


class SchemaError(FlightdeskError):
    def __init__(self, message: str, stream: str = "", field: str = "") -> None:
        super().__init__(message)
        self.stream = stream
        self.field = field


class ParseError(FlightdeskError):
    def __init__(self, message: str, venue: str = "") -> None:
        super().__init__(message)
        self.venue = venue


class TicketError(FlightdeskError):
    pass


class LimitError(FlightdeskError):
    """A request refused or interrupted at a limit: ``limit`` is its config key, e.g.
    ``flight.sql_timeout_s`` (the message says the value and what to do)."""

    def __init__(self, message: str, limit: str = "") -> None:
        super().__init__(message)
        self.limit = limit


class PluginError(FlightdeskError):
    def __init__(self, message: str, plugin: str = "") -> None:
        super().__init__(message)
        self.plugin = plugin


class StrategyError(PluginError):
    pass


class StoreError(FlightdeskError):
    pass


class StoreFullError(StoreError):
    """``Store.submit`` found the queue full for its whole timeout; nothing was queued
    (the caller still holds ``rows`` rows of ``table``)."""

    def __init__(self, message: str, table: str = "", rows: int = 0) -> None:
        super().__init__(message)
        self.table = table
        self.rows = rows


class CaptureError(FlightdeskError):
    """A capture file could not be read (names the file and the line)."""


def port_error(host: str, port: int, what: str, flag: str, key: str,
               code: int | None = None) -> ConfigError:
    """The one-line error of a server port that cannot be bound (``code``: the errno,
    default EADDRINUSE), naming the port and the flag that picks another."""
    import errno
    import os

    code = errno.EADDRINUSE if code is None else code
    if code == errno.EADDRINUSE:
        why = "is already in use (another desk?)"
    else:
        why = f"cannot be bound: {os.strerror(code).lower() if code else 'unknown error'}"
    return ConfigError(f"{what} port {port} on {host} {why}; pick another with {flag} N, "
                       f"or {flag} 0 for a free one", key=key)
