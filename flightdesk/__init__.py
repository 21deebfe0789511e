"""flightdesk: a pure-Python trading desk host.

The public surface for plugin authors and embedders; import from here only.
"""

from flightdesk.client import connect
from flightdesk.core.errors import (
    ConfigError,
    FlightdeskError,
    ParseError,
    PluginError,
    SchemaError,
    StrategyError,
    TicketError,
)
from flightdesk.core.market.events import Reconnected
from flightdesk.core.runtime.embed import Engine
from flightdesk.plugins.hookspecs import hookimpl
from flightdesk.plugins.strategies.onnx import OnnxStrategy
from flightdesk.sdk import features
from flightdesk.sdk.features import FeatureSet, RollingWindow, instrument_groups
from flightdesk.sdk.policy import SignalPolicy, apply_policy, side_names
from flightdesk.sdk.strategy import Strategy, StrategyContext, signals_batch

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Engine",
    "FeatureSet",
    "FlightdeskError",
    "OnnxStrategy",
    "ParseError",
    "PluginError",
    "Reconnected",
    "RollingWindow",
    "SchemaError",
    "SignalPolicy",
    "Strategy",
    "StrategyContext",
    "StrategyError",
    "TicketError",
    "__version__",
    "apply_policy",
    "connect",
    "features",
    "hookimpl",
    "instrument_groups",
    "side_names",
    "signals_batch",
]
