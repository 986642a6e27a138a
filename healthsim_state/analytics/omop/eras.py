"""Per-person spans derived from the OMOP tables: observation_period, condition_era, drug_era.

They are rebuilt for every person after each build, from what the OMOP
tables then hold (so a person in several scenarios gets one span over all
of them); their ids are stable through the id map, their scenarios are
their person's. Eras join a person's records of one concept whose gap is at
most :data:`ERA_GAP_DAYS` days (OMOP's standard 30-day persistence window);
a drug exposure lasts from its start to its end date (the source's end, else
start plus days supply, else its start). A drug era is of an ingredient
(CONCEPT_ANCESTOR, when the vocabulary folder has it), else of the drug.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from healthsim_state.analytics.omop import concepts as c
from healthsim_state.analytics.omop.ids import assign_ids
from healthsim_state.analytics.omop.schema import ID_MAP, ROW_SCENARIOS
from healthsim_state.analytics.omop.scope import temp_table

ERA_GAP_DAYS = 30

#: (table, start column, end column or None) of every dated record of a person.
_SPANS = (
    ("visit_occurrence", "visit_start_date", "visit_end_date"),
    ("condition_occurrence", "condition_start_date", "condition_end_date"),
    ("procedure_occurrence", "procedure_date", "procedure_end_date"),
    ("drug_exposure", "drug_exposure_start_date", "drug_exposure_end_date"),
    ("device_exposure", "device_exposure_start_date", "device_exposure_end_date"),
    ("measurement", "measurement_date", None),
    ("observation", "observation_date", None),
    ("note", "note_date", None),
    ("specimen", "specimen_date", None),
    ("payer_plan_period", "payer_plan_period_start_date", "payer_plan_period_end_date"),
    ("death", "death_date", None),
)


def _rewrite(session: Session, schema: str, table: str, id_column: str, columns: tuple[str, ...], select: str) -> int:
    """Replace all of ``table`` by ``select`` (``_key``, ``person_id``, ``columns``)."""
    connection = session.connection()
    staged = f"hs_stage_{table}"
    temp_table(session, staged, f"SELECT * FROM ({select}) q (_key, person_id, {', '.join(columns)})")
    assign_ids(session, schema, table, staged)
    connection.exec_driver_sql(f"DELETE FROM {schema}.{table}")
    connection.exec_driver_sql(
        f"INSERT INTO {schema}.{table} ({id_column}, person_id, {', '.join(columns)}) "
        f"SELECT m.id, s.person_id, {', '.join('s.' + col for col in columns)} FROM {staged} s "
        f"JOIN {schema}.{ID_MAP} m ON m.omop_table = '{table}' AND m.source_key = s._key"
    )
    connection.exec_driver_sql(f"DELETE FROM {schema}.{ROW_SCENARIOS} WHERE omop_table = '{table}'")
    connection.exec_driver_sql(
        f"INSERT INTO {schema}.{ROW_SCENARIOS} (omop_table, id, scenario_id) "
        f"SELECT DISTINCT '{table}', m.id, r.scenario_id FROM {staged} s "
        f"JOIN {schema}.{ID_MAP} m ON m.omop_table = '{table}' AND m.source_key = s._key "
        f"JOIN {schema}.{ROW_SCENARIOS} r ON r.omop_table = 'person' AND r.id = s.person_id"
    )
    count = connection.exec_driver_sql(f"SELECT count(*) FROM {staged}").scalar() or 0
    connection.exec_driver_sql(f"DROP TABLE {staged}")
    return count


def observation_period(session: Session, schema: str) -> int:
    """One period per person, from the first to the last date of any of their records."""
    spans = " UNION ALL ".join(
        f"SELECT person_id, {start} AS first_day, {f'coalesce({end}, {start})' if end else start} AS last_day "
        f"FROM {schema}.{table}"
        for table, start, end in _SPANS
    )
    select = (
        f"SELECT CAST(person_id AS varchar), person_id, min(first_day), greatest(max(last_day), min(first_day)), "
        f"{c.EHR} FROM ({spans}) d GROUP BY person_id"
    )
    columns = ("observation_period_start_date", "observation_period_end_date", "period_type_concept_id")
    return _rewrite(session, schema, "observation_period", "observation_period_id", columns, select)


def _eras(schema: str, table: str, concept: str, start: str, end: str, *, ingredients: bool = False) -> str:
    """Eras of ``concept`` in ``table``: records joined while each starts at most the gap after
    the latest end so far; gives person_id, concept, start, end, count and days covered.
    ``ingredients``: a drug counts as each of its ingredients (CONCEPT_ANCESTOR), else as itself."""
    records = (
        f"SELECT person_id, {concept} AS concept_id, {start} AS first_day, "
        f"greatest(coalesce({end}, {start}), {start}) AS last_day FROM {schema}.{table} WHERE {concept} <> 0"
    )
    if ingredients:
        ingredient = (
            f"SELECT a.descendant_concept_id AS drug, a.ancestor_concept_id AS ingredient "
            f"FROM {schema}.concept_ancestor a JOIN {schema}.concept i ON i.concept_id = a.ancestor_concept_id "
            "AND i.concept_class_id = 'Ingredient'"
        )
        records = (
            "SELECT r.person_id, coalesce(g.ingredient, r.concept_id) AS concept_id, r.first_day, r.last_day "
            f"FROM ({records}) r LEFT JOIN ({ingredient}) g ON g.drug = r.concept_id"
        )
    # Records with the same dates are ordered once (seq) and both windows follow that order:
    # ordered by dates alone, ties could come in another order in each window (a parallel
    # sort), so that two eras started on one day and took one id.
    sequenced = (
        "SELECT r.*, row_number() OVER (PARTITION BY person_id, concept_id ORDER BY first_day, last_day) AS seq "
        f"FROM ({records}) r"
    )
    before = (
        "max(last_day) OVER (PARTITION BY person_id, concept_id ORDER BY seq "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    )
    marked = f"SELECT r.*, CASE WHEN {before} IS NULL OR first_day > {before} + {ERA_GAP_DAYS} THEN 1 ELSE 0 END AS new_era FROM ({sequenced}) r"
    numbered = (
        "SELECT m.*, sum(new_era) OVER (PARTITION BY person_id, concept_id ORDER BY seq "
        f"ROWS UNBOUNDED PRECEDING) AS era FROM ({marked}) m"
    )
    return (
        "SELECT person_id, concept_id, min(first_day) AS era_start, max(last_day) AS era_end, "
        f"count(*) AS records, sum(last_day - first_day) AS covered FROM ({numbered}) n "
        "GROUP BY person_id, concept_id, era"
    )


def _era_key() -> str:
    return "CAST(person_id AS varchar) || ':' || CAST(concept_id AS varchar) || ':' || CAST(era_start AS varchar)"


def condition_era(session: Session, schema: str) -> int:
    eras = _eras(schema, "condition_occurrence", "condition_concept_id", "condition_start_date", "condition_end_date")
    select = f"SELECT {_era_key()}, person_id, concept_id, era_start, era_end, CAST(records AS integer) FROM ({eras}) e"
    columns = (
        "condition_concept_id",
        "condition_era_start_date",
        "condition_era_end_date",
        "condition_occurrence_count",
    )
    return _rewrite(session, schema, "condition_era", "condition_era_id", columns, select)


def drug_era(session: Session, schema: str) -> int:
    eras = _eras(
        schema,
        "drug_exposure",
        "drug_concept_id",
        "drug_exposure_start_date",
        "drug_exposure_end_date",
        ingredients=True,
    )
    select = (
        f"SELECT {_era_key()}, person_id, concept_id, era_start, era_end, CAST(records AS integer), "
        f"CAST(greatest((era_end - era_start) - covered, 0) AS integer) FROM ({eras}) e"
    )
    columns = ("drug_concept_id", "drug_era_start_date", "drug_era_end_date", "drug_exposure_count", "gap_days")
    return _rewrite(session, schema, "drug_era", "drug_era_id", columns, select)
