"""What a database backend must provide for the store: :class:`StoreDialect`."""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session

from healthsim_models.errors import ConfigurationError, InvalidArgumentError
from healthsim_models.location import mask_url
from healthsim_state.store.batches import LINKS, Links, Page, ScenarioRef, update_clause
from healthsim_state.store.history import Versioning, snapshot_sql, unchanged_guard
from healthsim_state.store.readonly import Cancellation, QueryResult


class StoreDialect(abc.ABC):
    """Every operation and capability the store has in two forms, one per backend.

    Writes and reads run inside the caller's transaction. A subclass sets
    the capabilities and implements each abstract method; it is then an
    entry of :data:`healthsim_state.store.dialects.DIALECTS`.
    """

    #: The SQLAlchemy dialect name (``engine.dialect.name``) it serves.
    name: ClassVar[str]
    #: Rows and keys can be locked until the transaction ends (SELECT ... FOR
    #: UPDATE, advisory locks), for writers that run side by side. Without it
    #: the database has one writer at a time and nothing is locked.
    row_locks: ClassVar[bool]
    #: TRY_CAST exists: a failed conversion gives NULL instead of an error.
    try_cast: ClassVar[bool]
    #: Reads beside a read-only query in this process need read-only
    #: connections of their own (:meth:`read_only_connection`).
    own_read_only_connections: ClassVar[bool] = False

    # -- writes -----------------------------------------------------------------

    @abc.abstractmethod
    def upsert(
        self, session: Session, table: sa.Table, rows: Sequence[dict[str, Any]], *, versioning: Versioning | None = None
    ) -> None:
        """Upsert ``rows`` (every column, ``id`` unique within the batch, latest
        wins). UUID columns hold text (32 hex digits or the dashed form), JSON
        columns hold JSON text. A stored row the batch leaves unchanged
        (:func:`~healthsim_state.store.history.unchanged_guard`) is not
        rewritten; with ``versioning`` (keeping history), the stored rows the
        batch changes are first copied into the history table
        (:func:`~healthsim_state.store.history.snapshot_sql`)."""

    @abc.abstractmethod
    def link(self, session: Session, scenario_id: uuid.UUID, links: Links) -> None:
        """Link entities to the scenario: one statement for every type in
        ``links``. A link the scenario already has keeps its position."""

    # -- reads of a scenario's rows ------------------------------------------------

    @abc.abstractmethod
    def iter_scenario_rows(
        self,
        session: Session,
        table: sa.Table,
        scenario_id: uuid.UUID,
        entity_type: str,
        batch_size: int,
        page: Page = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """The rows of ``table`` linked to the scenario, in saved order, as dicts
        (UUID and JSON values may come back as text, date-times as naive UTC),
        in lists of at most ``batch_size`` rows streamed from the database so
        the whole type is never in memory; only the rows of ``page`` when given
        (skipped rows are never fetched)."""

    @abc.abstractmethod
    def scenario_arrow(self, session: Session, table: sa.Table, scenario: ScenarioRef, entity_type: str) -> pa.Table:
        """The scenario's rows of ``table`` as a pyarrow Table with the table's
        columns, UUID and JSON as text (``scenario``: its id, or its name; no
        rows when no scenario has that name)."""

    # -- locks and errors -----------------------------------------------------------

    @abc.abstractmethod
    def lock_keys(self, session: Session, keys: Sequence[str]) -> None:
        """Take turns with other writers holding any of ``keys`` (in the order
        given) until the transaction ends."""

    @abc.abstractmethod
    def lock_rows(self, session: Session, table: sa.Table, where: sa.ColumnElement[bool]) -> None:
        """Lock the rows of ``table`` matching ``where``, in id order (the order
        upserts lock rows in), until the transaction ends."""

    @abc.abstractmethod
    def conflict_reason(self, error: BaseException) -> str | None:
        """Why the driver error ``error`` is a collision with another writer
        that a re-run may get past ("deadlock detected", ...), else None."""

    @abc.abstractmethod
    def violated_constraint(self, exc: sa.exc.IntegrityError) -> str | None:
        """The name of the constraint an integrity error names, when the database says."""

    # -- CSV files into staging tables (reference data) ------------------------------

    @abc.abstractmethod
    def stage_csv(
        self, connection: sa.Connection, staging: str, columns: list[str], path: Path, *, numbered: bool = False
    ) -> None:
        """Copy the CSV file's rows, every cell as text, into a new temporary
        table named ``staging`` with ``columns``, keeping each row's place in
        the file for :meth:`staged_line`; ``numbered``: the rows will be looked
        up by line."""

    @abc.abstractmethod
    def staged_line(self, connection: sa.Connection, staging: str) -> str:
        """SQL for a staged row's line in the file, the header being line 1."""

    # -- the read-only query ----------------------------------------------------------

    def in_memory(self, url: URL) -> bool:
        """Whether ``url`` is a database only its own engine can see."""
        return False

    @abc.abstractmethod
    def run_read_only(
        self,
        engine: Engine,
        url: URL,
        sql: str,
        *,
        max_rows: int | None,
        timeout: float,
        cancellation: Cancellation | None,
        lock_timeout: float,
    ) -> QueryResult:
        """Run one statement that cannot write, for at most ``timeout`` seconds,
        and return at most ``max_rows`` rows (all when None) plus one to tell
        truncation. ``lock_timeout``: seconds to wait for a store another
        connection holds exclusively."""

    def read_only_connection(self, url: URL, *, lock_timeout: float) -> Any:
        """A DBAPI connection that can only read the store at ``url``, for an
        engine beside :meth:`run_read_only` (:attr:`own_read_only_connections`)."""
        raise ConfigurationError(f"{mask_url(url)}: the {self.name} store has no read-only connections of its own")

    # -- the OMOP export ---------------------------------------------------------------

    @abc.abstractmethod
    def omop_number(self, text_sql: str) -> str:
        """SQL for the number a text holds (``12``, ``-3.5``), NULL for any other text."""

    @abc.abstractmethod
    def refresh_statistics(self, connection: sa.Connection, table: str) -> None:
        """Bring the planner's statistics of ``table`` (a quoted, qualified name) up to date,
        rows this transaction wrote included, before statements read what was just written."""

    # -- whole tables as Arrow (backup, restore, copy) ----------------------------------

    @abc.abstractmethod
    def stored_columns(self, connection: sa.Connection, schema: str | None, table: str) -> list[tuple[str, str]]:
        """The columns of ``table`` as the database holds them, in order, each
        with its portable kind (:mod:`healthsim_state.store.portable`); none
        when the database lacks the table. An unsupported type is a
        :class:`BackupError` naming the column."""

    #: Execution options of :meth:`snapshot`'s connection.
    snapshot_options: ClassVar[dict[str, Any]] = {}

    @contextmanager
    def snapshot(self, engine: Engine) -> Iterator[sa.Connection]:
        """A connection in one read-only transaction that sees one state of the
        whole database, however long it reads; rolled back on exit."""
        with engine.connect() as connection:
            connection = connection.execution_options(**self.snapshot_options)
            connection.exec_driver_sql("SELECT 1").all()  # begins the transaction, fixing its snapshot
            try:
                yield connection
            finally:
                connection.rollback()

    @abc.abstractmethod
    def read_arrow(
        self, connection: sa.Connection, table: str, schema: pa.Schema, kinds: Sequence[str], batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        """Every row of ``table`` (``schema.table`` or ``table``) as batches of at most about
        ``batch_rows`` rows with exactly ``schema`` (columns of those names,
        of those ``kinds``), streamed: the table is never whole in memory."""

    def delete_all(self, connection: sa.Connection, table: str) -> None:
        """Delete every row of ``table`` (``schema.table`` or ``table``), guards included: a
        restore or copy replaces the whole store, its append-only audit trail too."""
        connection.exec_driver_sql(f"DELETE FROM {table}")

    @abc.abstractmethod
    def write_arrow(self, connection: sa.Connection, table: str, batch: pa.RecordBatch) -> None:
        """Insert the rows of ``batch`` (columns named as the table's, UUID and
        JSON as text) into ``table`` (``schema.table`` or ``table``), in one bulk
        statement."""

    # -- the batch writer's staging tables (healthsim_state.store.writer) ---------------

    def publish_staged(
        self,
        connection: sa.Connection,
        table: sa.Table,
        entity_type: str,
        staged: tuple[str, str],
        scenario_id: uuid.UUID,
        versioning: Versioning,
    ) -> None:
        """Upsert every row of the staging table ``staged[0]`` (``table``'s
        columns) into ``table``, ``updated_at`` being the write's time, as
        :meth:`upsert` does (changed rows to the history first, unchanged rows
        left alone); then link them to the scenario at the positions of the
        staging table ``staged[1]`` (``id``, ``position``). Set-based: no row
        passes through Python."""
        rows, positions = staged
        names = ", ".join(c.name for c in table.columns)
        at = f"CAST('{versioning.at.isoformat()}' AS TIMESTAMPTZ)"
        selects = ", ".join(at if c.name == "updated_at" else f"b.{c.name}" for c in table.columns)
        if versioning.keep:
            connection.exec_driver_sql(
                snapshot_sql(table, versioning, rows, lambda c: f"b.{c.name}", lock=self.row_locks)
            )
        self._publish_rows(connection, table, rows, names, selects)
        connection.exec_driver_sql(
            f"INSERT INTO {LINKS.name} (scenario_id, entity_type, entity_id, position) "
            f"SELECT CAST('{uuid.UUID(str(scenario_id))}' AS UUID), {literal(entity_type)}, id, position FROM {positions}"
        )

    def _publish_rows(self, connection: sa.Connection, table: sa.Table, rows: str, names: str, selects: str) -> None:
        """:meth:`publish_staged`'s upsert: ``selects`` (the staged row ``b``) into ``table``."""
        order = " ORDER BY b.id" if self.row_locks else ""  # the order upserts lock rows in
        connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({names}) SELECT {selects} FROM {rows} b{order} "
            f"ON CONFLICT (id) DO UPDATE SET {update_clause(table)} WHERE {unchanged_guard(table)}"
        )

    def claim_writer(self, connection: sa.Connection, key: int) -> bool:
        """Mark the batch writer numbered ``key`` (a 32-bit signed integer) as
        running for as long as ``connection`` lives; False when another live
        connection has. Without :attr:`row_locks` the database has one
        writing process, which knows its own writers: nothing to mark."""
        return True

    def release_writer(self, connection: sa.Connection, key: int) -> None:
        """Undo :meth:`claim_writer` on ``connection``."""
        return None

    #: The batch writer's staging tables are keyed by ``id`` (:meth:`stage` upserts into them).
    keyed_staging: ClassVar[bool] = True

    def stage(self, session: Session, table: sa.Table, rows: Sequence[dict[str, Any]] | pa.Table) -> None:
        """Write ``rows`` (as :meth:`upsert` or :meth:`upsert_arrow` takes them)
        into the batch writer's staging table ``table``: a row of a staged id replaces it."""
        if isinstance(rows, pa.Table):
            self.upsert_arrow(session, table, rows)
        else:
            self.upsert(session, table, rows)

    @contextmanager
    def writer_memory(self, connection: sa.Connection) -> Iterator[Callable[[], bool]]:
        """While a batch writer runs on ``connection``: the memory the database
        itself may use bounded, where it is the caller's process. Yields what
        lifts the bound again (for the publish, whose transaction holds what
        the canonical tables' indexes gain), and says whether there was one."""
        yield lambda: False

    def out_of_memory(self, error: BaseException) -> bool:
        """Whether ``error`` (a driver error, or SQLAlchemy's around it) says the database ran out of memory."""
        return False

    def upsert_arrow(
        self, session: Session, table: sa.Table, data: pa.Table, *, versioning: Versioning | None = None
    ) -> None:
        """:meth:`upsert` of rows given as an Arrow table of the table's
        :func:`~healthsim_state.store.batches.arrow_schema`."""
        self.upsert(session, table, data.to_pylist(), versioning=versioning)

    #: The batch writer's direct append: while the store's canonical tables hold at
    #: most this many rows (the writer's own included), an add writes the entities
    #: not stored yet straight into their tables (:meth:`append_new`) instead of
    #: staging them; 0: every row is staged, and the publish copies it.
    direct_append_rows: ClassVar[int] = 0

    def append_new(
        self, session: Session, table: sa.Table, staged: sa.Table, appended: sa.Table, data: pa.Table, *, append: bool
    ) -> int:
        """A batch writer's add of ``data`` (``table``'s Arrow schema) where
        :attr:`direct_append_rows` is set: the entities not stored yet into
        ``table`` itself, their ids into ``appended`` (``append``; else they
        are staged); those the writer appended before, and no scenario links
        yet, replaced in place; the rest (stored entities, which the publish
        upserts with their history) into the staging table ``staged``. Returns
        the rows appended."""
        raise InvalidArgumentError(f"the {type(self).__name__} stages every row (direct_append_rows is 0)")

    #: The batch writer's publish: 0 when one transaction holds it all; else the
    #: rows per committed step in which it appends the scenario's new entities
    #: (and a new scenario's links) before the transaction that makes it visible.
    publish_step_rows: ClassVar[int] = 0

    def publish_step_done(self, connection: sa.Connection) -> None:
        """After each committed step of such a publish, on the writer's ``connection`` (no transaction open)."""
        return None

    def scenario_table(self, session: Session, table: sa.Table, scenario: ScenarioRef, entity_type: str) -> pa.Table:
        """The scenario's rows of ``table`` for a load, which decodes them column
        by column: :meth:`scenario_arrow`'s, JSON in any text of its value."""
        return self.scenario_arrow(session, table, scenario, entity_type)

    def scenario_tables(
        self, session: Session, scenario_id: uuid.UUID, tables: Sequence[tuple[str, sa.Table]]
    ) -> Iterator[pa.Table]:
        """:meth:`scenario_table` of each (entity type, table) of ``tables`` in
        turn, for a whole load. A backend whose database works apart from this
        process may fetch the next while the caller decodes one; the session
        is the iterator's until it ends (or is closed)."""
        for entity_type, table in tables:
            yield self.scenario_table(session, table, scenario_id, entity_type)


def quote(connection: sa.Connection, name: str) -> str:
    """``name`` as an identifier in the connection's SQL."""
    return connection.dialect.identifier_preparer.quote(name)


def literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def qualified(connection: sa.Connection, name: str) -> str:
    """The SQL naming the table ``name`` (``schema.table``, or ``table`` in the default schema)."""
    return ".".join(quote(connection, part) for part in name.split("."))
