"""Read-only SQL over the store, enforced by the database rather than by inspecting the SQL.

- DuckDB: the file is opened with a read-only connection, external access
  (files, ATTACH, COPY ... TO, extension installs) disabled and the
  configuration locked, so SET and PRAGMA cannot change it either.
- PostgreSQL: the statement runs in a READ ONLY transaction that is always
  rolled back. When the user may, the transaction also drops to the
  predefined role ``pg_read_all_data``, so that a superuser's query cannot
  reach server files or programs (``COPY ... TO PROGRAM``, ``lo_export``).

Either way exactly one statement runs per call, for at most a timeout
(default :data:`DEFAULT_TIMEOUT` seconds, or ``HEALTHSIM_QUERY_TIMEOUT``):
PostgreSQL ends it with ``statement_timeout``, DuckDB by interrupting the
connection from a timer. A :class:`Cancellation` lets another thread stop a
running query (the MCP server does when its client cancels a call). The store
is opened (and upgraded to the latest schema) before the query, like every
other use.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from healthsim_models.engine import (
    DEFAULT_LOCK_TIMEOUT,
    DUCKDB_CONFIG,
    get_engine,
    is_duckdb,
    mask_url,
    resolve_database_url,
)
from healthsim_models.errors import (
    ConfigurationError,
    InvalidArgumentError,
    QueryError,
    QueryTimeoutError,
    StoreLockedError,
)

#: Seconds a query may run unless the caller or ``HEALTHSIM_QUERY_TIMEOUT`` says otherwise.
DEFAULT_TIMEOUT = 30.0
ENV_TIMEOUT = "HEALTHSIM_QUERY_TIMEOUT"

#: One message for several statements, whichever backend noticed.
ONE_STATEMENT = "expected one SQL statement, got several: run them one at a time"
CANCELLED = "the query was cancelled before it finished; nothing was changed"


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


def run_query(
    sql: str,
    *,
    database_url: str | None = None,
    max_rows: int | None = None,
    timeout: float | None = None,
    cancellation: Cancellation | None = None,
    engine: Engine | None = None,
) -> QueryResult:
    """Run one read-only SQL statement and return at most ``max_rows`` rows (all when None).

    ``timeout``: seconds the statement may run (default :func:`default_timeout`);
    ``cancellation``: lets another thread stop it; ``engine``: an engine of the
    store already opened at the latest schema (the MCP server's), else the
    process-wide one for ``database_url``.

    Raises :class:`QueryError` with the database's message for invalid SQL
    and for any attempt to write, and when cancelled; :class:`QueryTimeoutError`
    when the statement ran longer than the timeout; :class:`StoreLockedError`
    when the DuckDB file stays held read-write (by another process, or by an
    open session of this one) for longer than the lock timeout.
    """
    if not isinstance(sql, str) or not sql.strip():
        raise QueryError("no SQL given: pass one statement, e.g. SELECT count(*) FROM patients")
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0):
        raise InvalidArgumentError(f"max_rows must be a whole number >= 0 or None, got {max_rows!r}")
    seconds = default_timeout() if timeout is None else _checked_timeout(timeout, "timeout")
    url = engine.url if engine is not None else resolve_database_url(database_url)
    if is_duckdb(url) and (not url.database or url.database == ":memory:"):
        raise ConfigurationError(
            f"{mask_url(url)} is an in-memory database, which only its own engine can see; "
            "queries need a DuckDB file or a PostgreSQL URL"
        )
    if engine is None:
        engine = get_engine(url)  # opens the store and brings it to the latest schema
    if is_duckdb(url):
        return _duckdb_query(Path(url.database).expanduser(), sql, max_rows, seconds, cancellation)
    return _postgresql_query(engine, sql, max_rows, seconds, cancellation)


def default_timeout() -> float:
    """``HEALTHSIM_QUERY_TIMEOUT`` in seconds when set, else :data:`DEFAULT_TIMEOUT`."""
    text = os.environ.get(ENV_TIMEOUT, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        return _checked_timeout(float(text), ENV_TIMEOUT)
    except (ValueError, InvalidArgumentError):
        raise ConfigurationError(
            f"{ENV_TIMEOUT} must be a number of seconds greater than 0, got {text!r}; "
            f"fix or unset it (the default is {DEFAULT_TIMEOUT:g})"
        ) from None


def _checked_timeout(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"{name} must be a number of seconds greater than 0, got {value!r}")
    return float(value)


def _timed_out(seconds: float) -> QueryTimeoutError:
    return QueryTimeoutError(
        f"the query ran longer than {seconds:g} s and was cancelled; nothing was changed. Narrow the query, "
        f"or raise the limit: --timeout SECONDS (healthsim query), the timeout argument (run_query, "
        f"the MCP query tool) or {ENV_TIMEOUT}"
    )


class Cancellation:
    """Stops a running :func:`run_query` from another thread: pass it as
    ``cancellation=``, then call :meth:`cancel`.

    The query then raises :class:`QueryError` saying it was cancelled; a
    cancellation before the query starts stops it before it runs, one after
    it ended does nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._stop: Callable[[str], None] | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            stop = self._stop
        if stop is not None:
            stop("cancelled")

    def _attach(self, stop: Callable[[str], None] | None) -> None:
        with self._lock:
            if stop is not None and self._cancelled:
                raise QueryError(CANCELLED)
            self._stop = stop


class _Stopper:
    """Stops the statement running on one connection and remembers the first
    reason ("timeout" or "cancelled"); does nothing once the caller is done with the connection."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        self._lock = threading.Lock()
        self._live = True
        self.reason: str | None = None

    def __call__(self, reason: str) -> None:
        # Under the lock: the connection is never closed or handed back while it is being stopped.
        with self._lock:
            if not self._live:
                return
            if self.reason is None:
                self.reason = reason
            # Every time: a stop that came between two statements may have been lost, the timer's must not be.
            self._stop()

    def finish(self) -> None:
        with self._lock:
            self._live = False


@contextmanager
def _stoppable(stopper: _Stopper, cancellation: Cancellation | None, timer: float | None) -> Iterator[None]:
    """While the block runs, ``cancellation`` (and, after ``timer`` seconds, a timer thread) may stop it."""
    if cancellation is not None:
        cancellation._attach(stopper)
    alarm = None
    if timer is not None:
        alarm = threading.Timer(timer, stopper, args=("timeout",))
        alarm.daemon = True
        alarm.start()
    try:
        yield
    finally:
        stopper.finish()
        if alarm is not None:
            alarm.cancel()
        if cancellation is not None:
            cancellation._attach(None)


# -- DuckDB -----------------------------------------------------------------

#: The read-only connection's configuration, fixed when DuckDB opens the file.
#: No extension is installed or loaded behind the query's back (DuckDB would
#: fetch sqlite_scanner for a SQLite file, say). Every read-only connection of
#: this process uses exactly this configuration, so that they share one open
#: database: DuckDB refuses a second, differently configured one.
_DUCKDB_CONFIG = {**DUCKDB_CONFIG, "enable_external_access": False}


def _duckdb_query(
    path: Path, sql: str, max_rows: int | None, timeout: float, cancellation: Cancellation | None
) -> QueryResult:
    import duckdb

    con = _duckdb_connect(path, lock=True)
    try:
        stopper = _Stopper(con.interrupt)
        try:
            with _stoppable(stopper, cancellation, timer=timeout):
                statements = con.extract_statements(sql)
                if len(statements) != 1:
                    raise QueryError(ONE_STATEMENT)
                cursor = con.execute(sql)
                description = cursor.description or []
                rows = cursor.fetchall() if max_rows is None else cursor.fetchmany(max_rows + 1)
        except duckdb.Error as exc:
            if stopper.reason == "timeout":
                raise _timed_out(timeout) from exc
            if stopper.reason == "cancelled":
                raise QueryError(CANCELLED) from exc
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


def _duckdb_connect(path: Path, *, lock: bool) -> Any:
    """A read-only connection, waiting up to :data:`LOCK_TIMEOUT` seconds for a read-write holder to let go.

    Another process's read-write connection locks the file; a read-write
    connection of this process makes DuckDB refuse a second, differently
    configured one. Both end when that connection closes, so both are waited for.

    With ``lock``, the configuration is locked before the connection is
    returned, so SQL run on it cannot change any setting. The lock holds for
    the database, so also for the other read-only connections open beside it.
    """
    import duckdb

    timeout = LOCK_TIMEOUT
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            con = duckdb.connect(str(path), read_only=True, config=dict(_DUCKDB_CONFIG))
        except duckdb.Error as exc:
            text = str(exc)
            other_process = isinstance(exc, duckdb.IOException) and "lock" in text.lower()
            this_process = isinstance(exc, duckdb.ConnectionException) and "different configuration" in text
            if not (other_process or this_process):
                # E.g. a SQLite file, which DuckDB would read through an extension it is not allowed to load.
                reason = _first_line(exc).removeprefix("query failed: ")
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


def read_only_engine(url: URL) -> Engine:
    """An engine over read-only connections to the DuckDB file at ``url``, for reads
    that must run beside :func:`run_query` in this process (the MCP server's read tools).

    The file must exist at the latest schema (open it with the store's engine
    first). The connections are those of :func:`run_query`, so they share its
    open database; without pooling, the file is held only while one is open.
    """
    from duckdb_engine import ConnectionWrapper

    if not is_duckdb(url) or not url.database or url.database == ":memory:":
        raise ConfigurationError(f"{mask_url(url)} is not a DuckDB file")
    path = Path(url.database).expanduser()
    engine = sa.create_engine(url, poolclass=NullPool)

    @sa.event.listens_for(engine, "do_connect")
    def _connect(dialect, conn_rec, cargs, cparams):  # type: ignore[no-untyped-def]
        return ConnectionWrapper(_duckdb_connect(path, lock=False))

    return engine


# -- PostgreSQL -------------------------------------------------------------

_MAY_DROP_PRIVILEGES = (
    "SELECT to_regrole('pg_read_all_data') IS NOT NULL AND pg_has_role(current_user, 'pg_read_all_data', 'MEMBER')"
)


def _postgresql_query(
    engine: Engine, sql: str, max_rows: int | None, timeout: float, cancellation: Cancellation | None
) -> QueryResult:
    import psycopg

    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        stopper = _Stopper(raw.cancel_safe)
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
            with _stoppable(stopper, cancellation, timer=None):
                description, rows = _fetch_streamed(raw, sql, max_rows)
        except psycopg.Error as exc:
            raise _postgresql_error(exc, stopper.reason, timeout) from exc
        finally:
            if stopper.reason is None:
                raw.rollback()
            else:
                # A cancel request travels apart from the connection and could
                # still reach the server after the query ended: never reuse it.
                conn.invalidate()
    return QueryResult(
        columns=[column.name for column in description],
        rows=[_normalise(row, ()) for row in rows[:max_rows]],
        truncated=max_rows is not None and len(rows) > max_rows,
    )


def _postgresql_error(exc: Exception, stopped: str | None, timeout: float) -> QueryError:
    import psycopg

    if stopped == "cancelled":
        return QueryError(CANCELLED)
    if isinstance(exc, psycopg.errors.QueryCanceled) and "statement timeout" in (exc.diag.message_primary or ""):
        return _timed_out(timeout)
    if isinstance(exc, psycopg.errors.SyntaxError) and "multiple commands" in (exc.diag.message_primary or ""):
        # The server's words for a second statement in one prepared statement or DECLARE.
        return QueryError(ONE_STATEMENT)
    return QueryError(_first_line(exc))


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
    return value.astimezone(dt.UTC) if value.tzinfo is not None else value


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
