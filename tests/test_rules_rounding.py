"""The trading path's memoized instrument rounding gives exactly the Instrument's own
answers (the cache must never hand one value's result to another: -0.0, NaN, ints)."""

import math
import random

from flightdesk.core.market.instruments import Instrument, round_to_step
from flightdesk.core.trading import rules
from flightdesk.core.trading.orders import Side


def _same(a: float, b: float) -> bool:
    return (a != a and b != b) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def test_conform_and_lot_takes_match_the_instrument_twice_over():
    rng = random.Random(5)
    inst = Instrument("v", "X", tick_size=0.01, lot_step=0.001, min_qty=0.001)
    values = [0.0, -0.0, math.nan, math.inf, 1, 0.3, 0.1 + 0.2, 1e-12, 60000.005, -3.0]
    values += [round(rng.uniform(0, 5), rng.randint(0, 5)) for _ in range(200)]
    for _ in range(2):  # the second pass answers from the cache
        for v in values:
            for side in (Side.BUY, Side.SELL):
                got = rules.conform(inst, side, v, v, v)
                buy = side is Side.BUY
                want = (inst.round_qty(v), inst.round_price(v, buy),
                        round_to_step(v, inst.tick_size, up=buy))
                assert all(_same(g, w) for g, w in zip(got, want, strict=True)), (v, side)
        takes = [(100.0, q) for q in values[10:40]]
        assert rules.lot_takes(inst, takes, 3.3) == rules.lot_takes(inst, takes, 3.3)
