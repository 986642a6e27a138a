"""The audit trail's table, its vocabulary, and who is acting.

``audit_log`` holds one row per operation that changed the store (and, when
reads are audited, per read). Rows are only ever inserted: revision 0006
gives PostgreSQL a trigger refusing UPDATE, DELETE and TRUNCATE, and no
function of the store changes or removes a row. The recording API is
:mod:`healthsim_state.store.audit`; this module has what the models layer
needs itself (schema upgrades are audited by :mod:`healthsim_models.schema_version`).
"""

from __future__ import annotations

import datetime as dt
import getpass
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthsim_models.base import Base, JSONType, Timestamp, server_only

#: What an event's ``operation`` may be, and what it means.
OPERATIONS: dict[str, str] = {
    "save": "a scenario saved (created, or replaced with overwrite)",
    "add": "entities added to an existing scenario",
    "delete": "a scenario deleted, with the entities no other scenario holds",
    "tag": "tags added to a scenario",
    "untag": "tags removed from a scenario",
    "import_json": "a versioned JSON document imported as a scenario",
    "import_synthea": "a Synthea CSV folder imported as a scenario",
    "migrate_legacy": "legacy scenario and workspace files migrated",
    "reference_load": "a reference dataset loaded",
    "schema_upgrade": "the schema upgraded by one or more revisions",
    "schema_downgrade": "the schema downgraded by one or more revisions",
    "history_prune": "entity history older than the retention removed",
    "scenario_restore": "a scenario restored from history",
    "setting": "a store setting changed (details: the setting, its new value and the one it replaced)",
    "store_restore": "the whole store restored from a backup (details: the backup; counts: rows per table)",
    "store_copy": "the whole store copied here from another database (details: the source; counts: rows per table)",
    "omop_build": "the OMOP CDM tables built from scenarios (details: schema, scenarios; counts: rows per table)",
    "star_build": "the star schema built from scenarios (details: schema, scenarios; counts: rows per table)",
    "load": "read: a scenario loaded",
    "export": "read: a scenario exported",
    "query": "read: a read-only SQL query run",
    "mcp_read": "read: an MCP read tool called (details: the tool)",
    "lake_export": "read: scenarios exported to a lake (details: target, format; counts: rows per dataset)",
    "store_backup": "read: the whole store backed up (details: the backup folder; counts: rows per table)",
}
#: Operations that only read; recorded when reads are audited.
READ_OPERATIONS = frozenset({"load", "export", "query", "mcp_read", "lake_export", "store_backup"})
#: Where a call came from.
INTERFACES = ("python", "cli", "mcp")
COMMITTED = "committed"
REFUSED = "refused"
#: Longest error text kept; a ValidationError can list thousands of problems.
MAX_ERROR_TEXT = 4000


class AuditEvent(Base):
    """One operation on the store: what, when, by whom, through which interface, and how it ended."""

    __tablename__ = "audit_log"
    __table_args__ = (
        server_only(sa.Index(None, "occurred_at")),
        server_only(sa.Index(None, "scenario_name")),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    occurred_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, server_default=sa.func.now())
    operation: Mapped[str] = mapped_column(sa.String, nullable=False)
    scenario_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    scenario_name: Mapped[str | None] = mapped_column(sa.String)
    # Entities per type the operation wrote (or read): {"patient": 3, ...}.
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, server_default=sa.text("'{}'"))
    # What else identifies the operation: revisions, dataset, file, tool, setting.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    actor: Mapped[str] = mapped_column(sa.String, nullable=False)
    interface: Mapped[str] = mapped_column(sa.String, nullable=False)
    # PostgreSQL's current_user; NULL on DuckDB, which has no users.
    database_user: Mapped[str | None] = mapped_column(sa.String)
    outcome: Mapped[str] = mapped_column(sa.String, nullable=False)
    error: Mapped[str | None] = mapped_column(sa.Text)
    # The write id the entity history gives a save, tying its history rows to this event.
    write_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)


# -- who is acting ----------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who calls (an OS user, an MCP client's name) and through which interface."""

    interface: str
    name: str


def os_user() -> str:
    """The operating system user running this process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container without /etc/passwd entry)
        import os

        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


_ACTOR: ContextVar[Actor | None] = ContextVar("healthsim_audit_actor", default=None)
# True inside an audited operation: the operations it calls are part of it, not events of their own.
_IN_EVENT: ContextVar[bool] = ContextVar("healthsim_audit_in_event", default=False)


def current_actor() -> Actor:
    """The actor set by :func:`acting_as`, else the Python API and the OS user."""
    return _ACTOR.get() or Actor("python", os_user())


@contextmanager
def acting_as(interface: str, name: str | None = None) -> Iterator[Actor]:
    """Attribute the events recorded inside the block to ``interface`` and ``name`` (default: the OS user)."""
    if interface not in INTERFACES:
        raise ValueError(f"interface must be one of {', '.join(INTERFACES)}, got {interface!r}")
    actor = Actor(interface, name or os_user())
    token = _ACTOR.set(actor)
    try:
        yield actor
    finally:
        _ACTOR.reset(token)


def in_event() -> bool:
    """Whether an audited operation is already running in this context."""
    return _IN_EVENT.get()


@contextmanager
def event_scope() -> Iterator[None]:
    """Mark the block as part of one audited operation."""
    token = _IN_EVENT.set(True)
    try:
        yield
    finally:
        _IN_EVENT.reset(token)


# -- rows -----------------------------------------------------------------------------


def error_text(exc: BaseException) -> str:
    """What a refused event keeps of its error: the class and the message, bounded."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


def _storable(value: Any) -> Any:
    """``value`` with text every backend stores: a NUL or a lone surrogate (from the very input a
    refused write was refused for) written escaped, so that the refusal itself can be recorded."""
    if isinstance(value, str):
        return value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, Mapping):
        return {_storable(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def has_audit_log(connection: sa.Connection) -> bool:
    """Whether the database has the table (not before revision 0006)."""
    return sa.inspect(connection).has_table(AuditEvent.__tablename__)


def insert_event(
    connection: sa.Connection,
    operation: str,
    *,
    outcome: str = COMMITTED,
    scenario_id: uuid.UUID | None = None,
    scenario_name: str | None = None,
    counts: Mapping[str, int] | None = None,
    details: Mapping[str, Any] | None = None,
    error: str | None = None,
    write_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Insert one event in ``connection``'s transaction, attributed to :func:`current_actor`; its id."""
    if operation not in OPERATIONS:
        raise ValueError(f"unknown audit operation {operation!r}; known: {', '.join(OPERATIONS)}")
    actor = current_actor()
    event_id = uuid.uuid4()
    # The database names its own user: PostgreSQL's current_user (a role may be shared by a team's
    # logins, but it is what privileges see). DuckDB has no users.
    user = sa.literal_column("current_user") if connection.dialect.name == "postgresql" else sa.null()
    statement = sa.insert(AuditEvent.__table__).values(
        id=event_id,
        occurred_at=dt.datetime.now(dt.UTC),
        operation=operation,
        scenario_id=scenario_id,
        scenario_name=_storable(scenario_name),
        counts=_storable(dict(counts or {})),
        details=_storable(details) if details else sa.null(),
        actor=_storable(actor.name),
        interface=actor.interface,
        database_user=user,
        outcome=outcome,
        error=_storable(error),
        write_id=write_id,
    )
    # A reader's session may have left its connection streaming (server-side cursors on
    # PostgreSQL), which an INSERT cannot use; options given here win over the connection's.
    connection.execute(statement, execution_options={"stream_results": False, "yield_per": 0})
    return event_id
