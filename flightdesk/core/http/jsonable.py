"""Arrow tables and desk dicts as strict JSON (what a browser's ``JSON.parse`` accepts).

JSON has no NaN or infinity, and the desk uses NaN for "none" (a market order's
``limit_px``, a mid with an empty side): orjson writes those as ``null``, numpy scalars
included, so neither tables nor dicts need a pass of their own. Timestamps stay integer
nanoseconds, exactly as over Flight (JavaScript reads them as doubles, ~256 ns apart:
plenty for a chart).
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def rows(table: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    """``table``'s rows as dicts (their non-finite floats become null in :func:`dumps`)."""
    return table.to_pylist()


def dumps(obj: Any) -> bytes:
    """Strict, compact JSON: non-finite floats as null, anything else orjson cannot encode
    as itself given as ``str``. orjson encodes 1,000 trades in ~0.2 ms where the stdlib
    takes ~2.4 ms (float formatting), time the GIL is not the engine's."""
    return orjson.dumps(obj, default=str, option=_OPTIONS)
