"""History: the versions writes replace, the writes themselves, reads at a past time, retention.

A write (save, add, delete, tag, untag, restore, prune) gets a
:class:`Versioning`: its write id and time. Before a batch's upsert, the
dialect copies the stored rows the batch changes into the type's history
table with one ``INSERT ... SELECT`` (:func:`snapshot_sql`); deletes copy
what they delete (:func:`snapshot_deleted`); scenario rows and links are
copied before a write changes them. The ``writes`` row goes in with the
write's other statements, so a write and its history commit together.

A row stored unchanged (equal in every column but ``created_at`` and
``updated_at``) is neither copied nor rewritten: it keeps its
``updated_at``, which is when its content was written. ``created_at`` is
left out because a document without provenance gets the load time there on
every save.

Versions are intervals: the current row is valid from its ``updated_at``; a
history row from its ``updated_at`` to its ``replaced_at``. The state at a
time T is, per entity, the version whose interval holds T.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthsim_models.base import JSONType, Timestamp
from healthsim_models.errors import InvalidArgumentError
from healthsim_models.history import (
    DELETE,
    HISTORY,
    LINKS_HISTORY,
    SCENARIOS_HISTORY,
    UPDATE,
    Write,
    copied_columns,
    history_of,
)
from healthsim_models.settings import HISTORY_ENABLED, HISTORY_KEEP_DAYS, Setting, current_value, stored_value
from healthsim_models.settings import HISTORY_PRUNED_BEFORE as PRUNED_BEFORE
from healthsim_models.state import Scenario, ScenarioEntity

_LINKS = ScenarioEntity.__table__
_SCENARIOS = Scenario.__table__
_WRITES = Write.__table__
_SETTINGS = Setting.__table__

#: Columns left out when deciding whether a stored row changed (see the module docstring).
UNCOMPARED = ("id", "created_at", "updated_at")


@dataclass(frozen=True)
class Versioning:
    """One write: its id, its time, and whether it keeps the versions it replaces."""

    write_id: uuid.UUID
    at: dt.datetime
    keep: bool = True

    def literals(self, operation: str) -> str:
        """``write_id, replaced_at, operation`` as SQL literals (for statements without parameters)."""
        return f"CAST('{self.write_id}' AS UUID), CAST('{self.at.isoformat()}' AS TIMESTAMPTZ), '{operation}'"


def start_write(session: Session, at: dt.datetime) -> Versioning:
    """A new write at ``at``, keeping history when the store's setting says so."""
    return Versioning(uuid.uuid4(), at, keep=history_enabled(session))


def record_write(
    session: Session,
    versioning: Versioning,
    operation: str,
    scenario_id: uuid.UUID | None = None,
    scenario_name: str | None = None,
    positions: dict[str, int] | None = None,
) -> None:
    """The ``writes`` row of ``versioning``, in the caller's transaction."""
    session.execute(
        sa.insert(_WRITES).values(
            id=versioning.write_id,
            operation=operation,
            scenario_id=scenario_id,
            scenario_name=scenario_name,
            written_at=versioning.at,
            positions=sa.null() if positions is None else positions,  # SQL NULL, not JSON null
        )
    )


# -- snapshots ------------------------------------------------------------------


def _compared(table: sa.Table) -> list[sa.Column]:
    return [c for c in table.columns if c.name not in UNCOMPARED]


#: An expression for a column's value, given the column.
Value = Callable[[sa.Column], str]


def changed_condition(table: sa.Table, stored: Value, new: Value) -> str:
    """SQL true when the stored row (``stored(column)``: its value's
    expression) differs from the new one (``new(column)``) in a compared column."""
    return " OR ".join(f"{stored(c)} IS DISTINCT FROM {new(c)}" for c in _compared(table))


def snapshot_sql(
    table: sa.Table,
    versioning: Versioning,
    batch: str,
    new: Value,
    *,
    lock: bool,
    stored: Value = lambda c: f"t.{c.name}",
) -> str:
    """Copy the stored rows of ``table`` (alias ``t``; ``stored``: a column's
    value to compare) that the batch ``batch`` (alias ``b``; ``new``) changes
    into the history table, as replaced by an update. ``lock``: lock those
    rows (FOR UPDATE) in id order, the order the upsert locks them in. A row
    this write replaced already (the same entity in an earlier batch) keeps
    its first copy: the version stored before the write."""
    history = history_of(table)
    names = ", ".join(c.name for c in table.columns)
    copied = ", ".join(f"t.{c.name}" for c in table.columns)
    locking = " ORDER BY t.id FOR UPDATE OF t" if lock else ""
    return (
        f"INSERT INTO {history.name} ({names}, write_id, replaced_at, operation) "
        f"SELECT {copied}, {versioning.literals(UPDATE)} FROM {table.name} t JOIN {batch} b ON t.id = {new(table.c.id)} "
        f"WHERE {changed_condition(table, stored, new)}{locking} ON CONFLICT DO NOTHING"
    )


def unchanged_guard(table: sa.Table) -> str:
    """The WHERE of an upsert's DO UPDATE: rewrite only a row whose content changes."""
    return changed_condition(table, lambda c: f"{table.name}.{c.name}", lambda c: f"excluded.{c.name}")


def _copy(
    session: Session,
    table: sa.Table,
    history: sa.Table,
    where: sa.ColumnElement[bool],
    versioning: Versioning,
    operation: str,
    extra: dict[str, sa.ColumnElement[Any]] | None = None,
) -> None:
    extra = extra or {}
    values = [table.c[c.name] for c in copied_columns(history)]
    query = sa.select(
        *values,
        *(v.label(k) for k, v in extra.items()),
        sa.literal(versioning.write_id, sa.Uuid),
        sa.literal(versioning.at, Timestamp),
        sa.literal(operation, sa.String),
    ).where(where)
    names = [c.name for c in values] + list(extra) + ["write_id", "replaced_at", "operation"]
    session.execute(sa.insert(history).from_select(names, query))


def snapshot_deleted(session: Session, table: sa.Table, where: sa.ColumnElement[bool], versioning: Versioning) -> None:
    """Copy the rows of ``table`` matching ``where``, about to be deleted, into its history."""
    if versioning.keep:
        _copy(session, table, history_of(table), where, versioning, DELETE)


def snapshot_links(
    session: Session,
    scenario_id: uuid.UUID,
    versioning: Versioning,
    operation: str,
    part: sa.ColumnElement[bool] | None = None,
) -> None:
    """Copy the scenario's links, about to be removed, into their history (``part``: those matching it)."""
    if versioning.keep:
        where = _LINKS.c.scenario_id == scenario_id
        _copy(session, _LINKS, LINKS_HISTORY, where if part is None else sa.and_(where, part), versioning, operation)


def snapshot_scenario(
    session: Session, scenario_id: uuid.UUID, tags: list[str], versioning: Versioning, operation: str
) -> None:
    """Copy the scenario's row, with its ``tags``, before the write changes or deletes it."""
    if versioning.keep:
        _copy(
            session,
            _SCENARIOS,
            SCENARIOS_HISTORY,
            _SCENARIOS.c.id == scenario_id,
            versioning,
            operation,
            {"tags": sa.cast(sa.literal(json.dumps(tags)), JSONType)},
        )


# -- reads at a past time ---------------------------------------------------------


def check_as_of(session: Session, at: Any) -> dt.datetime:
    """``at`` as an aware datetime (naive: UTC); refused when before what pruning kept."""
    if not isinstance(at, dt.datetime):
        raise InvalidArgumentError(f"as_of must be a datetime, got {type(at).__name__}")
    at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    pruned = stored_value(session.connection(), PRUNED_BEFORE)
    if pruned is not None and at < dt.datetime.fromisoformat(pruned):
        raise InvalidArgumentError(
            f"history before {pruned} was pruned; the store cannot say what it held at {at.isoformat()}"
        )
    return at


def scenario_as_of(session: Session, name_or_id: str | uuid.UUID, at: dt.datetime) -> dict[str, Any] | None:
    """The scenario's row (with ``tags``) valid at ``at``, found by name or id, or None."""
    current_tags = sa.literal(None, JSONType).label("tags")
    branches = []
    for table, tags, extra in (
        (_SCENARIOS, current_tags, []),
        (SCENARIOS_HISTORY, SCENARIOS_HISTORY.c.tags, [SCENARIOS_HISTORY.c.replaced_at > at]),
    ):
        match = [table.c.name == str(name_or_id)]
        if isinstance(name_or_id, uuid.UUID):
            match = [table.c.id == name_or_id]
        branches.append(
            sa.select(
                *(table.c[c.name] for c in _SCENARIOS.columns), tags, sa.literal(table is _SCENARIOS).label("current")
            ).where(sa.or_(*match), table.c.updated_at <= at, *extra)
        )
    rows = session.execute(sa.union_all(*branches)).mappings().all()
    if not rows and not isinstance(name_or_id, uuid.UUID):
        try:
            return scenario_as_of(session, uuid.UUID(str(name_or_id)), at)
        except ValueError:
            return None
    return dict(rows[0]) if rows else None


def membership_as_of(
    session: Session, scenario_id: uuid.UUID, at: dt.datetime
) -> tuple[sa.Table, list[Any], dict[str, int]]:
    """Where the scenario's links at ``at`` are: the links table or its history
    (with the conditions that pick the generation), and per type the bound
    below which their positions were linked by then."""
    bounds = session.execute(
        sa.select(_WRITES.c.positions)
        .where(
            _WRITES.c.scenario_id == scenario_id,
            _WRITES.c.written_at <= at,
            _WRITES.c.positions.is_not(None),
        )
        .order_by(_WRITES.c.written_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    # The links alive at ``at`` were removed by the first later write that removed any; none: they are current.
    ended_by = session.execute(
        sa.select(LINKS_HISTORY.c.write_id)
        .where(LINKS_HISTORY.c.scenario_id == scenario_id, LINKS_HISTORY.c.replaced_at > at)
        .order_by(LINKS_HISTORY.c.replaced_at)
        .limit(1)
    ).scalar_one_or_none()
    if ended_by is None:
        return _LINKS, [_LINKS.c.scenario_id == scenario_id], dict(bounds or {})
    return (
        LINKS_HISTORY,
        [LINKS_HISTORY.c.scenario_id == scenario_id, LINKS_HISTORY.c.write_id == ended_by],
        dict(bounds or {}),
    )


def versions_as_of(table: sa.Table, ids: Any, at: dt.datetime) -> sa.Select:
    """The versions of the entities ``ids`` (a select of ids) valid at ``at``."""
    history = history_of(table)
    return sa.union_all(
        sa.select(*table.c).where(table.c.id.in_(ids), table.c.updated_at <= at),
        sa.select(*copied_columns(history)).where(
            history.c.id.in_(ids), history.c.updated_at <= at, history.c.replaced_at > at
        ),
    )


def scenario_rows_as_of(
    session: Session,
    table: sa.Table,
    entity_type: str,
    links: tuple[sa.Table, list[Any], dict[str, int]],
    at: dt.datetime,
) -> list[dict[str, Any]]:
    """The scenario's rows of ``table`` as they were at ``at``, in saved order."""
    source, where, bounds = links
    bound = bounds.get(entity_type, 0)
    if not bound:
        return []
    members = (
        sa.select(source.c.entity_id, source.c.position)
        .where(*where, source.c.entity_type == entity_type, source.c.position < bound)
        .subquery()
    )
    versions = versions_as_of(table, sa.select(members.c.entity_id), at).subquery()
    query = (
        sa.select(*(versions.c[c.name] for c in table.columns))
        .join(members, members.c.entity_id == versions.c.id)
        .order_by(members.c.position)
    )
    return [dict(row) for row in session.execute(query).mappings()]


@dataclass
class Version:
    """One version of an entity: valid from ``valid_from`` until ``valid_to``
    (None: the current one), ended by the write ``write_id`` with ``operation``."""

    row: dict[str, Any]
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    write_id: uuid.UUID | None
    operation: str | None


def versions(session: Session, table: sa.Table, entity_id: uuid.UUID) -> list[Version]:
    """Every kept version of one entity, oldest first, the current one (if stored) last."""
    history = history_of(table)
    found = [
        Version(
            {c.name: row[c.name] for c in table.columns},
            row["updated_at"],
            row["replaced_at"],
            row["write_id"],
            row["operation"],
        )
        for row in session.execute(
            sa.select(history).where(history.c.id == entity_id).order_by(history.c.replaced_at)
        ).mappings()
    ]
    current = session.execute(sa.select(table).where(table.c.id == entity_id)).mappings().one_or_none()
    if current is not None:
        found.append(Version(dict(current), current["updated_at"], None, None, None))
    return found


def entity_ids(
    session: Session, table: sa.Table, match: Callable[[sa.Table], sa.ColumnElement[bool]]
) -> list[uuid.UUID]:
    """Ids of the entities of ``table`` that ``match`` now or in a kept version."""
    history = history_of(table)
    query = sa.union(sa.select(table.c.id).where(match(table)), sa.select(history.c.id).where(match(history)))
    return sorted(session.execute(query).scalars())


# -- retention --------------------------------------------------------


def history_enabled(session: Session) -> bool:
    return current_value(session.connection(), HISTORY_ENABLED) != "false"


def keep_days(session: Session) -> int | None:
    value = current_value(session.connection(), HISTORY_KEEP_DAYS)
    return None if value == "all" else int(value)


def prune(session: Session, before: dt.datetime, versioning: Versioning) -> dict[str, int]:
    """Delete the versions replaced before ``before`` from every history table;
    rows deleted per table (those with any). Reads at times before
    ``before`` are refused from then on."""
    deleted = {}
    for history in HISTORY.values():
        count = session.execute(sa.delete(history).where(history.c.replaced_at < before)).rowcount
        if count:
            deleted[history.name] = count
    # Writes before ``before`` no longer bound any read: only the positions of the
    # last one per scenario are needed, and they stay.
    pruned = stored_value(session.connection(), PRUNED_BEFORE)
    if pruned is None or dt.datetime.fromisoformat(pruned) < before:
        session.execute(sa.delete(_SETTINGS).where(_SETTINGS.c.key == PRUNED_BEFORE))
        session.execute(
            sa.insert(_SETTINGS).values(key=PRUNED_BEFORE, value=before.isoformat(), updated_at=versioning.at)
        )
    record_write(session, versioning, "prune")
    return deleted
