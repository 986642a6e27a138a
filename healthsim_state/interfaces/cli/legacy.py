"""``healthsim migrate-legacy``: bring the original JSON-file scenarios into the store."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from healthsim_models.errors import DocumentError
from healthsim_state.formats.legacy import FAILED, FileReport, default_sources, legacy_status, migrate_legacy
from healthsim_state.interfaces.cli.options import DatabaseUrl
from healthsim_state.interfaces.cli.session import store_session
from healthsim_state.interfaces.cli.terminal import console, progress


def migrate_legacy_command(
    sources: list[Path] = typer.Option(
        [],
        "--from",
        help="Folder of legacy *.json files, or one file (repeatable). "
        "Default: scenarios/ and workspaces/ under ~/.healthsim ($HEALTHSIM_HOME).",
        show_default=False,
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check every file and report; write nothing."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace scenarios of the same names, and migrate changed files again."
    ),
    status: bool = typer.Option(False, "--status", help="Only report which files are migrated, changed or pending."),
    backup: Path | None = typer.Option(None, "--backup", help="Copy each migrated file into this folder."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Migrate legacy v1 scenario files and v2 workspace files, one scenario per file.

    Files are only read, never moved or deleted. Re-running skips files already migrated.
    """
    if backup is not None and (dry_run or status):
        # Neither writes a scenario, so there would be nothing to back up: say so rather than ignore it.
        raise typer.BadParameter(
            f"cannot be combined with {'--status' if status else '--dry-run'}, which migrates no file",
            param_hint="'--backup'",
        )
    chosen = sources or None
    with store_session(database_url) as session:
        if status:
            reports = legacy_status(session, chosen)
        else:
            reports = migrate_legacy(
                session, chosen, dry_run=dry_run, overwrite=overwrite, backup_dir=backup, progress=progress
            )
    if not reports:
        where = ", ".join(str(s) for s in (sources or default_sources()))
        console().print(f"no legacy *.json files in {where}", highlight=False, markup=False)
        return
    _print(reports)
    failed = [r for r in reports if r.status == FAILED]
    if failed and not status:
        first = failed[0].reason.splitlines()[0] if failed[0].reason else failed[0].path
        raise DocumentError(
            f"{len(failed)} of {len(reports)} legacy files failed (see the report above); first: {first}"
        )


def _print(reports: list[FileReport]) -> None:
    table = Table("file", "format", "status", "scenario", "entities", "note")
    for report in reports:
        note = report.reason.splitlines()[0] if report.reason else ""
        if report.backup:
            note = f"backup: {report.backup}"
        table.add_row(
            Text(report.path),
            report.format or "-",
            report.status,
            Text(report.scenario or "-"),
            str(report.entities),
            Text(note),
        )
    for column in table.columns:
        column.overflow = "fold"
    console().print(table)
