"""Set-based writes and reads: where rows reach the database, per backend.

Writes happen inside the session's transaction: one upsert per batch of
complete rows of one table (latest wins on ``id``), and one insert of the
scenario links collected across types and batches (:class:`Links`):

- DuckDB: the batch becomes a pyarrow Table, which one statement on the
  session's own connection reads by name: ``INSERT ... SELECT``, with
  ``ON CONFLICT DO UPDATE`` when a probe finds any of its ids stored.
- PostgreSQL: the batch is COPY'd into a temporary staging table, then one
  ``INSERT ... SELECT ... ON CONFLICT``, in key order (see below).

Never a statement per row. Reads are one query per entity type, through
Arrow on DuckDB.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthsim_models.state import Scenario, ScenarioEntity

_LINKS = ScenarioEntity.__table__


def _arrow_type(column: sa.Column) -> pa.DataType:
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


@cache
def _arrow_schema(table: sa.Table) -> pa.Schema:
    return pa.schema([(c.name, _arrow_type(c)) for c in table.columns])


def _select_expression(column: sa.Column) -> str:
    if isinstance(column.type, sa.Uuid):
        return f"CAST({column.name} AS UUID)"
    if isinstance(column.type, sa.JSON):
        return f"CAST({column.name} AS JSON)"
    return column.name


def _is_duckdb(session: Session) -> bool:
    return session.get_bind().dialect.name == "duckdb"


def _driver(session: Session) -> Any:
    """The DBAPI connection under the session's transaction (DuckDB or psycopg)."""
    return session.connection().connection.driver_connection


def upsert(session: Session, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Upsert ``rows`` (every column, ``id`` unique within the batch). UUID
    columns hold text (32 hex digits or the dashed form), JSON columns hold
    JSON text."""
    if not rows:
        return
    if _is_duckdb(session):
        _upsert_duckdb(session, table, rows)
    else:
        _upsert_postgresql(session, table, rows)


def link(session: Session, scenario_id: uuid.UUID, links: Links) -> None:
    """Link entities to the scenario: one statement for every type in ``links``.
    A link the scenario already has keeps its position."""
    if not links:
        return
    if _is_duckdb(session):
        _link_duckdb(session, scenario_id, links)
    else:
        _link_postgresql(session, scenario_id, links)


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


def _update_clause(table: sa.Table) -> str:
    return ", ".join(f"{c.name} = excluded.{c.name}" for c in table.columns if c.name != "id")


# How a batch reaches DuckDB (measured; docs/performance.md):
# - By a replacement scan: the statement names a local variable holding the
#   batch, and DuckDB reads that Arrow table for this statement only. DuckDB
#   looks the name up in the frame that calls execute, so the call stays in
#   the function that holds the variable. A view registered and unregistered
#   inside a transaction would keep its table alive until commit (a whole
#   two-million-entity save in memory), and relation.query binds through the
#   Python relation layer, about 3 ms more per statement. Such statements
#   take no parameters, so a scenario id is given as a literal (the text of
#   a uuid.UUID, nothing a caller wrote).
# - ON CONFLICT DO UPDATE costs 5-8 ms per statement however few rows (it
#   grows with the columns it updates: 30-40 here), and far more on a large
#   table. A probe for the batch's ids comes first (a scan of the id
#   column: 20 ms for 20,000 ids against 5 million rows), and a batch none
#   of whose ids is stored yet, as in a new scenario, is a plain INSERT.
#   The probe runs in the same transaction: it sees every earlier batch.


def _upsert_duckdb(session: Session, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    raw = _driver(session)
    # UUID columns arrive as 32-hex text from the repository; DuckDB casts it.
    _hs_batch = pa.Table.from_pylist(rows, schema=_arrow_schema(table))  # read by name in the SQL below
    stored = raw.execute(
        f"SELECT 1 FROM {table.name} WHERE id IN (SELECT CAST(id AS UUID) FROM _hs_batch) LIMIT 1"
    ).fetchone()
    raw.execute(_duckdb_insert(table, upsert=stored is not None))


@cache
def _duckdb_insert(table: sa.Table, *, upsert: bool) -> str:
    names = ", ".join(c.name for c in table.columns)
    selects = ", ".join(_select_expression(c) for c in table.columns)
    sql = f"INSERT INTO {table.name} ({names}) SELECT {selects} FROM _hs_batch"
    return sql + f" ON CONFLICT (id) DO UPDATE SET {_update_clause(table)}" if upsert else sql


def _link_duckdb(session: Session, scenario_id: uuid.UUID, links: Links) -> None:
    raw = _driver(session)
    _hs_links = pa.table(
        {  # read by name in the SQL below
            "entity_type": pa.array(links.entity_types, type=pa.string()),
            "entity_id": pa.array(links.entity_ids, type=pa.string()),
            "position": pa.array(links.positions, type=pa.int64()),
        }
    )
    raw.execute(
        f"INSERT INTO {_LINKS.name} (scenario_id, entity_type, entity_id, position) "
        f"SELECT CAST('{uuid.UUID(str(scenario_id))}' AS UUID), entity_type, CAST(entity_id AS UUID), position "
        "FROM _hs_links ON CONFLICT DO NOTHING"
    )


# PostgreSQL locks each row an upsert inserts or updates, in the order the
# statement reaches it, until the transaction ends. Writers saving entities
# they share therefore insert in one order, by key: two writers' saves of
# the same types then wait for each other rather than deadlock (a deadlock
# that order cannot prevent, as across batches or between types, is left to
# the retry of the whole transaction: healthsim_state.store.transaction). DuckDB
# needs no order: a file has one writer.


def _upsert_postgresql(session: Session, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    raw = _driver(session)
    stage = f"_hs_stage_{table.name}"
    names = [c.name for c in table.columns]
    column_list = ", ".join(names)
    with raw.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table.name}) ON COMMIT DROP")
        with cursor.copy(f"COPY {stage} ({column_list}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[n] for n in names])
        cursor.execute(
            f"INSERT INTO {table.name} ({column_list}) SELECT {column_list} FROM {stage} "
            f"ORDER BY id ON CONFLICT (id) DO UPDATE SET {_update_clause(table)}"
        )
        cursor.execute(f"TRUNCATE {stage}")


def _link_postgresql(session: Session, scenario_id: uuid.UUID, links: Links) -> None:
    raw = _driver(session)
    stage = "_hs_stage_links"
    with raw.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
            "(entity_type text, entity_id uuid, position bigint) ON COMMIT DROP"
        )
        with cursor.copy(f"COPY {stage} (entity_type, entity_id, position) FROM STDIN") as copy:
            for row in zip(links.entity_types, links.entity_ids, links.positions, strict=True):
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {_LINKS.name} (scenario_id, entity_type, entity_id, position) "
            f"SELECT %s, entity_type, entity_id, position FROM {stage} "
            "ORDER BY entity_type, entity_id ON CONFLICT DO NOTHING",
            (scenario_id,),
        )
        cursor.execute(f"TRUNCATE {stage}")


#: (offset, limit) of a page of a scenario's rows in saved order (a limit of
#: None: to the end); None for all rows.
Page = tuple[int, int | None] | None


#: A scenario as the read helpers take it: its id, or its name, which is then
#: looked up inside the same query (one statement instead of two).
ScenarioRef = uuid.UUID | str


def _scenario_query(table: sa.Table, page: Page = None) -> str:
    """Rows of ``table`` linked to a scenario, in saved order; ``{sid}``,
    ``{etype}`` (and ``{limit}``, ``{offset}`` for a ``page``) are left for the
    driver's parameter style."""
    columns = ", ".join(f"t.{c.name}" for c in table.columns)
    sql = (
        f"SELECT {columns} FROM {_LINKS.name} se JOIN {table.name} t ON t.id = se.entity_id "
        "WHERE se.scenario_id = {sid} AND se.entity_type = {etype} ORDER BY se.position"
    )
    return sql if page is None else sql + " LIMIT {limit} OFFSET {offset}"


def _scenario_id_sql(scenario: ScenarioRef, marker: str) -> str:
    """SQL for the scenario's id, given ``marker`` (the driver's parameter) for
    the id's text or the name. A name that no scenario has gives NULL: no rows."""
    if isinstance(scenario, uuid.UUID):
        return f"CAST({marker} AS UUID)"
    return f"(SELECT id FROM {Scenario.__table__.name} WHERE name = {marker})"


def _duckdb_scenario_relation(
    session: Session, table: sa.Table, scenario: ScenarioRef, entity_type: str, page: Page = None
) -> Any:
    """The scenario query as a DuckDB relation, to fetch as Arrow whole or in batches."""
    sql = _scenario_query(table, page).format(sid=_scenario_id_sql(scenario, "?"), etype="?", limit="?", offset="?")
    params: list[Any] = [str(scenario), entity_type]
    if page is not None:
        offset, limit = page
        params += [limit, offset]
    return _driver(session).sql(sql, params=params)


def _postgresql_scenario_result(
    session: Session, table: sa.Table, scenario: ScenarioRef, entity_type: str, page: Page = None, **options: Any
) -> Any:
    """The scenario query's result through SQLAlchemy (``options``: execution options)."""
    sql = _scenario_query(table, page).format(
        sid=_scenario_id_sql(scenario, "%(sid)s"), etype="%(etype)s", limit="%(limit)s", offset="%(offset)s"
    )
    params: dict[str, Any] = {"sid": str(scenario), "etype": entity_type}
    if page is not None:
        params["offset"], params["limit"] = page
    connection = session.connection()
    if options:
        connection = connection.execution_options(**options)
    return connection.exec_driver_sql(sql, params)


def scenario_rows(session: Session, table: sa.Table, scenario: ScenarioRef, entity_type: str) -> list[dict[str, Any]]:
    """Every row of ``table`` linked to the scenario, in saved order.

    On DuckDB through Arrow: UUID and JSON columns come back as text, date-times
    as naive datetimes in UTC.
    """
    if _is_duckdb(session):
        return _python_rows(_duckdb_scenario_relation(session, table, scenario, entity_type).to_arrow_table())
    result = _postgresql_scenario_result(session, table, scenario, entity_type)
    return [dict(row) for row in result.mappings()]


def _python_rows(data: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    """``data`` as dicts, with time-zone-aware timestamps made naive UTC first:
    pyarrow builds a naive datetime several times faster than one with a
    zone, and every reader of these rows treats a naive one as UTC."""
    schema = data.schema
    if any(pa.types.is_timestamp(f.type) and f.type.tz is not None for f in schema):
        columns = [
            column.cast(pa.timestamp(f.type.unit)) if pa.types.is_timestamp(f.type) else column
            for f, column in zip(schema, data.columns, strict=True)
        ]
        data = type(data).from_arrays(columns, names=schema.names)
    return data.to_pylist()


def iter_scenario_rows(
    session: Session,
    table: sa.Table,
    scenario_id: uuid.UUID,
    entity_type: str,
    batch_size: int,
    page: Page = None,
) -> Iterator[list[dict[str, Any]]]:
    """Like :func:`scenario_rows`, in lists of at most ``batch_size`` rows,
    streamed from the database so the whole type is never in memory; only
    the rows of ``page`` when given (skipped rows are never fetched)."""
    if _is_duckdb(session):
        relation = _duckdb_scenario_relation(session, table, scenario_id, entity_type, page)
        for batch in relation.to_arrow_reader(batch_size):
            yield _python_rows(batch)
        return
    result = _postgresql_scenario_result(session, table, scenario_id, entity_type, page, yield_per=batch_size)
    for partition in result.mappings().partitions():
        yield [dict(row) for row in partition]


def scenario_arrow(session: Session, table: sa.Table, scenario: ScenarioRef, entity_type: str) -> pa.Table:
    """The scenario's rows of ``table`` as a pyarrow Table with the table's columns
    (``scenario``: its id, or its name; no rows when no scenario has that name)."""
    if _is_duckdb(session):
        return _duckdb_scenario_relation(session, table, scenario, entity_type).to_arrow_table()
    rows = scenario_rows(session, table, scenario, entity_type)
    return pa.table(
        {c.name: pa.array([_arrow_value(c, r[c.name]) for r in rows], type=_arrow_type(c)) for c in table.columns}
    )


def _arrow_value(column: sa.Column, value: Any) -> Any:
    """A PostgreSQL value as DuckDB's Arrow export gives it: UUID and JSON as text."""
    if value is None or not isinstance(column.type, sa.Uuid | sa.JSON):
        return value
    if isinstance(column.type, sa.Uuid):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
