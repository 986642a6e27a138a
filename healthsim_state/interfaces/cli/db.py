"""``healthsim db``: create, upgrade, downgrade and inspect the database schema;
back up, restore and copy the whole store.

These commands open the database without the automatic upgrade, so that
``current`` and ``status`` report a database as it is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from alembic.util import CommandError
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

from healthsim_models import schema_version
from healthsim_models.engine import create_store_engine
from healthsim_models.errors import SchemaVersionError
from healthsim_models.location import mask_url, resolve_database_url
from healthsim_state.interfaces.cli.options import DatabaseUrl

app = typer.Typer(
    help="Schema versions (upgrade, downgrade, current, history, status); backup, restore, copy.", no_args_is_help=True
)
_out = Console()


@contextmanager
def _engine(url: str | None) -> Iterator[Engine]:
    engine = create_store_engine(url, upgrade=False)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _target(action: str, revision: str) -> Iterator[None]:
    """Alembic's refusal of a target revision (unknown, or on the wrong side) as a project error."""
    try:
        yield
    except CommandError as exc:
        raise SchemaVersionError(
            f"cannot {action} to {revision!r}: {exc}; 'healthsim db history' lists the revisions"
        ) from exc


def _print_status(engine: Engine) -> None:
    st = schema_version.status(engine)
    _out.print(f"database: {st.url}")
    _out.print(f"current:  {st.current or '(empty: no revision applied)'}")
    _out.print(f"head:     {st.head}")
    _out.print(f"pending:  {', '.join(st.pending) if st.pending else 'none'}")
    table = Table("table", "rows", title="Rows per table", title_justify="left")
    for name, count in st.row_counts.items():
        table.add_row(name, "-" if count is None else str(count))
    _out.print(table)


@app.command()
def upgrade(
    revision: str = typer.Argument("head", help="Target revision."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Create the database if needed and upgrade it to REVISION (default: head), then show its status."""
    with _engine(database_url) as engine:
        with _target("upgrade", revision):
            schema_version.upgrade(engine, revision)
        _print_status(engine)


@app.command()
def downgrade(
    revision: str = typer.Argument(..., help="Target revision; 'base' removes every table."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Revert the schema to REVISION."""
    with _engine(database_url) as engine:
        with _target("downgrade", revision):
            schema_version.downgrade(engine, revision)
        _out.print(f"at revision {schema_version.current_revision(engine) or 'base'}")


@app.command()
def current(database_url: str | None = DatabaseUrl) -> None:
    """Print the database's current revision (empty database: 'base')."""
    with _engine(database_url) as engine:
        rev = schema_version.current_revision(engine)
    head = schema_version.head_revision()
    _out.print(f"{rev or 'base'}{' (head)' if rev == head else ''}")


@app.command()
def history() -> None:
    """List every revision this version knows, newest first."""
    table = Table("revision", "revises", "description")
    for info in schema_version.history():
        table.add_row(info.revision, info.down_revision or "<base>", info.description.strip().splitlines()[0])
    _out.print(table)


@app.command()
def status(database_url: str | None = DatabaseUrl) -> None:
    """Show the URL (password masked), current and head revisions, pending revisions and rows per table."""
    with _engine(database_url) as engine:
        _print_status(engine)


def _print_tables(title: str, tables: list[tuple[str, int]], seconds: float, checksums: str = "verified") -> None:
    table = Table("table", "rows", title=title, title_justify="left")
    for name, rows in tables:
        table.add_row(name, str(rows))
    total = sum(rows for _, rows in tables)
    table.add_row("total", str(total))
    _out.print(table)
    _out.print(
        f"{total} rows in {seconds:.1f} s ({total / max(seconds, 1e-9):,.0f} rows/s), every table's checksum verified"
    )


@app.command()
def backup(
    path: Path = typer.Argument(..., help="A new (or empty) folder to write the backup into."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Write the whole store to the folder PATH: one Parquet file per table and a manifest
    with each table's rows and checksum (docs/backup.md)."""
    from healthsim_state.store.backup import backup_store

    started = time.perf_counter()
    with _engine(database_url) as engine:
        manifest = backup_store(engine, path)
    _print_tables(
        f"Backup of revision {manifest.schema_revision} in {path}",
        [(t.name, t.rows) for t in manifest.tables],
        time.perf_counter() - started,
        "recorded in the manifest",
    )


@app.command()
def restore(
    path: Path = typer.Argument(..., help="The folder 'healthsim db backup' wrote."),
    replace: bool = typer.Option(False, "--replace", help="Replace the data of a store that is not empty."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Restore the backup in the folder PATH into an empty store (or, with --replace, in place of its data),
    then upgrade it to the latest schema revision."""
    from healthsim_state.store.restore import restore_store

    started = time.perf_counter()
    with _engine(database_url) as engine:
        manifest = restore_store(engine, path, replace=replace)
        revision = schema_version.current_revision(engine)
    _print_tables(
        f"Restored from {path} (revision {manifest.schema_revision}, now {revision})",
        [(t.name, t.rows) for t in manifest.tables],
        time.perf_counter() - started,
    )


@app.command()
def copy(
    to: str = typer.Option(..., "--to", metavar="URL", help="The database to copy the store into."),
    replace: bool = typer.Option(False, "--replace", help="Replace the data of a target that is not empty."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Copy the whole store into the database at --to (DuckDB or PostgreSQL, either way), in one
    transaction there, every table verified by rows and checksum."""
    from healthsim_state.store.copy import copy_store

    started = time.perf_counter()
    with _engine(database_url) as engine:
        report = copy_store(engine, to, replace=replace)
    _print_tables(
        f"Copied to {mask_url(resolve_database_url(to))} at revision {report.schema_revision}",
        [(t.name, t.rows) for t in report.tables],
        time.perf_counter() - started,
    )
