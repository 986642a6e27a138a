"""Rows in bulk, as every backend moves them: the scenario links a save
collects, the pages and scenario references of reads, a table's Arrow
schema, and the SQL text both backends share for them.

The backends' own statements are in :mod:`healthsim_state.store.dialects`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from functools import lru_cache

import pyarrow as pa
import sqlalchemy as sa

from healthsim_models.state import Scenario, ScenarioEntity

LINKS = ScenarioEntity.__table__

#: (offset, limit) of a page of a scenario's rows in saved order (a limit of
#: None: to the end); None for all rows.
Page = tuple[int, int | None] | None

#: A scenario as the read helpers take it: its id, or its name, which is then
#: looked up inside the same query (one statement instead of two).
ScenarioRef = uuid.UUID | str


class Links:
    """Scenario links waiting to be written, collected across types and
    batches so that a save inserts them in few statements."""

    def __init__(self) -> None:
        self.entity_types: list[str] = []
        self.entity_ids: list[str] = []  # UUIDs as text
        self.positions: list[int] = []

    def add(self, entity_type: str, entity_ids: Sequence[str], positions: Sequence[int]) -> None:
        self.entity_types.extend([entity_type] * len(entity_ids))
        self.entity_ids.extend(entity_ids)
        self.positions.extend(positions)

    def __len__(self) -> int:
        return len(self.entity_ids)


def arrow_type(column: sa.Column) -> pa.DataType:
    t = column.type
    if isinstance(t, sa.Uuid | sa.JSON | sa.String):
        return pa.string()  # UUID and JSON travel as text and are cast in SQL
    if isinstance(t, sa.Boolean):
        return pa.bool_()
    if isinstance(t, sa.BigInteger):
        return pa.int64()
    if isinstance(t, sa.Integer):
        return pa.int32()
    if isinstance(t, sa.Numeric):
        return pa.decimal128(t.precision, t.scale)
    if isinstance(t, sa.DateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(t, sa.Date):
        return pa.date32()
    raise TypeError(f"no Arrow type for {column}")


#: Tables whose Arrow schema is kept: the canonical and history tables, and
#: the staging tables of a few batch writers (each writer makes new ones, so
#: an unbounded cache would keep every writer's tables for the process's life).
ARROW_SCHEMAS_KEPT = 512


@lru_cache(maxsize=ARROW_SCHEMAS_KEPT)
def arrow_schema(table: sa.Table) -> pa.Schema:
    return pa.schema([(c.name, arrow_type(c)) for c in table.columns])


def update_clause(table: sa.Table) -> str:
    """The SET list of an upsert: every column but ``id`` from the new row."""
    return ", ".join(f"{c.name} = excluded.{c.name}" for c in table.columns if c.name != "id")


def scenario_query(table: sa.Table, page: Page = None, column: Callable[[sa.Column], str] | None = None) -> str:
    """Rows of ``table`` linked to a scenario, in saved order; ``{sid}`` (the
    test of the scenario id, :func:`scenario_id_sql`), ``{etype}`` (and
    ``{limit}``, ``{offset}`` for a ``page``) are left for the driver's
    parameter style. ``column``: each column's select expression (default
    ``t.<name>``)."""
    columns = ", ".join(column(c) if column else f"t.{c.name}" for c in table.columns)
    sql = (
        f"SELECT {columns} FROM {LINKS.name} se JOIN {table.name} t ON t.id = se.entity_id "
        "WHERE se.scenario_id {sid} AND se.entity_type = {etype} ORDER BY se.position"
    )
    return sql if page is None else sql + " LIMIT {limit} OFFSET {offset}"


def scenario_id_sql(scenario: ScenarioRef, marker: str) -> str:
    """The test of a scenario id that :func:`scenario_query` puts after
    ``se.scenario_id``, given ``marker`` (the driver's parameter) for the id's
    text or the name. A name that no scenario has matches no rows."""
    if isinstance(scenario, uuid.UUID):
        return f"= CAST({marker} AS UUID)"
    # IN, not = (SELECT ...): DuckDB filters the links by the name's id as it
    # scans them, where a scalar subquery is a join after the scan (an
    # entities_frame 5-18% slower, measured; docs/performance.md). Names are unique.
    return f"IN (SELECT id FROM {Scenario.__table__.name} WHERE name = {marker})"
