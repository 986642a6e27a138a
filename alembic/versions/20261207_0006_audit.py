"""The audit trail: audit_log, append-only.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

Upgrade creates audit_log (one row per operation that changed the store),
empty, with its indexes on occurred_at and scenario_name on PostgreSQL only
(as revision 0003 decided for tables written often). On PostgreSQL a trigger
function, healthsim_audit_log_append_only, refuses every UPDATE and DELETE of
a row and every TRUNCATE of the table, whoever asks: the table can only grow
(DROP TABLE, by the table's owner, stays possible: this revision's downgrade
uses it). DuckDB has no triggers; there the store's API is what keeps it
append-only.

Downgrade drops the triggers, the function and the table with its rows.
Frozen copy of the table as of this revision; it does not import the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIMESTAMPTZ = sa.DateTime(timezone=True)
TABLE = "audit_log"
FUNCTION = "healthsim_audit_log_append_only"
INDEXED = ("occurred_at", "scenario_name")

# One function for both triggers: TG_OP says which statement was refused.
CREATE_FUNCTION = f"""
CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{TABLE} is append-only: % is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit events are never changed or removed';
END
$$
"""
TRIGGERS = {
    f"{TABLE}_no_update_or_delete": "BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW",
    f"{TABLE}_no_truncate": "BEFORE TRUNCATE ON {table} FOR EACH STATEMENT",
}


def _on_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", TIMESTAMPTZ, server_default=sa.text("now()"), nullable=False),
        sa.Column("operation", sa.String(), nullable=False),
        sa.Column("scenario_id", sa.Uuid(), nullable=True),
        sa.Column("scenario_name", sa.String(), nullable=True),
        sa.Column("counts", JSON, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("details", JSON, nullable=True),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("interface", sa.String(), nullable=False),
        sa.Column("database_user", sa.String(), nullable=True),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("write_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
    )
    if not _on_postgresql():
        return
    for column in INDEXED:
        op.create_index(op.f(f"ix_{TABLE}_{column}"), TABLE, [column])
    op.execute(CREATE_FUNCTION)
    for name, when in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {when.format(table=TABLE)} EXECUTE FUNCTION {FUNCTION}()")


def downgrade() -> None:
    if _on_postgresql():
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER {name} ON {TABLE}")
        op.execute(f"DROP FUNCTION {FUNCTION}()")
        for column in INDEXED:
            op.drop_index(op.f(f"ix_{TABLE}_{column}"), table_name=TABLE)
    op.drop_table(TABLE)
