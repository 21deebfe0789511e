"""flightdesk: a pure-Python trading desk host.

The public surface for plugin authors and embedders; import from here only.
"""

from flightdesk.client import connect
from flightdesk.core.embed import Engine
from flightdesk.core.errors import (
    ConfigError,
    FlightdeskError,
    ParseError,
    PluginError,
    SchemaError,
    StrategyError,
    TicketError,
)
from flightdesk.core.strategy import Strategy, StrategyContext, signals_batch
from flightdesk.plugins.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Engine",
    "FlightdeskError",
    "ParseError",
    "PluginError",
    "SchemaError",
    "Strategy",
    "StrategyContext",
    "StrategyError",
    "TicketError",
    "__version__",
    "connect",
    "hookimpl",
    "signals_batch",
]
