"""Teach Alembic about the ``duckdb`` dialect.

Without an implementation registered under the dialect's name Alembic fails
with ``KeyError: 'duckdb'``. DuckDB DDL is transactional, and saying so makes
a failed upgrade roll back whole instead of leaving earlier revisions of the
same run committed.
"""

from __future__ import annotations

from alembic.ddl.impl import DefaultImpl


class DuckDBImpl(DefaultImpl):
    """Alembic operations for DuckDB: the defaults, run in one transaction."""

    __dialect__ = "duckdb"
    transactional_ddl = True
