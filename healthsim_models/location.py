"""Where the store is: its URL, the default file, and how either is shown to people.

Kept apart from :mod:`healthsim_models.engine` (which opens stores) so that
:mod:`healthsim_models.schema_version`, which the engine calls on open, can
name a store in its messages without importing the engine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from healthsim_models.errors import ConfigurationError, NotAStoreError

ENV_HOME = "HEALTHSIM_HOME"
ENV_DATABASE_URL = "HEALTHSIM_DATABASE_URL"
DEFAULT_FILENAME = "healthsim.duckdb"

#: The database kinds a store runs on (SQLAlchemy backend names).
BACKENDS = ("duckdb", "postgresql")

#: The hint every URL error ends with.
URL_FORMS = "Expected e.g. duckdb:////path/to/file.duckdb or postgresql+psycopg://user@host/dbname"

#: How to put the store elsewhere, for errors about its file or folder.
CHOOSE_ANOTHER_PLACE = (
    f"Choose another place for the store: pass --database-url (e.g. duckdb:////path/to/store.duckdb), "
    f"or set {ENV_DATABASE_URL}, or set {ENV_HOME} to a folder for {DEFAULT_FILENAME}"
)


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
        resolved = make_url(chosen)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"cannot parse database URL {chosen!r}: {exc}. {URL_FORMS}") from exc
    if resolved.get_backend_name() not in BACKENDS:
        raise ConfigurationError(f"unknown database kind {resolved.drivername!r} in {mask_url(resolved)}. {URL_FORMS}")
    if is_duckdb(resolved) and remote_duckdb(resolved):
        raise ConfigurationError(
            f"{mask_url(resolved)} names a remote DuckDB database (MotherDuck, or a file behind a URL): a store "
            "is a local DuckDB file, an in-memory DuckDB database or a PostgreSQL database, and it never loads "
            "the DuckDB extensions a remote one needs. Share a store through PostgreSQL instead "
            "(healthsim db copy --to postgresql+psycopg://...); docs/scale.md says what MotherDuck would take"
        )
    return resolved


#: A DuckDB database part that DuckDB reads as an extension's protocol, not a
#: path: MotherDuck (``md:my_db``), a file behind a URL (``s3://...``), and any
#: other ``name:`` prefix (DuckDB looks for a ``name`` extension). One letter
#: and a colon is a Windows drive.
_REMOTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")


def remote_duckdb(url: URL) -> bool:
    """Whether a DuckDB URL names a database that is not a local file or ``:memory:``."""
    return bool(url.database) and _REMOTE.match(url.database) is not None


def is_duckdb(url: URL) -> bool:
    return url.get_backend_name() == "duckdb"


def duckdb_file(url: URL) -> Path | None:
    """The file behind a DuckDB URL, or None for an in-memory database."""
    if not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser()


def not_a_store(path: Path, what: str) -> NotAStoreError:
    """The error for a file at the store path that is not a HealthSim store."""
    return NotAStoreError(
        f"{path} is not a HealthSim store: it is {what}. It was left untouched. {CHOOSE_ANOTHER_PLACE}."
    )


#: Query parameters whose values are credentials (``motherduck_token``,
#: ``password``, ``sslpassword``, ``secret``, ``api_key``): hidden like a password.
_SECRET_PARAMETER = re.compile(r"token|password|secret|key", re.IGNORECASE)


def mask_url(url: URL) -> str:
    """The URL as text for people: any password or credential parameter replaced
    by ``***``, the database as written.

    SQLAlchemy percent-encodes the database part (``%3Amemory%3A``); a message
    shows ``duckdb:///:memory:`` and a file path as the user typed it.
    """
    without = URL.create(url.drivername, url.username, url.password, url.host, url.port)
    head = without.render_as_string(hide_password=True)
    if url.database:
        head = f"{head}/{url.database}"
    parameters = [
        f"{name}={'***' if _SECRET_PARAMETER.search(name) else value}"
        for name, values in url.query.items()
        for value in ((values,) if isinstance(values, str) else values)
    ]
    return head + ("?" + "&".join(parameters) if parameters else "")
