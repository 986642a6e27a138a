"""The audit trail: record an operation, read the events back.

A write path records its operation with one context manager::

    with audited(session, "save", scenario=name) as event:
        summary = ...  # the write, in the session's transaction
        event.counts = summary.saved

When the block succeeds, the event (outcome ``committed``) is inserted in the
session's transaction: it commits with the write, or not at all. When the
block raises, the session is rolled back (nothing of the write stays), the
event (outcome ``refused``, with the error) is inserted and committed in a
transaction of its own on the same session, and the original exception is
raised unchanged. An operation called inside another (the save an import
makes) is part of the outer one: only the outer one is recorded.

Who acts comes from :func:`healthsim_models.audit.acting_as` (the CLI sets
``cli`` and the OS user, the MCP server ``mcp`` and the client's name; the
default is ``python`` and the OS user). Reads are recorded when the store's
``audit.reads`` setting is on (:func:`reads_audited`; it is changed like
every setting, by :mod:`healthsim_state.store.settings`). Nothing here changes
or deletes an event.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import inspect
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from healthsim_models.audit import (
    COMMITTED,
    OPERATIONS,
    READ_OPERATIONS,
    REFUSED,
    AuditEvent,
    error_text,
    event_scope,
    has_audit_log,
    in_event,
    insert_event,
)
from healthsim_models.errors import InvalidArgumentError
from healthsim_models.settings import AUDIT_READS, current_value
from healthsim_models.state import Scenario

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_LOG = AuditEvent.__table__


@dataclass
class Recording:
    """The event an audited block fills in; recorded when the block ends.

    ``skip``: the block changed nothing after all (a dry run), so no event is recorded.
    """

    operation: str
    scenario_name: str | None = None
    scenario_id: uuid.UUID | None = None
    counts: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    write_id: uuid.UUID | None = None
    skip: bool = False
    recorded: bool = False

    def wrote(self, summary: Any) -> Any:
        """Take scenario, per-type counts and write id from a save's summary; returns the summary."""
        self.scenario_id, self.scenario_name, self.counts = summary.id, summary.name, dict(summary.saved)
        self.write_id = summary.write_id
        return summary

    def record(self, connection: Connection, outcome: str, error: str | None = None) -> None:
        self.recorded = True
        if has_audit_log(connection):  # a store kept below revision 0006 has no trail
            insert_event(
                connection,
                self.operation,
                outcome=outcome,
                scenario_id=self.scenario_id,
                scenario_name=self.scenario_name,
                counts={k: v for k, v in self.counts.items() if v},
                details=self.details,
                error=error,
                write_id=self.write_id,
            )


#: The event of the audited operation running in this context (the outermost).
_RUNNING: ContextVar[Recording | None] = ContextVar("healthsim_running_event", default=None)


@contextmanager
def audited(
    session: Session,
    operation: str,
    *,
    scenario: str | uuid.UUID | None = None,
    details: Mapping[str, Any] | None = None,
) -> Iterator[Recording]:
    """Record ``operation`` as one event: in the session's transaction when the block succeeds,
    in a transaction of its own (after rolling the session back) when it raises."""
    if operation not in OPERATIONS:
        raise InvalidArgumentError(f"unknown audit operation {operation!r}; known: {', '.join(OPERATIONS)}")
    event = Recording(operation, details=dict(details or {}))
    if isinstance(scenario, uuid.UUID):
        event.scenario_id = scenario
    else:
        event.scenario_name = scenario
    if in_event():  # part of an operation that records itself
        yield event
        return
    running = _RUNNING.set(event)
    try:
        with event_scope():
            yield event
    except Exception as exc:
        if not event.recorded:
            _record_refusal(session, event, exc)
        raise
    finally:
        _RUNNING.reset(running)
    if not event.skip and not event.recorded:
        event.record(session.connection(), COMMITTED)


def record_running(connection: Connection, summary: Any) -> Recording | None:
    """Record the running operation's event now, in ``connection``'s
    transaction, filled from the save ``summary`` of the write it is about
    to commit there: for a write that commits on a connection of its own
    (the batch writer's publish), so that the event commits with it, also
    when the write is part of an operation (an import) that would record it
    later in its caller's session. Returns the event recorded (None: none is
    running, or it is recorded already); should that transaction not commit,
    set its ``recorded`` back to False, so a refusal is recorded instead."""
    event = _RUNNING.get()
    if event is None or event.recorded:
        return None
    event.wrote(summary)
    event.record(connection, COMMITTED)
    return event


def audited_call(
    operation: str,
    *,
    scenario: str | None = None,
    details: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None,
    describe: Callable[[Recording, Any, dict[str, Any]], object] | None = None,
    skip: Callable[[dict[str, Any]], bool] | None = None,
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorate a function whose first argument is ``session`` so that each call is one
    :func:`audited` operation: ``scenario`` names the argument holding the scenario,
    ``details(arguments)`` and ``describe(event, result, arguments)`` fill the event in, and
    ``skip(arguments)`` says when the call changes nothing (a dry run)."""

    def decorate(function: Callable[P, T]) -> Callable[P, T]:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
            with audited(
                arguments["session"],
                operation,
                scenario=arguments.get(scenario) if scenario else None,
                details=details(arguments) if details else None,
            ) as event:
                result = function(*args, **kwargs)
                event.skip = bool(skip and skip(arguments))
                if describe is not None:
                    describe(event, result, arguments)
                return result

        return call

    return decorate


# -- what the audited calls of the formats and the reference loader record ------------


def source_details(arguments: dict[str, Any]) -> dict[str, Any]:
    """The file or folder a call reads, as the event's details."""
    for key in ("source", "directory", "path"):
        if key in arguments:
            value = arguments[key]
            if isinstance(value, str | os.PathLike):
                return {"source": os.fspath(value)}
            return {"source": str(getattr(value, "name", "(stream)"))}
    return {}


def reference_details(arguments: dict[str, Any]) -> dict[str, Any]:
    """The dataset a reference load names, and its file."""
    return {"dataset": arguments["name"], **source_details(arguments)}


def from_save(event: Recording, summary: Any, arguments: dict[str, Any]) -> None:
    """A call that returns a :class:`~healthsim_state.store.repository.SaveSummary`."""
    event.wrote(summary)


def from_synthea(event: Recording, summary: Any, arguments: dict[str, Any]) -> None:
    event.scenario_id, event.counts = uuid.UUID(summary.scenario_id), dict(summary.entities)


def from_legacy(event: Recording, reports: list[Any], arguments: dict[str, Any]) -> None:
    """Per type, the entities of the scenarios the migration wrote; per status, its files."""
    migrated = [r.scenario for r in reports if r.status == "migrated"]
    event.details["files"] = {
        status: sum(r.status == status for r in reports) for status in {r.status for r in reports}
    }
    event.details["scenarios"] = migrated
    if migrated:
        rows = arguments["session"].execute(sa.select(Scenario.entity_counts).where(Scenario.name.in_(migrated)))
        for counts in rows.scalars():
            for name, count in counts.items():
                event.counts[name] = event.counts.get(name, 0) + count


def from_reference_load(event: Recording, result: Any, arguments: dict[str, Any]) -> None:
    event.details.update(dataset=result.dataset, release=result.release, sha256=result.sha256)
    event.counts = {result.dataset: result.row_count}


def record_refused(
    session: Session, operation: str, exc: Exception, *, scenario: str | uuid.UUID | None = None
) -> None:
    """Record ``operation`` refused by ``exc``, for a write whose work is not one
    :func:`audited` block (a batch writer's adds and the code between them). Rolls
    ``session`` back and commits the event alone on it; nothing when the write is part
    of an audited operation (that one records its own refusal)."""
    if operation not in OPERATIONS:
        raise InvalidArgumentError(f"unknown audit operation {operation!r}; known: {', '.join(OPERATIONS)}")
    if in_event():
        return
    event = Recording(operation)
    if isinstance(scenario, uuid.UUID):
        event.scenario_id = scenario
    else:
        event.scenario_name = scenario
    _record_refusal(session, event, exc)


def _record_refusal(session: Session, event: Recording, exc: Exception) -> None:
    """Roll the refused write back, then commit its event alone on the same session (on DuckDB
    the one writer of the file). A failure to record is logged, never raised in place of ``exc``."""
    try:
        session.rollback()
        event.record(session.connection(), REFUSED, error_text(exc))
        session.commit()
    except Exception as failure:
        session.rollback()
        logger.warning(
            "the refused %s could not be recorded in the audit log: %s", event.operation, _first_line(failure)
        )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def record_read(
    session: Session,
    operation: str,
    *,
    scenario: str | uuid.UUID | None = None,
    counts: Mapping[str, int] | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Record a read in the session's transaction (it commits with the session) when
    reads are audited; nothing when they are not, or inside an audited operation."""
    if operation not in READ_OPERATIONS:
        raise InvalidArgumentError(f"{operation!r} is not a read; reads: {', '.join(sorted(READ_OPERATIONS))}")
    if in_event() or not reads_audited(session):
        return
    event = Recording(operation, counts=dict(counts or {}), details=dict(details or {}))
    if isinstance(scenario, uuid.UUID):
        event.scenario_id = scenario
    else:
        event.scenario_name = scenario
    event.record(session.connection(), COMMITTED)


def record_read_apart(engine: Engine, operation: str, *, reader: Engine | None = None, **fields: Any) -> None:
    """:func:`record_read` in a transaction of its own on ``engine``, for reads that have no
    writable session (a read-only query). ``reader``: an engine of read-only connections to read
    the setting with, so that the file is opened read-write only when reads are audited."""
    if in_event():
        return
    with (reader or engine).connect() as connection:
        if not reads_audited(connection):
            return
    with Session(engine) as session:
        record_read(session, operation, **fields)
        session.commit()


# -- the setting of reads ---------------------------------------------------------


def reads_audited(session: Session | Connection) -> bool:
    """Whether the store's ``audit.reads`` setting is on (default off; a store without
    an audit trail records nothing)."""
    connection = session.connection() if isinstance(session, Session) else session
    return has_audit_log(connection) and current_value(connection, AUDIT_READS) == "true"


# -- reading the trail ---------------------------------------------------------------


@dataclass(frozen=True)
class AuditRecord:
    """One event as :func:`audit_events` returns it."""

    id: uuid.UUID
    occurred_at: dt.datetime
    operation: str
    scenario_id: uuid.UUID | None
    scenario_name: str | None
    counts: dict[str, int]
    details: dict[str, Any] | None
    actor: str
    interface: str
    database_user: str | None
    outcome: str
    error: str | None
    write_id: uuid.UUID | None


def audit_events(
    session: Session,
    *,
    since: dt.datetime | None = None,
    scenario: str | None = None,
    operation: str | None = None,
    limit: int | None = None,
) -> list[AuditRecord]:
    """Events newest first: those at or after ``since`` (an aware time; a naive one is UTC),
    about ``scenario`` (its name or id), of ``operation``, at most ``limit``."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidArgumentError(f"limit must be a whole number >= 0 or None, got {limit!r}")
    if operation is not None and operation not in OPERATIONS:
        raise InvalidArgumentError(f"unknown audit operation {operation!r}; known: {', '.join(OPERATIONS)}")
    query = sa.select(_LOG).order_by(_LOG.c.occurred_at.desc(), _LOG.c.id.desc())
    if since is not None:
        query = query.where(_LOG.c.occurred_at >= (since if since.tzinfo else since.replace(tzinfo=dt.UTC)))
    if scenario is not None:
        match = [_LOG.c.scenario_name == scenario]
        with contextlib.suppress(ValueError):  # not an id: a name only
            match.append(_LOG.c.scenario_id == uuid.UUID(scenario))
        query = query.where(sa.or_(*match))
    if operation is not None:
        query = query.where(_LOG.c.operation == operation)
    if limit is not None:
        query = query.limit(limit)
    return [AuditRecord(**row) for row in session.execute(query).mappings()]
