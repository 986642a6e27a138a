"""Arrow types of the lake's columns, from the models' column types and rules.

UUIDs are text (36 characters, dashed): Spark, Trino and Delta have no UUID
type. Money and other decimals keep their precision and scale, date-times
are UTC instants, dates are dates. An array column of strings or whole
numbers is a list; an array of objects (``reactions``) and the
``extensions`` overflow are JSON text. Every canonical dataset adds
``scenario_id`` (text) to the table's columns; ``scenario`` (the scenario's
name) is the partition column.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import cache
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from healthsim_models.columns import rule_of
from healthsim_state.store.batches import arrow_type as store_arrow_type

#: The partition column of a canonical dataset: the scenario's name.
SCENARIO = "scenario"
#: The scenario's id, a data column beside it (names can be changed, ids cannot).
SCENARIO_ID = "scenario_id"

_LIST_ITEMS = {"str": pa.string(), "int": pa.int64()}


def arrow_type(column: sa.Column) -> pa.DataType:
    """The Arrow type of ``column`` in the lake: the store's own Arrow type of it, but
    arrays as lists and the types only derived tables have (floats, small integers,
    NUMERIC of any size: as a double, no decimal holds them all)."""
    t = column.type
    if isinstance(t, sa.JSON):
        item = _LIST_ITEMS.get(rule_of(column).items) if column.name != "extensions" else None
        return pa.list_(item) if item is not None else pa.string()
    if isinstance(t, sa.Float) or (isinstance(t, sa.Numeric) and t.precision is None):
        return pa.float64()
    if isinstance(t, sa.SmallInteger):
        return pa.int16()
    # UUIDs and text as strings, decimals with their precision and scale, date-times
    # as UTC instants (one without a zone, OMOP's, is read as UTC), dates as dates.
    return store_arrow_type(column)


@cache
def table_schema(table: sa.Table, *, scenario_columns: bool = True) -> pa.Schema:
    """The Arrow schema of ``table``'s dataset (with ``scenario_id`` and ``scenario``
    for a canonical table)."""
    fields = [pa.field(c.name, arrow_type(c), nullable=c.nullable) for c in table.columns]
    if scenario_columns:
        fields += [pa.field(SCENARIO_ID, pa.string(), nullable=False), pa.field(SCENARIO, pa.string(), nullable=False)]
    return pa.schema(fields)


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value  # NUMERIC of any size, as a double


def _converter(kind: pa.DataType) -> Callable[[Any], Any] | None:
    """What each value of a column of ``kind`` goes through on its way to Arrow (None: nothing)."""
    if pa.types.is_string(kind):
        return _text
    if pa.types.is_floating(kind):
        return _number
    return None


def record_batch(rows: Sequence[Any], schema: pa.Schema, extra: Sequence[Any] = ()) -> pa.RecordBatch:
    """``rows`` (tuples in the order of the schema's first fields) as a record batch of
    ``schema``; ``extra`` are the values of its remaining fields, the same in every row."""
    width = len(schema) - len(extra)
    columns = []
    for i, f in enumerate(schema):
        if i < width:
            convert = _converter(f.type)
            values = [row[i] for row in rows] if convert is None else [convert(row[i]) for row in rows]
            columns.append(pa.array(values, type=f.type))
        else:
            columns.append(pa.array([extra[i - width]] * len(rows), type=f.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)
