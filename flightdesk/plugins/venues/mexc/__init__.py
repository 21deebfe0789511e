"""MEXC spot v3: protobuf pushes (aggre.depth with version chaining, deals, book ticker),
the legacy JSON channels, REST depth snapshots."""

from flightdesk.plugins.venues.mexc.config import DEFAULTS, make_venue
from flightdesk.plugins.venues.mexc.parse import MexcProtocol

__all__ = ["DEFAULTS", "MexcProtocol", "make_venue"]
