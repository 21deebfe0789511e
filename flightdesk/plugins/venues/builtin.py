"""The venues that ship with flightdesk, registered through the public hook."""

from __future__ import annotations

from typing import Any

from flightdesk.plugins.hookspecs import hookimpl


@hookimpl
def flightdesk_register_venues(register: Any) -> None:
    from flightdesk.plugins.venues.alpaca.config import make_venue as make_alpaca
    from flightdesk.plugins.venues.binance.config import make_venue as make_binance
    from flightdesk.plugins.venues.bybit.config import make_venue as make_bybit
    from flightdesk.plugins.venues.coinbase.config import make_venue as make_coinbase
    from flightdesk.plugins.venues.kraken.config import make_venue as make_kraken
    from flightdesk.plugins.venues.mexc.config import make_venue as make_mexc
    from flightdesk.plugins.venues.okx.config import make_venue as make_okx
    from flightdesk.plugins.venues.sim.venue import make_sim_venue

    register("sim", make_sim_venue)
    register("binance", make_binance)
    register("kraken", make_kraken)
    register("okx", make_okx)
    register("coinbase", make_coinbase)
    register("mexc", make_mexc)
    register("alpaca", make_alpaca)
    register("bybit", make_bybit)


@hookimpl
def flightdesk_register_executors(register: Any) -> None:
    from flightdesk.plugins.venues.alpaca.executor import make_executor as alpaca_executor
    from flightdesk.plugins.venues.binance.executor import make_executor as binance_executor

    register("binance", binance_executor)
    register("alpaca", alpaca_executor)
