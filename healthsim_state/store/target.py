"""A store about to receive a whole store (a restore or a copy) and the tables it receives.

Everything runs in the caller's transaction on the target, so a failure
anywhere leaves the target as it was. The target must hold no data (the
schema history aside) unless it is to be replaced; it is then emptied,
brought to the revision of the data it receives, loaded table by table
with each table's rows and checksum checked, and upgraded to head.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import sqlalchemy as sa

from alembic import command
from healthsim_models import schema_version
from healthsim_models.audit import AuditEvent
from healthsim_models.errors import BackupError
from healthsim_models.location import mask_url
from healthsim_models.system import SchemaMigration
from healthsim_state.store.checksum import TableChecksum
from healthsim_state.store.dialects import dialect_of
from healthsim_state.store.dialects.base import qualified
from healthsim_state.store.messages import database_message
from healthsim_state.store.portable import TableSpec, known_revisions, read_table, store_revision, store_tables

#: Modules whose errors a bulk write raises as they are (the drivers call no SQLAlchemy).
_DRIVERS = ("psycopg", "duckdb", "_duckdb", "sqlalchemy")


def _migrate(connection: sa.Connection, current: str | None, revision: str) -> None:
    config = schema_version.alembic_config(connection)
    if current is None or known_revisions().index(current) < known_revisions().index(revision):
        command.upgrade(config, revision)
    elif current != revision:
        command.downgrade(config, revision)


def prepare(connection: sa.Connection, revision: str, *, replace: bool, source: str) -> None:
    """Make the target empty and at ``revision``; a target holding data is refused unless ``replace``.

    The schema history and the audit trail do not count as data: a new store
    records its own creation there. They are replaced by the source's too.
    ``source`` names what is restored or copied, for the messages.
    """
    where = f"the store {mask_url(connection.engine.url)}"
    current = store_revision(connection, where)
    if current is not None:
        tables = store_tables(connection)
        counts = {
            spec.name: connection.exec_driver_sql(f"SELECT count(*) FROM {qualified(connection, spec.name)}").scalar()
            for spec in tables
            if spec.name not in (SchemaMigration.__tablename__, AuditEvent.__tablename__)
        }
        holding = {name: count for name, count in counts.items() if count}
        if holding and not replace:
            listed = ", ".join(f"{name}: {count}" for name, count in list(holding.items())[:3])
            shown = (
                f"{sum(holding.values())} rows in {len(holding)} tables ({listed}{', ...' if len(holding) > 3 else ''})"
            )
            raise BackupError(
                f"{where} is not empty: it holds {shown}; {source} goes only into an empty store, never merged "
                "into one. To replace that data give --replace (replace=True), or choose an empty database. "
                "Nothing was changed."
            )
        dialect = dialect_of(connection)
        for spec in reversed(tables):
            dialect.delete_all(connection, qualified(connection, spec.name))
    _migrate(connection, current, revision)
    # The history of the schema comes with the data; the steps just run are not part of it.
    connection.execute(sa.delete(SchemaMigration.__table__))


def load(
    connection: sa.Connection, spec: TableSpec, batches: Iterable[pa.RecordBatch], *, source: str
) -> TableChecksum:
    """Insert ``batches`` into the target's table of ``spec``; the rows and checksum of what was inserted."""
    schema, _, name = spec.name.rpartition(".")
    target_columns = dialect_of(connection).stored_columns(connection, schema or None, name)
    if sorted(target_columns) != sorted((c.name, c.kind) for c in spec.columns):
        raise BackupError(
            f"the table {spec.name} of {source} does not have the columns the target store has at the same "
            f"revision: {source} is damaged. Nothing was changed."
        )
    sums = TableChecksum(spec.columns)
    write = dialect_of(connection).write_arrow
    for batch in batches:
        sums.add(batch)
        try:
            write(connection, spec.name, batch)
        except Exception as exc:
            if type(exc).__module__.split(".")[0] not in _DRIVERS:
                raise
            raise BackupError(
                f"the table {spec.name} of {source} cannot be written into {mask_url(connection.engine.url)}: "
                f"{database_message(exc)}. Nothing was changed."
            ) from exc
    return sums


def verify(name: str, got: TableChecksum, rows: int, checksum: str, *, source: str) -> None:
    """Refuse the table ``name`` unless it has ``rows`` rows with ``checksum``."""
    if (got.rows, got.value) != (rows, checksum):
        raise BackupError(
            f"the table {name} of {source} holds {got.rows} rows with checksum {got.value}, but "
            f"{rows} rows with checksum {checksum} were expected: {source} is damaged or was changed. "
            "Nothing was changed."
        )


def stored(connection: sa.Connection, spec: TableSpec) -> TableChecksum:
    """The rows and checksum of ``spec``'s table as the target now holds it."""
    sums = TableChecksum(spec.columns)
    for batch in read_table(connection, spec):
        sums.add(batch)
    return sums


def finish(connection: sa.Connection) -> None:
    """Upgrade the loaded target to head (a no-op when it is there)."""
    command.upgrade(schema_version.alembic_config(connection), "head")
