"""signals_batch: one row from scalars (the live fast path) equals the general builder,
and a batch handed out never changes, however many are built after it."""

import numpy as np
import pytest

from flightdesk.core import schemas
from flightdesk.sdk.strategy import signals_batch

CASES = [
    dict(ts=5, venue="sim", symbol="BTCUSDT", side="buy", strength=0.5, confidence=0.4,
         holding_period_ms=500, qty=0.25, strategy="s"),
    dict(ts=-1, venue="v", symbol="X", side="flat", strength=float("nan"), confidence=1,
         holding_period_ms=0, qty=None, strategy=""),
    dict(ts=2**62, venue="v", symbol="X", side="sell", strength=-1.0, confidence=0.0,
         holding_period_ms=7, qty=3, strategy="s", order_type="limit_gtc", limit_px=99.5),
]


@pytest.mark.parametrize("case", CASES)
def test_scalars_give_what_one_element_arrays_give(case):
    fast = signals_batch(**case)
    as_arrays = {k: np.asarray([v]) if isinstance(v, int | float) and v is not None else v
                 for k, v in case.items()}
    general = signals_batch(**as_arrays)
    assert fast.schema.equals(schemas.schema("signals"))
    assert fast.num_rows == general.num_rows == 1
    for name in fast.schema.names:
        a, b = fast.column(name)[0].as_py(), general.column(name)[0].as_py()
        assert a == b or (a != a and b != b), name  # NaN == NaN here


def test_batches_stay_as_built():
    built = [signals_batch(i, "v", "X", "buy", strength=i * 0.5, confidence=0.1,
                           holding_period_ms=i, qty=float(i), strategy="s")
             for i in range(10_000)]  # more than one preallocated chunk of numbers
    assert [b.column("ts")[0].as_py() for b in built] == list(range(10_000))
    assert [b.column("qty")[0].as_py() for b in built] == [float(i) for i in range(10_000)]
    assert [b.column("holding_period_ms")[0].as_py() for b in built] == list(range(10_000))
    assert built[1234].column("strength")[0].as_py() == 617.0
