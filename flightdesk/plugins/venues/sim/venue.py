"""The ``sim`` venue: a seeded exchange simulator and the real Binance feed connected to it.

The simulator runs on its own thread and event loop and serves Binance spot's wire format on
127.0.0.1; the desk connects to it with the same ``BinanceFeed`` and ``BinanceProtocol`` it
would use against the real exchange, so the whole feed path runs.
"""

from __future__ import annotations

from typing import Any

from flightdesk.core.market.venue import Venue

DEFAULTS: dict[str, Any] = {
    "type": "sim",
    "symbols": ["BTCUSDT", "ETHUSDT"],
    "prices": [60000.0, 3000.0],
    "seed": 7,
    "rate": 200.0,
    "burst": True,
    "depth_limit": 1000,
    "book_ticker": False,  # also stream bookTicker (the venue's own best bid/offer)
}


def make_sim_venue(name: str, cfg: dict[str, Any]) -> Venue:
    """Start a simulator for ``cfg`` and return a Binance venue connected to it."""
    from flightdesk.plugins.venues.binance.feed import BinanceFeed
    from flightdesk.plugins.venues.binance.parse import BinanceProtocol
    from flightdesk.plugins.venues.sim.thread import SimExchangeThread

    symbols = [str(s).upper() for s in cfg["symbols"]]
    prices = [float(p) for p in cfg["prices"]]
    if len(prices) != len(symbols):
        from flightdesk.core.errors import ConfigError

        raise ConfigError(
            f"venues.{name}.prices needs one price per symbol "
            f"({len(symbols)} symbols, {len(prices)} prices)",
            key=f"venues.{name}.prices",
        )
    exchange = SimExchangeThread(
        dict(zip(symbols, prices, strict=True)),
        seed=int(cfg["seed"]),
        rate=float(cfg["rate"]),
        burst=bool(cfg["burst"]),
        book_ticker=bool(cfg["book_ticker"]),
    ).start()
    channels = ("depth@100ms", "trade", "bookTicker") if cfg["book_ticker"] else (
        "depth@100ms", "trade")
    feed = BinanceFeed(
        exchange.ws_url(symbols, channels),
        exchange.rest_url,
        symbols,
        depth_limit=int(cfg["depth_limit"]),
        name=name,
    )
    return Venue(
        name,
        BinanceProtocol(name),
        feed,
        symbols,
        on_close=exchange.stop,
        info={
            "rest_url": exchange.rest_url,
            # Binance's user data stream lives at <this>/ws/<listenKey>
            "user_ws_url": exchange.ws_url(symbols).split("/stream")[0],
            "exchange": exchange,
        },
    )


make_sim_venue.DEFAULTS = DEFAULTS  # type: ignore[attr-defined]
