"""The star schema's SQL: one ``INSERT ... SELECT`` per table, the same text on DuckDB and PostgreSQL.

Every statement reads the canonical tables of the scenarios whose ids are
bound to ``:ids`` (an expanding parameter), through their links in
``scenario_entities``; ``{s}`` stands for the quoted analytics schema.
Dates of date-times are taken in UTC (``AT TIME ZONE 'UTC'``), whatever
the session's time zone. The rules these statements implement are in
docs/analytics.md (person identity, age bands, length of stay,
readmission, claim measures).
"""

from __future__ import annotations

from itertools import pairwise

from healthsim_models.registry import BY_NAME
from healthsim_models.state import ScenarioEntity

_LINKS = ScenarioEntity.__tablename__

#: (lowest age, band) in ascending order; a band runs to the next one's lowest age less one.
AGE_BANDS: tuple[tuple[int, str], ...] = (
    (0, "0-17"),
    (18, "18-34"),
    (35, "35-49"),
    (50, "50-64"),
    (65, "65-79"),
    (80, "80+"),
)


def derived_key(scenario: str, entity: str) -> str:
    """A UUID made of a scenario id and an entity id (NULL when the entity id is): the same every run."""
    return f"CAST(md5(CAST({scenario} AS VARCHAR) || '/' || CAST({entity} AS VARCHAR)) AS UUID)"


def utc_date(timestamp: str) -> str:
    return f"CAST({timestamp} AT TIME ZONE 'UTC' AS DATE)"


def date_key(date: str) -> str:
    """The integer YYYYMMDD of a date (NULL for NULL)."""
    return (
        f"CAST(EXTRACT(YEAR FROM {date}) * 10000 + EXTRACT(MONTH FROM {date}) * 100 "
        f"+ EXTRACT(DAY FROM {date}) AS INTEGER)"
    )


def age_band(age: str) -> str:
    whens = " ".join(f"WHEN {age} < {nxt} THEN '{band}'" for (_, band), (nxt, _) in pairwise(AGE_BANDS))
    return f"CASE {whens} ELSE '{AGE_BANDS[-1][1]}' END"


def _in_scenarios(type_name: str, alias: str) -> str:
    """``FROM`` the links of the chosen scenarios joined to the entities of ``type_name`` as ``alias``;
    the link is ``se_<alias>``."""
    link = f"se_{alias}"
    return (
        f"{_LINKS} {link} JOIN {BY_NAME[type_name].table_name} {alias} "
        f"ON {alias}.id = {link}.entity_id AND {link}.entity_type = '{type_name}' AND {link}.scenario_id IN :ids"
    )


def _person(alias: str, uuid_column: str) -> str:
    """Join the person of ``alias.uuid_column`` (a patient, member or subject of the same scenario) as ``b_<alias>``."""
    return (
        f"JOIN {{s}}.bridge_person b_{alias} ON b_{alias}.scenario_key = se_{alias}.scenario_id "
        f"AND b_{alias}.entity_uuid = {alias}.{uuid_column}"
    )


def _first_candidate(candidates: str, entity: str) -> str:
    """The first of each entity's ``candidates`` by priority, then tiebreak (a business key), then anchor."""
    return (
        f"SELECT scenario_id, {entity}, anchor, rule FROM (SELECT c.*, ROW_NUMBER() OVER ("
        f"PARTITION BY c.scenario_id, c.{entity} ORDER BY c.priority, c.tiebreak, CAST(c.anchor AS VARCHAR)"
        f") AS n FROM {candidates} c) ranked WHERE n = 1"
    )


DIM_SCENARIO = """
INSERT INTO {s}.dim_scenario (scenario_key, name, description, created_at, built_at, as_of_date)
SELECT id, name, description, created_at, :built_at, :as_of FROM scenarios WHERE id IN :ids
"""

# Person identity, one row per patient, member and subject of a scenario: a patient is a person of
# its own; a member is the patient a prescription names beside it, else the patient with its SSN;
# a subject is the patient its patient_ref resolved to, else the patient with its SSN, else the
# person of the member with its SSN. Among several candidates of one rule the lowest business key
# wins. Whoever matches nobody is a person of their own (rule 'self': the person's anchor).
BRIDGE_PERSON = f"""
INSERT INTO {{s}}.bridge_person (scenario_key, entity_uuid, entity_type, patient_key, match_rule)
WITH pat AS (
    SELECT se_p.scenario_id, p.id, {derived_key("se_p.scenario_id", "p.id")} AS ref, p.mrn, p.ssn
    FROM {_in_scenarios("patient", "p")}
), mem AS (
    SELECT se_m.scenario_id, m.id, {derived_key("se_m.scenario_id", "m.id")} AS ref, m.member_id, m.ssn
    FROM {_in_scenarios("member", "m")}
), sub AS (
    SELECT se_s.scenario_id, s.id, s.ssn, s.patient_uuid FROM {_in_scenarios("subject", "s")}
), rx AS (
    SELECT DISTINCT {derived_key("se_r.scenario_id", "r.member_uuid")} AS member_ref,
           {derived_key("se_r.scenario_id", "r.patient_uuid")} AS patient_ref
    FROM {_in_scenarios("prescription", "r")}
    WHERE r.member_uuid IS NOT NULL AND r.patient_uuid IS NOT NULL
), member_candidate AS (
    -- Joined by the (scenario, entity) refs: the scenario alone would let a planner pair every
    -- member with every patient of the scenario first.
    SELECT m.scenario_id, m.id AS member_uuid, p.id AS anchor, 1 AS priority, p.mrn AS tiebreak,
           'prescription' AS rule
    FROM mem m
    JOIN rx ON rx.member_ref = m.ref
    JOIN pat p ON p.ref = rx.patient_ref
    UNION ALL
    SELECT m.scenario_id, m.id, p.id, 2, p.mrn, 'ssn'
    FROM mem m JOIN pat p ON p.scenario_id = m.scenario_id AND p.ssn = m.ssn
), member_match AS (
    {_first_candidate("member_candidate", "member_uuid")}
), member_person AS (
    SELECT m.scenario_id, m.id AS member_uuid, m.member_id, m.ssn,
           COALESCE(mm.anchor, m.id) AS anchor, COALESCE(mm.rule, 'self') AS rule
    FROM mem m LEFT JOIN member_match mm ON mm.scenario_id = m.scenario_id AND mm.member_uuid = m.id
), subject_candidate AS (
    SELECT s.scenario_id, s.id AS subject_uuid, p.id AS anchor, 1 AS priority, p.mrn AS tiebreak,
           'patient_ref' AS rule
    FROM sub s JOIN pat p ON p.scenario_id = s.scenario_id AND p.id = s.patient_uuid
    UNION ALL
    SELECT s.scenario_id, s.id, p.id, 2, p.mrn, 'ssn'
    FROM sub s JOIN pat p ON p.scenario_id = s.scenario_id AND p.ssn = s.ssn
    UNION ALL
    SELECT s.scenario_id, s.id, mp.anchor, 3, mp.member_id, 'member_ssn'
    FROM sub s JOIN member_person mp ON mp.scenario_id = s.scenario_id AND mp.ssn = s.ssn
), subject_match AS (
    {_first_candidate("subject_candidate", "subject_uuid")}
)
SELECT scenario_id, id, 'patient', ref, 'self' FROM pat
UNION ALL
SELECT scenario_id, member_uuid, 'member', {derived_key("scenario_id", "anchor")}, rule FROM member_person
UNION ALL
SELECT s.scenario_id, s.id, 'subject', {derived_key("s.scenario_id", "COALESCE(sm.anchor, s.id)")},
       COALESCE(sm.rule, 'self')
FROM sub s LEFT JOIN subject_match sm ON sm.scenario_id = s.scenario_id AND sm.subject_uuid = s.id
"""

_AGE_ON = "CASE WHEN death_date IS NOT NULL AND death_date < CAST(:as_of AS DATE) THEN death_date ELSE CAST(:as_of AS DATE) END"
_AGE = (
    "CAST(EXTRACT(YEAR FROM age_on) - EXTRACT(YEAR FROM birth_date) - CASE WHEN "
    "EXTRACT(MONTH FROM age_on) * 100 + EXTRACT(DAY FROM age_on) "
    "< EXTRACT(MONTH FROM birth_date) * 100 + EXTRACT(DAY FROM birth_date) THEN 1 ELSE 0 END AS INTEGER)"
)


def _anchored(column: str, aliases: str = "pms", aggregate: str = "MAX") -> str:
    """``column`` of the person's anchor record (the one its bridge row calls 'self')."""
    values = ", ".join(f"{alias}.{column}" for alias in aliases)
    return f"{aggregate}(CASE WHEN b.match_rule = 'self' THEN COALESCE({values}) END) AS {column}"


# One pass over the bridge, grouped by person: the person block from the anchor, the roles from
# every record of the person (no join of persons to persons, whose sizes a planner misjudges).
DIM_PATIENT = f"""
INSERT INTO {{s}}.dim_patient (patient_key, scenario_key, anchor_type, anchor_uuid, mrn, member_id, usubjid,
    is_patient, is_member, is_subject, member_records, gender, birth_date, age, age_band, race, ethnicity,
    state, postal_code, deceased, death_date)
WITH person AS (
    SELECT b.patient_key, b.scenario_key,
           MAX(CASE WHEN b.match_rule = 'self' THEN b.entity_type END) AS anchor_type,
           -- through text: PostgreSQL has no MAX of UUIDs
           CAST(MAX(CASE WHEN b.match_rule = 'self' THEN CAST(b.entity_uuid AS VARCHAR) END) AS UUID) AS anchor_uuid,
           MIN(p.mrn) AS mrn, MIN(m.member_id) AS member_id, MIN(s.usubjid) AS usubjid,
           COUNT(p.id) > 0 AS is_patient, COUNT(m.id) > 0 AS is_member, COUNT(s.id) > 0 AS is_subject,
           CAST(COUNT(m.id) AS INTEGER) AS member_records,
           {_anchored("gender")}, {_anchored("birth_date")}, {_anchored("race", "ps")},
           {_anchored("ethnicity", "ps")}, {_anchored("state")}, {_anchored("postal_code")},
           {_anchored("deceased", aggregate="bool_or")}, {_anchored("death_date")}
    FROM {{s}}.bridge_person b
    LEFT JOIN patients p ON p.id = b.entity_uuid AND b.entity_type = 'patient'
    LEFT JOIN members m ON m.id = b.entity_uuid AND b.entity_type = 'member'
    LEFT JOIN subjects s ON s.id = b.entity_uuid AND b.entity_type = 'subject'
    WHERE b.scenario_key IN :ids
    GROUP BY b.patient_key, b.scenario_key
), dated AS (
    SELECT person.*, {_AGE_ON} AS age_on FROM person
), aged AS (
    SELECT dated.*, {_AGE} AS age FROM dated
)
SELECT patient_key, scenario_key, anchor_type, anchor_uuid, mrn, member_id, usubjid, is_patient, is_member,
       is_subject, member_records, gender, birth_date, age, {age_band("age")}, race, ethnicity, state,
       postal_code, deceased, death_date
FROM aged
"""

DIM_PROVIDER = f"""
INSERT INTO {{s}}.dim_provider (provider_key, scenario_key, provider_type, provider_uuid, provider_id, npi, name,
    specialty, organization_key, city, state)
SELECT {derived_key("se_o.scenario_id", "o.id")}, se_o.scenario_id, 'organization', o.id, o.organization_id, o.npi,
       o.name, CAST(NULL AS VARCHAR), CAST(NULL AS UUID), o.city, o.state
FROM {_in_scenarios("organization", "o")}
UNION ALL
SELECT {derived_key("se_d.scenario_id", "d.id")}, se_d.scenario_id, 'practitioner', d.id, d.practitioner_id, d.npi,
       d.name, d.specialty, {derived_key("se_d.scenario_id", "d.organization_uuid")}, d.city, d.state
FROM {_in_scenarios("practitioner", "d")}
"""

# An inpatient stay: class I, neither cancelled nor only planned. A stay was followed by a
# readmission when the same person's next inpatient admission starts at or after its discharge
# and at most 30 days (720 hours) after it; that later stay is a readmission.
_INPATIENT = "(e.class_code = 'I' AND e.status NOT IN ('cancelled', 'planned'))"
_WITHIN_30_DAYS = (
    "{later}.admission_time >= {index}.discharge_time "
    "AND {later}.admission_time <= {index}.discharge_time + INTERVAL '30 days'"
)
FACT_ENCOUNTER = f"""
INSERT INTO {{s}}.fact_encounter (encounter_key, scenario_key, encounter_uuid, encounter_id, patient_key,
    provider_key, organization_key, payer_id, admission_date_key, discharge_date_key, class_code, status,
    admission_time, discharge_time, length_of_stay_days, is_inpatient, readmitted_within_30_days,
    is_readmission, admitting_diagnosis)
WITH enc AS (
    SELECT se_e.scenario_id, e.id, {derived_key("se_e.scenario_id", "e.id")} AS encounter_key, e.encounter_id,
           b_e.patient_key, e.practitioner_uuid, e.organization_uuid, e.payer_id, e.class_code, e.status,
           e.admission_time, e.discharge_time, e.admitting_diagnosis, {_INPATIENT} AS is_inpatient
    FROM {_in_scenarios("encounter", "e")} {_person("e", "patient_uuid")}
), readmission AS (
    -- (index stay, readmission) pairs; patient_key is a person of one scenario.
    SELECT i.encounter_key AS index_key, r.encounter_key AS readmission_key
    FROM enc i JOIN enc r ON r.patient_key = i.patient_key AND r.encounter_key <> i.encounter_key
    WHERE i.is_inpatient AND r.is_inpatient AND i.discharge_time IS NOT NULL
      AND {_WITHIN_30_DAYS.format(later="r", index="i")}
)
SELECT e.encounter_key, e.scenario_id, e.id, e.encounter_id, e.patient_key,
       {derived_key("e.scenario_id", "e.practitioner_uuid")}, {derived_key("e.scenario_id", "e.organization_uuid")},
       e.payer_id, {date_key(utc_date("e.admission_time"))}, {date_key(utc_date("e.discharge_time"))},
       e.class_code, e.status, e.admission_time, e.discharge_time,
       CAST({utc_date("e.discharge_time")} - {utc_date("e.admission_time")} AS INTEGER),
       e.is_inpatient, followed.index_key IS NOT NULL, readmitted.readmission_key IS NOT NULL,
       e.admitting_diagnosis
FROM enc e
LEFT JOIN (SELECT DISTINCT index_key FROM readmission) followed ON followed.index_key = e.encounter_key
LEFT JOIN (SELECT DISTINCT readmission_key FROM readmission) readmitted ON readmitted.readmission_key = e.encounter_key
"""

FACT_DIAGNOSIS = f"""
INSERT INTO {{s}}.fact_diagnosis (diagnosis_key, scenario_key, diagnosis_uuid, patient_key, encounter_key,
    diagnosed_date_key, resolved_date_key, code, code_system, description, diagnosis_type)
SELECT {derived_key("se_d.scenario_id", "d.id")}, se_d.scenario_id, d.id, b_d.patient_key,
       {derived_key("se_d.scenario_id", "d.encounter_uuid")}, {date_key("d.diagnosed_date")},
       {date_key("d.resolved_date")}, d.code, d.code_system, d.description, d.type
FROM {_in_scenarios("diagnosis", "d")} {_person("d", "patient_uuid")}
"""

# Clinical medications and prescriptions, one row each; a prescription's person is its patient's,
# else its member's.
FACT_MEDICATION = f"""
INSERT INTO {{s}}.fact_medication (medication_key, scenario_key, source_type, source_uuid, patient_key,
    encounter_key, start_date_key, end_date_key, drug_name, code, code_system, status, quantity, days_supply)
SELECT {derived_key("se_m.scenario_id", "m.id")}, se_m.scenario_id, 'medication', m.id, b_m.patient_key,
       {derived_key("se_m.scenario_id", "m.encounter_uuid")}, {date_key(utc_date("m.start_date"))},
       {date_key(utc_date("m.end_date"))}, m.name, m.code, CAST(NULL AS VARCHAR), m.status,
       CAST(NULL AS DECIMAL(10, 2)), CAST(NULL AS INTEGER)
FROM {_in_scenarios("medication", "m")} {_person("m", "patient_uuid")}
UNION ALL
SELECT {derived_key("se_r.scenario_id", "r.id")}, se_r.scenario_id, 'prescription', r.id, b_r.patient_key,
       {derived_key("se_r.scenario_id", "r.encounter_uuid")}, {date_key("r.written_date")},
       {date_key("r.expiration_date")}, r.drug_name, r.ndc, 'NDC', CAST(NULL AS VARCHAR),
       r.quantity_prescribed, r.days_supply
FROM {_in_scenarios("prescription", "r")}
JOIN {{s}}.bridge_person b_r ON b_r.scenario_key = se_r.scenario_id
    AND b_r.entity_uuid = COALESCE(r.patient_uuid, r.member_uuid)
"""

_NUMBER = "'-?[0-9]+([.][0-9]+)?'"
FACT_LAB = f"""
INSERT INTO {{s}}.fact_lab (lab_key, scenario_key, lab_uuid, patient_key, encounter_key, collected_date_key,
    collected_time, test_name, loinc_code, value, value_numeric, unit, abnormal_flag, is_abnormal)
SELECT {derived_key("se_l.scenario_id", "l.id")}, se_l.scenario_id, l.id, b_l.patient_key,
       {derived_key("se_l.scenario_id", "l.encounter_uuid")}, {date_key(utc_date("l.collected_time"))},
       l.collected_time, l.test_name, l.loinc_code, l.value,
       CASE WHEN TRIM(l.value) SIMILAR TO {_NUMBER} THEN CAST(TRIM(l.value) AS DECIMAL(18, 6)) END,
       l.unit, l.abnormal_flag, COALESCE(l.abnormal_flag <> 'N', FALSE)
FROM {_in_scenarios("lab_result", "l")} {_person("l", "patient_uuid")}
"""

# A claim's measures: its header totals where given, else the sums of its lines (a sum only when
# every line has the amount); member responsibility, where not given, is allowed less paid.
FACT_CLAIM = f"""
INSERT INTO {{s}}.fact_claim (claim_key, scenario_key, claim_uuid, claim_id, patient_key, provider_key,
    provider_npi, payer_id, service_date_key, claim_type, place_of_service, principal_diagnosis,
    diagnosis_code_system, line_count, billed_amount, allowed_amount, paid_amount, member_responsibility)
WITH lines AS (
    SELECT se_l.scenario_id, l.claim_uuid, COUNT(*) AS line_count,
           CASE WHEN COUNT(l.charge_amount) = COUNT(*) THEN SUM(l.charge_amount) END AS billed,
           CASE WHEN COUNT(l.allowed_amount) = COUNT(*) THEN SUM(l.allowed_amount) END AS allowed,
           CASE WHEN COUNT(l.paid_amount) = COUNT(*) THEN SUM(l.paid_amount) END AS paid
    FROM {_in_scenarios("claim_line", "l")}
    GROUP BY se_l.scenario_id, l.claim_uuid
), measured AS (
    SELECT se_c.scenario_id, c.id, c.claim_id, b_c.patient_key, c.practitioner_uuid, c.provider_npi, c.payer_id,
           c.service_date, c.claim_type, c.place_of_service, c.principal_diagnosis, c.diagnosis_code_system,
           c.member_responsibility, CAST(COALESCE(l.line_count, 0) AS INTEGER) AS line_count,
           COALESCE(c.total_charge, l.billed) AS billed, COALESCE(c.total_allowed, l.allowed) AS allowed,
           COALESCE(c.total_paid, l.paid) AS paid
    FROM {_in_scenarios("claim", "c")} {_person("c", "member_uuid")}
    LEFT JOIN lines l ON l.scenario_id = se_c.scenario_id AND l.claim_uuid = c.id
)
SELECT {derived_key("scenario_id", "id")}, scenario_id, id, claim_id, patient_key,
       {derived_key("scenario_id", "practitioner_uuid")}, provider_npi, payer_id, {date_key("service_date")},
       claim_type, place_of_service, principal_diagnosis, diagnosis_code_system, line_count,
       billed, allowed, paid, COALESCE(member_responsibility, allowed - paid)
FROM measured
"""

# Billed: the gross amount due, else ingredient cost plus dispensing fee; the plan paid billed less
# what the patient paid.
FACT_PHARMACY_CLAIM = f"""
INSERT INTO {{s}}.fact_pharmacy_claim (pharmacy_claim_key, scenario_key, pharmacy_claim_uuid, claim_id,
    patient_key, prescription_uuid, prescription_number, service_date_key, transaction_code, ndc, fill_number,
    quantity_dispensed, days_supply, pharmacy_npi, prescriber_npi, ingredient_cost, dispensing_fee,
    billed_amount, patient_pay_amount, plan_paid_amount)
WITH billed AS (
    SELECT se_x.scenario_id, x.*,
           COALESCE(x.gross_amount_due, x.ingredient_cost_submitted + x.dispensing_fee_submitted) AS billed,
           b_x.patient_key
    FROM {_in_scenarios("pharmacy_claim", "x")} {_person("x", "member_uuid")}
)
SELECT {derived_key("scenario_id", "id")}, scenario_id, id, claim_id, patient_key, prescription_uuid,
       prescription_number, {date_key("service_date")}, transaction_code, ndc, fill_number, quantity_dispensed,
       days_supply, pharmacy_npi, prescriber_npi, ingredient_cost_submitted, dispensing_fee_submitted, billed,
       patient_pay_amount, billed - patient_pay_amount
FROM billed
"""

FACT_TRIAL_VISIT = f"""
INSERT INTO {{s}}.fact_trial_visit (trial_visit_key, scenario_key, trial_visit_uuid, patient_key, usubjid,
    study_id, site_id, treatment_arm, visit_num, visit_name, visit_date_key, study_day, visit_status, is_missed,
    window_deviation_days)
SELECT {derived_key("se_v.scenario_id", "v.id")}, se_v.scenario_id, v.id, b_v.patient_key, v.usubjid,
       subj.study_id, subj.site_id, subj.treatment_arm, v.visit_num, v.visit_name, {date_key("v.visit_date")},
       v.study_day, v.visit_status, COALESCE(v.visit_status = 'Missed', FALSE), v.window_deviation_days
FROM {_in_scenarios("trial_visit", "v")} {_person("v", "subject_uuid")}
JOIN subjects subj ON subj.id = v.subject_uuid
"""

#: Each scenario table's statement (dim_date is filled from the facts' dates, below).
INSERTS: dict[str, str] = {
    "dim_scenario": DIM_SCENARIO,
    "bridge_person": BRIDGE_PERSON,
    "dim_patient": DIM_PATIENT,
    "dim_provider": DIM_PROVIDER,
    "fact_encounter": FACT_ENCOUNTER,
    "fact_diagnosis": FACT_DIAGNOSIS,
    "fact_medication": FACT_MEDICATION,
    "fact_lab": FACT_LAB,
    "fact_claim": FACT_CLAIM,
    "fact_pharmacy_claim": FACT_PHARMACY_CLAIM,
    "fact_trial_visit": FACT_TRIAL_VISIT,
}

#: The tables later statements of a build read (the persons): their statistics are refreshed once filled.
READ_BACK = frozenset({"bridge_person"})
#: The store's tables a build reads: their statistics are refreshed first, as a save that just
#: added thousands of entities leaves a planner expecting a dozen (and joining by nested loops).
SOURCES: tuple[str, ...] = (
    _LINKS,
    "scenarios",
    *(
        BY_NAME[name].table_name
        for name in (
            "organization",
            "practitioner",
            "patient",
            "encounter",
            "diagnosis",
            "medication",
            "lab_result",
            "member",
            "claim",
            "claim_line",
            "prescription",
            "pharmacy_claim",
            "subject",
            "trial_visit",
        )
    ),
)

#: (table, column) of every date key the facts hold: dim_date covers the span of all of them.
FACT_DATE_KEYS: tuple[tuple[str, str], ...] = (
    ("fact_encounter", "admission_date_key"),
    ("fact_encounter", "discharge_date_key"),
    ("fact_diagnosis", "diagnosed_date_key"),
    ("fact_diagnosis", "resolved_date_key"),
    ("fact_medication", "start_date_key"),
    ("fact_medication", "end_date_key"),
    ("fact_lab", "collected_date_key"),
    ("fact_claim", "service_date_key"),
    ("fact_pharmacy_claim", "service_date_key"),
    ("fact_trial_visit", "visit_date_key"),
)

DATE_SPAN = (
    "SELECT MIN(k), MAX(k) FROM ("
    + " UNION ALL ".join(f"SELECT {column} AS k FROM {{s}}.{table}" for table, column in FACT_DATE_KEYS)
    + ") keys"
)

# Every day from :first to :last that dim_date lacks (it only grows: it is shared by all scenarios).
DIM_DATE = f"""
INSERT INTO {{s}}.dim_date (date_key, full_date, year, quarter, month, day_of_month, iso_day_of_week, is_weekend,
    year_month)
WITH days AS (
    SELECT CAST(g.d AS DATE) AS d
    FROM generate_series(CAST(:first AS TIMESTAMP), CAST(:last AS TIMESTAMP), INTERVAL '1 day') AS g(d)
)
SELECT {date_key("d")}, d, CAST(EXTRACT(YEAR FROM d) AS INTEGER), CAST(EXTRACT(QUARTER FROM d) AS INTEGER),
       CAST(EXTRACT(MONTH FROM d) AS INTEGER), CAST(EXTRACT(DAY FROM d) AS INTEGER),
       CAST(EXTRACT(ISODOW FROM d) AS INTEGER), EXTRACT(ISODOW FROM d) >= 6,
       CAST(CAST(EXTRACT(YEAR FROM d) AS INTEGER) AS VARCHAR) || '-'
           || lpad(CAST(CAST(EXTRACT(MONTH FROM d) AS INTEGER) AS VARCHAR), 2, '0')
FROM days
WHERE NOT EXISTS (SELECT 1 FROM {{s}}.dim_date x WHERE x.full_date = days.d)
"""
