"""Alembic environment for HealthSim Store (DuckDB and PostgreSQL).

The connection comes from the caller (``config.attributes["connection"]``,
as healthsim_models.schema_version passes it) or is opened here from
``-x url=...``, else ``HEALTHSIM_DATABASE_URL``, else the default DuckDB file.
All revisions of one run share one transaction. A comparison with the models
(``alembic check``, ``revision --autogenerate``) runs on PostgreSQL only, and
on a database at head.
"""

from __future__ import annotations

from logging.config import fileConfig

import sqlalchemy as sa
from alembic.util import CommandError

import healthsim_models.alembic_duckdb  # noqa: F401  (registers the duckdb impl)
from alembic import context
from healthsim_models import Base
from healthsim_models.engine import create_store_engine, mask_url
from healthsim_models.errors import HealthSimError
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


def _comparing() -> bool:
    """Whether this run compares the database with the models (check, revision --autogenerate)."""
    revision_context = context.get_context().opts.get("revision_context")
    return revision_context is not None and bool(revision_context.command_args.get("autogenerate"))


def _refuse_comparison(connection: sa.Connection) -> None:
    """Say in one line why a comparison cannot run here, instead of alembic's traceback or terse line.

    CommandError is what the alembic command prints as one line (FAILED: ...).
    """
    url = mask_url(connection.engine.url)
    if connection.dialect.name == "duckdb":
        raise CommandError(
            f"alembic check and revision --autogenerate cannot read a DuckDB database ({url}): "
            "duckdb-engine's schema reflection is broken (it queries pg_catalog tables DuckDB lacks). "
            "Compare against PostgreSQL instead (.venv/bin/alembic -x url=postgresql+psycopg://USER@HOST/DB "
            "check, on a database at head), or run the test suite's DuckDB catalog comparison "
            "(.venv/bin/python -m pytest tests/test_schema.py)"
        )
    current = context.get_context().get_current_heads()
    heads = context.script.get_heads()
    if set(current) != set(heads):
        raise CommandError(
            f"{url} is at revision {', '.join(current) or 'base (empty)'}, not at head "
            f"{', '.join(heads)}; alembic check compares a database at head with the models. "
            "Upgrade it first: .venv/bin/alembic -x url=... upgrade head (the same URL), then check again"
        )


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        include_schemas=True,
        include_name=_include_name,
        on_version_apply=record_migration_step,
    )
    if _comparing():
        _refuse_comparison(connection)
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
    try:
        engine = create_store_engine(url, upgrade=False)
    except HealthSimError as exc:  # one line from the alembic command, not a traceback
        raise CommandError(str(exc)) from exc
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
