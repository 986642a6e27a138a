"""The star schema's tables, declared with SQLAlchemy in a MetaData of their own.

Declared rather than written as DDL text: one declaration gives both
backends their types (UUID, TIMESTAMPTZ, DECIMAL), names the constraints
by the store's naming convention, and keeps the indexes PostgreSQL-only
as the store's own secondary indexes are (:func:`healthsim_models.base.server_only`);
``metadata.create_all(checkfirst=True)`` creates what is missing on each
build. The schema is ``analytics`` here; a build into another schema maps
it with SQLAlchemy's ``schema_translate_map``.

Grain and keys: every table but ``dim_date`` holds rows of one scenario
each (``scenario_key``), so a rebuild replaces exactly what the scenarios
it names contributed. Surrogate keys are UUIDs derived from the scenario's
id and the source entity's id (the md5 of both, :func:`healthsim_state.analytics.star.sql.derived_key`),
so they are the same on every run; ``dim_date`` is keyed by the date as
the integer YYYYMMDD. There are no database foreign keys, for the reason
the canonical tables have none (a rebuild deletes and re-inserts keys in
one transaction, which DuckDB refuses for referenced keys).
"""

from __future__ import annotations

import sqlalchemy as sa

from healthsim_models.base import NAMING_CONVENTION, Money, Timestamp, server_only

#: The schema the tables are declared in (a build maps it to the one asked for).
DECLARED_SCHEMA = "analytics"

metadata = sa.MetaData(schema=DECLARED_SCHEMA, naming_convention=NAMING_CONVENTION)


def _key(name: str) -> sa.Column:
    return sa.Column(name, sa.Uuid, primary_key=True)


def _uuid(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Uuid, nullable=nullable)


def _text(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.String, nullable=nullable)


def _int(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.Integer, nullable=nullable)


def _flag(name: str) -> sa.Column:
    return sa.Column(name, sa.Boolean, nullable=False)


def _scenario() -> sa.Column:
    return sa.Column("scenario_key", sa.Uuid, nullable=False)


def _indexed(table: sa.Table, *columns: str) -> sa.Table:
    """``table`` with an index on each of ``columns``, on PostgreSQL only."""
    for column in columns:
        server_only(sa.Index(None, table.c[column]))
    return table


def _fact(name: str, key: str, source: str, *columns: sa.Column) -> sa.Table:
    """A fact table: its key, scenario, source entity's UUID and person, then ``columns``;
    indexed by scenario and by person."""
    table = sa.Table(name, metadata, _key(key), _scenario(), _uuid(source), _uuid("patient_key"), *columns)
    return _indexed(table, "scenario_key", "patient_key")


dim_scenario = sa.Table(
    "dim_scenario",
    metadata,
    _key("scenario_key"),  # the scenario's id in the store
    _text("name", nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("built_at", Timestamp, nullable=False),
    sa.Column("as_of_date", sa.Date, nullable=False),
)

# Which person each patient, member and subject of a scenario is (see docs/analytics.md).
bridge_person = _indexed(
    sa.Table(
        "bridge_person",
        metadata,
        _scenario(),
        _uuid("entity_uuid"),
        _text("entity_type", nullable=False),
        _uuid("patient_key"),
        _text("match_rule", nullable=False),
        sa.PrimaryKeyConstraint("scenario_key", "entity_uuid"),
    ),
    "patient_key",
)

dim_patient = _indexed(
    sa.Table(
        "dim_patient",
        metadata,
        _key("patient_key"),
        _scenario(),
        _text("anchor_type", nullable=False),
        _uuid("anchor_uuid"),
        _text("mrn"),
        _text("member_id"),
        _text("usubjid"),
        _flag("is_patient"),
        _flag("is_member"),
        _flag("is_subject"),
        _int("member_records", nullable=False),
        _text("gender", nullable=False),
        sa.Column("birth_date", sa.Date, nullable=False),
        _int("age", nullable=False),
        _text("age_band", nullable=False),
        _text("race"),
        _text("ethnicity"),
        _text("state"),
        _text("postal_code"),
        _flag("deceased"),
        sa.Column("death_date", sa.Date),
    ),
    "scenario_key",
)

dim_provider = _indexed(
    sa.Table(
        "dim_provider",
        metadata,
        _key("provider_key"),
        _scenario(),
        _text("provider_type", nullable=False),
        _uuid("provider_uuid"),
        _text("provider_id", nullable=False),
        _text("npi"),
        _text("name", nullable=False),
        _text("specialty"),
        _uuid("organization_key", nullable=True),
        _text("city"),
        _text("state"),
    ),
    "scenario_key",
)

dim_date = sa.Table(
    "dim_date",
    metadata,
    sa.Column("date_key", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("full_date", sa.Date, nullable=False, unique=True),
    _int("year", nullable=False),
    _int("quarter", nullable=False),
    _int("month", nullable=False),
    _int("day_of_month", nullable=False),
    _int("iso_day_of_week", nullable=False),
    _flag("is_weekend"),
    _text("year_month", nullable=False),
)

fact_encounter = _fact(
    "fact_encounter",
    "encounter_key",
    "encounter_uuid",
    _text("encounter_id", nullable=False),
    _uuid("provider_key", nullable=True),
    _uuid("organization_key", nullable=True),
    _text("payer_id"),
    _int("admission_date_key", nullable=False),
    _int("discharge_date_key"),
    _text("class_code", nullable=False),
    _text("status", nullable=False),
    sa.Column("admission_time", Timestamp, nullable=False),
    sa.Column("discharge_time", Timestamp),
    _int("length_of_stay_days"),
    _flag("is_inpatient"),
    _flag("readmitted_within_30_days"),
    _flag("is_readmission"),
    _text("admitting_diagnosis"),
)

fact_diagnosis = _fact(
    "fact_diagnosis",
    "diagnosis_key",
    "diagnosis_uuid",
    _uuid("encounter_key", nullable=True),
    _int("diagnosed_date_key", nullable=False),
    _int("resolved_date_key"),
    _text("code", nullable=False),
    _text("code_system", nullable=False),
    _text("description", nullable=False),
    _text("diagnosis_type", nullable=False),
)

fact_medication = _fact(
    "fact_medication",
    "medication_key",
    "source_uuid",
    _text("source_type", nullable=False),
    _uuid("encounter_key", nullable=True),
    _int("start_date_key", nullable=False),
    _int("end_date_key"),
    _text("drug_name", nullable=False),
    _text("code"),
    _text("code_system"),
    _text("status"),
    sa.Column("quantity", sa.Numeric(10, 2)),
    _int("days_supply"),
)

fact_lab = _fact(
    "fact_lab",
    "lab_key",
    "lab_uuid",
    _uuid("encounter_key", nullable=True),
    _int("collected_date_key", nullable=False),
    sa.Column("collected_time", Timestamp, nullable=False),
    _text("test_name", nullable=False),
    _text("loinc_code"),
    _text("value", nullable=False),
    sa.Column("value_numeric", sa.Numeric(18, 6)),
    _text("unit"),
    _text("abnormal_flag"),
    _flag("is_abnormal"),
)

fact_claim = _fact(
    "fact_claim",
    "claim_key",
    "claim_uuid",
    _text("claim_id", nullable=False),
    _uuid("provider_key", nullable=True),
    _text("provider_npi"),
    _text("payer_id"),
    _int("service_date_key", nullable=False),
    _text("claim_type", nullable=False),
    _text("place_of_service"),
    _text("principal_diagnosis", nullable=False),
    _text("diagnosis_code_system", nullable=False),
    _int("line_count", nullable=False),
    sa.Column("billed_amount", Money()),
    sa.Column("allowed_amount", Money()),
    sa.Column("paid_amount", Money()),
    sa.Column("member_responsibility", Money()),
)

fact_pharmacy_claim = _fact(
    "fact_pharmacy_claim",
    "pharmacy_claim_key",
    "pharmacy_claim_uuid",
    _text("claim_id", nullable=False),
    _uuid("prescription_uuid", nullable=True),
    _text("prescription_number", nullable=False),
    _int("service_date_key", nullable=False),
    _text("transaction_code", nullable=False),
    _text("ndc", nullable=False),
    _int("fill_number", nullable=False),
    sa.Column("quantity_dispensed", sa.Numeric(10, 2), nullable=False),
    _int("days_supply", nullable=False),
    _text("pharmacy_npi", nullable=False),
    _text("prescriber_npi", nullable=False),
    sa.Column("ingredient_cost", Money()),
    sa.Column("dispensing_fee", Money()),
    sa.Column("billed_amount", Money()),
    sa.Column("patient_pay_amount", Money()),
    sa.Column("plan_paid_amount", Money()),
)

fact_trial_visit = _fact(
    "fact_trial_visit",
    "trial_visit_key",
    "trial_visit_uuid",
    _text("usubjid", nullable=False),
    _text("study_id", nullable=False),
    _text("site_id", nullable=False),
    _text("treatment_arm"),
    sa.Column("visit_num", sa.Numeric(5, 1), nullable=False),
    _text("visit_name"),
    _int("visit_date_key", nullable=False),
    _int("study_day"),
    _text("visit_status"),
    _flag("is_missed"),
    _int("window_deviation_days"),
)

#: The tables in build order: the dimensions the facts look keys up in come first.
BUILD_ORDER: tuple[sa.Table, ...] = (
    dim_scenario,
    bridge_person,
    dim_patient,
    dim_provider,
    fact_encounter,
    fact_diagnosis,
    fact_medication,
    fact_lab,
    fact_claim,
    fact_pharmacy_claim,
    fact_trial_visit,
    dim_date,
)
#: The tables whose rows belong to one scenario each (all but dim_date).
SCENARIO_TABLES: tuple[sa.Table, ...] = tuple(t for t in BUILD_ORDER if "scenario_key" in t.c)
