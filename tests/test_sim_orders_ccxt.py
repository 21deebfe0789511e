"""The sim exchange's Binance spot order API, driven by ccxt (an independent client)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ccxt
import pytest

from flightdesk.plugins.venues.sim.thread import SimExchangeThread
from tests.fixtures.simorders import KEY, SECRET


@pytest.fixture
def sim() -> Iterator[SimExchangeThread]:
    with SimExchangeThread(rate=100) as sim:
        yield sim


@pytest.fixture
def binance(sim: SimExchangeThread) -> Iterator[Any]:
    """ccxt's binance pointed at the sim: spot only, no sapi currency or margin calls."""
    ex = ccxt.binance(
        {
            "apiKey": KEY,
            "secret": SECRET,
            "enableRateLimit": False,
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
        }
    )
    for kind in ("public", "private"):
        ex.urls["api"][kind] = f"{sim.rest_url}/api/v3"
    try:
        ex.load_markets()
        yield ex
    finally:
        ex.session.close()


def test_markets_carry_the_exchange_info_filters(binance: Any) -> None:
    btc = binance.market("BTC/USDT")
    assert (btc["base"], btc["quote"], btc["spot"], btc["active"]) == ("BTC", "USDT", True, True)
    assert btc["precision"]["price"] == 0.01
    assert btc["limits"]["cost"]["min"] == 5.0
    assert btc["limits"]["amount"]["min"] == btc["precision"]["amount"] > 0


def test_market_buy_fills_at_the_book_and_moves_the_balance(
    binance: Any, sim: SimExchangeThread
) -> None:
    before = binance.fetch_balance()
    order = binance.create_order("BTC/USDT", "market", "buy", 0.5)
    assert order["status"] == "closed" and order["filled"] == 0.5
    assert 59_000 < order["average"] < 61_000
    assert order["fee"]["currency"] == "BTC"
    fee = order["fee"]["cost"]
    assert fee == pytest.approx(0.5 * 0.001, abs=1e-7)  # 0.1 %, rounded down per fill
    after = binance.fetch_balance()
    assert after["BTC"]["free"] == pytest.approx(before["BTC"]["free"] + 0.5 - fee)
    assert after["USDT"]["free"] == pytest.approx(before["USDT"]["free"] - order["cost"])
    trades = binance.fetch_my_trades("BTC/USDT")
    assert sum(t["amount"] for t in trades) == pytest.approx(0.5)
    assert {t["order"] for t in trades} == {order["id"]}
    assert all(t["takerOrMaker"] == "taker" and t["side"] == "buy" for t in trades)
    later = binance.fetch_my_trades("BTC/USDT", params={"fromId": trades[-1]["id"]})
    assert [t["id"] for t in later] == [trades[-1]["id"]]
    stats = sim.stats()
    assert stats["orders"] == 1 and stats["fills"] == len(trades)


def test_limit_order_rests_locks_funds_and_cancels(binance: Any) -> None:
    order = binance.create_order("BTC/USDT", "limit", "buy", 0.01, 50_000)
    assert order["status"] == "open" and order["filled"] == 0
    assert binance.fetch_order(order["id"], "BTC/USDT")["status"] == "open"
    assert [o["id"] for o in binance.fetch_open_orders("BTC/USDT")] == [order["id"]]
    assert binance.fetch_balance()["USDT"]["used"] == pytest.approx(500.0)
    canceled = binance.cancel_order(order["id"], "BTC/USDT")
    assert canceled["status"] == "canceled"
    assert binance.fetch_open_orders("BTC/USDT") == []
    assert binance.fetch_balance()["USDT"]["used"] == 0
    with pytest.raises(ccxt.OrderNotFound):
        binance.cancel_order(order["id"], "BTC/USDT")


def test_marketable_limit_takes_then_rests(binance: Any, sim: SimExchangeThread) -> None:
    ask = float(binance.fetch_order_book("BTC/USDT", 5)["asks"][0][0])
    order = binance.create_order("BTC/USDT", "limit", "buy", 10, ask)
    assert order["status"] == "open" and 0 < order["filled"] < 10
    assert order["average"] == pytest.approx(ask)


def test_filter_and_balance_failures_are_ccxt_errors(binance: Any, sim: SimExchangeThread) -> None:
    with pytest.raises(ccxt.BadRequest, match="-1013.*Filter failure: NOTIONAL"):
        binance.create_order("BTC/USDT", "limit", "buy", 0.00001, 50_000)
    with pytest.raises(ccxt.InsufficientFunds):
        binance.create_order("BTC/USDT", "limit", "buy", 100, 50_000)
    assert sim.stats()["rejections"] == 2 and sim.stats()["orders"] == 0
