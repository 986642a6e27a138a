"""State tables: named scenarios and their links to entities.

Entity data lives only in the canonical tables; a scenario is a name, some
metadata and a set of links. One entity (one UUID) may be linked from many
scenarios.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthsim_models.base import Base, ByteOrderText, JSONType, TimestampMixin, server_only


class Scenario(TimestampMixin, Base):
    """A named group of entities."""

    __tablename__ = "scenarios"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.String, nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(sa.Text)
    # {"patient": 3, "encounter": 4, ...}: kept current by every write so that
    # listing scenarios needs no count over the link table.
    entity_counts: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, server_default=sa.text("'{}'"))
    # Unknown top-level keys of an imported document and legacy envelope
    # fields (created_by, healthsim_version), re-exported as they came.
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class ScenarioEntity(Base):
    """Membership: entity ``entity_id`` of type ``entity_type`` is in the scenario."""

    __tablename__ = "scenario_entities"
    __table_args__ = (
        # The reverse lookup: which scenarios link this entity (delete, and
        # "who else sees this update"); DuckDB answers it by a hash join.
        server_only(sa.Index(None, "entity_id", "entity_type")),
    )

    scenario_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    entity_type: Mapped[str] = mapped_column(ByteOrderText, primary_key=True)
    entity_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    # Order of the entity among the scenario's entities of its type, as saved:
    # loads and exports give entities back in this order.
    position: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)


class ScenarioTag(Base):
    """A tag on a scenario; a scenario has each tag at most once."""

    __tablename__ = "scenario_tags"

    scenario_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    tag: Mapped[str] = mapped_column(sa.String, primary_key=True, index=True)
