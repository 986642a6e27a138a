"""Clinical events: every coded fact of the store, routed to its OMOP table.

``hs_events`` holds one row per event of every source type, in one shape
(:data:`EVENT_COLUMNS`); ``hs_routed`` adds the concepts of its code (through
``hs_concept_map``, :mod:`.vocabulary`), its person, visit and provider ids,
and the table it goes to: the domain of its standard concept, else the
source type's own (a diagnosis a condition, an allergy an observation). Each
OMOP table is then one SELECT over ``hs_routed``.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from healthsim_state.analytics.omop import concepts as c
from healthsim_state.analytics.omop.ids import join_id, key
from healthsim_state.analytics.omop.load import Target
from healthsim_state.analytics.omop.person import PERSONS
from healthsim_state.analytics.omop.scope import in_scope, literal, temp_table, text, utc, utc_date
from healthsim_state.analytics.omop.vocabulary import CONCEPT_MAP, UNIT_MAP
from healthsim_state.store.dialects import dialect_of

EVENTS = "hs_events"
ROUTED = "hs_routed"

#: The shape of an event: (column, SQL type); a source gives what it has, NULL for the rest.
EVENT_COLUMNS = (
    ("_key", "varchar"),
    ("_entity", "uuid"),
    ("person_entity", "uuid"),
    ("visit_key", "varchar"),
    ("provider_key", "varchar"),
    ("start_ts", "timestamp"),
    ("end_ts", "timestamp"),
    ("vocabulary_id", "varchar"),
    ("code", "varchar"),
    ("source_value", "varchar"),
    ("default_domain", "varchar"),
    ("type_concept_id", "integer"),
    ("value_number", "double precision"),
    ("value_text", "varchar"),
    ("unit", "varchar"),
    ("range_low", "double precision"),
    ("range_high", "double precision"),
    ("quantity", "double precision"),
    ("days_supply", "integer"),
    ("refills", "integer"),
    ("route", "varchar"),
    ("sig", "varchar"),
    ("lot", "varchar"),
    ("stop_reason", "varchar"),
    ("status", "varchar"),
    ("device_id", "varchar"),
    ("modifier", "varchar"),
)


def _event(values: dict[str, str], source: str) -> str:
    unknown = set(values) - {name for name, _ in EVENT_COLUMNS}
    assert not unknown, unknown  # a typo in a builder below, not a user's error
    cells = [f"CAST({values.get(name, 'NULL')} AS {kind}) AS {name}" for name, kind in EVENT_COLUMNS]
    return f"SELECT {', '.join(cells)} FROM {source}"


def _clinical(alias: str) -> dict[str, str]:
    """The columns every PatientSim record has: its key, patient and encounter."""
    return {
        "_key": key(f"{alias}.id"),
        "_entity": f"{alias}.id",
        "person_entity": f"{alias}.patient_uuid",
        "visit_key": key(f"{alias}.encounter_uuid"),
        "type_concept_id": str(c.EHR),
    }


def _sources(num: Callable[[str], str]) -> list[str]:
    """One SELECT per source type (and per vital sign); ``num`` is the dialect's text-to-number SQL."""
    # A reference range "low-high" gives both bounds.
    low = num("split_part(l.reference_range, '-', 1)")
    high = num("split_part(l.reference_range, '-', 2)")
    sources = [
        _event(
            {
                **_clinical("d"),
                "start_ts": "CAST(d.diagnosed_date AS TIMESTAMP)",
                "end_ts": "CAST(d.resolved_date AS TIMESTAMP)",
                "vocabulary_id": c.vocabulary_sql("d.code_system", "ICD-10-CM"),
                "code": "d.code",
                "source_value": "d.code",
                "default_domain": "'Condition'",
                "status": "d.type",
            },
            f"diagnoses d WHERE {in_scope('d', 'diagnosis')}",
        ),
        _event(
            {
                **_clinical("p"),
                "start_ts": utc("p.performed_datetime"),
                "vocabulary_id": c.vocabulary_sql("p.code_system", "CPT"),
                "code": "p.code",
                "source_value": "p.code",
                "default_domain": "'Procedure'",
                "modifier": "p.body_site",
            },
            f"procedures p WHERE {in_scope('p', 'procedure')}",
        ),
        _event(
            {
                **_clinical("m"),
                "start_ts": utc("m.start_date"),
                "end_ts": utc("m.end_date"),
                "vocabulary_id": "'RxNorm'",
                "code": "m.code",
                "source_value": "coalesce(m.code, m.name)",
                "default_domain": "'Drug'",
                "route": "m.route",
                "sig": "m.dose || ' ' || m.route || ' ' || m.frequency",
                "stop_reason": "CASE WHEN m.status = 'stopped' THEN 'stopped' END",
            },
            f"medications m WHERE {in_scope('m', 'medication')}",
        ),
        _event(
            {
                **_clinical("l"),
                "start_ts": utc("l.collected_time"),
                "vocabulary_id": "'LOINC'",
                "code": "l.loinc_code",
                "source_value": "coalesce(l.loinc_code, l.test_name)",
                "default_domain": "'Measurement'",
                "value_number": num("l.value"),
                "value_text": "l.value",
                "unit": "l.unit",
                "range_low": f"CASE WHEN strpos(l.reference_range, '-') > 1 THEN {low} END",
                "range_high": f"CASE WHEN strpos(l.reference_range, '-') > 1 THEN {high} END",
            },
            f"lab_results l WHERE {in_scope('l', 'lab_result')}",
        ),
    ]
    for column, loinc, _name, unit in c.VITAL_SIGNS:
        sources.append(
            _event(
                {
                    **_clinical("v"),
                    "_key": f"{key('v.id')} || ':{column}'",
                    "start_ts": utc("v.observation_time"),
                    "vocabulary_id": "'LOINC'",
                    "code": f"'{loinc}'",
                    "source_value": f"'{loinc}'",
                    "default_domain": "'Measurement'",
                    "value_number": f"v.{column}",
                    "value_text": f"CAST(v.{column} AS varchar)",
                    "unit": literal(unit),
                },
                f"vital_signs v WHERE {in_scope('v', 'vital_sign')} AND v.{column} IS NOT NULL",
            )
        )
    sources += [
        _event(
            {
                **_clinical("o"),
                "start_ts": utc("o.effective_datetime"),
                "vocabulary_id": c.vocabulary_sql("o.code_system", "LOINC"),
                "code": "o.code",
                "source_value": "o.code",
                "default_domain": "'Observation'",
                "value_number": num("o.value"),
                "value_text": "o.value",
                "unit": "o.unit",
            },
            f"observations o WHERE {in_scope('o', 'observation')}",
        ),
        _event(
            {
                **_clinical("a"),
                "start_ts": utc("a.onset_datetime"),
                "end_ts": utc("a.abatement_datetime"),
                "vocabulary_id": c.vocabulary_sql("a.code_system", "SNOMED"),
                "code": "a.code",
                "source_value": "a.code",
                "default_domain": "'Observation'",
                "value_text": "a.category",
            },
            f"allergies a WHERE {in_scope('a', 'allergy')}",
        ),
        _event(
            {
                **_clinical("i"),
                "start_ts": utc("i.occurrence_datetime"),
                "vocabulary_id": c.vocabulary_sql("i.vaccine_code_system", "CVX"),
                "code": "i.vaccine_code",
                "source_value": "i.vaccine_code",
                "default_domain": "'Drug'",
                "route": "i.route",
                "lot": "i.lot_number",
            },
            f"immunizations i WHERE {in_scope('i', 'immunization')} AND i.status = 'completed'",
        ),
        _event(
            {
                **_clinical("d"),
                "start_ts": utc("d.period_start"),
                "end_ts": utc("d.period_end"),
                "vocabulary_id": c.vocabulary_sql("d.code_system", "SNOMED"),
                "code": "d.code",
                "source_value": "d.code",
                "default_domain": "'Device'",
                "device_id": "d.udi_carrier",
            },
            f"devices d WHERE {in_scope('d', 'device')}",
        ),
        _event(
            {
                **_clinical("s"),
                "start_ts": utc("s.occurrence_datetime"),
                "vocabulary_id": c.vocabulary_sql("s.code_system", "SNOMED"),
                "code": "s.code",
                "source_value": "s.code",
                "default_domain": "'Device'",
                "quantity": "s.quantity",
            },
            f"supplies s WHERE {in_scope('s', 'supply')}",
        ),
        _event(
            {
                **_clinical("g"),
                "start_ts": utc("g.started"),
                "vocabulary_id": "'SNOMED'",
                "code": "g.procedure_code",
                "source_value": "coalesce(g.procedure_code, g.modality_code)",
                "default_domain": "'Procedure'",
                "modifier": "g.modality_code",
            },
            f"imaging_studies g WHERE {in_scope('g', 'imaging_study')}",
        ),
        _event(
            {
                "_key": key("r.id"),
                "_entity": "r.id",
                "person_entity": "coalesce(r.patient_uuid, r.member_uuid)",
                "visit_key": key("r.encounter_uuid"),
                "type_concept_id": str(c.EHR),
                "start_ts": "CAST(r.written_date AS TIMESTAMP)",
                "end_ts": "CAST(r.written_date + r.days_supply AS TIMESTAMP)",
                "vocabulary_id": "'NDC'",
                "code": "r.ndc",
                "source_value": "r.ndc",
                "default_domain": "'Drug'",
                "quantity": "r.quantity_prescribed",
                "days_supply": "r.days_supply",
                "refills": "r.refills_authorized",
                "sig": "r.directions",
            },
            f"prescriptions r WHERE {in_scope('r', 'prescription')}",
        ),
        _event(
            {
                "_key": key("x.id"),
                "_entity": "x.id",
                "person_entity": "x.member_uuid",
                "type_concept_id": str(c.PHARMACY_CLAIM),
                "start_ts": "CAST(x.service_date AS TIMESTAMP)",
                "end_ts": "CAST(x.service_date + x.days_supply AS TIMESTAMP)",
                "vocabulary_id": "'NDC'",
                "code": "x.ndc",
                "source_value": "x.ndc",
                "default_domain": "'Drug'",
                "quantity": "x.quantity_dispensed",
                "days_supply": "x.days_supply",
                "refills": "x.fill_number",
            },
            f"pharmacy_claims x WHERE {in_scope('x', 'pharmacy_claim')} AND x.transaction_code <> 'B2'",
        ),
        _event(
            {
                "_key": key("n.id"),
                "_entity": "n.id",
                "person_entity": "k.member_uuid",
                "visit_key": f"'claim:' || {key('k.id')}",
                "provider_key": key("k.practitioner_uuid"),
                "type_concept_id": str(c.CLAIM),
                "start_ts": "CAST(n.service_date AS TIMESTAMP)",
                "vocabulary_id": c.vocabulary_sql("n.procedure_code_system", "CPT"),
                "code": "n.procedure_code",
                "source_value": "n.procedure_code",
                "default_domain": "CASE WHEN n.procedure_code_system IN ('RxNorm', 'CVX') THEN 'Drug' "
                "WHEN n.procedure_code_system = 'LOINC' THEN 'Measurement' ELSE 'Procedure' END",
                "quantity": "n.units",
                "modifier": "n.revenue_code",
            },
            f"claim_lines n JOIN claims k ON k.id = n.claim_uuid WHERE {in_scope('n', 'claim_line')}",
        ),
        _event(
            {
                "_key": key("e.id"),
                "_entity": "e.id",
                "person_entity": "e.subject_uuid",
                "type_concept_id": str(c.EHR),
                "start_ts": "CAST(e.aestdtc AS TIMESTAMP)",
                "end_ts": "CAST(e.aeendtc AS TIMESTAMP)",
                "vocabulary_id": "'MedDRA'",
                "source_value": "coalesce(e.aedecod, e.aeterm)",
                "default_domain": "'Condition'",
                "status": "e.aesev",
            },
            f"adverse_events e WHERE {in_scope('e', 'adverse_event')}",
        ),
        _event(
            {
                "_key": key("x.id"),
                "_entity": "x.id",
                "person_entity": "x.subject_uuid",
                "type_concept_id": str(c.EHR),
                "start_ts": "CAST(x.exstdtc AS TIMESTAMP)",
                "end_ts": "CAST(x.exendtc AS TIMESTAMP)",
                "source_value": "x.extrt",
                "default_domain": "'Drug'",
                "quantity": "x.exdose",
                "unit": "x.exdosu",
                "route": "x.exroute",
            },
            f"exposures x WHERE {in_scope('x', 'exposure')}",
        ),
    ]
    return sources


def create_events(session: Session) -> None:
    """Fill ``hs_events`` for the exported scenarios."""
    temp_table(session, EVENTS, " UNION ALL ".join(_sources(dialect_of(session).omop_number)))


def route_events(session: Session, schema: str) -> None:
    """Fill ``hs_routed``: the events with their concepts, ids and target tables."""
    default_table = c.table_of_domain_sql("e.default_domain", "'observation'")
    temp_table(
        session,
        ROUTED,
        "SELECT e.*, coalesce(m.source_concept_id, 0) AS source_concept_id, coalesce(m.concept_id, 0) AS concept_id, "
        "CASE WHEN e.unit IS NULL THEN NULL ELSE coalesce(u.concept_id, 0) END AS unit_concept_id, "
        f"{c.table_of_domain_sql('m.domain_id', default_table)} AS omop_table, "
        "pm.id AS person_id, v.id AS visit_id, pr.id AS provider_id, "
        "CAST(e.start_ts AS DATE) AS start_date, CAST(e.end_ts AS DATE) AS end_date "
        f"FROM {EVENTS} e JOIN {PERSONS} h ON h.entity_id = e.person_entity "
        f"LEFT JOIN {CONCEPT_MAP} m ON m.vocabulary_id = e.vocabulary_id AND m.concept_code = e.code "
        f"LEFT JOIN {UNIT_MAP} u ON u.concept_code = e.unit "
        f"{join_id(schema, 'person', 'pm', 'h.person_key')} "
        f"{join_id(schema, 'visit_occurrence', 'v', 'e.visit_key')} "
        f"{join_id(schema, 'provider', 'pr', 'e.provider_key')}",
    )


def _routed(table: str, id_column: str, values: dict[str, str]) -> Target:
    select = f"SELECT r._key, r._entity, 0, {', '.join(values.values())} FROM {ROUTED} r WHERE r.omop_table = '{table}'"
    return Target(table, id_column, tuple(values), select)


_END_DATE = "CASE WHEN r.end_ts >= r.start_ts THEN r.end_date END"
_END_TS = "CASE WHEN r.end_ts >= r.start_ts THEN r.end_ts END"


def condition_occurrence() -> Target:
    return _routed(
        "condition_occurrence",
        "condition_occurrence_id",
        {
            "person_id": "r.person_id",
            "condition_concept_id": "r.concept_id",
            "condition_start_date": "r.start_date",
            "condition_start_datetime": "r.start_ts",
            "condition_end_date": _END_DATE,
            "condition_end_datetime": _END_TS,
            "condition_type_concept_id": "r.type_concept_id",
            "condition_status_concept_id": "CAST(NULL AS integer)",
            "stop_reason": "CAST(NULL AS varchar)",
            "provider_id": "r.provider_id",
            "visit_occurrence_id": "r.visit_id",
            "visit_detail_id": "CAST(NULL AS integer)",
            "condition_source_value": text("r.source_value", 50),
            "condition_source_concept_id": "r.source_concept_id",
            "condition_status_source_value": text("r.status", 50),
        },
    )


def procedure_occurrence() -> Target:
    return _routed(
        "procedure_occurrence",
        "procedure_occurrence_id",
        {
            "person_id": "r.person_id",
            "procedure_concept_id": "r.concept_id",
            "procedure_date": "r.start_date",
            "procedure_datetime": "r.start_ts",
            "procedure_end_date": _END_DATE,
            "procedure_end_datetime": _END_TS,
            "procedure_type_concept_id": "r.type_concept_id",
            "modifier_concept_id": "CAST(NULL AS integer)",
            "quantity": "CAST(round(r.quantity) AS integer)",
            "provider_id": "r.provider_id",
            "visit_occurrence_id": "r.visit_id",
            "visit_detail_id": "CAST(NULL AS integer)",
            "procedure_source_value": text("r.source_value", 50),
            "procedure_source_concept_id": "r.source_concept_id",
            "modifier_source_value": text("r.modifier", 50),
        },
    )


def drug_exposure() -> Target:
    # OMOP requires an end: the source's, else start + days supply, else the start.
    end = "CASE WHEN r.end_ts >= r.start_ts THEN r.end_date ELSE r.start_date END"
    return _routed(
        "drug_exposure",
        "drug_exposure_id",
        {
            "person_id": "r.person_id",
            "drug_concept_id": "r.concept_id",
            "drug_exposure_start_date": "r.start_date",
            "drug_exposure_start_datetime": "r.start_ts",
            "drug_exposure_end_date": end,
            "drug_exposure_end_datetime": _END_TS,
            "verbatim_end_date": _END_DATE,
            "drug_type_concept_id": "r.type_concept_id",
            "stop_reason": text("r.stop_reason", 20),
            "refills": "r.refills",
            "quantity": "r.quantity",
            "days_supply": "r.days_supply",
            "sig": "r.sig",
            "route_concept_id": "CAST(NULL AS integer)",
            "lot_number": text("r.lot", 50),
            "provider_id": "r.provider_id",
            "visit_occurrence_id": "r.visit_id",
            "visit_detail_id": "CAST(NULL AS integer)",
            "drug_source_value": text("r.source_value", 50),
            "drug_source_concept_id": "r.source_concept_id",
            "route_source_value": text("r.route", 50),
            "dose_unit_source_value": text("r.unit", 50),
        },
    )


def device_exposure() -> Target:
    return _routed(
        "device_exposure",
        "device_exposure_id",
        {
            "person_id": "r.person_id",
            "device_concept_id": "r.concept_id",
            "device_exposure_start_date": "r.start_date",
            "device_exposure_start_datetime": "r.start_ts",
            "device_exposure_end_date": _END_DATE,
            "device_exposure_end_datetime": _END_TS,
            "device_type_concept_id": "r.type_concept_id",
            "unique_device_id": text("r.device_id", 255),
            "production_id": "CAST(NULL AS varchar)",
            "quantity": "CAST(round(r.quantity) AS integer)",
            "provider_id": "r.provider_id",
            "visit_occurrence_id": "r.visit_id",
            "visit_detail_id": "CAST(NULL AS integer)",
            "device_source_value": text("r.source_value", 50),
            "device_source_concept_id": "r.source_concept_id",
            "unit_concept_id": "r.unit_concept_id",
            "unit_source_value": text("r.unit", 50),
            "unit_source_concept_id": "CAST(NULL AS integer)",
        },
    )


def measurement() -> Target:
    return _routed(
        "measurement",
        "measurement_id",
        {
            "person_id": "r.person_id",
            "measurement_concept_id": "r.concept_id",
            "measurement_date": "r.start_date",
            "measurement_datetime": "r.start_ts",
            "measurement_time": "CAST(NULL AS varchar)",
            "measurement_type_concept_id": "r.type_concept_id",
            "operator_concept_id": "CAST(NULL AS integer)",
            "value_as_number": "r.value_number",
            "value_as_concept_id": "CAST(NULL AS integer)",
            "unit_concept_id": "r.unit_concept_id",
            "range_low": "r.range_low",
            "range_high": "r.range_high",
            "provider_id": "r.provider_id",
            "visit_occurrence_id": "r.visit_id",
            "visit_detail_id": "CAST(NULL AS integer)",
            "measurement_source_value": text("r.source_value", 50),
            "measurement_source_concept_id": "r.source_concept_id",
            "unit_source_value": text("r.unit", 50),
            "unit_source_concept_id": "CAST(NULL AS integer)",
            "value_source_value": text("r.value_text", 50),
            "measurement_event_id": "CAST(NULL AS integer)",
            "meas_event_field_concept_id": "CAST(NULL AS integer)",
        },
    )


def observation() -> Target:
    return _routed(
        "observation",
        "observation_id",
        {
            "person_id": "r.person_id",
            "observation_concept_id": "r.concept_id",
            "observation_date": "r.start_date",
            "observation_datetime": "r.start_ts",
            "observation_type_concept_id": "r.type_concept_id",
            "value_as_number": "r.value_number",
            "value_as_string": text("r.value_text", 60),
            "value_as_concept_id": "CAST(NULL AS integer)",
            "qualifier_concept_id": "CAST(NULL AS integer)",
            "unit_concept_id": "r.unit_concept_id",
            "provider_id": "r.provider_id",
            "visit_occurrence_id": "r.visit_id",
            "visit_detail_id": "CAST(NULL AS integer)",
            "observation_source_value": text("r.source_value", 50),
            "observation_source_concept_id": "r.source_concept_id",
            "unit_source_value": text("r.unit", 50),
            "qualifier_source_value": "CAST(NULL AS varchar)",
            "value_source_value": text("r.value_text", 50),
            "observation_event_id": "CAST(NULL AS integer)",
            "obs_event_field_concept_id": "CAST(NULL AS integer)",
        },
    )


ROUTED_TARGETS = (condition_occurrence, procedure_occurrence, drug_exposure, device_exposure, measurement, observation)


def note(schema: str) -> Target:
    columns = (
        "person_id",
        "note_date",
        "note_datetime",
        "note_type_concept_id",
        "note_class_concept_id",
        "note_title",
        "note_text",
        "encoding_concept_id",
        "language_concept_id",
        "provider_id",
        "visit_occurrence_id",
        "visit_detail_id",
        "note_source_value",
        "note_event_id",
        "note_event_field_concept_id",
    )
    select = (
        f"SELECT {key('n.id')}, n.id, 0, pm.id, {utc_date('n.note_datetime')}, {utc('n.note_datetime')}, "
        f"{c.EHR}, 0, {text('n.note_type', 250)}, coalesce(n.content, ''), {c.UTF8}, 0, "
        f"CAST(NULL AS integer), v.id, CAST(NULL AS integer), {text('n.note_type', 50)}, "
        "CAST(NULL AS integer), CAST(NULL AS integer) "
        f"FROM clinical_notes n JOIN {PERSONS} h ON h.entity_id = n.patient_uuid "
        f"{join_id(schema, 'person', 'pm', 'h.person_key')} "
        f"{join_id(schema, 'visit_occurrence', 'v', key('n.encounter_uuid'))} "
        f"WHERE {in_scope('n', 'clinical_note')}"
    )
    return Target("note", "note_id", columns, select)


def specimen(schema: str) -> Target:
    """A specimen per lab order that names its specimen type."""
    columns = (
        "person_id",
        "specimen_concept_id",
        "specimen_type_concept_id",
        "specimen_date",
        "specimen_datetime",
        "quantity",
        "unit_concept_id",
        "anatomic_site_concept_id",
        "disease_status_concept_id",
        "specimen_source_id",
        "specimen_source_value",
        "unit_source_value",
        "anatomic_site_source_value",
        "disease_status_source_value",
    )
    taken = "coalesce(o.collected_datetime, o.ordered_datetime)"
    select = (
        f"SELECT {key('o.id')}, o.id, 0, pm.id, 0, {c.EHR}, {utc_date(taken)}, {utc(taken)}, "
        "CAST(NULL AS double precision), CAST(NULL AS integer), CAST(NULL AS integer), CAST(NULL AS integer), "
        f"{text('o.order_id', 50)}, {text('o.specimen_type', 50)}, CAST(NULL AS varchar), CAST(NULL AS varchar), "
        "CAST(NULL AS varchar) "
        f"FROM orders o JOIN {PERSONS} h ON h.entity_id = o.patient_uuid "
        f"{join_id(schema, 'person', 'pm', 'h.person_key')} "
        f"WHERE {in_scope('o', 'order')} AND o.specimen_type IS NOT NULL"
    )
    return Target("specimen", "specimen_id", columns, select)
