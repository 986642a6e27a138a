"""``omop_summary``: what an OMOP schema holds, per exported scenario (reads only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from healthsim_models.errors import InvalidArgumentError
from healthsim_state.analytics.omop.schema import DEFAULT_SCHEMA, ROW_SCENARIOS, schema_exists, schema_name

#: The most conditions and drugs a summary lists per scenario.
MAX_TOP = 100


def omop_summary(session: Session, schema: str = DEFAULT_SCHEMA, *, top: int = 10) -> dict[str, Any]:
    """Per exported scenario: persons, visits per visit concept, and the ``top`` most
    frequent conditions and drugs (by persons, then records) with their concept names;
    a row without a concept (id 0) is listed by its source value.

    Raises :class:`InvalidArgumentError` when ``schema`` holds no OMOP export.
    """
    schema = schema_name(schema)
    if not 1 <= top <= MAX_TOP:
        raise InvalidArgumentError(f"top must be between 1 and {MAX_TOP}, got {top}")
    if not schema_exists(session, schema):
        raise InvalidArgumentError(
            f"schema {schema!r} holds no OMOP export; build one with 'healthsim analytics omop' (or build_omop)"
        )
    connection = session.connection()
    scenarios = connection.exec_driver_sql(
        f"SELECT s.id, s.name, count(DISTINCT r.id) FROM {schema}.{ROW_SCENARIOS} r "
        "JOIN scenarios s ON s.id = r.scenario_id WHERE r.omop_table = 'person' GROUP BY s.id, s.name ORDER BY s.name"
    ).all()
    result: list[dict[str, Any]] = []
    for scenario_id, name, persons in scenarios:
        of = f"r.omop_table = '{{table}}' AND r.scenario_id = CAST('{scenario_id}' AS uuid)"
        visits = connection.exec_driver_sql(
            f"SELECT v.visit_concept_id, coalesce(c.concept_name, ''), count(*) FROM {schema}.visit_occurrence v "
            f"JOIN {schema}.{ROW_SCENARIOS} r ON r.id = v.visit_occurrence_id AND {of.format(table='visit_occurrence')} "
            f"LEFT JOIN {schema}.concept c ON c.concept_id = v.visit_concept_id "
            "GROUP BY v.visit_concept_id, c.concept_name ORDER BY 3 DESC, 1"
        ).all()
        result.append(
            {
                "scenario": name,
                "persons": persons,
                "visits": [{"concept_id": cid, "concept_name": cname, "visits": n} for cid, cname, n in visits],
                "top_conditions": _top(connection, schema, "condition_occurrence", "condition", of, top),
                "top_drugs": _top(connection, schema, "drug_exposure", "drug", of, top),
            }
        )
    return {"schema": schema, "scenarios": result}


def _top(connection: Any, schema: str, table: str, prefix: str, of: str, top: int) -> list[dict[str, Any]]:
    id_column = f"{table}_id"
    concept = f"t.{prefix}_concept_id"
    source = f"CASE WHEN {concept} = 0 THEN t.{prefix}_source_value END"
    rows = connection.exec_driver_sql(
        f"SELECT {concept}, coalesce(max(c.concept_name), ''), {source}, count(DISTINCT t.person_id), count(*) "
        f"FROM {schema}.{table} t JOIN {schema}.{ROW_SCENARIOS} r ON r.id = t.{id_column} AND {of.format(table=table)} "
        f"LEFT JOIN {schema}.concept c ON c.concept_id = {concept} "
        f"GROUP BY {concept}, {source} ORDER BY 4 DESC, 5 DESC, 1, 3 LIMIT {int(top)}"
    ).all()
    return [
        {"concept_id": cid, "concept_name": cname, "source_value": value, "persons": persons, "records": records}
        for cid, cname, value, persons, records in rows
    ]
