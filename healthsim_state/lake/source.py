"""What the lake export reads from the store: the scenarios, each canonical
table's rows of a scenario, and the derived (OMOP, star) tables, streamed as
Arrow record batches so that no table is ever whole in memory."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthsim_models.errors import ScenarioNotFoundError
from healthsim_models.registry import EntityType
from healthsim_models.state import Scenario, ScenarioEntity
from healthsim_state.lake.schemas import arrow_type, record_batch, table_schema

#: Rows fetched from the database at a time (each becomes one record batch).
BATCH_ROWS = 50_000

_SCENARIOS = Scenario.__table__
_LINKS = ScenarioEntity.__table__


@dataclass(frozen=True)
class ScenarioKey:
    """A scenario as the lake names it: its id and its name (the partition value)."""

    id: uuid.UUID
    name: str


def chosen_scenarios(session: Session, names: Sequence[str] | None) -> list[ScenarioKey]:
    """The scenarios given by name or id, in the order given (every scenario, by name, when None)."""
    rows = session.execute(sa.select(_SCENARIOS.c.id, _SCENARIOS.c.name).order_by(_SCENARIOS.c.name)).all()
    every = [ScenarioKey(r.id, r.name) for r in rows]
    if names is None:
        return every
    by_name = {s.name: s for s in every}
    by_id = {str(s.id): s for s in every}
    chosen: list[ScenarioKey] = []
    for name in names:
        found = by_name.get(name) or by_id.get(name.strip().lower())
        if found is None:
            raise ScenarioNotFoundError(f"no scenario named or with id {name!r}", name=name)
        if found not in chosen:
            chosen.append(found)
    return chosen


def _as_read(column: sa.Column) -> sa.ColumnElement:
    """The column as the lake needs it from the database: a UUID, or JSON the lake keeps
    as text, cast to text in SQL (the driver would build Python objects only for them to
    become text again); everything else as it is."""
    if isinstance(column.type, sa.Uuid) or (
        pa.types.is_string(arrow_type(column)) and isinstance(column.type, sa.JSON)
    ):
        return sa.cast(column, sa.Text).label(column.name)
    return column


def _scenario_select(et: EntityType, scenario: ScenarioKey) -> sa.Select:
    table = et.model.__table__
    return (
        sa.select(*(_as_read(c) for c in table.columns))
        .join(_LINKS, _LINKS.c.entity_id == table.c.id)
        .where(_LINKS.c.scenario_id == scenario.id, _LINKS.c.entity_type == et.name)
        .order_by(_LINKS.c.position)
    )


def scenario_batches(
    session: Session, et: EntityType, scenario: ScenarioKey, batch_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """The scenario's rows of the type's table, in saved order, as record batches of
    :func:`~healthsim_state.lake.schemas.table_schema` (the scenario's id and name added)."""
    schema = table_schema(et.model.__table__)
    result = session.connection().execution_options(yield_per=batch_rows).execute(_scenario_select(et, scenario))
    for rows in result.partitions():
        yield record_batch(rows, schema, (str(scenario.id), scenario.name))


# information_schema.columns data types (DuckDB's and PostgreSQL's spellings) as column types.
_TYPES: dict[str, sa.types.TypeEngine] = {
    "boolean": sa.Boolean(),
    "smallint": sa.SmallInteger(),
    "integer": sa.Integer(),
    "bigint": sa.BigInteger(),
    "real": sa.Float(),
    "float": sa.Float(),
    "double": sa.Float(),
    "double precision": sa.Float(),
    "date": sa.Date(),
    "timestamp": sa.DateTime(),
    "timestamp without time zone": sa.DateTime(),
    "timestamp with time zone": sa.DateTime(timezone=True),
    "uuid": sa.Uuid(),
    "json": sa.JSON(),
    "jsonb": sa.JSON(),
}


def _column_type(data_type: str, precision: int | None, scale: int | None) -> sa.types.TypeEngine:
    name = data_type.lower().split("(")[0].strip()
    if name in ("numeric", "decimal"):
        return sa.Numeric(precision, scale) if precision else sa.Numeric()
    return _TYPES.get(name, sa.String())  # text, varchar, character varying, ... (and anything else, as text)


def derived_tables(session: Session, schema: str) -> list[sa.Table]:
    """The tables of the derived schema ``schema``, as information_schema describes them
    (none when the schema was never built)."""
    columns = _INFO_COLUMNS
    rows = session.execute(
        sa.select(
            columns.c.table_name,
            columns.c.column_name,
            columns.c.data_type,
            columns.c.numeric_precision,
            columns.c.numeric_scale,
        )
        .where(columns.c.table_schema == schema)
        .order_by(columns.c.table_name, columns.c.ordinal_position)
    ).all()
    metadata = sa.MetaData()
    tables: dict[str, list[sa.Column]] = {}
    for table, column, data_type, precision, scale in rows:
        tables.setdefault(table, []).append(sa.Column(column, _column_type(data_type, precision, scale)))
    return [sa.Table(name, metadata, *cols, schema=schema) for name, cols in sorted(tables.items())]


_INFO_COLUMNS = sa.table(
    "columns",
    sa.column("table_schema"),
    sa.column("table_name"),
    sa.column("column_name"),
    sa.column("data_type"),
    sa.column("numeric_precision"),
    sa.column("numeric_scale"),
    sa.column("ordinal_position"),
    schema="information_schema",
)


def table_batches(session: Session, table: sa.Table, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Every row of a derived table, as record batches of its Arrow schema."""
    schema = table_schema(table, scenario_columns=False)
    result = session.connection().execution_options(yield_per=batch_rows).execute(sa.select(table))
    for rows in result.partitions():
        yield record_batch(rows, schema)


def latest_update(session: Session, et: EntityType, scenarios: Sequence[ScenarioKey]) -> dt.datetime | None:
    """The latest ``updated_at`` of the type's rows linked to ``scenarios`` (None without rows)."""
    table = et.model.__table__
    latest = session.execute(
        sa.select(sa.func.max(table.c.updated_at))
        .join(_LINKS, _LINKS.c.entity_id == table.c.id)
        .where(_LINKS.c.scenario_id.in_([s.id for s in scenarios]), _LINKS.c.entity_type == et.name)
    ).scalar_one()
    if latest is None:
        return None
    return latest.astimezone(dt.UTC) if latest.tzinfo else latest.replace(tzinfo=dt.UTC)
