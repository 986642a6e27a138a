"""The 11 entity types of Synthea import, and references to them from encounters and claims.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

Upgrade creates organizations, practitioners, payers, observations,
allergies, immunizations, care_plans, devices, supplies, imaging_studies and
coverages (their secondary indexes on PostgreSQL only, as revision 0003
decided); adds organization_id/_uuid, practitioner_id/_uuid and
payer_id/_uuid to encounters, code_system to diagnoses, practitioner_id/_uuid,
payer_id/_uuid and diagnosis_code_system to claims, procedure_code_system
to claim_lines; and lets claims.provider_npi be NULL (a claim may name its
provider by practitioner_id instead). Stored rows keep every value; the new
columns are NULL in them, the code systems included: NULL reads as
ICD-10-CM for diagnoses, CPT/HCPCS for claim lines, the systems of every
earlier row. The ICD-10-CM defaults of diagnoses and claims are set after
their columns are added, so that they apply to later rows only: added with
the column, both backends would write a default into every stored row, and a
stored document would load with a field it never had.

Downgrade refuses, changing nothing, while a claim has no provider_npi:
revision 0003 requires one, and no value can be made up for it. Otherwise it
drops the 11 tables with their entities (and those entities' scenario links
and counts), and the new columns with their values.

Plain ALTER TABLE on both backends: DuckDB (2.0) refuses DROP COLUMN and
SET NOT NULL on a table with an index of its own (CREATE INDEX), not for its
primary key, and since revision 0003 DuckDB's canonical tables have no other.
Frozen copy of the tables as of this revision; it does not import the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op
from healthsim_models.errors import SchemaVersionError

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIMESTAMPTZ = sa.DateTime(timezone=True)
ICD10CM = sa.text("'ICD-10-CM'")

# Entity type names of the new tables (scenario_entities.entity_type, the keys of scenarios.entity_counts).
NEW_TYPES = {
    "organizations": "organization",
    "practitioners": "practitioner",
    "payers": "payer",
    "observations": "observation",
    "allergies": "allergy",
    "immunizations": "immunization",
    "care_plans": "care_plan",
    "devices": "device",
    "supplies": "supply",
    "imaging_studies": "imaging_study",
    "coverages": "coverage",
}

# Columns added to existing tables, in this order: (table, column, type, indexed on PostgreSQL).
ADDED: tuple[tuple[str, str, sa.types.TypeEngine, bool], ...] = (
    ("encounters", "organization_id", sa.String(), False),
    ("encounters", "organization_uuid", sa.Uuid(), True),
    ("encounters", "practitioner_id", sa.String(), False),
    ("encounters", "practitioner_uuid", sa.Uuid(), True),
    ("encounters", "payer_id", sa.String(), False),
    ("encounters", "payer_uuid", sa.Uuid(), True),
    ("diagnoses", "code_system", sa.String(), False),
    ("claims", "practitioner_id", sa.String(), False),
    ("claims", "practitioner_uuid", sa.Uuid(), True),
    ("claims", "payer_id", sa.String(), False),
    ("claims", "payer_uuid", sa.Uuid(), True),
    ("claims", "diagnosis_code_system", sa.String(), False),
    ("claim_lines", "procedure_code_system", sa.String(), False),
)
# Added columns whose default applies to rows written from now on.
DEFAULTS = (("diagnoses", "code_system"), ("claims", "diagnosis_code_system"))


def _on_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _index_name(table: str, column: str) -> str:
    return op.f(f"ix_{table}_{column}")


def _create_table(name: str, *columns: sa.Column, indexes: tuple[str, ...]) -> None:
    """A canonical table: identity, the type's own columns, extensions and
    provenance, its primary key; the single-column ``indexes`` on PostgreSQL only."""
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
    if _on_postgresql():
        for column in indexes:
            op.create_index(_index_name(name, column), name, [column])


def _address() -> list[sa.Column]:
    """The postal address and position of organizations and practitioners."""
    return [
        sa.Column("street_address", sa.String()),
        sa.Column("city", sa.String()),
        sa.Column("state", sa.String()),
        sa.Column("postal_code", sa.String()),
        sa.Column("latitude", sa.Numeric(9, 6)),
        sa.Column("longitude", sa.Numeric(9, 6)),
    ]


def _clinical_refs() -> list[sa.Column]:
    """patient_mrn (hard) and encounter_id (optional) with their resolutions."""
    return [
        sa.Column("patient_mrn", sa.String(), nullable=False),
        sa.Column("patient_uuid", sa.Uuid(), nullable=False),
        sa.Column("encounter_id", sa.String()),
        sa.Column("encounter_uuid", sa.Uuid()),
    ]


def _coded() -> list[sa.Column]:
    """A coded concept: code, its system, its display text."""
    return [
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("code_system", sa.String()),
        sa.Column("description", sa.String()),
    ]


_CLINICAL_INDEXES = ("patient_uuid", "encounter_uuid", "code")


def _create_tables() -> None:
    _create_table(
        "organizations",
        sa.Column("organization_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("npi", sa.String()),
        sa.Column("phone", sa.String()),
        *_address(),
        indexes=("organization_id", "npi"),
    )
    _create_table(
        "practitioners",
        sa.Column("practitioner_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("npi", sa.String()),
        sa.Column("gender", sa.String()),
        sa.Column("specialty", sa.String()),
        sa.Column("organization_id", sa.String()),
        sa.Column("organization_uuid", sa.Uuid()),
        *_address(),
        indexes=("practitioner_id", "npi", "organization_uuid"),
    )
    _create_table(
        "payers",
        sa.Column("payer_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("ownership", sa.String()),
        sa.Column("street_address", sa.String()),
        sa.Column("city", sa.String()),
        sa.Column("state", sa.String()),
        sa.Column("postal_code", sa.String()),
        sa.Column("phone", sa.String()),
        indexes=("payer_id",),
    )
    _create_table(
        "observations",
        *_clinical_refs(),
        sa.Column("category", sa.String()),
        sa.Column("status", sa.String(), nullable=False, server_default=sa.text("'final'")),
        sa.Column("effective_datetime", TIMESTAMPTZ, nullable=False),
        sa.Column("value", sa.String()),
        sa.Column("value_type", sa.String()),
        sa.Column("unit", sa.String()),
        *_coded(),
        indexes=(*_CLINICAL_INDEXES, "effective_datetime"),
    )
    _create_table(
        "allergies",
        *_clinical_refs(),
        sa.Column("type", sa.String()),
        sa.Column("category", sa.String()),
        sa.Column("clinical_status", sa.String()),
        sa.Column("onset_datetime", TIMESTAMPTZ, nullable=False),
        sa.Column("abatement_datetime", TIMESTAMPTZ),
        sa.Column("reactions", JSON),
        *_coded(),
        indexes=(*_CLINICAL_INDEXES, "onset_datetime"),
    )
    _create_table(
        "immunizations",
        *_clinical_refs(),
        sa.Column("vaccine_code", sa.String(), nullable=False),
        sa.Column("vaccine_code_system", sa.String(), server_default=sa.text("'CVX'")),
        sa.Column("vaccine_description", sa.String()),
        sa.Column("status", sa.String(), nullable=False, server_default=sa.text("'completed'")),
        sa.Column("occurrence_datetime", TIMESTAMPTZ, nullable=False),
        sa.Column("lot_number", sa.String()),
        sa.Column("site", sa.String()),
        sa.Column("route", sa.String()),
        sa.Column("performer", sa.String()),
        indexes=("patient_uuid", "encounter_uuid", "vaccine_code", "occurrence_datetime"),
    )
    _create_table(
        "care_plans",
        *_clinical_refs(),
        sa.Column("status", sa.String()),
        sa.Column("period_start", TIMESTAMPTZ, nullable=False),
        sa.Column("period_end", TIMESTAMPTZ),
        sa.Column("reason_code", sa.String()),
        sa.Column("reason_code_system", sa.String()),
        sa.Column("reason_description", sa.String()),
        *_coded(),
        indexes=(*_CLINICAL_INDEXES, "period_start"),
    )
    _create_table(
        "devices",
        *_clinical_refs(),
        sa.Column("udi_carrier", sa.String()),
        sa.Column("status", sa.String()),
        sa.Column("period_start", TIMESTAMPTZ, nullable=False),
        sa.Column("period_end", TIMESTAMPTZ),
        *_coded(),
        indexes=(*_CLINICAL_INDEXES, "period_start"),
    )
    _create_table(
        "supplies",
        *_clinical_refs(),
        sa.Column("quantity", sa.Numeric(10, 2)),
        sa.Column("occurrence_datetime", TIMESTAMPTZ, nullable=False),
        *_coded(),
        indexes=(*_CLINICAL_INDEXES, "occurrence_datetime"),
    )
    _create_table(
        "imaging_studies",
        *_clinical_refs(),
        sa.Column("instance_uid", sa.String(), nullable=False),
        sa.Column("study_id", sa.String()),
        sa.Column("started", TIMESTAMPTZ, nullable=False),
        sa.Column("series_uid", sa.String()),
        sa.Column("body_site_code", sa.String()),
        sa.Column("body_site_description", sa.String()),
        sa.Column("modality_code", sa.String()),
        sa.Column("modality_description", sa.String()),
        sa.Column("sop_class_code", sa.String()),
        sa.Column("sop_class_description", sa.String()),
        sa.Column("procedure_code", sa.String()),
        indexes=("patient_uuid", "encounter_uuid", "instance_uid", "study_id", "started"),
    )
    _create_table(
        "coverages",
        sa.Column("member_id", sa.String(), nullable=False),
        sa.Column("member_uuid", sa.Uuid(), nullable=False),
        sa.Column("payer_id", sa.String(), nullable=False),
        sa.Column("payer_uuid", sa.Uuid(), nullable=False),
        sa.Column("secondary_payer_id", sa.String()),
        sa.Column("secondary_payer_uuid", sa.Uuid()),
        sa.Column("subscriber_id", sa.String()),
        sa.Column("relationship", sa.String()),
        sa.Column("policy_holder", sa.String()),
        sa.Column("status", sa.String(), nullable=False, server_default=sa.text("'active'")),
        sa.Column("period_start", TIMESTAMPTZ, nullable=False),
        sa.Column("period_end", TIMESTAMPTZ),
        indexes=("member_uuid", "payer_uuid", "secondary_payer_uuid", "period_start"),
    )


def upgrade() -> None:
    _create_tables()
    for table, column, type_, indexed in ADDED:
        op.add_column(table, sa.Column(column, type_))
        if indexed and _on_postgresql():
            op.create_index(_index_name(table, column), table, [column])
    for table, column in DEFAULTS:
        op.alter_column(table, column, server_default=ICD10CM)
    op.alter_column("claims", "provider_npi", existing_type=sa.String(), nullable=True)


def _refuse_claims_without_npi() -> None:
    """Raise, before anything changes, while some claim has no provider_npi."""
    bind = op.get_bind()
    missing = bind.execute(sa.text("SELECT count(*) FROM claims WHERE provider_npi IS NULL")).scalar_one()
    if not missing:
        return
    claims = (
        bind.execute(sa.text("SELECT claim_id FROM claims WHERE provider_npi IS NULL ORDER BY claim_id LIMIT 5"))
        .scalars()
        .all()
    )
    scenarios = (
        bind.execute(
            sa.text(
                "SELECT DISTINCT s.name FROM scenarios s JOIN scenario_entities l ON l.scenario_id = s.id "
                "JOIN claims c ON c.id = l.entity_id AND l.entity_type = 'claim' "
                "WHERE c.provider_npi IS NULL ORDER BY s.name LIMIT 5"
            )
        )
        .scalars()
        .all()
    )
    has = f"{missing} claims have" if missing != 1 else "1 claim has"
    raise SchemaVersionError(
        f"cannot downgrade below revision 0004: revision 0003 requires provider_npi on every claim, and {has} "
        f"none (naming the provider by practitioner_id only): claim_id {', '.join(map(repr, claims))}"
        f"{' and more' if missing > 5 else ''}, in the scenarios {', '.join(map(repr, scenarios)) or '(none)'}. "
        "Give those claims a provider_npi (save them again) or delete their scenarios, then downgrade again; "
        "the database was not changed"
    )


def _forget_new_entities() -> None:
    """Unlink the new types' entities from their scenarios and drop them from the scenarios' counts."""
    bind = op.get_bind()
    names = sorted(NEW_TYPES.values())
    bind.execute(
        sa.text("DELETE FROM scenario_entities WHERE entity_type IN :names").bindparams(
            sa.bindparam("names", expanding=True)
        ),
        {"names": names},
    )
    scenarios = sa.table("scenarios", sa.column("id", sa.Uuid()), sa.column("entity_counts", JSON))
    for scenario_id, counts in bind.execute(sa.select(scenarios.c.id, scenarios.c.entity_counts)).all():
        kept = {name: count for name, count in (counts or {}).items() if name not in NEW_TYPES.values()}
        if kept != counts:
            bind.execute(scenarios.update().where(scenarios.c.id == scenario_id).values(entity_counts=kept))


def downgrade() -> None:
    _refuse_claims_without_npi()
    _forget_new_entities()
    op.alter_column("claims", "provider_npi", existing_type=sa.String(), nullable=False)
    for table, column, _, indexed in reversed(ADDED):
        if indexed and _on_postgresql():
            op.drop_index(_index_name(table, column), table_name=table)
        op.drop_column(table, column)
    # Dropping a table drops its indexes, on DuckDB and PostgreSQL alike.
    for table in reversed(NEW_TYPES):
        op.drop_table(table)
