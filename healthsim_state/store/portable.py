"""The store's tables in a backend-independent form, for backup, restore and copy.

Which tables: every table of the models' metadata that the database holds,
parents before children (``metadata.sorted_tables``), so tables added by
later revisions are included without a list to keep. Their columns come
from the database's own catalog, so a store at an older revision is read
as it is. Each column has a portable *kind* (``uuid``, ``json``,
``string``, ``int64``, ``decimal(12,2)``, ``timestamptz``, ...) and an
Arrow type: UUIDs and JSON as text, instants as UTC microseconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthsim_models.base import Base
from healthsim_models.errors import BackupError
from healthsim_state.store.checksum import Column

_FIXED: dict[str, pa.DataType] = {
    "uuid": pa.string(),
    "json": pa.string(),
    "string": pa.string(),
    "boolean": pa.bool_(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}
_DECIMAL = re.compile(r"decimal\((\d+),(\d+)\)")


def arrow_type(kind: str) -> pa.DataType:
    """The Arrow type of a column of ``kind``."""
    if kind in _FIXED:
        return _FIXED[kind]
    match = _DECIMAL.fullmatch(kind)
    if match is None:
        raise BackupError(f"unknown column kind {kind!r}: this backup was written by a newer HealthSim Store")
    return pa.decimal128(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class TableSpec:
    """One table: its name (``schema.table`` outside the default schema) and columns."""

    name: str
    columns: tuple[Column, ...]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, arrow_type(c.kind)) for c in self.columns])

    @property
    def table(self) -> sa.Table:
        return Base.metadata.tables[self.name]


def store_tables(connection: sa.Connection) -> list[TableSpec]:
    """Every table of the models the database holds, parents first, with its columns as stored."""
    from healthsim_state.store.dialects import dialect_of

    dialect = dialect_of(connection)
    specs = []
    for table in Base.metadata.sorted_tables:
        columns = dialect.stored_columns(connection, table.schema, table.name)
        if columns:
            specs.append(TableSpec(table.fullname, tuple(Column(name, kind) for name, kind in columns)))
    return specs


#: Rows per batch read or written: bounds the memory a table takes in passing.
BATCH_ROWS = 65_536


def known_revisions() -> list[str]:
    """The revisions this code knows, oldest first."""
    from healthsim_models import schema_version

    return [script.revision for script in reversed(list(schema_version.script_directory().walk_revisions()))]


def store_revision(connection: sa.Connection, where: str) -> str | None:
    """The revision of the store behind ``connection`` (None: no store there yet).

    A revision this code does not know (a store of a newer version) is refused;
    ``where`` names the store in the message.
    """
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(connection).get_current_heads()
    if not heads:
        return None
    if heads[0] not in known_revisions():
        raise BackupError(
            f"{where} is at schema revision {heads[0]}, which this version of healthsim-store "
            f"(head {known_revisions()[-1]}) does not know: it was written by a newer version. "
            "Upgrade healthsim-store; nothing was changed."
        )
    return heads[0]


@contextmanager
def reading(source: Engine | Session) -> Iterator[sa.Connection]:
    """A connection that reads one state of the store: an engine's snapshot
    (:meth:`StoreDialect.snapshot`), or the session's own transaction."""
    if isinstance(source, Session):
        yield source.connection()
        return
    from healthsim_state.store.dialects import dialect_of

    with dialect_of(source).snapshot(source) as connection:
        yield connection


def read_table(connection: sa.Connection, spec: TableSpec) -> Iterator[pa.RecordBatch]:
    """The rows of ``spec``'s table as batches of its Arrow schema."""
    from healthsim_state.store.dialects import dialect_of

    kinds = [c.kind for c in spec.columns]
    yield from dialect_of(connection).read_arrow(connection, spec.name, spec.schema, kinds, BATCH_ROWS)
