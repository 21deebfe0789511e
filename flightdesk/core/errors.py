"""The flightdesk error hierarchy.

::

    FlightdeskError
    ├── ConfigError            a config key or value is wrong (names the key, suggests a spelling)
    ├── SchemaError            a batch does not match a stream schema (names the field)
    ├── ParseError             a venue frame could not be parsed (names the venue)
    ├── TicketError            a Flight ticket/descriptor/action is malformed or unknown
    ├── PluginError            a plugin failed to load or misbehaved (names the plugin)
    │   └── StrategyError      a strategy raised or returned a bad batch
    └── StoreError             the store could not be opened or written

A risk rejection is not an error: it is a ``RiskDecision`` value (see ``core.risk``).
"""

from __future__ import annotations


class FlightdeskError(Exception):
    """Base class of every error flightdesk raises on purpose."""


class ConfigError(FlightdeskError):
    def __init__(self, message: str, key: str = "", suggestion: str = "") -> None:
        super().__init__(message)
        self.key = key
        self.suggestion = suggestion


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


class PluginError(FlightdeskError):
    def __init__(self, message: str, plugin: str = "") -> None:
        super().__init__(message)
        self.plugin = plugin


class StrategyError(PluginError):
    pass


class StoreError(FlightdeskError):
    pass
