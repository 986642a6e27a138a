"""Backups: the whole store as a folder of Parquet files and a manifest.

One Parquet file per table of the store (scenarios, links, tags, every
entity type, reference data, schema history, and any table a later
revision adds), read in one snapshot and streamed batch by batch, and a
``manifest.json`` with the format version, the schema revision, when and
from which backend, and per table its file, rows, checksum
(:mod:`healthsim_state.store.checksum`) and columns. The folder is written
under a temporary name beside the target and renamed at the end: a failed
backup leaves nothing behind. docs/backup.md describes the format.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthsim_models.errors import BackupError
from healthsim_models.location import mask_url
from healthsim_state.store.audit import record_read, record_read_apart
from healthsim_state.store.checksum import Column, TableChecksum
from healthsim_state.store.portable import TableSpec, arrow_type, read_table, reading, store_revision, store_tables

FORMAT = "healthsim-store-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class TableEntry:
    """One table of a backup: its file, rows, checksum and columns."""

    name: str
    file: str
    rows: int
    checksum: str
    columns: tuple[Column, ...]

    @property
    def spec(self) -> TableSpec:
        return TableSpec(self.name, self.columns)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "rows": self.rows,
            "checksum": self.checksum,
            "columns": [{"name": c.name, "kind": c.kind, "arrow_type": str(arrow_type(c.kind))} for c in self.columns],
        }


@dataclass(frozen=True)
class BackupManifest:
    """What ``manifest.json`` says about a backup."""

    format_version: int
    schema_revision: str
    created_at: str
    source_backend: str
    tables: tuple[TableEntry, ...]

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "schema_revision": self.schema_revision,
            "created_at": self.created_at,
            "source_backend": self.source_backend,
            "tables": [t.as_json() for t in self.tables],
        }

    @classmethod
    def read(cls, folder: Path) -> BackupManifest:
        """The manifest of the backup in ``folder``; anything not a backup of this format is refused."""
        path = folder / MANIFEST
        if not folder.is_dir():
            raise BackupError(f"{folder} is not a folder: a backup is the folder 'healthsim db backup' wrote")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BackupError(f"{folder} holds no {MANIFEST}: it is not a HealthSim backup") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BackupError(f"{path} cannot be read as JSON ({exc}): the backup is damaged") from exc
        try:
            if data["format"] != FORMAT:
                raise BackupError(f"{path} is not a HealthSim backup manifest (format {data['format']!r})")
            if data["format_version"] != FORMAT_VERSION:
                raise BackupError(
                    f"{path} is of backup format version {data['format_version']}; this version of "
                    f"healthsim-store reads version {FORMAT_VERSION}: upgrade healthsim-store"
                )
            tables = tuple(
                TableEntry(
                    name=t["name"],
                    file=t["file"],
                    rows=int(t["rows"]),
                    checksum=str(t["checksum"]),
                    columns=tuple(Column(str(c["name"]), str(c["kind"])) for c in t["columns"]),
                )
                for t in data["tables"]
            )
            return cls(
                format_version=data["format_version"],
                schema_revision=str(data["schema_revision"]),
                created_at=str(data["created_at"]),
                source_backend=str(data["source_backend"]),
                tables=tables,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupError(f"{path} lacks or misstates {exc}: the backup's manifest is damaged") from exc


def _refuse_destination(path: Path) -> None:
    if path.is_dir():
        if any(path.iterdir()):
            raise BackupError(f"{path} exists and is not empty: give a new or empty folder for the backup")
    elif path.exists():
        raise BackupError(f"{path} is a file: give a new or empty folder for the backup")
    elif not path.parent.is_dir():
        raise BackupError(f"the folder {path.parent} does not exist: create it first, or give another place")


def _write_table(connection: Any, spec: TableSpec, folder: Path) -> TableEntry:
    file = f"{spec.name}.parquet"
    sums = TableChecksum(spec.columns)
    with pq.ParquetWriter(folder / file, spec.schema) as writer:
        for batch in read_table(connection, spec):
            sums.add(batch)
            writer.write_batch(batch)
    return TableEntry(spec.name, file, sums.rows, sums.value, spec.columns)


def backup_store(source: Engine | Session, path: str | os.PathLike[str]) -> BackupManifest:
    """Write the whole store behind ``source`` to the new (or empty) folder ``path``.

    An engine's store is read in one read-only snapshot; a session's in its
    own transaction, as it stands.
    """
    path = Path(path)
    _refuse_destination(path)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    except OSError as exc:
        raise BackupError(f"cannot write in {path.parent}: {exc.strerror or exc}") from exc
    try:
        with reading(source) as connection:
            where = f"the store {mask_url(connection.engine.url)}"
            revision = store_revision(connection, where)
            if revision is None:
                raise BackupError(f"{where} holds no HealthSim store (no schema revision): nothing to back up")
            tables = tuple(_write_table(connection, spec, staging) for spec in store_tables(connection))
            backend = connection.dialect.name
        manifest = BackupManifest(
            format_version=FORMAT_VERSION,
            schema_revision=revision,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            source_backend=backend,
            tables=tables,
        )
        (staging / MANIFEST).write_text(json.dumps(manifest.as_json(), indent=2) + "\n", encoding="utf-8")
        if path.is_dir():
            path.rmdir()  # empty, as checked; fails if something was put there meanwhile
        staging.rename(path)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BackupError(f"cannot write the backup {path}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # After the snapshot, so the event is not part of the backup it describes.
    fields = {"counts": {t.name: t.rows for t in tables}, "details": {"path": str(path)}}
    if isinstance(source, Session):
        record_read(source, "store_backup", **fields)
    else:
        record_read_apart(source, "store_backup", **fields)
    return manifest
