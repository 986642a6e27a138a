"""System tables kept by the store itself."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthsim_models.base import Base, Timestamp


class SchemaMigration(Base):
    """One row per revision applied or reverted, written by the migration environment.

    Alembic's own ``alembic_version`` says where a database is; this table
    says how it got there.
    """

    __tablename__ = "schema_migrations"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    revision: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    description: Mapped[str | None] = mapped_column(sa.String)
    direction: Mapped[str] = mapped_column(sa.String, nullable=False)
    applied_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, server_default=sa.func.now())
