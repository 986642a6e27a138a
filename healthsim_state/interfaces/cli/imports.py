"""``healthsim import``: bring other generators' output into the store as scenarios."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from healthsim_state.formats.synthea import import_synthea
from healthsim_state.interfaces.cli.options import DatabaseUrl
from healthsim_state.interfaces.cli.session import store_write
from healthsim_state.interfaces.cli.terminal import console, progress

app = typer.Typer(help="Import other generators' output: synthea.", no_args_is_help=True)


@app.command()
def synthea(
    directory: Path = typer.Argument(..., help="A folder of Synthea CSV files (patients.csv at least)."),
    scenario: str = typer.Option(..., "--scenario", "-s", help="Name of the scenario to import into."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a scenario of the same name."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="Tag the scenario (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Import a Synthea CSV folder as one scenario; nothing is written if any file is refused.

    Re-importing the same folder updates its entities in place.
    """
    summary = store_write(
        database_url,
        lambda session: import_synthea(
            session, directory, scenario=scenario, overwrite=overwrite, tags=tag, progress=progress
        ),
        what=f"the import of {directory}",
    )
    report = summary.as_dict()
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    _print(report)


def _print(report: dict[str, Any]) -> None:
    out = console()
    entities = report["entities"]
    out.print(
        f"imported Synthea folder ({report['layout']} layout) into {report['scenario']!r} "
        f"({report['scenario_id']}): {sum(entities.values())} entities",
        highlight=False,
        markup=False,
    )
    files = Table("file", "rows", "excluded", "duplicates", "note")
    for name, rows in report["rows_read"].items():
        excluded = report["excluded"].get(name, [])
        notes = [f"{e['count']} {e['reason']}" for e in excluded]
        duplicates = report["duplicates"].get(name)
        if duplicates:
            notes.append(f"duplicate ids: {duplicates['rule']}")
        if name in report["unknown_columns"]:
            notes.append("columns kept in extensions: " + ", ".join(report["unknown_columns"][name]))
        files.add_row(
            Text(name),
            str(rows),
            str(sum(e["count"] for e in excluded)),
            str(duplicates["count"] if duplicates else 0),
            Text("; ".join(notes)),
        )
    out.print(files)
    types = Table("entity type", "entities")
    for name, count in entities.items():
        types.add_row(name, str(count))
    out.print(types)
    for name in report["ignored_files"]:
        out.print(f"ignored: {name} (not a Synthea CSV file)", highlight=False, markup=False)
    for warning in report["warnings"]:
        out.print(f"warning: {warning}", highlight=False, markup=False)
