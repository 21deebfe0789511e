"""flightdesk: a pure-Python trading desk host.

The public surface for plugin authors and embedders; import from here only.
"""

from flightdesk.client import connect
from flightdesk.core import schemas
from flightdesk.core.errors import (
    CaptureError,
    ConfigError,
    FlightdeskError,
    LimitError,
    ParseError,
    PluginError,
    SchemaError,
    StoreError,
    StoreFullError,
    StrategyError,
    TicketError,
)
from flightdesk.core.market.book import L2Book
from flightdesk.core.market.events import (
    BarMsg,
    BookMsg,
    MarketEvent,
    Outbound,
    Reconnected,
    Resync,
    ResyncReason,
    SnapshotRequest,
    Status,
    TickerMsg,
    TradeMsg,
)
from flightdesk.core.market.venue import ExternalProtocol, Feed, Venue, VenueProtocol
from flightdesk.core.runtime.api import DeskAPI
from flightdesk.core.runtime.embed import Engine
from flightdesk.core.runtime.isolation import IsolationError
from flightdesk.core.trading.risk import RiskDecision, RiskReason, RiskView
from flightdesk.plugins.hookspecs import hookimpl
from flightdesk.plugins.strategies.onnx import OnnxStrategy
from flightdesk.sdk import features
from flightdesk.sdk.features import FeatureSet, RollingWindow, instrument_groups
from flightdesk.sdk.policy import SignalPolicy, apply_policy, side_names
from flightdesk.sdk.strategy import Strategy, StrategyContext, signals_batch

__version__ = "0.1.0"

__all__ = [
    "BarMsg",
    "BookMsg",
    "CaptureError",
    "ConfigError",
    "DeskAPI",
    "Engine",
    "ExternalProtocol",
    "FeatureSet",
    "Feed",
    "FlightdeskError",
    "IsolationError",
    "L2Book",
    "LimitError",
    "MarketEvent",
    "OnnxStrategy",
    "Outbound",
    "ParseError",
    "PluginError",
    "Reconnected",
    "Resync",
    "ResyncReason",
    "RiskDecision",
    "RiskReason",
    "RiskView",
    "RollingWindow",
    "SchemaError",
    "SignalPolicy",
    "SnapshotRequest",
    "Status",
    "StoreError",
    "StoreFullError",
    "Strategy",
    "StrategyContext",
    "StrategyError",
    "TickerMsg",
    "TicketError",
    "TradeMsg",
    "Venue",
    "VenueProtocol",
    "__version__",
    "apply_policy",
    "connect",
    "features",
    "hookimpl",
    "instrument_groups",
    "schemas",
    "side_names",
    "signals_batch",
]
