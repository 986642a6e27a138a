"""Initial schema: system, state and the 18 canonical tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Frozen copy of the schema as of this revision: it must not import the
models, which will change after it. Runs the same on DuckDB and PostgreSQL:
no database foreign keys (DuckDB cannot delete referenced rows, see
docs/architecture.md), no ENUM types, unbounded VARCHAR.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIMESTAMPTZ = sa.DateTime(timezone=True)

# Created in this order, dropped in the reverse.
TABLES = (
    "schema_migrations",
    "scenarios",
    "scenario_entities",
    "scenario_tags",
    "patients",
    "encounters",
    "diagnoses",
    "procedures",
    "medications",
    "lab_results",
    "vital_signs",
    "clinical_notes",
    "orders",
    "members",
    "claims",
    "claim_lines",
    "prescriptions",
    "pharmacy_claims",
    "subjects",
    "trial_visits",
    "adverse_events",
    "exposures",
)


def _create_index(table: str, columns: tuple[str, ...]) -> None:
    op.create_index(op.f(f"ix_{table}_{'_'.join(columns)}"), table, list(columns))


def _person_columns() -> list[sa.Column]:
    """The Person block of patients, members and subjects."""
    return [
        sa.Column("given_name", sa.String(), nullable=False),
        sa.Column("middle_name", sa.String()),
        sa.Column("family_name", sa.String(), nullable=False),
        sa.Column("prefix", sa.String()),
        sa.Column("suffix", sa.String()),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("gender", sa.String(), nullable=False),
        sa.Column("ssn", sa.String()),
        sa.Column("street_address", sa.String()),
        sa.Column("street_address_2", sa.String()),
        sa.Column("city", sa.String()),
        sa.Column("state", sa.String()),
        sa.Column("postal_code", sa.String()),
        sa.Column("country", sa.String(), nullable=False, server_default=sa.text("'US'")),
        sa.Column("phone", sa.String()),
        sa.Column("phone_mobile", sa.String()),
        sa.Column("email", sa.String()),
        sa.Column("deceased", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("death_date", sa.Date()),
    ]


def _create_canonical_table(name: str, *columns: sa.Column, indexes: list[tuple[str, ...]]) -> None:
    """A canonical table: identity first, the type's own columns, then
    extensions and provenance; a UUID primary key; the given indexes."""
    op.create_table(
        name,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.String()),
        *columns,
        sa.Column("extensions", JSON),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        sa.Column("source_type", sa.String(), nullable=False, server_default=sa.text("'loaded'")),
        sa.Column("source_system", sa.String(), nullable=False, server_default=sa.text("'import'")),
        sa.Column("skill_used", sa.String()),
        sa.Column("generation_seed", sa.BigInteger()),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    )
    for index in indexes:
        _create_index(name, index)


def upgrade() -> None:
    op.create_table(
        "schema_migrations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("revision", sa.String(), nullable=False),
        sa.Column("description", sa.String()),
        sa.Column("direction", sa.String(), nullable=False),
        sa.Column("applied_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schema_migrations")),
    )
    _create_index("schema_migrations", ("revision",))

    op.create_table(
        "scenarios",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("entity_counts", JSON, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("extra", JSON),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scenarios")),
        sa.UniqueConstraint("name", name=op.f("uq_scenarios_name")),
    )

    op.create_table(
        "scenario_entities",
        sa.Column("scenario_id", sa.Uuid(), nullable=False),
        sa.Column("entity_type", sa.String(), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scenario_id", "entity_type", "entity_id", name=op.f("pk_scenario_entities")),
    )
    _create_index("scenario_entities", ("entity_id", "entity_type"))

    op.create_table(
        "scenario_tags",
        sa.Column("scenario_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("scenario_id", "tag", name=op.f("pk_scenario_tags")),
    )
    _create_index("scenario_tags", ("tag",))

    _create_canonical_table(
        "patients",
        sa.Column("mrn", sa.String(), nullable=False),
        sa.Column("race", sa.String()),
        sa.Column("ethnicity", sa.String()),
        sa.Column("language", sa.String(), nullable=False, server_default=sa.text("'en'")),
        *_person_columns(),
        indexes=[("birth_date",), ("family_name",), ("mrn",), ("ssn",)],
    )

    _create_canonical_table(
        "encounters",
        sa.Column("patient_mrn", sa.String(), nullable=False),
        sa.Column("patient_uuid", sa.Uuid(), nullable=False),
        sa.Column("encounter_id", sa.String(), nullable=False),
        sa.Column("class_code", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("admission_time", TIMESTAMPTZ, nullable=False),
        sa.Column("discharge_time", TIMESTAMPTZ),
        sa.Column("facility", sa.String()),
        sa.Column("department", sa.String()),
        sa.Column("room", sa.String()),
        sa.Column("bed", sa.String()),
        sa.Column("chief_complaint", sa.String()),
        sa.Column("admitting_diagnosis", sa.String()),
        sa.Column("discharge_disposition", sa.String()),
        sa.Column("attending_physician", sa.String()),
        sa.Column("admitting_physician", sa.String()),
        indexes=[("admission_time",), ("encounter_id",), ("patient_uuid",)],
    )

    _create_canonical_table(
        "diagnoses",
        sa.Column("patient_mrn", sa.String(), nullable=False),
        sa.Column("patient_uuid", sa.Uuid(), nullable=False),
        sa.Column("encounter_id", sa.String()),
        sa.Column("encounter_uuid", sa.Uuid()),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("description", sa.String()),
        sa.Column("type", sa.String(), nullable=False, server_default=sa.text("'final'")),
        sa.Column("diagnosed_date", sa.Date(), nullable=False),
        sa.Column("resolved_date", sa.Date()),
        indexes=[("code",), ("diagnosed_date",), ("encounter_uuid",), ("patient_uuid",)],
    )

    _create_canonical_table(
        "procedures",
        sa.Column("patient_mrn", sa.String(), nullable=False),
        sa.Column("patient_uuid", sa.Uuid(), nullable=False),
        sa.Column("encounter_id", sa.String()),
        sa.Column("encounter_uuid", sa.Uuid()),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("code_system", sa.String(), nullable=False, server_default=sa.text("'CPT'")),
        sa.Column("description", sa.String()),
        sa.Column("performed_datetime", TIMESTAMPTZ, nullable=False),
        sa.Column("performer", sa.String()),
        sa.Column("provider_npi", sa.String()),
        sa.Column("status", sa.String(), nullable=False, server_default=sa.text("'completed'")),
        sa.Column("body_site", sa.String()),
        sa.Column("modifiers", JSON),
        sa.Column("diagnosis_codes", JSON),
        indexes=[("code",), ("encounter_uuid",), ("patient_uuid",), ("performed_datetime",)],
    )

    _create_canonical_table(
        "medications",
        sa.Column("patient_mrn", sa.String(), nullable=False),
        sa.Column("patient_uuid", sa.Uuid(), nullable=False),
        sa.Column("encounter_id", sa.String()),
        sa.Column("encounter_uuid", sa.Uuid()),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("code", sa.String()),
        sa.Column("dose", sa.String(), nullable=False),
        sa.Column("route", sa.String(), nullable=False),
        sa.Column("frequency", sa.String(), nullable=False),
        sa.Column("start_date", TIMESTAMPTZ, nullable=False),
        sa.Column("end_date", TIMESTAMPTZ),
        sa.Column("status", sa.String(), nullable=False, server_default=sa.text("'active'")),
        sa.Column("prescriber", sa.String()),
        sa.Column("indication", sa.String()),
        indexes=[("code",), ("encounter_uuid",), ("patient_uuid",), ("start_date",)],
    )

    _create_canonical_table(
        "lab_results",
        sa.Column("patient_mrn", sa.String(), nullable=False),
        sa.Column("patient_uuid", sa.Uuid(), nullable=False),
        sa.Column("encounter_id", sa.String()),
        sa.Column("encounter_uuid", sa.Uuid()),
        sa.Column("test_name", sa.String(), nullable=False),
        sa.Column("loinc_code", sa.String()),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("unit", sa.String()),
        sa.Column("reference_range", sa.String()),
        sa.Column("abnormal_flag", sa.String()),
        sa.Column("collected_time", TIMESTAMPTZ, nullable=False),
        sa.Column("resulted_time", TIMESTAMPTZ),
        sa.Column("performing_lab", sa.String()),
        sa.Column("ordering_provider", sa.String()),
        indexes=[("collected_time",), ("encounter_uuid",), ("loinc_code",), ("patient_uuid",)],
    )

    _create_canonical_table(
        "vital_signs",
        sa.Column("patient_mrn", sa.String(), nullable=False),
        sa.Column("patient_uuid", sa.Uuid(), nullable=False),
        sa.Column("encounter_id", sa.String()),
        sa.Column("encounter_uuid", sa.Uuid()),
        sa.Column("observation_time", TIMESTAMPTZ, nullable=False),
        sa.Column("temperature", sa.Numeric(5, 2)),
        sa.Column("heart_rate", sa.Integer()),
        sa.Column("respiratory_rate", sa.Integer()),
        sa.Column("systolic_bp", sa.Integer()),
        sa.Column("diastolic_bp", sa.Integer()),
        sa.Column("spo2", sa.Integer()),
        sa.Column("height_cm", sa.Numeric(5, 2)),
        sa.Column("weight_kg", sa.Numeric(6, 2)),
        indexes=[("encounter_uuid",), ("observation_time",), ("patient_uuid",)],
    )

    _create_canonical_table(
        "clinical_notes",
        sa.Column("patient_mrn", sa.String(), nullable=False),
        sa.Column("patient_uuid", sa.Uuid(), nullable=False),
        sa.Column("encounter_id", sa.String()),
        sa.Column("encounter_uuid", sa.Uuid()),
        sa.Column("note_type", sa.String(), nullable=False),
        sa.Column("note_datetime", TIMESTAMPTZ, nullable=False),
        sa.Column("author", sa.String()),
        sa.Column("content", sa.Text()),
        indexes=[("encounter_uuid",), ("note_datetime",), ("patient_uuid",)],
    )

    _create_canonical_table(
        "orders",
        sa.Column("patient_mrn", sa.String(), nullable=False),
        sa.Column("patient_uuid", sa.Uuid(), nullable=False),
        sa.Column("encounter_id", sa.String()),
        sa.Column("encounter_uuid", sa.Uuid()),
        sa.Column("order_id", sa.String(), nullable=False),
        sa.Column("order_type", sa.String(), nullable=False),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("code_system", sa.String(), nullable=False, server_default=sa.text("'CPT'")),
        sa.Column("description", sa.String()),
        sa.Column("clinical_indication", sa.String()),
        sa.Column("priority", sa.String(), nullable=False, server_default=sa.text("'routine'")),
        sa.Column("status", sa.String(), nullable=False, server_default=sa.text("'new'")),
        sa.Column("ordered_datetime", TIMESTAMPTZ, nullable=False),
        sa.Column("scheduled_datetime", TIMESTAMPTZ),
        sa.Column("collected_datetime", TIMESTAMPTZ),
        sa.Column("resulted_datetime", TIMESTAMPTZ),
        sa.Column("ordering_provider_npi", sa.String()),
        sa.Column("ordering_provider_name", sa.String()),
        sa.Column("performing_lab_id", sa.String()),
        sa.Column("performing_lab_name", sa.String()),
        sa.Column("diagnosis_codes", JSON),
        sa.Column("specimen_type", sa.String()),
        indexes=[("encounter_uuid",), ("order_id",), ("ordered_datetime",), ("patient_uuid",)],
    )

    _create_canonical_table(
        "members",
        sa.Column("member_id", sa.String(), nullable=False),
        sa.Column("subscriber_id", sa.String()),
        sa.Column("subscriber_uuid", sa.Uuid()),
        sa.Column("relationship_code", sa.String(), nullable=False, server_default=sa.text("'18'")),
        sa.Column("group_id", sa.String(), nullable=False),
        sa.Column("plan_code", sa.String(), nullable=False),
        sa.Column("coverage_start", sa.Date(), nullable=False),
        sa.Column("coverage_end", sa.Date()),
        sa.Column("pcp_npi", sa.String()),
        *_person_columns(),
        indexes=[
            ("birth_date",),
            ("coverage_start",),
            ("family_name",),
            ("group_id",),
            ("member_id",),
            ("ssn",),
            ("subscriber_uuid",),
        ],
    )

    _create_canonical_table(
        "claims",
        sa.Column("claim_id", sa.String(), nullable=False),
        sa.Column("claim_type", sa.String(), nullable=False),
        sa.Column("member_id", sa.String(), nullable=False),
        sa.Column("member_uuid", sa.Uuid(), nullable=False),
        sa.Column("subscriber_id", sa.String()),
        sa.Column("subscriber_uuid", sa.Uuid()),
        sa.Column("provider_npi", sa.String(), nullable=False),
        sa.Column("facility_npi", sa.String()),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("admission_date", sa.Date()),
        sa.Column("discharge_date", sa.Date()),
        sa.Column("place_of_service", sa.String(), nullable=False, server_default=sa.text("'11'")),
        sa.Column("principal_diagnosis", sa.String(), nullable=False),
        sa.Column("other_diagnoses", JSON),
        sa.Column("authorization_number", sa.String()),
        sa.Column("total_charge", sa.Numeric(12, 2)),
        sa.Column("total_allowed", sa.Numeric(12, 2)),
        sa.Column("total_paid", sa.Numeric(12, 2)),
        sa.Column("member_responsibility", sa.Numeric(12, 2)),
        indexes=[
            ("claim_id",),
            ("member_uuid",),
            ("principal_diagnosis",),
            ("provider_npi",),
            ("service_date",),
            ("subscriber_uuid",),
        ],
    )

    _create_canonical_table(
        "claim_lines",
        sa.Column("claim_id", sa.String(), nullable=False),
        sa.Column("claim_uuid", sa.Uuid(), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("procedure_code", sa.String(), nullable=False),
        sa.Column("procedure_modifiers", JSON),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("units", sa.Numeric(6, 2), nullable=False, server_default=sa.text("1")),
        sa.Column("charge_amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("allowed_amount", sa.Numeric(12, 2)),
        sa.Column("paid_amount", sa.Numeric(12, 2)),
        sa.Column("diagnosis_pointers", JSON),
        sa.Column("revenue_code", sa.String()),
        sa.Column("ndc_code", sa.String()),
        sa.Column("place_of_service", sa.String(), nullable=False, server_default=sa.text("'11'")),
        indexes=[("claim_id", "line_number"), ("claim_uuid",), ("procedure_code",), ("service_date",)],
    )

    _create_canonical_table(
        "prescriptions",
        sa.Column("prescription_number", sa.String(), nullable=False),
        sa.Column("patient_mrn", sa.String()),
        sa.Column("patient_uuid", sa.Uuid()),
        sa.Column("member_id", sa.String()),
        sa.Column("member_uuid", sa.Uuid()),
        sa.Column("encounter_id", sa.String()),
        sa.Column("encounter_uuid", sa.Uuid()),
        sa.Column("ndc", sa.String(), nullable=False),
        sa.Column("drug_name", sa.String(), nullable=False),
        sa.Column("quantity_prescribed", sa.Numeric(10, 2), nullable=False),
        sa.Column("days_supply", sa.Integer(), nullable=False),
        sa.Column("refills_authorized", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("refills_remaining", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("prescriber_npi", sa.String(), nullable=False),
        sa.Column("prescriber_name", sa.String()),
        sa.Column("prescriber_dea", sa.String()),
        sa.Column("written_date", sa.Date(), nullable=False),
        sa.Column("expiration_date", sa.Date(), nullable=False),
        sa.Column("daw_code", sa.String(), nullable=False, server_default=sa.text("'0'")),
        sa.Column("diagnosis_codes", JSON),
        sa.Column("directions", sa.Text()),
        indexes=[
            ("encounter_uuid",),
            ("member_uuid",),
            ("ndc",),
            ("patient_uuid",),
            ("prescription_number",),
            ("written_date",),
        ],
    )

    _create_canonical_table(
        "pharmacy_claims",
        sa.Column("claim_id", sa.String(), nullable=False),
        sa.Column("transaction_code", sa.String(), nullable=False),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("pharmacy_npi", sa.String(), nullable=False),
        sa.Column("pharmacy_ncpdp", sa.String()),
        sa.Column("person_code", sa.String()),
        sa.Column("member_id", sa.String(), nullable=False),
        sa.Column("member_uuid", sa.Uuid(), nullable=False),
        sa.Column("cardholder_id", sa.String(), nullable=False),
        sa.Column("pcn", sa.String(), nullable=False),
        sa.Column("group_number", sa.String(), nullable=False),
        sa.Column("prescription_number", sa.String(), nullable=False),
        sa.Column("prescription_uuid", sa.Uuid()),
        sa.Column("bin", sa.String(), nullable=False),
        sa.Column("fill_number", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("ndc", sa.String(), nullable=False),
        sa.Column("quantity_dispensed", sa.Numeric(10, 2), nullable=False),
        sa.Column("days_supply", sa.Integer(), nullable=False),
        sa.Column("daw_code", sa.String()),
        sa.Column("compound_code", sa.String(), nullable=False, server_default=sa.text("'0'")),
        sa.Column("prescriber_npi", sa.String(), nullable=False),
        sa.Column("ingredient_cost_submitted", sa.Numeric(12, 2)),
        sa.Column("dispensing_fee_submitted", sa.Numeric(12, 2)),
        sa.Column("usual_customary_charge", sa.Numeric(12, 2)),
        sa.Column("gross_amount_due", sa.Numeric(12, 2)),
        sa.Column("patient_pay_amount", sa.Numeric(12, 2)),
        sa.Column("prior_auth_number", sa.String()),
        sa.Column("prior_auth_type", sa.String()),
        sa.Column("dur_pps_code_counter", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("dur_reason_for_service", sa.String()),
        sa.Column("dur_professional_service", sa.String()),
        sa.Column("dur_result_of_service", sa.String()),
        indexes=[("claim_id",), ("member_uuid",), ("ndc",), ("prescription_uuid",), ("service_date",)],
    )

    _create_canonical_table(
        "subjects",
        sa.Column("subject_id", sa.String(), nullable=False),
        sa.Column("usubjid", sa.String(), nullable=False),
        sa.Column("study_id", sa.String(), nullable=False),
        sa.Column("site_id", sa.String(), nullable=False),
        sa.Column("patient_ref", sa.String()),
        sa.Column("patient_uuid", sa.Uuid()),
        sa.Column("screening_id", sa.String()),
        sa.Column("screening_date", sa.Date()),
        sa.Column("randomization_date", sa.Date()),
        sa.Column("informed_consent_date", sa.Date(), nullable=False),
        sa.Column("treatment_arm", sa.String()),
        sa.Column("status", sa.String(), nullable=False, server_default=sa.text("'Screening'")),
        sa.Column("race", sa.String()),
        sa.Column("ethnicity", sa.String()),
        *_person_columns(),
        indexes=[("birth_date",), ("family_name",), ("patient_uuid",), ("ssn",), ("study_id",), ("usubjid",)],
    )

    _create_canonical_table(
        "trial_visits",
        sa.Column("usubjid", sa.String(), nullable=False),
        sa.Column("subject_uuid", sa.Uuid(), nullable=False),
        sa.Column("visit_num", sa.Numeric(5, 1), nullable=False),
        sa.Column("visit_name", sa.String()),
        sa.Column("visit_date", sa.Date(), nullable=False),
        sa.Column("study_day", sa.Integer()),
        sa.Column("visit_status", sa.String()),
        sa.Column("window_deviation_days", sa.Integer(), nullable=False, server_default=sa.text("0")),
        indexes=[("subject_uuid",), ("usubjid", "visit_num"), ("visit_date",)],
    )

    _create_canonical_table(
        "adverse_events",
        sa.Column("usubjid", sa.String(), nullable=False),
        sa.Column("subject_uuid", sa.Uuid(), nullable=False),
        sa.Column("aeseq", sa.Integer()),
        sa.Column("aeterm", sa.String(), nullable=False),
        sa.Column("aedecod", sa.String()),
        sa.Column("aebodsys", sa.String()),
        sa.Column("aehlt", sa.String()),
        sa.Column("aehlgt", sa.String()),
        sa.Column("aellt", sa.String()),
        sa.Column("aestdtc", sa.Date(), nullable=False),
        sa.Column("aeendtc", sa.Date()),
        sa.Column("aesev", sa.String()),
        sa.Column("aetoxgr", sa.String()),
        sa.Column("aeser", sa.String()),
        sa.Column("aerel", sa.String()),
        sa.Column("aeacn", sa.String()),
        sa.Column("aeout", sa.String()),
        sa.Column("aesae_criteria", JSON),
        indexes=[("aedecod",), ("aestdtc",), ("subject_uuid",), ("usubjid", "aeseq")],
    )

    _create_canonical_table(
        "exposures",
        sa.Column("usubjid", sa.String(), nullable=False),
        sa.Column("subject_uuid", sa.Uuid(), nullable=False),
        sa.Column("exseq", sa.Integer()),
        sa.Column("extrt", sa.String(), nullable=False),
        sa.Column("exdose", sa.Numeric(12, 4)),
        sa.Column("exdosu", sa.String()),
        sa.Column("exdosfrq", sa.String()),
        sa.Column("exroute", sa.String()),
        sa.Column("exstdtc", sa.Date(), nullable=False),
        sa.Column("exendtc", sa.Date()),
        sa.Column("exadj", sa.String()),
        sa.Column("planned_dose", sa.Numeric(12, 4)),
        sa.Column("dose_modification", sa.String()),
        indexes=[("exstdtc",), ("subject_uuid",), ("usubjid", "exseq")],
    )


def downgrade() -> None:
    # Dropping a table drops its indexes, on DuckDB and PostgreSQL alike.
    for table in reversed(TABLES):
        op.drop_table(table)
