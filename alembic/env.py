"""Alembic environment for HealthSim Store (DuckDB and PostgreSQL).

The connection comes from the caller (``config.attributes["connection"]``,
as healthsim_models.schema_version passes it) or is opened here from
``-x url=...``, else ``HEALTHSIM_DATABASE_URL``, else the default DuckDB file.
All revisions of one run share one transaction.
"""

from __future__ import annotations

from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

import healthsim_models.alembic_duckdb  # noqa: F401  (registers the duckdb impl)
from healthsim_models import Base
from healthsim_models.engine import create_store_engine
from healthsim_models.schema_version import record_migration_step

# Any constant will do; concurrent first-use upgrades of one PostgreSQL
# database queue on it instead of racing to create the same tables.
_PG_MIGRATION_LOCK = 0x4845414C5448  # "HEALTH"


# Schemas holding the store's tables: the default one (None) and those the
# models name. Comparisons (`alembic check`) look at these and nothing else;
# the version table stays in the default schema.
_SCHEMAS = {None} | {table.schema for table in Base.metadata.tables.values()}


def _include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    if type_ == "schema":
        return name in _SCHEMAS
    return True


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        include_schemas=True,
        include_name=_include_name,
        on_version_apply=record_migration_step,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    engine = create_store_engine(url, upgrade=False)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.config.config_file_name is not None:
    # Only the alembic command has an .ini; library callers keep their logging.
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    raise SystemExit(
        "HealthSim Store does not support offline (--sql) migrations: "
        "revisions are checked against a live DuckDB or PostgreSQL database."
    )
run_migrations_online()
