"""Read-only SQL over the store, enforced by the database rather than by inspecting the SQL.

- DuckDB: the file is opened with a read-only connection, external access
  (files, ATTACH, COPY ... TO, extension installs) disabled and the
  configuration locked, so SET and PRAGMA cannot change it either.
- PostgreSQL: the statement runs in a READ ONLY transaction that is always
  rolled back. When the user may, the transaction also drops to the
  predefined role ``pg_read_all_data``, so that a superuser's query cannot
  reach server files or programs (``COPY ... TO PROGRAM``, ``lo_export``).

Either way exactly one statement runs per call. The store is opened (and
upgraded to the latest schema) before the query, like every other use.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from healthsim_models.engine import (
    DEFAULT_LOCK_TIMEOUT,
    get_engine,
    is_duckdb,
    mask_url,
    resolve_database_url,
)
from healthsim_models.errors import ConfigurationError, InvalidArgumentError, QueryError, StoreLockedError


@dataclass(frozen=True)
class QueryResult:
    """Columns and rows of one query; ``truncated`` when rows beyond ``max_rows`` were left out.

    Values are plain Python: str, int, float, bool, None, ``Decimal``,
    ``date``/``datetime`` (aware ones in UTC), ``uuid.UUID``, lists and dicts
    (JSON columns decoded). :meth:`records` and :func:`json_value` turn them
    into JSON types.
    """

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready object per row, keyed by column name."""
        repeated = sorted({name for name in self.columns if self.columns.count(name) > 1})
        if repeated:
            raise QueryError(
                f"the result has several columns named {', '.join(map(repr, repeated))}; "
                "give each its own name (SELECT ... AS name) to get one object per row"
            )
        return [{name: json_value(value) for name, value in zip(self.columns, row, strict=True)} for row in self.rows]


def json_value(value: Any) -> Any:
    """``value`` as JSON types, deterministically: decimals, dates, times, UUIDs,
    intervals and non-finite floats become strings, bytes base64 text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dt.datetime):
        return _utc(value).isoformat()
    if isinstance(value, Decimal | dt.date | dt.time | uuid.UUID | dt.timedelta):
        return value.isoformat() if isinstance(value, dt.date | dt.time) else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


def run_query(sql: str, *, database_url: str | None = None, max_rows: int | None = None) -> QueryResult:
    """Run one read-only SQL statement and return at most ``max_rows`` rows (all when None).

    Raises :class:`QueryError` with the database's message for invalid SQL
    and for any attempt to write, :class:`StoreLockedError` when the DuckDB
    file stays held read-write (by another process, or by an open session of
    this one) for longer than the lock timeout.
    """
    if not isinstance(sql, str) or not sql.strip():
        raise QueryError("no SQL given: pass one statement, e.g. SELECT count(*) FROM patients")
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0):
        raise InvalidArgumentError(f"max_rows must be a whole number >= 0 or None, got {max_rows!r}")
    url = resolve_database_url(database_url)
    if is_duckdb(url) and (not url.database or url.database == ":memory:"):
        raise ConfigurationError(
            f"{mask_url(url)} is an in-memory database, which only its own engine can see; "
            "queries need a DuckDB file or a PostgreSQL URL"
        )
    engine = get_engine(url)  # opens the store and brings it to the latest schema
    if is_duckdb(url):
        return _duckdb_query(Path(url.database).expanduser(), sql, max_rows)
    return _postgresql_query(engine, sql, max_rows)


# -- DuckDB -----------------------------------------------------------------

#: Settings of the read-only connection, applied in order; the last locks them,
#: so the query cannot undo them. No progress bar: DuckDB draws its own on
#: stderr whether or not it is a terminal.
_DUCKDB_SETTINGS = ("enable_external_access = false", "enable_progress_bar = false", "lock_configuration = true")


def _duckdb_query(path: Path, sql: str, max_rows: int | None) -> QueryResult:
    import duckdb

    con = _duckdb_connect(path)
    try:
        try:
            statements = con.extract_statements(sql)
            if len(statements) != 1:
                raise QueryError(f"expected one SQL statement, got {len(statements)}: run them one at a time")
            cursor = con.execute(sql)
            description = cursor.description or []
            rows = cursor.fetchall() if max_rows is None else cursor.fetchmany(max_rows + 1)
        except duckdb.Error as exc:
            raise QueryError(_first_line(exc)) from exc
    finally:
        con.close()
    truncated = max_rows is not None and len(rows) > max_rows
    json_columns = [i for i, column in enumerate(description) if str(column[1]) == "JSON"]
    return QueryResult(
        columns=[column[0] for column in description],
        rows=[_normalise(row, json_columns) for row in rows[:max_rows]],
        truncated=truncated,
    )


_PID = re.compile(r"PID \d+")

#: Seconds a query waits for a read-write holder of the DuckDB file to let go.
LOCK_TIMEOUT = DEFAULT_LOCK_TIMEOUT


def _duckdb_connect(path: Path) -> Any:
    """A read-only connection, waiting up to :data:`LOCK_TIMEOUT` seconds for a read-write holder to let go.

    Another process's read-write connection locks the file; a read-write
    connection of this process makes DuckDB refuse a second, differently
    configured one. Both end when that connection closes, so both are waited for.
    """
    import duckdb

    timeout = LOCK_TIMEOUT
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            con = duckdb.connect(str(path), read_only=True)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            text = str(exc)
            other_process = isinstance(exc, duckdb.IOException) and "lock" in text.lower()
            this_process = isinstance(exc, duckdb.ConnectionException) and "different configuration" in text
            if not (other_process or this_process):
                raise QueryError(_first_line(exc)) from exc
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
        for setting in _DUCKDB_SETTINGS:
            con.execute(f"SET {setting}")
        return con


# -- PostgreSQL -------------------------------------------------------------

_MAY_DROP_PRIVILEGES = (
    "SELECT to_regrole('pg_read_all_data') IS NOT NULL "
    "AND pg_has_role(current_user, 'pg_read_all_data', 'MEMBER')"
)


def _postgresql_query(engine: Engine, sql: str, max_rows: int | None) -> QueryResult:
    import psycopg

    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        try:
            with raw.cursor() as cursor:
                cursor.execute("SET TRANSACTION READ ONLY")
                cursor.execute("SET LOCAL TIME ZONE 'UTC'")
                # This first query also fixes the snapshot, after which the
                # transaction can no longer be switched to READ WRITE.
                cursor.execute(_MAY_DROP_PRIVILEGES)
                if cursor.fetchone()[0]:
                    cursor.execute("SET LOCAL ROLE pg_read_all_data")
            description, rows = _fetch_streamed(raw, sql, max_rows)
        except psycopg.Error as exc:
            raise QueryError(_first_line(exc)) from exc
        finally:
            raw.rollback()
    return QueryResult(
        columns=[column.name for column in description],
        rows=[_normalise(row, ()) for row in rows[:max_rows]],
        truncated=max_rows is not None and len(rows) > max_rows,
    )


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


# -- shared -----------------------------------------------------------------


def _normalise(row: Sequence[Any], json_columns: Iterable[int]) -> tuple[Any, ...]:
    values = [_utc(v) if isinstance(v, dt.datetime) else v for v in row]
    for i in json_columns:
        if isinstance(values[i], str):
            values[i] = json.loads(values[i])
    return tuple(values)


def _utc(value: dt.datetime) -> dt.datetime:
    """Aware date-times in UTC, so results do not depend on the session's time zone."""
    return value.astimezone(dt.timezone.utc) if value.tzinfo is not None else value


def _first_line(exc: BaseException) -> str:
    """The database's message on one line, keeping its hint (DuckDB's "Did you mean ...",
    PostgreSQL's HINT) and leaving out the echo of the SQL with a caret under it."""
    diag = getattr(exc, "diag", None)  # psycopg
    if diag is not None and diag.message_primary:
        hint = f" (hint: {diag.message_hint})" if diag.message_hint else ""
        return f"query failed: {diag.message_primary}{hint}"
    lines = []
    for line in str(exc).strip().splitlines():
        if not line.strip() or line.startswith("LINE "):
            break
        lines.append(line.strip())
    return f"query failed: {' '.join(lines) or type(exc).__name__}"
