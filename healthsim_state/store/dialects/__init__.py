"""The database backends the store runs on, one :class:`StoreDialect` object each.

Everything the store does differently per backend (set-based writes and
reads, row and key locks, what counts as a collision with another writer,
CSV staging for reference data, the read-only query) is a method or a
capability of the dialect; the rest of the store asks :func:`dialect_of`
for it and never names a backend. Another backend is one subclass of
:class:`StoreDialect` (or of one below, as a DuckDB service reached by
another URL would be) and its entry in :data:`DIALECTS`.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from healthsim_models.errors import ConfigurationError
from healthsim_state.store.dialects.base import StoreDialect
from healthsim_state.store.dialects.duckdb import DuckDBDialect
from healthsim_state.store.dialects.postgresql import PostgreSQLDialect

__all__ = ["DIALECTS", "DuckDBDialect", "PostgreSQLDialect", "StoreDialect", "dialect_of"]

#: The dialect of each backend, by SQLAlchemy dialect name.
DIALECTS: dict[str, StoreDialect] = {d.name: d for d in (DuckDBDialect(), PostgreSQLDialect())}


def dialect_of(where: Session | Connection | Engine | URL) -> StoreDialect:
    """The dialect of the database behind a session, connection, engine or URL."""
    if isinstance(where, Session):
        name = where.get_bind().dialect.name
    elif isinstance(where, URL):
        name = where.get_backend_name()
    else:
        name = where.dialect.name
    dialect = DIALECTS.get(name)
    if dialect is None:
        raise ConfigurationError(
            f"the store does not run on {name!r} databases; supported backends: {', '.join(DIALECTS)}"
        )
    return dialect
