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

DuckDB connections never install or load extensions (:data:`DUCKDB_CONFIG`).
A file at the store path that is not a HealthSim store (a SQLite database,
another program's DuckDB database, any other file) is refused with
:class:`NotAStoreError` and left untouched. A store file HealthSim creates,
and its write-ahead log, are readable by their owner only.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, StaticPool

from healthsim_models.errors import ConfigurationError, StoreLockedError
from healthsim_models.location import (
    CHOOSE_ANOTHER_PLACE,
    URL_FORMS,
    duckdb_file,
    is_duckdb,
    mask_url,
    not_a_store,
    resolve_database_url,
)

#: Seconds a connection attempt waits for another process to release a DuckDB file.
DEFAULT_LOCK_TIMEOUT = 10.0

#: Settings of every DuckDB connection to a store (and of the read-only query
#: connection): DuckDB never installs or loads an extension on its own. By
#: default it would, e.g. download and load sqlite_scanner to open a SQLite
#: file found at the store path, running downloaded code against a file that
#: is not a store.
DUCKDB_CONFIG: dict[str, bool] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}

#: Permissions of a store file HealthSim creates, and of its write-ahead log.
STORE_FILE_MODE = 0o600

_DUCKDB_MAGIC = b"DUCK"  # at byte 8 of every DuckDB database file
_SQLITE_MAGIC = b"SQLite format 3\x00"


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
        try:
            directory.mkdir(mode=0o700)
            # mkdir's mode is filtered by the umask; say it exactly.
            directory.chmod(0o700)
        except FileExistsError:
            continue  # made meanwhile by another process or thread
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the folder {directory} for the database {path}: {_reason(exc)}. {CHOOSE_ANOTHER_PLACE}."
            ) from exc


def _reason(exc: OSError) -> str:
    """Why a file or folder could not be created, as words for people."""
    if isinstance(exc, NotADirectoryError):
        return f"{exc.strerror} (a part of that path is a file, not a folder)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{exc.strerror} (its parent folder is not writable by this user)"
    return exc.strerror or str(exc)


def _existing_store_file(path: Path) -> bool:
    """Whether a DuckDB database is at ``path``; False when nothing (or an empty file) is.

    Anything else is refused from its first bytes, before DuckDB opens it:
    DuckDB would otherwise try to load an extension for it (SQLite) or could
    change it.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        return False
    except IsADirectoryError as exc:
        raise not_a_store(path, "a folder") from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot read the database file {path}: {exc.strerror or exc}") from exc
    if not head:
        return False
    if head[8:12] == _DUCKDB_MAGIC:
        return True
    if head.startswith(_SQLITE_MAGIC):
        raise not_a_store(path, "a SQLite database")
    raise not_a_store(path, "not a database at all (its first bytes are neither DuckDB's nor SQLite's)")


def _create_store_file(path: Path) -> None:
    """Make an empty DuckDB database at ``path``, owner-only from the start.

    DuckDB creates files with mode 0666 minus the umask and refuses an empty
    file made beforehand; changing the umask would change it for every thread
    of the process. So the database is made in a fresh private folder (0700)
    beside ``path``, given its mode there, and then linked into place: no one
    else can open it before its mode is right, and ``os.link`` never replaces
    a file that another process made meanwhile. An empty file at ``path`` is
    replaced, keeping its mode (the user's choice).
    """
    import duckdb

    try:
        existing = path.stat()
    except FileNotFoundError:
        existing = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent))
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the database file {path}: {_reason(exc)}. {CHOOSE_ANOTHER_PLACE}."
        ) from exc
    try:
        fresh = staging / path.name
        duckdb.connect(str(fresh), config=dict(DUCKDB_CONFIG)).close()
        os.chmod(fresh, stat.S_IMODE(existing.st_mode) if existing else STORE_FILE_MODE)
        if existing is not None:
            os.replace(fresh, path)
            return
        try:
            os.link(fresh, path)
        except FileExistsError:
            pass  # another process or thread made the store first: it is used as it is
        except OSError:
            # A file system without hard links (FAT, some network shares):
            # rename, which could replace a store made in this instant.
            if not path.exists():
                os.rename(fresh, path)
    except (OSError, duckdb.Error) as exc:  # a full disk, say
        raise ConfigurationError(f"cannot create the database file {path}: {exc}") from exc
    finally:
        shutil.rmtree(staging)


def _install_quiet_progress(engine: Engine) -> None:
    """Turn DuckDB's progress bar off on every connection of ``engine``.

    DuckDB draws it on standard output, terminal or not, for any statement
    that runs longer than two seconds: into a JSON export written to stdout,
    a CSV of query results, or the MCP server's protocol stream. The setting
    belongs to the connection and cannot be given when the database opens.
    """

    @event.listens_for(engine, "connect")
    def _quiet(dbapi_connection, connection_record):  # type: ignore[no-untyped-def]
        dbapi_connection.execute("SET enable_progress_bar = false")


def _install_private_wal(engine: Engine, path: Path) -> None:
    """Give the write-ahead log the store file's permissions.

    DuckDB writes ``<file>.wal`` at commit, creating it (mode 0666 minus the
    umask) whenever a checkpoint removed it, and has no setting for its mode;
    it appends to a WAL that exists. So right before each commit the WAL is
    made here, if absent, with the mode of the store file. After a commit
    that wrote nothing an empty WAL stays, which DuckDB opens as usual.
    """
    wal = path.with_name(path.name + ".wal")

    @event.listens_for(engine, "commit")
    def _before_commit(conn):  # type: ignore[no-untyped-def]
        if wal.exists():
            return
        mode = stat.S_IMODE(path.stat().st_mode) & 0o666
        try:
            handle = os.open(wal, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & STORE_FILE_MODE)
        except FileExistsError:
            return  # DuckDB (another thread's commit) made it meanwhile
        try:
            os.chmod(wal, mode)  # the open's mode is filtered by the umask; say it exactly
        finally:
            os.close(handle)


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
            except duckdb.Error as exc:  # IOException for locks, Error for a damaged file, ...
                if not isinstance(exc, duckdb.IOException) or "lock" not in str(exc).lower():
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
        raise ConfigurationError(f"unknown database kind {url.drivername!r} in {mask_url(url)}. {URL_FORMS}") from exc
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"no driver for {mask_url(url)}: {exc}. For PostgreSQL, install psycopg: "
            "pip install 'psycopg[binary]' (from a clone of healthsim-store: "
            ".venv/bin/pip install -e '.[postgresql]')"
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
    path = None
    existed = False
    if is_duckdb(resolved):
        # Set in the URL, these would turn extension loading back on.
        reenabled = sorted(set(resolved.query) & set(DUCKDB_CONFIG))
        if reenabled:
            raise ConfigurationError(
                f"{mask_url(resolved)} sets {', '.join(reenabled)}: a store never installs or loads "
                "DuckDB extensions on its own; remove that setting from the URL"
            )
        connect_args = {"config": dict(DUCKDB_CONFIG)}
        path = duckdb_file(resolved)
        if path is None:
            # One in-memory database per engine: every checkout must see it.
            engine = _create_engine(resolved, poolclass=StaticPool, echo=echo, connect_args=connect_args)
            _install_quiet_progress(engine)
        else:
            _prepare_directory(path)
            existed = _existing_store_file(path)
            if not existed:
                _create_store_file(path)
            engine = _create_engine(resolved, poolclass=NullPool, echo=echo, connect_args=connect_args)
            _install_lock_retry(engine, path, lock_timeout)
            _install_private_wal(engine, path)
            _install_quiet_progress(engine)
    else:
        engine = _create_engine(resolved, pool_pre_ping=True, echo=echo)
        _install_connect_errors(engine, resolved)
    # Imported here, not at the top: Alembic takes about 150 ms to import, which
    # every `import healthsim_models` would otherwise pay.
    from healthsim_models import schema_version

    try:
        if upgrade:
            schema_version.ensure_at_head(engine)  # refuses another program's DuckDB file too
        elif existed:
            schema_version.refuse_foreign(engine)
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
