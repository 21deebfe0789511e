"""Every stream's schema loads from schemas/*.json and carries the contract's columns."""

import json
from pathlib import Path

import pyarrow as pa
import pytest

from flightdesk.core import schemas
from flightdesk.core.errors import SchemaError

# The contract table of ARCHITECTURE.md: these names may never change.
CONTRACT = {
    "book": "ts_event ts_recv seq venue symbol side price qty is_snapshot",
    "quotes": "ts_event ts_recv seq venue symbol bid_px bid_qty ask_px ask_qty mid spread_bps "
              "imbalance depth_ratio",
    "trades": "ts_event ts_recv seq venue symbol trade_id price qty side",
    "bars": "venue symbol interval open_time open high low close volume trades",
    "signals": "ts strategy venue symbol side strength confidence holding_period_ms",
    "orders": "order_id ts strategy venue symbol side order_type qty limit_px status reason",
    "fills": "fill_id order_id ts venue symbol side price qty fee liquidity",
    "positions": "ts venue symbol qty avg_price realized_pnl unrealized_pnl",
    "events": "ts kind venue symbol detail",
}
REPO = Path(__file__).resolve().parents[1]


def test_every_contract_stream_has_a_schema_file():
    assert set(CONTRACT) <= set(schemas.stream_names())


@pytest.mark.parametrize("stream", sorted(CONTRACT))
def test_stream_carries_required_columns(stream):
    schema = schemas.schema(stream)
    assert isinstance(schema, pa.Schema)
    for col in CONTRACT[stream].split():
        assert col in schema.names, f"{stream} lacks {col}"
        assert col in schemas.required_columns(stream)


@pytest.mark.parametrize("stream", sorted(CONTRACT))
def test_top_level_schemas_dir_is_the_same_json(stream):
    """R and other tools read schemas/ at the repository root: it must be the shipped file."""
    spec = json.loads((REPO / "schemas" / f"{stream}.json").read_text())
    assert spec["stream"] == stream
    assert [f["name"] for f in spec["fields"]] == schemas.schema(stream).names


def test_signals_optional_columns_are_nullable():
    schema = schemas.schema("signals")
    for col in ("qty", "order_type", "limit_px"):
        assert schema.field(col).nullable


def test_unknown_stream_names_the_streams():
    with pytest.raises(SchemaError, match="unknown stream 'qoutes'.*quotes"):
        schemas.schema("qoutes")


def test_conform_fills_optional_and_rejects_missing_required():
    batch = pa.RecordBatch.from_pydict({
        "ts": [1], "strategy": ["s"], "venue": ["v"], "symbol": ["X"], "side": ["buy"],
        "strength": [1.0], "confidence": [1], "holding_period_ms": [0]})
    out = schemas.conform("signals", batch)
    assert out.schema.equals(schemas.schema("signals"))
    assert out.column("qty").null_count == 1
    with pytest.raises(SchemaError, match="required column 'side'"):
        schemas.conform("signals", batch.drop_columns(["side"]))
    bad = batch.set_column(5, "strength", pa.array(["strong"]))
    with pytest.raises(SchemaError, match="'strength' is string, expected double"):
        schemas.conform("signals", bad)
