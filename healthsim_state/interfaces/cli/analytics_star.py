"""``healthsim analytics star``: build the star schema of some scenarios (or all) and print its row counts."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from healthsim_state.analytics.star import DEFAULT_SCHEMA, StarSummary, build_star, check_schema_name
from healthsim_state.interfaces.cli.options import DatabaseUrl
from healthsim_state.interfaces.cli.session import store_write
from healthsim_state.interfaces.cli.terminal import progress


def star(
    scenarios: list[str] | None = typer.Argument(
        None,
        help="Scenarios to rebuild, by name or id (default: every scenario).",
        show_default=False,
    ),
    schema: str = typer.Option(DEFAULT_SCHEMA, "--schema", help="The schema the star schema's tables are in."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Build the star schema (dim_patient, dim_date, dim_provider, dim_scenario and the fact tables)
    of SCENARIOS... or of every scenario, replacing what those scenarios contributed before.

    Other scenarios' rows stay; keys are the same on every run. docs/analytics.md
    describes the tables and their rules.
    """
    check_schema_name(schema)  # before the store is opened
    with progress("building the star schema"):
        summary = store_write(
            database_url, lambda session: build_star(session, scenarios, schema=schema), "the star schema build"
        )
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
        return
    _print(summary)


def _print(summary: StarSummary) -> None:
    names = ", ".join(summary.scenarios) or "none (the store has no scenario)"
    table = Table("table", "rows")
    for name, count in summary.rows.items():
        table.add_row(name, str(count))
    out = Console()
    out.print(f"star schema {summary.schema!r}, ages as of {summary.as_of}: {names}", markup=False, highlight=False)
    out.print(table)
