"""Stable OMOP ids and what each exported scenario contributed.

``hs_id_map`` (omop table, source key, id) gives a row the same integer id
in every build: a key seen before keeps its id, new keys get the next ids
after the table's largest, in key order, in one statement. ``hs_row_scenario``
(omop table, id, scenario id) records the scenarios a row came from, so that
building scenarios S again deletes exactly the rows only S contributed.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from healthsim_state.analytics.omop.schema import ID_MAP, ROW_SCENARIOS
from healthsim_state.analytics.omop.scope import SCENARIOS, SCOPE


def assign_ids(session: Session, schema: str, table: str, staged: str) -> None:
    """Give every ``_key`` of the staged table ``staged`` an id in ``table``, keeping old ones."""
    session.connection().exec_driver_sql(
        f"INSERT INTO {schema}.{ID_MAP} (omop_table, source_key, id) "
        f"SELECT '{table}', k._key, "
        f"(SELECT coalesce(max(id), 0) FROM {schema}.{ID_MAP} WHERE omop_table = '{table}') "
        "+ CAST(row_number() OVER (ORDER BY k._key) AS integer) "
        f"FROM (SELECT DISTINCT _key FROM {staged}) k "
        f"LEFT JOIN {schema}.{ID_MAP} m ON m.omop_table = '{table}' AND m.source_key = k._key "
        "WHERE m.id IS NULL"
    )


def replaced_ids(schema: str, table: str, staged: str, id_table: str) -> str:
    """SQL for the ids a build of the scenarios replaces: those of the staged keys, and
    those only the exported scenarios contributed."""
    return (
        f"SELECT m.id FROM {staged} s JOIN {schema}.{ID_MAP} m "
        f"ON m.omop_table = '{id_table}' AND m.source_key = s._key "
        f"UNION SELECT r.id FROM {schema}.{ROW_SCENARIOS} r "
        f"WHERE r.omop_table = '{table}' AND r.scenario_id IN (SELECT scenario_id FROM {SCENARIOS}) "
        f"AND NOT EXISTS (SELECT 1 FROM {schema}.{ROW_SCENARIOS} o WHERE o.omop_table = '{table}' "
        f"AND o.id = r.id AND o.scenario_id NOT IN (SELECT scenario_id FROM {SCENARIOS}))"
    )


def only_exported(session: Session, schema: str, table: str) -> bool:
    """Whether every row of ``table`` came from the exported scenarios alone."""
    other = session.connection().exec_driver_sql(
        f"SELECT 1 FROM {schema}.{ROW_SCENARIOS} WHERE omop_table = '{table}' "
        f"AND scenario_id NOT IN (SELECT scenario_id FROM {SCENARIOS}) LIMIT 1"
    )
    return other.first() is None


def record_scenarios(session: Session, schema: str, table: str, staged: str, id_table: str) -> None:
    """Replace what the exported scenarios contributed to ``table`` by the staged rows' scenarios."""
    connection = session.connection()
    connection.exec_driver_sql(
        f"DELETE FROM {schema}.{ROW_SCENARIOS} WHERE omop_table = '{table}' "
        f"AND scenario_id IN (SELECT scenario_id FROM {SCENARIOS})"
    )
    connection.exec_driver_sql(
        f"INSERT INTO {schema}.{ROW_SCENARIOS} (omop_table, id, scenario_id) "
        f"SELECT DISTINCT '{table}', m.id, c.scenario_id FROM {staged} s "
        f"JOIN {schema}.{ID_MAP} m ON m.omop_table = '{id_table}' AND m.source_key = s._key "
        f"JOIN {SCOPE} c ON c.entity_id = s._entity"
    )


def join_id(schema: str, table: str, alias: str, key: str) -> str:
    """A LEFT JOIN that names ``alias``.id the id of ``table``'s row with source key ``key``."""
    return f"LEFT JOIN {schema}.{ID_MAP} {alias} ON {alias}.omop_table = '{table}' AND {alias}.source_key = {key}"


def key(column: str) -> str:
    """A UUID column as a source key."""
    return f"CAST({column} AS varchar)"
