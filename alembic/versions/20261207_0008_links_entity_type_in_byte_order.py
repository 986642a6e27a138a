"""The scenario links' entity_type in byte order (COLLATE "C") on PostgreSQL.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

``scenario_entities.entity_type`` is the second column of the links'
primary key (after the scenario id, the same for a whole save) and of their
reverse-lookup index, so the comparisons a links ``COPY`` makes go on to it;
in the database's collation each is a locale compare. Declared
``COLLATE "C"`` it compares bytes, as DuckDB compares all text: the links'
``COPY`` took 9% less in a database whose collation is ICU's en-US (the
same in a C.UTF-8 one, whose glibc collation is byte order already).
``scenario_entities_history`` copies the column (its key holds it too) and
changes with it.

Upgrade sets the collation on PostgreSQL; the server rebuilds the indexes
holding the column (the primary keys and the reverse lookup) under an
exclusive lock of each table, and keeps the rows. Downgrade gives both
columns back the database's default collation. On DuckDB, which has only
byte order here, both change nothing.

No order the store gives changes: nothing it returns or exports is sorted
by ``entity_type`` (its one ORDER BY on it is the order an overwrite's link
insert locks rows in, the same statement in every writer), and the built-in
type names, lowercase ASCII and underscores, sort the same either way.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables whose entity_type changes; in both it is part of the primary key (NOT NULL).
TABLES = ("scenario_entities", "scenario_entities_history")
COLUMN = "entity_type"


def _on_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _set_collation(collation: str | None) -> None:
    for table in TABLES:
        op.alter_column(
            table, COLUMN, type_=sa.String(collation=collation), existing_type=sa.String(), existing_nullable=False
        )


def upgrade() -> None:
    if _on_postgresql():
        _set_collation("C")


def downgrade() -> None:
    if _on_postgresql():
        _set_collation(None)
