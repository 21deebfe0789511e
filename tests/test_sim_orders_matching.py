"""The sim exchange's order matching against its seeded market (sans-I/O, deterministic)."""

from __future__ import annotations

from typing import Any

import pytest

from flightdesk.plugins.venues.sim.account import Account, Balance
from flightdesk.plugins.venues.sim.ladder import E8
from flightdesk.plugins.venues.sim.market import SimMarket
from flightdesk.plugins.venues.sim.orders import NewOrder, SimOrders
from flightdesk.plugins.venues.sim.rules import ApiError, default_rules

T0 = 1_700_000_000_000


def make_desk(
    usdt: int = 1_000_000, btc: int = 100
) -> tuple[SimMarket, SimOrders, list[dict[str, Any]]]:
    market = SimMarket({"BTCUSDT": 60000.0}, seed=11)
    rules = {"BTCUSDT": default_rules("BTCUSDT", *market.grid("BTCUSDT"))}
    account = Account({"USDT": Balance(usdt * E8), "BTC": Balance(btc * E8)})
    events: list[dict[str, Any]] = []
    return market, SimOrders(market, rules, account, events.append), events


def order(
    side: str = "BUY",
    kind: str = "MARKET",
    qty: float = 0.5,
    price: float = 0.0,
    tif: str = "GTC",
    cid: str = "c1",
) -> NewOrder:
    return NewOrder("BTCUSDT", side, kind, tif, round(qty * E8), round(price * E8), 0, cid)


def test_market_buy_walks_the_asks_level_by_level_and_balances_add_up() -> None:
    market, orders, events = make_desk()
    asks = market.side_levels("BTCUSDT", bids=False)
    placed, fills = orders.place(order(qty=0.5), T0)
    want, prefix = 50_000_000, []
    for _, px, qty in asks:
        prefix.append((px, min(qty, want)))
        want -= prefix[-1][1]
        if not want:
            break
    assert [(f.price, f.qty) for f in fills] == prefix
    assert placed.status == "FILLED" and placed.executed == 50_000_000
    cost = sum(f.quote for f in fills)
    fee = sum(f.commission for f in fills)
    bal = orders.account.balances
    assert bal["USDT"].free == 1_000_000 * E8 - cost and bal["USDT"].locked == 0
    assert bal["BTC"].free == 100 * E8 + 50_000_000 - fee
    assert [e["x"] for e in events if e["e"] == "executionReport"] == ["NEW"] + ["TRADE"] * len(
        fills
    )


def test_liquidity_taken_is_not_taken_again() -> None:
    market, orders, _ = make_desk()
    held = {px: qty for _, px, qty in market.side_levels("BTCUSDT", bids=False)}
    _, first = orders.place(order(qty=0.05, cid="a"), T0)
    _, second = orders.place(order(qty=0.05, cid="b"), T0)
    taken: dict[int, int] = {}
    for f in first + second:
        taken[f.price] = taken.get(f.price, 0) + f.qty
    assert sum(taken.values()) == 10_000_000
    assert all(taken[px] <= held[px] for px in taken)
    # the second order starts where the first stopped: the rest of that level, then deeper
    assert second[0].price == first[-1].price or held[first[-1].price] == taken[first[-1].price]
    assert [f.price for f in first + second] == sorted(f.price for f in first + second)


def test_resting_buy_fills_as_maker_at_its_price_from_market_sells() -> None:
    market, orders, events = make_desk()
    bid = market.side_levels("BTCUSDT", bids=True)[0][1]
    placed, fills = orders.place(order(kind="LIMIT", qty=0.2, price=bid / E8), T0)
    assert fills == [] and placed.working and orders.account.balances["USDT"].locked > 0
    for i in range(2000):
        msgs = market.step_text(T0 + i, "BTCUSDT")
        orders.on_market(msgs, T0 + i)
        if placed.status == "FILLED":
            break
    assert placed.status == "FILLED" and not placed.working
    trades = [e for e in events if e["e"] == "executionReport" and e["x"] == "TRADE"]
    assert trades and all(e["m"] and e["L"] == f"{bid // E8}.{bid % E8:08d}" for e in trades)
    assert trades[-1]["X"] == "FILLED"
    assert all(e["X"] == "PARTIALLY_FILLED" for e in trades[:-1])
    assert orders.account.balances["USDT"].locked == 0
    assert orders.stats["maker_fills"] == len(trades)


def test_cancel_gives_the_lock_back_and_fok_ioc_expire() -> None:
    market, orders, _ = make_desk()
    placed, _ = orders.place(order(kind="LIMIT", qty=1, price=50_000), T0)
    assert orders.account.balances["USDT"].locked == 50_000 * E8
    orders.cancel(placed, T0, "x")
    assert orders.account.balances["USDT"].free == 1_000_000 * E8
    with pytest.raises(ApiError) as info:
        orders.cancel(placed, T0, "x")
    assert info.value.code == -2011
    ask = market.side_levels("BTCUSDT", bids=False)[0][1] / E8
    fok, fills = orders.place(order(kind="LIMIT", tif="FOK", qty=5, price=ask, cid="f"), T0)
    assert (fok.status, fills) == ("EXPIRED", [])
    ioc, fills = orders.place(order(kind="LIMIT", tif="IOC", qty=5, price=ask, cid="i"), T0)
    assert ioc.status == "EXPIRED" and 0 < ioc.executed < 5 * E8 and fills
    assert orders.account.balances["USDT"].locked == 0
    assert orders.open_orders() == []
