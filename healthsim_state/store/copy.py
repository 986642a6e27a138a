"""Copy: a whole store into another database, of either backend.

The source is read in one snapshot and streamed table by table, parents
first, in Arrow batches into the target, in one transaction on the target:
the target is emptied (only when asked to be replaced; a target holding
data is refused otherwise), brought to the source's schema revision, and
each table is read back and compared with the source by rows and
checksum. Any failure leaves the target as it was. This is how a laptop
store becomes a team store on PostgreSQL, and back.

The copy is one audited operation (``store_copy``) of the target: its event
is added after the source's audit trail is in place, in the same
transaction; a refused copy leaves its event in the trail the target
already had (a new database has none).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session

from healthsim_models.engine import create_store_engine
from healthsim_models.errors import BackupError
from healthsim_models.location import duckdb_file, is_duckdb, mask_url, resolve_database_url
from healthsim_state.store import target
from healthsim_state.store.audit import audited
from healthsim_state.store.portable import read_table, reading, store_revision, store_tables


@dataclass(frozen=True)
class CopiedTable:
    name: str
    rows: int
    checksum: str


@dataclass(frozen=True)
class CopyReport:
    """What a copy moved: the schema revision and each table's rows and checksum."""

    schema_revision: str
    tables: tuple[CopiedTable, ...]

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def _same_database(a: URL, b: URL) -> bool:
    if is_duckdb(a) and is_duckdb(b):
        path_a, path_b = duckdb_file(a), duckdb_file(b)
        return path_a is not None and path_b is not None and path_a.resolve() == path_b.resolve()
    return a.render_as_string(hide_password=False) == b.render_as_string(hide_password=False)


def copy_store(source: Engine | Session, target_url: str | URL, *, replace: bool = False) -> CopyReport:
    """Copy the whole store behind ``source`` into the database at ``target_url``."""
    source_url = (source.get_bind() if isinstance(source, Session) else source).url
    to = resolve_database_url(target_url)
    if _same_database(source_url, to):
        raise BackupError(f"{mask_url(to)} is the store being copied: give another database as the target")
    engine = create_store_engine(to, upgrade=False)
    what = f"the copy of {mask_url(source_url)}"
    try:
        with Session(engine) as session:
            with audited(session, "store_copy", details={"source": mask_url(source_url)}) as event:
                report = _copy(source, session.connection(), source_url, replace, what)
                event.details["schema_revision"] = report.schema_revision
                event.counts = {t.name: t.rows for t in report.tables}
            session.commit()  # the copy with its event
    finally:
        engine.dispose()
    return report


def _copy(source: Engine | Session, write: sa.Connection, source_url: URL, replace: bool, what: str) -> CopyReport:
    with reading(source) as read:
        revision = store_revision(read, f"the store {mask_url(source_url)}")
        if revision is None:
            raise BackupError(f"{mask_url(source_url)} holds no HealthSim store (no schema revision): nothing to copy")
        specs = store_tables(read)
        target.prepare(write, revision, replace=replace, source=what)
        copied = []
        for spec in specs:
            # Closed before the snapshot ends, even on a failure: a PostgreSQL
            # COPY left half-read would hold the source connection.
            with closing(read_table(read, spec)) as batches:
                sent = target.load(write, spec, batches, source=what)
            target.verify(spec.name, target.stored(write, spec), sent.rows, sent.value, source=what)
            copied.append(CopiedTable(spec.name, sent.rows, sent.value))
    return CopyReport(revision, tuple(copied))
