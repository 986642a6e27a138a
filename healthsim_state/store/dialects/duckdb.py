"""DuckDB: one writer per file, batches read by name from Arrow, TRY_CAST,
and a read-only connection of its own for queries.

Writes happen inside the session's transaction: one statement per batch of
rows on the session's own connection, which reads the batch, a pyarrow
Table, by name: ``INSERT ... SELECT``, with ``ON CONFLICT DO UPDATE`` when a
probe finds any of its ids stored. Reads fetch Arrow.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session

from healthsim_models.engine import DUCKDB_CONFIG
from healthsim_models.errors import BackupError, QueryError, StoreLockedError
from healthsim_state.store.batches import (
    LINKS,
    Links,
    Page,
    ScenarioRef,
    arrow_schema,
    scenario_id_sql,
    scenario_query,
    update_clause,
)
from healthsim_state.store.dialects.base import StoreDialect, literal, qualified, quote
from healthsim_state.store.history import Versioning, snapshot_sql, unchanged_guard
from healthsim_state.store.messages import database_message
from healthsim_state.store.readonly import (
    CANCELLED,
    ONE_STATEMENT,
    Cancellation,
    QueryResult,
    Stopper,
    failed,
    normalise,
    stoppable,
    timed_out,
)


def _driver(session: Session) -> Any:
    """The DuckDB connection under the session's transaction."""
    return session.connection().connection.driver_connection


def _select_expression(column: sa.Column, prefix: str = "") -> str:
    if isinstance(column.type, sa.Uuid):
        return f"CAST({prefix}{column.name} AS UUID)"
    if isinstance(column.type, sa.JSON):
        return f"CAST({prefix}{column.name} AS JSON)"
    return prefix + column.name


# The history snapshot compares JSON columns as the text they are (DuckDB
# keeps JSON text as written, and the save writes it compactly, one way):
# casting each batch value to JSON parses it, a third of the snapshot's time.


def _batch_value(column: sa.Column) -> str:
    """A column of the batch (alias ``b``) as the snapshot compares it."""
    return f"b.{column.name}" if isinstance(column.type, sa.JSON) else _select_expression(column, "b.")


def _stored_value(column: sa.Column) -> str:
    """A stored column (alias ``t``) as the snapshot compares it."""
    return f"CAST(t.{column.name} AS VARCHAR)" if isinstance(column.type, sa.JSON) else f"t.{column.name}"


# How a batch reaches DuckDB (measured; docs/performance.md):
# - By a replacement scan: the statement names a local variable holding the
#   batch, and DuckDB reads that Arrow table for this statement only. DuckDB
#   looks the name up in the frame that calls execute, so the call stays in
#   the function that holds the variable. A view registered and unregistered
#   inside a transaction would keep its table alive until commit (a whole
#   two-million-entity save in memory), and relation.query binds through the
#   Python relation layer, about 3 ms more per statement. Such statements
#   take no parameters, so a scenario id is given as a literal (the text of
#   a uuid.UUID, nothing a caller wrote).
# - ON CONFLICT DO UPDATE costs 5-8 ms per statement however few rows (it
#   grows with the columns it updates: 30-40 here), and far more on a large
#   table. A probe for the batch's ids comes first (a scan of the id
#   column: 20 ms for 20,000 ids against 5 million rows), and a batch none
#   of whose ids is stored yet, as in a new scenario, is a plain INSERT.
#   The probe runs in the same transaction: it sees every earlier batch.


@cache
def _insert(table: sa.Table, *, upsert: bool) -> str:
    names = ", ".join(c.name for c in table.columns)
    selects = ", ".join(_select_expression(c) for c in table.columns)
    sql = f"INSERT INTO {table.name} ({names}) SELECT {selects} FROM _hs_batch"
    # A row stored unchanged is not rewritten (healthsim_state.store.history).
    return (
        sql + f" ON CONFLICT (id) DO UPDATE SET {update_clause(table)} WHERE {unchanged_guard(table)}"
        if upsert
        else sql
    )


def _write_batch(session: Session, table: sa.Table, data: pa.Table, versioning: Versioning | None) -> None:
    """The upsert of ``data`` (the table's Arrow schema): a probe, the history
    snapshot when kept, then INSERT, with ON CONFLICT only when the probe
    found a stored id."""
    raw = _driver(session)
    _hs_batch = data  # read by name in the SQL below
    stored = raw.execute(
        f"SELECT 1 FROM {table.name} WHERE id IN (SELECT CAST(id AS UUID) FROM _hs_batch) LIMIT 1"
    ).fetchone()
    if stored is not None and versioning is not None and versioning.keep:
        raw.execute(snapshot_sql(table, versioning, "_hs_batch", _batch_value, lock=False, stored=_stored_value))
    raw.execute(_insert(table, upsert=stored is not None))


def _python_rows(data: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    """``data`` as dicts, with time-zone-aware timestamps made naive UTC first:
    pyarrow builds a naive datetime several times faster than one with a
    zone, and every reader of these rows treats a naive one as UTC."""
    schema = data.schema
    if any(pa.types.is_timestamp(f.type) and f.type.tz is not None for f in schema):
        columns = [
            column.cast(pa.timestamp(f.type.unit)) if pa.types.is_timestamp(f.type) else column
            for f, column in zip(schema, data.columns, strict=True)
        ]
        data = type(data).from_arrays(columns, names=schema.names)
    return data.to_pylist()


#: The read-only connection's configuration, fixed when DuckDB opens the file.
#: No extension is installed or loaded behind the query's back (DuckDB would
#: fetch sqlite_scanner for a SQLite file, say). Every read-only connection of
#: this process uses exactly this configuration, so that they share one open
#: database: DuckDB refuses a second, differently configured one.
_READ_ONLY_CONFIG = {**DUCKDB_CONFIG, "enable_external_access": False}

_PID = re.compile(r"PID \d+")

#: Bytes DuckDB may use while a batch writer runs (docs/scale.md has the measurements).
WRITER_MEMORY_LIMIT = 512 * 2**20
_SIZE_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}


def _size(text: str) -> float:
    """Bytes of a size as DuckDB shows a setting (``18.8 GiB``); unknown forms count as unbounded."""
    number, _, unit = text.partition(" ")
    try:
        return float(number) * _SIZE_UNITS[unit]
    except (KeyError, ValueError):
        return float("inf")


class DuckDBDialect(StoreDialect):
    """A DuckDB file (or in-memory database): one writer at a time, so nothing is locked."""

    name: ClassVar[str] = "duckdb"
    row_locks: ClassVar[bool] = False  # a DuckDB file has one writer; DuckDB has no FOR UPDATE
    try_cast: ClassVar[bool] = True
    own_read_only_connections: ClassVar[bool] = True

    # -- writes -----------------------------------------------------------------

    def upsert(
        self, session: Session, table: sa.Table, rows: Sequence[dict[str, Any]], *, versioning: Versioning | None = None
    ) -> None:
        if rows:
            # UUID columns arrive as 32-hex text from the repository; DuckDB casts it.
            _write_batch(session, table, pa.Table.from_pylist(rows, schema=arrow_schema(table)), versioning)

    def link(self, session: Session, scenario_id: uuid.UUID, links: Links) -> None:
        if not links:
            return
        raw = _driver(session)
        _hs_links = pa.table(
            {  # read by name in the SQL below
                "entity_type": pa.array(links.entity_types, type=pa.string()),
                "entity_id": pa.array(links.entity_ids, type=pa.string()),
                "position": pa.array(links.positions, type=pa.int64()),
            }
        )
        raw.execute(
            f"INSERT INTO {LINKS.name} (scenario_id, entity_type, entity_id, position) "
            f"SELECT CAST('{uuid.UUID(str(scenario_id))}' AS UUID), entity_type, CAST(entity_id AS UUID), position "
            "FROM _hs_links ON CONFLICT DO NOTHING"
        )

    # -- reads of a scenario's rows ------------------------------------------------

    @staticmethod
    def _relation(session: Session, table: sa.Table, scenario: ScenarioRef, entity_type: str, page: Page = None) -> Any:
        """The scenario query as a DuckDB relation, to fetch as Arrow whole or in batches."""
        sql = scenario_query(table, page).format(sid=scenario_id_sql(scenario, "?"), etype="?", limit="?", offset="?")
        params: list[Any] = [str(scenario), entity_type]
        if page is not None:
            offset, limit = page
            params += [limit, offset]
        return _driver(session).sql(sql, params=params)

    def iter_scenario_rows(
        self,
        session: Session,
        table: sa.Table,
        scenario_id: uuid.UUID,
        entity_type: str,
        batch_size: int,
        page: Page = None,
    ) -> Iterator[list[dict[str, Any]]]:
        relation = self._relation(session, table, scenario_id, entity_type, page)
        for batch in relation.to_arrow_reader(batch_size):
            yield _python_rows(batch)

    def scenario_arrow(self, session: Session, table: sa.Table, scenario: ScenarioRef, entity_type: str) -> pa.Table:
        return self._relation(session, table, scenario, entity_type).to_arrow_table()

    # -- locks and errors -----------------------------------------------------------

    def lock_keys(self, session: Session, keys: Sequence[str]) -> None:
        return None  # a file has one writer: no one to take turns with

    def lock_rows(self, session: Session, table: sa.Table, where: sa.ColumnElement[bool]) -> None:
        return None  # a file has one writer: no one to take turns with

    def conflict_reason(self, error: BaseException) -> str | None:
        # Matched by name, so that no DuckDB import is needed to classify another backend's error.
        if type(error).__name__ == "TransactionException" and type(error).__module__.startswith(("duckdb", "_duckdb")):
            # "Conflict on update!", "... write-write conflict ...", and a commit that
            # finds the key another transaction committed meanwhile; not a commit
            # that failed for another reason (a full disk, say).
            text = str(error)
            if "onflict" in text or ("Failed to commit" in text and "constraint violation" in text):
                return "write-write conflict"
        return None

    def violated_constraint(self, exc: sa.exc.IntegrityError) -> str | None:
        return None  # DuckDB's errors name no constraint

    # -- CSV files into staging tables (reference data) ------------------------------

    def stage_csv(
        self, connection: sa.Connection, staging: str, columns: list[str], path: Path, *, numbered: bool = False
    ) -> None:
        # read_csv with every column declared VARCHAR (nothing sniffed); the
        # new table keeps the file's order in rowid, numbered or not.
        declared = ", ".join(f"{literal(c)}: 'VARCHAR'" for c in columns)
        connection.exec_driver_sql(
            f"CREATE TEMP TABLE {quote(connection, staging)} AS SELECT * FROM read_csv({literal(str(path))}, "
            f"header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
            f"columns = {{{declared}}})"
        )

    def staged_line(self, connection: sa.Connection, staging: str) -> str:
        # The rowids of a new table are consecutive in insertion order, but a
        # temporary table's do not start at 0.
        first = connection.exec_driver_sql(f"SELECT min(rowid) FROM {quote(connection, staging)}").scalar() or 0
        return f"(rowid - {first} + 2)"

    # -- the read-only query ----------------------------------------------------------
    #
    # The file is opened with a read-only connection, external access (files,
    # ATTACH, COPY ... TO, extension installs) disabled and the configuration
    # locked, so SET and PRAGMA cannot change it either. A timer interrupts
    # the connection when the timeout passes.

    def in_memory(self, url: URL) -> bool:
        return not url.database or url.database == ":memory:"

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
        import duckdb

        con = _connect(Path(url.database).expanduser(), lock=True, timeout=lock_timeout)
        try:
            stopper = Stopper(con.interrupt)
            try:
                with stoppable(stopper, cancellation, timer=timeout):
                    statements = con.extract_statements(sql)
                    if len(statements) != 1:
                        raise QueryError(ONE_STATEMENT)
                    cursor = con.execute(sql)
                    description = cursor.description or []
                    rows = cursor.fetchall() if max_rows is None else cursor.fetchmany(max_rows + 1)
            except duckdb.Error as exc:
                if stopper.reason == "timeout":
                    raise timed_out(timeout) from exc
                if stopper.reason == "cancelled":
                    raise QueryError(CANCELLED) from exc
                raise failed(exc) from exc
        finally:
            con.close()
        truncated = max_rows is not None and len(rows) > max_rows
        json_columns = [i for i, column in enumerate(description) if str(column[1]) == "JSON"]
        return QueryResult(
            columns=[column[0] for column in description],
            rows=[normalise(row, json_columns) for row in rows[:max_rows]],
            truncated=truncated,
        )

    def read_only_connection(self, url: URL, *, lock_timeout: float) -> Any:
        from duckdb_engine import ConnectionWrapper

        return ConnectionWrapper(_connect(Path(url.database).expanduser(), lock=False, timeout=lock_timeout))

    # -- the OMOP export ---------------------------------------------------------------

    def omop_number(self, text_sql: str) -> str:
        return f"CASE WHEN regexp_full_match({text_sql}, '[-+]?[0-9]+([.][0-9]+)?') THEN CAST({text_sql} AS DOUBLE) END"

    def refresh_statistics(self, connection: sa.Connection, table: str) -> None:
        """Nothing to do: DuckDB updates a table's statistics with every write, and its planner
        reads row counts from the table itself."""

    # -- whole tables as Arrow (backup, restore, copy) ----------------------------------

    def stored_columns(self, connection: sa.Connection, schema: str | None, table: str) -> list[tuple[str, str]]:
        rows = connection.exec_driver_sql(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = ? AND table_name = ? ORDER BY column_index",
            (schema or "main", table),
        ).all()
        return [(name, _portable_kind(f"{schema or 'main'}.{table}.{name}", data_type)) for name, data_type in rows]

    def read_arrow(
        self, connection: sa.Connection, table: str, schema: pa.Schema, kinds: Sequence[str], batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        driver = connection.connection.driver_connection
        selects = ", ".join(
            f"CAST({quote(connection, name)} AS VARCHAR) AS {quote(connection, name)}"
            if kind in ("uuid", "json")
            else quote(connection, name)
            for name, kind in zip(schema.names, kinds, strict=True)
        )
        for batch in driver.sql(f"SELECT {selects} FROM {qualified(connection, table)}").to_arrow_reader(batch_rows):
            yield batch.cast(schema)

    def write_arrow(self, connection: sa.Connection, table: str, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        schema_name, _, name = table.rpartition(".")
        types = dict(
            connection.exec_driver_sql(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
                "AND schema_name = ? AND table_name = ?",
                (schema_name or "main", name),
            ).all()
        )
        names = ", ".join(quote(connection, n) for n in batch.schema.names)
        casts = ", ".join(f"CAST({quote(connection, n)} AS {types[n]})" for n in batch.schema.names)
        _hs_batch = batch  # read by name in the SQL below
        connection.connection.driver_connection.execute(
            f"INSERT INTO {qualified(connection, table)} ({names}) SELECT {casts} FROM _hs_batch"
        )

    # -- the batch writer's staging tables ---------------------------------------------

    def _publish_rows(self, connection: sa.Connection, table: sa.Table, rows: str, names: str, selects: str) -> None:
        # ON CONFLICT DO UPDATE holds every row of its statement in memory, unbounded
        # by memory_limit (a million-row statement fails with a limit in place): only
        # the staged rows already stored go through it; the new ones are appended,
        # which DuckDB writes out as it goes.
        connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({names}) SELECT {selects} FROM {rows} b SEMI JOIN {table.name} t "
            f"ON t.id = b.id ON CONFLICT (id) DO UPDATE SET {update_clause(table)} WHERE {unchanged_guard(table)}"
        )
        connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({names}) SELECT {selects} FROM {rows} b ANTI JOIN {table.name} t ON t.id = b.id"
        )

    # A DuckDB index (ART) stays in memory once written to, however low memory_limit is
    # (measured: 420 MB at 10 M keys, then out of memory under a 512 MiB cap): the staging
    # tables, which grow with the scenario, have none. A batch's ids already staged (a scan
    # of the id column finds them) are deleted, then the batch appended.
    keyed_staging: ClassVar[bool] = False

    def stage(self, session: Session, table: sa.Table, rows: Sequence[dict[str, Any]] | pa.Table) -> None:
        if not len(rows):
            return
        raw = _driver(session)
        # Read by name in the SQL below.
        _hs_batch = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=arrow_schema(table))
        ids = "SELECT CAST(id AS UUID) FROM _hs_batch"
        if raw.execute(f"SELECT 1 FROM {table.name} WHERE id IN ({ids}) LIMIT 1").fetchone() is not None:
            raw.execute(f"DELETE FROM {table.name} WHERE id IN ({ids})")
        names = ", ".join(c.name for c in table.columns)
        selects = ", ".join(_select_expression(c) for c in table.columns)
        raw.execute(f"INSERT INTO {table.name} ({names}) SELECT {selects} FROM _hs_batch")

    @contextmanager
    def writer_memory(self, connection: sa.Connection) -> Iterator[Callable[[], bool]]:
        # DuckDB caches table blocks up to memory_limit (80% of RAM by default), in
        # this process: a writer's staging tables would grow it with the scenario.
        # The setting is the database's, so every connection to it shares the cap meanwhile.
        # A publish whose last transaction runs out of it runs again without it: the
        # canonical tables' indexes (ART) hold what one transaction adds in memory. The
        # publish's steps (publish_step_rows) keep that small but for an overwrite of a
        # large scenario, whose links are replaced in the last transaction.
        driver = connection.connection.driver_connection
        before = driver.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        lower = _size(before) > WRITER_MEMORY_LIMIT
        if lower:
            driver.execute(f"SET memory_limit = '{WRITER_MEMORY_LIMIT // 2**20}MiB'")

        def lift() -> bool:
            nonlocal lower
            lifted, lower = lower, False
            if lifted:
                driver.execute(f"SET memory_limit = {literal(before)}")
            return lifted

        try:
            yield lift
        finally:
            lift()

    def out_of_memory(self, error: BaseException) -> bool:
        orig = error.orig if isinstance(error, sa.exc.DBAPIError) else error
        return type(orig).__name__ == "OutOfMemoryException" and type(orig).__module__.startswith(("duckdb", "_duckdb"))

    def upsert_arrow(
        self, session: Session, table: sa.Table, data: pa.Table, *, versioning: Versioning | None = None
    ) -> None:
        if data.num_rows:
            _write_batch(session, table, data, versioning)

    # What a DuckDB transaction adds to a primary-key index (ART) stays in memory
    # until it commits, and a committed index is loaded back for the key ranges a
    # later insert touches and kept (measured, duckdb 2.0.1: 8 M rows and 8 M links
    # of one scenario, in 16 steps by id range, peaked at 610 MB under the 512 MiB
    # cap; in 8 steps by row number, or in one transaction, they ran out of it at
    # about 5 M). So the batch writer publishes new rows in steps of this many,
    # each step one range of ids.
    publish_step_rows: ClassVar[int] = 250_000

    def publish_step_done(self, connection: sa.Connection) -> None:
        # What a committed step added to the indexes stays in memory until a checkpoint
        # writes it out; a commit checkpoints only once the WAL is large, and a bulk
        # insert writes its rows to the file, not the WAL (a 200,000-patient publish ran
        # out of the cap in its 22nd step without this). DuckDB refuses a checkpoint while
        # another connection has a write transaction open (the caller's session, say);
        # then the step's index memory stays until a later checkpoint (FORCE CHECKPOINT
        # would abort that transaction).
        # On the driver, between the writer's transactions: a refused checkpoint aborts none.
        try:
            connection.connection.driver_connection.execute("CHECKPOINT")
        except Exception as exc:
            if "other write transactions active" not in str(exc):
                raise

    # A new scenario's entities written once, not staged and copied by the publish
    # (a Synthea import of 2,025 patients spent a third of its time on the copy). Only
    # while the canonical tables are small: each add's random ids touch every part of
    # their primary-key indexes, which DuckDB then keeps in memory (about 107 bytes a
    # key: a million keys is 100 MB of the writer's 512 MiB cap); past this many rows
    # the writer stages, and the publish appends in steps by id range.
    direct_append_rows: ClassVar[int] = 1_000_000

    def append_new(
        self, session: Session, table: sa.Table, staged: sa.Table, appended: sa.Table, data: pa.Table, *, append: bool
    ) -> int:
        if not data.num_rows:
            return 0
        raw = _driver(session)
        _hs_batch = data  # read by name in the SQL below
        ids = "SELECT CAST(id AS UUID) FROM _hs_batch"
        names = ", ".join(c.name for c in table.columns)
        selects = ", ".join(_select_expression(c) for c in table.columns)
        # An entity an earlier add staged is this batch's now, wherever it goes.
        if raw.execute(f"SELECT 1 FROM {staged.name} WHERE id IN ({ids}) LIMIT 1").fetchone() is not None:
            raw.execute(f"DELETE FROM {staged.name} WHERE id IN ({ids})")
        if append and raw.execute(f"SELECT 1 FROM {table.name} WHERE id IN ({ids}) LIMIT 1").fetchone() is None:
            raw.execute(f"INSERT INTO {appended.name} (id) {ids}")
            raw.execute(f"INSERT INTO {table.name} ({names}) SELECT {selects} FROM _hs_batch")
            return data.num_rows
        # Each id: new; the writer's own (appended by an earlier add, linked by no scenario
        # since); or stored (another write's, or linked meanwhile): published with its history.
        raw.execute(
            f"CREATE OR REPLACE TEMPORARY TABLE _hs_kinds AS SELECT b.id, "
            f"CASE WHEN t.id IS NULL THEN 'new' WHEN a.id IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {LINKS.name} l WHERE l.entity_id = b.id) THEN 'own' ELSE 'stored' END AS kind "
            f"FROM (SELECT DISTINCT CAST(id AS UUID) AS id FROM _hs_batch) b LEFT JOIN {table.name} t ON t.id = b.id "
            f"LEFT JOIN (SELECT DISTINCT id FROM {appended.name}) a ON a.id = b.id"
        )

        def of(*kinds: str) -> str:
            listed = ", ".join(literal(k) for k in kinds)
            return f"CAST(id AS UUID) IN (SELECT id FROM _hs_kinds WHERE kind IN ({listed}))"

        raw.execute(
            f"INSERT INTO {staged.name} ({names}) SELECT {selects} FROM _hs_batch "
            f"WHERE {of('stored') if append else of('stored', 'new')}"
        )
        raw.execute(
            f"INSERT INTO {table.name} ({names}) SELECT {selects} FROM _hs_batch WHERE {of('own')} "
            f"ON CONFLICT (id) DO UPDATE SET {update_clause(table)}"
        )
        if not append:
            raw.execute("DROP TABLE _hs_kinds")
            return 0
        raw.execute(f"INSERT INTO {appended.name} (id) SELECT id FROM _hs_kinds WHERE kind = 'new'")
        raw.execute(f"INSERT INTO {table.name} ({names}) SELECT {selects} FROM _hs_batch WHERE {of('new')}")
        count = raw.execute("SELECT count(*) FROM _hs_kinds WHERE kind = 'new'").fetchone()[0]
        raw.execute("DROP TABLE _hs_kinds")
        return int(count)


def _connect(path: Path, *, lock: bool, timeout: float) -> Any:
    """A read-only connection, waiting up to ``timeout`` seconds for a read-write holder to let go.

    Another process's read-write connection locks the file; a read-write
    connection of this process makes DuckDB refuse a second, differently
    configured one. Both end when that connection closes, so both are waited for.

    With ``lock``, the configuration is locked before the connection is
    returned, so SQL run on it cannot change any setting. The lock holds for
    the database, so also for the other read-only connections open beside it.
    """
    import duckdb

    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            con = duckdb.connect(str(path), read_only=True, config=dict(_READ_ONLY_CONFIG))
        except duckdb.Error as exc:
            text = str(exc)
            other_process = isinstance(exc, duckdb.IOException) and "lock" in text.lower()
            this_process = isinstance(exc, duckdb.ConnectionException) and "different configuration" in text
            if not (other_process or this_process):
                # E.g. a SQLite file, which DuckDB would read through an extension it is not allowed to load.
                reason = database_message(exc, with_hint=True)
                raise QueryError(f"cannot open {path} as a DuckDB file for reading: {reason}") from exc
            if time.monotonic() >= deadline:
                pid = _PID.search(text)
                holder = (
                    f"another process ({pid.group(0) if pid else 'PID unknown'})"
                    if other_process
                    else "this process (a session or connection still open)"
                )
                raise StoreLockedError(
                    f"the database file {path} is held read-write by {holder}; waited {timeout:g}s "
                    "to open it read-only. Try again when that program or session has finished."
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
            continue
        try:
            _settle(con, lock)
        except BaseException:
            con.close()
            raise
        return con


def _settle(con: Any, lock: bool) -> None:
    # DuckDB draws a progress bar of its own (on stdout, which is the MCP
    # server's protocol stream) in an interactive interpreter; the setting
    # is the connection's, and can be changed only while the configuration
    # is not locked yet (by a query on another connection of this database).
    locked = con.execute("SELECT current_setting('lock_configuration')").fetchone()[0]
    if not locked:
        con.execute("SET enable_progress_bar = false")
        if lock:
            con.execute("SET lock_configuration = true")


#: DuckDB's column types and their portable kinds (DECIMAL(p,s) apart).
_KINDS = {
    "UUID": "uuid",
    "JSON": "json",
    "VARCHAR": "string",
    "BOOLEAN": "boolean",
    "SMALLINT": "int16",
    "INTEGER": "int32",
    "BIGINT": "int64",
    "FLOAT": "float32",
    "DOUBLE": "float64",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
}
_DECIMAL = re.compile(r"DECIMAL\((\d+),(\d+)\)")


def _portable_kind(column: str, data_type: str) -> str:
    if data_type in _KINDS:
        return _KINDS[data_type]
    if match := _DECIMAL.fullmatch(data_type):
        return f"decimal({match.group(1)},{match.group(2)})"
    raise BackupError(f"the column {column} is of type {data_type}, which backups and copies do not carry")
