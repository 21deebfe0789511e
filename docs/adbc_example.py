"""flightdesk from Python through ADBC: the store's catalogue, then SQL over it.

    pip install adbc-driver-flightsql pyarrow
    flightdesk serve                 # in another shell: grpc://127.0.0.1:8815
    python docs/adbc_example.py

``FLIGHTDESK_URL`` overrides the address; set ``FLIGHTDESK_TOKEN`` (a read token is
enough) when the desk has ``[flight] read_tokens``. The driver is ADBC's Go Flight SQL
driver, the same one R's ``adbcflightsql`` wraps; database tools (DBeaver, DataGrip)
browse the same catalogue through the Flight SQL JDBC driver. The SQL is read-only: one
``SELECT``/``WITH`` over orders, fills, positions, events and performance_metrics.
"""

from __future__ import annotations

import os

import adbc_driver_flightsql.dbapi as flightsql
from adbc_driver_flightsql import DatabaseOptions


def connect(url: str, token: str) -> flightsql.Connection:
    db_kwargs = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"} if token else {}
    return flightsql.connect(url, db_kwargs=db_kwargs, autocommit=True)


def browse(conn: flightsql.Connection) -> None:
    """What a database tool shows: schemas, tables and their columns."""
    print("table types:", conn.adbc_get_table_types())
    for catalog in conn.adbc_get_objects(depth="columns").read_all().to_pylist():
        for schema in catalog["catalog_db_schemas"]:
            for table in schema["db_schema_tables"]:
                columns = ", ".join(f"{c['column_name']} {c['xdbc_type_name']}"
                                    for c in table["table_columns"])
                print(f"{schema['db_schema_name']}.{table['table_name']}: {columns}")
    fills = conn.adbc_get_table_schema("fills", db_schema_filter="main")
    print("fills as Arrow:", ", ".join(f"{f.name} {f.type}" for f in fills))


def query(conn: flightsql.Connection) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT symbol, side, count(*) AS n, sum(qty) AS qty FROM main.fills "
                    "GROUP BY symbol, side ORDER BY symbol, side")
        print("fills by symbol and side:", [col[0] for col in cur.description])
        for row in cur.fetchall():
            print("  ", row)
        cur.execute("SELECT status, count(*) AS n FROM orders GROUP BY status ORDER BY n DESC")
        print("orders by status:", cur.fetch_arrow_table().to_pylist())


def main() -> None:
    url = os.environ.get("FLIGHTDESK_URL", "grpc://127.0.0.1:8815")
    with connect(url, os.environ.get("FLIGHTDESK_TOKEN", "")) as conn:
        info = conn.adbc_get_info()
        print(f"connected to {info['vendor_name']} {info['vendor_version']} "
              f"(Arrow {info['vendor_arrow_version']}) at {url}")
        browse(conn)
        query(conn)


if __name__ == "__main__":
    main()
