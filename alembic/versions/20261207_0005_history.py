"""History tables, the writes they name, and store settings.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

Upgrade creates, for each of the 29 canonical tables and for ``scenarios``
and ``scenario_entities``, an empty ``<table>_history``: the table's
columns as the database holds them at this revision (copied from the table
itself by ``CREATE TABLE ... AS SELECT ... LIMIT 0``, which takes the column
types and neither NOT NULL, defaults nor indexes), ``tags`` JSON for
scenarios, then ``write_id``, ``replaced_at`` and ``operation`` (NOT NULL,
set before the key exists: on DuckDB a table's key blocks SET NOT NULL), and
the key: the table's key plus ``write_id``. It also creates ``writes`` (one
row per operation that changed the store) and ``settings``. Existing rows
are untouched; stores gain empty history.

Downgrade drops these tables with what they hold (the versions of earlier
times are lost; the current data is untouched).

Copying the shape from the live table keeps this revision frozen: it does
not import the models, and a later revision that adds a column to a table
adds it to its history table too.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIMESTAMPTZ = sa.DateTime(timezone=True)

# Tables with versions, and their keys, as of revision 0004.
CANONICAL = (
    "organizations",
    "practitioners",
    "payers",
    "patients",
    "encounters",
    "diagnoses",
    "procedures",
    "medications",
    "lab_results",
    "vital_signs",
    "clinical_notes",
    "orders",
    "observations",
    "allergies",
    "immunizations",
    "care_plans",
    "devices",
    "supplies",
    "imaging_studies",
    "members",
    "coverages",
    "claims",
    "claim_lines",
    "prescriptions",
    "pharmacy_claims",
    "subjects",
    "trial_visits",
    "adverse_events",
    "exposures",
)
KEYS: dict[str, tuple[str, ...]] = {
    **{name: ("id",) for name in CANONICAL},
    "scenarios": ("id",),
    "scenario_entities": ("scenario_id", "entity_type", "entity_id"),
}


def _create_history(table: str, key: tuple[str, ...]) -> None:
    history = f"{table}_history"
    op.execute(f"CREATE TABLE {history} AS SELECT * FROM {table} LIMIT 0")
    if table == "scenarios":
        op.add_column(history, sa.Column("tags", JSON))
    op.add_column(history, sa.Column("write_id", sa.Uuid()))
    op.add_column(history, sa.Column("replaced_at", TIMESTAMPTZ))
    op.add_column(history, sa.Column("operation", sa.String()))
    for column in ("write_id", "replaced_at", "operation"):
        op.alter_column(history, column, nullable=False)
    op.create_primary_key(op.f(f"pk_{history}"), history, [*key, "write_id"])


def upgrade() -> None:
    op.create_table(
        "writes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("operation", sa.String(), nullable=False),
        sa.Column("scenario_id", sa.Uuid()),
        sa.Column("scenario_name", sa.String()),
        sa.Column("written_at", TIMESTAMPTZ, nullable=False),
        sa.Column("positions", JSON),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_writes")),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("updated_at", TIMESTAMPTZ, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings")),
    )
    for table, key in KEYS.items():
        _create_history(table, key)


def downgrade() -> None:
    for table in reversed(KEYS):
        op.drop_table(f"{table}_history")
    op.drop_table("settings")
    op.drop_table("writes")
