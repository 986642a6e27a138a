"""``healthsim analytics check``: the data-quality report of the OMOP CDM export."""

from __future__ import annotations

import json

import typer
from rich.table import Table
from rich.text import Text

from healthsim_state.analytics.omop.check import CHECKS, CheckResult, check_omop
from healthsim_state.analytics.omop.schema import DEFAULT_SCHEMA
from healthsim_state.interfaces.cli.options import DatabaseUrl
from healthsim_state.interfaces.cli.session import store_session
from healthsim_state.interfaces.cli.terminal import console

#: The exit status when a check fails: apart from 1 (the command itself failed) and 2 (usage).
CHECK_FAILED = 3
#: Checks of the schema's shape, listed in the table only when they fail (the summary counts them).
_STRUCTURE = frozenset({"cdmTable", "cdmField"})


def check(
    schema: str = typer.Option(DEFAULT_SCHEMA, "--schema", help="The schema the OMOP tables are in."),
    as_json: bool = typer.Option(False, "--json", help="Print every check as JSON instead of a table."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Check the OMOP CDM tables against the CDM 5.4 specification, in the spirit of the OHDSI
    Data Quality Dashboard: required fields, field lengths, primary and foreign keys, dates
    plausible and within observation periods.

    Prints each check with the rows it looked at and the rows that break it; checks of empty
    tables are not applicable and not listed. Exit status 3 when any check fails.
    """
    with store_session(database_url) as session:
        results = check_omop(session, schema)
    failed = sum(not r.passed for r in results)
    if as_json:
        counts = {status: sum(r.status == status for r in results) for status in ("pass", "fail", "not applicable")}
        report = {"schema": schema, "passed": not failed, "counts": counts, "checks": [r.as_dict() for r in results]}
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(results)
    if failed:
        raise typer.Exit(CHECK_FAILED)


def _print(results: list[CheckResult]) -> None:
    table = Table(title="OMOP CDM data quality", title_justify="left")
    # A narrow terminal folds names rather than cutting them short.
    for name in ("check", "table", "field"):
        table.add_column(name, overflow="fold")
    for name in ("rows violating", "rows checked", "%"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for r in results:
        if r.status == "not applicable" or (r.check in _STRUCTURE and r.passed):
            continue
        table.add_row(
            r.check,
            r.table,
            r.field or "",
            f"{r.rows_violating:,}",
            f"{r.rows_checked:,}",
            _percent(r.percentage),
            Text("pass", style="green") if r.passed else Text("FAIL", style="bold red"),
        )
    out = console()
    out.print(table)
    structure = [r for r in results if r.check in _STRUCTURE]
    failed = [r for r in results if not r.passed]
    empty = sum(r.status == "not applicable" for r in results)
    out.print(
        f"{len(results)} checks of {len(CHECKS)} kinds: {len(results) - len(failed) - empty} passed, "
        f"{len(failed)} failed, {empty} not applicable (empty tables); "
        f"{sum(r.passed for r in structure)} of {len(structure)} tables and fields of the specification present",
        highlight=False,
        markup=False,
    )


def _percent(value: float | None) -> str:
    """A percentage that never rounds a violation down to zero."""
    if value is None:
        return ""
    if 0 < value < 0.01:
        return "<0.01"
    return f"{value:.2f}"
