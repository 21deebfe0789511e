"""The Binance venue: spot, USD-M and COIN-M market data with exact order books.

``parse.BinanceProtocol`` (sans-I/O), ``feed.BinanceFeed`` (the generic ``WsFeed`` set up for
Binance's combined streams and REST depth), ``config.make_venue``
(the factory registered as ``binance``). The sim venue uses the same feed and protocol.
"""

from flightdesk.plugins.venues.binance.config import DEFAULTS, make_venue
from flightdesk.plugins.venues.binance.feed import BinanceFeed
from flightdesk.plugins.venues.binance.parse import BinanceProtocol

__all__ = ["DEFAULTS", "BinanceFeed", "BinanceProtocol", "make_venue"]
