"""Restore: a backup folder (:mod:`healthsim_state.store.backup`) back into a store.

Into an empty store of either backend, in one transaction on it: each
file's rows and checksum must match the manifest (else the table is named
and nothing is restored); a backup from a newer schema is refused, one from
an older schema is restored at its revision and then upgraded to head. A
store holding data is refused unless it is to be replaced.

The restore is one audited operation (``store_restore``) of the target: its
event is added after the backup's audit trail is in place, in the same
transaction; a refused restore leaves its event in the trail the target
already had (a new database has none).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthsim_models.errors import BackupError
from healthsim_state.store import target
from healthsim_state.store.audit import audited
from healthsim_state.store.backup import BackupManifest, TableEntry
from healthsim_state.store.portable import BATCH_ROWS, known_revisions


def _batches(folder: Path, entry: TableEntry) -> Iterator[pa.RecordBatch]:
    path = folder / entry.file
    try:
        parquet = pq.ParquetFile(path)
        if parquet.schema_arrow.names != [c.name for c in entry.columns]:
            raise BackupError(
                f"{path} does not have the columns the manifest lists for the table {entry.name}: "
                "the backup is damaged or was edited. Nothing was restored."
            )
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            yield batch.cast(entry.spec.schema)
    except (OSError, pa.ArrowException) as exc:
        raise BackupError(
            f"the file {path} of the table {entry.name} cannot be read ({exc}): the backup is damaged. "
            "Nothing was restored."
        ) from exc


@contextmanager
def _writing(store: Engine | Session) -> Iterator[Session]:
    if isinstance(store, Session):
        yield store
        return
    with Session(store) as session:
        yield session
        session.commit()


def restore_store(store: Engine | Session, path: str | os.PathLike[str], *, replace: bool = False) -> BackupManifest:
    """Restore the backup in the folder ``path`` into ``store``; its manifest.

    With an engine the restore is one transaction of its own; with a session
    it runs in the session's transaction, which the caller commits.
    """
    folder = Path(path)
    with _writing(store) as session, audited(session, "store_restore", details={"source": str(folder)}) as event:
        manifest = BackupManifest.read(folder)
        event.details.update(schema_revision=manifest.schema_revision, backend=manifest.source_backend)
        _restore(session.connection(), folder, manifest, replace)
        event.counts = {entry.name: entry.rows for entry in manifest.tables}
    return manifest


def _restore(connection: sa.Connection, folder: Path, manifest: BackupManifest, replace: bool) -> None:
    source = f"the backup {folder}"
    if manifest.schema_revision not in known_revisions():
        raise BackupError(
            f"{source} is at schema revision {manifest.schema_revision}, which this version of "
            f"healthsim-store (head {known_revisions()[-1]}) does not know: it was written by a newer version. "
            "Upgrade healthsim-store to restore it; nothing was changed."
        )
    missing = [entry.file for entry in manifest.tables if not (folder / entry.file).is_file()]
    if missing:
        raise BackupError(f"{source} lacks {', '.join(missing)}: it is incomplete. Nothing was changed.")
    target.prepare(connection, manifest.schema_revision, replace=replace, source=source)
    for entry in manifest.tables:
        loaded = target.load(connection, entry.spec, _batches(folder, entry), source=source)
        target.verify(entry.name, loaded, entry.rows, entry.checksum, source=source)
    target.finish(connection)
