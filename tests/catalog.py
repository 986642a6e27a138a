"""What a database says its schema is, in one comparable shape for both backends.

DuckDB's SQLAlchemy reflection is broken (see docs/architecture.md), so its
schema is read from DuckDB's own catalog functions; PostgreSQL's from the
SQLAlchemy inspector.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthsim_models.base import index_created_on


@dataclass(frozen=True)
class TableShape:
    columns: dict[str, tuple[str, bool]]  # name -> (normalised type, nullable)
    primary_key: tuple[str, ...]
    indexes: dict[str, tuple[str, ...]]  # name -> columns
    unique: frozenset[tuple[str, ...]]  # column sets of unique constraints


def normalise_type(name: str) -> str:
    """One spelling per type: DECIMAL(12,2), VARCHAR, TIMESTAMPTZ, JSON, ..."""
    t = name.upper().replace(" ", "")
    t = re.sub(r"^NUMERIC", "DECIMAL", t)
    return {
        "TEXT": "VARCHAR",
        "CHARACTERVARYING": "VARCHAR",
        "TIMESTAMPWITHTIMEZONE": "TIMESTAMPTZ",
        "JSONB": "JSON",
        "DOUBLEPRECISION": "DOUBLE",
    }.get(t, t)


def model_shape(table: sa.Table, dialect: sa.Dialect) -> TableShape:
    return TableShape(
        columns={c.name: (normalise_type(c.type.compile(dialect=dialect)), bool(c.nullable)) for c in table.columns},
        primary_key=tuple(c.name for c in table.primary_key.columns),
        indexes={
            str(i.name): tuple(c.name for c in i.columns) for i in table.indexes if index_created_on(i, dialect.name)
        },
        unique=frozenset(
            tuple(c.name for c in u.columns) for u in table.constraints if isinstance(u, sa.UniqueConstraint)
        ),
    )


def _qualified(schema: str | None, table: str) -> str:
    """The key of ``Base.metadata.tables``: ``table`` in the default schema, else ``schema.table``."""
    return table if schema is None else f"{schema}.{table}"


def _duckdb_shapes(connection: sa.Connection) -> dict[str, TableShape]:
    def rows(sql: str) -> list[tuple]:
        return [tuple(r) for r in connection.exec_driver_sql(sql).fetchall()]

    tables = rows(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() ORDER BY schema_name, table_name"
    )
    shapes = {}
    for schema, table in tables:
        where = f"WHERE database_name = current_database() AND schema_name = '{schema}' AND table_name = '{table}'"
        columns = {
            name: (normalise_type(data_type), bool(nullable))
            for name, data_type, nullable in rows(
                f"SELECT column_name, data_type, is_nullable FROM duckdb_columns() {where} ORDER BY column_index"
            )
        }
        constraints = rows(f"SELECT constraint_type, constraint_column_names FROM duckdb_constraints() {where}")
        indexes = {
            name: tuple(c.strip() for c in expressions.strip("[]").split(","))
            for name, expressions in rows(f"SELECT index_name, expressions FROM duckdb_indexes() {where}")
        }
        shapes[_qualified(None if schema == "main" else schema, table)] = TableShape(
            columns=columns,
            primary_key=next((tuple(cols) for kind, cols in constraints if kind == "PRIMARY KEY"), ()),
            indexes=indexes,
            unique=frozenset(tuple(cols) for kind, cols in constraints if kind == "UNIQUE"),
        )
    return shapes


def _inspector_shapes(connection: sa.Connection) -> dict[str, TableShape]:
    inspector = sa.inspect(connection)
    shapes = {}
    schemas = [None, *(s for s in inspector.get_schema_names() if s not in ("public", "information_schema"))]
    for schema in schemas:
        for table in inspector.get_table_names(schema=schema):
            shapes[_qualified(schema, table)] = TableShape(
                columns={
                    c["name"]: (normalise_type(c["type"].compile(dialect=connection.dialect)), c["nullable"])
                    for c in inspector.get_columns(table, schema=schema)
                },
                primary_key=tuple(inspector.get_pk_constraint(table, schema=schema)["constrained_columns"]),
                indexes={
                    i["name"]: tuple(i["column_names"])
                    for i in inspector.get_indexes(table, schema=schema)
                    if not i.get("duplicates_constraint")
                },
                unique=frozenset(
                    tuple(u["column_names"]) for u in inspector.get_unique_constraints(table, schema=schema)
                ),
            )
    return shapes


def database_shapes(engine: Engine) -> dict[str, TableShape]:
    """Every table of the database in every schema (Alembic's own version table included),
    keyed as ``Base.metadata.tables`` is: ``table``, or ``schema.table`` outside the default schema."""
    with engine.connect() as connection:
        if engine.dialect.name == "duckdb":
            return _duckdb_shapes(connection)
        return _inspector_shapes(connection)
