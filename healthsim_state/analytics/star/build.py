"""``build_star``: (re)build the star schema's rows of some scenarios, in the caller's transaction."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthsim_models.errors import InvalidArgumentError
from healthsim_models.state import Scenario
from healthsim_state.analytics.star import sql
from healthsim_state.analytics.star.tables import BUILD_ORDER, DECLARED_SCHEMA, SCENARIO_TABLES, metadata
from healthsim_state.store.audit import Recording, audited_call
from healthsim_state.store.dialects import dialect_of
from healthsim_state.store.repository import ScenarioRepository

DEFAULT_SCHEMA = DECLARED_SCHEMA
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Schemas that hold the store's own tables or the database's catalog: never the star schema's.
RESERVED_SCHEMAS = frozenset({"main", "public", "population", "information_schema", "pg_catalog", "temp", "pg_temp"})


@dataclass(frozen=True)
class StarSummary:
    """What a build wrote: the schema, the scenarios rebuilt (by name), the date ages were
    taken on, and per table the rows those scenarios now have there (``dim_date``: all its rows)."""

    schema: str
    scenarios: tuple[str, ...]
    as_of: dt.date
    rows: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "scenarios": list(self.scenarios),
            "as_of": self.as_of.isoformat(),
            "rows": dict(self.rows),
        }


def check_schema_name(schema: str) -> str:
    """``schema`` if it can hold the star schema; else :class:`InvalidArgumentError` saying why."""
    if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
        raise InvalidArgumentError(
            f"schema: {schema!r} is not a plain schema name (lower-case letters, digits and _, "
            "not starting with a digit, at most 63 characters)"
        )
    if schema in RESERVED_SCHEMAS:
        raise InvalidArgumentError(f"schema: {schema!r} holds the store's or the database's own tables; choose another")
    return schema


def _chosen(session: Session, scenarios: Sequence[str] | None) -> list[tuple[uuid.UUID, str]]:
    """(id, name) of the named scenarios (each once, in the order named), or of every scenario."""
    if isinstance(scenarios, str):
        scenarios = [scenarios]  # one name, not its letters
    if not scenarios:
        rows = session.execute(sa.select(Scenario.id, Scenario.name).order_by(Scenario.name)).all()
        return [(row.id, row.name) for row in rows]
    repo = ScenarioRepository(session)
    chosen: dict[uuid.UUID, str] = {}
    for name in scenarios:
        info = repo.scenario_summary(name)  # ScenarioNotFoundError names it
        chosen.setdefault(info.id, info.name)
    return list(chosen.items())


def _recorded(event: Recording, summary: StarSummary, arguments: dict[str, Any]) -> None:
    """The audit event of a build: rows per table, the schema and the scenarios."""
    event.counts = dict(summary.rows)
    event.details.update(schema=summary.schema, scenarios=list(summary.scenarios), as_of=summary.as_of.isoformat())
    if len(summary.scenarios) == 1:
        event.scenario_name = summary.scenarios[0]


@audited_call("star_build", describe=_recorded)
def build_star(
    session: Session,
    scenarios: Sequence[str] | None = None,
    *,
    schema: str = DEFAULT_SCHEMA,
    as_of: dt.date | None = None,
) -> StarSummary:
    """Build the star schema's rows of ``scenarios`` (names or ids; none: every scenario) in ``schema``.

    Creates the schema and its missing tables, deletes what these scenarios
    contributed before (with no scenario named, every row, also of scenarios
    deleted since, and ``dim_date``) and inserts their rows again: one
    ``INSERT ... SELECT`` per table, keys the same as before. Other
    scenarios' rows stay. Ages are taken on ``as_of`` (default: today, UTC;
    a person's death date if earlier). Runs in the caller's transaction and
    never commits; it is one audited operation (``star_build``), refused ones included.
    """
    check_schema_name(schema)
    as_of = as_of or dt.datetime.now(dt.UTC).date()
    dialect = dialect_of(session)
    # Builds of one schema take turns (they share dim_date), and a build takes turns with the
    # writers of the scenarios it reads, which hold their scenario's row as it does until commit.
    dialect.lock_keys(session, [f"star schema:{schema}"])
    chosen = _chosen(session, scenarios)
    named = bool(scenarios)
    ids = [scenario_id for scenario_id, _ in chosen]
    dialect.lock_rows(session, Scenario.__table__, Scenario.id.in_(ids))
    connection = session.connection()
    quoted = connection.dialect.identifier_preparer.quote_identifier(schema)
    _create(connection, schema, quoted)

    def run(statement: str, params: dict[str, Any] | None = None, *, scoped: bool = True) -> sa.CursorResult:
        clause = sa.text(statement.replace("{s}", quoted))
        if scoped:
            clause = clause.bindparams(sa.bindparam("ids", expanding=True, type_=sa.Uuid))
        return connection.execute(clause, {"ids": ids, **(params or {})})

    for table in SCENARIO_TABLES if named else BUILD_ORDER:  # dim_date too: built again whole
        if named:
            run(f"DELETE FROM {{s}}.{table.name} WHERE scenario_key IN :ids")
        else:
            run(f"DELETE FROM {{s}}.{table.name}", scoped=False)
    built_at = dt.datetime.now(dt.UTC)
    for source in sql.SOURCES:
        dialect.refresh_statistics(connection, connection.dialect.identifier_preparer.quote(source))
    for name, statement in sql.INSERTS.items():
        run(statement, {"as_of": as_of, "built_at": built_at})
        if name in sql.READ_BACK:
            dialect.refresh_statistics(connection, f"{quoted}.{name}")
    first, last = run(sql.DATE_SPAN, scoped=False).one()
    if first is not None:
        run(sql.DIM_DATE, {"first": _date_of(first), "last": _date_of(last)}, scoped=False)
    rows = {}
    for table in BUILD_ORDER:
        where = " WHERE scenario_key IN :ids" if table in SCENARIO_TABLES else ""
        rows[table.name] = run(f"SELECT COUNT(*) FROM {{s}}.{table.name}{where}", scoped=bool(where)).scalar_one()
    return StarSummary(schema=schema, scenarios=tuple(name for _, name in chosen), as_of=as_of, rows=rows)


def _create(connection: sa.Connection, schema: str, quoted: str) -> None:
    """The schema and any table of it that is missing, declared in ``analytics`` and mapped to ``schema``."""
    connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
    before = connection.get_execution_options().get("schema_translate_map")
    # Connection.execution_options changes the session's connection in place: put it back after.
    connection.execution_options(schema_translate_map={DECLARED_SCHEMA: schema})
    try:
        metadata.create_all(connection, checkfirst=True)
    finally:
        connection.execution_options(schema_translate_map=before)


def _date_of(key: int) -> dt.datetime:
    """The midnight of a YYYYMMDD date key (generate_series steps over timestamps on both backends)."""
    return dt.datetime(key // 10000, key // 100 % 100, key % 100)
