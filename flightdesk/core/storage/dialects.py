"""What differs between the store's databases: SQLite (default) and PostgreSQL.

Both are reached through ADBC with the same DB-API calls (``adbc_ingest`` inside explicit
``BEGIN``/``COMMIT``); a dialect only knows how to connect, how to list a table's columns,
the SQL type of an Arrow type, and the column order that reads rows back in commit order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from flightdesk.core.errors import StoreError
from flightdesk.core.storage.files import create_private, make_private

_PG_ORDER = {"runs": "started", "performance_metrics": "ts", "strategy_snapshots": "ts"}


class SQLiteDialect:
    name = "sqlite"
    types = {pa.int64(): "INTEGER", pa.float64(): "REAL", pa.string(): "TEXT",
             pa.bool_(): "INTEGER"}

    def __init__(self, path: Path) -> None:
        self.target = path

    def __str__(self) -> str:
        return str(self.target)

    def connect(self) -> Any:
        import adbc_driver_sqlite.dbapi as dbapi

        self.target.parent.mkdir(parents=True, exist_ok=True)
        if self.is_file:
            create_private(self.target)  # SQLite gives -wal and -shm the file's mode
        return dbapi.connect(str(self.target), autocommit=True)

    @property
    def is_file(self) -> bool:
        text = str(self.target)
        return text != ":memory:" and not text.startswith("file:")

    def setup(self, cur: Any) -> None:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        if self.is_file:
            make_private(*(Path(f"{self.target}{end}") for end in ("", "-wal", "-shm")))

    def columns(self, cur: Any, table: str) -> set[str]:
        cur.execute(f"PRAGMA table_info({table})")
        return {r[1] for r in cur.fetchall()}

    def order_by(self, table: str) -> str:
        return "rowid"

    def param(self, i: int) -> str:
        """The placeholder of the ``i``-th (1-based) query parameter."""
        return "?"

    def set_meta(self, key: str, value: str) -> str:
        return f"INSERT OR REPLACE INTO flightdesk_meta (key, value) VALUES ('{key}', '{value}')"


class PostgresDialect:
    name = "postgresql"
    types = {pa.int64(): "BIGINT", pa.float64(): "DOUBLE PRECISION", pa.string(): "TEXT",
             pa.bool_(): "BOOLEAN"}

    def __init__(self, uri: str) -> None:
        self.target = uri

    def __str__(self) -> str:
        return self.target.split("@")[-1]  # never print a password

    def connect(self) -> Any:
        try:
            import adbc_driver_postgresql.dbapi as dbapi
        except ImportError as exc:
            raise StoreError("a postgresql:// store needs the postgres extra: "
                             "pip install 'flightdesk[postgres]'") from exc
        return dbapi.connect(self.target, autocommit=True)

    def setup(self, cur: Any) -> None:
        return None

    def columns(self, cur: Any, table: str) -> set[str]:
        cur.execute("SELECT column_name FROM information_schema.columns "
                    f"WHERE table_schema = current_schema() AND table_name = '{table}'")
        return {r[0] for r in cur.fetchall()}

    def order_by(self, table: str) -> str:
        return _PG_ORDER.get(table, "ts, seq")

    def param(self, i: int) -> str:
        return f"${i}"

    def set_meta(self, key: str, value: str) -> str:
        return ("INSERT INTO flightdesk_meta (key, value) VALUES "
                f"('{key}', '{value}') ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")


Dialect = SQLiteDialect | PostgresDialect


def dialect_for(target: str | Path) -> Dialect:
    """A ``postgresql://`` URI gives PostgreSQL; anything else is a SQLite file path."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresDialect(text)
    return SQLiteDialect(Path(text.removeprefix("sqlite://")))
