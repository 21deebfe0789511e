"""Arrow schemas of every stream, loaded from ``schemas/<stream>.json`` (the single source).

The JSON files ship inside the package (``flightdesk/schemas``; the repository's top-level
``schemas/`` points at the same files) so R, notebooks and other tools can read them too.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import pyarrow as pa

from flightdesk.core.errors import SchemaError

_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
}


def stream_names() -> list[str]:
    """Every stream with a schema file, sorted."""
    files = resources.files("flightdesk").joinpath("schemas").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".json"))


@cache
def _load(stream: str) -> dict:
    path = resources.files("flightdesk").joinpath("schemas").joinpath(f"{stream}.json")
    if not path.is_file():
        raise SchemaError(f"unknown stream {stream!r}; streams are {', '.join(stream_names())}",
                          stream=stream)
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def schema(stream: str) -> pa.Schema:
    """The full Arrow schema of ``stream`` (required and optional columns)."""
    spec = _load(stream)
    fields = [pa.field(f["name"], _TYPES[f["type"]],
                       nullable=f.get("nullable", not f["required"]))
              for f in spec["fields"]]
    return pa.schema(fields, metadata={"stream": stream, "doc": spec.get("doc", "")})


def required_columns(stream: str) -> list[str]:
    return [f["name"] for f in _load(stream)["fields"] if f["required"]]


def conform(stream: str, table: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
    """Check that ``table`` carries ``stream``'s required columns with castable types; return
    it with the stream's column order and types (optional columns filled with nulls)."""
    target = schema(stream)
    if table.schema.equals(target):  # the common case (batches built by our helpers)
        return table
    names = set(table.schema.names)
    arrays = []
    for field in target:
        if field.name not in names:
            if field.name in required_columns(stream):
                raise SchemaError(f"{stream} batch lacks required column {field.name!r} "
                                  f"({field.type})", stream=stream, field=field.name)
            arrays.append(pa.nulls(table.num_rows, field.type))
            continue
        col = table.column(field.name)
        if col.type != field.type:
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(f"{stream} column {field.name!r} is {col.type}, expected "
                                  f"{field.type}", stream=stream, field=field.name) from exc
        arrays.append(col)
    if isinstance(table, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(arrays, schema=target)
    return pa.Table.from_arrays(arrays, schema=target)
