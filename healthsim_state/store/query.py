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
other use. How each backend does it is its dialect's
(:meth:`~healthsim_state.store.dialects.StoreDialect.run_read_only`); this
module checks the arguments and picks the dialect.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from healthsim_models.audit import MAX_ERROR_TEXT
from healthsim_models.engine import DEFAULT_LOCK_TIMEOUT, get_engine, mask_url, resolve_database_url
from healthsim_models.errors import ConfigurationError, InvalidArgumentError, QueryError
from healthsim_state.store.audit import record_read_apart
from healthsim_state.store.dialects import StoreDialect, dialect_of
from healthsim_state.store.readonly import (
    CANCELLED,
    ENV_TIMEOUT,
    ONE_STATEMENT,
    Cancellation,
    QueryResult,
    json_value,
)

__all__ = [
    "CANCELLED",
    "DEFAULT_TIMEOUT",
    "ENV_TIMEOUT",
    "LOCK_TIMEOUT",
    "ONE_STATEMENT",
    "Cancellation",
    "QueryResult",
    "default_timeout",
    "json_value",
    "read_only_engine",
    "run_query",
]

#: Seconds a query may run unless the caller or ``HEALTHSIM_QUERY_TIMEOUT`` says otherwise.
DEFAULT_TIMEOUT = 30.0

#: Seconds a query waits for a read-write holder of the DuckDB file to let go.
LOCK_TIMEOUT = DEFAULT_LOCK_TIMEOUT


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
    dialect = dialect_of(url)
    if dialect.in_memory(url):
        raise ConfigurationError(
            f"{mask_url(url)} is an in-memory database, which only its own engine can see; "
            "queries need a DuckDB file or a PostgreSQL URL"
        )
    if engine is None:
        engine = get_engine(url)  # opens the store and brings it to the latest schema
    result = dialect.run_read_only(
        engine, url, sql, max_rows=max_rows, timeout=seconds, cancellation=cancellation, lock_timeout=LOCK_TIMEOUT
    )
    with _reader(url, dialect, engine) as reader:  # the audit trail, when reads are audited
        record_read_apart(engine, "query", reader=reader, details={"sql": sql[:MAX_ERROR_TEXT]})
    return result


@contextmanager
def _reader(url: URL, dialect: StoreDialect, engine: Engine) -> Iterator[Engine]:
    """Where the store is a DuckDB file, read-only connections of their own, else ``engine``."""
    if not dialect.own_read_only_connections:
        yield engine
        return
    reader = read_only_engine(url)
    try:
        yield reader
    finally:
        reader.dispose()


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


def read_only_engine(url: URL) -> Engine:
    """An engine over read-only connections to the DuckDB file at ``url``, for reads
    that must run beside :func:`run_query` in this process (the MCP server's read tools).

    The file must exist at the latest schema (open it with the store's engine
    first). The connections are those of :func:`run_query`, so they share its
    open database; without pooling, the file is held only while one is open.
    """
    dialect = dialect_of(url)
    if not dialect.own_read_only_connections or dialect.in_memory(url):
        raise ConfigurationError(f"{mask_url(url)} is not a DuckDB file")
    engine = sa.create_engine(url, poolclass=NullPool)

    @sa.event.listens_for(engine, "do_connect")
    def _connect(dialect_, conn_rec, cargs, cparams):  # type: ignore[no-untyped-def]
        return dialect.read_only_connection(url, lock_timeout=LOCK_TIMEOUT)

    return engine
