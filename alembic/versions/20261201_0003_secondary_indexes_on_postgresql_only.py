"""Secondary indexes of the bulk-written tables on PostgreSQL only.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

The canonical tables and ``scenario_entities`` keep their secondary indexes
on PostgreSQL, whose planner uses them, and lose them on DuckDB, which
filters with min-max zone maps, uses an ART index only for point lookups,
maintains every ART index on each write, and blocks DROP COLUMN, ALTER TYPE
and RENAME COLUMN on an indexed table (docs/architecture.md, "Indexes").
Primary keys and the other tables' indexes are untouched.

Runs on both backends: on PostgreSQL upgrade and downgrade change nothing.
Frozen copy of the index list as of revision 0001; it does not import the
models.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Table -> the column lists of its secondary indexes, as revision 0001 made them.
INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "scenario_entities": (("entity_id", "entity_type"),),
    "patients": (("birth_date",), ("family_name",), ("mrn",), ("ssn",)),
    "encounters": (("admission_time",), ("encounter_id",), ("patient_uuid",)),
    "diagnoses": (("code",), ("diagnosed_date",), ("encounter_uuid",), ("patient_uuid",)),
    "procedures": (("code",), ("encounter_uuid",), ("patient_uuid",), ("performed_datetime",)),
    "medications": (("code",), ("encounter_uuid",), ("patient_uuid",), ("start_date",)),
    "lab_results": (("collected_time",), ("encounter_uuid",), ("loinc_code",), ("patient_uuid",)),
    "vital_signs": (("encounter_uuid",), ("observation_time",), ("patient_uuid",)),
    "clinical_notes": (("encounter_uuid",), ("note_datetime",), ("patient_uuid",)),
    "orders": (("encounter_uuid",), ("order_id",), ("ordered_datetime",), ("patient_uuid",)),
    "members": (
        ("birth_date",),
        ("coverage_start",),
        ("family_name",),
        ("group_id",),
        ("member_id",),
        ("ssn",),
        ("subscriber_uuid",),
    ),
    "claims": (
        ("claim_id",),
        ("member_uuid",),
        ("principal_diagnosis",),
        ("provider_npi",),
        ("service_date",),
        ("subscriber_uuid",),
    ),
    "claim_lines": (("claim_id", "line_number"), ("claim_uuid",), ("procedure_code",), ("service_date",)),
    "prescriptions": (
        ("encounter_uuid",),
        ("member_uuid",),
        ("ndc",),
        ("patient_uuid",),
        ("prescription_number",),
        ("written_date",),
    ),
    "pharmacy_claims": (("claim_id",), ("member_uuid",), ("ndc",), ("prescription_uuid",), ("service_date",)),
    "subjects": (("birth_date",), ("family_name",), ("patient_uuid",), ("ssn",), ("study_id",), ("usubjid",)),
    "trial_visits": (("subject_uuid",), ("usubjid", "visit_num"), ("visit_date",)),
    "adverse_events": (("aedecod",), ("aestdtc",), ("subject_uuid",), ("usubjid", "aeseq")),
    "exposures": (("exstdtc",), ("subject_uuid",), ("usubjid", "exseq")),
}


def _name(table: str, columns: tuple[str, ...]) -> str:
    return op.f(f"ix_{table}_{'_'.join(columns)}")


def _on_duckdb() -> bool:
    return op.get_bind().dialect.name == "duckdb"


def upgrade() -> None:
    if not _on_duckdb():
        return
    for table, indexes in INDEXES.items():
        for columns in indexes:
            op.drop_index(_name(table, columns), table_name=table)


def downgrade() -> None:
    if not _on_duckdb():
        return
    for table, indexes in INDEXES.items():
        for columns in indexes:
            op.create_index(_name(table, columns), table, list(columns))
