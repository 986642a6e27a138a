"""Backup, restore and store copy against raw baselines of the same tables, in one run.

    python -m bench.backup                          # a 10,000-patient demo store
    python -m bench.backup --patients 1000 --postgresql postgresql+psycopg://postgres@127.0.0.1:5432/test

One demo store (healthsim_state.demo, every entity type) is saved to a
DuckDB file first (untimed). Then, in this order, each timed once (this
machine is shared; the ratios within one run are what to compare):

- backup: ``backup_store`` of the DuckDB store (one snapshot, Parquet files,
  checksums, manifest); raw: DuckDB's own ``COPY table TO 'file.parquet'``
  of every table of the same store, in one transaction;
- restore into DuckDB: ``restore_store`` of that backup into a new file
  (checksums verified, one transaction); raw: ``INSERT INTO table SELECT *
  FROM read_parquet(...)`` of the raw files into a new file at head;
- restore into PostgreSQL: ``restore_store`` into a new database; raw: the
  same Parquet files of the backup read by pyarrow, written as CSV and
  loaded by PostgreSQL's ``COPY FROM STDIN`` (psycopg) into the same tables
  of an empty store at head, in one transaction;
- copy DuckDB -> PostgreSQL: ``copy_store`` (streamed, written by COPY,
  read back and verified); raw: every table written by DuckDB as CSV and
  loaded by PostgreSQL's ``COPY FROM STDIN`` (psycopg), in one transaction.

Prints rows/s per step, each step's time against its baseline, and the
share of each step's time spent computing checksums (``TableChecksum.add``,
timed around every call in the same run). Run by hand; never part of the
test suite.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


@contextmanager
def _database(server: str) -> Iterator[str]:
    """A new PostgreSQL database on ``server``, dropped afterwards."""
    import psycopg

    url = make_url(server)
    name = f"hs_bench_{uuid.uuid4().hex[:10]}"
    admin = dict(host=url.host, port=url.port, user=url.username, password=url.password, autocommit=True)
    with psycopg.connect(dbname=url.database or "postgres", **admin) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dbname=url.database or "postgres", **admin) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _make_store(url: str, patients: int) -> None:
    from healthsim_models.engine import create_store_engine, session_scope
    from healthsim_state import ScenarioRepository, demo

    engine = create_store_engine(url)
    with session_scope(engine) as session:
        demo.save_demo(ScenarioRepository(session), patients=patients)
    engine.dispose()


def _duckdb(path: Path):  # type: ignore[no-untyped-def]
    import duckdb

    connection = duckdb.connect(str(path))
    connection.execute("SET enable_progress_bar = false")
    return connection


def _names() -> list[tuple[str, str]]:
    """(qualified SQL, file stem) of every table of the models."""
    from healthsim_models.base import Base

    return [(".".join(f'"{p}"' for p in t.fullname.split(".")), t.fullname) for t in Base.metadata.sorted_tables]


def _raw_backup(store: Path, folder: Path) -> None:
    folder.mkdir()
    connection = _duckdb(store)
    connection.execute("BEGIN")
    for sql, stem in _names():
        connection.execute(f"COPY (SELECT * FROM {sql}) TO '{folder / stem}.parquet' (FORMAT parquet)")
    connection.execute("COMMIT")
    connection.close()


def _raw_restore(folder: Path, store: Path) -> None:
    connection = _duckdb(store)
    connection.execute("BEGIN")
    for sql, stem in _names():
        connection.execute(f"INSERT INTO {sql} SELECT * FROM read_parquet('{folder / stem}.parquet')")
    connection.execute("COMMIT")
    connection.close()


def _raw_pg_restore(folder: Path, url: str) -> None:
    """The backup's Parquet files into the same tables of PostgreSQL by COPY, one transaction."""
    import psycopg
    import pyarrow.parquet as pq
    from pyarrow import csv

    target = make_url(url)
    with psycopg.connect(host=target.host, port=target.port, user=target.username, dbname=target.database) as pg:
        with pg.cursor() as cursor:
            # The text forms pyarrow writes, as the store's own COPY sets them.
            cursor.execute("SET TIME ZONE 'UTC'")
            for sql, stem in _names():
                table = pq.read_table(folder / f"{stem}.parquet")
                if not table.num_rows:
                    continue
                sink = io.BytesIO()
                csv.write_csv(table, sink, write_options=csv.WriteOptions(include_header=False))
                names = ", ".join(f'"{name}"' for name in table.schema.names)
                with cursor.copy(f"COPY {sql} ({names}) FROM STDIN (FORMAT csv)") as copy:
                    copy.write(sink.getbuffer())
        pg.commit()


@contextmanager
def _checksum_clock() -> Iterator[list[float]]:
    """Seconds spent in ``TableChecksum.add`` inside the block (one element, updated in place)."""
    from healthsim_state.store.checksum import TableChecksum

    spent = [0.0]
    real = TableChecksum.add

    def add(self: Any, batch: Any) -> None:
        started = time.perf_counter()
        real(self, batch)
        spent[0] += time.perf_counter() - started

    TableChecksum.add = add  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        TableChecksum.add = real  # type: ignore[method-assign]


def _raw_copy(store: Path, folder: Path, url: str) -> None:
    import psycopg

    folder.mkdir()
    source = _duckdb(store)
    for sql, stem in _names():
        source.execute(f"COPY (SELECT * FROM {sql}) TO '{folder / stem}.csv' (FORMAT csv, HEADER false)")
    source.close()
    target = make_url(url)
    with psycopg.connect(host=target.host, port=target.port, user=target.username, dbname=target.database) as pg:
        with pg.cursor() as cursor:
            for sql, stem in _names():
                with (
                    cursor.copy(f"COPY {sql} FROM STDIN (FORMAT csv)") as copy,
                    open(folder / f"{stem}.csv", "rb") as f,
                ):
                    while chunk := f.read(1 << 20):
                        copy.write(chunk)
        pg.commit()


def run(patients: int, server: str) -> None:
    from healthsim_models.engine import create_store_engine
    from healthsim_state.store.backup import backup_store
    from healthsim_state.store.copy import copy_store
    from healthsim_state.store.restore import restore_store

    work = Path(tempfile.mkdtemp(prefix="hs-bench-backup-"))
    try:
        store = work / "store.duckdb"
        url = f"duckdb:///{store}"
        print(f"saving the {patients:,}-patient demo store (untimed) ...", flush=True)
        _make_store(url, patients)
        # The raw restore's target: an empty store at head.
        create_store_engine(f"duckdb:///{work / 'raw-restored.duckdb'}").dispose()

        # (step, seconds, seconds in checksums, raw seconds)
        results: list[tuple[str, float, float, float | None]] = []
        source = create_store_engine(url, upgrade=False)
        manifest = None

        def backup() -> None:
            nonlocal manifest
            manifest = backup_store(source, work / "backup")

        def timed(action: Callable[[], object]) -> tuple[float, float]:
            with _checksum_clock() as spent:
                seconds = _timed(action)
            return seconds, spent[0]

        seconds, checksums = timed(backup)
        assert manifest is not None
        rows = manifest.rows
        raw = _timed(lambda: _raw_backup(store, work / "raw-backup"))
        results.append(("backup (DuckDB -> Parquet)", seconds, checksums, raw))

        restored = create_store_engine(f"duckdb:///{work / 'restored.duckdb'}", upgrade=False)
        seconds, checksums = timed(lambda: restore_store(restored, work / "backup"))
        restored.dispose()
        raw = _timed(lambda: _raw_restore(work / "raw-backup", work / "raw-restored.duckdb"))
        results.append(("restore (Parquet -> DuckDB)", seconds, checksums, raw))

        with _database(server) as pg_url, _database(server) as raw_url:
            engine = create_store_engine(pg_url, upgrade=False)
            seconds, checksums = timed(lambda: restore_store(engine, work / "backup"))
            engine.dispose()
            create_store_engine(raw_url).dispose()  # an empty store at head
            raw = _timed(lambda: _raw_pg_restore(work / "backup", raw_url))
            results.append(("restore (Parquet -> PostgreSQL)", seconds, checksums, raw))

        with _database(server) as pg_url, _database(server) as raw_url:
            seconds, checksums = timed(lambda: copy_store(source, pg_url))
            create_store_engine(raw_url).dispose()
            raw = _timed(lambda: _raw_copy(store, work / "raw-csv", raw_url))
            results.append(("copy (DuckDB -> PostgreSQL)", seconds, checksums, raw))
        source.dispose()

        print(f"\n{patients:,} patients: {rows:,} rows in {len(manifest.tables)} tables")
        print(
            f"  {'step':<32} {'seconds':>8} {'rows/s':>10} {'checksums':>10} {'raw s':>8} {'raw rows/s':>11} "
            f"{'raw/ours':>9}"
        )
        for name, ours, checksums, baseline in results:
            line = f"  {name:<32} {ours:>8.2f} {rows / ours:>10,.0f} {checksums / ours:>9.0%}"
            if baseline is not None:
                line += f" {baseline:>8.2f} {rows / baseline:>11,.0f} {baseline / ours:>8.2f}x"
            print(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument(
        "--postgresql",
        default=os.environ.get("HEALTHSIM_TEST_POSTGRES_URL", DEFAULT_SERVER),
        help="a server URL whose user may create databases (default: $HEALTHSIM_TEST_POSTGRES_URL, else %(default)s)",
    )
    args = parser.parse_args()
    run(args.patients, args.postgresql)


if __name__ == "__main__":
    main()
