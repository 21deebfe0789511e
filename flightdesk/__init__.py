"""flightdesk: a pure-Python trading desk host.

The public surface for plugin authors and embedders; import from here only.

Names are loaded on first use (PEP 562), so ``import flightdesk`` — and every command's
``--help`` — does not pay for pyarrow, the engine, Flight and onnxruntime until they are
needed; ``from flightdesk import Engine`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flightdesk.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
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
    from flightdesk.plugins.strategies.onnx import OnnxStrategy
    from flightdesk.sdk import features
    from flightdesk.sdk.features import FeatureSet, RollingWindow, instrument_groups
    from flightdesk.sdk.policy import SignalPolicy, apply_policy, side_names
    from flightdesk.sdk.strategy import Strategy, StrategyContext, signals_batch

_LAZY: dict[str, str] = {
    "BarMsg": "flightdesk.core.market.events",
    "BookMsg": "flightdesk.core.market.events",
    "CaptureError": "flightdesk.core.errors",
    "ConfigError": "flightdesk.core.errors",
    "DeskAPI": "flightdesk.core.runtime.api",
    "Engine": "flightdesk.core.runtime.embed",
    "ExternalProtocol": "flightdesk.core.market.venue",
    "FeatureSet": "flightdesk.sdk.features",
    "Feed": "flightdesk.core.market.venue",
    "FlightdeskError": "flightdesk.core.errors",
    "IsolationError": "flightdesk.core.runtime.isolation",
    "L2Book": "flightdesk.core.market.book",
    "LimitError": "flightdesk.core.errors",
    "MarketEvent": "flightdesk.core.market.events",
    "OnnxStrategy": "flightdesk.plugins.strategies.onnx",
    "Outbound": "flightdesk.core.market.events",
    "ParseError": "flightdesk.core.errors",
    "PluginError": "flightdesk.core.errors",
    "Reconnected": "flightdesk.core.market.events",
    "Resync": "flightdesk.core.market.events",
    "ResyncReason": "flightdesk.core.market.events",
    "RiskDecision": "flightdesk.core.trading.risk",
    "RiskReason": "flightdesk.core.trading.risk",
    "RiskView": "flightdesk.core.trading.risk",
    "RollingWindow": "flightdesk.sdk.features",
    "SchemaError": "flightdesk.core.errors",
    "SignalPolicy": "flightdesk.sdk.policy",
    "SnapshotRequest": "flightdesk.core.market.events",
    "Status": "flightdesk.core.market.events",
    "StoreError": "flightdesk.core.errors",
    "StoreFullError": "flightdesk.core.errors",
    "Strategy": "flightdesk.sdk.strategy",
    "StrategyContext": "flightdesk.sdk.strategy",
    "StrategyError": "flightdesk.core.errors",
    "TickerMsg": "flightdesk.core.market.events",
    "TicketError": "flightdesk.core.errors",
    "TradeMsg": "flightdesk.core.market.events",
    "Venue": "flightdesk.core.market.venue",
    "VenueProtocol": "flightdesk.core.market.venue",
    "apply_policy": "flightdesk.sdk.policy",
    "connect": "flightdesk.client",
    "features": "flightdesk.sdk",
    "instrument_groups": "flightdesk.sdk.features",
    "schemas": "flightdesk.core",
    "side_names": "flightdesk.sdk.policy",
    "signals_batch": "flightdesk.sdk.strategy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flightdesk' has no attribute {name!r}")
    try:
        value: Any = getattr(importlib.import_module(module), name)
    except AttributeError:  # a submodule (schemas, features)
        value = importlib.import_module(f"{module}.{name}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
