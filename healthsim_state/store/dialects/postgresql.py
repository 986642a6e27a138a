"""PostgreSQL: writers side by side, so rows and scenario keys are locked in
one order; batches COPY'd, as CSV both ways; read-only transactions for
queries.

Writes happen inside the session's transaction, in key order (see below):
a batch none of whose keys is stored is COPY'd straight into its table;
otherwise into a temporary staging table, then one ``INSERT ... SELECT ...
ON CONFLICT``. Never a statement per row. A scenario's rows are read by
``COPY ... TO STDOUT`` into Arrow; a load's next type while it decodes one.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session

from healthsim_models.errors import BackupError, QueryError, ReferenceDataError
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
from healthsim_state.store.dialects.base import StoreDialect, qualified, quote
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

#: First key of the advisory locks on scenario names and ids (the two-key
#: form, apart from the migration lock's one-key form).
_SCENARIO_LOCK_SPACE = 0x48535343  # "HSSC"
_WRITER_LOCK_SPACE = 0x48535752  # "HSWR": batch writers running (healthsim_state.store.writer)

_SQLSTATES = {"40P01": "deadlock detected", "40001": "serialization failure"}

_COPY_CHUNK = 1 << 20

#: The options of a COPY of CSV written by :func:`_csv`.
_CSV = "(FORMAT csv)"

_MAY_DROP_PRIVILEGES = (
    "SELECT to_regrole('pg_read_all_data') IS NOT NULL AND pg_has_role(current_user, 'pg_read_all_data', 'MEMBER')"
)


def _driver(session: Session) -> Any:
    """The psycopg connection under the session's transaction."""
    return session.connection().connection.driver_connection


# PostgreSQL locks each row an upsert inserts or updates, in the order the
# statement reaches it, until the transaction ends. Writers saving entities
# they share therefore insert in one order, by key: two writers' saves of
# the same types then wait for each other rather than deadlock (a deadlock
# that order cannot prevent, as across batches or between types, is left to
# the retry of the whole transaction: healthsim_state.store.transaction).


class PostgreSQLDialect(StoreDialect):
    """A PostgreSQL database: several writers at once, which take turns through locks."""

    name: ClassVar[str] = "postgresql"
    row_locks: ClassVar[bool] = True
    try_cast: ClassVar[bool] = False  # PostgreSQL 15 has no TRY_CAST nor pg_input_is_valid

    # -- writes -----------------------------------------------------------------

    def upsert(
        self, session: Session, table: sa.Table, rows: Sequence[dict[str, Any]], *, versioning: Versioning | None = None
    ) -> None:
        if not rows:
            return
        names = [c.name for c in table.columns]
        # In key order, the order the upsert through the staging table locks rows in.
        ordered = sorted(rows, key=lambda row: str(row["id"]).replace("-", "").lower())

        def write(copy: Any) -> None:
            for row in ordered:
                copy.write_row([row[n] for n in names])

        if not _copy_straight(session, table.name, names, write, ""):
            self._stage_upsert(session, table, versioning, "", write)

    @staticmethod
    def _stage_upsert(
        session: Session, table: sa.Table, versioning: Versioning | None, options: str, write: Callable[[Any], None]
    ) -> None:
        """The upsert of the rows ``write`` sends to a ``COPY ... FROM STDIN`` (with ``options``)
        of every column, in the table's order, through a staging table."""
        raw = _driver(session)
        stage = f"_hs_stage_{table.name}"
        column_list = ", ".join(c.name for c in table.columns)
        with raw.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table.name}) ON COMMIT DROP")
            with cursor.copy(f"COPY {stage} ({column_list}) FROM STDIN {options}") as copy:
                write(copy)
            if versioning is not None and versioning.keep:
                cursor.execute(snapshot_sql(table, versioning, stage, lambda c: f"b.{c.name}", lock=True))
            # A row stored unchanged is not rewritten (healthsim_state.store.history).
            cursor.execute(
                f"INSERT INTO {table.name} ({column_list}) SELECT {column_list} FROM {stage} "
                f"ORDER BY id ON CONFLICT (id) DO UPDATE SET {update_clause(table)} WHERE {unchanged_guard(table)}"
            )
            cursor.execute(f"TRUNCATE {stage}")

    def link(self, session: Session, scenario_id: uuid.UUID, links: Links) -> None:
        import pyarrow.compute as pc

        if not links:
            return
        rows = pa.table(
            {
                "scenario_id": pa.repeat(pa.scalar(str(scenario_id)), len(links)),
                "entity_type": pa.array(links.entity_types, type=pa.string()),
                "entity_id": pa.array(links.entity_ids, type=pa.string()),
                "position": pa.array(links.positions, type=pa.int64()),
            }
        )
        # In key order, the order the insert through the staging table locks rows in.
        key = pc.utf8_lower(pc.replace_substring(rows.column("entity_id"), "-", ""))
        order = pc.sort_indices(
            pa.table({"t": rows.column("entity_type"), "k": key}), [("t", "ascending"), ("k", "ascending")]
        )
        text = _csv(rows.take(order))

        def write(copy: Any) -> None:
            copy.write(text)

        if _copy_straight(session, LINKS.name, rows.column_names, write, _CSV):
            return
        stage = "_hs_stage_links"
        with _driver(session).cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {LINKS.name}) ON COMMIT DROP")
            with cursor.copy(f"COPY {stage} ({', '.join(rows.column_names)}) FROM STDIN {_CSV}") as copy:
                write(copy)
            cursor.execute(
                f"INSERT INTO {LINKS.name} (scenario_id, entity_type, entity_id, position) "
                f"SELECT scenario_id, entity_type, entity_id, position FROM {stage} "
                "ORDER BY entity_type, entity_id ON CONFLICT DO NOTHING"
            )
            cursor.execute(f"TRUNCATE {stage}")

    # -- reads of a scenario's rows ------------------------------------------------

    @staticmethod
    def _result(
        session: Session, table: sa.Table, scenario: ScenarioRef, entity_type: str, page: Page = None, **options: Any
    ) -> Any:
        """The scenario query's result through SQLAlchemy (``options``: execution options).
        Date-times come as naive UTC, as the COPY reads give them: the driver would
        make them aware in the session's time zone, where year 1 in UTC is a year BC
        west of Greenwich, which Python cannot hold."""
        sql = scenario_query(table, page, _naive_utc).format(
            sid=scenario_id_sql(scenario, "%(sid)s"), etype="%(etype)s", limit="%(limit)s", offset="%(offset)s"
        )
        params: dict[str, Any] = {"sid": str(scenario), "etype": entity_type}
        if page is not None:
            params["offset"], params["limit"] = page
        connection = session.connection()
        if options:
            connection = connection.execution_options(**options)
        return connection.exec_driver_sql(sql, params)

    def iter_scenario_rows(
        self,
        session: Session,
        table: sa.Table,
        scenario_id: uuid.UUID,
        entity_type: str,
        batch_size: int,
        page: Page = None,
    ) -> Iterator[list[dict[str, Any]]]:
        result = self._result(session, table, scenario_id, entity_type, page, yield_per=batch_size)
        for partition in result.mappings().partitions():
            yield [dict(row) for row in partition]

    def scenario_arrow(self, session: Session, table: sa.Table, scenario: ScenarioRef, entity_type: str) -> pa.Table:
        data = self._scenario_table(session, table, scenario, entity_type)
        for position, column in enumerate(table.columns):
            if isinstance(column.type, sa.JSON) and data.num_rows:
                data = data.set_column(position, column.name, _compact_json(data.column(position)))
        return data

    @staticmethod
    def _scenario_table(session: Session, table: sa.Table, scenario: ScenarioRef, entity_type: str) -> pa.Table:
        return _scenario_table(_driver(session), table, scenario, entity_type)

    # -- locks and errors -----------------------------------------------------------

    def lock_keys(self, session: Session, keys: Sequence[str]) -> None:
        for key in keys:
            digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=4).digest()
            session.execute(
                sa.text("SELECT pg_advisory_xact_lock(:space, :key)"),
                {"space": _SCENARIO_LOCK_SPACE, "key": int.from_bytes(digest, "big", signed=True)},
            )

    def lock_rows(self, session: Session, table: sa.Table, where: sa.ColumnElement[bool]) -> None:
        locked = sa.select(table.c.id).where(where).order_by(table.c.id).with_for_update().subquery()
        session.execute(sa.select(sa.func.count()).select_from(locked))

    def conflict_reason(self, error: BaseException) -> str | None:
        state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)  # psycopg 3, psycopg2
        return _SQLSTATES.get(state)

    def violated_constraint(self, exc: sa.exc.IntegrityError) -> str | None:
        diag = getattr(exc.orig, "diag", None)
        return getattr(diag, "constraint_name", None)

    # -- CSV files into staging tables (reference data) ------------------------------

    def stage_csv(
        self, connection: sa.Connection, staging: str, columns: list[str], path: Path, *, numbered: bool = False
    ) -> None:
        # COPY of every column as text; ``numbered`` adds _hs_line, the row's
        # number in the file (1 for the first data row), as the key.
        import psycopg  # the PostgreSQL driver

        definition = ", ".join(f"{quote(connection, c)} text" for c in columns)
        listed = ""
        if numbered:
            definition = f"_hs_line bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {definition}"
            listed = f" ({', '.join(quote(connection, c) for c in columns)})"
        connection.exec_driver_sql(f"CREATE TEMP TABLE {quote(connection, staging)} ({definition}) ON COMMIT DROP")
        cursor = connection.connection.driver_connection.cursor()
        try:
            with (
                cursor.copy(
                    f"COPY {quote(connection, staging)}{listed} FROM STDIN WITH (FORMAT csv, HEADER true)"
                ) as copy,
                path.open("rb") as handle,
            ):
                while chunk := handle.read(_COPY_CHUNK):
                    copy.write(chunk)
        except psycopg.Error as exc:
            raise ReferenceDataError(
                f"{path.name} could not be read as CSV, nothing was changed: {database_message(exc)}"
            ) from exc
        finally:
            cursor.close()

    def staged_line(self, connection: sa.Connection, staging: str) -> str:
        return "(_hs_line + 1)"

    # -- the read-only query ----------------------------------------------------------
    #
    # The statement runs in a READ ONLY transaction that is always rolled
    # back. When the user may, the transaction also drops to the predefined
    # role pg_read_all_data, so that a superuser's query cannot reach server
    # files or programs (COPY ... TO PROGRAM, lo_export). statement_timeout
    # ends it when the timeout passes.

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
        import psycopg

        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            stopper = Stopper(raw.cancel_safe)
            try:
                with raw.cursor() as cursor:
                    cursor.execute("SET TRANSACTION READ ONLY")
                    cursor.execute("SET LOCAL TIME ZONE 'UTC'")
                    # Each statement of this transaction (the DECLARE, each FETCH) gets the whole timeout.
                    cursor.execute(f"SET LOCAL statement_timeout = {max(1, round(timeout * 1000))}")
                    # This first query also fixes the snapshot, after which the
                    # transaction can no longer be switched to READ WRITE.
                    cursor.execute(_MAY_DROP_PRIVILEGES)
                    if cursor.fetchone()[0]:
                        cursor.execute("SET LOCAL ROLE pg_read_all_data")
                with stoppable(stopper, cancellation, timer=None):
                    description, rows = _fetch_streamed(raw, sql, max_rows)
            except psycopg.Error as exc:
                raise _query_error(exc, stopper.reason, timeout) from exc
            finally:
                if stopper.reason is None:
                    raw.rollback()
                else:
                    # A cancel request travels apart from the connection and could
                    # still reach the server after the query ended: never reuse it.
                    conn.invalidate()
        return QueryResult(
            columns=[column.name for column in description],
            rows=[normalise(row, ()) for row in rows[:max_rows]],
            truncated=max_rows is not None and len(rows) > max_rows,
        )

    # -- the OMOP export ---------------------------------------------------------------

    def omop_number(self, text_sql: str) -> str:
        return f"CASE WHEN {text_sql} ~ '^[-+]?[0-9]+([.][0-9]+)?$' THEN CAST({text_sql} AS double precision) END"

    def refresh_statistics(self, connection: sa.Connection, table: str) -> None:
        # Without it the planner takes a table just filled (by this transaction, or by a save
        # autovacuum has not seen yet) for the empty or small one it last analyzed, and joins it by
        # nested loops: 20-77 s instead of 3 s for the star schema of 10,000 patients. ANALYZE
        # samples a bounded number of rows, the transaction's own new ones too.
        connection.execute(sa.text(f"ANALYZE {table}"))

    # -- whole tables as Arrow (backup, restore, copy) ----------------------------------
    #
    # Rows travel as CSV through COPY, parsed and written by pyarrow's CSV
    # reader and writer: no Python per value. In CSV an unquoted empty field
    # is NULL and a quoted one ("") the empty string, both ways.

    def stored_columns(self, connection: sa.Connection, schema: str | None, table: str) -> list[tuple[str, str]]:
        rows = connection.exec_driver_sql(
            "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
            "WHERE table_schema = coalesce(%(schema)s, current_schema()) AND table_name = %(table)s "
            "ORDER BY ordinal_position",
            {"schema": schema, "table": table},
        ).all()
        where = f"{schema}.{table}" if schema else table
        return [(name, _portable_kind(f"{where}.{name}", *rest)) for name, *rest in rows]

    def delete_all(self, connection: sa.Connection, table: str) -> None:
        # audit_log's trigger refuses every DELETE (append-only); the store's owner replacing the
        # whole store suspends it for this statement, inside the transaction, which DDL shares here.
        connection.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        connection.exec_driver_sql(f"DELETE FROM {table}")
        connection.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER USER")

    #: One read-only REPEATABLE READ transaction sees one snapshot of the whole database.
    snapshot_options: ClassVar[dict[str, Any]] = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}

    def read_arrow(
        self, connection: sa.Connection, table: str, schema: pa.Schema, kinds: Sequence[str], batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        from pyarrow import csv

        _text_settings(connection)
        names = ", ".join(quote(connection, n) for n in schema.names)
        cursor = connection.connection.driver_connection.cursor()
        try:
            with cursor.copy(
                f"COPY (SELECT {names} FROM {qualified(connection, table)}) TO STDOUT (FORMAT csv)"
            ) as copy:
                stream = _CopyStream(copy)
                if not stream.peek():
                    return
                reader = csv.open_csv(
                    stream,
                    read_options=csv.ReadOptions(
                        column_names=schema.names, use_threads=False, block_size=_block_size(batch_rows)
                    ),
                    parse_options=csv.ParseOptions(newlines_in_values=True),
                    convert_options=_csv_convert(schema),
                )
                for batch in reader:
                    yield batch.cast(schema)
        finally:
            cursor.close()

    def write_arrow(self, connection: sa.Connection, table: str, batch: pa.RecordBatch) -> None:
        from pyarrow import csv

        if batch.num_rows == 0:
            return
        _text_settings(connection)
        sink = io.BytesIO()
        csv.write_csv(batch, sink, write_options=csv.WriteOptions(include_header=False))
        names = ", ".join(quote(connection, n) for n in batch.schema.names)
        cursor = connection.connection.driver_connection.cursor()
        with cursor, cursor.copy(f"COPY {qualified(connection, table)} ({names}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(sink.getbuffer())

    # -- the batch writer's staging tables ---------------------------------------------

    def claim_writer(self, connection: sa.Connection, key: int) -> bool:
        # A session-level advisory lock: it outlives the writer's transactions and
        # ends with its connection, also when the process is killed.
        return bool(
            connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:space, :key)"), {"space": _WRITER_LOCK_SPACE, "key": key}
            ).scalar_one()
        )

    def release_writer(self, connection: sa.Connection, key: int) -> None:
        connection.execute(
            sa.text("SELECT pg_advisory_unlock(:space, :key)"), {"space": _WRITER_LOCK_SPACE, "key": key}
        )

    def upsert_arrow(
        self, session: Session, table: sa.Table, data: pa.Table, *, versioning: Versioning | None = None
    ) -> None:
        import pyarrow.compute as pc

        if not data.num_rows:
            return
        # As CSV written by Arrow, column by column: no Python per value. In
        # key order, the order the upsert through the staging table locks rows in.
        key = pc.utf8_lower(pc.replace_substring(data.column("id"), "-", ""))
        data = data.select([c.name for c in table.columns]).take(pc.sort_indices(key))
        text = _csv(data)

        def write(copy: Any) -> None:
            copy.write(text)

        if not _copy_straight(session, table.name, data.column_names, write, _CSV):
            self._stage_upsert(session, table, versioning, _CSV, write)

    def scenario_table(self, session: Session, table: sa.Table, scenario: ScenarioRef, entity_type: str) -> pa.Table:
        # JSON as jsonb prints it: a load parses each distinct text once, not compacted first.
        return self._scenario_table(session, table, scenario, entity_type)

    def scenario_tables(
        self, session: Session, scenario_id: uuid.UUID, tables: Sequence[tuple[str, sa.Table]]
    ) -> Iterator[pa.Table]:
        # The next type's COPY runs on a thread of its own while the caller decodes
        # this one, so the server's part of a fetch (the join, the sort, the text)
        # overlaps the decoding. One fetch at a time on the connection, which
        # nothing else uses until the iterator ends; leaving early waits for the
        # fetch running.
        raw = _driver(session)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="healthsim-fetch") as pool:
            fetching = None
            for index, (entity_type, table) in enumerate(tables):
                if fetching is None:
                    fetching = pool.submit(_scenario_table, raw, table, scenario_id, entity_type)
                data = fetching.result()
                fetching = None
                if index + 1 < len(tables):
                    following, following_table = tables[index + 1]
                    fetching = pool.submit(_scenario_table, raw, following_table, scenario_id, following)
                yield data


def _naive_utc(column: sa.Column) -> str:
    """A scenario query's select expression of ``column``: a date-time with time zone as naive UTC."""
    if isinstance(column.type, sa.DateTime) and column.type.timezone:
        return f"(t.{column.name} AT TIME ZONE 'UTC') AS {column.name}"
    return f"t.{column.name}"


def _scenario_table(raw: Any, table: sa.Table, scenario: ScenarioRef, entity_type: str) -> pa.Table:
    """The scenario's rows of ``table`` in its Arrow schema, JSON as PostgreSQL's text.

    The rows travel as CSV through ``COPY ... TO STDOUT``, parsed by
    pyarrow's CSV reader: no Python per value. Time zone and date style are
    fixed for the COPY and given back to the transaction afterwards.
    """
    from pyarrow import csv

    schema = arrow_schema(table)
    sql = scenario_query(table).format(sid=scenario_id_sql(scenario, "%(sid)s"), etype="%(etype)s")
    with raw.cursor() as cursor:
        cursor.execute(_FIX_TEXT_SETTINGS)
        previous = cursor.fetchone()
        with cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)", {"sid": str(scenario), "etype": entity_type}) as copy:
            data = _CopyStream(copy).read_all()
        cursor.execute(_RESTORE_TEXT_SETTINGS, previous[:2])
    if not data:
        return schema.empty_table()
    return csv.read_csv(
        pa.py_buffer(data),
        read_options=csv.ReadOptions(column_names=schema.names, block_size=_block_size(len(data) >> 9)),
        parse_options=csv.ParseOptions(newlines_in_values=True),
        convert_options=_csv_convert(schema),
    ).cast(schema)


def _copy_straight(
    session: Session, table: str, names: Sequence[str], write: Callable[[Any], None], options: str
) -> bool:
    """Whether the rows ``write`` sends to a ``COPY ... FROM STDIN`` (with
    ``options``) of the columns ``names`` went straight into ``table``: not
    when one of their keys is stored.

    Rows none of which is stored yet (a new scenario's, the usual case) are
    written once, not also into a staging table, and there is nothing to keep
    in the history or compare. After a batch met a stored key (an overwrite's;
    another writer's meanwhile), the table's batches of this session go
    through the staging table without trying.
    """
    import psycopg

    stored = session.info.setdefault("_hs_pg_stored", set())
    if table in stored:
        return False
    with _driver(session).cursor() as cursor:
        cursor.execute("SAVEPOINT _hs_copy")
        try:
            with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN {options}") as copy:
                write(copy)
        except psycopg.errors.UniqueViolation:
            # The staging path decides, and raises what it cannot resolve (a key
            # twice in the batch, another unique constraint broken).
            cursor.execute("ROLLBACK TO SAVEPOINT _hs_copy")
            cursor.execute("RELEASE SAVEPOINT _hs_copy")
            stored.add(table)
            return False
        cursor.execute("RELEASE SAVEPOINT _hs_copy")
        return True


def _query_error(exc: Exception, stopped: str | None, timeout: float) -> QueryError:
    import psycopg

    if stopped == "cancelled":
        return QueryError(CANCELLED)
    if isinstance(exc, psycopg.errors.QueryCanceled) and "statement timeout" in (exc.diag.message_primary or ""):
        return timed_out(timeout)
    if isinstance(exc, psycopg.errors.SyntaxError) and "multiple commands" in (exc.diag.message_primary or ""):
        # The server's words for a second statement in one prepared statement or DECLARE.
        return QueryError(ONE_STATEMENT)
    return failed(exc)


def _fetch_streamed(raw: Any, sql: str, max_rows: int | None) -> tuple[Any, list[Any]]:
    """The statement's description and at most ``max_rows + 1`` rows, in the open read-only transaction.

    A query runs in a server-side cursor, so the server sends only the rows
    fetched: a client-side cursor would receive the whole result first,
    whatever ``max_rows`` says. DECLARE accepts only SELECT and VALUES;
    anything else (SHOW, EXPLAIN, and every write) is rolled back to the
    savepoint and run as before, as one prepared statement, which fails with
    the database's own message for a write.
    """
    import psycopg

    with raw.cursor() as plain:
        plain.execute("SAVEPOINT healthsim_query")
        try:
            # The DECLARE goes by the extended protocol, which takes exactly one
            # command, so the query cannot end this transaction and start another.
            with raw.cursor(name="healthsim_query") as cursor:
                cursor.execute(sql)
                description = cursor.description or []
                rows = cursor.fetchall() if max_rows is None else cursor.fetchmany(max_rows + 1)
                return description, rows
        except (psycopg.errors.SyntaxError, psycopg.errors.FeatureNotSupported):  # DECLARE refused the statement
            plain.execute("ROLLBACK TO SAVEPOINT healthsim_query")
        # A prepared statement holds exactly one command, so the query cannot end
        # this transaction and start another.
        plain.execute(sql, prepare=True)
        description = plain.description or []
        if not description:
            return description, []
        return description, plain.fetchall() if max_rows is None else plain.fetchmany(max_rows + 1)


#: PostgreSQL's column types (information_schema's names) and their portable kinds.
_KINDS = {
    "uuid": "uuid",
    "json": "json",
    "jsonb": "json",
    "character varying": "string",
    "text": "string",
    "boolean": "boolean",
    "smallint": "int16",
    "integer": "int32",
    "bigint": "int64",
    "real": "float32",
    "double precision": "float64",
    "date": "date",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
}


def _portable_kind(column: str, data_type: str, precision: int | None, scale: int | None) -> str:
    if data_type in _KINDS:
        return _KINDS[data_type]
    if data_type == "numeric" and precision is not None:
        return f"decimal({precision},{scale or 0})"
    raise BackupError(f"the column {column} is of type {data_type}, which backups and copies do not carry")


def _csv(data: pa.Table) -> memoryview:
    """``data`` as CSV for ``COPY ... FROM STDIN (FORMAT csv)``: a NULL as an unquoted empty
    field, every text quoted (the empty one as "")."""
    import pyarrow.compute as pc
    from pyarrow import csv

    # Arrow writes a time-zone-aware timestamp 30 times slower than a naive one
    # (it converts each to the zone): the UTC ones go as naive text marked Z.
    columns = [
        pc.binary_join_element_wise(column.cast(pa.timestamp(column.type.unit)).cast(pa.string()), "Z", "")
        if pa.types.is_timestamp(column.type) and column.type.tz is not None
        else column
        for column in data.columns
    ]
    sink = io.BytesIO()
    csv.write_csv(
        pa.Table.from_arrays(columns, names=data.column_names),
        sink,
        write_options=csv.WriteOptions(include_header=False),
    )
    return sink.getbuffer()


def _csv_convert(schema: pa.Schema) -> Any:
    """How pyarrow reads PostgreSQL's CSV of ``schema``'s columns: an unquoted empty field is NULL,
    a quoted one ("") the empty string."""
    from pyarrow import csv

    return csv.ConvertOptions(
        column_types=schema,
        null_values=[""],  # not pyarrow's default list: "null" and "NA" are text here
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        true_values=["t"],
        false_values=["f"],
    )


#: The settings a COPY of values as text needs (UTC, ISO dates), taken for this transaction;
#: returns the ones they replace, for :data:`_RESTORE_TEXT_SETTINGS`. The CTE reads them first.
_FIX_TEXT_SETTINGS = (
    "WITH old AS MATERIALIZED (SELECT current_setting('TimeZone') AS tz, current_setting('DateStyle') AS ds) "
    "SELECT tz, ds, set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true) FROM old"
)
_RESTORE_TEXT_SETTINGS = "SELECT set_config('TimeZone', %s, true), set_config('DateStyle', %s, true)"


def _compact_json(texts: pa.ChunkedArray) -> pa.ChunkedArray:
    """JSON texts as PostgreSQL's jsonb prints them, written compactly (as DuckDB keeps them).
    Each distinct text is parsed once: most repeat."""
    encoded = texts.combine_chunks().dictionary_encode()
    parsed = [None if text is None else json.loads(text) for text in encoded.dictionary.to_pylist()]
    # A JSON null as a NULL, as the driver's rows gave it before.
    compact = [None if v is None else json.dumps(v, separators=(",", ":"), ensure_ascii=False) for v in parsed]
    return pa.chunked_array([pa.array(compact, pa.string()).take(encoded.indices)])


def _text_settings(connection: sa.Connection) -> None:
    """Values as text in the forms pyarrow reads and writes, for the rest of the transaction."""
    for setting in ("TIME ZONE 'UTC'", "DateStyle = 'ISO, YMD'", "extra_float_digits = 1"):
        connection.exec_driver_sql(f"SET LOCAL {setting}")


def _block_size(batch_rows: int) -> int:
    """Bytes of CSV per batch read: about ``batch_rows`` rows of a wide table, within 1-32 MiB."""
    return min(max(batch_rows * 512, 1 << 20), 32 << 20)


class _CopyStream(io.RawIOBase):
    """The data of a ``COPY ... TO STDOUT`` as a file pyarrow reads from.

    psycopg hands over one row per read; a read here fills the whole buffer
    pyarrow asks to fill (a block of many rows), or returns what is left.
    """

    def __init__(self, copy: Any) -> None:
        self._copy = copy
        self._pending = memoryview(b"")

    def peek(self) -> bytes:
        """The next data, kept for the next read (empty at the end)."""
        if not self._pending:
            self._pending = memoryview(bytes(self._copy.read()))
        return bytes(self._pending)

    def readable(self) -> bool:
        return True

    def read_all(self) -> bytes:
        """All the data left, at once."""
        parts = [bytes(self._pending)]
        while part := self._copy.read():
            parts.append(bytes(part))
        self._pending = memoryview(b"")
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(target):
            if not self._pending:
                self._pending = memoryview(bytes(self._copy.read()))
                if not self._pending:
                    break  # the end of the data
            size = min(len(target) - filled, len(self._pending))
            target[filled : filled + size] = self._pending[:size]
            self._pending = self._pending[size:]
            filled += size
        return filled
