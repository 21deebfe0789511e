"""Forward migrations of the store, driven by the schema files.

The tables are the stream schemas in ``flightdesk/schemas``. Opening a store creates the
tables it lacks and adds the columns a newer schema has (``ALTER TABLE ... ADD COLUMN``), so
a store written by an older flightdesk opens with a newer one; columns are never dropped or
renamed (the stream contract forbids renames). ``flightdesk_meta.schema_version`` records
the version; a store newer than this code is refused rather than corrupted.
"""

from __future__ import annotations

from typing import Any

from flightdesk.core import schemas
from flightdesk.core.errors import StoreError
from flightdesk.core.storage.dialects import Dialect

#: 1: orders, fills, positions, events; 2: + metrics, snapshots, runs;
#: 3: positions.strategy (per-strategy rows; the rows written before are the desk's)
SCHEMA_VERSION = 3
TABLES = ("orders", "fills", "positions", "events", "performance_metrics",
          "strategy_snapshots", "runs")


def migrate(cur: Any, dialect: Dialect) -> int:
    """Bring the store behind ``cur`` up to this code's schema; return its old version."""
    cur.execute("CREATE TABLE IF NOT EXISTS flightdesk_meta (key TEXT PRIMARY KEY, value TEXT)")
    cur.execute("SELECT value FROM flightdesk_meta WHERE key = 'schema_version'")
    row = cur.fetchone()
    old = int(row[0]) if row else 0
    if old > SCHEMA_VERSION:
        raise StoreError(f"store schema version {old} is newer than this flightdesk "
                         f"({SCHEMA_VERSION}); upgrade flightdesk to open it")
    for table in TABLES:
        _migrate_table(cur, dialect, table)
    if old < 3:
        _v3_desk_positions(cur)
    cur.execute(dialect.set_meta("schema_version", str(SCHEMA_VERSION)))
    return old


def _migrate_table(cur: Any, dialect: Dialect, table: str) -> None:
    schema = schemas.schema(table)
    have = dialect.columns(cur, table)
    if not have:
        cur.adbc_ingest(table, schema.empty_table(), mode="create_append")
        return
    for field in schema:
        if field.name not in have:
            cur.execute(f'ALTER TABLE {table} ADD COLUMN "{field.name}" '
                        f"{dialect.types[field.type]}")


def _v3_desk_positions(cur: Any) -> None:
    """Before version 3 every ``positions`` row was the desk's: mark them so (``""``)."""
    cur.execute("UPDATE positions SET strategy = '' WHERE strategy IS NULL")
