"""The audit.reads setting moves from the audit trail into the settings table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

Up to revision 0006 the value of ``audit.reads`` was the latest committed
``setting`` event of ``audit_log`` naming it (among the latest 20 setting
events, as the code of 0006 read it). From this revision on it is a row of
``settings``, like the history settings, and a change of it is an event
that records the change, not the place the value is kept.

Upgrade reads the value as revision 0006 did and, when it is on, stores it
in ``settings`` (key ``audit.reads``, value ``true``; off is the default
and needs no row). Events are not changed: the trail is append-only.

Downgrade reads the row (absent: off) and, when revision 0006's reading of
the trail would give another value, appends a ``setting`` event with the
value in 0006's form (``{"audit.reads": true}``), then deletes the row.
Both run the same statements on DuckDB and PostgreSQL. Frozen: the tables
are described here, not imported from the models.
"""

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = "audit.reads"
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIMESTAMPTZ = sa.DateTime(timezone=True)
AUDIT_LOG = sa.table(
    "audit_log",
    sa.column("id", sa.Uuid()),
    sa.column("occurred_at", TIMESTAMPTZ),
    sa.column("operation", sa.String()),
    sa.column("counts", JSON),
    sa.column("details", JSON),
    sa.column("actor", sa.String()),
    sa.column("interface", sa.String()),
    sa.column("database_user", sa.String()),
    sa.column("outcome", sa.String()),
)
SETTINGS = sa.table(
    "settings",
    sa.column("key", sa.String()),
    sa.column("value", sa.String()),
    sa.column("updated_at", TIMESTAMPTZ),
)


def _revision_0006_reading(connection: sa.Connection) -> tuple[bool, dt.datetime | None]:
    """The value revision 0006's code read from the trail, and the time of the event that set it."""
    rows = connection.execute(
        sa.select(AUDIT_LOG.c.details, AUDIT_LOG.c.occurred_at)
        .where(AUDIT_LOG.c.operation == "setting", AUDIT_LOG.c.outcome == "committed")
        .order_by(AUDIT_LOG.c.occurred_at.desc(), AUDIT_LOG.c.id)
        .limit(20)
    )
    for details, at in rows:
        if isinstance(details, str):  # a driver that hands JSON over as text
            details = json.loads(details)
        if details and KEY in details:
            return bool(details[KEY]), at
    return False, None


def upgrade() -> None:
    connection = op.get_bind()
    on, at = _revision_0006_reading(connection)
    connection.execute(sa.delete(SETTINGS).where(SETTINGS.c.key == KEY))
    if on:
        connection.execute(sa.insert(SETTINGS).values(key=KEY, value="true", updated_at=at))


def downgrade() -> None:
    # Who runs the downgrade is the one the appended event names, as every event does.
    from healthsim_models.audit import current_actor

    connection = op.get_bind()
    stored = connection.execute(sa.select(SETTINGS.c.value).where(SETTINGS.c.key == KEY)).scalar_one_or_none()
    on = stored == "true"
    if _revision_0006_reading(connection)[0] != on:
        actor = current_actor()
        user = sa.literal_column("current_user") if connection.dialect.name == "postgresql" else sa.null()
        values: dict[str, Any] = {
            "id": uuid.uuid4(),
            "occurred_at": dt.datetime.now(dt.UTC),
            "operation": "setting",
            "counts": {},
            "details": {KEY: on},
            "actor": actor.name,
            "interface": actor.interface,
            "database_user": user,
            "outcome": "committed",
        }
        connection.execute(sa.insert(AUDIT_LOG).values(values))
    connection.execute(sa.delete(SETTINGS).where(SETTINGS.c.key == KEY))
