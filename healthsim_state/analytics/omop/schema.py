"""The OMOP CDM 5.4 schema: created from the official DDL shipped in ``ddl/``.

The DDL, primary-key and foreign-key files are OHDSI's own (CommonDataModel,
inst/ddl/5.4), with ``@cdmDatabaseSchema`` replaced by the schema's name. The
export's two side tables (:data:`ID_MAP`, :data:`ROW_SCENARIOS`) live in the
same schema. DuckDB cannot add a foreign key to an existing table, so there
the foreign keys are checked by queries instead; PostgreSQL gets them as
constraints, dropped at the start of a build and added again at its end, in
the same transaction (the vocabulary tables reference each other in a
circle, so the rows must all be there before the constraints are).
"""

from __future__ import annotations

import re
from importlib.resources import files

from sqlalchemy.orm import Session

from healthsim_models.errors import InvalidArgumentError

DEFAULT_SCHEMA = "omop"
#: (omop table, source key) -> the integer id the row has in every build.
ID_MAP = "hs_id_map"
#: (omop table, id, scenario id): which exported scenarios a row came from.
ROW_SCENARIOS = "hs_row_scenario"

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Schemas that hold the store itself or the databases' catalogues.
_RESERVED = frozenset({"main", "public", "information_schema", "pg_catalog", "pg_toast", "temp", "analytics"})
_FOREIGN_KEY = re.compile(r"ALTER TABLE (\S+)\s+ADD CONSTRAINT (\S+) FOREIGN KEY", re.IGNORECASE)


def schema_name(name: str) -> str:
    """``name`` checked as the OMOP schema's name: lower-case letters, digits and
    ``_``, not one of the store's own or a catalogue's; raises :class:`InvalidArgumentError`."""
    if not _NAME.fullmatch(name or ""):
        raise InvalidArgumentError(
            f"schema name {name!r}: use lower-case letters, digits and _ (at most 63, not starting with a digit)"
        )
    if name in _RESERVED:
        raise InvalidArgumentError(f"schema name {name!r} is taken by the store or the database; choose another")
    return name


def ddl_statements(backend: str, part: str, schema: str) -> list[str]:
    """The statements of one shipped DDL file (``ddl``, ``primary_keys``,
    ``constraints``) for ``backend``, placed in ``schema``."""
    text = (files(__package__) / "ddl" / backend / f"OMOPCDM_{backend}_5.4_{part}.sql").read_text("utf-8")
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    text = "\n".join(lines).replace("@cdmDatabaseSchema", schema)
    return [s.strip() for s in text.split(";") if s.strip()]


def schema_exists(session: Session, schema: str) -> bool:
    """Whether ``schema`` holds the OMOP tables and the export's side tables."""
    found = session.connection().exec_driver_sql(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = '"
        + schema
        + f"' AND table_name IN ('person', 'concept', '{ID_MAP}', '{ROW_SCENARIOS}')"
    )
    return found.scalar() == 4


def create_schema(session: Session, schema: str = DEFAULT_SCHEMA, *, foreign_keys: bool = True) -> bool:
    """Create the OMOP schema with its primary keys and the side tables, unless it
    exists; returns whether it was created. ``foreign_keys``: add PostgreSQL's
    constraints too (a build adds them once its rows are in). Runs in the caller's
    transaction."""
    schema = schema_name(schema)
    if schema_exists(session, schema):
        return False
    connection = session.connection()
    backend = connection.dialect.name
    connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for statement in ddl_statements(backend, "ddl", schema) + ddl_statements(backend, "primary_keys", schema):
        connection.exec_driver_sql(statement)
    # No keys on the side tables: the build keeps them unique (one set-based statement
    # each), and on DuckDB an index would cost every write its upkeep. PostgreSQL gets
    # the index its lookups by key use.
    connection.exec_driver_sql(
        f"CREATE TABLE {schema}.{ID_MAP} (omop_table varchar(50) NOT NULL, source_key varchar NOT NULL, "
        "id integer NOT NULL)"
    )
    connection.exec_driver_sql(
        f"CREATE TABLE {schema}.{ROW_SCENARIOS} (omop_table varchar(50) NOT NULL, id integer NOT NULL, "
        "scenario_id uuid NOT NULL)"
    )
    if backend == "postgresql":
        connection.exec_driver_sql(f"CREATE UNIQUE INDEX ix_{ID_MAP} ON {schema}.{ID_MAP} (omop_table, source_key)")
        connection.exec_driver_sql(f"CREATE INDEX ix_{ROW_SCENARIOS} ON {schema}.{ROW_SCENARIOS} (omop_table, id)")
    if backend == "postgresql" and foreign_keys:
        add_foreign_keys(session, schema)
    return True


def foreign_key_statements(backend: str, schema: str) -> list[tuple[str, str, str]]:
    """(table, constraint name, statement) of every foreign key of the official DDL."""
    found = []
    for statement in ddl_statements(backend, "constraints", schema):
        match = _FOREIGN_KEY.search(statement)
        if match:
            found.append((match.group(1), match.group(2), statement))
    return found


def drop_foreign_keys(session: Session, schema: str) -> None:
    """Drop the foreign-key constraints (PostgreSQL), for a build to rewrite the tables."""
    connection = session.connection()
    for table, name, _ in foreign_key_statements("postgresql", schema):
        connection.exec_driver_sql(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")


def add_foreign_keys(session: Session, schema: str) -> None:
    """Add the foreign-key constraints (PostgreSQL); the database checks every row."""
    connection = session.connection()
    for _, _, statement in foreign_key_statements("postgresql", schema):
        connection.exec_driver_sql(statement)
