"""Engines and sessions: where the database is and how it is opened.

The URL is, in order: the one passed in, ``HEALTHSIM_DATABASE_URL``, or the
DuckDB file ``healthsim.duckdb`` in ``HEALTHSIM_HOME`` (default
``~/.healthsim``). Opening a store upgrades its schema to the latest
revision (:func:`healthsim_models.schema_version.ensure_at_head`).

A DuckDB file admits one read-write process at a time, so DuckDB engines
keep no idle connections: the file is held only while a connection or
session is open, and another process (an MCP server beside a CLI, say) can
take its turn in between. A connection attempt that meets a lock retries for
a bounded time, then fails with :class:`StoreLockedError`.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, StaticPool

from healthsim_models.errors import ConfigurationError, StoreLockedError

ENV_HOME = "HEALTHSIM_HOME"
ENV_DATABASE_URL = "HEALTHSIM_DATABASE_URL"
DEFAULT_FILENAME = "healthsim.duckdb"

#: Seconds a connection attempt waits for another process to release a DuckDB file.
DEFAULT_LOCK_TIMEOUT = 10.0

#: The hint every URL error ends with.
URL_FORMS = "Expected e.g. duckdb:////path/to/file.duckdb or postgresql+psycopg://user@host/dbname"


def home_dir() -> Path:
    """The HealthSim home directory: ``HEALTHSIM_HOME`` or ``~/.healthsim``."""
    override = os.environ.get(ENV_HOME)
    return Path(override).expanduser() if override else Path.home() / ".healthsim"


def default_database_url() -> URL:
    """The embedded default: a DuckDB file in the home directory."""
    return URL.create("duckdb", database=str(home_dir() / DEFAULT_FILENAME))


def resolve_database_url(url: str | URL | None = None) -> URL:
    """The URL to use: ``url``, else ``HEALTHSIM_DATABASE_URL``, else the default file."""
    chosen = url if url is not None else os.environ.get(ENV_DATABASE_URL) or None
    if chosen is None:
        return default_database_url()
    try:
        return make_url(chosen)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"cannot parse database URL {chosen!r}: {exc}. {URL_FORMS}") from exc


def is_duckdb(url: URL) -> bool:
    return url.get_backend_name() == "duckdb"


def _duckdb_file(url: URL) -> Path | None:
    """The file behind a DuckDB URL, or None for an in-memory database."""
    if not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser()


def _prepare_directory(path: Path) -> None:
    """Create the database's directory, readable by its owner only.

    Existing directories are left as they are: their mode is the user's choice.
    """
    missing = []
    for parent in (path.parent, *path.parent.parents):
        if parent.exists():
            break
        missing.append(parent)
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
        # mkdir's mode is filtered by the umask; say it exactly.
        directory.chmod(0o700)


def mask_url(url: URL) -> str:
    """The URL as text for people: any password replaced by ``***``, the database as written.

    SQLAlchemy percent-encodes the database part (``%3Amemory%3A``); a message
    shows ``duckdb:///:memory:`` and a file path as the user typed it.
    """
    if not url.database:
        return url.render_as_string(hide_password=True)
    without = URL.create(url.drivername, url.username, url.password, url.host, url.port, None, url.query)
    head, mark, query = without.render_as_string(hide_password=True).partition("?")
    return f"{head}/{url.database}{mark}{query}"


_PID = re.compile(r"PID (\d+)")


def _install_lock_retry(engine: Engine, path: Path, timeout: float) -> None:
    import duckdb

    @event.listens_for(engine, "do_connect")
    def _connect(dialect, conn_rec, cargs, cparams):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            try:
                return dialect.connect(*cargs, **cparams)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise ConfigurationError(f"cannot open the DuckDB file {path}: {exc}") from exc
                if time.monotonic() >= deadline:
                    holder = _PID.search(str(exc))
                    who = f"process {holder.group(1)}" if holder else "another process"
                    raise StoreLockedError(
                        f"the database file {path} is in use by {who}; waited "
                        f"{timeout:g}s for it. Close the other HealthSim program "
                        "(a CLI command, MCP server or notebook) or try again."
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.25)


def _install_connect_errors(engine: Engine, url: URL) -> None:
    """A server that cannot be reached becomes a :class:`ConfigurationError` naming the (masked) URL."""

    @event.listens_for(engine, "do_connect")
    def _connect(dialect, conn_rec, cargs, cparams):  # type: ignore[no-untyped-def]
        try:
            return dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.Error as exc:
            reason = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise ConfigurationError(
                f"cannot connect to {mask_url(url)}: {reason or type(exc).__name__} "
                "(check that the server is running and the URL is right)"
            ) from exc


def _create_engine(url: URL, **options) -> Engine:  # type: ignore[no-untyped-def]
    """``sa.create_engine``, with an unknown dialect or missing driver as a :class:`ConfigurationError`."""
    try:
        return sa.create_engine(url, **options)
    except sa.exc.NoSuchModuleError as exc:
        raise ConfigurationError(
            f"unknown database kind {url.drivername!r} in {mask_url(url)}. {URL_FORMS}"
        ) from exc
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"no driver for {mask_url(url)}: {exc}. For PostgreSQL, "
            "install the extra: pip install 'healthsim-store[postgresql]'"
        ) from exc


def create_store_engine(
    url: str | URL | None = None,
    *,
    upgrade: bool = True,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    echo: bool = False,
) -> Engine:
    """An engine for ``url`` (see :func:`resolve_database_url`).

    With ``upgrade`` (the default), the schema is brought to the latest
    revision; a database at a revision this code does not know is refused
    with :class:`SchemaVersionError` and left untouched.
    """
    resolved = resolve_database_url(url)
    if is_duckdb(resolved):
        path = _duckdb_file(resolved)
        if path is None:
            # One in-memory database per engine: every checkout must see it.
            engine = _create_engine(resolved, poolclass=StaticPool, echo=echo)
        else:
            _prepare_directory(path)
            engine = _create_engine(resolved, poolclass=NullPool, echo=echo)
            _install_lock_retry(engine, path, lock_timeout)
    else:
        engine = _create_engine(resolved, pool_pre_ping=True, echo=echo)
        _install_connect_errors(engine, resolved)
    if upgrade:
        from healthsim_models.schema_version import ensure_at_head

        try:
            ensure_at_head(engine)
        except BaseException:
            engine.dispose()
            raise
    return engine


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def get_engine(url: str | URL | None = None) -> Engine:
    """The process-wide engine for ``url``, created (and upgraded) on first use."""
    key = resolve_database_url(url).render_as_string(hide_password=False)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = create_store_engine(key)
            _engines[key] = engine
        return engine


def dispose_engines() -> None:
    """Dispose every engine :func:`get_engine` made (tests, and before fork)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    """Sessions bound to ``engine`` (default: :func:`get_engine`).

    Objects stay readable after commit: the repository hands them to callers
    after the session closed.
    """
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
