"""Visits: visit_occurrence from encounters, claims and trial visits; visit_detail.

Source keys: an encounter's id; ``claim:`` and the claim's id; ``trial:``
and the trial visit's id. Clinical rows find their visit by the first.
"""

from __future__ import annotations

from healthsim_state.analytics.omop import concepts as c
from healthsim_state.analytics.omop.ids import join_id, key
from healthsim_state.analytics.omop.load import Target
from healthsim_state.analytics.omop.person import PERSONS
from healthsim_state.analytics.omop.scope import in_scope, text, utc, utc_date

VISIT_COLUMNS = (
    "person_id",
    "visit_concept_id",
    "visit_start_date",
    "visit_start_datetime",
    "visit_end_date",
    "visit_end_datetime",
    "visit_type_concept_id",
    "provider_id",
    "care_site_id",
    "visit_source_value",
    "visit_source_concept_id",
    "admitted_from_concept_id",
    "admitted_from_source_value",
    "discharged_to_concept_id",
    "discharged_to_source_value",
    "preceding_visit_occurrence_id",
)


def claim_visit_sql(claim: str) -> str:
    """A claim's visit concept: inpatient (place of service 21, or an institutional claim
    with an admission), emergency room (23), else outpatient."""
    return (
        f"CASE WHEN {claim}.place_of_service = '21' THEN {c.INPATIENT_VISIT} "
        f"WHEN {claim}.place_of_service = '23' THEN {c.ER_VISIT} "
        f"WHEN {claim}.claim_type = 'INSTITUTIONAL' AND {claim}.admission_date IS NOT NULL "
        f"THEN {c.INPATIENT_VISIT} ELSE {c.OUTPATIENT_VISIT} END"
    )


def visit_occurrence(schema: str) -> Target:
    end = "coalesce(e.discharge_time, e.admission_time)"
    encounters = (
        f"SELECT {key('e.id')} AS _key, e.id AS _entity, 0 AS _pick, pm.id AS person_id, "
        f"{c.visit_of_class_sql('e.class_code')}, {utc_date('e.admission_time')}, {utc('e.admission_time')}, "
        f"{utc_date(end)}, {utc(end)}, {c.EHR}, pr.id, cs.id, {text('e.class_code', 50)}, 0, "
        "CAST(NULL AS integer), CAST(NULL AS varchar), CAST(NULL AS integer), "
        f"{text('e.discharge_disposition', 50)}, CAST(NULL AS integer) "
        f"FROM encounters e JOIN {PERSONS} h ON h.entity_id = e.patient_uuid "
        f"{join_id(schema, 'person', 'pm', 'h.person_key')} "
        f"{join_id(schema, 'provider', 'pr', key('e.practitioner_uuid'))} "
        f"{join_id(schema, 'care_site', 'cs', key('e.organization_uuid'))} "
        f"WHERE {in_scope('e', 'encounter')}"
    )
    start = "coalesce(k.admission_date, k.service_date)"
    claim_end = f"greatest(coalesce(k.discharge_date, k.service_date), {start})"
    claims = (
        f"SELECT 'claim:' || {key('k.id')}, k.id, 0, pm.id, {claim_visit_sql('k')}, {start}, "
        f"CAST({start} AS TIMESTAMP), {claim_end}, CAST({claim_end} AS TIMESTAMP), {c.CLAIM}, pr.id, "
        f"CAST(NULL AS integer), {text('k.place_of_service', 50)}, 0, CAST(NULL AS integer), "
        "CAST(NULL AS varchar), CAST(NULL AS integer), CAST(NULL AS varchar), CAST(NULL AS integer) "
        f"FROM claims k JOIN {PERSONS} h ON h.entity_id = k.member_uuid "
        f"{join_id(schema, 'person', 'pm', 'h.person_key')} "
        f"{join_id(schema, 'provider', 'pr', key('k.practitioner_uuid'))} "
        f"WHERE {in_scope('k', 'claim')}"
    )
    trial = (
        f"SELECT 'trial:' || {key('t.id')}, t.id, 0, pm.id, {c.OUTPATIENT_VISIT}, t.visit_date, "
        f"CAST(t.visit_date AS TIMESTAMP), t.visit_date, CAST(t.visit_date AS TIMESTAMP), {c.EHR}, "
        f"CAST(NULL AS integer), CAST(NULL AS integer), {text('t.visit_name', 50)}, 0, CAST(NULL AS integer), "
        "CAST(NULL AS varchar), CAST(NULL AS integer), CAST(NULL AS varchar), CAST(NULL AS integer) "
        f"FROM trial_visits t JOIN {PERSONS} h ON h.entity_id = t.subject_uuid "
        f"{join_id(schema, 'person', 'pm', 'h.person_key')} "
        f"WHERE {in_scope('t', 'trial_visit')} AND coalesce(t.visit_status, '') <> 'Missed'"
    )
    return Target(
        "visit_occurrence", "visit_occurrence_id", VISIT_COLUMNS, f"{encounters} UNION ALL {claims} UNION ALL {trial}"
    )


def visit_detail(schema: str) -> Target:
    """The part of an encounter spent in a department (encounters that name one)."""
    columns = (
        "person_id",
        "visit_detail_concept_id",
        "visit_detail_start_date",
        "visit_detail_start_datetime",
        "visit_detail_end_date",
        "visit_detail_end_datetime",
        "visit_detail_type_concept_id",
        "provider_id",
        "care_site_id",
        "visit_detail_source_value",
        "visit_detail_source_concept_id",
        "admitted_from_concept_id",
        "admitted_from_source_value",
        "discharged_to_source_value",
        "discharged_to_concept_id",
        "preceding_visit_detail_id",
        "parent_visit_detail_id",
        "visit_occurrence_id",
    )
    end = "coalesce(e.discharge_time, e.admission_time)"
    select = (
        f"SELECT {key('e.id')} AS _key, e.id AS _entity, 0 AS _pick, pm.id, "
        f"{c.visit_of_class_sql('e.class_code')}, {utc_date('e.admission_time')}, {utc('e.admission_time')}, "
        f"{utc_date(end)}, {utc(end)}, {c.EHR}, pr.id, cs.id, {text('e.department', 50)}, 0, "
        "CAST(NULL AS integer), CAST(NULL AS varchar), CAST(NULL AS varchar), CAST(NULL AS integer), "
        "CAST(NULL AS integer), CAST(NULL AS integer), v.id "
        f"FROM encounters e JOIN {PERSONS} h ON h.entity_id = e.patient_uuid "
        f"{join_id(schema, 'person', 'pm', 'h.person_key')} "
        f"{join_id(schema, 'provider', 'pr', key('e.practitioner_uuid'))} "
        f"{join_id(schema, 'care_site', 'cs', key('e.organization_uuid'))} "
        f"{join_id(schema, 'visit_occurrence', 'v', key('e.id'))} "
        f"WHERE {in_scope('e', 'encounter')} AND e.department IS NOT NULL"
    )
    return Target("visit_detail", "visit_detail_id", columns, select)
