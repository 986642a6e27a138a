"""History: the versions a write replaced, and the writes themselves.

Every canonical table, ``scenarios`` and ``scenario_entities`` has a
``<table>_history`` twin generated here from the table's columns (never
written out by hand): the replaced row as it was stored, every column
nullable and without defaults or indexes, plus

- ``write_id``: the write (a row of ``writes``) that replaced it;
- ``replaced_at``: when (the write's time);
- ``operation``: ``update`` (a save or add replaced it) or ``delete``.

The key is the table's key plus ``write_id``: one write replaces a row once.
``scenarios_history`` also keeps the scenario's ``tags`` of that version.

``writes`` holds one row per operation that changes the store (save, add,
delete, tag, untag, restore, prune): its id is the write id the history rows
and, later, an audit trail refer to. ``positions`` holds, per entity type,
one past the highest link position of the scenario after the write: the
links of a scenario at a past time are those of its generation below them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthsim_models.base import Base, JSONType, Timestamp
from healthsim_models.registry import ENTITY_TYPES
from healthsim_models.state import Scenario, ScenarioEntity

#: Columns every history table adds to its table's, in this order.
HISTORY_COLUMNS = ("write_id", "replaced_at", "operation")
#: What ended a version.
UPDATE, DELETE = "update", "delete"


class Write(Base):
    """One operation that changed the store; history rows name it by ``write_id``."""

    __tablename__ = "writes"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    operation: Mapped[str] = mapped_column(sa.String, nullable=False)
    scenario_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    scenario_name: Mapped[str | None] = mapped_column(sa.String)
    written_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    positions: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


def history_table(
    table: sa.Table, metadata: sa.MetaData | None = None, *, extra: tuple[sa.Column, ...] = ()
) -> sa.Table:
    """``<table>_history`` for ``table``, on ``metadata`` (default: the table's)."""
    key = [c.name for c in table.primary_key.columns]
    columns = [sa.Column(c.name, c.type, nullable=c.name not in key, info={"copied": True}) for c in table.columns]
    return sa.Table(
        f"{table.name}_history",
        metadata if metadata is not None else table.metadata,
        *columns,
        *extra,
        sa.Column("write_id", sa.Uuid, nullable=False),
        sa.Column("replaced_at", Timestamp, nullable=False),
        sa.Column("operation", sa.String, nullable=False),
        sa.PrimaryKeyConstraint(*key, "write_id"),
    )


#: History tables by the name of the table they keep versions of.
HISTORY: dict[str, sa.Table] = {et.table_name: history_table(et.model.__table__) for et in ENTITY_TYPES}
SCENARIOS_HISTORY = HISTORY[Scenario.__tablename__] = history_table(
    Scenario.__table__, extra=(sa.Column("tags", JSONType),)
)
LINKS_HISTORY = HISTORY[ScenarioEntity.__tablename__] = history_table(ScenarioEntity.__table__)

# A type registered at run time (registry.register) gets its history table
# on a MetaData of its own: its Alembic revision creates both tables.
_LATE = sa.MetaData(naming_convention=Base.metadata.naming_convention)
_LATE_HISTORY: dict[str, sa.Table] = {}


def history_of(table: sa.Table) -> sa.Table:
    """The history table of ``table``."""
    found = HISTORY.get(table.name)
    if found is None:
        found = _LATE_HISTORY.get(table.name)
    if found is None:
        found = _LATE_HISTORY[table.name] = history_table(table, _LATE)
    return found


def copied_columns(history: sa.Table) -> list[sa.Column]:
    """The columns of ``history`` that copy its table's."""
    return [c for c in history.columns if c.info.get("copied")]
