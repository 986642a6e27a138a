"""What a build exports: the named scenarios and the entities they link.

Two temporary tables: ``hs_scenarios`` (the scenario ids) and ``hs_scope``
(scenario id, entity id, entity type) for every link of those scenarios.
Every builder reads the canonical tables through ``hs_scope``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthsim_models.errors import ScenarioNotFoundError
from healthsim_models.state import Scenario, ScenarioEntity

SCENARIOS = "hs_scenarios"
SCOPE = "hs_scope"


def resolve_scenarios(session: Session, names: Sequence[str] | None) -> dict[uuid.UUID, str]:
    """The scenarios named (by name or id), or all when ``names`` is None: id -> name.

    Raises :class:`ScenarioNotFoundError` for the first name no scenario has.
    """
    rows = session.execute(sa.select(Scenario.id, Scenario.name)).all()
    if names is None:
        return {row.id: row.name for row in rows}
    by_name = {row.name: row.id for row in rows}
    by_id = {str(row.id): row.id for row in rows}
    chosen: dict[uuid.UUID, str] = {}
    for name in names:
        found = by_name.get(name) or by_id.get(name.lower())
        if found is None:
            raise ScenarioNotFoundError(
                f"no scenario named or with id {name!r}; list them with list_scenarios() or 'healthsim scenario list'",
                name=name,
            )
        chosen[found] = next(row.name for row in rows if row.id == found)
    return chosen


def temp_table(session: Session, name: str, select: str) -> None:
    """(Re)create the temporary table ``name`` as ``select``."""
    connection = session.connection()
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    connection.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} AS {select}")


def create_scope(session: Session, scenario_ids: Sequence[uuid.UUID]) -> None:
    """Fill ``hs_scenarios`` and ``hs_scope`` for ``scenario_ids``."""
    listed = ", ".join(f"CAST('{sid}' AS uuid)" for sid in scenario_ids) or "NULL"
    temp_table(session, SCENARIOS, f"SELECT DISTINCT id AS scenario_id FROM scenarios WHERE id IN ({listed})")
    links = ScenarioEntity.__tablename__
    temp_table(
        session,
        SCOPE,
        f"SELECT l.scenario_id, l.entity_id, l.entity_type FROM {links} l "
        f"WHERE l.scenario_id IN (SELECT scenario_id FROM {SCENARIOS})",
    )


def in_scope(alias: str, entity_type: str) -> str:
    """SQL condition: the row ``alias`` of ``entity_type`` is linked from an exported scenario."""
    return f"{alias}.id IN (SELECT entity_id FROM {SCOPE} WHERE entity_type = '{entity_type}')"


def utc(column: str) -> str:
    """A time-zone aware column as the UTC wall-clock time OMOP's datetime fields hold."""
    return f"CAST({column} AT TIME ZONE 'UTC' AS TIMESTAMP)"


def utc_date(column: str) -> str:
    return f"CAST({utc(column)} AS DATE)"


def text(column: str, length: int) -> str:
    """``column`` cut to the ``length`` characters of its OMOP varchar."""
    return f"substr({column}, 1, {length})"


def literal(value: str) -> str:
    """``value`` as an SQL string; a ``%`` as chr(37), which psycopg would read as a placeholder."""
    quoted = "'" + value.replace("'", "''").replace("%", "' || chr(37) || '") + "'"
    return f"({quoted})"
