"""Write one OMOP table for the exported scenarios, set-based.

A :class:`Target` is a SELECT giving, per OMOP row, its source key
(``_key``), the entity it comes from (``_entity``, for provenance), a rank
among rows of the same key (``_pick``, lowest wins: an entity in two
scenarios, or a person made of a patient and a member, is one row) and the
table's columns but its id. :func:`write` stages the SELECT, gives new keys
ids, deletes the rows the build replaces and inserts the new ones: one
INSERT ... SELECT for the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from healthsim_state.analytics.omop.ids import assign_ids, only_exported, record_scenarios, replaced_ids
from healthsim_state.analytics.omop.schema import ID_MAP
from healthsim_state.analytics.omop.scope import temp_table


@dataclass(frozen=True)
class Target:
    """The rows of one OMOP table: ``select`` gives ``_key``, ``_entity``, ``_pick`` and ``columns``."""

    table: str
    id_column: str
    columns: tuple[str, ...]
    select: str
    #: The table whose ids the rows take (death rows take their person's).
    id_table: str | None = None

    @property
    def ids(self) -> str:
        return self.id_table or self.table

    @property
    def staged(self) -> str:
        return f"hs_stage_{self.table}"


def write(session: Session, schema: str, target: Target) -> int:
    """Replace the exported scenarios' rows of ``target.table``; returns the rows written."""
    connection = session.connection()
    staged = target.staged
    columns = ", ".join(target.columns)
    # Named by position: the builders' SELECTs need no aliases.
    temp_table(session, staged, f"SELECT * FROM ({target.select}) q (_key, _entity, _pick, {columns})")
    assign_ids(session, schema, target.ids, staged)
    if only_exported(session, schema, target.table):
        # Every row came from the exported scenarios (a build of all): no row stays.
        connection.exec_driver_sql(f"DELETE FROM {schema}.{target.table}")
    else:
        connection.exec_driver_sql(
            f"DELETE FROM {schema}.{target.table} WHERE {target.id_column} IN "
            f"({replaced_ids(schema, target.table, staged, target.ids)})"
        )
    picked = ", ".join(f"s.{c}" for c in target.columns)
    connection.exec_driver_sql(
        f"INSERT INTO {schema}.{target.table} ({target.id_column}, {columns}) "
        f"SELECT m.id, {picked} FROM "
        f"(SELECT *, row_number() OVER (PARTITION BY _key ORDER BY _pick, _entity) AS _n FROM {staged}) s "
        f"JOIN {schema}.{ID_MAP} m ON m.omop_table = '{target.ids}' AND m.source_key = s._key "
        "WHERE s._n = 1"
    )
    record_scenarios(session, schema, target.table, staged, target.ids)
    return connection.exec_driver_sql(f"SELECT count(DISTINCT _key) FROM {staged}").scalar() or 0


def drop_staged(session: Session, targets: list[Target]) -> None:
    for target in targets:
        session.connection().exec_driver_sql(f"DROP TABLE IF EXISTS {target.staged}")
